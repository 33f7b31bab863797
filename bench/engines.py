"""How each engine's build cost grows with the shop (issue 21, docs/engines.md): `python -m bench --engine ...`.

    python -m bench --engine duckdb postgres spark --customers 10000 100000

For each shop size: one generated shop (one night of exports, seed 21), loaded once by the loader into a
DuckDB warehouse file. Then, for each engine, in a process of its own (Spark keeps one session per process),
on a copy of that file: a full `dbt build` of the project as the night runs it (no unit tests), timed in its
three parts: the copy of the raw tables to the engine (`copy`), dbt itself (`dbt build`), the copy of the
built schemas back into the warehouse file (`copy back`). PostgreSQL is a throwaway server in a temporary
folder (Debian's `postgresql`, as in the tests); Spark a local session (`local[2]`).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import secrets
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

BENCH_DIR = Path(__file__).parent
END_DATE = date(2026, 3, 31)
ENGINES = ("duckdb", "postgres", "spark")


def _loaded(customers: int, seed: int) -> tuple[Path, Path, date]:
    """(exports folder, loaded warehouse file, run date) of the shop, generated and loaded on first use."""
    from kizuna import stages
    from kizuna.config import Settings
    from kizuna.demo_shop import generate_shop

    root = BENCH_DIR / "data" / f"engines-{customers}-{seed}"
    exports, data = root / "exports", root / "data"
    settings = Settings(data_dir=data, exports_dir=exports)
    if not (root / "loaded").exists():
        shutil.rmtree(root, ignore_errors=True)
        generate_shop(exports, customers=customers, seed=seed, end_date=END_DATE, nights=1)
        stages.ingest(settings, stages.resolve_night(settings, None))
        (root / "loaded").touch()
    night = stages.resolve_night(settings, None) or END_DATE
    return exports, settings.warehouse, stages.send_date_for(night)  # type: ignore[return-value]


def _build(engine: str, exports: str, loaded: str, run_date: date, work: str, postgres: dict | None) -> dict:
    """One full build on `engine` in this (child) process; the seconds of its parts."""
    from kizuna import engines, modelling
    from kizuna.config import Settings

    warehouse = Path(work) / f"{engine}.duckdb"
    shutil.copyfile(loaded, warehouse)
    settings = Settings(data_dir=Path(work) / "data", exports_dir=Path(exports), warehouse=warehouse, engine=engine,
                        spark_dir=Path(work) / "spark", **(postgres or {}))
    seconds = {"copy": 0.0, "copy back": 0.0}
    for name, part in (("copy_sources", "copy"), ("copy_back", "copy back")):
        original = getattr(engines, name)

        def timed(settings, _original=original, _part=part):
            started = time.perf_counter()
            try:
                return _original(settings)
            finally:
                seconds[_part] += time.perf_counter() - started
        setattr(engines, name, timed)
    started = time.perf_counter()
    result = modelling.build_models(settings, run_date, unit_tests=False, full_refresh=True)
    seconds["total"] = time.perf_counter() - started
    seconds["dbt build"] = seconds["total"] - seconds["copy"] - seconds["copy back"]
    seconds["nodes"] = len(result.nodes)
    return seconds


def _in_child(fn, *args) -> dict:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def bench(engines: list[str], sizes: list[int], seed: int) -> list[dict]:
    from connectors.sources.ec_cube.pg_cluster import ThrowawayPostgres

    cluster = ThrowawayPostgres().start() if "postgres" in engines else None
    rows = []
    try:
        for customers in sizes:
            exports, loaded, run_date = _loaded(customers, seed)
            for engine in engines:
                postgres = None
                if cluster is not None and engine == "postgres":
                    password = secrets.token_urlsafe(12)
                    database = f"bench_{customers}_{secrets.token_hex(3)}"
                    cluster.create_database(database, owner=database, password=password)
                    postgres = {"postgres_host": str(cluster.socket_dir), "postgres_user": database,
                                "postgres_password": password, "postgres_database": database}
                with tempfile.TemporaryDirectory(prefix=f"kizuna-bench-{engine}-") as work:
                    seconds = _in_child(_build, engine, str(exports), str(loaded), run_date, work, postgres)
                rows.append({"engine": engine, "customers": customers, **seconds})
                print(f"{engine:>8} {customers:>8,} customers: copy {seconds['copy']:6.1f} s, dbt build "
                      f"{seconds['dbt build']:6.1f} s, copy back {seconds['copy back']:6.1f} s, total "
                      f"{seconds['total']:6.1f} s ({seconds['nodes']} nodes)", flush=True)
    finally:
        if cluster is not None:
            cluster.remove()
    return rows


def table(rows: list[dict]) -> str:
    """The measurements as a Markdown table (docs/engines.md)."""
    lines = ["| engine | customers | copy (s) | dbt build (s) | copy back (s) | total (s) |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['engine']} | {r['customers']:,} | {r['copy']:.1f} | {r['dbt build']:.1f} | "
              f"{r['copy back']:.1f} | {r['total']:.1f} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench --engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", nargs="+", choices=ENGINES, required=True)
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args(argv)
    print(table(bench(args.engine, args.customers, args.seed)))


if __name__ == "__main__":
    main()

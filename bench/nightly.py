"""Time each stage of a first full load and of one incremental night on generated shops.

For each shop size it generates (or reuses) a demo shop under bench/data/, then in a
fresh warehouse runs the stages directly (no Prefect, so the figures are the work
itself): the first load takes every night but the last, the incremental night the
last one. A baseline measured in the same run, DuckDB scanning the same CSV files
with no validation or merge, gives the ingest ratio; peak memory is the process's
maximum resident set. Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb

import kizuna  # noqa: F401
from kizuna import stages
from kizuna.config import Settings

BENCH_DIR = Path(__file__).parent
END_DATE = date(2026, 11, 22)
NIGHTS = 3


@dataclass
class Timing:
    customers: int
    phase: str
    seconds: dict[str, float] = field(default_factory=dict)
    rows_read: int = 0


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _shop(customers: int, seed: int) -> tuple[Path, float]:
    from kizuna.demo_shop import generate_shop

    folder = BENCH_DIR / "data" / f"shop-{customers}-{seed}"
    if (folder / "shop.json").exists():
        return folder, 0.0
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    generate_shop(folder, customers=customers, seed=seed, end_date=END_DATE, nights=NIGHTS)
    return folder, time.perf_counter() - started


def _baseline_scan(folders: list[Path]) -> float:
    """Lower bound for ingest: DuckDB reading the same CSV files, nothing else."""
    started = time.perf_counter()
    con = duckdb.connect()
    for folder in folders:
        for csv in sorted(folder.glob("*.csv")):
            con.execute(f"select count(*) from read_csv('{csv.as_posix()}', all_varchar = true)").fetchone()
    con.close()
    return time.perf_counter() - started


def _run_phase(settings: Settings, night: date, phase: str, customers: int) -> Timing:
    timing = Timing(customers, phase)

    def timed(name: str, fn, *args):
        started = time.perf_counter()
        value = fn(*args)
        timing.seconds[name] = time.perf_counter() - started
        # Progress as it happens: a long run that fails late still shows what it measured.
        print(f"  {customers:>9,} {phase:<17} {name:<10} {timing.seconds[name]:8.2f} s", file=sys.stderr, flush=True)
        return value

    outcome = stages.NightlyOutcome(night=night)
    outcome.loads = timed("ingest", stages.ingest, settings, night)
    timing.rows_read = sum(f.rows_read for n in outcome.loads for f in n.files)
    outcome.raw_gate = timed("raw gate", stages.gate_raw, settings, night)
    outcome.build = timed("dbt build", stages.build_marts, settings, outcome.run_date)
    outcome.mart_gate = timed("mart gate", stages.gate_marts, settings)
    outcome.campaigns = timed("campaigns", stages.send_campaigns, settings, outcome.run_date)
    timed("report", stages.write_report, settings, outcome)
    return timing


def bench(customers: int, seed: int) -> tuple[list[Timing], dict]:
    shop, generated_in = _shop(customers, seed)
    nights = sorted(p for p in shop.iterdir() if p.is_dir())
    work = BENCH_DIR / "data" / f"run-{customers}"
    shutil.rmtree(work, ignore_errors=True)
    # A copy of the shop without its last night: the first load sees history only.
    exports = work / "exports"
    exports.mkdir(parents=True)
    for folder in nights[:-1]:
        (exports / folder.name).symlink_to(folder.resolve(), target_is_directory=True)
    settings = Settings(home=Path(__file__).parent.parent, data_dir=work, exports_dir=exports)
    first = _run_phase(settings, date.fromisoformat(nights[-2].name), "first load", customers)
    (exports / nights[-1].name).symlink_to(nights[-1].resolve(), target_is_directory=True)
    incremental = _run_phase(settings, date.fromisoformat(nights[-1].name), "incremental night", customers)
    extra = {
        "generate_seconds": generated_in,
        "baseline_scan_first_seconds": _baseline_scan(nights[:-1]),
        "baseline_scan_incremental_seconds": _baseline_scan(nights[-1:]),
        "peak_rss_mib": _peak_rss_mib(),
    }
    return [first, incremental], extra


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000],
                        help="shop sizes to measure (default: 10000 100000)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (shops are reused per size and seed)")
    args = parser.parse_args()

    report: list[dict] = []
    for customers in args.customers:
        timings, extra = bench(customers, args.seed)
        for t in timings:
            baseline = extra["baseline_scan_first_seconds" if t.phase == "first load" else "baseline_scan_incremental_seconds"]
            report.append({"customers": customers, "phase": t.phase, "rows_read": t.rows_read,
                           "seconds": t.seconds, "total_seconds": sum(t.seconds.values()),
                           "ingest_vs_duckdb_scan": t.seconds["ingest"] / baseline if baseline else None,
                           **extra})
    _print(report)
    out = BENCH_DIR / "results" / f"nightly-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten: {out}")


def _print(report: list[dict]) -> None:
    stage_names = list(report[0]["seconds"])
    header = ["customers", "phase", "rows read", *stage_names, "total s", "ingest/scan", "peak MiB"]
    print("  ".join(f"{h:>12}" for h in header))
    for r in report:
        cells = [f"{r['customers']:,}", r["phase"], f"{r['rows_read']:,}",
                 *(f"{r['seconds'][s]:.2f}" for s in stage_names), f"{r['total_seconds']:.2f}",
                 f"{r['ingest_vs_duckdb_scan']:.1f}x", f"{r['peak_rss_mib']:.0f}"]
        print("  ".join(f"{c:>12}" for c in cells))

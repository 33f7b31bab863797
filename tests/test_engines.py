"""Engines (issue 21, docs/engines.md): the same dbt project on PostgreSQL and Spark builds the same marts as on
DuckDB.

One generated shop is loaded once into a DuckDB warehouse (the loader, as every night), built there, then
its raw tables copied into a real throwaway PostgreSQL server (tests/pg_cluster.py) and built again there
with `KIZUNA_ENGINE=postgres`, and written as Parquet into a local Spark session (local[2], pyspark) and
built again there with `KIZUNA_ENGINE=spark`. Every mart must carry the same columns, of the same kind of
type, and the same rows: money (integers, decimals) exactly, rates (floating point) within 1e-9.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
import shutil
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from kizuna import engines, modelling, stages
from kizuna.config import Settings
from kizuna.demo_shop import generate_shop
from kizuna.errors import KizunaError
from pg_cluster import postgres  # noqa: F401  (fixture)

#: The issue's shop: 10,000 customers, built once per engine for the whole module.
CUSTOMERS = 10000
END = dt.date(2026, 3, 31)
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def shop(tmp_path_factory, postgres) -> dict:  # noqa: F811
    root = tmp_path_factory.mktemp("engines")
    exports = root / "exports"
    generate_shop(exports, customers=CUSTOMERS, seed=21, end_date=END, nights=1)
    on_duckdb = Settings(data_dir=root / "data", exports_dir=exports)
    night = stages.resolve_night(on_duckdb, None)
    stages.ingest(on_duckdb, night)
    run_date = stages.send_date_for(night)
    # Each other engine's night has its own warehouse file (the same loaded raw tables): the build there
    # copies its marts back into it, which must not overwrite the marts DuckDB built.
    loaded = {engine: root / f"{engine}-night.duckdb" for engine in ("postgres", "spark")}
    for path in loaded.values():
        shutil.copyfile(on_duckdb.warehouse, path)
    seconds = {}
    started = time.perf_counter()
    modelling.build_models(on_duckdb, run_date, unit_tests=False, full_refresh=True)
    seconds["duckdb"] = time.perf_counter() - started

    password = secrets.token_urlsafe(12)
    postgres.create_database("kizuna_marts", owner="kizuna_dbt", password=password)
    on_postgres = Settings(**{**on_duckdb.model_dump(), "engine": "postgres", "warehouse": loaded["postgres"],
                              "postgres_host": str(postgres.socket_dir), "postgres_user": "kizuna_dbt",
                              "postgres_password": password, "postgres_database": "kizuna_marts"})
    started = time.perf_counter()
    result = modelling.build_models(on_postgres, run_date, unit_tests=False, full_refresh=True)
    seconds["postgres"] = time.perf_counter() - started

    on_spark = Settings(**{**on_duckdb.model_dump(), "engine": "spark", "warehouse": loaded["spark"],
                           "spark_dir": root / "spark"})
    started = time.perf_counter()
    spark_result = modelling.build_models(on_spark, run_date, unit_tests=False, full_refresh=True)
    seconds["spark"] = time.perf_counter() - started
    print(f"\nbuilds of {CUSTOMERS:,} customers (copies included): "
          + ", ".join(f"{engine} {s:.0f} s" for engine, s in seconds.items()))
    return {"duckdb": on_duckdb, "postgres": on_postgres, "spark": on_spark, "result": result,
            "spark_result": spark_result, "run_date": run_date}


def _kind(type_name: str) -> str:
    """The kind of a column type, the same word on both engines (DuckDB's and PostgreSQL's spellings)."""
    t = type_name.lower()
    if t.startswith(("decimal", "numeric")):
        return "decimal"
    if t in ("bigint", "integer", "smallint", "hugeint", "int8", "int4", "int2"):
        return "integer"
    if t in ("double", "double precision", "float8", "real", "float", "float4"):
        return "float"
    if t in ("varchar", "text", "character varying"):
        return "text"
    if t.startswith("timestamp"):
        return "timestamp"
    return t  # date, boolean


def _duckdb_marts(settings: Settings) -> dict[str, list[tuple[str, str]]]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        rows = con.execute("select table_name, column_name, data_type from duckdb_columns() "
                           "where schema_name = 'marts' order by table_name, column_index").fetchall()
    marts: dict[str, list[tuple[str, str]]] = {}
    for table, column, type_ in rows:
        marts.setdefault(table, []).append((column, _kind(type_)))
    return marts


def _postgres_marts(settings: Settings) -> dict[str, list[tuple[str, str]]]:
    with engines.postgres_connection(settings) as con:
        rows = con.execute("select table_name, column_name, data_type from information_schema.columns "
                           "where table_schema = 'marts' order by table_name, ordinal_position").fetchall()
    marts: dict[str, list[tuple[str, str]]] = {}
    for table, column, type_ in rows:
        marts.setdefault(table, []).append((column, _kind(type_)))
    return marts


def _sort_key(row: tuple) -> tuple:
    """Rows in an order both engines' values agree on (floats rounded well above the tolerance)."""
    return tuple((v is None, round(float(v), 6) if isinstance(v, float) else v) for v in row)


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return a is not None and b is not None and Decimal(a) == Decimal(b)
    return a == b


@pytest.mark.xfail(strict=True, reason="issue 21, remains: PostgreSQL keeps numeric where DuckDB has DOUBLE (a "
                   "decimal divided, safe_ratio and `1.0 * a / b`) or HUGEINT (a sum of bigints); the values are "
                   "equal (the row-by-row test), the column types not yet: docs/engines.md")
def test_every_mart_is_built_on_postgres_with_the_same_columns_and_types(shop):
    on_duckdb, on_postgres = _duckdb_marts(shop["duckdb"]), _postgres_marts(shop["postgres"])
    assert len(on_duckdb) > 15 and "dim_customers" in on_duckdb and "fct_orders" in on_duckdb
    assert sorted(on_postgres) == sorted(on_duckdb)
    differing = [f"{t}.{a[0]}: {a[1]} on duckdb, {b[1]} on postgres" if a[0] == b[0] else f"{t}: {a[0]} / {b[0]}"
                 for t in on_duckdb for a, b in zip(on_duckdb[t], on_postgres[t]) if a != b]
    assert not differing, "\n".join(differing)
    assert not shop["result"].failed and shop["result"].mode == "full"


def _differing_rows(tables: dict[str, list[tuple[str, str]]], left_rows, right_rows, engine: str) -> list[str]:
    """Each mart whose rows differ between DuckDB (`left_rows(table, names)`) and the engine (`right_rows`)."""
    differing = []
    for table, columns in tables.items():
        names = [c for c, _ in columns]
        left = sorted(left_rows(table, names), key=_sort_key)
        right = sorted(right_rows(table, names), key=_sort_key)
        if len(left) != len(right):
            differing.append(f"{table}: {len(left)} rows on duckdb, {len(right)} on {engine}")
            continue
        for a, b in zip(left, right):
            bad = [c for c, x, y in zip(names, a, b) if not _same(x, y)]
            if bad:
                differing.append(f"{table}.{bad[0]}: {dict(zip(names, a))} != {dict(zip(names, b))}")
                break
    return differing


def test_the_marts_on_duckdb_and_postgres_are_equal_row_by_row(shop):
    tables = _duckdb_marts(shop["duckdb"])
    with duckdb.connect(str(shop["duckdb"].warehouse), read_only=True) as dcon, \
            engines.postgres_connection(shop["postgres"]) as pcon:
        def rows(con):
            return lambda table, names: con.execute(
                f"select {', '.join(chr(34) + n + chr(34) for n in names)} from marts.{table}").fetchall()
        differing = _differing_rows(tables, rows(dcon), rows(pcon), "postgres")
        assert dcon.execute("select count(*) from marts.dim_customers").fetchone()[0] == CUSTOMERS
    assert not differing, "\n".join(differing)


def _spark_marts(settings: Settings) -> dict[str, list[tuple[str, str]]]:
    spark = engines.spark_session(settings)
    marts: dict[str, list[tuple[str, str]]] = {}
    for table in sorted(t.name for t in spark.catalog.listTables("marts")):
        marts[table] = [(f.name, _kind(f.dataType.simpleString())) for f in spark.table(f"marts.{table}").schema.fields]
    return marts


def _spark_rows(settings: Settings):
    """Rows of a mart as Spark holds them (timestamps as wall-clock times, like DuckDB's TIMESTAMP)."""
    spark = engines.spark_session(settings)

    def rows(table: str, names: list[str]) -> list[tuple]:
        types = {f.name: f.dataType.simpleString() for f in spark.table(f"marts.{table}").schema.fields}
        select = ", ".join(f"cast(`{n}` as timestamp_ntz)" if types[n] == "timestamp" else f"`{n}`" for n in names)
        return [tuple(row) for row in spark.sql(f"select {select} from marts.{table}").collect()]
    return rows


def test_every_mart_is_built_on_spark_with_the_same_columns(shop):
    on_duckdb, on_spark = _duckdb_marts(shop["duckdb"]), _spark_marts(shop["spark"])
    assert len(on_duckdb) > 15 and sorted(on_spark) == sorted(on_duckdb)
    differing = [f"{t}: {[c for c, _ in on_duckdb[t]]} on duckdb, {[c for c, _ in on_spark[t]]} on spark"
                 for t in on_duckdb if [c for c, _ in on_duckdb[t]] != [c for c, _ in on_spark[t]]]
    assert not differing, "\n".join(differing)
    assert not shop["spark_result"].failed and shop["spark_result"].mode == "full"


def test_the_marts_on_duckdb_and_spark_are_equal_row_by_row(shop):
    tables = _duckdb_marts(shop["duckdb"])
    with duckdb.connect(str(shop["duckdb"].warehouse), read_only=True) as dcon:
        differing = _differing_rows(
            tables, lambda table, names: dcon.execute(
                f"select {', '.join(chr(34) + n + chr(34) for n in names)} from marts.{table}").fetchall(),
            _spark_rows(shop["spark"]), "spark")
    assert not differing, "\n".join(differing)


def _file_marts(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Each mart's (column, DuckDB type) in a warehouse file, exactly as DuckDB spells the type."""
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute("select table_name, column_name, data_type from duckdb_columns() "
                           "where schema_name = 'marts' order by table_name, column_index").fetchall()
    marts: dict[str, list[tuple[str, str]]] = {}
    for table, column, type_ in rows:
        marts.setdefault(table, []).append((column, type_))
    return marts


def test_the_marts_built_on_postgres_are_copied_back_into_the_warehouse_file_with_duckdbs_types(shop):
    """The rest of the night reads the warehouse file: after the build on PostgreSQL it holds those marts,
    in the column types a DuckDB build gives them, and the same rows."""
    built_here, copied_back = _file_marts(shop["duckdb"].warehouse), _file_marts(shop["postgres"].warehouse)
    assert sorted(copied_back) == sorted(built_here)
    differing = [f"{t}.{a[0]}: {a[1]} built on duckdb, {b[1]} copied back" for t in built_here
                 for a, b in zip(built_here[t], copied_back[t]) if a != b]
    assert not differing, "\n".join(differing)
    bad = []
    with duckdb.connect(str(shop["duckdb"].warehouse), read_only=True) as left_con, \
            duckdb.connect(str(shop["postgres"].warehouse), read_only=True) as right_con:
        for table, columns in built_here.items():
            names = ", ".join(f'"{c}"' for c, _ in columns)
            left = sorted(left_con.execute(f"select {names} from marts.{table}").fetchall(), key=_sort_key)
            right = sorted(right_con.execute(f"select {names} from marts.{table}").fetchall(), key=_sort_key)
            if len(left) != len(right) or any(not _same(x, y) for a, b in zip(left, right) for x, y in zip(a, b)):
                bad.append(table)
        # what the report reads besides the marts, and the analysts' column descriptions (persist_docs)
        assert right_con.execute("select count(*) from staging.stg_shop__media").fetchone()[0] > 0
        assert right_con.execute("select comment from duckdb_columns() where schema_name = 'marts' and "
                                 "table_name = 'dim_customers' and column_name = 'customer_id'").fetchone()[0]
    assert not bad, bad


def test_a_second_build_replaces_the_copied_sources_and_keeps_the_views(shop):
    """The copy is replaced each night, the staging views on the raw tables survive it."""
    copied = engines.copy_sources(shop["postgres"])
    assert copied is not None and copied.tables >= 10 and copied.rows > CUSTOMERS
    with engines.postgres_connection(shop["postgres"]) as con:
        assert con.execute("select count(*) from raw.customers").fetchone()[0] == CUSTOMERS
        assert con.execute("select count(*) from staging.stg_shop__customers").fetchone()[0] == CUSTOMERS
    assert engines.copy_sources(shop["duckdb"]) is None  # the embedded engine reads the file itself


def test_an_unreachable_postgres_says_which_settings_to_check(shop, tmp_path):
    wrong = shop["postgres"].model_copy(update={"postgres_database": "no_such_database"})
    with pytest.raises(KizunaError) as stopped:
        engines.copy_sources(wrong)
    assert "no_such_database" in str(stopped.value) and "KIZUNA_POSTGRES_HOST" in str(stopped.value)


def test_a_raw_column_type_without_a_postgres_type_stops_the_copy_by_name():
    assert engines.postgres_type("DECIMAL(18,2)", "raw.orders.total") == "numeric(18,2)"
    with pytest.raises(KizunaError) as stopped:
        engines.postgres_type("INTERVAL", "raw.orders.gap")
    assert "raw.orders.gap" in str(stopped.value) and "INTERVAL" in str(stopped.value)


@pytest.mark.xfail(strict=True, reason="issue 21, remains: a sum of bigints is HUGEINT on DuckDB, BIGINT on Spark "
                   "(dim_customers.total_revenue, ...); campaign_variant_results' `1.0 * a / b` a decimal on Spark; "
                   "row_number() BIGINT / INTEGER (fct_orders): the values are equal (the row-by-row tests): docs/engines.md")
def test_the_marts_built_on_spark_are_copied_back_with_duckdbs_types(shop):
    built_here, copied_back = _file_marts(shop["duckdb"].warehouse), _file_marts(shop["spark"].warehouse)
    differing = [f"{t}.{a[0]}: {a[1]} built on duckdb, {b[1]} copied back" for t in built_here
                 for a, b in zip(built_here[t], copied_back[t]) if a != b]
    assert not differing, "\n".join(differing)


def test_the_marts_built_on_spark_are_copied_back_into_the_warehouse_file(shop):
    """After the build on Spark the warehouse file holds Spark's marts (the same columns and rows as a DuckDB
    build) and the staging view the report reads."""
    built_here, copied_back = _file_marts(shop["duckdb"].warehouse), _file_marts(shop["spark"].warehouse)
    assert sorted(copied_back) == sorted(built_here)
    differing = [f"{t}: {[c for c, _ in built_here[t]]} built on duckdb, {[c for c, _ in copied_back[t]]} copied back"
                 for t in built_here if [c for c, _ in built_here[t]] != [c for c, _ in copied_back[t]]]
    assert not differing, "\n".join(differing)
    with duckdb.connect(str(shop["duckdb"].warehouse), read_only=True) as left_con, \
            duckdb.connect(str(shop["spark"].warehouse), read_only=True) as right_con:
        def rows(con):
            return lambda table, names: con.execute(
                f"select {', '.join(chr(34) + n + chr(34) for n in names)} from marts.{table}").fetchall()
        bad = _differing_rows({t: [(c, "") for c, _ in cs] for t, cs in built_here.items()},
                              rows(left_con), rows(right_con), "spark (copied back)")
        assert right_con.execute("select count(*) from staging.stg_shop__media").fetchone()[0] > 0
        assert right_con.execute("select count(*) from marts.dim_customers").fetchone()[0] == CUSTOMERS
    assert not bad, "\n".join(bad)


def test_a_second_spark_copy_replaces_the_parquet_sources_and_keeps_the_views(shop):
    """Each night's copy writes new Parquet files, re-points the tables and removes the previous night's;
    the staging views on the raw tables still read."""
    sources = shop["spark"].spark_dir / "sources"
    before = sorted(p for p in sources.glob("*/*"))
    copied = engines.copy_sources(shop["spark"])
    assert copied is not None and copied.tables >= 10 and copied.rows > CUSTOMERS
    after = sorted(p for p in sources.glob("*/*"))
    assert len(before) == len(after) == 1 and before != after
    spark = engines.spark_session(shop["spark"])
    assert spark.sql("select count(*) from raw.customers").collect()[0][0] == CUSTOMERS
    assert spark.sql("select count(*) from staging.stg_shop__customers").collect()[0][0] == CUSTOMERS
    # nothing of Spark's in the working directory: its tables, metastore and Derby log are in its folder
    assert (shop["spark"].spark_dir / "metastore_db").is_dir() and (shop["spark"].spark_dir / "warehouse" / "marts.db").is_dir()
    assert not Path("metastore_db").exists() and not Path("spark-warehouse").exists()


def test_a_raw_column_type_without_a_spark_type_stops_the_copy_by_name():
    assert engines.spark_readable("HUGEINT", "raw.orders.total") == "DECIMAL(38,0)"
    assert engines.duckdb_type_of_spark("decimal(28,2)", "marts.x.y") == "DECIMAL(28,2)"
    for call, type_ in ((engines.spark_readable, "INTERVAL"), (engines.duckdb_type_of_spark, "map<string,int>")):
        with pytest.raises(KizunaError) as stopped:
            call(type_, "raw.orders.gap")
        assert "raw.orders.gap" in str(stopped.value) and type_ in str(stopped.value)


@pytest.mark.parametrize("engine", ["duckdb", "postgres", "spark"])
def test_a_rounded_ratio_on_a_tie_is_the_same_on_every_engine(shop, engine):
    """167,551 / 40 = 4,188.775 exactly: a double holds 4,188.77499999..., which DuckDB's round() on the
    double took down to .77 where PostgreSQL and Spark, dividing decimals exactly, gave .78 (found on the
    10,000-customer shop: ltv_by_media_cohort.break_even_cpo). round_ratio rounds the same everywhere."""
    from kizuna.modelling import _invoke

    sql = ("select {{ round_ratio('167551', '40', 2) }} as tie, {{ round_ratio('-167551', '40', 2) }} as negative, "
           "{{ round_ratio('1', '3', 4) }} as third, {{ round_ratio('1', '0', 2) }} as nothing")
    outcome = _invoke(shop[engine], ["show", "--inline", sql])
    assert outcome.success, outcome.exception
    row = tuple(outcome.result.results[0].agate_table.rows[0])
    assert [None if v is None else float(v) for v in row] == [4188.78, -4188.78, 0.3333, None]


def test_a_whole_night_on_postgres_sends_once_from_the_marts_built_there(tmp_path, postgres):  # noqa: F811
    """`KIZUNA_ENGINE=postgres kizuna demo`, twice: the night completes end to end with the marts built on
    PostgreSQL (copied back into a warehouse file DuckDB never built), the sends are recorded once in the
    ledger, and the second night sends nothing new."""
    import json
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    password = secrets.token_urlsafe(12)
    postgres.create_database("kizuna_night", owner="kizuna_night", password=password)
    data_dir = tmp_path / "data"
    env = {**os.environ, "KIZUNA_DATA_DIR": str(data_dir), "KIZUNA_DEMO_CUSTOMERS": "1500",
           "PREFECT_HOME": str(tmp_path / "prefect-home"), "COLUMNS": "200",
           "KIZUNA_ENGINE": "postgres", "KIZUNA_POSTGRES_HOST": str(postgres.socket_dir),
           "KIZUNA_POSTGRES_USER": "kizuna_night", "KIZUNA_POSTGRES_PASSWORD": password,
           "KIZUNA_POSTGRES_DATABASE": "kizuna_night"}
    env.pop("PREFECT_API_URL", None)
    kizuna = Path(sys.executable).parent / "kizuna"

    def night() -> subprocess.CompletedProcess:
        done = subprocess.run([str(kizuna), "demo"], cwd=root, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    night()
    ledger = data_dir / "ledger.duckdb"
    with duckdb.connect(str(ledger), read_only=True) as con:
        sent = con.execute("select count(*) from sends where status = 'sent'").fetchone()[0]
    assert sent > 0
    index = [json.loads(line) for line in (data_dir / "outbox" / "index.jsonl").read_text().splitlines()]
    assert len(index) == sent
    settings = Settings(data_dir=data_dir, engine="postgres", postgres_host=str(postgres.socket_dir),
                        postgres_user="kizuna_night", postgres_password=password, postgres_database="kizuna_night")
    with engines.postgres_connection(settings) as pcon:
        on_postgres = pcon.execute("select count(*), sum(total_revenue) from marts.dim_customers").fetchone()
        predicted = pcon.execute("select count(*) from marts.customer_predictions").fetchone()[0]
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*), sum(total_revenue) from marts.dim_customers").fetchone() == \
            (on_postgres[0], on_postgres[1])
        assert con.execute("select count(*) from marts.customer_predictions").fetchone()[0] == predicted
        # dbt never built in the file: no dbt-made staging views there, only the copied-back tables
        assert not con.execute("select count(*) from duckdb_views() where schema_name = 'staging'").fetchone()[0]
    assert on_postgres[0] == 1500
    _a_second_night_sends_nothing_new(night, data_dir, sent)


def test_a_whole_night_on_spark_sends_once_from_the_marts_built_there(tmp_path):
    """`KIZUNA_ENGINE=spark kizuna demo`, twice (a local Spark session in the night's process): the night
    completes with the marts built on Spark (copied back into a warehouse file DuckDB never built), the sends
    are recorded once in the ledger, and the second night sends nothing new."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    data_dir = tmp_path / "data"
    env = {**os.environ, "KIZUNA_DATA_DIR": str(data_dir), "KIZUNA_DEMO_CUSTOMERS": "1500",
           "PREFECT_HOME": str(tmp_path / "prefect-home"), "COLUMNS": "200", "KIZUNA_ENGINE": "spark"}
    env.pop("PREFECT_API_URL", None)
    kizuna = Path(sys.executable).parent / "kizuna"

    def night() -> None:
        done = subprocess.run([str(kizuna), "demo"], cwd=root, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr

    night()
    ledger = data_dir / "ledger.duckdb"
    with duckdb.connect(str(ledger), read_only=True) as con:
        sent = con.execute("select count(*) from sends where status = 'sent'").fetchone()[0]
    assert sent > 0
    assert len((data_dir / "outbox" / "index.jsonl").read_text().splitlines()) == sent
    # Spark's own tables, read from its Parquet files (this test's process runs no Spark session).
    tables = data_dir / "spark" / "warehouse" / "marts.db"
    with duckdb.connect() as con:
        on_spark = con.execute("select count(*), sum(total_revenue) from read_parquet(?)",
                               [str(tables / "dim_customers" / "*.parquet")]).fetchone()
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*), sum(total_revenue) from marts.dim_customers").fetchone() == on_spark
        assert con.execute("select count(*) from marts.customer_predictions").fetchone()[0] > 0
        assert not con.execute("select count(*) from duckdb_views() where schema_name = 'staging'").fetchone()[0]
    assert on_spark[0] == 1500
    _a_second_night_sends_nothing_new(night, data_dir, sent)


def _a_second_night_sends_nothing_new(night, data_dir: Path, sent: int) -> None:
    """Run `night` again: the outbox and the ledger's sent count stay as they were, every ledger key is unique."""
    outbox = sorted(p.name for p in (data_dir / "outbox").rglob("*") if p.is_file())
    night()
    assert sorted(p.name for p in (data_dir / "outbox").rglob("*") if p.is_file()) == outbox
    with duckdb.connect(str(data_dir / "ledger.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from sends where status = 'sent'").fetchone()[0] == sent
        keys = con.execute("select count(*), count(distinct (scenario_id, step_id, customer_id, anchor_date)) "
                           "from sends").fetchone()
    assert keys[0] == keys[1]

"""Engines (issue 21, docs/engines.md): the same dbt project on PostgreSQL and Spark as on the embedded DuckDB.

The loader, the raw-data gate, the ledger and the webhook store stay on DuckDB: they are the night's
intake and its own records, and must not depend on a server being up. Only dbt moves. With
`KIZUNA_ENGINE=postgres`, before every dbt build the runner copies the tables dbt reads (the schemas
`raw` and `predict` of the warehouse file) into the PostgreSQL database, replacing last night's copy,
the way a deployment loads a warehouse: the same loader, then a bulk `COPY` (DuckDB writes CSV, the
server reads it through `COPY ... FROM STDIN`; DuckDB's postgres extension is not used, it cannot be
installed without network). dbt then builds the marts in the database (profiles.yml, target `postgres`).
With `KIZUNA_ENGINE=spark` the raw tables are written as Parquet and registered in a Spark session's metastore
(dbt-spark's `session` method: Spark runs in this process; see the Spark section below).

After a successful build, `copy_back` copies what dbt built there (marts, intermediate, reference, and the
staging views the report reads) back into the warehouse file in one transaction, in DuckDB's column types:
the predictions, the gates, campaign selection, the report and the published warehouse read the file.

    engines.copy_sources(settings)      # -> CopyResult (tables, rows, seconds); a no-op on duckdb
    engines.spark_session(settings)     # -> the process's pyspark SparkSession (spark engine)
    engines.copy_back(settings)         # -> CopyResult after a build on the engine; a no-op on duckdb
    engines.dbt_target(settings)        # -> "duckdb" | "postgres" | "spark" (dbt's --target)
    engines.dbt_environment(settings)   # -> the variables profiles.yml reads for that target
    engines.builds_incrementally(settings)  # -> False on spark: its nightly builds are full refreshes
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from kizuna.config import Settings
from kizuna.errors import KizunaError

log = logging.getLogger("kizuna")

#: The warehouse schemas dbt reads as sources: the loaded exports and campaign feedback (`raw`) and the
#: nightly prediction scores (`predict`, read by marts.customer_predictions when present).
SOURCE_SCHEMAS = ("raw", "predict")

#: DuckDB column type -> PostgreSQL column type (as PostgreSQL's format_type() spells it), for the copied
#: tables. A type not listed stops the copy with its name (a new raw column type must be mapped here, never
#: silently turned into text).
_POSTGRES_TYPES = {
    "VARCHAR": "character varying", "BIGINT": "bigint", "INTEGER": "integer", "SMALLINT": "smallint",
    "DOUBLE": "double precision", "FLOAT": "real", "BOOLEAN": "boolean", "DATE": "date",
    "TIMESTAMP": "timestamp without time zone", "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
    "HUGEINT": "numeric(38,0)",
}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")


@dataclass(frozen=True)
class CopyResult:
    """The source tables copied to the engine before a build."""

    engine: str
    tables: int
    rows: int
    seconds: float

    def summary(self) -> str:
        return (f"copied {self.tables} source tables ({self.rows:,} rows) to {self.engine} "
                f"in {self.seconds:.1f} s")


def dbt_target(settings: Settings) -> str:
    """The profiles.yml target of the configured engine."""
    return settings.engine


def builds_incrementally(settings: Settings) -> bool:
    """Whether the engine's build can replace only the changed customers' rows (the `replace_customers`
    strategy); on Spark (Parquet tables: no DELETE) the nightly build is a full refresh (spark_incremental.sql)."""
    return settings.engine != "spark"


def dbt_environment(settings: Settings) -> dict[str, str]:
    """The environment variables profiles.yml reads for the configured engine's target."""
    environment = {"KIZUNA_ENGINE": settings.engine}
    if settings.engine == "spark":
        environment |= spark_environment(settings)
    if settings.engine == "postgres":
        environment |= {
            "KIZUNA_POSTGRES_HOST": settings.postgres_host,
            "KIZUNA_POSTGRES_PORT": str(settings.postgres_port),
            "KIZUNA_POSTGRES_USER": settings.postgres_user,
            "KIZUNA_POSTGRES_DATABASE": settings.postgres_database,
            # dbt keeps variables named DBT_ENV_SECRET_* out of its logs.
            "DBT_ENV_SECRET_KIZUNA_POSTGRES_PASSWORD": settings.postgres_password.get_secret_value(),
        }
    return environment


def copy_sources(settings: Settings) -> CopyResult | None:
    """Copy the warehouse's source tables (SOURCE_SCHEMAS) to the engine, replacing the previous copy.

    None on `duckdb` (dbt reads the warehouse file itself). Runs in one transaction on the server: a
    failed copy leaves last night's tables as they were."""
    if settings.engine == "duckdb":
        return None
    if settings.engine == "spark":
        return _copy_sources_spark(settings)
    started = time.perf_counter()
    assert settings.warehouse is not None  # set by Settings' validator
    rows = tables = 0
    with duckdb.connect(str(settings.warehouse), read_only=True) as source, \
            tempfile.TemporaryDirectory(prefix="kizuna-copy-") as tmp, postgres_connection(settings) as target:
        with target.transaction():
            for schema, table, columns in _source_tables(source):
                rows += _copy_table(source, target, schema, table, columns, Path(tmp) / f"{schema}.{table}.csv")
                tables += 1
    result = CopyResult(settings.engine, tables, rows, time.perf_counter() - started)
    log.info("%s", result.summary())
    return result


def postgres_connection(settings: Settings, autocommit: bool = True):
    """A psycopg connection to the configured PostgreSQL database, or a KizunaError saying which one failed."""
    import psycopg

    try:
        return psycopg.connect(host=settings.postgres_host, port=settings.postgres_port,
                               user=settings.postgres_user, dbname=settings.postgres_database,
                               password=settings.postgres_password.get_secret_value() or None,
                               autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise KizunaError(
            f"Could not connect to the PostgreSQL database {settings.postgres_database!r} on "
            f"{settings.postgres_host}:{settings.postgres_port} as {settings.postgres_user!r} "
            f"(KIZUNA_ENGINE=postgres): {str(exc).strip()}. Check KIZUNA_POSTGRES_HOST, _PORT, _USER, "
            "_PASSWORD and _DATABASE, or set KIZUNA_ENGINE=duckdb.") from None


def _source_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(schema, table, [(column, DuckDB type)]) of every table in SOURCE_SCHEMAS, in a stable order."""
    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, column, type_ in con.execute(
            "select schema_name, table_name, column_name, data_type from duckdb_columns() "
            "where database_name = current_database() and schema_name in (select unnest(?)) "
            "order by schema_name, table_name, column_index", [list(SOURCE_SCHEMAS)]).fetchall():
        found.setdefault((schema, table), []).append((column, type_))
    return [(schema, table, columns) for (schema, table), columns in found.items()]


def postgres_type(duckdb_type: str, where: str) -> str:
    """The PostgreSQL type holding a DuckDB column type exactly (`where` names the column for the error)."""
    if duckdb_type in _POSTGRES_TYPES:
        return _POSTGRES_TYPES[duckdb_type]
    decimal = _DECIMAL.match(duckdb_type)
    if decimal:
        return f"numeric({decimal[1]},{decimal[2]})"
    raise KizunaError(f"{where} has the DuckDB type {duckdb_type}, which kizuna does not know how to copy to "
                      "PostgreSQL: add it to kizuna/engines.py (_POSTGRES_TYPES).")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _copy_table(source: duckdb.DuckDBPyConnection, target, schema: str, table: str,
                columns: list[tuple[str, str]], csv: Path) -> int:
    """Replace `schema.table` on the server with the warehouse's rows; return how many were copied.

    CSV is the one format both ends read and write exactly: DuckDB writes an empty string quoted and a
    NULL as nothing, which is what PostgreSQL's CSV format reads back; doubles round-trip."""
    name = f"{_ident(schema)}.{_ident(table)}"
    definition = ", ".join(f"{_ident(c)} {postgres_type(t, f'{schema}.{table}.{c}')}" for c, t in columns)
    target.execute(f"create schema if not exists {_ident(schema)}")
    if _postgres_columns(target, schema, table) == [(c, postgres_type(t, "")) for c, t in columns]:
        # Emptied, not dropped: the staging views built on it stay (an incremental build does not rebuild them).
        target.execute(f"truncate table {name}")
    else:  # new, or its columns changed: the views on it go too, the next full build makes them again
        target.execute(f"drop table if exists {name} cascade")
        target.execute(f"create table {name} ({definition})")
    source.execute(f"copy {name} to '{csv}' (format csv, header false)")
    with target.cursor().copy(f"copy {name} from stdin (format csv)") as copy, csv.open("rb") as rows:
        while block := rows.read(1 << 20):
            copy.write(block)
    count = target.execute(f"select count(*) from {name}").fetchone()[0]
    return int(count)


def _postgres_columns(target, schema: str, table: str) -> list[tuple[str, str]]:
    """(column, type as in _POSTGRES_TYPES) of a table on the server, in order; [] when it does not exist."""
    return [(name, type_) for name, type_ in target.execute(
        "select attname, format_type(atttypid, atttypmod) from pg_attribute "
        "where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped order by attnum",
        [f"{_ident(schema)}.{_ident(table)}"]).fetchall()]


# --- the built schemas back into the warehouse file (the rest of the night reads them there) -----------

#: The schemas dbt builds that the rest of the night reads, copied back whole after every successful build
#: on another engine: the predictions, the mart gate, campaign selection, the report, the console and the
#: published warehouse (kizuna/warehouse.publish) all read the DuckDB file.
BUILT_SCHEMAS = ("intermediate", "marts", "reference")
#: Staging views some of those readers name (kizuna/report.py: the media names); copied back as tables.
#: The other staging views are not: they are views over `raw`, which the file holds already.
STAGING_READ = ("stg_shop__media",)

#: PostgreSQL column type (format_type()) -> DuckDB column type, for the copied-back tables: the inverse of
#: _POSTGRES_TYPES. `numeric(p,s)` becomes DECIMAL(p,s); an unconstrained `numeric` is _unconstrained_numeric's.
_DUCKDB_TYPES = {
    "character varying": "VARCHAR", "text": "VARCHAR", "bigint": "BIGINT", "integer": "INTEGER",
    "smallint": "SMALLINT", "double precision": "DOUBLE", "real": "FLOAT", "boolean": "BOOLEAN",
    "date": "DATE", "timestamp without time zone": "TIMESTAMP",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE", "numeric(38,0)": "HUGEINT",
}
_NUMERIC = re.compile(r"^numeric\((\d+),(\d+)\)$")
_VARCHAR = re.compile(r"^character varying\(\d+\)$")


def duckdb_type(postgres_type_: str, where: str) -> str | None:
    """The DuckDB type of a PostgreSQL column type (`where` names the column for the error); None for an
    unconstrained `numeric`, whose DuckDB type depends on how it was computed (_unconstrained_numeric)."""
    if postgres_type_ in _DUCKDB_TYPES:
        return _DUCKDB_TYPES[postgres_type_]
    if postgres_type_ == "numeric":
        return None
    if _VARCHAR.match(postgres_type_):
        return "VARCHAR"
    numeric = _NUMERIC.match(postgres_type_)
    if numeric and int(numeric[1]) <= 38:
        return f"DECIMAL({numeric[1]},{numeric[2]})"
    raise KizunaError(f"{where} has the PostgreSQL type {postgres_type_}, which kizuna does not know how to copy "
                      "back into the DuckDB warehouse: add it to kizuna/engines.py (_DUCKDB_TYPES), or cast the "
                      "column in its model.")


@dataclass(frozen=True)
class _Relation:
    schema: str
    name: str
    columns: list[tuple[str, str]]  # (column, PostgreSQL type)
    comment: str | None
    column_comments: dict[str, str]


def copy_back(settings: Settings) -> CopyResult | None:
    """Copy the schemas dbt built on the engine (BUILT_SCHEMAS, STAGING_READ) into the warehouse file,
    replacing their previous copy; None on `duckdb` (dbt built them in the file itself).

    Read in one snapshot of the server (a repeatable-read transaction) and written in one DuckDB
    transaction: a failed copy leaves the file's previous marts as they were and raises, so the night
    stops before anything reads them (the build record is written only after this succeeded, so the next
    night rebuilds in full). Tables and comments (persist_docs) are copied; a mart that no longer exists on
    the engine is dropped from the file too."""
    if settings.engine == "duckdb":
        return None
    if settings.engine == "spark":
        return _copy_back_spark(settings)
    from kizuna.warehouse import connect

    started = time.perf_counter()
    assert settings.warehouse is not None  # set by Settings' validator
    rows = 0
    with postgres_connection(settings, autocommit=False) as source, \
            tempfile.TemporaryDirectory(prefix="kizuna-copy-back-") as tmp:
        source.execute("set transaction isolation level repeatable read, read only")
        source.execute("set datestyle = 'ISO, YMD'")
        source.execute("set timezone = 'UTC'")
        source.execute("set extra_float_digits = 3")  # shortest exact doubles (the default on 12+, said anyway)
        relations = _built_relations(source)
        files = [(relation, _extract(source, relation, Path(tmp) / f"{relation.schema}.{relation.name}.csv"))
                 for relation in relations]
        source.rollback()
        with connect(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds) as target:
            target.execute("begin transaction")
            try:
                _drop_gone(target, relations)
                for relation, (csv, types) in files:
                    rows += _load(target, relation, csv, types)
                target.execute("commit")
            except BaseException:
                target.execute("rollback")
                raise
    result = CopyResult(settings.engine, len(relations), rows, time.perf_counter() - started)
    log.info("%s", result.summary().replace("copied", "copied back").replace(" source tables", " built tables")
             .replace(f" to {settings.engine}", f" from {settings.engine} into the warehouse file"))
    return result


def _built_relations(con) -> list[_Relation]:
    """Every table and view of BUILT_SCHEMAS and the STAGING_READ views on the server, with columns and comments."""
    found: dict[tuple[str, str], _Relation] = {}
    for schema, name, comment, column, type_, column_comment in con.execute(
            """select n.nspname, c.relname, obj_description(c.oid, 'pg_class'), a.attname,
                      format_type(a.atttypid, a.atttypmod), col_description(c.oid, a.attnum)
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
               join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
               where c.relkind in ('r', 'v', 'm', 'p')
                 and (n.nspname = any(%s) or (n.nspname = 'staging' and c.relname = any(%s)))
               order by n.nspname, c.relname, a.attnum""", [list(BUILT_SCHEMAS), list(STAGING_READ)]).fetchall():
        relation = found.setdefault((schema, name), _Relation(schema, name, [], comment, {}))
        relation.columns.append((column, type_))
        if column_comment:
            relation.column_comments[column] = column_comment
    missing = [f"staging.{name}" for name in STAGING_READ if ("staging", name) not in found]
    if not any(schema == "marts" for schema, _ in found) or missing:
        raise KizunaError("The engine's database holds no marts" + (f" (nor {', '.join(missing)})" if missing else "")
                          + " after a successful dbt build: nothing to copy back into the warehouse file.")
    return list(found.values())


def _extract(con, relation: _Relation, csv: Path) -> tuple[Path, dict[str, str]]:
    """Write a relation's rows as CSV (COPY ... TO STDOUT); return the file and each column's DuckDB type."""
    name = f"{_ident(relation.schema)}.{_ident(relation.name)}"
    types = {}
    for column, type_ in relation.columns:
        mapped = duckdb_type(type_, f"{relation.schema}.{relation.name}.{column}")
        types[column] = mapped or _unconstrained_numeric(con, name, column)
    with con.cursor().copy(f"copy (select * from {name}) to stdout (format csv)") as copy, csv.open("wb") as out:
        for block in copy:
            out.write(block)
    return csv, types


def _unconstrained_numeric(con, name: str, column: str) -> str:
    """The DuckDB type of an unconstrained PostgreSQL `numeric` column, as DuckDB computes the same SQL.

    PostgreSQL keeps such a column for a sum of integers (DuckDB: HUGEINT) and for a division involving a
    decimal (DuckDB: DOUBLE; PostgreSQL's quotient carries at least 16 decimal places). Told apart by the
    values' scale: all whole -> HUGEINT, else DOUBLE. Interim (docs/engines.md): the models should cast such
    columns themselves, so that no unconstrained numeric reaches the marts."""
    scale = con.execute(f"select max(scale({_ident(column)})) from {name}").fetchone()[0]
    return "HUGEINT" if scale == 0 else "DOUBLE"


def _drop_gone(con: duckdb.DuckDBPyConnection, relations: list[_Relation]) -> None:
    """Drop from the file's BUILT_SCHEMAS the tables and views the engine no longer has (a removed model)."""
    keep = {(r.schema, r.name) for r in relations}
    for schema, name, kind in con.execute(
            "select schema_name, table_name, 'table' from duckdb_tables() "
            "where database_name = current_database() and schema_name in (select unnest(?)) "
            "union all select schema_name, view_name, 'view' from duckdb_views() "
            "where database_name = current_database() and schema_name in (select unnest(?)) and not internal",
            [list(BUILT_SCHEMAS), list(BUILT_SCHEMAS)]).fetchall():
        if (schema, name) not in keep:
            con.execute(f"drop {kind} {_ident(schema)}.{_ident(name)}")


def _load(con: duckdb.DuckDBPyConnection, relation: _Relation, csv: Path, types: dict[str, str]) -> int:
    """Replace `schema.name` in the file with the CSV's rows, in the given column types; return the row count.

    PostgreSQL's CSV writes NULL as nothing and an empty string quoted: `allow_quoted_nulls = false` keeps
    the two apart."""
    name = f"{_ident(relation.schema)}.{_ident(relation.name)}"
    con.execute(f"create schema if not exists {_ident(relation.schema)}")
    view = con.execute("select count(*) from duckdb_views() where database_name = current_database() "
                       "and schema_name = ? and view_name = ?", [relation.schema, relation.name]).fetchone()[0]
    if view:  # e.g. a staging view a DuckDB build made: a table now
        con.execute(f"drop view {name}")
    definition = ", ".join(f"{_ident(c)} {types[c]}" for c, _ in relation.columns)
    con.execute(f"create or replace table {name} ({definition})")
    columns = "{" + ", ".join(f"'{c.replace(chr(39), chr(39) * 2)}': '{types[c]}'" for c, _ in relation.columns) + "}"
    con.execute(f"insert into {name} select * from read_csv(?, columns = {columns}, header = false, "
                "delim = ',', quote = '\"', escape = '\"', allow_quoted_nulls = false, auto_detect = false)",
                [str(csv)])
    if relation.comment:
        con.execute(f"comment on table {name} is {_literal(relation.comment)}")
    for column, comment in relation.column_comments.items():
        con.execute(f"comment on column {name}.{_ident(column)} is {_literal(comment)}")
    return int(con.execute(f"select count(*) from {name}").fetchone()[0])


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- Spark (dbt-spark's `session` method: Spark runs in this process) -----------------------------------
#
# The raw tables reach Spark the way a data lake is loaded: DuckDB writes each one as a Parquet file into the
# Spark folder (Settings.spark_dir/sources/<night>/<schema>/<table>/), and the table is registered in the
# session's metastore (Derby, in the same folder) as an external Parquet table at that location. dbt builds
# its tables as Parquet in <spark_dir>/warehouse. After the build Spark writes each built relation as Parquet
# and DuckDB reads it into the warehouse file, in one transaction.

#: DuckDB column type -> how the Parquet copy holds it (a cast in the COPY's select), when not as it is.
#: HUGEINT has no Parquet type (DuckDB would write a DOUBLE): DECIMAL(38,0) keeps it exact.
_PARQUET_CASTS = {"HUGEINT": "DECIMAL(38,0)"}
#: DuckDB column types whose Parquet copy Spark reads as the same kind of type (DECIMAL(p,s) besides).
_SPARK_READABLE = {"VARCHAR", "BIGINT", "INTEGER", "SMALLINT", "DOUBLE", "FLOAT", "BOOLEAN", "DATE", "TIMESTAMP",
                   "TIMESTAMP WITH TIME ZONE", "HUGEINT"}
#: Spark SQL type (DataType.simpleString()) -> DuckDB type, for the copied-back tables; decimal(p,s) besides.
_SPARK_TO_DUCKDB = {
    "string": "VARCHAR", "bigint": "BIGINT", "int": "INTEGER", "smallint": "SMALLINT", "tinyint": "TINYINT",
    "double": "DOUBLE", "float": "FLOAT", "boolean": "BOOLEAN", "date": "DATE", "timestamp": "TIMESTAMP",
    "timestamp_ntz": "TIMESTAMP", "void": "VARCHAR",
}
_SPARK_DECIMAL = re.compile(r"^decimal\((\d+),(\d+)\)$")


def spark_conf(settings: Settings) -> dict[str, str]:
    """The Spark session's settings; profiles.yml's `spark` target sets the same from spark_environment()."""
    folder = settings.spark_dir
    assert folder is not None  # set by Settings' validator
    conf = {
        "spark.master": settings.spark_master,
        "spark.app.name": "kizuna",
        # Never the current directory: the tables, the metastore and Derby's log live in the Spark folder.
        "spark.sql.warehouse.dir": str(folder / "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={folder / 'metastore_db'};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={folder}",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        # Raw timestamps are the shop's local time without an offset: Spark must not shift them.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # dbt-spark sets this for its session too (Spark 3 and 4 alike).
        "spark.sql.ansi.enabled": "false",
    }
    if settings.spark_master.startswith("local"):  # loopback only: a local driver listens on no other interface
        conf |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
    return conf


def spark_environment(settings: Settings) -> dict[str, str]:
    """The variables profiles.yml's `spark` target reads."""
    return {"KIZUNA_SPARK_MASTER": settings.spark_master, "KIZUNA_SPARK_DIR": str(settings.spark_dir),
            "KIZUNA_SPARK_SHUFFLE_PARTITIONS": str(settings.spark_shuffle_partitions),
            "KIZUNA_SPARK_DRIVER_MEMORY": settings.spark_driver_memory}


def spark_session(settings: Settings):
    """The process's Spark session, started with spark_conf() the first time (dbt-spark's session method then
    finds and uses this one). One Spark folder per process: Spark keeps its warehouse and metastore for the
    life of the JVM, so a second folder is refused rather than silently written to the first."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise KizunaError("KIZUNA_ENGINE=spark needs pyspark and dbt-spark: install kizuna's `spark` extra "
                          "(pip install 'kizuna[spark]'), or set KIZUNA_ENGINE=duckdb.") from None
    conf = spark_conf(settings)
    active = SparkSession.getActiveSession()
    if active is not None:
        running = active.conf.get("spark.sql.warehouse.dir")
        if Path(running.removeprefix("file:")).resolve() != Path(conf["spark.sql.warehouse.dir"]):
            raise KizunaError(f"This process runs a Spark session on {running}; it cannot also use "
                              f"{settings.spark_dir} (KIZUNA_SPARK_DIR). Run one warehouse per process.")
        return active
    Path(conf["spark.sql.warehouse.dir"]).mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.enableHiveSupport()
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # no Java, a JVM that did not start
        raise KizunaError(f"Could not start Spark (KIZUNA_ENGINE=spark, master {settings.spark_master}): "
                          f"{_one_line(exc)}. Spark needs Java 17 (`java -version`; Debian: openjdk-17-jre-headless)."
                          ) from None
    session.sparkContext.setLogLevel("ERROR")
    return session


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def spark_readable(duckdb_type: str, where: str) -> str:
    """The SQL expression type a DuckDB column is written to Parquet as, for Spark (`where` names it)."""
    if duckdb_type in _SPARK_READABLE or _DECIMAL.match(duckdb_type):
        return _PARQUET_CASTS.get(duckdb_type, duckdb_type)
    raise KizunaError(f"{where} has the DuckDB type {duckdb_type}, which kizuna does not know how to copy to "
                      "Spark: add it to kizuna/engines.py (_SPARK_READABLE).")


def _copy_sources_spark(settings: Settings) -> CopyResult:
    """Write every source table as Parquet into a new folder of this night and point Spark's tables at it.

    Every file is written before any table is re-pointed, so a failed write leaves last night's tables as
    they were; the staging views (Spark keeps a view's SQL) stay valid across the re-pointing. The previous
    nights' folders are removed afterwards."""
    import shutil

    started = time.perf_counter()
    assert settings.warehouse is not None and settings.spark_dir is not None
    root = settings.spark_dir / "sources"
    night = root / time.strftime("%Y%m%dT%H%M%S") / str(time.perf_counter_ns())
    written: list[tuple[str, str, Path]] = []
    rows = 0
    with duckdb.connect(str(settings.warehouse), read_only=True) as source:
        for schema, table, columns in _source_tables(source):
            select = ", ".join(
                f"cast({_ident(c)} as {spark_readable(t, f'{schema}.{table}.{c}')}) as {_ident(c)}" for c, t in columns)
            folder = night / schema / table
            folder.mkdir(parents=True)
            source.execute(f"copy (select {select} from {_ident(schema)}.{_ident(table)}) "
                           f"to '{folder / 'part-0.parquet'}' (format parquet)")
            rows += source.execute(f"select count(*) from {_ident(schema)}.{_ident(table)}").fetchone()[0]
            written.append((schema, table, folder))
    spark = spark_session(settings)
    for schema in sorted({schema for schema, _, _ in written}):
        spark.sql(f"create database if not exists `{schema}`")
    for schema, table, folder in written:
        name = f"`{schema}`.`{table}`"
        spark.sql(f"drop table if exists {name}")  # external: its files stay (last night's, removed below)
        spark.sql(f"create table {name} using parquet location '{folder.as_uri()}'")
    for previous in root.glob("*/*"):
        if previous != night:
            shutil.rmtree(previous, ignore_errors=True)
    for empty in root.iterdir():
        if empty.is_dir() and not any(empty.iterdir()):
            empty.rmdir()
    result = CopyResult(settings.engine, len(written), rows, time.perf_counter() - started)
    log.info("%s", result.summary())
    return result


@dataclass(frozen=True)
class _SparkRelation:
    schema: str
    name: str
    columns: list[tuple[str, str]]  # (column, DuckDB type)
    comment: str | None
    column_comments: dict[str, str]


def duckdb_type_of_spark(spark_type: str, where: str) -> str:
    """The DuckDB type of a Spark SQL column type (`where` names the column for the error)."""
    if spark_type in _SPARK_TO_DUCKDB:
        return _SPARK_TO_DUCKDB[spark_type]
    decimal = _SPARK_DECIMAL.match(spark_type)
    if decimal:
        return f"DECIMAL({decimal[1]},{decimal[2]})"
    raise KizunaError(f"{where} has the Spark type {spark_type}, which kizuna does not know how to copy back into "
                      "the DuckDB warehouse: add it to kizuna/engines.py (_SPARK_TO_DUCKDB), or cast the column "
                      "in its model.")


def _spark_relations(spark) -> list[_SparkRelation]:
    """Every table and view of BUILT_SCHEMAS and the STAGING_READ views in Spark's metastore."""
    names = []
    databases = {row.name for row in spark.catalog.listDatabases()}
    for schema in BUILT_SCHEMAS:
        if schema in databases:
            names += [(schema, t.name, t.description) for t in spark.catalog.listTables(schema) if not t.isTemporary]
    staged = {t.name: t.description for t in spark.catalog.listTables("staging")} if "staging" in databases else {}
    missing = [f"staging.{name}" for name in STAGING_READ if name not in staged]
    names += [("staging", name, staged[name]) for name in STAGING_READ if name in staged]
    if not any(schema == "marts" for schema, _, _ in names) or missing:
        raise KizunaError("Spark holds no marts" + (f" (nor {', '.join(missing)})" if missing else "")
                          + " after a successful dbt build: nothing to copy back into the warehouse file.")
    relations = []
    for schema, name, description in names:
        fields = spark.table(f"`{schema}`.`{name}`").schema.fields
        columns = [(f.name, duckdb_type_of_spark(f.dataType.simpleString(), f"{schema}.{name}.{f.name}"))
                   for f in fields]
        comments = {f.name: f.metadata["comment"] for f in fields if f.metadata.get("comment")}
        relations.append(_SparkRelation(schema, name, columns, description or None, comments))
    return relations


def _copy_back_spark(settings: Settings) -> CopyResult:
    """copy_back on Spark: each built relation written by Spark as Parquet, read by DuckDB in one transaction."""
    from kizuna.warehouse import connect

    started = time.perf_counter()
    assert settings.warehouse is not None
    spark = spark_session(settings)
    relations = _spark_relations(spark)
    rows = 0
    with tempfile.TemporaryDirectory(prefix="kizuna-copy-back-") as tmp:
        folders = {}
        for relation in relations:
            folder = Path(tmp) / f"{relation.schema}.{relation.name}"
            # Spark's TIMESTAMP is an instant: as a wall-clock time (UTC session) it is DuckDB's TIMESTAMP.
            select = ", ".join(f"cast(`{c}` as timestamp_ntz) as `{c}`" if t == "TIMESTAMP" else f"`{c}`"
                               for c, t in relation.columns)
            spark.sql(f"select {select} from `{relation.schema}`.`{relation.name}`").coalesce(1) \
                .write.mode("overwrite").parquet(folder.as_uri())
            folders[(relation.schema, relation.name)] = folder
        with connect(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds) as target:
            target.execute("begin transaction")
            try:
                _drop_gone(target, relations)  # type: ignore[arg-type]  (schema and name are all it reads)
                for relation in relations:
                    rows += _load_parquet(target, relation, folders[(relation.schema, relation.name)])
                target.execute("commit")
            except BaseException:
                target.execute("rollback")
                raise
    result = CopyResult(settings.engine, len(relations), rows, time.perf_counter() - started)
    log.info("copied back %d built tables (%s rows) from spark into the warehouse file in %.1f s",
             result.tables, f"{result.rows:,}", result.seconds)
    return result


def _load_parquet(con: duckdb.DuckDBPyConnection, relation: _SparkRelation, folder: Path) -> int:
    """Replace `schema.name` in the file with the Parquet folder's rows, in the given column types."""
    name = f"{_ident(relation.schema)}.{_ident(relation.name)}"
    con.execute(f"create schema if not exists {_ident(relation.schema)}")
    view = con.execute("select count(*) from duckdb_views() where database_name = current_database() "
                       "and schema_name = ? and view_name = ?", [relation.schema, relation.name]).fetchone()[0]
    if view:
        con.execute(f"drop view {name}")
    definition = ", ".join(f"{_ident(c)} {t}" for c, t in relation.columns)
    con.execute(f"create or replace table {name} ({definition})")
    select = ", ".join(f"cast({_ident(c)} as {t})" for c, t in relation.columns)
    con.execute(f"insert into {name} select {select} from read_parquet(?)", [str(folder / "*.parquet")])
    if relation.comment:
        con.execute(f"comment on table {name} is {_literal(relation.comment)}")
    for column, comment in relation.column_comments.items():
        con.execute(f"comment on column {name}.{_ident(column)} is {_literal(comment)}")
    return int(con.execute(f"select count(*) from {name}").fetchone()[0])

"""Engines (issue 21, docs/engines.md): the same dbt project on PostgreSQL as on the embedded DuckDB.

The loader, the raw-data gate, the ledger and the webhook store stay on DuckDB: they are the night's
intake and its own records, and must not depend on a server being up. Only dbt moves. With
`KIZUNA_ENGINE=postgres`, before every dbt build the runner copies the tables dbt reads (the schemas
`raw` and `predict` of the warehouse file) into the PostgreSQL database, replacing last night's copy,
the way a deployment loads a warehouse: the same loader, then a bulk `COPY` (DuckDB writes CSV, the
server reads it through `COPY ... FROM STDIN`; DuckDB's postgres extension is not used, it cannot be
installed without network). dbt then builds the marts in the database (profiles.yml, target `postgres`).

After a successful build, `copy_back` copies what dbt built there (marts, intermediate, reference, and the
staging views the report reads) back into the warehouse file in one transaction, in DuckDB's column types:
the predictions, the gates, campaign selection, the report and the published warehouse read the file.

    engines.copy_sources(settings)      # -> CopyResult (tables, rows, seconds); a no-op on duckdb
    engines.copy_back(settings)         # -> CopyResult after a build on the engine; a no-op on duckdb
    engines.dbt_target(settings)        # -> "duckdb" | "postgres" (dbt's --target)
    engines.dbt_environment(settings)   # -> the variables profiles.yml reads for that target
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


def dbt_environment(settings: Settings) -> dict[str, str]:
    """The environment variables profiles.yml reads for the configured engine's target."""
    environment = {"KIZUNA_ENGINE": settings.engine}
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

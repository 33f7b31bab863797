"""Engines (issue 21, docs/engines.md): the same dbt project on PostgreSQL as on the embedded DuckDB.

The loader, the raw-data gate, the ledger and the webhook store stay on DuckDB: they are the night's
intake and its own records, and must not depend on a server being up. Only dbt moves. With
`KIZUNA_ENGINE=postgres`, before every dbt build the runner copies the tables dbt reads (the schemas
`raw` and `predict` of the warehouse file) into the PostgreSQL database, replacing last night's copy,
the way a deployment loads a warehouse: the same loader, then a bulk `COPY` (DuckDB writes CSV, the
server reads it through `COPY ... FROM STDIN`; DuckDB's postgres extension is not used, it cannot be
installed without network). dbt then builds the marts in the database (profiles.yml, target `postgres`).

    engines.copy_sources(settings)      # -> CopyResult (tables, rows, seconds); a no-op on duckdb
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

"""The send ledger: every message is recorded here, under a unique key, before delivery.

The key is (scenario, step, customer, anchor date): a customer can receive a given
step of a given scenario once per anchor event, whatever happens to the process.
The ledger lives in its own DuckDB file (settings.ledger), attached to the warehouse
connection as `ledger`, so that rebuilding the warehouse can never lose it.

Statuses: `planned` (recorded, not yet handed to a channel), `sending` (handed to a
channel, outcome not yet recorded), `sent`, `failed` (with the reason), `unknown`
(the process died while a non-idempotent provider may have accepted it: a person
must look before anything is resent).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

STATUSES = ("planned", "sending", "sent", "failed", "unknown")

_DDL = """
create table if not exists ledger.sends (
    send_id varchar primary key,
    scenario_id varchar not null,
    step_id varchar not null,
    customer_id varchar not null,
    anchor_date date not null,
    channel varchar not null,
    due_date date not null,
    run_date date not null,
    status varchar not null,
    detail varchar,
    provider_message_id varchar,
    planned_at timestamp not null,
    updated_at timestamp not null,
    unique (scenario_id, step_id, customer_id, anchor_date)
)
"""


def attach(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Attach the ledger file as schema `ledger` (creating it) unless it already is."""
    attached = {row[0] for row in con.execute("select database_name from duckdb_databases()").fetchall()}
    if "ledger" not in attached:
        path.parent.mkdir(parents=True, exist_ok=True)
        con.execute(f"attach '{path.as_posix()}' as ledger")
    con.execute(_DDL)


def send_id_sql(scenario: str, step: str, customer: str, anchor: str) -> str:
    """SQL for the deterministic send id of a ledger key: opaque, no personal data."""
    return f"substr(md5(concat_ws('|', {scenario}, {step}, {customer}, cast({anchor} as varchar))), 1, 24)"


def mark(con: duckdb.DuckDBPyConnection, send_ids: list[str], status: str, detail: str = "") -> None:
    con.execute(
        "update ledger.sends set status = ?, detail = ?, updated_at = now()::timestamp "
        "where send_id in (select unnest(?::varchar[]))",
        [status, detail, send_ids],
    )


def record_outcomes(con: duckdb.DuckDBPyConnection, outcomes: list[tuple[str, str, str, str | None]]) -> None:
    """Record (send_id, status, detail, provider_message_id) outcomes in one statement."""
    if not outcomes:
        return
    frame = pd.DataFrame(outcomes, columns=["send_id", "status", "detail", "pmid"])
    con.register("_outcomes", frame)
    con.execute(
        """
        update ledger.sends s
        set status = o.status, detail = o.detail, provider_message_id = o.pmid, updated_at = now()::timestamp
        from _outcomes o
        where s.send_id = o.send_id
        """
    )
    con.unregister("_outcomes")

"""The send ledger: every message is recorded here, under a unique key, before delivery.

The key is (scenario, step, customer, anchor date): a customer can receive a given
step of a given scenario once per anchor event, whatever happens to the process.
The ledger lives in its own DuckDB file (settings.ledger), attached to the warehouse
connection as `ledger`, so that rebuilding the warehouse can never lose it.

Statuses:
- `planned`: recorded, not yet handed to a channel;
- `sending`: handed to a channel, outcome not yet recorded;
- `sent`, `failed` (with the reason in `detail`);
- `unknown`: the process died while a non-idempotent provider may have accepted it:
  a person must look before anything is resent (never resent automatically);
- `skipped` (detail: `missed`, `erased`, `suppressed`, `no_consent`, `no_address`,
  `priority:<winning scenario>`), `capped` (frequency cap), `held_out` (control group).

`ledger.suppressions` is the do-not-contact list (unsubscribes, complaints, bounces):
a row with a null channel suppresses every channel. `ledger.runs` remembers which
nights ran, so that steps that fell due while no run happened are recorded as missed.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

STATUSES = ("planned", "sending", "sent", "failed", "unknown", "skipped", "capped", "held_out")
#: Statuses that count as a contact for the frequency cap.
CONTACT_STATUSES = ("planned", "sending", "sent", "unknown")

_DDL = [
    """
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
    """,
    """
    create table if not exists ledger.suppressions (
        customer_id varchar not null,
        channel varchar,
        reason varchar not null,
        created_at timestamp not null default now()::timestamp
    )
    """,
    """
    create table if not exists ledger.runs (
        run_date date primary key,
        started_at timestamp not null
    )
    """,
]


def attach(con: duckdb.DuckDBPyConnection, path: Path, read_only: bool = False) -> None:
    """Attach the ledger file as schema `ledger` (creating it) unless it already is.

    Read-only (preview): an existing file is attached read-only; a missing one is not
    created (the selection then reads an empty ledger, see `is_attached`).
    """
    attached = {row[0] for row in con.execute("select database_name from duckdb_databases()").fetchall()}
    if "ledger" in attached:
        if not read_only:
            for ddl in _DDL:
                con.execute(ddl)
        return
    if read_only:
        if path.exists():
            con.execute(f"attach '{path.as_posix()}' as ledger (read_only)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"attach '{path.as_posix()}' as ledger")
    for ddl in _DDL:
        con.execute(ddl)


def is_attached(con: duckdb.DuckDBPyConnection) -> bool:
    return con.execute("select count(*) from duckdb_databases() where database_name = 'ledger'").fetchone()[0] > 0


#: Stand-ins for the ledger's tables when there is none yet (a preview before the first run).
EMPTY = {
    "ledger.sends": "(select cast(null as varchar) as scenario_id, cast(null as varchar) as step_id, "
                    "cast(null as varchar) as customer_id, cast(null as date) as anchor_date, "
                    "cast(null as varchar) as channel, cast(null as varchar) as status, cast(null as date) as run_date "
                    "where false)",
    "ledger.suppressions": "(select cast(null as varchar) as customer_id, cast(null as varchar) as channel where false)",
    "ledger.runs": "(select cast(null as date) as run_date where false)",
}


def send_id_sql(scenario: str, step: str, customer: str, anchor: str) -> str:
    """SQL for the deterministic send id of a ledger key: opaque, no personal data."""
    return f"substr(md5(concat_ws('|', {scenario}, {step}, {customer}, cast({anchor} as varchar))), 1, 24)"


def suppress(con: duckdb.DuckDBPyConnection, customer_id: str, reason: str, channel: str | None = None) -> None:
    """Add a customer to the do-not-contact list (one channel, or all when channel is None)."""
    con.execute("insert into ledger.suppressions (customer_id, channel, reason) values (?, ?, ?)",
                [customer_id, channel, reason])


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
    ids, statuses, details, pmids = (list(col) for col in zip(*outcomes))
    con.execute(
        """
        update ledger.sends s
        set status = o.status, detail = o.detail, provider_message_id = o.pmid, updated_at = now()::timestamp
        from (select unnest($ids::varchar[]) as send_id, unnest($statuses::varchar[]) as status,
                     unnest($details::varchar[]) as detail, unnest($pmids::varchar[]) as pmid) o
        where s.send_id = o.send_id
        """,
        {"ids": ids, "statuses": statuses, "details": details, "pmids": pmids},
    )

"""The send ledger: every message is recorded here, under a unique key, before delivery.

The key is (scenario, step, customer, anchor date): a customer can receive a given
step of a given scenario once per anchor event, whatever happens to the process.
The ledger lives in its own DuckDB file (settings.ledger), attached to the warehouse
connection as `ledger`, so that rebuilding the warehouse can never lose it.

Statuses:
- `planned`: recorded, not yet handed to a channel;
- `sending`: handed to the provider in a request whose outcome is not recorded yet
  (`handed_over_at` says when, `attempts` how many times);
- `sent`, `failed` (with the reason in `detail`). A failed message is planned again by
  later runs until it has failed `send_max_failures` times (`failures`), unless `retry`
  is false (a person marked it not delivered; the provider dropped it);
- `unknown`: the provider may or may not have it (the process died mid-request, or the
  provider did not answer). Never resent blindly: it is reconciled from the provider's
  own record (SendGrid's events, `campaigns.reconcile`), handed over again only where
  the provider deduplicates (LINE's retry key, within its life; local files), or
  resolved by a person (`kizuna sends unknown`);
- `skipped` (detail: `missed`, `erased`, `suppressed`, `no_consent`, `no_address`,
  `priority:<winning scenario>`), `capped` (frequency cap), `held_out` (control group).

`ledger.suppressions` is the do-not-contact list (unsubscribes, complaints, bounces):
a row with a null channel suppresses every channel. `ledger.runs` remembers which
nights ran, so that steps that fell due while no run happened are recorded as missed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
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
    # Delivery bookkeeping, added after the first release: ALTER so that existing ledgers gain them.
    "alter table ledger.sends add column if not exists handed_over_at timestamp",
    "alter table ledger.sends add column if not exists attempts integer default 0",
    "alter table ledger.sends add column if not exists failures integer default 0",
    "alter table ledger.sends add column if not exists retry boolean default true",
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


def hand_over(con: duckdb.DuckDBPyConnection, send_ids: Sequence[str], at: datetime) -> None:
    """Mark `send_ids` `sending`: they go to the provider in the next request."""
    con.execute(
        "update ledger.sends set status = 'sending', handed_over_at = $at, attempts = coalesce(attempts, 0) + 1, "
        "updated_at = now()::timestamp where send_id in (select unnest($ids::varchar[]))",
        {"at": at, "ids": list(send_ids)},
    )


def plan_retries(con: duckdb.DuckDBPyConnection, max_failures: int, oldest_due: date) -> int:
    """Plan again the `failed` messages that may be retried (fewer than `max_failures` failures, due
    on or after `oldest_due`, not barred by a person); returns how many."""
    return con.execute(
        """
        update ledger.sends
        set status = 'planned', updated_at = now()::timestamp,
            detail = 'retry ' || (coalesce(failures, 1) + 1) || ' of ' || $max || ' after: ' || coalesce(detail, '?')
        where status = 'failed' and coalesce(retry, true) and coalesce(failures, 1) < $max and due_date >= $oldest
        """,
        {"max": max_failures, "oldest": oldest_due},
    ).fetchone()[0]


def needing_attention(con: duckdb.DuckDBPyConnection, max_failures: int) -> Counter:
    """(channel, state) -> messages a person should know about, from every night: `unknown`, and
    `failed` split into `failed, will retry` and `failed, gave up`."""
    rows = con.execute(
        """
        select channel, case when status = 'unknown' then 'unknown'
                             when coalesce(retry, true) and coalesce(failures, 1) < ? then 'failed, will retry'
                             else 'failed, gave up' end, count(*)
        from ledger.sends where status in ('unknown', 'failed') group by all
        """,
        [max_failures],
    ).fetchall()
    return Counter({(channel, state): n for channel, state, n in rows})


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
        set status = o.status, provider_message_id = o.pmid, updated_at = now()::timestamp,
            failures = coalesce(s.failures, 0) + case when o.status = 'failed' then 1 else 0 end,
            -- a retried message keeps the story of its earlier failures
            detail = case when coalesce(s.failures, 0) > 0 and s.detail is not null
                          then o.detail || ' (after: ' || s.detail || ')' else o.detail end
        from (select unnest($ids::varchar[]) as send_id, unnest($statuses::varchar[]) as status,
                     unnest($details::varchar[]) as detail, unnest($pmids::varchar[]) as pmid) o
        where s.send_id = o.send_id
        """,
        {"ids": ids, "statuses": statuses, "details": details, "pmids": pmids},
    )


def open_file(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the ledger file alone (the `kizuna sends` commands), with its schema as `ledger`."""
    from kizuna.errors import KizunaError

    if read_only and not path.exists():
        raise KizunaError(f"No send ledger at {path}: nothing was sent yet.")
    con = duckdb.connect(":memory:")
    try:
        attach(con, path, read_only=read_only)
    except duckdb.IOException as exc:
        con.close()
        raise KizunaError(f"The send ledger {path} is in use by a running nightly flow; try again when it has "
                          f"finished ({str(exc).splitlines()[0]}).") from None
    return con


def rows_in(con: duckdb.DuckDBPyConnection, status: str, limit: int | None = None) -> list[dict]:
    """Ledger rows in `status` (`unknown`, `failed`), oldest hand-over first."""
    rows = con.execute(
        f"""select send_id, channel, scenario_id, step_id, customer_id, run_date, handed_over_at, attempts,
                   failures, retry, detail
            from ledger.sends where status = ? order by handed_over_at nulls first, send_id
            {f'limit {int(limit)}' if limit else ''}""",
        [status],
    ).fetchall()
    names = [d[0] for d in con.description]
    return [dict(zip(names, r)) for r in rows]


def resolve_by_hand(con: duckdb.DuckDBPyConnection, send_ids: Sequence[str], delivered: bool, by: str) -> list[str]:
    """A person's verdict on `unknown` messages: delivered → `sent`, not delivered → `failed` without
    retry (never resent automatically). Returns the send ids that were `unknown` and are now decided."""
    verdict = "delivered" if delivered else "not delivered"
    rows = con.execute(
        """
        update ledger.sends
        set status = $status, retry = case when $delivered then retry else false end,
            detail = 'marked ' || $verdict || ' by ' || $by || ' on ' || strftime(now(), '%Y-%m-%d %H:%M')
                     || '; was: ' || coalesce(detail, ''),
            updated_at = now()::timestamp
        where status = 'unknown' and send_id in (select unnest($ids::varchar[]))
        returning send_id
        """,
        {"status": "sent" if delivered else "failed", "delivered": delivered, "verdict": verdict, "by": by,
         "ids": list(send_ids)},
    ).fetchall()
    return [r[0] for r in rows]

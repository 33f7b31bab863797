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
  `no_parcel` (an insert with no unshipped order), `condition:<key>` (a step's `only_if`
  not met), `priority:<winning scenario>`), `capped` (frequency cap), `held_out` (control group).
- `held` (a person held the scenario or step in the console) and `awaiting_approval` (a DM or call
  list not yet approved, KIZUNA_REQUIRE_APPROVAL): not delivered; back to `planned` when the hold ends
  or the list is approved (kizuna/console/nightly.py; who and when in `ledger.console_actions`).

`variant` is the A/B variant of the step the customer was assigned (docs/ab-tests.md), null when the
step has none; the history stays when a marketer promotes a winner and removes the variants.

`ledger.coupons` holds the unique coupon codes (campaigns/coupons.py): one per send of a step
whose offer is `unique`, with its expiry and whether the shop has it (`state`: `issued`,
`created` in Shopify, `failed` with the reason in `detail`).

`ledger.suppressions` is the do-not-contact list (unsubscribes, complaints, bounces):
a row with a null channel suppresses every channel. `ledger.runs` remembers which
nights ran, so that steps that fell due while no run happened are recorded as missed.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Callable

import duckdb

from connectors.channels.base import DeliveryJournal, Outcome
from kizuna.errors import KizunaError

STATUSES = ("planned", "sending", "sent", "failed", "unknown", "skipped", "capped", "held_out",
            # the marketers' console (kizuna/console/nightly.py): not delivered while they last
            "held", "awaiting_approval")
#: Statuses that count as a contact for the frequency cap. A held message or a list awaiting approval keeps its
#: place: released or approved later, it is sent, and must not take a customer over the cap then.
CONTACT_STATUSES = ("planned", "sending", "sent", "unknown", "held", "awaiting_approval")

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
    # A/B tests (issue 17, part 2): the variant of the step this send carries (null: the step has none).
    "alter table ledger.sends add column if not exists variant varchar",
    """
    create table if not exists ledger.suppressions (
        customer_id varchar not null,
        channel varchar,
        reason varchar not null,
        created_at timestamp not null default now()::timestamp
    )
    """,
    """
    create table if not exists ledger.journal_folds (
        journal_id varchar primary key,
        applied_bytes bigint not null,
        folded_at timestamp not null
    )
    """,
    # Unique single-use coupon codes (campaigns/coupons.py): one per send of a step whose offer is
    # `unique`, assigned when the send is planned and never changed, so a retried or re-run send carries
    # the same code. The primary key on the code is what guarantees two customers never share one.
    """
    create table if not exists ledger.coupons (
        code varchar primary key,
        send_id varchar not null unique,
        scenario_id varchar not null,
        step_id varchar not null,
        customer_id varchar not null,
        offer_type varchar not null,
        offer_value double,
        issued_on date not null,
        expires_on date,
        state varchar not null,
        detail varchar,
        provider_id varchar,
        created_at timestamp not null,
        updated_at timestamp not null
    )
    """,
    """
    create table if not exists ledger.runs (
        run_date date primary key,
        started_at timestamp not null
    )
    """,
]


#: How long the nightly run waits for a reader of the ledger (the console copying it, a preview) to let go.
ATTACH_WAIT_SECONDS = 60.0


def _attach_waiting(con: duckdb.DuckDBPyConnection, path: Path, wait_seconds: float) -> None:
    """Attach the ledger for writing; while another process holds the file (DuckDB: one writer, or readers
    only), wait for it, polling, then stop with a message naming the file."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            con.execute(f"attach '{path.as_posix()}' as ledger")
            return
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                raise KizunaError(f"The send ledger {path} stayed in use by another process for {wait_seconds:.0f} s "
                                  "(a console or a preview reading it, or another run). Close it and run again: "
                                  "nothing was sent.") from None
            time.sleep(0.2)


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
            fold_journal(con, path)
        return
    if read_only:
        if path.exists():
            con.execute(f"attach '{path.as_posix()}' as ledger (read_only)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    _attach_waiting(con, path, ATTACH_WAIT_SECONDS)
    for ddl in _DDL:
        con.execute(ddl)
    fold_journal(con, path)  # deliveries journalled by a run that died: into the ledger before anyone reads it


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


def journal_path(ledger_path: Path) -> Path:
    return Path(ledger_path).with_name(Path(ledger_path).name + ".journal")


class Journal(DeliveryJournal):
    """The write-ahead journal of deliveries: hand-overs and outcomes, appended as they happen.

    Marking a few hundred rows of a large DuckDB table costs a scan of the table (0.35 s per
    request at 1M ledger rows): far too slow for each provider request. So a channel's
    `handing_over` and `settled` append one JSON line each to `<ledger>.journal` (an
    `O_APPEND` write, on disk when it returns: a killed process loses nothing it wrote), and
    `fold_journal` applies the whole journal to `ledger.sends` in one statement after each
    batch, and when the ledger is next attached after a crash. A hand-over without an outcome
    folds to `sending`.

    The first line names the journal (a random id); the ledger records how far each journal
    was applied (`ledger.journal_folds`) in the same transaction as the update, so a fold
    interrupted before the file is removed is never applied twice.
    """

    def __init__(self, path: Path, now: Callable[[], datetime]) -> None:
        self.path = path
        self.now = now
        self.lock = threading.Lock()
        self.handed: set[str] = set()
        self.outcomes: dict[str, Outcome] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists() or path.stat().st_size == 0
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if fresh:
            self._append({"journal": uuid.uuid4().hex})

    def _append(self, entry: dict) -> None:
        data = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        with self.lock:
            size = os.fstat(self.fd).st_size
            if os.write(self.fd, data) != len(data):  # a full disk may take part of it
                os.ftruncate(self.fd, size)
                raise OSError(errno.ENOSPC, f"no space left for the send ledger's journal {self.path}")

    def handing_over(self, send_ids: Sequence[str]) -> None:
        if send_ids:
            self._append({"at": self.now().isoformat(), "h": list(send_ids)})
            self.handed.update(send_ids)

    def settled(self, outcomes: Sequence[Outcome]) -> None:
        if outcomes:
            self._append({"at": self.now().isoformat(),
                          "o": [[o.send_id, o.status, o.detail, o.provider_message_id] for o in outcomes]})
            self.outcomes.update((o.send_id, o) for o in outcomes)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _read_journal(path: Path, skip_bytes: int) -> tuple[str | None, list[dict], int]:
    """(journal id, entries after `skip_bytes`, bytes read). A torn last line (a kill mid-write) is ignored."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # whole lines only
    lines = data[:end].split(b"\n")
    try:
        journal_id = json.loads(lines[0]).get("journal") if lines and lines[0] else None
    except ValueError:
        journal_id = None
    entries, offset = [], 0
    for line in lines:
        start, offset = offset, offset + len(line) + 1
        if not line or start < skip_bytes:
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return journal_id, entries, end


def fold_journal(con: duckdb.DuckDBPyConnection, ledger_path: Path) -> int:
    """Apply the delivery journal to `ledger.sends` in one statement and remove it; returns the rows changed."""
    path = journal_path(ledger_path)
    if not path.exists():
        return 0
    probe_id, _, _ = _read_journal(path, 1 << 62)
    done = con.execute("select applied_bytes from ledger.journal_folds where journal_id = ?",
                       [probe_id]).fetchone() if probe_id else None
    journal_id, entries, size = _read_journal(path, done[0] if done else 0)
    per_id: dict[str, dict] = {}
    for entry in entries:
        if "h" in entry:
            for send_id in entry["h"]:
                row = per_id.setdefault(send_id, {"hands": 0, "fails": 0})
                row.update(hands=row["hands"] + 1, handed_at=entry["at"], status=None, detail=None, pmid=None)
        for send_id, status, detail, pmid in entry.get("o", ()):
            row = per_id.setdefault(send_id, {"hands": 0, "fails": 0, "handed_at": None})
            row.update(status=status, detail=detail, pmid=pmid, fails=row["fails"] + (status == "failed"))
    changed = 0
    con.execute("begin")
    try:
        if per_id:
            import pandas as pd

            frame = pd.DataFrame([{"send_id": k, "hands": v["hands"], "fails": v["fails"],
                                   "handed_at": v.get("handed_at"), "status": v.get("status"),
                                   "detail": v.get("detail"), "pmid": v.get("pmid")} for k, v in per_id.items()])
            frame["handed_at"] = pd.to_datetime(frame["handed_at"])
            con.register("journal_rows", frame)
            changed = con.execute("""
                update ledger.sends s
                set status = coalesce(j.status, 'sending'),
                    handed_over_at = coalesce(j.handed_at, s.handed_over_at),
                    attempts = coalesce(s.attempts, 0) + j.hands,
                    failures = coalesce(s.failures, 0) + j.fails,
                    provider_message_id = case when j.status is null then s.provider_message_id else j.pmid end,
                    -- a retried message keeps the story of its earlier failures
                    detail = case when j.status is null then s.detail
                                  when coalesce(s.failures, 0) > 0 and s.detail is not null
                                  then j.detail || ' (after: ' || s.detail || ')' else j.detail end,
                    updated_at = now()::timestamp
                from journal_rows j where s.send_id = j.send_id
            """).fetchone()[0]
            con.unregister("journal_rows")
        if journal_id:
            con.execute("insert or replace into ledger.journal_folds values (?, ?, now()::timestamp)",
                        [journal_id, size])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    path.unlink()
    return changed


def open_file(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the ledger file alone (the `kizuna sends` commands), with its schema as `ledger`."""
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

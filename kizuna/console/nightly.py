"""The nightly run honours what people did in the console (issue 22; docs/console.md).

The console writes only its own SQLite store (kizuna/console/store.py). The campaign run calls

1. `fold_console_actions(con, settings, run_date)` before the night's selection: every new action is
   copied once into `ledger.console_actions` (who, when: the person and the time in the console), a
   person's verdict on an `unknown` send is recorded on the send (`sent`, or `failed` never retried:
   nothing is resent automatically), and rows waiting on a hold that has ended or on an approval that
   was given go back to `planned` (the usual rules then apply: the catch-up window, tonight's consent
   and suppressions);
2. `hold_back(con, fold, settings, run_date)` right after the selection, before anything is delivered:
   planned rows of a held scenario or step become `held`, and planned rows of a channel that needs
   approval (KIZUNA_REQUIRE_APPROVAL=dm,phone) whose night's list is not approved become
   `awaiting_approval`. Neither status is delivered; the ledger key guarantees a row is written once.

The erasure stage calls `fold_erasure_requests(settings)` before `apply_erasures`: a request made in the
console sets the customer's `deleted_at` in `raw.customers`, as if the shop's export had, so that every
erasure rule (register, purge, block look-alikes) follows (kizuna/privacy/erasure.py).

Nothing here imports FastAPI: the nightly run does not need the web application.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb

from campaigns import ledger
from kizuna.config import Settings
from kizuna.console import store
from kizuna.errors import KizunaError

log = logging.getLogger("kizuna.console")

#: Ledger statuses the console introduces: recorded, never delivered while they last.
HELD, AWAITING = "held", "awaiting_approval"

LEDGER_DDL = """
    create table if not exists ledger.console_actions (
        uid varchar primary key,       -- the action's id in the console's store (a release: <hold uid>:release)
        kind varchar not null,         -- hold, release, approval, decision, erasure_request
        scenario_id varchar,
        step_id varchar,
        night date,                    -- a hold for one night; the night whose list was approved
        channel varchar,
        send_id varchar,
        customer_id varchar,
        verdict varchar,               -- decision: delivered / not delivered
        by_user varchar not null,      -- who, in the console
        acted_at timestamp not null,   -- when, in the console (UTC)
        folded_at timestamp not null,  -- when the nightly run took it in
        outcome varchar                -- what the run did with it
    )
"""


@dataclass
class ConsoleActions:
    """Everything in the console's store the nightly run needs."""

    holds: list[store.Hold] = field(default_factory=list)
    approvals: list[dict] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)


@dataclass
class ConsoleFold:
    """What one night did with the console's actions."""

    run_date: date
    actions: ConsoleActions = field(default_factory=ConsoleActions)
    folded: int = 0  # actions newly copied into ledger.console_actions
    decided: int = 0  # unknown sends a person's verdict was recorded on tonight
    released: int = 0  # rows back to planned (a hold ended, an approval was given)
    held: Counter = field(default_factory=Counter)  # (scenario, step, channel) -> rows held tonight
    awaiting: Counter = field(default_factory=Counter)  # (scenario, step, channel) -> rows waiting for approval

    def active_holds(self) -> list[store.Hold]:
        return [h for h in self.actions.holds if h.applies(self.run_date)]

    def summary(self) -> str:
        return (f"console: {self.folded} new action(s); {self.decided} unknown send(s) decided by a person; "
                f"{sum(self.held.values())} row(s) held; {sum(self.awaiting.values())} row(s) awaiting approval; "
                f"{self.released} released")


def read_actions(settings: Settings) -> ConsoleActions:
    """The console's holds, approvals and decisions. An unreadable store stops the campaigns: sending on
    would ignore a hold a person set."""
    path = Path(settings.console_store)  # type: ignore[arg-type]
    if not path.exists():
        return ConsoleActions()
    try:
        con = store.connect(path)
        try:
            return ConsoleActions(store.holds(con), store.approvals(con), store.decisions(con))
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise KizunaError(
            f"コンソールの記録を読めないため配信しません: {path} ({exc}). (The console's store cannot be read, so "
            "nothing is sent: a hold set there would be ignored. Check the file and its permissions.)") from None


def _stamp(text: str | None) -> datetime | None:
    """A store time (UTC ISO) as a naive UTC timestamp, as the ledger keeps times."""
    return datetime.fromisoformat(text).replace(tzinfo=None) if text else None


def _record(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> set[str]:
    """Insert the actions the ledger does not hold yet; returns the uids inserted."""
    known = {r[0] for r in con.execute("select uid from ledger.console_actions where uid in "
                                       "(select unnest(?::varchar[]))", [[r["uid"] for r in rows]]).fetchall()}
    new = [r for r in rows if r["uid"] not in known]
    columns = ("uid", "kind", "scenario_id", "step_id", "night", "channel", "send_id", "customer_id", "verdict",
               "by_user", "acted_at", "outcome")
    if not new:
        return set()
    types = {"night": "date", "acted_at": "timestamp"}
    # one statement over parallel lists (DuckDB's executemany runs one statement per row: slow)
    lists = ", ".join(f"unnest(${c}::{types.get(c, 'varchar')}[]) as {c}" for c in columns)
    con.execute(f"insert into ledger.console_actions ({', '.join(columns)}, folded_at) "
                f"select {', '.join(columns)}, now()::timestamp from (select {lists})",
                {c: [r.get(c) for r in new] for c in columns})
    return {r["uid"] for r in new}


def _action_rows(actions: ConsoleActions) -> list[dict]:
    rows = []
    for h in actions.holds:
        rows.append({"uid": h.uid, "kind": "hold", "scenario_id": h.scenario_id, "step_id": h.step_id,
                     "night": h.night, "by_user": h.created_by, "acted_at": _stamp(h.created_at)})
        if h.released_at:
            rows.append({"uid": h.uid + ":release", "kind": "release", "scenario_id": h.scenario_id,
                         "step_id": h.step_id, "night": h.night, "by_user": h.released_by,
                         "acted_at": _stamp(h.released_at)})
    for a in actions.approvals:
        rows.append({"uid": a["uid"], "kind": "approval", "channel": a["channel"],
                     "night": date.fromisoformat(a["night"]), "by_user": a["approved_by"],
                     "acted_at": _stamp(a["approved_at"]), "outcome": f"{a['rows_seen']} row(s) seen"
                     if a["rows_seen"] is not None else None})
    return rows


def _apply_decisions(con: duckdb.DuckDBPyConnection, decisions: list[dict]) -> tuple[int, list[dict]]:
    """Record each verdict on its send while the send is still `unknown`: delivered → `sent`, not delivered →
    `failed` with retry off (never resent). One statement for all of them (one scan of the ledger, however
    many verdicts). Returns (sends decided, ledger action rows of the decisions)."""
    if not decisions:
        return 0, []
    con.execute("create or replace temp table _kz_console_decisions as select unnest($ids::varchar[]) as send_id, "
                "unnest($delivered::boolean[]) as delivered, unnest($by::varchar[]) as by_user, "
                "unnest($at::varchar[]) as decided_at",
                {"ids": [d["send_id"] for d in decisions], "delivered": [d["delivered"] for d in decisions],
                 "by": [d["decided_by"] for d in decisions], "at": [d["decided_at"] for d in decisions]})
    try:
        changed = {r[0] for r in con.execute(
            """
            update ledger.sends s
            set status = case when d.delivered then 'sent' else 'failed' end,
                retry = case when d.delivered then s.retry else false end,
                detail = 'marked ' || case when d.delivered then 'delivered' else 'not delivered' end || ' by '
                         || d.by_user || ' on ' || d.decided_at || ' (console); was: ' || coalesce(s.detail, ''),
                updated_at = now()::timestamp
            from _kz_console_decisions d
            where s.send_id = d.send_id and s.status = 'unknown'
            returning s.send_id
            """).fetchall()}
    finally:
        con.execute("drop table if exists _kz_console_decisions")
    rows = [{"uid": d["uid"], "kind": "decision", "send_id": d["send_id"],
             "verdict": "delivered" if d["delivered"] else "not delivered", "by_user": d["decided_by"],
             "acted_at": _stamp(d["decided_at"]),
             "outcome": "recorded on the send" if d["send_id"] in changed else
             "the send was no longer unknown: not changed"} for d in decisions]
    return len(changed), rows


def _holds_table(holds: list[store.Hold]) -> tuple[list[str], list[str]]:
    """Parallel lists (scenario, step or `*`) of holds, for `unnest` in SQL."""
    return [h.scenario_id for h in holds], [h.step_id or "*" for h in holds]


_COVERED = ("exists (select 1 from (select unnest($h_scenarios::varchar[]) as sc, unnest($h_steps::varchar[]) as st) h "
            "where h.sc = s.scenario_id and (h.st = '*' or h.st = s.step_id))")
_APPROVED = ("exists (select 1 from (select unnest($a_channels::varchar[]) as ch, unnest($a_nights::date[]) as night) a "
             "where a.ch = s.channel and a.night = s.run_date)")


def _approved(actions: ConsoleActions) -> dict:
    return {"a_channels": [a["channel"] for a in actions.approvals],
            "a_nights": [date.fromisoformat(a["night"]) for a in actions.approvals]}


def _release(con: duckdb.DuckDBPyConnection, fold: ConsoleFold, settings: Settings) -> int:
    """Rows no longer held (the hold ended or was released) or no longer awaiting (approved, or the channel no
    longer needs approval) go back to `planned`, before tonight's selection and its checks."""
    scenarios, steps = _holds_table(fold.active_holds())
    params = {"h_scenarios": scenarios, "h_steps": steps, **_approved(fold.actions),
              "needs": list(settings.approval_channels)}
    return con.execute(
        f"""
        update ledger.sends s
        set status = 'planned', detail = 'released (was: ' || coalesce(detail, '') || ')', updated_at = now()::timestamp
        where (s.status = '{HELD}' and not {_COVERED})
           or (s.status = '{AWAITING}' and (not list_contains($needs::varchar[], s.channel) or {_APPROVED}))
        """, params).fetchone()[0]


def fold_console_actions(con: duckdb.DuckDBPyConnection, settings: Settings, run_date: date) -> ConsoleFold:
    """Before tonight's selection: copy the console's new actions into the ledger and apply verdicts and
    releases (see the module docstring). Needs the ledger attached."""
    fold = ConsoleFold(run_date, read_actions(settings))
    con.execute(LEDGER_DDL)
    decided, decision_rows = _apply_decisions(con, fold.actions.decisions)
    fold.decided = decided
    fold.folded = len(_record(con, _action_rows(fold.actions) + decision_rows))
    fold.released = _release(con, fold, settings)
    return fold


def hold_back(con: duckdb.DuckDBPyConnection, fold: ConsoleFold, settings: Settings) -> ConsoleFold:
    """After tonight's selection, before delivery: planned rows of held scenarios/steps → `held`; planned rows
    of channels needing approval whose night is not approved → `awaiting_approval` (counted in `fold`)."""
    for hold in fold.active_holds():
        when = f"the night of {hold.night}" if hold.night else "until released"
        rows = con.execute(
            f"""
            update ledger.sends s set status = '{HELD}', updated_at = now()::timestamp,
                detail = 'held in the console by ' || $by || ' on ' || $at || ' (' || $when || ')'
            where s.status = 'planned' and s.scenario_id = $scenario and ($step is null or s.step_id = $step)
            returning scenario_id, step_id, channel
            """, {"by": hold.created_by, "at": hold.created_at, "when": when, "scenario": hold.scenario_id,
                  "step": hold.step_id}).fetchall()
        fold.held.update(rows)
    if settings.approval_channels:
        rows = con.execute(
            f"""
            update ledger.sends s set status = '{AWAITING}', updated_at = now()::timestamp,
                detail = 'awaiting approval of the ' || s.channel || ' list of ' || s.run_date || ' in the console'
            where s.status = 'planned' and list_contains($needs::varchar[], s.channel) and not {_APPROVED}
            returning scenario_id, step_id, channel
            """, {"needs": list(settings.approval_channels), **_approved(fold.actions)}).fetchall()
        fold.awaiting.update(rows)
    if fold.folded or fold.decided or fold.held or fold.awaiting or fold.released:
        log.info("%s", fold.summary())
    return fold


# ---- erasure requests ----------------------------------------------------------------------------

def fold_erasure_requests(settings: Settings) -> int:
    """Before the nightly erasure: each console request sets `raw.customers.deleted_at` (when not set yet) and
    is recorded in `ledger.console_actions`; `apply_erasures` then registers, purges and blocks as for a
    request in the shop's export. Returns how many customers were newly marked. The caller must not hold
    the warehouse open."""
    path = Path(settings.console_store)  # type: ignore[arg-type]
    if not path.exists() or not Path(settings.warehouse).exists():  # type: ignore[arg-type]
        return 0
    try:
        sq = store.connect(path)
        try:
            requests = store.erasure_requests(sq)
        finally:
            sq.close()
    except sqlite3.Error as exc:  # a person asked to be erased: never let that pass silently
        raise KizunaError(f"コンソールの削除依頼を読めません: {path} ({exc}). (The console's erasure requests cannot "
                          "be read; check the file and its permissions.)") from None
    if not requests:
        return 0
    from kizuna.warehouse import connect

    con = connect(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds)  # type: ignore[arg-type]
    try:
        ledger.attach(con, settings.ledger)  # type: ignore[arg-type]
        con.execute(LEDGER_DDL)
        has_customers = con.execute("select count(*) from duckdb_tables() where database_name = current_database() "
                                    "and schema_name = 'raw' and table_name = 'customers'").fetchone()[0] > 0
        columns = {r[0] for r in con.execute(
            "select column_name from duckdb_columns() where database_name = current_database() "
            "and schema_name = 'raw' and table_name = 'customers'").fetchall()}
        marked: set[str] = set()
        if has_customers:
            con.execute("create or replace temp table _kz_console_erasures as select unnest($ids::varchar[]) as "
                        "customer_id, unnest($at::timestamp[]) as requested_at",
                        {"ids": [r["customer_id"] for r in requests],
                         "at": [_stamp(r["requested_at"]) for r in requests]})
            # `_loaded_at` (UTC, as the loader writes it) moves past every row's, so that the erasure's incremental
            # check of raw.customers (a watermark on it) sees the changed row
            bump = (", _loaded_at = greatest(cast($now as timestamp), (select max(_loaded_at) from raw.customers) "
                    "+ interval 1 microsecond)") if "_loaded_at" in columns else ""
            marked = {r[0] for r in con.execute(
                f"update raw.customers c set deleted_at = e.requested_at{bump} from _kz_console_erasures e "
                "where c.customer_id = e.customer_id and c.deleted_at is null returning c.customer_id",
                {"now": datetime.now(timezone.utc).replace(tzinfo=None)} if bump else {}).fetchall()}
            con.execute("drop table _kz_console_erasures")
        rows = [{"uid": r["uid"], "kind": "erasure_request", "customer_id": r["customer_id"],
                 "by_user": r["requested_by"], "acted_at": _stamp(r["requested_at"]),
                 "outcome": "deleted_at set: erased tonight" if r["customer_id"] in marked else
                 "customer already marked, or not in raw.customers"} for r in requests]
        _record(con, rows)
        con.execute("checkpoint")
    finally:
        con.close()
    if marked:
        log.info("console: %d erasure request(s) taken in", len(marked))
    return len(marked)

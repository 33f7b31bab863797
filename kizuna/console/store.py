"""The console's own store: one SQLite file (settings.console_store) for what people do in the console.

Why SQLite and not the ledger: the console writes at any hour, also while the nightly run holds the
ledger and the warehouse (DuckDB allows one writing process per file), exactly like the webhook
service (kizuna/events/store.py). The nightly run reads this store and folds each action into the
ledger's `console_actions` table (who, when), then honours it (kizuna/console/nightly.py).

Every action carries a random `uid`: the fold is idempotent (an action is copied once, whatever
happens), and the ledger's record stays unique even if this file is restored from a backup.

Tables:
- `holds`: a scenario, or one step of it, held for one night (`night`) or until released;
- `approvals`: a person approved the printed list of a channel (`dm`, `phone`) for one night;
- `decisions`: a person's verdict on an `unknown` send: delivered or not delivered;
- `erasure_requests`: a customer asked to be erased (the nightly erasure then does the rest);
- `audit`: every action of every user, logins included (never a password).

Times are UTC, ISO 8601, to the second.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from kizuna.events.store import open_wal_store

SCHEMA = [
    """
    create table if not exists holds (
        id integer primary key autoincrement,
        uid text not null unique,
        scenario_id text not null,
        step_id text,              -- null: the whole scenario
        night text,                -- YYYY-MM-DD: that night only; null: until released
        created_by text not null,
        created_at text not null,
        released_by text,
        released_at text
    )
    """,
    """
    create table if not exists approvals (
        id integer primary key autoincrement,
        uid text not null unique,
        channel text not null,     -- dm or phone
        night text not null,       -- the night whose list is approved (the ledger's run_date)
        rows_seen integer,         -- how many rows the person saw when approving
        approved_by text not null,
        approved_at text not null,
        unique (channel, night)
    )
    """,
    """
    create table if not exists decisions (
        id integer primary key autoincrement,
        uid text not null unique,
        send_id text not null unique,
        delivered integer not null,  -- 1 delivered, 0 not delivered
        decided_by text not null,
        decided_at text not null
    )
    """,
    """
    create table if not exists erasure_requests (
        id integer primary key autoincrement,
        uid text not null unique,
        customer_id text not null unique,
        requested_by text not null,
        requested_at text not null
    )
    """,
    """
    create table if not exists audit (
        id integer primary key autoincrement,
        at text not null,
        user text not null,         -- the user name, or `-` before login
        action text not null,       -- login, login_failed, logout, hold, release, approve, resolve, erase, ...
        target text,
        detail text,
        remote text                 -- the client's address
    )
    """,
]


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating) the store in WAL mode; waits up to 10 s for another writer instead of failing."""
    return open_wal_store(path, SCHEMA, any_thread=True)


@contextmanager
def opened(path: Path) -> Iterator[sqlite3.Connection]:
    """The store, closed again at the end of the block."""
    con = connect(path)
    try:
        yield con
    finally:
        con.close()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _uid() -> str:
    return uuid.uuid4().hex


# ---- holds ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hold:
    id: int
    uid: str
    scenario_id: str
    step_id: str | None
    night: date | None
    created_by: str
    created_at: str
    released_by: str | None
    released_at: str | None

    def applies(self, run_date: date) -> bool:
        """Whether this hold stops tonight's messages: not released, and for this night when it names one."""
        return self.released_at is None and (self.night is None or self.night == run_date)

    def covers(self, scenario_id: str, step_id: str) -> bool:
        return self.scenario_id == scenario_id and self.step_id in (None, step_id)


def add_hold(con: sqlite3.Connection, scenario_id: str, step_id: str | None, night: date | None, by: str) -> Hold:
    uid = _uid()
    con.execute("insert into holds (uid, scenario_id, step_id, night, created_by, created_at) values (?, ?, ?, ?, ?, ?)",
                [uid, scenario_id, step_id, night.isoformat() if night else None, by, now()])
    return next(h for h in holds(con) if h.uid == uid)


def release_hold(con: sqlite3.Connection, hold_id: int, by: str) -> bool:
    """Release a hold; False when there is no such hold or it was released already."""
    cursor = con.execute("update holds set released_by = ?, released_at = ? where id = ? and released_at is null",
                         [by, now(), hold_id])
    return cursor.rowcount > 0


def holds(con: sqlite3.Connection) -> list[Hold]:
    rows = con.execute("select id, uid, scenario_id, step_id, night, created_by, created_at, released_by, released_at "
                       "from holds order by id").fetchall()
    return [Hold(r[0], r[1], r[2], r[3], date.fromisoformat(r[4]) if r[4] else None, *r[5:]) for r in rows]


# ---- approvals -----------------------------------------------------------------------------------

def approve(con: sqlite3.Connection, channel: str, night: date, rows_seen: int | None, by: str) -> bool:
    """Approve `channel`'s list of `night`; False when it was approved already (the first approval stands)."""
    cursor = con.execute("insert or ignore into approvals (uid, channel, night, rows_seen, approved_by, approved_at) "
                         "values (?, ?, ?, ?, ?, ?)", [_uid(), channel, night.isoformat(), rows_seen, by, now()])
    return cursor.rowcount > 0


def approvals(con: sqlite3.Connection) -> list[dict]:
    cursor = con.execute("select uid, channel, night, rows_seen, approved_by, approved_at from approvals order by id")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


# ---- decisions on unknown sends ------------------------------------------------------------------

def decide(con: sqlite3.Connection, send_id: str, delivered: bool, by: str) -> bool:
    """A person's verdict on an unknown send; False when the send was decided already (the first verdict stands)."""
    cursor = con.execute("insert or ignore into decisions (uid, send_id, delivered, decided_by, decided_at) "
                         "values (?, ?, ?, ?, ?)", [_uid(), send_id, int(delivered), by, now()])
    return cursor.rowcount > 0


def decisions(con: sqlite3.Connection) -> list[dict]:
    cursor = con.execute("select uid, send_id, delivered, decided_by, decided_at from decisions order by id")
    names = [d[0] for d in cursor.description]
    return [{**dict(zip(names, r)), "delivered": bool(r[2])} for r in cursor.fetchall()]


# ---- erasure requests ----------------------------------------------------------------------------

def request_erasure(con: sqlite3.Connection, customer_id: str, by: str) -> bool:
    """Record that a customer asked to be erased; False when already requested."""
    cursor = con.execute("insert or ignore into erasure_requests (uid, customer_id, requested_by, requested_at) "
                         "values (?, ?, ?, ?)", [_uid(), customer_id, by, now()])
    return cursor.rowcount > 0


def erasure_requests(con: sqlite3.Connection) -> list[dict]:
    cursor = con.execute("select uid, customer_id, requested_by, requested_at from erasure_requests order by id")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


# ---- audit ---------------------------------------------------------------------------------------

def audit(con: sqlite3.Connection, user: str, action: str, target: str | None = None, detail: str | None = None,
          remote: str | None = None) -> None:
    """Append one line to the audit trail. Callers never pass a password or a searched e-mail address."""
    con.execute("insert into audit (at, user, action, target, detail, remote) values (?, ?, ?, ?, ?, ?)",
                [now(), user, action, target, detail, remote])


def audit_rows(con: sqlite3.Connection, limit: int = 200) -> list[dict]:
    cursor = con.execute("select id, at, user, action, target, detail, remote from audit order by id desc limit ?",
                         [int(limit)])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]

"""The webhook event store: one SQLite file (settings.events_store), appended to by the webhook service.

Why SQLite and not the warehouse: the service writes at any hour, also while the nightly
flow holds the DuckDB warehouse (DuckDB allows one writing process per file). SQLite in
WAL mode lets the service append while the nightly `load_events` reads.

Every provider delivers at least once (SendGrid retries for up to 72 hours, LINE
redelivers), so each table has a unique provider event id and inserts are
`insert or ignore`: a redelivery is a no-op. The autoincrement `id` only grows, so the
nightly load copies `id > <highest id already in the warehouse>` (a watermark).

Nothing malformed is stored: every event is checked against the provider's shape
(kizuna.events.payloads) before the write, and one bad event refuses the whole call
(MalformedPayload, nothing written), so a half-stored batch never exists.

Personal data: the recipient's e-mail address is not stored, only its SHA-256 (enough to
tell events of one address apart); it is also removed from the raw JSON kept for audit.
Events reach customers through the send id (custom_args) and the ledger, never by address.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from kizuna.events import payloads

SCHEMA = [
    """
    create table if not exists sendgrid_events (
        id integer primary key autoincrement,
        sg_event_id text not null unique,
        event text not null,
        send_id text,
        scenario_id text,
        step_id text,
        email_sha256 text,
        event_at integer,          -- unix seconds (SendGrid's `timestamp`)
        bounce_type text,          -- bounce: `bounce` (hard) or `blocked`; dropped: null
        reason text,               -- bounce / dropped reason as SendGrid gives it
        raw_json text not null,    -- the event as received, without the e-mail address
        received_at text not null  -- UTC, ISO 8601
    )
    """,
    """
    create table if not exists line_events (
        id integer primary key autoincrement,
        webhook_event_id text not null unique,
        event_type text not null,  -- follow / unfollow (others are not kept)
        line_user_id text,
        event_at_ms integer,       -- LINE's `timestamp`, milliseconds since the epoch
        is_redelivery integer not null default 0,
        raw_json text not null,
        received_at text not null
    )
    """,
    # Unsubscribe requests made through a link (kizuna/events/unsubscribe.py): the send the link
    # named and the channel given up (`all`: every channel); folded into the ledger's suppressions
    # by the next campaign run (campaigns/unsubscribe.py). No personal data: the ledger maps the send.
    """
    create table if not exists unsubscribes (
        id integer primary key autoincrement,
        send_id text not null,
        channel text not null,     -- email, line, sms, dm, phone, insert, or `all`
        method text not null,      -- one_click (RFC 8058 POST) or page (the preference page)
        requested_at text not null,
        unique (send_id, channel)
    )
    """,
]

#: LINE event types kept (the ones that change whether the customer can be messaged).
LINE_KEPT_TYPES = ("follow", "unfollow")


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating) the store in WAL mode; waits up to 10 s for a writer instead of failing."""
    return open_wal_store(path, SCHEMA)


def open_wal_store(path: Path, schema: Sequence[str], *, any_thread: bool = False) -> sqlite3.Connection:
    """A service's own SQLite store (this one, the console's): created with `schema` when missing, in WAL
    mode so the nightly run reads while the service writes; autocommit (explicit transactions), and a
    writer waits up to 10 s for another instead of failing. `any_thread`: one connection shared by a
    web server's threads (its own lock serialises them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=10, isolation_level=None, check_same_thread=not any_thread)
    con.execute("pragma journal_mode=wal")
    con.execute("pragma synchronous=normal")
    con.execute("pragma busy_timeout=10000")
    for ddl in schema:
        con.execute(ddl)
    return con


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def hash_email(email: str | None) -> str | None:
    if not email:
        return None
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


def sendgrid_row(event: dict[str, Any], position: int = 0) -> tuple:
    """The stored row of one SendGrid event (custom_args arrive as top-level keys).

    Raises payloads.MalformedPayload when the event is not SendGrid's shape."""
    valid = payloads.sendgrid_event(event, position)
    cleaned = {k: v for k, v in event.items() if k != "email"}
    raw = json.dumps(cleaned, ensure_ascii=False, sort_keys=True)
    event_id = valid.sg_event_id or "nokey-" + hashlib.sha256(raw.encode()).hexdigest()[:32]
    return (
        event_id, valid.event, valid.send_id, valid.scenario_id, valid.step_id, hash_email(valid.email),
        valid.timestamp, valid.type if valid.event == "bounce" else None, valid.reason, raw, _now(),
    )


def add_sendgrid_events(con: sqlite3.Connection, events: Iterable[dict[str, Any]]) -> int:
    """Store SendGrid events; returns how many were new (redeliveries are ignored).

    Every event is validated before anything is written: one malformed event raises
    payloads.MalformedPayload and none of the batch is stored."""
    rows = [sendgrid_row(e, i) for i, e in enumerate(events)]
    return _insert_new(con, "sendgrid_events", ("sg_event_id", "event", "send_id", "scenario_id", "step_id",
                                                "email_sha256", "event_at", "bounce_type", "reason", "raw_json",
                                                "received_at"), rows)


def line_row(event: dict[str, Any], position: int = 0) -> tuple | None:
    """The stored row of one LINE event, None for a type not kept (it is validated all the same).

    Raises payloads.MalformedPayload when the event is not LINE's shape."""
    valid = payloads.line_event(event, position)
    if valid.type not in LINE_KEPT_TYPES:
        return None
    raw = json.dumps(event, ensure_ascii=False, sort_keys=True)
    event_id = valid.webhookEventId or "nokey-" + hashlib.sha256(raw.encode()).hexdigest()[:32]
    user_id = valid.source.userId if valid.source else None
    redelivery = bool(valid.deliveryContext and valid.deliveryContext.isRedelivery)
    return (event_id, valid.type, user_id, valid.timestamp, 1 if redelivery else 0, raw, _now())


def add_line_events(con: sqlite3.Connection, events: Iterable[dict[str, Any]]) -> int:
    """Store LINE follow/unfollow events; returns how many were new (redeliveries are ignored).

    Every event (of any type) is validated before anything is written: one malformed event
    raises payloads.MalformedPayload and none of the batch is stored."""
    rows = [row for i, e in enumerate(events) if (row := line_row(e, i)) is not None]
    return _insert_new(con, "line_events", ("webhook_event_id", "event_type", "line_user_id", "event_at_ms",
                                            "is_redelivery", "raw_json", "received_at"), rows)


def _insert_new(con: sqlite3.Connection, table: str, columns: tuple[str, ...], rows: list[tuple]) -> int:
    """Insert in one write transaction, skipping rows whose event id is stored; returns how many were new."""
    con.execute("begin immediate")
    try:
        before = con.total_changes
        con.executemany(f"insert or ignore into {table} ({', '.join(columns)}) "
                        f"values ({', '.join('?' * len(columns))})", rows)
        added = con.total_changes - before
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return added


def add_unsubscribe(con: sqlite3.Connection, send_id: str, channel: str, method: str) -> bool:
    """Record that the customer of `send_id` gave up `channel` (`all`: every channel); True when new
    (the same request again, a mail client's repeated POST, is a no-op)."""
    cursor = con.execute("insert or ignore into unsubscribes (send_id, channel, method, requested_at) "
                         "values (?, ?, ?, ?)", [send_id, channel, method, _now()])
    return cursor.rowcount > 0


def unsubscribed_channels(con: sqlite3.Connection, send_id: str) -> set[str]:
    """The channels already given up through links of `send_id`."""
    return {row[0] for row in con.execute("select channel from unsubscribes where send_id = ?", [send_id])}


def read_unsubscribes(con: sqlite3.Connection) -> list[tuple[str, str]]:
    """Every unsubscribe request: (send_id, channel), oldest first."""
    return con.execute("select send_id, channel from unsubscribes order by id").fetchall()


def read_since(con: sqlite3.Connection, table: str, after_id: int) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of `table` with id > after_id, in id order."""
    if table not in ("sendgrid_events", "line_events"):
        raise ValueError(table)
    cursor = con.execute(f"select * from {table} where id > ? order by id", [after_id])
    return [d[0] for d in cursor.description], cursor.fetchall()

"""Test helpers for the campaign engine: a fake warehouse (the marts and raw tables the
selection reads, created directly in a DuckDB file) and test-only channels that record
every delivery in a file and can kill their own process with SIGKILL at chosen points.

Nothing here is production code: the crash switches live only in these test channels.
"""

from __future__ import annotations

import json
import os
import signal
from datetime import date, timedelta
from pathlib import Path
from typing import ClassVar

import duckdb

from connectors.channels.base import ALWAYS, NO_JOURNAL, Channel, DeliveryJournal, Message, Outcome
from connectors.channels.outbox import OutboxChannel

DIM_COLUMNS = {
    "customer_id": "varchar", "last_name": "varchar", "first_name": "varchar", "email": "varchar",
    "line_user_id": "varchar", "phone": "varchar", "postal_code": "varchar", "prefecture": "varchar",
    "city": "varchar", "address_line": "varchar", "stage": "varchar", "order_count": "integer",
    "first_order_date": "date", "last_order_date": "date", "first_order_kind": "varchar",
    "first_shipped_at": "timestamp", "first_delivered_at": "timestamp", "age_band": "varchar",
    "acquisition_media_code": "varchar", "subscription_status": "varchar", "gender": "varchar",
    "is_erased": "boolean", "has_email_consent": "boolean", "has_line_consent": "boolean",
    "has_sms_consent": "boolean", "has_dm_consent": "boolean", "has_phone_consent": "boolean",
    "birth_date": "date",
}


def make_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute("create schema if not exists marts")
    con.execute("create schema if not exists raw")
    con.execute(f"create table marts.dim_customers ({', '.join(f'{k} {v}' for k, v in DIM_COLUMNS.items())})")
    con.execute("create table marts.campaign_audience (customer_id varchar, rfm_segment varchar)")
    con.execute("""create table marts.fct_orders (order_id varchar, customer_id varchar, purchase_sequence_number integer,
                   ordered_date date, order_kind varchar, subscription_id varchar, delivery_number integer,
                   ordered_at timestamp, shipped_at timestamp)""")
    con.execute("create table raw.carts (cart_id varchar, customer_id varchar, status varchar, updated_at timestamp)")
    con.execute("create table raw.order_lines (order_id varchar, product_id varchar)")
    # the run-out anchor's mart (dbt: customer_run_out), its columns the selection reads
    con.execute("create table marts.customer_run_out (customer_id varchar, product_id varchar, run_out_date date)")
    return con


def add_customer(con: duckdb.DuckDBPyConnection, customer_id: str, first_order: date | None,
                 kind: str = "one_off", rfm_segment: str = "new", **overrides) -> None:
    """A customer with one counted order (its first) on `first_order`; overrides set dim columns."""
    row = {
        "customer_id": customer_id, "last_name": "山田", "first_name": "花子", "email": f"{customer_id}@example.jp",
        "line_user_id": f"U{customer_id}", "phone": "090-1234-5678", "postal_code": "150-0001",
        "prefecture": "東京都", "city": "渋谷区", "address_line": "神宮前1-1",
        "stage": "initial" if first_order else "prospect", "order_count": 1 if first_order else 0,
        "first_order_date": first_order, "last_order_date": first_order, "first_order_kind": kind if first_order else None,
        "first_shipped_at": None, "first_delivered_at": None, "age_band": "50s", "acquisition_media_code": "AFF01",
        "subscription_status": "none", "gender": "female", "is_erased": False, "has_email_consent": True,
        "has_line_consent": True, "has_sms_consent": False, "has_dm_consent": True, "has_phone_consent": False,
    }
    row.update(overrides)
    con.execute(f"insert into marts.dim_customers ({', '.join(row)}) values ({', '.join('?' * len(row))})",
                list(row.values()))
    con.execute("insert into marts.campaign_audience values (?, ?)", [customer_id, rfm_segment])
    if first_order:
        con.execute("insert into marts.fct_orders values (?, ?, 1, ?, ?, null, null, ?, null)",
                    [f"O-{customer_id}-1", customer_id, first_order, kind, first_order])


def add_order(con: duckdb.DuckDBPyConnection, customer_id: str, day: date, kind: str = "one_off",
              subscription_id: str | None = None, delivery_number: int | None = None) -> None:
    """A further counted order; dim_customers follows as the nightly build would."""
    n = con.execute("select order_count from marts.dim_customers where customer_id = ?", [customer_id]).fetchone()[0]
    con.execute("insert into marts.fct_orders values (?, ?, ?, ?, ?, ?, ?, ?, null)",
                [f"O-{customer_id}-{n + 1}", customer_id, n + 1, day, kind, subscription_id, delivery_number, day])
    status = "active" if kind == "subscription" else None
    con.execute(
        "update marts.dim_customers set order_count = order_count + 1, last_order_date = ?, stage = 'continuing', "
        "subscription_status = coalesce(?, subscription_status) where customer_id = ?",
        [day, status, customer_id],
    )


def add_abandoned_cart(con: duckdb.DuckDBPyConnection, customer_id: str, day: date) -> None:
    con.execute("insert into raw.carts values (?, ?, 'abandoned', ?)",
                [f"K-{customer_id}-{day}", customer_id, f"{day} 21:00:00"])


# ---- test channels ----------------------------------------------------------------------


def _crash_switches() -> tuple[int | None, int | None]:
    after = os.environ.get("KIZUNA_TEST_CRASH_AFTER_MESSAGES")
    at_call = os.environ.get("KIZUNA_TEST_CRASH_AT_CALL")
    return (int(after) if after else None), (int(at_call) if at_call else None)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _Crashing:
    """Counts deliveries across batches of a process; SIGKILLs itself at the configured point."""

    delivered_in_process: ClassVar[int] = 0
    calls_in_process: ClassVar[int] = 0

    def _on_call(self) -> None:
        _Crashing.calls_in_process += 1
        _, at_call = _crash_switches()
        if at_call is not None and _Crashing.calls_in_process == at_call:
            _die()  # entering the N-th batch: the earlier batches' outcomes are recorded, this one is `sending`

    def _on_delivered(self) -> None:
        _Crashing.delivered_in_process += 1
        after, _ = _crash_switches()
        if after is not None and _Crashing.delivered_in_process >= after:
            _die()  # the provider has it, the ledger does not know


class RecordingChannel(_Crashing, Channel):
    """A provider without idempotency key (SendGrid, Twilio): every call it receives is a delivery."""

    max_batch_size: ClassVar[int] = 3
    resend_safe_for = None

    def __init__(self, name: str, records: Path) -> None:
        self.name = name  # type: ignore[misc]
        self.records = records

    def _record(self, message: Message, accepted: bool) -> None:
        with self.records.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"send_id": message.send_id, "channel": message.channel, "accepted": accepted,
                                "scenario_id": message.scenario_id, "step_id": message.step_id,
                                "customer_id": message.customer_id}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def send_batch(self, messages: list[Message], journal: DeliveryJournal = NO_JOURNAL) -> list[Outcome]:
        journal.handing_over([m.send_id for m in messages])  # the batch is one provider request
        self._on_call()
        outcomes = []
        for m in messages:
            self._record(m, True)
            outcomes.append(Outcome(m.send_id, "sent", "", f"pm-{m.send_id}"))
            self._on_delivered()
        journal.settled(outcomes)
        return outcomes


class IdempotentRecordingChannel(RecordingChannel):
    """A provider with a retry key (LINE's X-Line-Retry-Key): a repeat of an accepted message is not delivered."""

    resend_safe_for = timedelta(hours=23)  # like LINE's retry key

    def send_batch(self, messages: list[Message], journal: DeliveryJournal = NO_JOURNAL) -> list[Outcome]:
        journal.handing_over([m.send_id for m in messages])
        self._on_call()
        seen = {r["send_id"] for r in read_records(self.records) if r["accepted"]}
        outcomes = []
        for m in messages:
            self._record(m, m.send_id not in seen)
            outcomes.append(Outcome(m.send_id, "sent", "duplicate (409)" if m.send_id in seen else ""))
            self._on_delivered()
        return outcomes


class CrashingOutbox(_Crashing, OutboxChannel):
    """The production outbox, one message at a time, with the crash switches around it."""

    max_batch_size: ClassVar[int] = 3

    def send_batch(self, messages: list[Message], journal: DeliveryJournal = NO_JOURNAL) -> list[Outcome]:
        self._on_call()
        outcomes = []
        for m in messages:
            outcomes.extend(OutboxChannel.send_batch(self, [m], journal))
            self._on_delivered()
        return outcomes


class MemoryChannel(Channel):
    """An in-process channel that remembers what it delivered in `log` (idempotent, like the outbox)."""

    max_batch_size = 50
    resend_safe_for = ALWAYS

    def __init__(self, name: str, log: list[Message]) -> None:
        self.name = name
        self.log = log

    def send_batch(self, messages: list[Message], journal: DeliveryJournal = NO_JOURNAL) -> list[Outcome]:
        self.log.extend(messages)
        return [Outcome(m.send_id, "sent") for m in messages]


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def days(start: date, n: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]

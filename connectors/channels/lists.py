"""Printed DM, call and package-insert lists: CSV files handed to the print vendor, the call
centre and the warehouse.

Each batch becomes one file in a folder per send date (`<lists_dir>/<YYYY-MM-DD>/`),
written to a `.part` file and renamed, so a crash never leaves half a list. A send id
already in any list of the channel is not written again (outcome `sent`, "already
listed"): a retried batch is harmless, hence `idempotent = True`.

The DM list is CP932 (Windows Shift_JIS) by default, what Japanese print vendors
expect. A row with a character CP932 cannot hold (e.g. 𠮷 in 𠮷田) fails with the
field and character named, for a person to fix; it is never replaced silently,
since a misprinted name or address is worse than no DM.

Every field goes through `safe_text.spreadsheet_cell`: control and zero-width characters
are removed, a line break in an address cannot split a label into three, and a value a
spreadsheet would run as a formula (`=HYPERLINK(...)`, `+cmd`, `@SUM(...)`) is written
as text.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import Callable, ClassVar
from zoneinfo import ZoneInfo

from connectors.channels.base import (ALWAYS, NO_JOURNAL, Channel, DeliveryJournal, Message, Outcome,
                                      check_writable)
from connectors.channels.safe_text import spreadsheet_cell

_POSTAL = re.compile(r"^〒?\s*(\d{3}-?\d{4})\s*")


def split_postal(address: str) -> tuple[str, str]:
    """("150-0001", "東京都...") from "150-0001 東京都..." (the engine's DM address)."""
    match = _POSTAL.match(address.strip())
    if not match:
        return "", address.strip()
    code = match.group(1)
    code = code if "-" in code else f"{code[:3]}-{code[3:]}"
    return code, address.strip()[match.end():].strip()


def _dm_row(m: Message) -> dict[str, str]:
    postal, address = split_postal(m.extra.get("postal_address", m.address))
    return {"send_id": m.send_id, "name": m.recipient_name, "postal_code": m.extra.get("postal_code", postal),
            "address": address, "piece": m.extra.get("piece") or f"{m.scenario_id}/{m.step_id}",
            "offer_code": m.extra.get("offer_code", "")}


def _call_row(m: Message) -> dict[str, str]:
    return {"send_id": m.send_id, "customer_id": m.customer_id, "name": m.recipient_name, "phone": m.address,
            "why": m.extra.get("why") or f"{m.scenario_id}/{m.step_id}: {m.subject}",
            "talking_points": m.body_text.strip(), "offer_code": m.extra.get("offer_code", "")}


def _insert_row(m: Message) -> dict[str, str]:
    return {"send_id": m.send_id, "customer_id": m.customer_id, "order_id": m.extra.get("order_id", ""),
            "shipment_id": m.extra.get("shipment_id", ""), "name": m.recipient_name,
            "insert": m.extra.get("piece") or f"{m.scenario_id}/{m.step_id}", "title": m.subject,
            "offer_code": m.extra.get("offer_code", "")}


KINDS: dict[str, tuple[str, list[str], Callable[[Message], dict[str, str]]]] = {
    "dm": ("dm-list", ["send_id", "name", "postal_code", "address", "piece", "offer_code"], _dm_row),
    "phone": ("call-list", ["send_id", "customer_id", "name", "phone", "why", "talking_points", "offer_code"],
              _call_row),
    "insert": ("insert-list", ["send_id", "customer_id", "order_id", "shipment_id", "name", "insert", "title",
                               "offer_code"], _insert_row),
}


class ListChannel(Channel):
    """One of dm / phone / insert, written as CSV lists under `lists_dir`."""

    max_batch_size: ClassVar[int] = 10_000
    resend_safe_for = ALWAYS  # a send id already listed is not listed again

    def __init__(self, lists_dir: Path, channel: str, encoding: str = "utf-8-sig", timezone: str = "Asia/Tokyo",
                 today: Callable[[], date] | None = None) -> None:
        if channel not in KINDS:
            raise ValueError(f"no list for channel {channel!r}; lists exist for {sorted(KINDS)}")
        self.name = channel  # type: ignore[misc]
        self.root = lists_dir
        self.encoding = encoding
        # rows after the header: the same codec without a byte-order mark
        self.row_codec = "utf-8" if encoding.lower().replace("_", "-") == "utf-8-sig" else encoding
        self.prefix, self.columns, self.row = KINDS[channel]
        self.tz = ZoneInfo(timezone)
        self._today = today or (lambda: datetime.now(self.tz).date())

    def __repr__(self) -> str:
        return f"ListChannel({self.name}, {self.root}, encoding={self.encoding})"

    def preflight(self) -> None:
        check_writable(self.root, self.prefix)

    def files(self) -> list[Path]:
        return sorted(self.root.glob(f"*/{self.prefix}-*.csv"))

    def listed_send_ids(self) -> set[str]:
        ids: set[str] = set()
        for path in self.files():
            with path.open(encoding=self.encoding, newline="") as f:
                ids.update(row["send_id"] for row in csv.DictReader(f))
        return ids

    def _send_date(self, m: Message) -> str:
        if send_at := m.extra.get("send_at"):
            try:
                return datetime.fromisoformat(send_at).date().isoformat()
            except ValueError:
                pass
        return self._today().isoformat()

    def send_batch(self, messages: list[Message], journal: DeliveryJournal = NO_JOURNAL) -> list[Outcome]:
        journal.handing_over([m.send_id for m in messages])  # one file per date: one mark for the batch
        listed = self.listed_send_ids()
        outcomes: dict[int, Outcome] = {}
        by_date: dict[str, list[tuple[int, bytes]]] = {}
        for i, m in enumerate(messages):
            if m.send_id in listed:
                outcomes[i] = Outcome(m.send_id, "sent", "already listed")
                continue
            row = {column: spreadsheet_cell(value) for column, value in self.row(m).items()}
            if problem := self._encoding_problem(row):
                outcomes[i] = Outcome(m.send_id, "failed", problem)
                continue
            buf = io.StringIO()
            csv.DictWriter(buf, self.columns, lineterminator="\r\n").writerow(row)
            by_date.setdefault(self._send_date(m), []).append((i, buf.getvalue().encode(self.row_codec)))
            listed.add(m.send_id)  # the same send id twice in one batch is listed once
        for day, rows in by_date.items():
            folder = self.root / day
            folder.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256("\n".join(messages[i].send_id for i, _ in rows).encode()).hexdigest()[:12]
            target = folder / f"{self.prefix}-{day}-{digest}.csv"
            header = io.StringIO()
            csv.writer(header, lineterminator="\r\n").writerow(self.columns)
            partial = target.with_suffix(".csv.part")
            with partial.open("wb") as f:
                f.write(header.getvalue().encode(self.encoding))  # a BOM, if any, once at the start
                for _, data in rows:
                    f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, target)  # atomic
            for i, _ in rows:
                outcomes[i] = Outcome(messages[i].send_id, "sent", f"listed in {day}/{target.name}", target.name)
        return [outcomes[i] for i in range(len(messages))]

    def _encoding_problem(self, row: dict[str, str]) -> str | None:
        for column, value in row.items():
            for ch in str(value):
                try:
                    ch.encode(self.row_codec)
                except UnicodeEncodeError:
                    return (f"{column} contains {ch!r} (U+{ord(ch):04X}), which {self.encoding} cannot encode; "
                            f"fix the customer record (e.g. a standard form of the character) and send again")
        return None

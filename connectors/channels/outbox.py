"""The local outbox: the demo's and the tests' channel, files a person can open.

E-mail becomes an `.eml` file (open it in any mail client), other channels a `.txt`
file, and every message a line in `index.jsonl`. A message already in the outbox
(same send id) is not written again, which makes a retried batch harmless.

The message file is the delivery; its index line follows right after it, message by
message. A process killed between the two, or a disk that fills up, leaves a file
without its line: the retry of that message (the ledger still says `sending` or
`failed`) finds the file, adds the missing line and reports it sent, so the index and
the ledger end up agreeing with the files.
"""

from __future__ import annotations

import errno
import json
import os
from email.message import EmailMessage
from email.utils import formataddr
from pathlib import Path
from typing import ClassVar

from connectors.channels.base import ALWAYS, NO_JOURNAL, Channel, DeliveryJournal, Message, Outcome, check_writable
from connectors.channels.headers import list_unsubscribe, mail_date, message_id
from connectors.channels.safe_text import one_line


class OutboxChannel(Channel):
    """Writes messages of one channel (email, line, sms, dm, phone, insert) under `outbox_dir/<channel>/`."""

    max_batch_size: ClassVar[int] = 10_000
    resend_safe_for = ALWAYS  # a re-sent message lands on the same file

    def __init__(self, outbox_dir: Path, channel: str, sender: str = "", sender_email: str = "", *,
                 unsubscribe_mailto: str = "", timezone: str = "Asia/Tokyo") -> None:
        self.name = channel  # type: ignore[misc]  # one outbox instance per channel
        self.folder = outbox_dir / channel
        self.index = outbox_dir / "index.jsonl"
        self.sender = sender
        self.sender_email = sender_email
        self.unsubscribe_mailto = unsubscribe_mailto or sender_email  # as KIZUNA_UNSUBSCRIBE_MAILTO defaults
        self.timezone = timezone
        self._indexed: set[str] | None = None  # send ids with an index line (read on first need)

    def __repr__(self) -> str:
        return f"OutboxChannel({self.folder})"

    def preflight(self) -> None:
        check_writable(self.folder, "outbox")

    def _render(self, message: Message) -> tuple[str, bytes]:
        if message.channel == "email":
            mail = EmailMessage()
            mail["Subject"] = one_line(message.subject)
            mail["From"] = formataddr((one_line(self.sender), self.sender_email))
            mail["To"] = formataddr((one_line(message.recipient_name), one_line(message.address)))
            mail["Date"] = mail_date(timezone=self.timezone)
            mail["Message-ID"] = message_id(message.send_id, self.sender_email)
            mail["X-Kizuna-Send-Id"] = message.send_id
            for name, value in list_unsubscribe(one_line(message.extra.get("unsubscribe_url", "")),
                                                self.unsubscribe_mailto).items():
                mail[name] = value
            mail.set_content(message.body_text)
            if message.body_html:
                mail.add_alternative(message.body_html, subtype="html")
            return ".eml", bytes(mail)
        header = f"To: {one_line(message.recipient_name)} <{one_line(message.address)}>\n" \
                 f"Subject: {one_line(message.subject)}\n\n"
        return ".txt", (header + message.body_text).encode("utf-8")

    def _indexed_ids(self) -> set[str]:
        if self._indexed is None:
            self._indexed = set()
            if self.index.exists():
                with self.index.open(encoding="utf-8") as lines:
                    for line in lines:
                        try:
                            self._indexed.add(json.loads(line)["send_id"])
                        except (ValueError, KeyError, TypeError):
                            continue  # a line cut by a crash: its message gets a whole line again
        return self._indexed

    def _index_line(self, message: Message, target: Path) -> str:
        return json.dumps({
            "send_id": message.send_id, "channel": message.channel, "scenario_id": message.scenario_id,
            "step_id": message.step_id, "customer_id": message.customer_id, "subject": one_line(message.subject),
            "file": str(target.relative_to(self.folder.parent)),
        }, ensure_ascii=False) + "\n"

    def send_batch(self, messages: list[Message], journal: DeliveryJournal = NO_JOURNAL) -> list[Outcome]:
        self.folder.mkdir(parents=True, exist_ok=True)
        indexed = self._indexed_ids()
        journal.handing_over([m.send_id for m in messages])  # local and keyed by send id: one mark for the batch
        outcomes: list[Outcome] = []
        # Unbuffered appends: a line is on disk when write() returns, and a failed write keeps nothing
        # back that a later flush could half-write.
        index = os.open(self.index, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _end_the_last_line(index)
            for message in messages:
                try:
                    outcomes.append(self._deliver(message, index, indexed))
                except OSError as exc:  # a full disk, a permission: this message fails, with the reason
                    outcomes.append(Outcome(message.send_id, "failed", f"outbox write failed: {exc.strerror or exc}"))
        finally:
            os.close(index)
        return outcomes

    def _deliver(self, message: Message, index: int, indexed: set[str]) -> Outcome:
        suffix = ".eml" if message.channel == "email" else ".txt"
        target = self.folder / f"{message.send_id}{suffix}"
        detail = ""
        if target.exists():
            detail = "already in the outbox"
        else:
            _, payload = self._render(message)
            partial = target.with_suffix(suffix + ".part")
            partial.write_bytes(payload)
            os.replace(partial, target)  # atomic: a crash never leaves half a message
        if message.send_id not in indexed:
            size = os.fstat(index).st_size
            line = self._index_line(message, target).encode("utf-8")
            try:
                if os.write(index, line) != len(line):  # right after its file; a full disk may write part of it
                    raise OSError(errno.ENOSPC, "no space left for the outbox index")
            except OSError:
                os.ftruncate(index, size)  # no half line: the retry writes it whole
                raise
            indexed.add(message.send_id)
            if detail:
                detail += "; index line added"
        return Outcome(message.send_id, "sent", detail, target.name)


def _end_the_last_line(fd: int) -> None:
    """Append a line break when the index ends inside a line (left by an older version, or an editor)."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        try:
            os.write(fd, b"\n")
        except OSError:
            pass

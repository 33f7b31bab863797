"""The local outbox: the demo's and the tests' channel, files a person can open.

E-mail becomes an `.eml` file (open it in any mail client), other channels a `.txt`
file, and every message a line in `index.jsonl`. A message already in the outbox
(same send id) is not written again, which makes a retried batch harmless.
"""

from __future__ import annotations

import json
import os
from email.message import EmailMessage
from email.utils import formataddr
from pathlib import Path
from typing import ClassVar

from connectors.channels.base import Channel, Message, Outcome


class OutboxChannel(Channel):
    """Writes messages of one channel (email, line, sms, dm, phone, insert) under `outbox_dir/<channel>/`."""

    max_batch_size: ClassVar[int] = 10_000
    idempotent: ClassVar[bool] = True  # a re-sent message lands on the same file

    def __init__(self, outbox_dir: Path, channel: str, sender: str = "", sender_email: str = "") -> None:
        self.name = channel  # type: ignore[misc]  # one outbox instance per channel
        self.folder = outbox_dir / channel
        self.index = outbox_dir / "index.jsonl"
        self.sender = sender
        self.sender_email = sender_email

    def __repr__(self) -> str:
        return f"OutboxChannel({self.folder})"

    def _render(self, message: Message) -> tuple[str, bytes]:
        if message.channel == "email":
            mail = EmailMessage()
            mail["Subject"] = message.subject
            mail["From"] = formataddr((self.sender, self.sender_email))
            mail["To"] = formataddr((message.recipient_name, message.address))
            mail["X-Kizuna-Send-Id"] = message.send_id
            if unsubscribe := message.extra.get("unsubscribe_url"):
                mail["List-Unsubscribe"] = f"<{unsubscribe}>"
            mail.set_content(message.body_text)
            if message.body_html:
                mail.add_alternative(message.body_html, subtype="html")
            return ".eml", bytes(mail)
        header = f"To: {message.recipient_name} <{message.address}>\nSubject: {message.subject}\n\n"
        return ".txt", (header + message.body_text).encode("utf-8")

    def send_batch(self, messages: list[Message]) -> list[Outcome]:
        self.folder.mkdir(parents=True, exist_ok=True)
        outcomes: list[Outcome] = []
        new_index_lines: list[str] = []
        for message in messages:
            suffix, payload = self._render(message)
            target = self.folder / f"{message.send_id}{suffix}"
            if target.exists():
                outcomes.append(Outcome(message.send_id, "sent", "already in the outbox", target.name))
                continue
            partial = target.with_suffix(suffix + ".part")
            partial.write_bytes(payload)
            os.replace(partial, target)  # atomic: a crash never leaves half a message
            new_index_lines.append(json.dumps({
                "send_id": message.send_id, "channel": message.channel, "scenario_id": message.scenario_id,
                "step_id": message.step_id, "customer_id": message.customer_id, "subject": message.subject,
                "file": str(target.relative_to(self.folder.parent)),
            }, ensure_ascii=False))
            outcomes.append(Outcome(message.send_id, "sent", "", target.name))
        if new_index_lines:
            with self.index.open("a", encoding="utf-8") as index:
                index.write("\n".join(new_index_lines) + "\n")
        return outcomes

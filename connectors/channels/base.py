"""The channel interface: deliver a batch of rendered messages, return one outcome per message.

The campaign engine records every message in the send ledger *before* it calls a
channel. The channel tells the engine's `DeliveryJournal`, durably, which messages it is
about to hand to the provider (right before each provider request: the ledger marks
them `sending`) and what came of each request as soon as it is known, so a process
killed mid-batch leaves at most the requests in flight undecided. A channel never drops
a message: each input message gets exactly one outcome, in the same order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import ClassVar, Literal

from kizuna.errors import KizunaError

OutcomeStatus = Literal["sent", "failed", "unknown"]


@dataclass(frozen=True)
class Message:
    """One rendered message for one recipient."""

    send_id: str  # the ledger key; the only identifier a provider ever sees (never personal data)
    channel: str
    customer_id: str
    address: str  # e-mail address, LINE user id, phone number, or postal address, by channel
    recipient_name: str
    subject: str
    body_text: str
    body_html: str | None = None
    scenario_id: str = ""
    step_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    send_id: str
    status: OutcomeStatus
    detail: str = ""
    provider_message_id: str | None = None


class DeliveryJournal:
    """Where a channel records, durably, what it hands to a provider and what came of it.

    The engine's journal writes the send ledger; this base class records nothing (a
    channel used on its own, in a benchmark or a test)."""

    def handing_over(self, send_ids: Sequence[str]) -> None:
        """Called right before the provider request that carries `send_ids`."""

    def settled(self, outcomes: Sequence[Outcome]) -> None:
        """Called as soon as the outcomes of one provider request are known."""


NO_JOURNAL = DeliveryJournal()


class Channel(ABC):
    """A way to reach customers. Subclasses state the provider's limits as class attributes."""

    name: ClassVar[str]
    max_batch_size: ClassVar[int] = 1000
    #: How long after a hand-over a message whose outcome is unknown may be handed over again
    #: without any risk of a second copy: None = never (the provider cannot deduplicate: the
    #: message is flagged `unknown` for reconciliation), `ALWAYS` (local files keyed by send id),
    #: or the life of the provider's idempotency key (LINE's retry key: 24 h).
    resend_safe_for: ClassVar[timedelta | None] = None

    @property
    def idempotent(self) -> bool:
        """Whether an undecided message can ever be handed over again."""
        return self.resend_safe_for is not None

    def preflight(self) -> None:
        """Raise `KizunaError` when the channel cannot deliver now (a folder that cannot be written,
        ...): the engine asks every channel before it sends anything."""

    @abstractmethod
    def send_batch(self, messages: list[Message], journal: DeliveryJournal = NO_JOURNAL) -> list[Outcome]:
        """Deliver `messages` (at most `max_batch_size`); one outcome per message, same order.

        Call `journal.handing_over(ids)` before each provider request and `journal.settled(outcomes)`
        after it; messages refused before any request (a malformed address) need neither."""


#: `resend_safe_for` of channels whose delivery is keyed by the send id itself (files).
ALWAYS = timedelta.max


def check_writable(folder: Path, what: str) -> None:
    """Raise `KizunaError` unless files can be created in `folder` (created when missing): the
    preflight of the channels that write files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise KizunaError(f"the {what} folder {folder} cannot be written ({exc.strerror or exc}); "
                          "fix its permissions or free disk space") from None

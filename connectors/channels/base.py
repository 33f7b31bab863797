"""The channel interface: deliver a batch of rendered messages, return one outcome per message.

The campaign engine records every message in the send ledger *before* it calls a
channel, and records the outcome the channel returns. A channel never drops a
message: each input message gets exactly one outcome, in the same order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Literal

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


class Channel(ABC):
    """A way to reach customers. Subclasses state the provider's limits as class attributes."""

    name: ClassVar[str]
    max_batch_size: ClassVar[int] = 1000
    #: True when re-sending a message whose outcome is unknown cannot deliver it twice
    #: (the provider deduplicates, e.g. LINE's retry key). Otherwise it is flagged `unknown`.
    idempotent: ClassVar[bool] = False

    @abstractmethod
    def send_batch(self, messages: list[Message]) -> list[Outcome]:
        """Deliver `messages` (at most `max_batch_size`); one outcome per message, same order."""

"""What every provider connector shares: throttling, 429 waits, and the no-personal-data check.

Retry rules live in each connector, because they follow the provider's semantics
(docs/delivery.md): a 429 means "not accepted" everywhere and is always safe to retry after
the wait the provider names; a 5xx or a time-out is retried only where the provider
deduplicates (LINE's retry key). Elsewhere it ends as `unknown`, never resent blindly.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Callable, Mapping

from connectors.channels.base import Message, Outcome


@dataclass
class DeliveryPolicy:
    """How a provider connector delivers (KIZUNA_CHANNEL_* settings): one request's time-out,
    attempts where a retry is safe, the longest provider-imposed wait honoured, requests in
    flight, recipients in flight, throttle, and the base of the exponential back-off."""

    timeout: float = 10.0
    max_attempts: int = 4
    max_wait: float = 60.0
    concurrency: int = 4
    requests_per_second: float = 0.0
    backoff_seconds: float = 1.0
    #: Recipients handed over at once, over all requests in flight: what a killed process can
    #: leave undecided (`sending`) at most.
    max_in_flight: int = 1000

    def request_size(self, provider_limit: int) -> int:
        """Recipients per request: the provider's limit, smaller when `concurrency` requests of it
        would put more than `max_in_flight` recipients in flight."""
        return max(1, min(provider_limit, self.max_in_flight // max(1, self.concurrency)))

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1, 2, 4, ... × backoff_seconds)."""
        return self.backoff_seconds * 2 ** (attempt - 1)


class Throttle:
    """Spaces calls at most `per_second` apart (0: no limit) and holds everyone during a provider's 429 wait.

    Shared by the worker threads of one channel, so one 429 pauses them all.
    """

    def __init__(self, per_second: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next, self._paused_until)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


def retry_after_seconds(headers: Mapping[str, str] | None, default: float, now: float | None = None) -> float:
    """Seconds to wait after a 429, from `Retry-After` (seconds or HTTP date) or `X-RateLimit-Reset` (epoch s)."""
    if not headers:
        return default
    lowered = {str(k).lower(): str(v) for k, v in dict(headers).items()}
    now = time.time() if now is None else now
    if (value := lowered.get("retry-after")) is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
    if (value := lowered.get("x-ratelimit-reset")) is not None:
        try:
            return max(0.0, float(value) - now)
        except ValueError:
            pass
    return default


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"^\+?[\d\s\-()]{10,}$")
_ID_LIKE = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


def personal_data_reason(key: str, value: str, message: Message | None = None) -> str | None:
    """Why `value` may not go to a provider as tracking data (`custom_args`), or None when it is fine.

    Only identifiers pass: ASCII, no spaces, no e-mail address or phone number shape, and
    never a value equal to (or containing) the recipient's address or name.
    """
    return custom_args_problem({key: value}, message)


def custom_args_problem(args: dict[str, str], message: Message | None = None) -> str | None:
    """The first reason any of `args` is personal data (see `personal_data_reason`), or None."""
    for key, value in args.items():
        if reason := _shape_reason(key, str(value)):
            return reason
    if message is not None:
        joined = "\x00".join(args.values())
        address, name = message.address, message.recipient_name
        for label, part in (("address", address), ("address", address.partition("@")[0]), ("name", name),
                            *(("name", token) for token in name.split())):
            if len(part) >= 3 and part in joined:
                key = next(k for k, v in args.items() if part in v)
                return f"custom_args[{key!r}] contains the recipient's {label}"
    return None


@lru_cache(maxsize=4096)
def _shape_reason(key: str, text: str) -> str | None:
    if "@" in text and _EMAIL.search(text):
        return f"custom_args[{key!r}] looks like an e-mail address"
    if _PHONE.match(text) and sum(c.isdigit() for c in text) >= 10:
        return f"custom_args[{key!r}] looks like a phone number"
    if not _ID_LIKE.match(text):
        return f"custom_args[{key!r}] is not an identifier (names and free text are personal data)"
    return None


def fail_all(messages: list[Message], detail: str) -> list[Outcome]:
    return [Outcome(m.send_id, "failed", detail) for m in messages]


class RedactingFilter(logging.Filter):
    """Masks credentials and drops request bodies (personal data) in provider clients' debug logs.

    python_http_client (under sendgrid) logs the Authorization header and the whole payload at
    DEBUG; this filter, installed on those loggers, keeps the line but not the secret."""

    _CREDENTIAL = re.compile(r"((?:Bearer|Basic)\s+)[^'\"\s,}]+")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001
            return True
        if text.startswith("PAYLOAD") or "request_body" in text:
            record.msg, record.args = "PAYLOAD: (not logged: may hold personal data)", ()
        elif self._CREDENTIAL.search(text):
            record.msg, record.args = self._CREDENTIAL.sub(r"\1**********", text), ()
        return True


_REDACTED_LOGGERS = ("python_http_client", "python_http_client.client", "linebot", "linebot.v3.messaging.rest",
                     "urllib3.connectionpool", "twilio.http_client")


def install_log_redaction() -> None:
    for name in _REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())

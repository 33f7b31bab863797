"""SMS through Twilio's Messages API, with the official `twilio` client; one request per message.

Provider semantics (docs/delivery.md): no idempotency key. 201 = accepted. 429 = not accepted:
wait (`Retry-After`, bounded) and retry. 4xx = refused -> failed. 5xx or a time-out
after the request was sent -> the message may have gone out: `unknown`, never resent.
A connection that could not be opened is retried, then failed.

To point the client elsewhere (the loopback server in tests) we pass our own
`HttpClient` (the extension point twilio documents) that swaps the scheme and host
of each request URL for `base_url`; the path stays twilio's own.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, ClassVar
from urllib.parse import urlsplit, urlunsplit

import requests
from pydantic import SecretStr
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from connectors.channels.base import NO_JOURNAL, Channel, DeliveryJournal, Message, Outcome
from connectors.channels.policy import DeliveryPolicy, install_log_redaction, Throttle, retry_after_seconds
from kizuna.errors import KizunaError

log = logging.getLogger(__name__)
install_log_redaction()

MAX_BODY = 1600
#: How to opt out, on every SMS (appended unless the rendered text already carries the link): the
#: message's own signed unsubscribe link. A STOP reply is not offered: nothing here receives replies.
OPT_OUT = "配信停止: {url}"


def with_opt_out(message: Message) -> str:
    """The SMS text with its opt-out line (the unsubscribe link), unless the text already has the link."""
    url = message.extra.get("unsubscribe_url", "")
    if not url or url in message.body_text:
        return message.body_text
    return message.body_text.rstrip("\n") + "\n" + OPT_OUT.format(url=url)


class RebasedHttpClient(TwilioHttpClient):
    """twilio's HTTP client, sending to `base_url` instead of https://api.twilio.com (None: unchanged).

    Also keeps each thread's last response headers, which `TwilioRestException` does not carry
    (needed for `Retry-After`)."""

    def __init__(self, base_url: str | None, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base = urlsplit(base_url) if base_url else None
        self.local = threading.local()

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False) -> Response:  # type: ignore[override]
        if self.base is not None:
            parts = urlsplit(url)
            url = urlunsplit((self.base.scheme, self.base.netloc, self.base.path.rstrip("/") + parts.path,
                              parts.query, parts.fragment))
        self.local.headers = {}
        response = super().request(method, url, params=params, data=data, headers=headers, auth=auth,
                                   timeout=timeout, allow_redirects=allow_redirects)
        self.local.headers = dict(response.headers or {})
        return response


def e164(phone: str, country_code: str = "81") -> str | None:
    """A Japanese (or already international) number in E.164, or None."""
    raw = phone.strip()
    digits = re.sub(r"\D", "", raw)
    if raw.startswith("+") and 8 <= len(digits) <= 15:
        return "+" + digits
    if digits.startswith("0") and len(digits) in (10, 11):
        return f"+{country_code}{digits[1:]}"
    return None


class TwilioSmsChannel(Channel):
    name: ClassVar[str] = "sms"
    max_batch_size: ClassVar[int] = 1000
    resend_safe_for = None  # no idempotency key

    def __init__(self, account_sid: SecretStr, auth_token: SecretStr, *, from_number: str = "",
                 messaging_service_sid: str = "", base_url: str | None = None, policy: DeliveryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not (from_number or messaging_service_sid):
            raise KizunaError("SMS via Twilio needs a sender: set KIZUNA_TWILIO_FROM_NUMBER or "
                              "KIZUNA_TWILIO_MESSAGING_SERVICE_SID")
        self.policy = policy or DeliveryPolicy()
        self.http = RebasedHttpClient(base_url, self.policy.timeout)
        self._client = Client(account_sid.get_secret_value(), auth_token.get_secret_value(), http_client=self.http)
        self.base_url = base_url
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.throttle = Throttle(self.policy.requests_per_second, sleep=sleep)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"TwilioSmsChannel(base_url={self.base_url!r}, account_sid='**********', auth_token='**********')"

    def _send_one(self, message: Message) -> Outcome:
        to = e164(message.address)
        if to is None:
            return Outcome(message.send_id, "failed", "not a phone number that can receive SMS")
        body = with_opt_out(message)
        if not message.body_text.strip() or len(body) > MAX_BODY:
            return Outcome(message.send_id, "failed", f"body empty or longer than {MAX_BODY} characters "
                                                      "(with the opt-out line)")
        sender = ({"messaging_service_sid": self.messaging_service_sid} if self.messaging_service_sid
                  else {"from_": self.from_number})
        last = "no attempt made"
        for attempt in range(1, self.policy.max_attempts + 1):
            self.throttle.wait()
            try:
                sent = self._client.messages.create(to=to, body=body, **sender)
                return Outcome(message.send_id, "sent", f"accepted ({sent.status})", sent.sid)
            except TwilioRestException as exc:
                if exc.status == 429:
                    headers = getattr(self.http.local, "headers", {})
                    wait = retry_after_seconds(headers, default=self.policy.backoff(attempt))
                    if wait > self.policy.max_wait:
                        return Outcome(message.send_id, "failed", f"Twilio rate limit: asked to wait {wait:.0f} s, "
                                                                  "more than allowed; not sent")
                    last = "Twilio 429 rate limited"
                    self.throttle.pause(wait)
                    continue
                if exc.status >= 500:
                    return Outcome(message.send_id, "unknown", f"Twilio answered {exc.status} ({exc.msg}): the SMS "
                                   "may have been sent; not resent (no idempotency key). Check the Twilio log.")
                return Outcome(message.send_id, "failed", f"Twilio refused ({exc.status}, code {exc.code}): {exc.msg}")
            except requests.exceptions.ConnectTimeout as exc:
                last = f"could not connect to Twilio ({type(exc).__name__})"
            except requests.exceptions.ConnectionError as exc:
                if "NewConnectionError" not in repr(exc) and "ConnectionRefused" not in repr(exc):
                    return Outcome(message.send_id, "unknown", f"connection to Twilio lost ({type(exc).__name__}): "
                                   "the SMS may have been sent; not resent")
                last = f"could not connect to Twilio ({type(exc).__name__})"
            except requests.exceptions.RequestException as exc:  # read time-out and the like: may have arrived
                return Outcome(message.send_id, "unknown", f"no answer from Twilio ({type(exc).__name__}): the SMS "
                               "may have been sent; not resent (no idempotency key)")
            if attempt < self.policy.max_attempts:
                self._sleep(min(self.policy.max_wait, self.policy.backoff(attempt)))
        return Outcome(message.send_id, "failed",
                       f"{last}; gave up after {self.policy.max_attempts} attempts, not sent")

    def send_batch(self, messages: list[Message], journal: DeliveryJournal = NO_JOURNAL) -> list[Outcome]:
        def run(message: Message) -> Outcome:
            journal.handing_over([message.send_id])
            try:
                outcome = self._send_one(message)
            except Exception as exc:  # noqa: BLE001 - still one outcome per message
                log.exception("Twilio send failed unexpectedly")
                outcome = Outcome(message.send_id, "unknown", f"unexpected error {type(exc).__name__}; not resent")
            journal.settled([outcome])
            return outcome

        if self.policy.concurrency <= 1 or len(messages) <= 1:
            return [run(m) for m in messages]
        with ThreadPoolExecutor(max_workers=min(self.policy.concurrency, len(messages))) as pool:
            return list(pool.map(run, messages))

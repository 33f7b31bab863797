"""E-mail through SendGrid's v3 Mail Send API, with the official `sendgrid` client.

Design (how each recipient gets exactly the message rendered for them, 1,000 per request):
SendGrid's `content` is per request, `subject`, `headers`, `custom_args`, `send_at` and
`substitutions` are per personalization (one personalization = one recipient here).
For each message we replace its per-recipient values (unsubscribe URL, send id, name,
address) in the rendered text/HTML by substitution tags; messages whose remaining
"skeleton" is identical share one request, and each personalization carries its own
values as `substitutions` (small: a few hundred bytes, far under SendGrid's 10,000-byte
limit). We check for every message that the skeleton with its substitutions applied
gives back exactly its rendered text and HTML; if not (or the content is not shared
by anyone), the message goes in a request of its own content. Dynamic templates were
not used because the templates live in this repository (campaigns/templates), where
they are reviewed and the legal footer is checked.

Provider semantics (docs/delivery.md): no idempotency key. 202 = accepted (queued). 4xx = the
whole request was refused, nothing sent -> failed. 429 = not accepted -> wait for
`X-RateLimit-Reset` (bounded) and retry. 5xx or a time-out after the request was
written -> the outcome is unknown: recorded `unknown` with detail, never resent.
A connection that could not be made (nothing written) is retried, then failed.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, Callable, ClassVar, Iterator
from zoneinfo import ZoneInfo

from markupsafe import escape
from pydantic import SecretStr
from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient

from connectors.channels.base import NO_JOURNAL, Channel, DeliveryJournal, Message, Outcome
from connectors.channels.headers import list_unsubscribe, mail_date, message_id
from connectors.channels.policy import (DeliveryPolicy, Throttle, custom_args_problem, install_log_redaction,
                                        retry_after_seconds)
from connectors.channels.safe_text import one_line

log = logging.getLogger(__name__)
install_log_redaction()

MAX_PERSONALIZATIONS = 1000  # per request; also the recipient limit (one recipient per personalization here)
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_SUBSTITUTION_BYTES = 10_000
MAX_SEND_AT_AHEAD_SECONDS = 72 * 3600
_TAG = "[%kz{}%]"
_NOT_ONE_ADDRESS = re.compile(r"[\s,;<>]")


_HTML_SPECIAL = re.compile(r"[&<>\"']")
_TAGS = [_TAG.format(i) for i in range(64)]


def _skeleton(message: Message) -> tuple[str, str, dict[str, str]] | None:
    """(text, html, substitutions) with the message's per-recipient values replaced by tags, or None.

    Hot path of the e-mail channel (runs once per recipient): kept to plain string operations."""
    text = message.body_text
    html = message.body_html or ""
    if "[%kz" in text or "[%kz" in html:
        return None
    name = message.recipient_name
    values = [message.extra.get("unsubscribe_url", ""), message.send_id, name, message.address, *name.split()]
    values.sort(key=len, reverse=True)
    subs: dict[str, str] = {}
    done: set[str] = set()
    n = 0
    for value in values:
        if len(value) < 2 or value in done:
            continue
        done.add(value)
        if value in text or value in html:
            tag = _TAGS[n]
            n += 1
            text = text.replace(value, tag)
            html = html.replace(value, tag)
            subs[tag] = value
        if _HTML_SPECIAL.search(value):
            escaped = str(escape(value))
            if escaped in html:
                tag = _TAGS[n]
                n += 1
                html = html.replace(escaped, tag)
                subs[tag] = escaped
        if n > len(_TAGS) - 2:
            return None
    # The guarantee: the tags filled in give back exactly what was rendered, else no sharing.
    check_text, check_html = text, html
    for tag, value in subs.items():
        check_text = check_text.replace(tag, value)
        check_html = check_html.replace(tag, value)
    if check_text != message.body_text or check_html != (message.body_html or ""):
        return None
    return text, html, subs


class SendGridChannel(Channel):
    """Marketing e-mail via SendGrid. `send_batch` takes up to 10,000 messages and splits them
    into requests of at most 1,000 personalizations, sent `concurrency` at a time; a request is
    smaller when `policy.max_in_flight` recipients would not otherwise cover `concurrency`
    requests, so a process killed mid-batch leaves at most `max_in_flight` e-mails undecided."""

    name: ClassVar[str] = "email"
    max_batch_size: ClassVar[int] = 10_000
    resend_safe_for = None  # no idempotency key: an undecided e-mail waits for SendGrid's events

    def __init__(self, api_key: SecretStr, *, sender_name: str, sender_email: str,
                 host: str = "https://api.sendgrid.com", unsubscribe_group_id: int | None = None,
                 sandbox_mode: bool = False, timezone: str = "Asia/Tokyo", policy: DeliveryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep, unsubscribe_mailto: str = "") -> None:
        if not isinstance(api_key, SecretStr):
            raise TypeError("api_key must be a pydantic SecretStr (see kizuna.secrets.get_secret)")
        self._client = SendGridAPIClient(api_key=api_key.get_secret_value(), host=host)
        self.host = host
        self.sender = {"email": sender_email, "name": sender_name} if sender_name else {"email": sender_email}
        self.sender_email = sender_email
        self.timezone = timezone
        self.unsubscribe_mailto = unsubscribe_mailto or sender_email  # as KIZUNA_UNSUBSCRIBE_MAILTO defaults
        self.unsubscribe_group_id = unsubscribe_group_id
        self.sandbox_mode = sandbox_mode
        self.tz = ZoneInfo(timezone)
        self.policy = policy or DeliveryPolicy()
        self.throttle = Throttle(self.policy.requests_per_second, sleep=sleep)
        self._sleep = sleep
        self.requests_made = 0
        self.request_size = self.policy.request_size(MAX_PERSONALIZATIONS)

    def __repr__(self) -> str:
        return f"SendGridChannel(host={self.host!r}, api_key='**********', sandbox={self.sandbox_mode})"

    # ---- building requests -------------------------------------------------------------
    def _personalization(self, message: Message, subs: dict[str, str], now: float) -> dict[str, Any] | str:
        """The personalization for `message`, or the reason it cannot be sent."""
        if "@" not in message.address or _NOT_ONE_ADDRESS.search(message.address):
            return "not a single e-mail address"
        custom_args = {"send_id": message.send_id}
        if message.scenario_id:
            custom_args["scenario_id"] = message.scenario_id
        if message.step_id:
            custom_args["step_id"] = message.step_id
        if reason := custom_args_problem(custom_args, message):
            return f"refused: {reason}; custom_args go to SendGrid and come back in webhooks, never personal data"
        if sum(map(len, custom_args.values())) > 1000 and \
                len(json.dumps(custom_args, ensure_ascii=False).encode()) > MAX_CUSTOM_ARGS_BYTES:
            return f"custom_args larger than {MAX_CUSTOM_ARGS_BYTES} bytes"
        if sum(map(len, subs.values())) > 1000 and \
                len(json.dumps(subs, ensure_ascii=False).encode()) > MAX_SUBSTITUTION_BYTES:
            return f"substitutions larger than {MAX_SUBSTITUTION_BYTES} bytes"
        name = one_line(message.recipient_name)
        p: dict[str, Any] = {
            "to": [{"email": message.address, "name": name} if name else {"email": message.address}],
            "subject": one_line(message.subject),
            "custom_args": custom_args,
        }
        if subs:
            p["substitutions"] = subs
        # Per recipient (SendGrid's `headers` are per personalization): the RFC 8058 pair, and
        # Message-ID / Date, which SendGrid does not reserve (its reserved headers: x-sg-id,
        # x-sg-eid, received, dkim-signature, Content-Type, Content-Transfer-Encoding, To, From,
        # Subject, Reply-To, CC, BCC). Date is the time it goes out: `send_at` when scheduled.
        headers = list_unsubscribe(one_line(message.extra.get("unsubscribe_url", "")), self.unsubscribe_mailto)
        headers["Message-ID"] = message_id(message.send_id, self.sender_email)
        going_out = datetime.fromtimestamp(now, self.tz)
        if send_at := message.extra.get("send_at"):
            try:
                when = datetime.fromisoformat(send_at)
            except ValueError:
                return f"send_at {send_at!r} is not an ISO date-time"
            if when.tzinfo is None:
                when = when.replace(tzinfo=self.tz)  # the engine gives shop-local times
            ts = int(when.timestamp())
            if ts > now + MAX_SEND_AT_AHEAD_SECONDS:
                return f"send_at {send_at} is more than 72 hours ahead; SendGrid refuses to schedule it"
            if ts > now + 60:
                p["send_at"] = ts  # otherwise due already: send now
                going_out = when
        headers["Date"] = mail_date(going_out, self.timezone)
        p["headers"] = headers
        return p

    def build_requests(self, messages: list[Message]) -> tuple[list[tuple[list[int], dict[str, Any]]], dict[int, str]]:
        """Group `messages` into request bodies: [(indexes into messages, body)], and {index: reason refused}."""
        refused: dict[int, str] = {}
        return list(self.iter_requests(messages, refused)), refused

    def iter_requests(self, messages: list[Message], refused: dict[int, str]) -> Iterator[tuple[list[int], dict[str, Any]]]:
        """Yield request bodies as soon as a group of shared content reaches 1,000 personalizations (so sending
        starts while the rest is still being prepared), then the remainders; fill `refused` on the way."""
        now = time.time()
        groups: dict[tuple[str, str, str], list[tuple[int, dict[str, Any]]]] = {}
        for i, message in enumerate(messages):
            sk = _skeleton(message)
            if sk is None:  # content of its own, sent as rendered
                key, subs = ("own", message.send_id, ""), {}
            else:
                text, html, subs = sk
                key = ("shared", text, html)
            p = self._personalization(message, subs, now)
            if isinstance(p, str):
                refused[i] = p
                continue
            members = groups.setdefault(key, [])
            members.append((i, p))
            if len(members) == self.request_size:
                yield self._body(key, members, messages)
                groups[key] = []
        for key, members in groups.items():
            if members:
                yield self._body(key, members, messages)

    def _body(self, key: tuple[str, str, str], members: list[tuple[int, dict[str, Any]]],
              messages: list[Message]) -> tuple[list[int], dict[str, Any]]:
        first = messages[members[0][0]]
        if key[0] == "own":
            text, html = first.body_text, first.body_html or ""
        else:
            _, text, html = key
        content = [{"type": "text/plain", "value": text}]
        if html:
            content.append({"type": "text/html", "value": html})
        body: dict[str, Any] = {
            "personalizations": [p for _, p in members],
            "from": self.sender,
            "subject": first.subject,
            "content": content,
        }
        if self.unsubscribe_group_id is not None:
            body["asm"] = {"group_id": self.unsubscribe_group_id}
        if self.sandbox_mode:
            body["mail_settings"] = {"sandbox_mode": {"enable": True}}
        return [i for i, _ in members], body

    # ---- sending -------------------------------------------------------------------------
    def _post(self, ids: list[str], body: dict[str, Any]) -> list[Outcome]:
        def all_(status: str, detail: str, provider_id: str | None = None) -> list[Outcome]:
            return [Outcome(s, status, detail, provider_id) for s in ids]  # type: ignore[arg-type]

        last = "no attempt made"
        for attempt in range(1, self.policy.max_attempts + 1):
            self.throttle.wait()
            self.requests_made += 1
            try:
                response = self._client.client.mail.send.post(request_body=body, timeout=self.policy.timeout)
            except http_errors.TooManyRequestsError as exc:
                wait = retry_after_seconds(exc.headers, default=self.policy.backoff(attempt))
                if wait > self.policy.max_wait:
                    return all_("failed", f"SendGrid rate limit: asked to wait {wait:.0f} s, more than the "
                                          f"{self.policy.max_wait:.0f} s allowed (KIZUNA_CHANNEL_MAX_WAIT_SECONDS); "
                                          "not sent")
                last = f"SendGrid 429 rate limited (waited {wait:.2f} s)"
                log.info("SendGrid 429: waiting %.2f s before attempt %d", wait, attempt + 1)
                self.throttle.pause(wait)
                continue
            except http_errors.HTTPError as exc:
                status = int(exc.status_code)
                reason = _error_text(exc.body)
                if status >= 500:
                    return all_("unknown", f"SendGrid answered {status} ({reason}): the request may have been "
                                           "accepted; not resent (SendGrid has no idempotency key). Check the "
                                           "activity feed for these send ids before resending.")
                return all_("failed", f"SendGrid refused the request ({status}): {reason}; nothing was sent")
            except urllib.error.URLError as exc:  # raised while connecting / writing: the request never arrived
                last = f"could not reach SendGrid ({exc.reason})"
                if attempt < self.policy.max_attempts:
                    self._sleep(self.policy.backoff(attempt))
                continue
            except (TimeoutError, OSError) as exc:  # raised while waiting for the answer: it may have arrived
                return all_("unknown", f"no answer from SendGrid ({type(exc).__name__}: {exc}): the request may "
                                       "have been accepted; not resent (no idempotency key)")
            if response.status_code in (200, 202):
                message_id = _header(response.headers, "X-Message-Id")
                detail = "sandbox mode: validated by SendGrid, not delivered" if self.sandbox_mode else "accepted (202)"
                return all_("sent", detail, message_id)
            return all_("unknown", f"unexpected SendGrid answer {response.status_code}; not resent")
        return all_("failed", f"{last}; gave up after {self.policy.max_attempts} attempts, nothing was accepted")

    def send_batch(self, messages: list[Message], journal: DeliveryJournal = NO_JOURNAL) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(messages)
        refused: dict[int, str] = {}

        def run(indexes: list[int], body: dict[str, Any]) -> list[Outcome]:
            ids = [messages[i].send_id for i in indexes]
            journal.handing_over(ids)
            try:
                results = self._post(ids, body)
            except Exception as exc:  # noqa: BLE001 - a bug or odd error must still yield an outcome per message
                log.exception("SendGrid request failed unexpectedly")
                results = [Outcome(send_id, "unknown", f"unexpected error {type(exc).__name__}: {exc}; "
                                   "not resent") for send_id in ids]
            journal.settled(results)
            return results

        def collect(indexes: list[int], results: list[Outcome]) -> None:
            for i, outcome in zip(indexes, results):
                outcomes[i] = outcome

        requests = 0
        if self.policy.concurrency <= 1:
            for indexes, body in self.iter_requests(messages, refused):
                requests += 1
                collect(indexes, run(indexes, body))
        else:
            # Requests go out while later ones are still being prepared; at most 2 x concurrency in hand.
            with ThreadPoolExecutor(max_workers=self.policy.concurrency, thread_name_prefix="sendgrid") as pool:
                pending: deque[tuple[list[int], Future]] = deque()
                for indexes, body in self.iter_requests(messages, refused):
                    requests += 1
                    pending.append((indexes, pool.submit(run, indexes, body)))
                    while len(pending) > 2 * self.policy.concurrency:
                        done_indexes, future = pending.popleft()
                        collect(done_indexes, future.result())
                for done_indexes, future in pending:
                    collect(done_indexes, future.result())
        for i, reason in refused.items():
            outcomes[i] = Outcome(messages[i].send_id, "failed", reason)
        done = [o for o in outcomes if o is not None]
        assert len(done) == len(messages), "every message gets exactly one outcome"
        log.info("SendGrid: %d messages in %d requests", len(messages), requests)
        return done


def _header(headers: Any, name: str) -> str | None:
    try:
        return headers.get(name)  # http.client.HTTPMessage is case-insensitive
    except AttributeError:
        return None


def _error_text(body: Any) -> str:
    try:
        data = json.loads(body)
        return "; ".join(f"{e.get('field') or ''}: {e.get('message')}".strip(": ") for e in data.get("errors", []))[:500]
    except (TypeError, ValueError, AttributeError):
        return (body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body))[:500]

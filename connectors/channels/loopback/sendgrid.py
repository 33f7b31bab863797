"""A loopback SendGrid: `POST /v3/mail/send` with the checks that catch real mistakes.

Checked like SendGrid: Bearer API key (401), JSON body (400), 1..1,000 personalizations
and at most 1,000 recipients in all (400), each personalization's `to`, a `from`, a
subject for every personalization, `content` (text/plain first), string values in
`custom_args` / `substitutions` / `headers` (none of SendGrid's reserved headers), custom_args ≤ 10,000 bytes, substitutions
≤ 10,000 bytes, `send_at` not more than 72 h ahead, `asm.group_id` an integer. Accepted:
202 with `X-Message-Id`; sandbox mode: 200, validated, nothing delivered.

`accepted` holds one record per recipient as they would receive it: substitutions
applied to the content, the personalization's subject, headers and custom_args;
`deliveries` counts deliveries per `send_id` custom arg (the recipient's address when a
message has none), recorded or not.

Like SendGrid's Event Webhook, `send_events_to(url, private_key)` makes the server post
a signed `processed` event (with the message's custom_args) for every recipient it
accepts, in batches, to a webhook such as `kizuna webhook serve`: what reconciles an
e-mail whose answer was lost. With `delivered_after=S`, a `delivered` event follows S
seconds later, like the receiving mail server's answer: events keep arriving after the
last hand-over, as they do from SendGrid (delivered, opens, ...).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from connectors.channels.loopback.server import LoopbackServer, Reply, bearer

#: Headers SendGrid's Mail Send reserves (its v3 documentation); setting one is refused.
RESERVED_HEADERS = frozenset({"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
                              "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc"})
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


def _json_size_may_exceed(mapping: dict[str, Any], limit: int = 10_000) -> bool:
    """Cheap bound: a character takes at most 6 bytes in JSON (\\uXXXX), plus quotes and separators."""
    return sum(len(str(k)) + len(str(v)) + 6 for k, v in mapping.items()) * 6 > limit


def _error(message: str, field: str | None = None, status: int = 400) -> Reply:
    return Reply(status, {"errors": [{"message": message, "field": field, "help": None}]})


class SendGridLoopback(LoopbackServer):
    provider = "sendgrid"
    delivery_key = "send_id"

    def __init__(self, api_key: str = "SG.loopback-test-key", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.sandboxed_count = 0
        self._events: list[dict[str, Any]] = []
        self._events_url: str | None = None
        self._signing_key: Any = None
        self._events_thread: threading.Thread | None = None
        self._events_stop = threading.Event()
        self._events_posting = 0  # events taken from the queue whose post has not come back yet
        self._delayed: list[tuple[float, dict[str, Any]]] = []  # (when due, event): `delivered` events
        self._delivered_after: float | None = None
        self.events_posted = 0

    # ---- the Event Webhook ---------------------------------------------------------------
    def send_events_to(self, url: str, private_key: Any, every: float = 0.2,
                       delivered_after: float | None = None) -> None:
        """Post signed `processed` events for accepted recipients to `url` every `every` seconds, and
        `delivered` events `delivered_after` seconds after them (None: none).

        `private_key`: a `cryptography` EC P-256 private key whose public key the webhook trusts."""
        self._events_url, self._signing_key = url, private_key
        self._delivered_after = delivered_after
        self._events_thread = threading.Thread(target=self._post_events_loop, args=(every,),
                                               name="loopback-sendgrid-events", daemon=True)
        self._events_thread.start()

    def _post_events_loop(self, every: float) -> None:
        while not self._events_stop.wait(every):
            self.flush_events()
        self.flush_events()

    def flush_events(self) -> int:
        """Post the queued events now; returns how many the webhook took (kept queued on failure, like
        SendGrid, which retries)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        with self.lock:
            if self._events_url is None:
                return 0
            if self._delayed:
                now = time.time()
                self._events.extend(event for due, event in self._delayed if due <= now)
                self._delayed = [(due, event) for due, event in self._delayed if due > now]
            batch, self._events = self._events[:5000], self._events[5000:]
            self._events_posting = len(batch)
        if not batch:
            return 0
        body = json.dumps(batch).encode()
        timestamp = str(int(time.time()))
        signature = self._signing_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        request = urllib.request.Request(self._events_url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
            with self.lock:
                self._events_posting = 0
                self.events_posted += len(batch)
            return len(batch)
        except (urllib.error.URLError, OSError):
            with self.lock:
                self._events = batch + self._events
                self._events_posting = 0
            return 0

    def stats(self) -> dict[str, Any]:
        """Adds the Event Webhook's progress: events waiting (queued or being posted) and posted."""
        stats = super().stats()
        with self.lock:
            stats["events_pending"] = len(self._events) + len(self._delayed) + self._events_posting
            stats["events_posted"] = self.events_posted
        return stats

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self._events.clear()
            self._delayed.clear()
            self.sandboxed_count = 0
            self.events_posted = 0

    def stop(self) -> None:
        if self._events_thread is not None:
            self._events_stop.set()
            self._events_thread.join(15)
            self._events_thread = None
        super().stop()

    def _queue_events(self, mail: dict[str, Any], message_id: str) -> None:
        now = int(time.time())
        events = [{"email": p["to"][0]["email"], "timestamp": now, "event": "processed",
                   "sg_event_id": uuid.uuid4().hex, "sg_message_id": f"{message_id}.{n}",
                   **(mail.get("custom_args") or {}), **(p.get("custom_args") or {})}
                  for n, p in enumerate(mail["personalizations"])]
        with self.lock:
            self._events.extend(events)
            if self._delivered_after is not None:
                due = time.time() + self._delivered_after
                self._delayed.extend((due, {**e, "event": "delivered", "timestamp": int(due),
                                            "sg_event_id": uuid.uuid4().hex}) for e in events)

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        if path.rstrip("/") != "/v3/mail/send" or method != "POST":
            return _error("not found", status=404)
        if bearer(headers) != self.api_key:
            return _error("The provided authorization grant is invalid, expired, or revoked", status=401)
        if "application/json" not in (headers.get("Content-Type") or ""):
            return _error("Content-Type should be application/json.", status=415)
        if len(body) > 20 * 1024 * 1024:
            return _error("The request is larger than 20 MB", status=413)
        try:
            mail = json.loads(body)
        except ValueError:
            return _error("Bad Request: the JSON body could not be parsed")
        problem = self.validate(mail)
        if problem:
            return _error(*problem)
        sandbox = bool(mail.get("mail_settings", {}).get("sandbox_mode", {}).get("enable"))
        message_id = uuid.uuid4().hex[:22]
        if sandbox:
            with self.lock:
                self.sandboxed_count += len(mail["personalizations"])
            return Reply(200, None, {"X-Message-Id": message_id})
        top_args = mail.get("custom_args") or {}
        keys = [str({**top_args, **(p.get("custom_args") or {})}.get("send_id") or p["to"][0]["email"])
                for p in mail["personalizations"]]
        self._accept([self._deliver(mail, p, message_id) for p in mail["personalizations"]] if self.record
                     else [{}] * len(mail["personalizations"]), keys)
        if self._events_url is not None:
            self._queue_events(mail, message_id)
        return Reply(202, None, {"X-Message-Id": message_id})

    @staticmethod
    def validate(mail: Any) -> tuple[str, str | None] | None:
        if not isinstance(mail, dict):
            return "the request body must be a JSON object", None
        ps = mail.get("personalizations")
        if not isinstance(ps, list) or not 1 <= len(ps) <= 1000:
            return ("The personalizations field must have at least one and no more than 1000 items "
                    "(personalizations)", "personalizations")
        recipients = 0
        sender = mail.get("from")
        if not isinstance(sender, dict) or not _EMAIL.match(str(sender.get("email", ""))):
            return "The from object must be provided for every email send. It is an object that requires the " \
                   "email parameter, but may also contain a name parameter.", "from.email"
        top_args = mail.get("custom_args") or {}
        for n, p in enumerate(ps):
            where = f"personalizations.{n}"
            to = p.get("to")
            if not isinstance(to, list) or not to:
                return "The to array is required for all personalization objects, and must have at least one " \
                       "email object with a valid email address.", f"{where}.to"
            for kind in ("to", "cc", "bcc"):
                for r in p.get(kind) or []:
                    recipients += 1
                    if not isinstance(r, dict) or not _EMAIL.match(str(r.get("email", ""))):
                        return "Does not contain a valid address.", f"{where}.{kind}.email"
            if not (p.get("subject") or mail.get("subject")):
                return "The subject is required. You can get around this requirement if you use a template " \
                       "with a subject defined or if every personalization has a subject defined.", "subject"
            args = {**top_args, **(p.get("custom_args") or {})}
            if any(not isinstance(v, str) for v in args.values()):
                return "Custom args values must be strings.", f"{where}.custom_args"
            if _json_size_may_exceed(args) and len(json.dumps(args, ensure_ascii=False).encode()) > 10_000:
                return "Custom args must be no more than 10,000 bytes.", f"{where}.custom_args"
            subs = p.get("substitutions") or {}
            if any(not isinstance(v, str) for v in subs.values()):
                return "Substitutions must be strings.", f"{where}.substitutions"
            if _json_size_may_exceed(subs) and len(json.dumps(subs, ensure_ascii=False).encode()) > 10_000:
                return "Substitutions must be no more than 10,000 bytes.", f"{where}.substitutions"
            if any(not isinstance(v, str) for v in (p.get("headers") or {}).values()):
                return "Invalid type. Expected: string, given: object.", f"{where}.headers"
            reserved = [h for h in (p.get("headers") or {}) if h.lower() in RESERVED_HEADERS]
            if reserved:
                return f"The header {reserved[0]} is reserved and cannot be set in headers.", f"{where}.headers"
            if "send_at" in p and (not isinstance(p["send_at"], int) or p["send_at"] > time.time() + 72 * 3600):
                return "send_at must be a UNIX timestamp no more than 72 hours in the future", f"{where}.send_at"
        if recipients > 1000:
            return "The total number of recipients must be no more than 1000.", "personalizations"
        content = mail.get("content")
        if not mail.get("template_id"):
            if not isinstance(content, list) or not content:
                return "Unless a valid template_id is provided, the content parameter is required.", "content"
            for i, c in enumerate(content):
                if not isinstance(c, dict) or not c.get("type") or not isinstance(c.get("value"), str) or not c["value"]:
                    return "The content value must be a string at least one character in length.", f"content.{i}.value"
            types = [c["type"] for c in content]
            if "text/plain" in types and types[0] != "text/plain":
                return "If present, text/plain content must be first, followed by text/html.", "content"
        asm = mail.get("asm")
        if asm is not None and not isinstance(asm.get("group_id"), int):
            return "The asm.group_id must be an integer.", "asm.group_id"
        return None

    @staticmethod
    def _deliver(mail: dict[str, Any], p: dict[str, Any], message_id: str) -> dict[str, Any]:
        subs = p.get("substitutions") or {}

        def apply(text: str) -> str:
            for tag, value in subs.items():
                text = text.replace(tag, value)
            return text

        content = {c["type"]: apply(c["value"]) for c in mail.get("content") or []}
        return {
            "to": p["to"][0]["email"], "name": p["to"][0].get("name"), "from": mail["from"]["email"],
            "subject": apply(p.get("subject") or mail.get("subject", "")), "text": content.get("text/plain"),
            "html": content.get("text/html"), "headers": {**(mail.get("headers") or {}), **(p.get("headers") or {})},
            "custom_args": {**(mail.get("custom_args") or {}), **(p.get("custom_args") or {})},
            "send_at": p.get("send_at", mail.get("send_at")), "asm": mail.get("asm"), "message_id": message_id,
        }

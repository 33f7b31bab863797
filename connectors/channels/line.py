"""LINE through the Messaging API (multicast), with the official `line-bot-sdk` (v3).

Multicast sends the same messages to up to 500 user ids, so messages are grouped by
identical text and each group is sent in chunks of at most 500. Every request carries
an `X-Line-Retry-Key`: a UUID derived from the chunk's send ids, so it is the same on
every retry of that chunk. Across runs (a crash after LINE accepted a chunk but before
the ledger recorded it), the chunk might re-form differently with new messages, so
each chunk is written ahead to a small journal (`state_dir/line-chunks.json`) before it
is sent and removed once its outcome is definite; a message found there within the
key's life is resent in its original chunk with its original key.
That makes retries safe (docs/delivery.md): 5xx and time-outs are retried with the same key,
a 409 means "already accepted" and counts as sent, a 429 waits and retries.

LINE honours a retry key for 24 hours only, so the safety has an end:
`resend_safe_for` is 23 hours (an hour's margin). The engine hands an undecided message
over again only within it; after that it stays `unknown` for a person
(`kizuna sends unknown`), since a resend could no longer be recognised as a repeat.
A 429 after an attempt that may have been accepted (a 5xx or a time-out before it)
leaves the chunk `unknown`, never `failed`: "not sent" would not be true.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Callable, ClassVar

from linebot.v3.messaging import ApiClient, ApiException, Configuration, MessagingApi, MulticastRequest, TextMessage
from pydantic import SecretStr

from connectors.channels.base import NO_JOURNAL, Channel, DeliveryJournal, Message, Outcome
from connectors.channels.policy import DeliveryPolicy, install_log_redaction, Throttle, retry_after_seconds

log = logging.getLogger(__name__)
install_log_redaction()

MAX_TO = 500
#: How to opt out, on every LINE message (appended unless the text already says it): blocking the
#: account is LINE's own opt-out, and its `unfollow` webhook suppresses the customer's LINE messages
#: (kizuna/events/load.py). The same words for everyone, so messages still share a multicast.
OPT_OUT = "配信停止をご希望の場合は、このアカウントをブロックしてください。"


def with_opt_out(text: str) -> str:
    """The LINE text with its opt-out line, unless it already carries it."""
    return text if OPT_OUT in text else text.rstrip("\n") + "\n\n" + OPT_OUT
MAX_TEXT = 5000
_USER_ID = re.compile(r"^U[0-9a-f]{32}$")
#: Namespace of the retry keys: uuid5(namespace, send ids of the chunk).
RETRY_KEY_NAMESPACE = uuid.UUID("5b0f3c1e-7a55-4d8e-9c39-6b1d2f0e4a77")
#: How long LINE recognises a retry key (its documentation: 24 hours).
RETRY_KEY_LIFE = timedelta(hours=24)
#: How long kizuna relies on it: an hour's margin for clocks and queues.
RESEND_SAFE_FOR = RETRY_KEY_LIFE - timedelta(hours=1)


def retry_key(send_ids: list[str]) -> str:
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, "\n".join(send_ids)))


class LineChannel(Channel):
    name: ClassVar[str] = "line"
    max_batch_size: ClassVar[int] = 10_000
    resend_safe_for = RESEND_SAFE_FOR

    def __init__(self, access_token: SecretStr, *, host: str = "https://api.line.me",
                 policy: DeliveryPolicy | None = None, sleep: Callable[[float], None] = time.sleep,
                 state_dir: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(access_token, SecretStr):
            raise TypeError("access_token must be a pydantic SecretStr (see kizuna.secrets.get_secret)")
        self.host = host
        configuration = Configuration(host=host, access_token=access_token.get_secret_value())
        self._api = MessagingApi(ApiClient(configuration))
        self.policy = policy or DeliveryPolicy()
        self.throttle = Throttle(self.policy.requests_per_second, sleep=sleep)
        self._sleep = sleep
        self._clock = clock
        self.chunk_size = self.policy.request_size(MAX_TO)
        self.journal = Path(state_dir) / "line-chunks.json" if state_dir else None
        self._journal_lock = threading.Lock()
        if self.journal is None:  # without the journal a resend would form new chunks under new keys
            self.resend_safe_for = None  # type: ignore[misc]

    # ---- the write-ahead journal of chunks in flight ----------------------------------
    def _load_journal(self) -> dict[str, dict]:
        if self.journal is None or not self.journal.exists():
            return {}
        entries = json.loads(self.journal.read_text(encoding="utf-8"))
        cutoff = self._clock() - RESEND_SAFE_FOR.total_seconds()  # older keys are no longer honoured
        return {k: v for k, v in entries.items() if v["at"] >= cutoff}

    def _update_journal(self, add: dict[str, dict] | None = None, remove: str | None = None) -> None:
        if self.journal is None:
            return
        with self._journal_lock:
            entries = self._load_journal()
            entries.update(add or {})
            entries.pop(remove or "", None)
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            partial = self.journal.with_suffix(".part")
            partial.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
            os.replace(partial, self.journal)

    def __repr__(self) -> str:
        return f"LineChannel(host={self.host!r}, access_token='**********')"

    def _multicast(self, ids: list[str], to: list[str], text: str, journal: DeliveryJournal) -> list[Outcome]:
        key = retry_key(ids)
        self._update_journal(add={key: {"send_ids": ids, "to": to, "text": text, "at": self._clock()}})
        journal.handing_over(ids)
        outcomes = self._multicast_with_key(ids, to, text, key)
        if outcomes[0].status != "unknown":
            self._update_journal(remove=key)
        journal.settled(outcomes)
        return outcomes

    def _multicast_with_key(self, ids: list[str], to: list[str], text: str, key: str) -> list[Outcome]:
        def all_(status: str, detail: str, provider_id: str | None = None) -> list[Outcome]:
            return [Outcome(s, status, detail, provider_id) for s in ids]  # type: ignore[arg-type]

        request = MulticastRequest(to=to, messages=[TextMessage(text=text)])
        last, last_unknown = "no attempt made", False
        maybe_accepted = False  # an earlier attempt ended without a definite answer
        for attempt in range(1, self.policy.max_attempts + 1):
            self.throttle.wait()
            try:
                response = self._api.multicast_with_http_info(request, x_line_retry_key=key,
                                                              _request_timeout=self.policy.timeout)
                request_id = (response.headers or {}).get("x-line-request-id")
                return all_("sent", f"accepted (retry key {key})", request_id)
            except ApiException as exc:
                status = int(exc.status or 0)
                headers = dict(exc.headers or {})
                if status == 409:  # this retry key was already accepted: the messages went out once
                    accepted = {k.lower(): v for k, v in headers.items()}.get("x-line-accepted-request-id")
                    return all_("sent", f"accepted earlier (409 on retry key {key})", accepted)
                if status == 429:
                    wait = retry_after_seconds(headers, default=self.policy.backoff(attempt))
                    last, last_unknown = f"LINE 429 rate limited: {_body(exc.body)}", maybe_accepted
                    if wait > self.policy.max_wait:
                        if maybe_accepted:
                            break  # an earlier attempt may have gone out: unknown, not "not sent"
                        return all_("failed", f"LINE rate limit: asked to wait {wait:.0f} s, more than allowed; not sent")
                    self.throttle.pause(wait)
                    continue
                if status >= 500 or status == 0:
                    last, last_unknown = f"LINE answered {status or 'no status'} ({_body(exc.body)})", True
                    maybe_accepted = True
                elif maybe_accepted:  # refused now, but an earlier attempt of the same request may have gone out
                    last, last_unknown = f"LINE refused a retry ({status}): {_body(exc.body)}", True
                    break
                else:
                    return all_("failed", f"LINE refused the request ({status}): {_body(exc.body)}")
            except Exception as exc:  # noqa: BLE001 - transport errors (time-outs, resets): retry with the same key
                last, last_unknown = f"no answer from LINE ({type(exc).__name__})", True
                maybe_accepted = True
            if attempt < self.policy.max_attempts:
                self._sleep(min(self.policy.max_wait, self.policy.backoff(attempt)))
        if last_unknown:
            return all_("unknown", f"{last}; gave up with retry key {key}, which LINE may have accepted: "
                                   "resending the same chunk within 24 h of the first attempt is safe")
        return all_("failed", f"{last}; gave up after {self.policy.max_attempts} attempts, nothing accepted")

    def _resend_journalled(self, messages: list[Message], outcomes: list[Outcome | None],
                           journal: DeliveryJournal) -> None:
        """Messages of a chunk that was in flight when a previous run stopped: resend that chunk as it was."""
        entries = self._load_journal()
        if not entries:
            return
        where = {sid: key for key, entry in entries.items() for sid in entry["send_ids"]}
        position = {m.send_id: i for i, m in enumerate(messages)}
        for key in dict.fromkeys(where[m.send_id] for m in messages if m.send_id in where):
            entry = entries[key]
            mine = [sid for sid in entry["send_ids"] if sid in position]
            journal.handing_over(mine)
            chunk_outcomes = self._multicast_with_key(entry["send_ids"], entry["to"], entry["text"], key)
            if chunk_outcomes[0].status != "unknown":
                self._update_journal(remove=key)
            journal.settled([o for o in chunk_outcomes if o.send_id in position])
            for o in chunk_outcomes:
                if o.send_id in position:
                    outcomes[position[o.send_id]] = o

    def send_batch(self, messages: list[Message], journal: DeliveryJournal = NO_JOURNAL) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(messages)
        self._resend_journalled(messages, outcomes, journal)
        groups: dict[str, list[int]] = {}
        for i, m in enumerate(messages):
            if outcomes[i] is not None:
                continue
            if not _USER_ID.match(m.address or ""):
                outcomes[i] = Outcome(m.send_id, "failed", "not a LINE user id (U + 32 hex digits)")
            elif not m.body_text.strip() or len(with_opt_out(m.body_text)) > MAX_TEXT:
                outcomes[i] = Outcome(m.send_id, "failed", f"text empty or longer than {MAX_TEXT} characters "
                                                           "(with the opt-out line)")
            else:
                groups.setdefault(with_opt_out(m.body_text), []).append(i)
        size = self.chunk_size
        chunks = [(text, idx[s:s + size]) for text, idx in groups.items() for s in range(0, len(idx), size)]

        def run(chunk: tuple[str, list[int]]) -> tuple[list[int], list[Outcome]]:
            text, idx = chunk
            return idx, self._multicast([messages[i].send_id for i in idx], [messages[i].address for i in idx], text,
                                        journal)

        if len(chunks) <= 1 or self.policy.concurrency <= 1:
            results = list(map(run, chunks))
        else:
            with ThreadPoolExecutor(max_workers=min(self.policy.concurrency, len(chunks))) as pool:
                results = list(pool.map(run, chunks))
        for idx, chunk_outcomes in results:
            for i, o in zip(idx, chunk_outcomes):
                outcomes[i] = o
        done = [o for o in outcomes if o is not None]
        assert len(done) == len(messages)
        return done


def _body(body: object) -> str:
    try:
        return json.loads(body).get("message", "")[:300]  # type: ignore[arg-type]
    except (TypeError, ValueError, AttributeError):
        return str(body)[:300]

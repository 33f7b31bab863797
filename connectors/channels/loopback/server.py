"""The core of the loopback provider servers: a real HTTP server on 127.0.0.1, an ephemeral
port, a queue of programmable faults, and a record of what it accepted.

Faults are taken one per request, first in first out; with none queued the server
answers as the provider would, or, with a random fault mix (`fault_rate`, `seed`), plays
one of `FAULT_KINDS` on that share of requests. A fault can answer *instead of* the
provider (429, 5xx, slow or no answer: nothing accepted) or *after* accepting
(`accepted=True`: the provider took the message but the answer was lost or slow): the
case that makes an outcome unknown.

Every recipient accepted is counted under its delivery key (`deliveries`: SendGrid by the
`send_id` custom arg, LINE by user id), so a bench can compare what the provider got
against the send ledger. A server in another process is driven through `/_loopback/...`
(never faulted, never counted as provider requests): `GET stats`, `GET deliveries`,
`POST reset`, `POST faults` (a JSON list of `Fault` fields, queued), `POST advance`
(`{"seconds": N}`: the provider's clock jumps ahead, e.g. past LINE's retry-key life).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass
class Fault:
    status: int = 0  # 0: the provider's normal answer (after `delay`)
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    delay: float = 0.0  # seconds before answering (a client time-out shorter than this = time-out)
    accepted: bool = False  # process (accept) the request first, then answer with this fault
    drop: bool = False  # after `delay`, close the connection without answering (after processing if `accepted`)
    reset_in: float | None = None  # 429: X-RateLimit-Reset = now + reset_in, computed when answering

    @classmethod
    def error(cls, status: int = 500, accepted: bool = False) -> "Fault":
        return cls(status=status, body={"message": f"loopback fault {status}"}, accepted=accepted)

    @classmethod
    def rate_limit(cls, wait: float = 0.1, retry_after: bool = True, reset: bool = True) -> "Fault":
        headers = {}
        if retry_after:
            headers["Retry-After"] = f"{wait:.3f}"
        if reset:
            headers["X-RateLimit-Limit"] = "600"
            headers["X-RateLimit-Remaining"] = "0"
        return cls(status=429, headers=headers, body={"message": "Too Many Requests"}, reset_in=wait if reset else None)

    def reply_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.reset_in is not None:
            headers["X-RateLimit-Reset"] = f"{time.time() + self.reset_in:.3f}"
        return headers

    @classmethod
    def timeout(cls, seconds: float, accepted: bool = False) -> "Fault":
        """No answer within `seconds`: accepted (then answered late), or never processed (connection dropped)."""
        return cls(status=0, delay=seconds, accepted=accepted, drop=not accepted)

    @classmethod
    def slow(cls, seconds: float) -> "Fault":
        return cls(status=0, delay=seconds)

    @classmethod
    def dropped(cls, accepted: bool = False) -> "Fault":
        """The connection closes at once without an answer: before processing, or right after accepting."""
        return cls(drop=True, accepted=accepted)


#: The random fault mix: kind -> fault, given the generator and how long a time-out holds the answer.
#: Each is something providers do: refuse for a while (429), fail before or after taking the
#: request (5xx), answer too late (a client time-out) or not at all (a dropped connection).
FAULT_KINDS: dict[str, Callable[[random.Random, float], Fault]] = {
    "429": lambda rng, hold: Fault.rate_limit(round(rng.uniform(0.05, 0.25), 3)),
    "500": lambda rng, hold: Fault.error(500),
    "500-accepted": lambda rng, hold: Fault.error(500, accepted=True),
    "timeout": lambda rng, hold: Fault.timeout(hold),
    "timeout-accepted": lambda rng, hold: Fault.timeout(hold, accepted=True),
    "drop": lambda rng, hold: Fault.dropped(),
    "drop-accepted": lambda rng, hold: Fault.dropped(accepted=True),
}


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class LoopbackServer:
    """Subclasses implement `handle(method, path, headers, body) -> Reply`, where they validate and accept."""

    provider = "loopback"
    #: What `deliveries` counts accepted recipients by (subclasses: the provider's own identity of a message).
    delivery_key = "recipient"

    def __init__(self, host: str = "127.0.0.1", record: bool = True, fault_rate: float = 0.0,
                 seed: int | None = None, fault_kinds: list[str] | None = None, fault_hold: float = 1.5) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"loopback servers bind to 127.0.0.1 only, not {host!r}")
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate is a probability between 0 and 1, not {fault_rate}")
        unknown = sorted(set(fault_kinds or []) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; kinds are: {', '.join(FAULT_KINDS)}")
        self.host = host
        self.record = record
        self.faults: deque[Fault] = deque()
        self.fault_rate = fault_rate
        self.fault_kinds = list(fault_kinds or FAULT_KINDS)
        self.fault_hold = fault_hold  # how long a time-out fault holds the answer (longer than the client waits)
        self._rng = random.Random(seed)
        self.faults_played: Counter[str] = Counter()  # random fault kind -> times played
        self.accepted: list[dict[str, Any]] = []
        self.accepted_count = 0
        self.deliveries: Counter[str] = Counter()  # delivery key -> times accepted
        self.requests: list[dict[str, Any]] = []  # every request: path, status, a few headers
        self.request_count = 0
        self.in_progress = 0  # provider requests being handled now (a time-out fault may outlive its client)
        self.clock_offset = 0.0  # seconds the provider's clock is ahead of ours (`advance`)
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- life cycle ---------------------------------------------------------------------
    def start(self) -> "LoopbackServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                reply = server._dispatch(self.command, self.path, self.headers, body)
                if reply is None:  # connection dropped on purpose
                    self.close_connection = True
                    return
                payload = b"" if reply.body is None else (
                    reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode())
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (time-out)
                    self.close_connection = True

            do_POST = do_GET = do_PUT = do_DELETE = _serve

        self._httpd = ThreadingHTTPServer((self.host, 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"loopback-{self.provider}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---- faults and records -------------------------------------------------------------
    def fail_next(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def reset(self) -> None:
        """Forget everything received (records, counts, deliveries, queued faults); the random fault
        stream and the clock go on. Subclasses also forget their provider state."""
        with self.lock:
            self.faults.clear()
            self.accepted.clear()
            self.requests.clear()
            self.accepted_count = 0
            self.request_count = 0
            self.deliveries.clear()
            self.faults_played.clear()

    def now(self) -> float:
        """The provider's clock: ours plus what `advance` added."""
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.clock_offset += seconds

    def _accept(self, items: list[dict[str, Any]], keys: list[str] | None = None) -> None:
        """Count `items` as accepted (kept when recording); `keys`: each one's delivery key."""
        with self.lock:
            self.accepted_count += len(items)
            if self.record:
                self.accepted.extend(items)
            if keys:
                self.deliveries.update(keys)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"accepted": self.accepted_count, "requests": self.request_count, "in_progress": self.in_progress,
                    "faults": dict(self.faults_played)}

    def delivery_counts(self) -> dict[str, Any]:
        with self.lock:
            return {"key": self.delivery_key, "counts": dict(self.deliveries)}

    def _control(self, method: str, path: str, body: bytes) -> Reply:
        """`/_loopback/...`: driving a server in another process (the benches)."""
        name = path.split("?")[0][len("/_loopback/"):].strip("/")
        try:
            data = json.loads(body) if body else None
        except ValueError:
            return Reply(400, {"message": "the body must be JSON"})
        if method == "GET" and name == "stats":
            return Reply(200, self.stats())
        if method == "GET" and name == "deliveries":
            return Reply(200, self.delivery_counts())
        if method == "POST" and name == "reset":
            self.reset()
            return Reply(200, {"reset": True})
        if method == "POST" and name == "faults" and isinstance(data, list):
            try:
                faults = [Fault(**f) for f in data]
            except TypeError as exc:
                return Reply(400, {"message": f"not a fault: {exc}", "fields": list(asdict(Fault()))})
            self.fail_next(*faults)
            return Reply(200, {"queued": len(faults)})
        if method == "POST" and name == "advance" and isinstance(data, dict) \
                and isinstance(data.get("seconds"), (int, float)):
            self.advance(float(data["seconds"]))
            return Reply(200, {"clock_offset": self.clock_offset})
        return Reply(404, {"message": f"no loopback control {method} {name!r}: GET stats, GET deliveries, "
                                      "POST reset, POST faults [..], POST advance {\"seconds\": N}"})

    def _next_fault(self) -> tuple[Fault | None, str | None]:
        """The queued fault first; else, with probability `fault_rate`, one of the random mix (under the lock)."""
        if self.faults:
            return self.faults.popleft(), "queued"
        if self.fault_rate and self._rng.random() < self.fault_rate:
            kind = self._rng.choice(self.fault_kinds)
            self.faults_played[kind] += 1
            return FAULT_KINDS[kind](self._rng, self.fault_hold), kind
        return None, None

    def _dispatch(self, method: str, path: str, headers: Any, body: bytes) -> Reply | None:
        if path.startswith("/_loopback/"):  # for a server in another process (the bench)
            return self._control(method, path, body)
        with self.lock:
            fault, kind = self._next_fault()
            self.request_count += 1
            self.in_progress += 1
            entry = {"n": self.request_count, "path": path, "status": None, "bytes": len(body),
                     "retry_key": headers.get("X-Line-Retry-Key"), "fault": kind}
            if self.record:
                self.requests.append(entry)  # logged on arrival: a time-out still shows as a request
        try:
            return self._answer(fault, entry, method, path, headers, body)
        finally:
            with self.lock:
                self.in_progress -= 1

    def _answer(self, fault: Fault | None, entry: dict[str, Any], method: str, path: str, headers: Any,
                body: bytes) -> Reply | None:
        if fault is not None and not fault.accepted:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop:
                entry["status"] = 0
                return None
            if fault.status:
                entry["status"] = fault.status
                return Reply(fault.status, fault.body, fault.reply_headers())
        reply = self.handle(method, path, headers, body)
        if fault is not None and fault.accepted:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop:
                entry["status"] = 0
                return None
            if fault.status:
                reply = Reply(fault.status, fault.body, fault.reply_headers())
        entry["status"] = reply.status
        return reply

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:  # pragma: no cover
        raise NotImplementedError


def bearer(headers: Any) -> str | None:
    value = headers.get("Authorization") or ""
    return value[7:] if value.startswith("Bearer ") else None

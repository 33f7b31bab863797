"""The core of the loopback provider servers: a real HTTP server on 127.0.0.1, an ephemeral
port, a queue of programmable faults, and a record of what it accepted.

Faults are taken one per request, first in first out; with none queued the server
answers as the provider would. A fault can answer *instead of* the provider (429, 5xx,
slow or no answer: nothing accepted) or *after* accepting (`accepted=True`: the provider
took the message but the answer was lost or slow): the case that makes an outcome unknown.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass
class Fault:
    status: int = 0  # 0: the provider's normal answer (after `delay`)
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    delay: float = 0.0  # seconds before answering (a client time-out shorter than this = time-out)
    accepted: bool = False  # process (accept) the request first, then answer with this fault
    drop: bool = False  # after `delay`, close the connection without answering or processing
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


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class LoopbackServer:
    """Subclasses implement `handle(method, path, headers, body) -> Reply`, where they validate and accept."""

    provider = "loopback"

    def __init__(self, host: str = "127.0.0.1", record: bool = True) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"loopback servers bind to 127.0.0.1 only, not {host!r}")
        self.host = host
        self.record = record
        self.faults: deque[Fault] = deque()
        self.accepted: list[dict[str, Any]] = []
        self.accepted_count = 0
        self.requests: list[dict[str, Any]] = []  # every request: path, status, a few headers
        self.request_count = 0
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
        with self.lock:
            self.faults.clear()
            self.accepted.clear()
            self.requests.clear()
            self.accepted_count = 0
            self.request_count = 0

    def _accept(self, items: list[dict[str, Any]]) -> None:
        with self.lock:
            self.accepted_count += len(items)
            if self.record:
                self.accepted.extend(items)

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {"accepted": self.accepted_count, "requests": self.request_count}

    def _dispatch(self, method: str, path: str, headers: Any, body: bytes) -> Reply | None:
        if path == "/_loopback/stats":  # for a server in another process (the bench)
            return Reply(200, self.stats())
        with self.lock:
            fault = self.faults.popleft() if self.faults else None
            self.request_count += 1
            entry = {"n": self.request_count, "path": path, "status": None, "bytes": len(body),
                     "retry_key": headers.get("X-Line-Retry-Key")}
            if self.record:
                self.requests.append(entry)  # logged on arrival: a time-out still shows as a request
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
            if fault.status:
                reply = Reply(fault.status, fault.body, fault.reply_headers())
        entry["status"] = reply.status
        return reply

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:  # pragma: no cover
        raise NotImplementedError


def bearer(headers: Any) -> str | None:
    value = headers.get("Authorization") or ""
    return value[7:] if value.startswith("Bearer ") else None

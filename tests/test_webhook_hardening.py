"""The webhook service against hostile requests: real servers on loopback, real signatures.

1. Size: a chunked upload (no Content-Length) is cut off once it passes the body limit, and
   the server's memory stays bounded: the service runs as a real subprocess (`kizuna webhook
   serve`) and its peak RSS is read from /proc. Without signature headers nothing is read.
2. Shape: signed bodies that are not the provider's shape (deep nesting, NaN/Infinity, wrong
   types, timestamps out of range, non-object events, `events` not a list, ...) get 400 with
   a short reason, nothing is stored, and the service stays healthy: a table of cases, then
   random mutations of valid batches (fixed seed) that are malformed by construction, then
   random byte damage where the only promise is "never a 5xx, never a half-stored batch".
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import select
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kizuna.config import Settings
from kizuna.events.webhook import MAX_BODY_BYTES, create_app
from test_events import LINE_SECRET, line_headers, post, running, sendgrid_headers, sg_event

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
SG, LINE = "/webhooks/sendgrid", "/webhooks/line"
#: Text put in bad values: an answer must never echo it (responses never echo request content).
MARKER = "ECHO-MARKER-7f3a"


@pytest.fixture(scope="module")
def sg_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


def signed(path: str, body: bytes, private: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    return sendgrid_headers(private, body) if path == SG else line_headers(body)


def counts(settings: Settings) -> tuple[int, int]:
    """Rows in the two event tables (read straight from the SQLite file)."""
    con = sqlite3.connect(str(settings.events_store))
    try:
        return tuple(con.execute(f"select count(*) from {t}").fetchone()[0]  # type: ignore[return-value]
                     for t in ("sendgrid_events", "line_events"))
    finally:
        con.close()


def healthy(base: str) -> bool:
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
        return response.status == 200 and json.loads(response.read())["status"] == "ok"


# ---- 1. size: chunked uploads, a real server process, its memory --------------------------------


@contextmanager
def server_process(tmp: Path, sg_public_key: str):
    """`kizuna webhook serve` in its own process on a free loopback port; yields (pid, base URL)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    env = {**os.environ, "KIZUNA_HOME": str(REPO), "KIZUNA_DATA_DIR": str(tmp / "data"),
           "KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY": sg_public_key, "KIZUNA_LINE_CHANNEL_SECRET": LINE_SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "kizuna.cli", "webhook", "serve", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "the webhook service exited at start-up"
            assert time.monotonic() < deadline, "the webhook service did not start"
            try:
                if healthy(base):
                    break
            except OSError:
                time.sleep(0.1)
        yield proc.pid, base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def peak_rss(pid: int) -> int:
    """The process's peak resident set size (VmHWM), in bytes: it catches a spike freed since."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def upload_chunked(base: str, path: str, headers: dict[str, str], total: int,
                   chunk: int = 64 * 1024) -> tuple[int, dict, int]:
    """POST `total` bytes with Transfer-Encoding: chunked (no Content-Length), stopping as soon as the
    server answers; returns (status, JSON answer, body bytes the server took before answering)."""
    host, port = urllib.parse.urlsplit(base).netloc.split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    try:
        head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", "Content-Type": "application/json",
                                                     "Transfer-Encoding": "chunked", **headers}.items())
        sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode("latin-1"))
        frame = f"{chunk:x}\r\n".encode() + b"7" * chunk + b"\r\n"
        sock.setblocking(False)
        sent, pending = 0, b""
        deadline = time.monotonic() + 60
        while sent < total or pending:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            assert time.monotonic() < deadline, "upload stalled: the server neither read nor answered"
            if readable:
                break  # an answer (or a close) before the whole body: stop sending
            if not writable:
                continue
            pending = pending or frame
            try:
                n = sock.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                break
            pending = pending[n:]
            sent += n
        else:
            sock.sendall(b"0\r\n\r\n")
        sock.setblocking(True)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:  # the server closed with our bytes unread: its answer came first
            pass
    finally:
        sock.close()
    status = int(answer.split(b" ", 2)[1])
    return status, json.loads(answer.split(b"\r\n\r\n", 1)[1]), sent


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


@pytest.fixture(scope="module")
def process(tmp_path_factory: pytest.TempPathFactory, sg_key):
    with server_process(tmp_path_factory.mktemp("webhook-process"), sg_key[1]) as (pid, base):
        # Warm up (imports, first store write) so the peak below measures the uploads only.
        for path in (SG, LINE):
            body = b"[]" if path == SG else b'{"events": []}'
            assert post(base + path, body, signed(path, body, sg_key[0]))[0] == 200
        yield pid, base


BODY = 50 * MIB


@pytest.mark.parametrize("path", [SG, LINE])
def test_a_chunked_upload_is_cut_off_at_the_limit_and_memory_stays_bounded(process, sg_key, path) -> None:
    """50 MiB chunked with signature headers (so the body must be read to check them): 413 once past
    5 MiB, the rest never taken, and the server's peak RSS grows by far less than the body."""
    pid, base = process
    bogus = {"X-Twilio-Email-Event-Webhook-Signature": "MEUCIQ==",
             "X-Twilio-Email-Event-Webhook-Timestamp": str(int(time.time()))} if path == SG \
        else {"X-Line-Signature": "bm90IGEgc2lnbmF0dXJl"}
    before = peak_rss(pid)
    status, answer, sent = upload_chunked(base, path, bogus, BODY)
    grown = peak_rss(pid) - before
    assert (status, answer) == (413, {"error": "too large"})
    # What the server took: the limit, plus what loopback socket buffers hold (a few MiB).
    assert sent < MAX_BODY_BYTES + 16 * MIB, f"{sent / MIB:.0f} MiB sent before the answer"
    assert grown < 20 * MIB, f"peak RSS grew by {grown / MIB:.0f} MiB for a {BODY // MIB} MiB body"
    assert healthy(base)


STALE = str(int(time.time()) - 3600)
HEADERS_ALONE_REFUSE = [
    pytest.param(SG, {}, "unsigned", id="sendgrid: no signature headers"),
    pytest.param(LINE, {}, "unsigned", id="line: no signature header"),
    pytest.param(SG, {"X-Twilio-Email-Event-Webhook-Signature": "MEUCIQ==",
                      "X-Twilio-Email-Event-Webhook-Timestamp": STALE}, "stale", id="sendgrid: stale timestamp"),
    pytest.param(SG, {"X-Twilio-Email-Event-Webhook-Signature": "MEUCIQ==",
                      "X-Twilio-Email-Event-Webhook-Timestamp": "1e9"}, "bad timestamp", id="sendgrid: bad timestamp"),
]


@pytest.mark.parametrize(("path", "headers", "why"), HEADERS_ALONE_REFUSE)
def test_what_the_headers_decide_is_refused_before_reading_the_body(process, path, headers, why) -> None:
    pid, base = process
    before = peak_rss(pid)
    status, answer, sent = upload_chunked(base, path, headers, BODY)
    assert (status, answer) == (403, {"error": why})
    # Only what the loopback socket buffers absorbed before the answer: the server read next to nothing.
    assert sent < 16 * MIB, f"{sent / MIB:.0f} MiB sent before the answer"
    assert peak_rss(pid) - before < 8 * MIB
    assert healthy(base)


def test_a_signed_batch_still_works_after_the_uploads(process, sg_key) -> None:
    _, base = process
    body = json.dumps([sg_event("after-uploads", "delivered", "S1")]).encode()
    assert post(base + SG, body, signed(SG, body, sg_key[0])) == (200, {"received": 1, "stored": 1})


# ---- 2. shape: malformed signed bodies ------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sg_key):
    tmp = tmp_path_factory.mktemp("webhook-shapes")
    settings = Settings(home=tmp, data_dir=tmp / "data")
    with running(create_app(settings, sendgrid_public_key=sg_key[1], line_channel_secret=LINE_SECRET)) as base:
        yield settings, base


def line_event(event_id: str, kind: str = "follow", **extra) -> dict:
    return {"type": kind, "mode": "active", "timestamp": 1795000000000, "webhookEventId": event_id,
            "source": {"type": "user", "userId": "U" + event_id}, "deliveryContext": {"isRedelivery": False},
            **extra}


def dumps(document) -> bytes:
    """JSON bytes, with two ways to write what json.dumps cannot: the strings "__NaN__", "__Infinity__",
    "__-Infinity__" become those bare (invalid) tokens, and "__DEEP<n>__" becomes n nested arrays."""
    text = json.dumps(document, ensure_ascii=False)
    for token in ("NaN", "Infinity", "-Infinity"):
        text = text.replace(f'"__{token}__"', token)
    text = re.sub(r'"__DEEP(\d+)__"', lambda m: "[" * int(m[1]) + '"x"' + "]" * int(m[1]), text)
    return text.encode("utf-8")


def nested(levels: int) -> str:
    """A value `levels` arrays deep (written by dumps)."""
    return f"__DEEP{levels}__"


def deep(levels: int, inner) -> list:
    value = inner
    for _ in range(levels):
        value = [value]
    return value


#: As a value in sg()/ln(): remove the key.
DROP = object()


def sg(**changes) -> dict:
    """A valid SendGrid event with `changes` (DROP as a value removes the key)."""
    event = sg_event("sg-case", "delivered", "S1")
    for key, value in changes.items():
        if value is DROP:
            event.pop(key)
        else:
            event[key] = value
    return event


def ln(**changes) -> dict:
    event = line_event("ln-case")
    for key, value in changes.items():
        if value is DROP:
            event.pop(key)
        else:
            event[key] = value
    return event


NESTED_10000 = b"[" * 10000 + b"]" * 10000

SENDGRID_CASES: dict[str, bytes] = {
    "deep nesting, 10000 levels": NESTED_10000,
    "deep nesting inside an event": dumps([sg(category=nested(200))]),
    "timestamp NaN": dumps([sg(timestamp="__NaN__")]),
    "timestamp Infinity": dumps([sg(timestamp="__Infinity__")]),
    "timestamp -Infinity": dumps([sg(timestamp="__-Infinity__")]),
    "timestamp 1e400 (overflows to inf)": b'[{"event": "open", "sg_event_id": "x", "timestamp": 1e400}]',
    "NaN in another field": dumps([sg(asm_group_id="__NaN__")]),
    "timestamp as text": dumps([sg(timestamp=MARKER)]),
    "timestamp as digits text": dumps([sg(timestamp="1795000000")]),
    "timestamp true": dumps([sg(timestamp=True)]),
    "timestamp fractional": dumps([sg(timestamp=1795000000.5)]),
    "timestamp huge": dumps([sg(timestamp=10 ** 20)]),
    "timestamp 400 digits": dumps([sg(timestamp=10 ** 400)]),
    "timestamp in milliseconds": dumps([sg(timestamp=1795000000000)]),
    "timestamp negative": dumps([sg(timestamp=-1)]),
    "timestamp zero (1970)": dumps([sg(timestamp=0)]),
    "timestamp missing": dumps([sg(timestamp=DROP)]),
    "timestamp null": b'[{"event": "open", "sg_event_id": "x", "timestamp": null}]',
    "an integer of 5000 digits": b'[{"event": "open", "timestamp": 1795000000, "n": ' + b"9" * 5000 + b"}]",
    "body an object": dumps({"events": [sg()]}),
    "body a string": dumps(MARKER),
    "body a number": b"5",
    "body null": b"null",
    "event a number": dumps([5]),
    "event a string": dumps([MARKER]),
    "event null": dumps([None]),
    "event a list": dumps([[sg()]]),
    "one good event, one bad": dumps([sg(sg_event_id="good-then-bad"), 5]),
    "event name a number": dumps([sg(event=5)]),
    "event name empty": dumps([sg(event="")]),
    "event name missing": dumps([sg(event=DROP)]),
    "email a number": dumps([sg(email=5)]),
    "email a list": dumps([sg(email=[MARKER])]),
    "send_id a number": dumps([sg(send_id=123)]),
    "sg_event_id an object": dumps([sg(sg_event_id={"id": MARKER})]),
    "bounce type a list": dumps([sg(event="bounce", type=["bounce"])]),
    "reason an object": dumps([sg(reason={"text": MARKER})]),
    "lone surrogate in email": b'[{"event": "open", "timestamp": 1795000000, "email": "a\\ud800@example.jp"}]',
    "not UTF-8": b'[{"event": "open", "timestamp": 1795000000, "reason": "\xff\xfe"}]',
    "UTF-8 BOM": "\ufeff[]".encode("utf-8"),
    "truncated": dumps([sg()])[:-3],
    "trailing garbage": dumps([sg()]) + b" ]",
    "empty body": b"",
    "control character in a string": b'[{"event": "op\x01en", "timestamp": 1795000000}]',
}

LINE_CASES: dict[str, bytes] = {
    "deep nesting, 10000 levels": NESTED_10000,
    "deep nesting in events": dumps({"events": nested(5000)}),
    "deep nesting inside an event": dumps({"events": [ln(message=nested(200))]}),
    "events a number": dumps({"destination": "U1", "events": 5}),
    "events a string": dumps({"events": MARKER}),
    "events an object": dumps({"events": {"0": ln()}}),
    "events null": dumps({"events": None}),
    "events missing": dumps({"destination": "U1"}),
    "destination a number": dumps({"destination": 5, "events": []}),
    "body a list": dumps([ln()]),
    "body a number": b"5",
    "event a number": dumps({"events": [5]}),
    "event a string": dumps({"events": [MARKER]}),
    "event null": dumps({"events": [None]}),
    "event a list": dumps({"events": [[ln()]]}),
    "one good event, one bad": dumps({"events": [ln(webhookEventId="good-then-bad"), "x"]}),
    "one good follow, one bad message": dumps({"events": [ln(webhookEventId="good-then-bad-2"),
                                                          ln(type="message", timestamp="x")]}),
    "type a number": dumps({"events": [ln(type=5)]}),
    "type missing": dumps({"events": [ln(type=DROP)]}),
    "timestamp NaN": dumps({"events": [ln(timestamp="__NaN__")]}),
    "timestamp Infinity": dumps({"events": [ln(timestamp="__Infinity__")]}),
    "timestamp 1e400": b'{"events": [{"type": "follow", "timestamp": 1e400}]}',
    "timestamp as text": dumps({"events": [ln(timestamp=MARKER)]}),
    "timestamp true": dumps({"events": [ln(timestamp=True)]}),
    "timestamp huge": dumps({"events": [ln(timestamp=10 ** 30)]}),
    "timestamp in seconds": dumps({"events": [ln(timestamp=1795000000)]}),
    "timestamp missing": dumps({"events": [ln(timestamp=DROP)]}),
    "webhookEventId a number": dumps({"events": [ln(webhookEventId=5)]}),
    "source a string": dumps({"events": [ln(source=MARKER)]}),
    "source a list": dumps({"events": [ln(source=[])]}),
    "userId a number": dumps({"events": [ln(source={"type": "user", "userId": 5})]}),
    "deliveryContext a number": dumps({"events": [ln(deliveryContext=5)]}),
    "isRedelivery a string": dumps({"events": [ln(deliveryContext={"isRedelivery": "yes"})]}),
    "lone surrogate in userId": b'{"events": [{"type": "follow", "timestamp": 1795000000000, '
                                b'"source": {"type": "user", "userId": "U\\udfff"}}]}',
    "not UTF-8": b'{"events": [], "destination": "\xc3\x28"}',
    "truncated": dumps({"events": [ln()]})[:-1],
    "empty body": b"",
}

CASES = [pytest.param(SG, body, id=f"sendgrid: {name}") for name, body in SENDGRID_CASES.items()] + \
        [pytest.param(LINE, body, id=f"line: {name}") for name, body in LINE_CASES.items()]


def assert_refused(settings: Settings, base: str, path: str, body: bytes, private) -> str:
    """POST `body` signed; it must get 400 with a short reason that echoes nothing, and store nothing."""
    before = counts(settings)
    status, answer = post(base + path, body, signed(path, body, private))
    assert status == 400, (status, answer)
    reason = answer["error"]
    assert isinstance(reason, str) and 0 < len(reason) <= 120 and MARKER not in reason, reason
    assert counts(settings) == before
    return reason


@pytest.mark.parametrize(("path", "body"), CASES)
def test_a_malformed_signed_body_gets_400_and_nothing_is_stored(server, sg_key, path, body) -> None:
    settings, base = server
    assert_refused(settings, base, path, body, sg_key[0])


def test_the_reason_says_which_event_and_field(server, sg_key) -> None:
    settings, base = server
    body = dumps([sg(sg_event_id="r1"), sg(sg_event_id="r2", timestamp="__NaN__")])
    assert assert_refused(settings, base, SG, body, sg_key[0]) == "NaN is not a JSON number"
    body = dumps([sg(sg_event_id="r1"), sg(sg_event_id="r2", timestamp=10 ** 20)])
    assert assert_refused(settings, base, SG, body, sg_key[0]) == \
        "event 1: timestamp: not a time in seconds between 2000 and 2100"
    body = dumps({"events": [ln(), ln(source={"type": "user", "userId": 5})]})
    assert assert_refused(settings, base, LINE, body, sg_key[0]) == \
        "event 1: source.userId: Input should be a valid string"
    assert assert_refused(settings, base, LINE, dumps({"events": 5}), sg_key[0]) == "events: expected a JSON array"


def test_a_batch_with_one_bad_event_stores_none_and_the_good_one_alone_is_stored(server, sg_key) -> None:
    settings, base = server
    good_sg, good_line = sg(sg_event_id="batch-good"), line_event("batch-good")
    assert_refused(settings, base, SG, dumps([good_sg, sg(sg_event_id="batch-bad", email=5)]), sg_key[0])
    assert_refused(settings, base, LINE, dumps({"events": [good_line, ln(deliveryContext=5)]}), sg_key[0])
    body = dumps([good_sg])
    assert post(base + SG, body, signed(SG, body, sg_key[0])) == (200, {"received": 1, "stored": 1})
    body = dumps({"events": [good_line]})
    assert post(base + LINE, body, signed(LINE, body, sg_key[0])) == (200, {"received": 1, "stored": 1})


def test_odd_but_valid_events_are_still_accepted(server, sg_key) -> None:
    """The checks refuse what is malformed, not what is unusual: unknown fields, nested custom
    fields, an empty batch, LINE's verification call, event types kizuna does not keep."""
    settings, base = server
    body = dumps([sg(sg_event_id="odd-1", category=["a", "b"], pool={"name": "p", "id": 1}, asm_group_id=7,
                     new_field={"nested": [1, 2.5, None, True]}, reason=None),
                  sg(sg_event_id="odd-2", event="machine_opened", timestamp=1795000000)])
    assert post(base + SG, body, signed(SG, body, sg_key[0])) == (200, {"received": 2, "stored": 2})
    for body in (b"[]", dumps({"destination": "U1", "events": []}),
                 dumps({"events": [line_event("odd-3", "message", message={"type": "text", "text": "やあ"}),
                                   line_event("odd-4", "postback", postback={"data": "a=1"}),
                                   {"type": "unfollow", "timestamp": 1795000000001}]})):
        path = SG if body == b"[]" else LINE
        status, answer = post(base + path, body, signed(path, body, sg_key[0]))
        assert status == 200, answer
    assert healthy(base)


# ---- random fuzz (fixed seed) ----------------------------------------------------------------------


#: Values that are wrong for a field, by what the field must be.
BAD_FOR = {
    "text": [5, 0, -1.5, True, False, [], ["x"], {}, {"a": MARKER}, "__NaN__"],
    "seconds": ["1795000000", MARKER, True, None, 1795000000.0, 1.5, -1, 0, 10 ** 12, 10 ** 40, [], {},
                "__NaN__", "__Infinity__", "__-Infinity__"],
    "millis": ["1795000000000", True, None, 1795000000000.5, 1795000000, 10 ** 20, -5, [], {}, "__NaN__",
               "__Infinity__"],
    "object": [5, "x", [], True, "__Infinity__"],
    "bool": ["true", 1, 0, "__NaN__", None, [], {}],
}
SG_FIELDS = {"event": "text", "timestamp": "seconds", "sg_event_id": "text", "email": "text", "send_id": "text",
             "scenario_id": "text", "step_id": "text", "reason": "text", "sg_message_id": "text"}
LINE_FIELDS = {"type": "text", "timestamp": "millis", "webhookEventId": "text", "mode": "text",
               "source": "object", "deliveryContext": "object"}
NOT_OBJECTS = [0, 7, -2.5, "x", MARKER, True, None, [], [{}], "__NaN__"]


def random_batch(rnd: random.Random, path: str, n: int) -> list[dict]:
    if path == SG:
        return [sg_event(f"fz-{n}-{i}", rnd.choice(["delivered", "open", "bounce", "unsubscribe"]), "S1")
                for i in range(rnd.randint(1, 4))]
    return [line_event(f"fz-{n}-{i}", rnd.choice(["follow", "unfollow", "message"])) for i in range(rnd.randint(1, 4))]


def malformed_body(rnd: random.Random, path: str, n: int) -> bytes:
    """A body broken on purpose by one random mutation that is malformed by construction."""
    events = random_batch(rnd, path, n)
    wrap = (lambda evs: evs) if path == SG else (lambda evs: {"destination": "U1", "events": evs})
    target = rnd.randrange(len(events))
    kind = rnd.choice(["field", "field", "field", "nested field", "not an object", "wrapped", "top level",
                       "deep", "truncated", "not utf-8"])
    if kind == "field":
        fields = SG_FIELDS if path == SG else LINE_FIELDS
        name = rnd.choice(sorted(fields))
        value = rnd.choice(BAD_FOR[fields[name]])
        if value is None and fields[name] in ("text", "object"):
            value = 5  # null is allowed for optional fields: not a malformation
        events[target][name] = value
    elif kind == "nested field":
        if path == SG:
            events[target]["timestamp"] = rnd.choice(BAD_FOR["seconds"])
        elif rnd.random() < 0.5:
            events[target]["source"] = {"type": "user", "userId": rnd.choice(BAD_FOR["text"])}
        else:
            events[target]["deliveryContext"] = {"isRedelivery": rnd.choice(BAD_FOR["bool"])}
    elif kind == "not an object":
        events[target] = rnd.choice(NOT_OBJECTS)
    elif kind == "wrapped":
        events[target] = deep(rnd.randint(1, 40), events[target])
    elif kind == "top level":
        not_a_list = rnd.choice([0, 7, -2.5, "x", MARKER, True, None, "__NaN__", {"events": events}])
        if path == SG:
            return dumps(not_a_list)
        return dumps(rnd.choice([events, 5, MARKER, None, {"destination": "U1", "events": not_a_list}]))
    elif kind == "deep":
        levels = rnd.choice([rnd.randint(17, 300), rnd.randint(2000, 30000)])
        events[target]["extra"] = nested(levels)
    text = dumps(wrap(events))
    if kind == "truncated":
        return text[:rnd.randrange(1, len(text) - 1)]
    if kind == "not utf-8":
        at = rnd.randrange(len(text) + 1)
        return text[:at] + rnd.choice([b"\xff", b"\xed\xa0\x80", b"\x80"]) + text[at:]
    return text


@pytest.mark.parametrize("path", [SG, LINE])
def test_random_malformed_bodies_get_400_and_the_service_stays_healthy(server, sg_key, path) -> None:
    settings, base = server
    rnd = random.Random(20261130 + (path == LINE))
    for n in range(150):
        body = malformed_body(rnd, path, n)
        try:
            assert_refused(settings, base, path, body, sg_key[0])
        except AssertionError as exc:
            raise AssertionError(f"fuzz case {n}: {body[:200]!r}") from exc
    assert healthy(base)
    body = dumps([sg(sg_event_id=f"after-fuzz{path}")]) if path == SG else dumps({"events": [line_event(f"af{path}")]})
    assert post(base + path, body, signed(path, body, sg_key[0])) == (200, {"received": 1, "stored": 1})


@pytest.mark.parametrize("path", [SG, LINE])
def test_random_byte_damage_never_gets_a_5xx_or_half_a_batch(server, sg_key, path) -> None:
    """Random bytes flipped, dropped or inserted in a signed valid batch: the result may still be valid
    (a changed letter in a string), so the promise is weaker: 200 or 400, and a 400 stores nothing."""
    settings, base = server
    rnd = random.Random(7 + (path == LINE))
    outcomes = set()
    for n in range(120):
        events = random_batch(rnd, path, 1000 + n)
        text = bytearray(dumps(events if path == SG else {"events": events}))
        for _ in range(rnd.randint(1, 4)):
            at = rnd.randrange(len(text))
            action = rnd.choice(["flip", "drop", "insert"])
            if action == "flip":
                text[at] = rnd.randrange(256)
            elif action == "drop":
                del text[at]
            else:
                text.insert(at, rnd.choice(b'[]{}",:0123456789.eE-+ \\nNaIfty\x00\xff'))
        body = bytes(text)
        before = counts(settings)
        status, answer = post(base + path, body, signed(path, body, sg_key[0]))
        outcomes.add(status)
        assert status in (200, 400), (n, status, answer, body[:200])
        if status == 400:
            assert counts(settings) == before, (n, body[:200])
    assert 400 in outcomes
    assert healthy(base)


# ---- the store and start-up --------------------------------------------------------------------------


def test_the_store_refuses_a_malformed_event_from_any_caller_and_writes_none(tmp_path: Path) -> None:
    """The store validates too (the nightly load and tests call it directly): one bad event, nothing written."""
    from kizuna.events import store
    from kizuna.events.payloads import MalformedPayload

    con = store.connect(tmp_path / "events.sqlite")
    try:
        for bad in ({"timestamp": float("inf")}, {"timestamp": float("nan")}, {"timestamp": 10 ** 20},
                    {"email": 5}, {"send_id": ["S1"]}, {"extra": "\ud800"}):
            with pytest.raises(MalformedPayload, match="^event 1: "):
                store.add_sendgrid_events(con, [sg(sg_event_id="store-good"), sg(sg_event_id="store-bad", **bad)])
        for bad in ({"source": "U1"}, {"deliveryContext": 5}, {"timestamp": float("inf")}, {"type": 5}):
            with pytest.raises(MalformedPayload, match="^event 1: "):
                store.add_line_events(con, [line_event("store-good"), ln(**bad)])
        with pytest.raises(MalformedPayload, match="^event 0: not a JSON object"):
            store.add_line_events(con, ["follow"])
        assert con.execute("select (select count(*) from sendgrid_events) + (select count(*) from line_events)"
                           ).fetchone() == (0,)
    finally:
        con.close()


def test_a_verification_key_that_is_not_an_ec_key_stops_start_up(tmp_path: Path) -> None:
    """An RSA key parses as a public key but can never check SendGrid's ECDSA signature: refuse it at start-up."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from kizuna.errors import KizunaError

    der = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(KizunaError, match="KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY"):
        create_app(Settings(home=tmp_path, data_dir=tmp_path / "d"), sendgrid_public_key=base64.b64encode(der).decode())

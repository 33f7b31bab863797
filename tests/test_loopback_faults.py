"""The loopback providers' fault mix, delivery counts, remote control and SendGrid's Event Webhook.

These are what `python -m bench.faults` relies on to measure kizuna honestly: every fault kind
does what its name says (answered or not, accepted or not), the mix is repeatable, every copy a
provider accepts is counted (a duplicate shows), LINE forgets a retry key after its life (a
resend then would arrive twice), and the SendGrid twin's events reach a real webhook service.
Real HTTP on 127.0.0.1 throughout; nothing of ours is mocked.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.channels.loopback import Fault, LineLoopback, SendGridLoopback
from connectors.channels.loopback.__main__ import _parser, build
from connectors.channels.loopback.__main__ import main as loopback_main
from connectors.channels.loopback.server import FAULT_KINDS
from kizuna.config import Settings
from kizuna.events.webhook import create_app
from test_events import running

ROOT = Path(__file__).resolve().parent.parent
USER = "U" + "a" * 32


def mail(send_id: str | None = "S1", to: str = "hanako@example.jp") -> dict:
    personalization: dict = {"to": [{"email": to}]}
    if send_id:
        personalization["custom_args"] = {"send_id": send_id}
    return {"personalizations": [personalization], "from": {"email": "info@shop.example"}, "subject": "件名",
            "content": [{"type": "text/plain", "value": "本文"}]}


def post(url: str, body: dict, headers: dict[str, str], timeout: float = 5.0) -> tuple[int, dict]:
    """(status, JSON body) of a POST; an HTTP error status is an answer too."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {"headers": dict(exc.headers), **json.loads(exc.read() or b"{}")}


def send_mail(server: SendGridLoopback, send_id: str | None = "S1", timeout: float = 5.0) -> tuple[int, dict]:
    return post(f"{server.url}/v3/mail/send", mail(send_id), {"Authorization": f"Bearer {server.api_key}"}, timeout)


def multicast(server: LineLoopback, key: str, to: str = USER) -> tuple[int, dict]:
    return post(f"{server.url}/v2/bot/message/multicast", {"to": [to], "messages": [{"type": "text", "text": "こんにちは"}]},
                {"Authorization": f"Bearer {server.access_token}", "X-Line-Retry-Key": key})


def control(server, name: str, data=None):
    if data is None:
        with urllib.request.urlopen(f"{server.url}/_loopback/{name}", timeout=5) as response:
            return json.loads(response.read())
    return post(f"{server.url}/_loopback/{name}", data, {})[1]


def settled(server, timeout: float = 5.0) -> dict:
    """The server's stats once no provider request is being handled (a time-out fault outlives its client)."""
    deadline = time.monotonic() + timeout
    while (stats := server.stats())["in_progress"] and time.monotonic() < deadline:
        time.sleep(0.02)
    return stats


# ---------------------------------------------------------------- the fault mix

#: kind -> (what the client sees, whether the provider accepted the message)
EXPECTED = {
    "429": ("429", False),
    "500": ("500", False),
    "500-accepted": ("500", True),
    "timeout": ("time-out", False),
    "timeout-accepted": ("time-out", True),
    "drop": ("dropped", False),
    "drop-accepted": ("dropped", True),
}


def test_every_fault_kind_is_described_here():
    assert set(EXPECTED) == set(FAULT_KINDS)


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_each_fault_kind_answers_and_accepts_as_its_name_says(kind):
    seen, accepted = EXPECTED[kind]
    with SendGridLoopback(fault_rate=1.0, seed=1, fault_kinds=[kind], fault_hold=0.6) as server:
        try:
            status, body = send_mail(server, "S1", timeout=0.3)
            outcome = str(status)
        except (TimeoutError, socket.timeout):
            outcome = "time-out"
        except (http.client.RemoteDisconnected, ConnectionResetError):
            outcome = "dropped"
        stats = settled(server)
        assert outcome == seen
        if kind == "429":
            assert 0 < float(body["headers"]["Retry-After"]) <= 0.25  # short: a client waits and retries
        assert stats["accepted"] == (1 if accepted else 0)
        assert server.delivery_counts() == {"key": "send_id", "counts": {"S1": 1} if accepted else {}}
        assert stats["faults"] == {kind: 1} and stats["requests"] == 1


def _statuses(server: SendGridLoopback, n: int) -> list[str]:
    out = []
    for i in range(n):
        try:
            out.append(str(send_mail(server, f"S{i}")[0]))
        except (http.client.RemoteDisconnected, ConnectionResetError):
            out.append("dropped")
    return out


def test_the_fault_mix_is_repeatable_by_seed_and_plays_its_rate():
    kinds = ["429", "500", "500-accepted", "drop", "drop-accepted"]  # the ones without a wait
    runs = []
    for seed in (11, 11, 12):
        with SendGridLoopback(fault_rate=0.3, seed=seed, fault_kinds=kinds) as server:
            runs.append((_statuses(server, 200), server.stats(), control(server, "deliveries")["counts"]))
    (first, stats, deliveries), (again, _, _), (other, _, _) = runs
    assert first == again and first != other
    faulted = sum(stats["faults"].values())
    assert 40 <= faulted <= 80  # 30 % of 200, give or take what chance allows
    assert set(stats["faults"]) == set(kinds)
    assert first.count("202") == 200 - faulted
    # Accepted = answered 202 plus the faults that accept first; each counted once under its send id.
    assert stats["accepted"] == 200 - faulted + stats["faults"]["500-accepted"] + stats["faults"]["drop-accepted"]
    assert sum(deliveries.values()) == stats["accepted"] and set(deliveries.values()) == {1}


def test_control_paths_are_never_faulted_nor_counted_as_requests():
    with SendGridLoopback(fault_rate=1.0, seed=3) as server:
        assert control(server, "stats")["requests"] == 0
        assert control(server, "deliveries") == {"key": "send_id", "counts": {}}
        assert control(server, "reset", {}) == {"reset": True}
        assert server.stats()["requests"] == 0 and server.stats()["faults"] == {}


def test_faults_can_be_queued_from_another_process_and_a_wrong_one_is_refused():
    with SendGridLoopback() as server:
        assert control(server, "faults", [{"status": 503, "body": {"message": "busy"}}, {"status": 500,
                                                                                        "accepted": True}]) == {
            "queued": 2}
        assert send_mail(server, "S1")[0] == 503
        assert send_mail(server, "S2")[0] == 500
        assert send_mail(server, "S3")[0] == 202
        assert server.delivery_counts()["counts"] == {"S2": 1, "S3": 1}
        status, body = post(f"{server.url}/_loopback/faults", [{"colour": "red"}], {})
        assert status == 400 and "status" in body["fields"]
        status, body = post(f"{server.url}/_loopback/nothing", {}, {})
        assert status == 404 and "POST reset" in body["message"]


def test_the_mix_refuses_what_it_cannot_play():
    with pytest.raises(ValueError, match="unknown fault kind"):
        SendGridLoopback(fault_rate=0.1, fault_kinds=["meteor"])
    with pytest.raises(ValueError, match="between 0 and 1"):
        SendGridLoopback(fault_rate=1.5)


# ---------------------------------------------------------------- delivery counts

def test_sendgrid_counts_every_copy_under_its_send_id_or_address():
    with SendGridLoopback(record=False) as server:
        for send_id in ("S1", "S1", "S2", None):
            assert send_mail(server, send_id)[0] == 202
        assert control(server, "deliveries") == {"key": "send_id",
                                                 "counts": {"S1": 2, "S2": 1, "hanako@example.jp": 1}}
        control(server, "reset", {})
        assert control(server, "deliveries")["counts"] == {} and server.stats()["accepted"] == 0


def test_line_counts_deliveries_per_user_and_a_repeated_key_delivers_nothing_more():
    with LineLoopback() as server:
        key = str(uuid.uuid4())
        assert multicast(server, key)[0] == 200
        assert multicast(server, key)[0] == 409  # the same request again: LINE recognises it
        assert multicast(server, str(uuid.uuid4()))[0] == 200  # another key: a second copy for the customer
        assert control(server, "deliveries") == {"key": "user_id", "counts": {USER: 2}}


def test_line_forgets_a_retry_key_after_its_life_so_a_late_resend_arrives_twice():
    with LineLoopback() as server:
        key = str(uuid.uuid4())
        assert multicast(server, key)[0] == 200
        control(server, "advance", {"seconds": 23 * 3600})
        assert multicast(server, key)[0] == 409  # 23 h later: still recognised
        assert control(server, "advance", {"seconds": 3600}) == {"clock_offset": 24 * 3600}
        status, _ = multicast(server, key)  # 24 h later: forgotten, delivered again
        assert status == 200
        assert server.delivery_counts()["counts"] == {USER: 2}
        control(server, "reset", {})  # reset forgets the keys too (a new sequence of the drill)
        assert multicast(server, key)[0] == 200 and server.delivery_counts()["counts"] == {USER: 1}


# ---------------------------------------------------------------- SendGrid's Event Webhook, across processes


@contextmanager
def webhook(tmp_path: Path, public_key: str):
    """`kizuna.events.webhook.create_app` under uvicorn on 127.0.0.1; yields (settings, URL)."""
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data")
    with running(create_app(settings, sendgrid_public_key=public_key)) as url:
        yield settings, url


def test_a_loopback_sendgrid_process_posts_signed_events_of_what_it_accepted(tmp_path):
    private = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "key.pem"
    pem.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public = base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    with webhook(tmp_path, public) as (settings, url):
        proc = subprocess.Popen([sys.executable, "-m", "connectors.channels.loopback", "sendgrid", "--no-record",
                                 "--events-to", f"{url}/webhooks/sendgrid", "--events-key", str(pem),
                                 "--events-every", "0.05", "--delivered-after", "0.2"],
                                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            server = SendGridLoopback()  # a handle for its test key; the server is the process above
            server_url = proc.stdout.readline().split()[1]
            key = {"Authorization": f"Bearer {server.api_key}"}
            control_url = f"{server_url}/_loopback/faults"
            post(control_url, [{"status": 500}, {"status": 500, "accepted": True}], {})
            statuses = [post(f"{server_url}/v3/mail/send", mail(s), key)[0] for s in ("S-lost", "S-taken", "S-ok")]
            assert statuses == [500, 500, 202]
            deadline = time.monotonic() + 10
            while (stats := _stats(server_url))["events_pending"] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert stats["events_pending"] == 0 and stats["events_posted"] == 4
        finally:
            proc.stdin.close()
            proc.wait(timeout=10)
        con = sqlite3.connect(settings.events_store)
        stored = sorted(con.execute("select send_id, event from sendgrid_events").fetchall())
        con.close()
    # What SendGrid accepted has its events, whatever it answered; what it refused has none.
    assert stored == [("S-ok", "delivered"), ("S-ok", "processed"), ("S-taken", "delivered"),
                      ("S-taken", "processed")]


def _stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_loopback/stats", timeout=5) as response:
        return json.loads(response.read())


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize("argv, message", [
    (["line", "--events-to", "http://127.0.0.1:1/x", "--events-key", "k.pem"], "for the sendgrid server only"),
    (["sendgrid", "--events-to", "http://127.0.0.1:1/x"], "go together"),
    (["sendgrid", "--delivered-after", "1"], "needs --events-to"),
    (["sendgrid", "--fault-rate", "0.2", "--fault-kinds", "429,meteor"], "unknown fault kind(s) meteor"),
    (["sendgrid", "--fault-rate", "2"], "between 0 and 1"),
    (["sendgrid", "--key-life", "10"], "for the line server only"),
])
def test_the_command_line_refuses_options_that_do_not_fit(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        loopback_main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_the_command_line_refuses_a_key_that_cannot_sign_sendgrid_events(tmp_path, capsys):
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text("hello")
    with pytest.raises(SystemExit):
        loopback_main(["sendgrid", "--events-to", "http://127.0.0.1:1/x", "--events-key", str(not_a_key)])
    assert "not a readable unencrypted PEM private key" in capsys.readouterr().err


def test_the_command_line_starts_a_faulty_line_in_its_own_process():
    proc = subprocess.Popen([sys.executable, "-m", "connectors.channels.loopback", "line", "--fault-rate", "1",
                             "--fault-kinds", "500", "--seed", "5"],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[1]
        server = LineLoopback()  # a handle for its test token
        status, _ = post(f"{url}/v2/bot/message/multicast", {"to": [USER], "messages": [{"type": "text", "text": "x"}]},
                         {"Authorization": f"Bearer {server.access_token}", "X-Line-Retry-Key": str(uuid.uuid4())})
        assert status == 500 and _stats(url)["faults"] == {"500": 1} and _stats(url)["accepted"] == 0
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    assert proc.returncode == 0  # stdin closed: it stops by itself


def test_the_command_line_sets_line_key_life_and_the_mix():
    parser = _parser()
    server = build(parser.parse_args(["line", "--key-life", "60", "--fault-rate", "0.2", "--seed", "3",
                                      "--fault-kinds", "429,drop", "--fault-hold", "2"]), parser)
    assert (server.key_life, server.fault_rate, server.fault_kinds, server.fault_hold) == (60, 0.2, ["429", "drop"], 2)
    with server:
        key = str(uuid.uuid4())
        server.fault_rate = 0.0
        assert multicast(server, key)[0] == 200
        server.advance(61)
        assert multicast(server, key)[0] == 200  # its life is 60 s here


def test_a_fault_that_drops_after_accepting_is_a_fault_object_too():
    fault = Fault.dropped(accepted=True)
    assert fault.drop and fault.accepted and fault.status == 0

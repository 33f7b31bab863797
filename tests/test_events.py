"""Webhooks and feedback: a real uvicorn server on loopback driven by real HTTP, then the nightly load.

SendGrid signs `timestamp + raw body` with ECDSA P-256 / SHA-256 and gives the public key
as base64 DER; the test makes its own key pair and signs exactly that way. LINE signs the
body with HMAC-SHA256 of the channel secret, base64.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import hmac
import json
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import yaml
import pytest
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from campaign_fakes import add_customer, make_warehouse
from campaigns import ledger
from campaigns.engine import run_campaigns
from campaigns.schema import load_scenarios
from connectors.channels.outbox import OutboxChannel
from kizuna.config import Settings
from kizuna.events import store
from kizuna.events.load import create_raw_tables, load_events
from kizuna.events.webhook import create_app

LINE_SECRET = "line-channel-secret-for-tests"
DBT_PROJECT = Path(__file__).resolve().parent.parent / "dbt_project"
RUN_DATE = date(2026, 11, 23)


@pytest.fixture(scope="module")
def keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


@contextmanager
def running(app):
    """Serve `app` with uvicorn on 127.0.0.1, an ephemeral port, in a thread; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "webhook server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(5)
        sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, keys):
    tmp = tmp_path_factory.mktemp("webhook")
    settings = Settings(home=tmp, data_dir=tmp / "data")
    with running(create_app(settings, sendgrid_public_key=keys[1], line_channel_secret=LINE_SECRET)) as base:
        yield settings, base


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def sendgrid_headers(private: ec.EllipticCurvePrivateKey, body: bytes, timestamp: int | None = None) -> dict:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = private.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": ts}


def line_headers(body: bytes, secret: str = LINE_SECRET) -> dict:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"X-Line-Signature": base64.b64encode(digest).decode()}


def sg_event(event_id: str, event: str, send_id: str, **extra) -> dict:
    return {"email": "hanako@example.jp", "timestamp": 1795000000, "event": event, "sg_event_id": event_id,
            "sg_message_id": "msg.1", "send_id": send_id, "scenario_id": "f2_standard", "step_id": "thank_you",
            **extra}


def stored(settings: Settings, table: str) -> list[sqlite3.Row]:
    con = store.connect(settings.events_store)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(f"select * from {table} order by id").fetchall()
    finally:
        con.close()


# ---- the service -----------------------------------------------------------------------------


def test_healthz(server) -> None:
    _, base = server
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read())["status"] == "ok"


def test_signed_sendgrid_batch_is_stored_once_and_redelivery_is_a_no_op(server, keys) -> None:
    settings, base = server
    # Raw bytes with odd spacing and non-ASCII: the signature is over the body exactly as sent.
    body = json.dumps([sg_event("ev-1", "delivered", "S1"), sg_event("ev-2", "open", "S1"),
                       sg_event("ev-3", "bounce", "S2", type="bounce", reason="550 ユーザー不明")],
                      ensure_ascii=False, indent=1).encode()
    status, answer = post(f"{base}/webhooks/sendgrid", body, sendgrid_headers(keys[0], body))
    assert (status, answer) == (200, {"received": 3, "stored": 3})
    status, answer = post(f"{base}/webhooks/sendgrid", body, sendgrid_headers(keys[0], body))
    assert (status, answer) == (200, {"received": 3, "stored": 0})
    rows = [r for r in stored(settings, "sendgrid_events") if r["sg_event_id"] in ("ev-1", "ev-2", "ev-3")]
    assert [(r["sg_event_id"], r["event"], r["send_id"], r["step_id"]) for r in rows] == [
        ("ev-1", "delivered", "S1", "thank_you"), ("ev-2", "open", "S1", "thank_you"),
        ("ev-3", "bounce", "S2", "thank_you")]
    # No e-mail address at rest: only its hash.
    assert all("hanako@example.jp" not in r["raw_json"] for r in rows)
    assert rows[0]["email_sha256"] == hashlib.sha256(b"hanako@example.jp").hexdigest()
    assert rows[2]["bounce_type"] == "bounce" and rows[2]["reason"] == "550 ユーザー不明"


def test_forged_unsigned_and_stale_sendgrid_requests_are_refused(server, keys) -> None:
    settings, base = server
    body = json.dumps([sg_event("ev-forged", "unsubscribe", "S1")]).encode()
    other = ec.generate_private_key(ec.SECP256R1())
    assert post(f"{base}/webhooks/sendgrid", body, sendgrid_headers(other, body))[0] == 403
    # Signed for one body, sent with another.
    tampered = json.dumps([sg_event("ev-forged", "spamreport", "S1")]).encode()
    assert post(f"{base}/webhooks/sendgrid", tampered, sendgrid_headers(keys[0], body))[0] == 403
    assert post(f"{base}/webhooks/sendgrid", body, {})[0] == 403
    headers = sendgrid_headers(keys[0], body)
    headers["X-Twilio-Email-Event-Webhook-Signature"] = "not base64!"
    assert post(f"{base}/webhooks/sendgrid", body, headers)[0] == 403
    stale = int(time.time()) - settings.webhook_max_age_seconds - 60
    assert post(f"{base}/webhooks/sendgrid", body, sendgrid_headers(keys[0], body, stale))[0] == 403
    assert not [r for r in stored(settings, "sendgrid_events") if r["sg_event_id"] == "ev-forged"]


def test_an_oversized_request_is_refused_without_reading_it(server) -> None:
    """A declared body over 5 MiB gets 413 before the service reads it (the client sends headers only)."""
    _, base = server
    host, port = urllib.parse.urlsplit(base).netloc.split(":")
    for path in ("/webhooks/sendgrid", "/webhooks/line"):
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            connection.putrequest("POST", path)
            connection.putheader("Content-Type", "application/json")
            connection.putheader("Content-Length", str(5 * 1024 * 1024 + 1))
            connection.endheaders()
            response = connection.getresponse()
            assert (response.status, json.loads(response.read())) == (413, {"error": "too large"})
        finally:
            connection.close()


def test_line_signed_follow_unfollow_stored_forged_refused(server) -> None:
    settings, base = server
    events = {"destination": "Uxxxxxxxx", "events": [
        {"type": "unfollow", "mode": "active", "timestamp": 1795000000000, "webhookEventId": "01LINE1",
         "source": {"type": "user", "userId": "Uline1"}, "deliveryContext": {"isRedelivery": False}},
        {"type": "message", "mode": "active", "timestamp": 1795000000001, "webhookEventId": "01LINE2",
         "source": {"type": "user", "userId": "Uline1"}, "message": {"type": "text", "id": "1", "text": "hi"},
         "deliveryContext": {"isRedelivery": False}},
    ]}
    body = json.dumps(events).encode()
    assert post(f"{base}/webhooks/line", body, line_headers(body)) == (200, {"received": 2, "stored": 1})
    assert post(f"{base}/webhooks/line", body, line_headers(body)) == (200, {"received": 2, "stored": 0})
    assert post(f"{base}/webhooks/line", body, line_headers(body, "wrong-secret"))[0] == 403
    assert post(f"{base}/webhooks/line", body, {})[0] == 403
    rows = stored(settings, "line_events")
    assert [(r["webhook_event_id"], r["event_type"], r["line_user_id"]) for r in rows] == [
        ("01LINE1", "unfollow", "Uline1")]


def test_a_provider_without_its_secret_answers_503(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("KIZUNA_LINE_CHANNEL_SECRET", raising=False)
    with running(create_app(Settings(home=tmp_path, data_dir=tmp_path / "d"))) as base:
        assert post(f"{base}/webhooks/sendgrid", b"[]", {})[0] == 503
        assert post(f"{base}/webhooks/line", b"{}", {})[0] == 503


# ---- the nightly load and the feedback ---------------------------------------------------------


@pytest.fixture
def shop(tmp_path: Path):
    """A warehouse with two customers due for the F2 thank-you, and a ledger with earlier sends."""
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data", dbt_project_dir=DBT_PROJECT)
    con = make_warehouse(settings.warehouse)
    yesterday = RUN_DATE - timedelta(days=1)
    for cid in ("C1", "C2", "C3"):
        add_customer(con, cid, yesterday)
    ledger.attach(con, settings.ledger)
    now = datetime(2026, 11, 1, 9)
    for send_id, cid, channel in (("S1", "C1", "email"), ("S2", "C2", "email"), ("S3", "C3", "line")):
        con.execute("insert into ledger.sends (send_id, scenario_id, step_id, customer_id, anchor_date, channel, due_date, run_date, status, detail, provider_message_id, planned_at, updated_at) values (?, 'old_scenario', 'step1', ?, ?, ?, ?, ?, 'sent', '', null, ?, ?)",
                    [send_id, cid, date(2026, 10, 31), channel, date(2026, 11, 1), date(2026, 11, 1), now, now])
    con.close()
    events = store.connect(settings.events_store)
    store.add_sendgrid_events(events, [
        sg_event("e1", "delivered", "S1"), sg_event("e2", "open", "S1"),
        sg_event("e3", "bounce", "S2", type="bounce", reason="550"),
        sg_event("e4", "bounce", "S1", type="blocked", reason="421 try later"),  # temporary: no suppression
        sg_event("e5", "unsubscribe", "S-unknown"),  # matches no send
    ])
    store.add_line_events(events, [{"type": "unfollow", "timestamp": 1795000000000, "webhookEventId": "L1",
                                    "source": {"type": "user", "userId": "UC3"}}])
    events.close()
    return settings


def suppressions(settings: Settings) -> list[tuple]:
    con = duckdb.connect(str(settings.ledger))
    try:
        return con.execute("select customer_id, channel, reason from suppressions order by all").fetchall()
    finally:
        con.close()


def test_load_events_is_idempotent_and_applies_feedback(shop: Settings) -> None:
    first = load_events(shop)
    assert (first.email_events_loaded, first.line_events_loaded, first.sends_copied) == (5, 1, 3)
    assert (first.suppressions_added, first.unmatched_feedback) == (2, 1)
    assert suppressions(shop) == [("C2", "email", "sendgrid_bounce"), ("C3", "line", "line_unfollow")]

    again = load_events(shop)
    assert (again.email_events_loaded, again.line_events_loaded, again.suppressions_added) == (0, 0, 0)
    assert again.sends_copied == 3
    con = duckdb.connect(str(shop.warehouse))
    try:
        assert con.execute("select count(*), count(distinct sg_event_id) from raw.message_events").fetchone() == (5, 5)
        assert con.execute("select count(*) from raw.line_follow_events").fetchone() == (1,)
        assert con.execute("select event_at from raw.message_events where sg_event_id = 'e1'").fetchone()[0] == \
            datetime(2026, 11, 18, 20, 6, 40)  # 1795000000 = 11:06:40 UTC
    finally:
        con.close()

    # A new event after the first load is picked up (watermark), once.
    events = store.connect(shop.events_store)
    store.add_sendgrid_events(events, [sg_event("e6", "spamreport", "S1"), sg_event("e1", "delivered", "S1")])
    store.add_line_events(events, [{"type": "follow", "timestamp": 1795000100000, "webhookEventId": "L2",
                                    "source": {"type": "user", "userId": "UC3"}}])
    events.close()
    third = load_events(shop)
    assert (third.email_events_loaded, third.line_events_loaded) == (1, 1)
    assert (third.suppressions_added, third.suppressions_lifted) == (1, 1)
    assert suppressions(shop) == [("C1", "email", "sendgrid_spamreport"), ("C2", "email", "sendgrid_bounce")]


def test_a_group_resubscribe_lifts_the_group_unsubscribe_only(shop: Settings) -> None:
    events = store.connect(shop.events_store)
    store.add_sendgrid_events(events, [sg_event("g1", "group_unsubscribe", "S1", timestamp=1795000000)])
    events.close()
    load_events(shop)
    assert ("C1", "email", "sendgrid_group_unsubscribe") in suppressions(shop)
    events = store.connect(shop.events_store)
    store.add_sendgrid_events(events, [sg_event("g2", "group_resubscribe", "S1", timestamp=1795000500)])
    events.close()
    result = load_events(shop)
    assert result.suppressions_lifted == 1
    assert suppressions(shop) == [("C2", "email", "sendgrid_bounce"), ("C3", "line", "line_unfollow")]
    assert load_events(shop).suppressions_added == 0


def test_a_bounced_customer_is_then_skipped_by_the_engine(shop: Settings) -> None:
    load_events(shop)
    con = duckdb.connect(str(shop.warehouse))
    try:
        scenarios = [s for s in load_scenarios() if s.id == "f2_standard"]
        run_campaigns(con, shop, scenarios, RUN_DATE,
                      lambda name: OutboxChannel(shop.outbox_dir, name, shop.sender_name, shop.sender_email))
        got = con.execute("select customer_id, status, detail from ledger.sends "
                          "where scenario_id = 'f2_standard' and step_id = 'thank_you' order by customer_id").fetchall()
    finally:
        con.close()
    assert ("C2", "skipped", "suppressed") in got
    assert ("C1", "sent", "") in got


def test_the_loader_creates_the_raw_tables_the_dbt_sources_declare(tmp_path: Path) -> None:
    """The loader runs the dbt macro's DDL: every table and column dbt reads exists, twice is harmless."""
    sources = yaml.safe_load((DBT_PROJECT / "models" / "staging" / "campaigns" / "_campaigns__sources.yml").read_text())
    declared = {(t["name"], c["name"]) for t in sources["sources"][0]["tables"] for c in t["columns"]}
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        create_raw_tables(con, DBT_PROJECT)
        create_raw_tables(con, DBT_PROJECT)
        created = set(con.execute("select table_name, column_name from information_schema.columns "
                                  "where table_schema = 'raw'").fetchall())
    finally:
        con.close()
    assert {t for t, _ in created} == {"campaign_scenarios", "campaign_sends", "message_events", "line_follow_events",
                                       "campaign_coupons", "campaign_send_variants", "campaign_step_variants"}
    assert declared <= created, declared - created


def test_a_malformed_sendgrid_key_stops_start_up_with_a_readable_error(tmp_path: Path) -> None:
    from kizuna.errors import KizunaError

    with pytest.raises(KizunaError, match="KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY"):
        create_app(Settings(home=tmp_path, data_dir=tmp_path / "d"), sendgrid_public_key="not-a-key")


def test_a_replaced_event_store_is_reloaded_without_duplicates(shop: Settings) -> None:
    assert load_events(shop).email_events_loaded == 5
    for suffix in ("", "-wal", "-shm"):
        Path(str(shop.events_store) + suffix).unlink(missing_ok=True)
    events = store.connect(shop.events_store)  # a fresh store: ids start again at 1
    store.add_sendgrid_events(events, [sg_event("e1", "delivered", "S1"), sg_event("n1", "click", "S1")])
    events.close()
    assert load_events(shop).email_events_loaded == 1  # n1; e1 was already there

"""One-click unsubscribe and the preference page, end to end.

Real components only: the campaign engine on a DuckDB warehouse and ledger, the loopback
SendGrid driven by the official client, the web service under uvicorn on 127.0.0.1 driven by
real HTTP, and the next night's run folding the request into the ledger before selection.
"""

from __future__ import annotations

import email
import os
import sqlite3
import stat
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from email import policy
from email.utils import parsedate_to_datetime
from pathlib import Path

import duckdb
import pytest

from campaigns import unsubscribe as unsub
from campaigns.engine import run_campaigns
from connectors.channels.base import Message
from connectors.channels.headers import mail_domain, token_of
from connectors.channels.loopback import SendGridLoopback, TwilioLoopback
from connectors.channels.registry import channel_for, factory
from kizuna.config import Settings
from kizuna.events.webhook import create_app
from kizuna.secrets import unsubscribe_secret
from test_campaigns import CUSTOMER_COLUMNS, RUN_DATE, add_customers, customer, f2
from test_events import running

NIGHT2 = RUN_DATE + timedelta(days=4)  # C1..C3's usage guide (day 5) falls due


@pytest.fixture
def shop(tmp_path: Path):
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data")
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.warehouse))
    con.execute("create schema marts")
    con.execute(f"create table marts.dim_customers ({CUSTOMER_COLUMNS})")
    add_customers(con, [customer(f"C{i}", RUN_DATE - timedelta(days=1)) for i in range(1, 4)])
    yield settings, con
    con.close()


def _links(settings: Settings) -> dict[str, str]:
    """customer id -> the unsubscribe link of the e-mail they got (read from the .eml header)."""
    index = {}
    for eml in (settings.outbox_dir / "email").glob("*.eml"):
        mail = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
        header = " ".join(mail["List-Unsubscribe"].split())
        url = header.split(">, <")[0].lstrip("<")
        index[mail["To"].addresses[0].addr_spec.split("@")[0]] = url
    return index


def _request(url: str, data: bytes | None = None, content_type: str = "application/x-www-form-urlencoded"):
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": content_type} if data is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8"), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8"), error.headers


def _local(url: str, base: str) -> str:
    """The public link, sent to the service on loopback (what the reverse proxy does)."""
    return base + url[url.index("/unsubscribe"):]


def _statuses(con, run_date) -> dict[str, tuple[str, str]]:
    return {c: (s, d) for c, s, d in con.execute(
        "select customer_id, status, coalesce(detail, '') from ledger.sends where run_date = ?", [run_date]).fetchall()}


# ---------------------------------------------------------------- the flow the issue asks for

def test_one_click_post_suppresses_before_the_next_night(shop):
    settings, con = shop
    first = run_campaigns(con, settings, f2(), RUN_DATE, factory(settings))
    assert first.total("sent") == 3 and first.unsubscribed == 0
    links = _links(settings)
    with running(create_app(settings, sendgrid_public_key=None, line_channel_secret=None)) as base:
        status, page, headers = _request(_local(links["C1"], base), b"List-Unsubscribe=One-Click")
    assert status == 200 and "配信停止を受け付けました" in page
    assert headers["Referrer-Policy"] == "no-referrer"
    # The service wrote only its own store: the ledger knows nothing yet.
    assert con.execute("select count(*) from ledger.suppressions").fetchone()[0] == 0
    store = sqlite3.connect(str(settings.events_store))
    assert store.execute("select channel, method from unsubscribes").fetchall() == [("email", "one_click")]
    store.close()
    # The next night folds it in before selection: C1's next step is skipped, the others go out.
    second = run_campaigns(con, settings, f2(), NIGHT2, factory(settings))
    assert second.unsubscribed == 1
    assert _statuses(con, NIGHT2) == {"C1": ("skipped", "suppressed"), "C2": ("sent", ""), "C3": ("sent", "")}
    assert con.execute("select customer_id, channel, reason from ledger.suppressions").fetchall() == [
        ("C1", "email", "unsubscribe_link")]
    # Folding again adds nothing (and reports nobody new).
    assert unsub.fold_unsubscribes(con, settings).customers == 0


def test_multipart_one_click_as_rfc_8058_allows(shop):
    settings, con = shop
    run_campaigns(con, settings, f2(), RUN_DATE, factory(settings))
    boundary = "kizunaTESTboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n"
            f"--{boundary}--\r\n").encode()
    with running(create_app(settings, sendgrid_public_key=None, line_channel_secret=None)) as base:
        status, _, _ = _request(_local(_links(settings)["C2"], base), body, f"multipart/form-data; boundary={boundary}")
    assert status == 200
    assert unsub.fold_unsubscribes(con, settings).customers == 1


def test_forged_tampered_expired_and_malformed_links_are_refused(shop):
    settings, con = shop
    run_campaigns(con, settings, f2(), RUN_DATE, factory(settings))
    good = _links(settings)["C1"]
    token = token_of(good)
    tampered = good.replace(token, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    other_key = unsub.make_token(b"not-the-shop-key", "0" * 24, "email", RUN_DATE + timedelta(days=60))
    expired = unsub.make_token(unsub.signing_key(settings), token and unsub.read_token(
        unsub.signing_key(settings), token).send_id, "email", datetime.now(timezone.utc).date() - timedelta(days=1))
    with running(create_app(settings, sendgrid_public_key=None, line_channel_secret=None)) as base:
        for url, code, words in [
            (_local(tampered, base), 403, "確認できませんでした"),
            (f"{base}/unsubscribe?t={other_key}", 403, "確認できませんでした"),
            (f"{base}/unsubscribe?t={expired}", 410, "有効期限"),
            (f"{base}/unsubscribe?t=%3Cscript%3E", 400, "無効"),
            (f"{base}/unsubscribe", 400, "無効"),
        ]:
            for data in (None, b"List-Unsubscribe=One-Click"):
                status, page, _ = _request(url, data)
                assert status == code and words in page, (url, data, status)
                assert "Traceback" not in page and "<script>" not in page
                assert settings.sender_contact in page  # who to ask instead
    store = sqlite3.connect(str(settings.events_store))
    assert store.execute("select count(*) from unsubscribes").fetchone()[0] == 0  # nothing recorded
    store.close()


def test_the_preference_page_and_per_channel_opt_out(shop):
    settings, con = shop
    run_campaigns(con, settings, f2(), RUN_DATE, factory(settings))
    links = _links(settings)
    with running(create_app(settings, sendgrid_public_key=None, line_channel_secret=None)) as base:
        status, page, headers = _request(_local(links["C1"], base))
        assert status == 200 and '<html lang="ja">' in page and "配信停止のお手続き" in page
        assert 'value="email" checked' in page and 'value="line"' in page and 'value="all"' in page
        assert "<script" not in page and "src=" not in page and "<link" not in page  # no external assets
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        # The page's form: C1 gives up LINE only, C2 every channel; a GET changed nothing.
        assert _request(_local(links["C1"], base), b"scope=line")[0] == 200
        assert _request(_local(links["C2"], base), b"scope=all")[0] == 200
        assert _request(_local(links["C3"], base), b"scope=fax")[0] == 400
        status, page, _ = _request(_local(links["C1"], base))
        assert "LINEでの配信を停止する（停止済み）" in page
    assert unsub.fold_unsubscribes(con, settings).customers == 2
    assert sorted(con.execute("select customer_id, channel from ledger.suppressions").fetchall(),
                  key=str) == [("C1", "line"), ("C2", None)]
    run_campaigns(con, settings, f2(), NIGHT2, factory(settings))
    # LINE only: C1 still gets e-mail; C2 gave up everything.
    assert _statuses(con, NIGHT2) == {"C1": ("sent", ""), "C2": ("skipped", "suppressed"), "C3": ("sent", "")}


# ---------------------------------------------------------------- tokens and the key

def test_tokens_name_the_send_not_the_customer_and_expire(tmp_path):
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data", unsubscribe_token_days=10)
    send_id = "07cfae0b1b3574fdfed0519c"
    sent_at = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)
    url = unsub.unsubscribe_url(settings, send_id, "CUST-SECRET-42", "sms", now=sent_at)
    assert url.startswith(settings.unsubscribe_base_url + "?t=") and len(url) < len(settings.unsubscribe_base_url) + 50
    token = token_of(url)
    assert "CUST-SECRET-42" not in url and send_id not in url  # nothing readable in clear
    key = unsub.signing_key(settings)
    read = unsub.read_token(key, token, now=sent_at + timedelta(days=10))
    assert (read.send_id, read.channel) == (send_id, "sms")
    with pytest.raises(unsub.TokenError) as error:
        unsub.read_token(key, token, now=sent_at + timedelta(days=11))
    assert error.value.kind == "expired"
    for i in range(len(token)):  # any changed character is caught
        changed = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
        with pytest.raises(unsub.TokenError) as error:
            unsub.read_token(key, changed, now=sent_at)
        assert error.value.kind in ("forged", "malformed")


def test_the_key_is_generated_once_privately_and_the_environment_wins(tmp_path, monkeypatch):
    first = unsubscribe_secret(tmp_path).get_secret_value()
    assert unsubscribe_secret(tmp_path).get_secret_value() == first and len(first) >= 32
    assert stat.S_IMODE(os.stat(tmp_path / "unsubscribe.key").st_mode) == 0o600
    monkeypatch.setenv("KIZUNA_UNSUBSCRIBE_SECRET", "from-the-environment-" + "x" * 20)
    assert unsubscribe_secret(tmp_path).get_secret_value().startswith("from-the-environment-")


# ---------------------------------------------------------------- transport headers

def test_every_email_through_sendgrid_has_both_unsubscribe_headers(shop, monkeypatch):
    settings, con = shop
    with SendGridLoopback() as server:
        monkeypatch.setenv("KIZUNA_SENDGRID_API_KEY", server.api_key)
        live = settings.model_copy(update={"email_provider": "sendgrid", "sendgrid_host": server.url})
        result = run_campaigns(con, live, f2(), RUN_DATE, factory(live))
        assert result.total("sent") == 3 and server.accepted_count == 3
        ids = set()
        for received in server.accepted:
            headers = received["headers"]
            https, mailto = headers["List-Unsubscribe"].split(", ")
            assert https.startswith(f"<{settings.unsubscribe_base_url}?t=") and https[1:-1] in received["text"]
            assert mailto.startswith(f"<mailto:{settings.sender_email}?subject=unsubscribe%20{token_of(https)}")
            assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert headers["Message-ID"].endswith(f"@{mail_domain(settings.sender_email)}>")
            assert parsedate_to_datetime(headers["Date"]).utcoffset() == timedelta(hours=9)
            ids.add(headers["Message-ID"])
        assert len(ids) == 3


def test_the_outbox_eml_has_date_message_id_and_both_headers(shop):
    settings, con = shop
    run_campaigns(con, settings, f2(), RUN_DATE, factory(settings))
    for eml in (settings.outbox_dir / "email").glob("*.eml"):
        mail = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
        assert parsedate_to_datetime(mail["Date"]).tzinfo is not None
        assert mail["Message-ID"].strip() == f"<{eml.stem}.kizuna@{mail_domain(settings.sender_email)}>"
        header = " ".join(mail["List-Unsubscribe"].split())
        assert header.startswith(f"<{settings.unsubscribe_base_url}?t=") and "<mailto:" in header
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_sms_and_line_carry_their_own_opt_out(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data")
    url = unsub.unsubscribe_url(settings, "0a" * 12, "C1", "sms")
    with TwilioLoopback() as server:
        monkeypatch.setenv("KIZUNA_TWILIO_ACCOUNT_SID", server.account_sid)
        monkeypatch.setenv("KIZUNA_TWILIO_AUTH_TOKEN", server.auth_token)
        sms = channel_for(settings.model_copy(update={"sms_provider": "twilio", "twilio_base_url": server.url,
                                                      "twilio_from_number": "+815012345678"}), "sms")
        (outcome,) = sms.send_batch([Message("0a" * 12, "sms", "C1", "090-1234-5678", "山田 花子", "",
                                             "ご注文ありがとうございます。", extra={"unsubscribe_url": url})])
        assert outcome.status == "sent"
        (received,) = server.accepted
        assert received["body"].endswith(f"配信停止: {url}")
    line = channel_for(settings, "line")  # the outbox shows what LINE would carry
    from connectors.channels.line import OPT_OUT, with_opt_out
    assert with_opt_out("定期便のご案内です。").endswith(OPT_OUT) and with_opt_out(with_opt_out("x")).count(OPT_OUT) == 1
    assert line.name == "line"

"""Channel connectors against loopback provider servers, driven through the official clients.

Each loopback server is a real HTTP server on 127.0.0.1 that validates requests like the
provider and plays programmed faults; nothing of ours is mocked.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from datetime import date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient

from campaigns.render import Renderer
from campaigns.schema import Step
from connectors.channels.base import DeliveryJournal, Message
from connectors.channels.line import with_opt_out as with_line_opt_out
from connectors.channels.lists import ListChannel
from connectors.channels.loopback import Fault, LineLoopback, SendGridLoopback, TwilioLoopback
from connectors.channels.outbox import OutboxChannel
from connectors.channels.registry import CHANNELS, channel_for, channel_names
from kizuna.config import Settings
from kizuna.errors import KizunaError
from kizuna.secrets import MissingSecret, get_secret

SECRET_ENV = ("KIZUNA_SENDGRID_API_KEY", "KIZUNA_LINE_CHANNEL_ACCESS_TOKEN", "KIZUNA_TWILIO_ACCOUNT_SID",
              "KIZUNA_TWILIO_AUTH_TOKEN")


@pytest.fixture(autouse=True)
def _no_secrets_from_the_machine(monkeypatch):
    for var in SECRET_ENV:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var + "_BLOCK", raising=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, data_dir=tmp_path / "data", channel_timeout_seconds=1.0,
                    channel_max_wait_seconds=2.0, channel_max_attempts=3)


@pytest.fixture
def lists(settings: Settings) -> Settings:
    return settings.model_copy(update={"dm_provider": "list", "phone_provider": "list", "insert_provider": "list"})


@pytest.fixture
def sendgrid_server():
    with SendGridLoopback() as server:
        yield server


@pytest.fixture
def line_server():
    with LineLoopback() as server:
        yield server


@pytest.fixture
def twilio_server():
    with TwilioLoopback() as server:
        yield server


def email_channel(settings, server, monkeypatch, **overrides):
    monkeypatch.setenv("KIZUNA_SENDGRID_API_KEY", server.api_key)
    s = settings.model_copy(update={"email_provider": "sendgrid", "sendgrid_host": server.url, **overrides})
    channel = channel_for(s, "email")
    channel.policy.backoff_seconds = 0.01
    return channel


def line_channel(settings, server, monkeypatch, **overrides):
    monkeypatch.setenv("KIZUNA_LINE_CHANNEL_ACCESS_TOKEN", server.access_token)
    channel = channel_for(settings.model_copy(update={"line_provider": "line", "line_api_host": server.url,
                                                      **overrides}), "line")
    channel.policy.backoff_seconds = 0.01
    return channel


def sms_channel(settings, server, monkeypatch, **overrides):
    monkeypatch.setenv("KIZUNA_TWILIO_ACCOUNT_SID", server.account_sid)
    monkeypatch.setenv("KIZUNA_TWILIO_AUTH_TOKEN", server.auth_token)
    channel = channel_for(settings.model_copy(update={
        "sms_provider": "twilio", "twilio_base_url": server.url, "twilio_from_number": "+815012345678",
        **overrides}), "sms")
    channel.policy.backoff_seconds = 0.01
    return channel


NAMES = ["山田 花子", "佐藤 太郎", "髙橋 一郎", "渡邊 美咲"]


def email(i: int, **changes) -> Message:
    name = NAMES[i % len(NAMES)]
    url = f"https://kizuna-organics.example/unsubscribe?t=S{i:06d}"
    fields = dict(
        send_id=f"S{i:06d}", channel="email", customer_id=f"C{i:06d}", address=f"c{i}@example.jp",
        recipient_name=name, subject=f"{name.split()[0]}様、ご購入ありがとうございます",
        body_text=f"{name}様\n\nこのたびはありがとうございました。\n\n配信停止: {url}\n",
        body_html=f"<p>{name}様</p><p>ありがとうございました。</p><a href=\"{url}\">配信停止</a>",
        scenario_id="f2_standard", step_id="thank_you", extra={"unsubscribe_url": url},
    )
    fields.update(changes)
    return Message(**fields)


def line_message(i: int, text: str = "定期便のご案内です。") -> Message:
    return Message(f"L{i:06d}", "line", f"C{i:06d}", "U" + f"{i:032x}", "山田 花子", "", text, None, "f2", "guide")


def sms_message(i: int, phone: str | None = None) -> Message:
    return Message(f"T{i:06d}", "sms", f"C{i:06d}", phone or f"090-0000-{i:04d}", "山田 花子", "", "ご注文ありがとう"
                   "ございます。", None, "f2", "sms1")


# ---------------------------------------------------------------- registry and secrets

def test_every_channel_defaults_to_the_local_outbox_without_secrets(settings):
    assert set(channel_names()) == {"email", "line", "sms", "dm", "phone", "insert"} == set(CHANNELS)
    for name in channel_names():
        channel = channel_for(settings, name)
        assert isinstance(channel, OutboxChannel) and channel.name == name
    listed = settings.model_copy(update={"dm_provider": "list", "phone_provider": "list", "insert_provider": "list"})
    for name in ("dm", "phone", "insert"):
        assert isinstance(channel_for(listed, name), ListChannel)
    with pytest.raises(KizunaError, match="unknown channel 'fax'"):
        channel_for(settings, "fax")


@pytest.mark.parametrize("provider, channel, variable", [
    ({"email_provider": "sendgrid"}, "email", "KIZUNA_SENDGRID_API_KEY"),
    ({"line_provider": "line"}, "line", "KIZUNA_LINE_CHANNEL_ACCESS_TOKEN"),
    ({"sms_provider": "twilio", "twilio_from_number": "+815012345678"}, "sms", "KIZUNA_TWILIO_ACCOUNT_SID"),
])
def test_a_missing_secret_names_the_variable_to_set(settings, provider, channel, variable):
    with pytest.raises(MissingSecret, match=variable) as error:
        channel_for(settings.model_copy(update=provider), channel)
    assert "not configured" in str(error.value) and ".env.example" in str(error.value)


def test_twilio_without_a_sender_is_a_configuration_error(settings, twilio_server, monkeypatch):
    with pytest.raises(KizunaError, match="KIZUNA_TWILIO_FROM_NUMBER"):
        sms_channel(settings, twilio_server, monkeypatch, twilio_from_number="")


def test_secrets_are_masked_in_reprs_and_logs(settings, sendgrid_server, line_server, twilio_server, monkeypatch,
                                              caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("KIZUNA_SENDGRID_API_KEY", "SG.very-secret-value")
    secret = get_secret("SENDGRID_API_KEY")
    assert secret.get_secret_value() == "SG.very-secret-value"
    assert "very-secret" not in repr(secret) and "very-secret" not in str(secret)
    channels = [email_channel(settings, sendgrid_server, monkeypatch), line_channel(settings, line_server, monkeypatch),
                sms_channel(settings, twilio_server, monkeypatch)]
    channels[0].send_batch([email(1)])
    channels[1].send_batch([line_message(1)])
    channels[2].send_batch([sms_message(1)])
    for channel, token in zip(channels, [sendgrid_server.api_key, line_server.access_token, twilio_server.auth_token]):
        assert token not in repr(channel) and "**********" in repr(channel)
        assert token not in caplog.text


# ---------------------------------------------------------------- SendGrid

def test_sendgrid_keeps_at_most_max_in_flight_recipients_in_flight(settings, sendgrid_server, monkeypatch):
    """A process killed mid-batch can leave only the requests in flight undecided: by default 1,000
    recipients over the 4 concurrent requests, so each request carries 250."""
    channel = email_channel(settings, sendgrid_server, monkeypatch)
    marks: list[list[str]] = []

    class Journal(DeliveryJournal):
        def handing_over(self, send_ids):
            marks.append(list(send_ids))

    outcomes = channel.send_batch([email(i) for i in range(1001)], Journal())
    assert {o.status for o in outcomes} == {"sent"}
    assert sorted(len(m) for m in marks) == [1, 250, 250, 250, 250]
    assert len(sendgrid_server.requests) == 5


def test_sendgrid_splits_1001_recipients_into_two_requests_each_gets_its_own_message(
        settings, sendgrid_server, monkeypatch):
    # 4 requests of 1,000 may be in flight at once when 4,000 recipients in flight are allowed
    channel = email_channel(settings, sendgrid_server, monkeypatch, channel_max_in_flight=4000)
    messages = [email(i) for i in range(1001)]
    outcomes = channel.send_batch(messages)
    assert [o.send_id for o in outcomes] == [m.send_id for m in messages]
    assert {o.status for o in outcomes} == {"sent"}
    assert sorted(r["status"] for r in sendgrid_server.requests) == [202, 202]
    received = {r["custom_args"]["send_id"]: r for r in sendgrid_server.accepted}
    assert len(received) == 1001
    for m in messages:
        r = received[m.send_id]
        assert (r["to"], r["name"], r["subject"], r["text"], r["html"]) == (
            m.address, m.recipient_name, m.subject, m.body_text, m.body_html)
        assert r["headers"]["List-Unsubscribe"].startswith(f"<{m.extra['unsubscribe_url']}>, <mailto:")
        assert r["custom_args"] == {"send_id": m.send_id, "scenario_id": "f2_standard", "step_id": "thank_you"}


def test_sendgrid_messages_with_unrelated_content_still_arrive_as_rendered(settings, sendgrid_server, monkeypatch):
    channel = email_channel(settings, sendgrid_server, monkeypatch)
    messages = [email(1), email(2, body_text="全く別の本文\n", body_html=None), email(3, subject="別件")]
    assert {o.status for o in channel.send_batch(messages)} == {"sent"}
    received = {r["custom_args"]["send_id"]: r for r in sendgrid_server.accepted}
    for m in messages:
        assert (received[m.send_id]["subject"], received[m.send_id]["text"], received[m.send_id]["html"]) == (
            m.subject, m.body_text, m.body_html)


@pytest.mark.parametrize("body, status, field", [
    ({"personalizations": [{"to": [{"email": f"c{i}@example.jp"}]} for i in range(1001)]}, 400, "personalizations"),
    ({"personalizations": [{"to": [{"email": "a@example.jp"}], "cc": [{"email": f"c{i}@example.jp"} for i in range(1000)]}]},
     400, "personalizations"),
    ({"personalizations": [{"to": [{"email": "a@example.jp"}], "custom_args": {"x": "y" * 10_001}}]}, 400,
     "personalizations.0.custom_args"),
    ({"personalizations": [{"to": [{"email": "not-an-address"}]}]}, 400, "personalizations.0.to.email"),
    ({"personalizations": [{"to": [{"email": "a@example.jp"}], "send_at": int(time.time()) + 80 * 3600}]}, 400,
     "personalizations.0.send_at"),
    ({"personalizations": [{"to": [{"email": "a@example.jp"}]}],
      "content": [{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain", "value": "x"}]}, 400, "content"),
])
def test_loopback_sendgrid_rejects_what_sendgrid_rejects(sendgrid_server, body, status, field):
    client = SendGridAPIClient(api_key=sendgrid_server.api_key, host=sendgrid_server.url)
    mail = {"from": {"email": "info@shop.example"}, "subject": "s", "content": [{"type": "text/plain", "value": "x"}],
            **body}
    with pytest.raises(http_errors.HTTPError) as error:
        client.client.mail.send.post(request_body=mail)
    assert error.value.status_code == status
    assert json.loads(error.value.body)["errors"][0]["field"] == field
    assert sendgrid_server.accepted == []


def test_loopback_sendgrid_checks_the_api_key(sendgrid_server):
    client = SendGridAPIClient(api_key="SG.wrong", host=sendgrid_server.url)
    with pytest.raises(http_errors.UnauthorizedError):
        client.client.mail.send.post(request_body={"personalizations": []})


@pytest.mark.parametrize("changes, reason", [
    ({"send_id": "hanako@example.jp"}, "e-mail address"),
    ({"scenario_id": "+81 90 1234 5678"}, "phone number"),
    ({"step_id": "山田花子"}, "not an identifier"),
    ({"step_id": "thank you Hanako"}, "not an identifier"),
    ({"scenario_id": "c7@example.jp"}, "e-mail address"),
    ({"address": "yamada_hanako@example.jp", "step_id": "yamada_hanako"}, "recipient's address"),
])
def test_personal_data_in_custom_args_is_refused(settings, sendgrid_server, monkeypatch, changes, reason):
    channel = email_channel(settings, sendgrid_server, monkeypatch)
    bad, good = email(7, **changes), email(8)
    outcomes = channel.send_batch([bad, good])
    assert outcomes[0].status == "failed" and reason in outcomes[0].detail and "personal data" in outcomes[0].detail
    assert outcomes[1].status == "sent"
    assert [r["custom_args"]["send_id"] for r in sendgrid_server.accepted] == ["S000008"]


SENDGRID_FAULTS = [
    # faults queued,                               status,    requests, accepted, detail contains
    ([Fault.rate_limit(0.2, retry_after=False)],   "sent",    2, 1, "accepted"),
    ([Fault.rate_limit(30, retry_after=False)],    "failed",  1, 0, "rate limit"),
    ([Fault.error(500)],                           "unknown", 1, 0, "not resent"),
    ([Fault.error(503, accepted=True)],            "unknown", 1, 1, "not resent"),
    ([Fault.timeout(1.5, accepted=True)],          "unknown", 1, 1, "no answer"),
    ([Fault.slow(0.3)],                            "sent",    1, 1, "accepted"),
    ([Fault.error(400)],                           "failed",  1, 0, "refused"),
    ([Fault.error(401)],                           "failed",  1, 0, "refused"),
]


@pytest.mark.parametrize("faults, status, requests, accepted, detail", SENDGRID_FAULTS)
def test_sendgrid_faults(settings, sendgrid_server, monkeypatch, faults, status, requests, accepted, detail):
    channel = email_channel(settings, sendgrid_server, monkeypatch)
    sendgrid_server.fail_next(*faults)
    started = time.monotonic()
    (outcome,) = channel.send_batch([email(1)])
    assert (outcome.status, len(sendgrid_server.requests), sendgrid_server.accepted_count) == (status, requests, accepted)
    assert detail in outcome.detail
    if faults[0].status == 429 and status == "sent":
        assert time.monotonic() - started >= 0.15  # the reset time was honoured


def test_sendgrid_unreachable_fails_after_bounded_retries(settings, monkeypatch):
    server = SendGridLoopback().start()
    url = server.url
    server.stop()  # nothing listens on the port any more
    monkeypatch.setenv("KIZUNA_SENDGRID_API_KEY", server.api_key)
    channel = channel_for(settings.model_copy(update={"email_provider": "sendgrid", "sendgrid_host": url}), "email")
    channel.policy.backoff_seconds = 0.01
    (outcome,) = channel.send_batch([email(1)])
    assert outcome.status == "failed" and "could not reach SendGrid" in outcome.detail


def test_sendgrid_unknown_batch_is_not_resent_and_other_requests_go_on(settings, sendgrid_server, monkeypatch):
    channel = email_channel(settings, sendgrid_server, monkeypatch, channel_concurrency=1)
    sendgrid_server.fail_next(Fault.error(502, accepted=True))
    outcomes = channel.send_batch([email(i) for i in range(1500)])
    statuses = [o.status for o in outcomes]
    assert len(sendgrid_server.requests) == 2
    assert sorted(set(statuses)) == ["sent", "unknown"]
    assert statuses.count("unknown") in (1000, 500)


def test_sendgrid_options_sandbox_asm_send_at(settings, sendgrid_server, monkeypatch):
    tomorrow = (datetime.now() + timedelta(hours=20)).replace(microsecond=0)
    channel = email_channel(settings, sendgrid_server, monkeypatch, sendgrid_unsubscribe_group_id=4242)
    m = email(1, extra={"unsubscribe_url": "https://x.example/u?t=1", "send_at": tomorrow.isoformat()})
    past = email(2, extra={"unsubscribe_url": "https://x.example/u?t=2", "send_at": "2020-01-01T10:00:00"})
    far = email(3, extra={"send_at": (datetime.now() + timedelta(days=5)).isoformat()})
    outcomes = channel.send_batch([m, past, far])
    assert [o.status for o in outcomes] == ["sent", "sent", "failed"] and "72 hours" in outcomes[2].detail
    received = {r["custom_args"]["send_id"]: r for r in sendgrid_server.accepted}
    assert received["S000001"]["asm"] == {"group_id": 4242}
    expected = int(tomorrow.replace(tzinfo=channel.tz).timestamp())
    assert received["S000001"]["send_at"] == expected and received["S000002"]["send_at"] is None

    dry = email_channel(settings, sendgrid_server, monkeypatch, sendgrid_sandbox_mode=True)
    (outcome,) = dry.send_batch([email(9)])
    assert outcome.status == "sent" and "sandbox" in outcome.detail
    assert sendgrid_server.sandboxed_count == 1 and "S000009" not in {r["custom_args"]["send_id"]
                                                                     for r in sendgrid_server.accepted}


def test_sendgrid_bad_addresses_fail_alone(settings, sendgrid_server, monkeypatch):
    channel = email_channel(settings, sendgrid_server, monkeypatch)
    outcomes = channel.send_batch([email(1, address="no-at-sign"), email(2), email(3, address="a@x.jp, b@y.jp")])
    assert [o.status for o in outcomes] == ["failed", "sent", "failed"]


# ---------------------------------------------------------------- LINE

def test_line_splits_501_ids_into_two_multicasts_with_retry_keys(settings, line_server, monkeypatch):
    channel = line_channel(settings, line_server, monkeypatch, channel_max_in_flight=2000)  # 4 x 500 in flight
    outcomes = channel.send_batch([line_message(i) for i in range(501)])
    assert {o.status for o in outcomes} == {"sent"} and len(outcomes) == 501
    assert len(line_server.requests) == 2 and len(line_server.accepted) == 501
    keys = {r["retry_key"] for r in line_server.requests}
    assert len(keys) == 2 and None not in keys
    assert {a["messages"][0]["text"] for a in line_server.accepted} == {with_line_opt_out("定期便のご案内です。")}


def test_line_groups_by_text(settings, line_server, monkeypatch):
    channel = line_channel(settings, line_server, monkeypatch)
    outcomes = channel.send_batch([line_message(1, "A"), line_message(2, "B"), line_message(3, "A")])
    assert {o.status for o in outcomes} == {"sent"}
    sent = {a["to"]: a["messages"][0]["text"] for a in line_server.accepted}
    a, b = with_line_opt_out("A"), with_line_opt_out("B")
    assert sent == {"U" + f"{1:032x}": a, "U" + f"{2:032x}": b, "U" + f"{3:032x}": a}
    assert len(line_server.requests) == 2


LINE_FAULTS = [
    # faults,                                                    status,   requests, statuses seen
    ([Fault.error(500)],                                         "sent",    2, [500, 200]),
    ([Fault.error(500, accepted=True)],                          "sent",    2, [500, 409]),
    ([Fault.timeout(1.2, accepted=True)],                        "sent",    2, [200, 409]),
    ([Fault.timeout(1.2)],                                       "sent",    2, [0, 200]),
    ([Fault.rate_limit(0.1)],                                    "sent",    2, [429, 200]),
    ([Fault.error(503), Fault.error(503), Fault.error(503)],     "unknown", 3, [503, 503, 503]),
    ([Fault.error(400)],                                         "failed",  1, [400]),
]


@pytest.mark.parametrize("faults, status, requests, seen", LINE_FAULTS)
def test_line_faults_retry_with_the_same_key_and_deliver_once(settings, line_server, monkeypatch, faults, status,
                                                             requests, seen):
    channel = line_channel(settings, line_server, monkeypatch)
    line_server.fail_next(*faults)
    (outcome,) = channel.send_batch([line_message(1)])
    assert outcome.status == status, outcome.detail
    time.sleep(faults[0].delay)  # let a slow handler finish
    assert len(line_server.requests) == requests
    assert len({r["retry_key"] for r in line_server.requests}) == 1
    assert line_server.accepted_count == (1 if status == "sent" else 0)
    logged = sorted(line_server.requests, key=lambda r: r["n"])
    assert [r["status"] for r in logged] == seen


def test_line_resending_the_same_batch_later_is_harmless(settings, line_server, monkeypatch):
    channel = line_channel(settings, line_server, monkeypatch)
    batch = [line_message(i) for i in range(3)]
    first = channel.send_batch(batch)
    again = line_channel(settings, line_server, monkeypatch).send_batch(batch)  # e.g. the next run after a crash
    assert {o.status for o in first + again} == {"sent"}
    assert line_server.accepted_count == 3 and "409" in again[0].detail


def test_line_wrong_token_and_bad_ids_fail(settings, line_server, monkeypatch):
    monkeypatch.setenv("KIZUNA_LINE_CHANNEL_ACCESS_TOKEN", "wrong")
    channel = channel_for(settings.model_copy(update={"line_provider": "line", "line_api_host": line_server.url}),
                          "line")
    bad_id = Message("L9", "line", "C9", "not-a-user", "n", "", "x", None)
    outcomes = channel.send_batch([line_message(1), bad_id])
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert "401" in outcomes[0].detail and "LINE user id" in outcomes[1].detail


def test_loopback_line_enforces_limits_through_the_sdk(line_server):
    from linebot.v3.messaging import ApiClient, ApiException, Configuration, MessagingApi, MulticastRequest
    from linebot.v3.messaging import TextMessage

    api = MessagingApi(ApiClient(Configuration(host=line_server.url, access_token=line_server.access_token)))
    request = MulticastRequest(to=["U" + "0" * 32], messages=[TextMessage(text="x")])
    with pytest.raises(ApiException) as error:
        api.multicast(request, x_line_retry_key="not-a-uuid")
    assert error.value.status == 400
    # 501 recipients: the SDK refuses client-side; the server refuses too (raw request through the SDK's client)
    with pytest.raises(ValueError):
        MulticastRequest(to=["U" + f"{i:032x}" for i in range(501)], messages=[TextMessage(text="x")])
    with pytest.raises(ApiException) as error:
        api.api_client.rest_client.post_request(
            f"{line_server.url}/v2/bot/message/multicast",
            headers={"Authorization": f"Bearer {line_server.access_token}", "Content-Type": "application/json"},
            body={"to": ["U" + f"{i:032x}" for i in range(501)], "messages": [{"type": "text", "text": "x"}]})
    assert error.value.status == 400 and "between 1 and 500" in error.value.body.decode()
    assert line_server.accepted_count == 0


# ---------------------------------------------------------------- Twilio SMS

TWILIO_FAULTS = [
    ([],                                      "sent",    1, 1),
    ([Fault.rate_limit(0.1, reset=False)],    "sent",    2, 1),
    ([Fault.rate_limit(30, reset=False)],     "failed",  1, 0),
    ([Fault.error(500)],                      "unknown", 1, 0),
    ([Fault.error(503, accepted=True)],       "unknown", 1, 1),
    ([Fault.timeout(1.5, accepted=True)],     "unknown", 1, 1),
]


@pytest.mark.parametrize("faults, status, requests, accepted", TWILIO_FAULTS)
def test_twilio_faults(settings, twilio_server, monkeypatch, faults, status, requests, accepted):
    channel = sms_channel(settings, twilio_server, monkeypatch)
    twilio_server.fail_next(*faults)
    (outcome,) = channel.send_batch([sms_message(1)])
    assert (outcome.status, len(twilio_server.requests), twilio_server.accepted_count) == (status, requests, accepted)
    if status == "sent":
        assert outcome.provider_message_id.startswith("SM")
        assert twilio_server.accepted[0]["to"] == "+819000000001"


def test_twilio_rejections_fail_per_message(settings, twilio_server, monkeypatch):
    channel = sms_channel(settings, twilio_server, monkeypatch)
    outcomes = channel.send_batch([sms_message(1), sms_message(2, phone="+0123456789"), sms_message(3, "abc")])
    assert [o.status for o in outcomes] == ["sent", "failed", "failed"]
    assert "21211" in outcomes[1].detail


def test_twilio_wrong_token_fails(settings, twilio_server, monkeypatch):
    channel = sms_channel(settings, twilio_server, monkeypatch)
    twilio_server.auth_token = "rotated"
    (outcome,) = channel.send_batch([sms_message(1)])
    assert outcome.status == "failed" and "401" in outcome.detail


# ---------------------------------------------------------------- lists

def test_dm_list_is_cp932_with_japanese_names_and_refuses_unencodable_rows(lists):
    channel = channel_for(lists, "dm")
    messages = [
        Message("D1", "dm", "C1", "150-0001 東京都 渋谷区 神宮前1-1", "髙橋 花子", "", "", None, "dormant", "dm1",
                extra={"offer_code": "WB15", "send_at": "2026-11-24T10:00:00"}),
        Message("D2", "dm", "C2", "5300001 大阪府 大阪市北区 梅田1-1", "𠮷田 太郎", "", "", None, "dormant", "dm1",
                extra={"send_at": "2026-11-24T10:00:00"}),
        Message("D3", "dm", "C3", "060-0001 北海道 札幌市 中央区①", "渡邊 美咲", "", "", None, "dormant", "dm1",
                extra={"send_at": "2026-11-24T10:00:00"}),
    ]
    outcomes = channel.send_batch(messages)
    assert [o.status for o in outcomes] == ["sent", "failed", "sent"]
    assert "U+20BB7" in outcomes[1].detail and "name" in outcomes[1].detail
    (path,) = channel.files()
    assert path.parent.name == "2026-11-24"
    raw = path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    rows = list(csv.DictReader(raw.decode("cp932").splitlines()))
    assert rows == [
        {"send_id": "D1", "name": "髙橋 花子", "postal_code": "150-0001", "address": "東京都 渋谷区 神宮前1-1",
         "piece": "dormant/dm1", "offer_code": "WB15"},
        {"send_id": "D3", "name": "渡邊 美咲", "postal_code": "060-0001", "address": "北海道 札幌市 中央区①",
         "piece": "dormant/dm1", "offer_code": ""},
    ]
    again = channel.send_batch(messages)  # a retried batch: nothing listed twice
    assert [o.detail for o in again][::2] == ["already listed", "already listed"]
    assert len(channel.files()) == 1 and not list(path.parent.glob("*.part"))


def test_dm_encoding_is_configurable(lists):
    channel = channel_for(lists.model_copy(update={"dm_encoding": "utf-8"}), "dm")
    (outcome,) = channel.send_batch([Message("D2", "dm", "C2", "530-0001 大阪府", "𠮷田 太郎", "", "", None, "s", "d")])
    assert outcome.status == "sent"
    assert "𠮷田 太郎" in channel.files()[0].read_text("utf-8")


def test_call_and_insert_lists(lists):
    calls = channel_for(lists, "phone")
    calls.send_batch([Message("P1", "phone", "C1", "090-1234-5678", "山田 花子", "定期の継続のお願い", "・ご愛用の感想を伺う\n",
                              None, "churn", "call1", extra={"offer_code": "KEEP10", "send_at": "2026-11-24T10:00"})])
    inserts = channel_for(lists, "insert")
    inserts.send_batch([Message("I1", "insert", "C1", "", "山田 花子", "定期3回目のプレゼント", "", None, "sub", "gift3",
                                extra={"order_id": "O123", "piece": "mystery_gift_card",
                                       "send_at": "2026-11-24T10:00"})])
    (call_file,), (insert_file,) = calls.files(), inserts.files()
    call = next(csv.DictReader(call_file.read_text("utf-8-sig").splitlines()))
    assert call["phone"] == "090-1234-5678" and call["offer_code"] == "KEEP10" and "定期の継続" in call["why"]
    assert call["talking_points"] == "・ご愛用の感想を伺う"
    insert = next(csv.DictReader(insert_file.read_text("utf-8-sig").splitlines()))
    assert (insert["order_id"], insert["insert"], insert["customer_id"]) == ("O123", "mystery_gift_card", "C1")


# ---------------------------------------------------------------- rendered e-mail: outbox and SendGrid

def _rendered_email(settings) -> Message:
    step = Step(id="thank_you", day=1, channel="email", template="f2_thank_you")
    customer = {"customer_id": "C1", "last_name": "山田", "first_name": "花子", "email": "c1@example.jp"}
    rendered = Renderer(settings).render(step, customer, "S1", date(2026, 11, 24))
    return Message("S1", "email", "C1", "c1@example.jp", "山田 花子", rendered.subject, rendered.text, rendered.html,
                   "f2_standard", "thank_you", extra={"unsubscribe_url": rendered.unsubscribe_url})


def test_outbox_email_has_the_legal_footer_and_unsubscribe_link(settings):
    message = _rendered_email(settings)
    (outcome,) = channel_for(settings, "email").send_batch([message])
    assert outcome.status == "sent"
    mail = message_from_bytes((settings.outbox_dir / "email" / "S1.eml").read_bytes(), policy=policy.default)
    text = mail.get_body(("plain",)).get_content()
    for required in (settings.sender_name, settings.sender_address, settings.sender_contact,
                     message.extra["unsubscribe_url"]):
        assert required in text
    assert " ".join(mail["List-Unsubscribe"].split()).startswith(f"<{message.extra['unsubscribe_url']}>, <mailto:")


def test_a_rendered_email_reaches_sendgrid_intact(settings, sendgrid_server, monkeypatch):
    message = _rendered_email(settings)
    channel = email_channel(settings, sendgrid_server, monkeypatch)
    assert channel.send_batch([message])[0].status == "sent"
    (received,) = sendgrid_server.accepted
    assert received["text"] == message.body_text and received["html"] == message.body_html
    assert settings.sender_address in received["text"]


# ---------------------------------------------------------------- through the campaign engine

def test_engine_records_sent_and_unknown_and_never_resends_unknown(settings, sendgrid_server, monkeypatch, tmp_path):
    import duckdb

    from campaigns.engine import run_campaigns
    from connectors.channels.registry import factory
    from test_campaigns import CUSTOMER_COLUMNS, RUN_DATE, add_customers, customer, f2

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("create schema marts")
    con.execute(f"create table marts.dim_customers ({CUSTOMER_COLUMNS})")
    add_customers(con, [customer("C1", RUN_DATE - timedelta(days=1)), customer("C2", RUN_DATE - timedelta(days=5))])
    monkeypatch.setenv("KIZUNA_SENDGRID_API_KEY", sendgrid_server.api_key)
    s = settings.model_copy(update={"email_provider": "sendgrid", "sendgrid_host": sendgrid_server.url,
                                    "channel_concurrency": 1})
    # Two steps, two requests: the first is accepted but its answer is lost (502), the second goes through.
    sendgrid_server.fail_next(Fault.error(502, accepted=True))
    run_campaigns(con, s, f2(), RUN_DATE, factory(s))
    statuses = dict(con.execute("select customer_id, status from ledger.sends").fetchall())
    assert sorted(statuses.values()) == ["sent", "unknown"]
    run_campaigns(con, s, f2(), RUN_DATE, factory(s))  # the next run resends nothing
    assert sendgrid_server.accepted_count == 2 and len(sendgrid_server.requests) == 2
    for r in sendgrid_server.accepted:
        assert settings.sender_address in r["text"] and r["headers"]["List-Unsubscribe"].startswith("<https://")
    con.close()


def test_check_configuration_lists_every_problem_before_sending(settings):
    from connectors.channels.registry import check_configuration

    assert check_configuration(settings)["dm"] == "outbox"
    with pytest.raises(KizunaError) as error:
        check_configuration(settings.model_copy(update={"email_provider": "sendgrid", "line_provider": "line"}))
    assert "KIZUNA_SENDGRID_API_KEY" in str(error.value) and "KIZUNA_LINE_CHANNEL_ACCESS_TOKEN" in str(error.value)


def test_environment_wins_over_a_prefect_block_and_prefect_is_not_needed(monkeypatch):
    monkeypatch.setenv("KIZUNA_SENDGRID_API_KEY", "SG.from-env")
    monkeypatch.setenv("KIZUNA_SENDGRID_API_KEY_BLOCK", "some-block")
    assert get_secret("SENDGRID_API_KEY").get_secret_value() == "SG.from-env"
    assert get_secret("SENDGRID_API_KEY", {"KIZUNA_SENDGRID_API_KEY": "x"}).get_secret_value() == "x"


def test_line_chunk_in_doubt_is_resent_as_it_was_even_when_new_messages_join(settings, line_server, monkeypatch):
    channel = line_channel(settings, line_server, monkeypatch)
    # Accepted, but every answer is lost: the outcome stays unknown after all attempts.
    line_server.fail_next(Fault.error(500, accepted=True), Fault.error(500), Fault.error(500))
    first = channel.send_batch([line_message(1), line_message(2)])
    assert {o.status for o in first} == {"unknown"} and line_server.accepted_count == 2
    # The next run: the same two plus a new one with the same text (a different chunk, were it re-formed).
    later = line_channel(settings, line_server, monkeypatch).send_batch(
        [line_message(1), line_message(2), line_message(3)])
    assert [o.status for o in later] == ["sent", "sent", "sent"] and "409" in later[0].detail
    assert sorted(a["to"][-1] for a in line_server.accepted) == ["1", "2", "3"]  # each delivered once
    assert json.loads((settings.data_dir / "channels" / "line-chunks.json").read_text()) == {}


def test_loopback_servers_bind_to_loopback_only():
    for server in (SendGridLoopback, LineLoopback, TwilioLoopback):
        with pytest.raises(ValueError, match="127.0.0.1 only"):
            server(host="0.0.0.0")


def test_throttle_spaces_calls_and_holds_everyone_during_a_pause():
    from connectors.channels.policy import Throttle, retry_after_seconds

    throttle = Throttle(per_second=50)
    started = time.monotonic()
    for _ in range(6):
        throttle.wait()
    assert time.monotonic() - started >= 0.09
    throttle.pause(0.1)
    started = time.monotonic()
    throttle.wait()
    assert time.monotonic() - started >= 0.08
    assert retry_after_seconds({"Retry-After": "3"}, 1) == 3
    assert 4 <= retry_after_seconds({"X-RateLimit-Reset": str(int(time.time()) + 5)}, 1) <= 5
    assert retry_after_seconds({}, 1.5) == 1.5

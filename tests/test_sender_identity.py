"""A real sender or no live send; `.env.example` lists every setting.

A live provider (the loopback SendGrid, driven by the official client) with the demo shop's
sender identity must send nothing on any channel and name every setting to give.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from campaigns.engine import run_campaigns
from campaigns.schema import load_scenario
from connectors.channels.loopback import SendGridLoopback
from connectors.channels.registry import (SENDER_SETTINGS, SenderIdentityMissing, check_configuration, factory,
                                          require_sender_identity)
from kizuna import stages
from kizuna.config import PROJECT_ROOT, Settings
from kizuna.secrets import KNOWN_SECRETS
from test_campaigns import CUSTOMER_COLUMNS, RUN_DATE, add_customers, customer

IDENTITY_VARS = [f"KIZUNA_{f.upper()}" for f in SENDER_SETTINGS]

#: One scenario, two channels due the same day: e-mail (the live provider) and LINE (the outbox).
TWO_CHANNELS = """
id: two_channels
name: Two channels
priority: 100
stage: initial
entry: {event: first_order}
steps:
  - {id: mail, day: 1, channel: email, template: f2_thank_you}
  - {id: line, day: 1, channel: line, template: cart_reminder_line}
"""


@pytest.fixture
def demo_identity(monkeypatch):
    """The sender settings left at the demo shop's defaults (the conftest sets a test shop's)."""
    for var in IDENTITY_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def sendgrid():
    with SendGridLoopback() as server:
        yield server


def _shop(tmp_path: Path, sendgrid: SendGridLoopback, monkeypatch, **update) -> tuple[Settings, duckdb.DuckDBPyConnection]:
    monkeypatch.setenv("KIZUNA_SENDGRID_API_KEY", sendgrid.api_key)
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data", email_provider="sendgrid",
                        sendgrid_host=sendgrid.url, **update)
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.warehouse))
    con.execute("create schema marts")
    con.execute(f"create table marts.dim_customers ({CUSTOMER_COLUMNS})")
    add_customers(con, [customer(f"C{i}", RUN_DATE - timedelta(days=1), line_user_id="U" + f"{i:032x}",
                                 has_line_consent=True) for i in range(1, 4)])
    return settings, con


def _scenarios(tmp_path: Path):
    path = tmp_path / "two_channels.yaml"
    path.write_text(TWO_CHANNELS, encoding="utf-8")
    return [load_scenario(path)]


def test_a_live_run_with_the_demo_identity_sends_nothing_on_any_channel(tmp_path, sendgrid, monkeypatch,
                                                                        demo_identity):
    settings, con = _shop(tmp_path, sendgrid, monkeypatch)
    with pytest.raises(SenderIdentityMissing) as error:
        run_campaigns(con, settings, _scenarios(tmp_path), RUN_DATE, factory(settings))
    message = str(error.value)
    assert message.startswith("送信者情報")  # Japanese first
    for var in IDENTITY_VARS:
        assert var in message, var
    assert "email=sendgrid" in message
    assert sendgrid.requests == [] and sendgrid.accepted_count == 0  # nothing reached SendGrid
    assert not settings.outbox_dir.exists() or not any(settings.outbox_dir.rglob("*.*"))  # nor the LINE outbox
    assert not settings.ledger.exists()  # nothing even recorded: the next run starts clean
    # The nightly flow stops at its start, before loading anything, with the same message.
    with pytest.raises(SenderIdentityMissing):
        stages.check_sender_identity(settings)
    # ... and the configuration check lists it with any other problem.
    with pytest.raises(Exception) as listed:
        check_configuration(settings)
    assert "KIZUNA_SENDER_ADDRESS" in str(listed.value)
    con.close()


def test_the_message_names_only_what_is_missing_and_refuses_non_https_links(tmp_path, sendgrid, monkeypatch,
                                                                             demo_identity):
    settings, con = _shop(tmp_path, sendgrid, monkeypatch, sender_name="テスト商店", sender_email="news@shop.example",
                          sender_contact="", unsubscribe_base_url="http://shop.example/unsubscribe")
    with pytest.raises(SenderIdentityMissing) as error:
        require_sender_identity(settings)
    message = str(error.value)
    assert "KIZUNA_SENDER_ADDRESS" in message and "デモ" in message  # still the demo's
    assert "KIZUNA_SENDER_CONTACT" in message and "未設定" in message  # empty
    assert "KIZUNA_UNSUBSCRIBE_BASE_URL" in message and "https://" in message
    assert "KIZUNA_SENDER_NAME" not in message and "KIZUNA_SENDER_EMAIL" not in message
    con.close()


@pytest.mark.parametrize("update", [{"line_provider": "line"}, {"sms_provider": "twilio"}])
def test_every_network_provider_needs_the_identity(tmp_path, demo_identity, update):
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data", **update)
    with pytest.raises(SenderIdentityMissing):
        require_sender_identity(settings)


def test_the_outbox_and_the_lists_run_with_the_demo_identity(tmp_path, demo_identity):
    """The demo (outbox) and CSV lists for the shop's own vendors carry none of these settings."""
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data", dm_provider="list", phone_provider="list",
                        insert_provider="list")
    require_sender_identity(settings)  # no error


def test_a_live_run_with_a_real_identity_sends(tmp_path, sendgrid, monkeypatch):
    settings, con = _shop(tmp_path, sendgrid, monkeypatch)  # the conftest's test shop identity
    result = run_campaigns(con, settings, _scenarios(tmp_path), RUN_DATE, factory(settings))
    assert result.total("sent") == 6 and sendgrid.accepted_count == 3
    assert {r["from"] for r in sendgrid.accepted} == {settings.sender_email}
    con.close()


# ---------------------------------------------------------------- .env.example

def _env_example_vars() -> set[str]:
    text = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^#?\s*(KIZUNA_[A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_env_example_lists_every_setting():
    listed = _env_example_vars()
    missing = [f"KIZUNA_{name.upper()}" for name in Settings.model_fields if f"KIZUNA_{name.upper()}" not in listed]
    assert not missing, f".env.example does not list: {', '.join(missing)}"


def test_env_example_lists_nothing_kizuna_does_not_read():
    known = {f"KIZUNA_{name.upper()}" for name in Settings.model_fields}
    known |= {f"KIZUNA_{name}" for name in KNOWN_SECRETS} | {f"KIZUNA_{name}_BLOCK" for name in KNOWN_SECRETS}
    unknown = sorted(_env_example_vars() - known)
    assert not unknown, f".env.example lists variables kizuna does not read: {', '.join(unknown)}"


def test_the_demo_shops_images_never_go_out_but_a_shop_may_have_none(monkeypatch):
    """The brand's logo and product picture: empty is allowed (the name in text, no picture), the demo's
    addresses are not (those images do not exist)."""
    from campaigns.html_lint import lint_email_html
    from campaigns.render import Renderer
    from campaigns.schema import load_scenarios

    monkeypatch.delenv("KIZUNA_BRAND_LOGO_URL", raising=False)
    with pytest.raises(SenderIdentityMissing) as refused:
        require_sender_identity(Settings(email_provider="sendgrid"))
    assert "KIZUNA_BRAND_LOGO_URL" in str(refused.value) and "KIZUNA_BRAND_PRODUCT_IMAGE_URL" not in str(refused.value)

    bare = Settings(email_provider="sendgrid", brand_logo_url="", brand_product_image_url="")
    require_sender_identity(bare)  # nothing raised
    steps = [s for sc in load_scenarios() for s in sc.steps if s.channel == "email"]
    winback = next(s for s in steps if s.template == "dormant_winback")
    html = Renderer(bare).render(winback, customer("C1", RUN_DATE), "send-1", RUN_DATE,
                                 scenario_id="dormant_reactivation").html
    assert 'src=""' not in html and "<img" not in html and bare.brand_shop_name in html
    assert lint_email_html(html) == []

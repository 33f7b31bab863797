"""The campaign engine against a real DuckDB warehouse and ledger, delivering to the outbox."""

from __future__ import annotations

import email
from datetime import date, timedelta
from email import policy

import duckdb
import pytest

from campaigns import ledger
from campaigns.engine import run_campaigns
from campaigns.schema import Scenario, load_scenario, load_scenarios
from campaigns.unsubscribe import unsubscribe_url
from connectors.channels.base import NO_JOURNAL, Channel, Message, Outcome
from connectors.channels.outbox import OutboxChannel
from kizuna.config import Settings
from kizuna.errors import ScenarioError

RUN_DATE = date(2026, 11, 23)

CUSTOMER_COLUMNS = (
    "customer_id varchar, last_name varchar, first_name varchar, email varchar, line_user_id varchar, "
    "phone varchar, postal_code varchar, prefecture varchar, city varchar, address_line varchar, "
    "stage varchar, order_count integer, first_order_date date, first_shipped_at timestamp, "
    "first_delivered_at timestamp, age_band varchar, acquisition_media_code varchar, "
    "subscription_status varchar, gender varchar, first_order_kind varchar, last_order_date date, "
    "is_erased boolean, has_email_consent boolean, "
    "has_line_consent boolean, has_sms_consent boolean, has_dm_consent boolean, has_phone_consent boolean"
)


def customer(customer_id: str, first_order: date, **overrides) -> dict:
    row = {
        "customer_id": customer_id, "last_name": "山田", "first_name": "花子", "email": f"{customer_id}@example.jp",
        "line_user_id": None, "phone": "090-1234-5678", "postal_code": "150-0001", "prefecture": "東京都",
        "city": "渋谷区", "address_line": "神宮前1-1", "stage": "initial", "order_count": 1,
        "first_order_date": first_order, "first_shipped_at": None, "first_delivered_at": None, "age_band": "50s",
        "acquisition_media_code": "AFF01", "subscription_status": "none", "gender": "female", "is_erased": False,
        "first_order_kind": "one_off", "last_order_date": first_order,
        "has_email_consent": True, "has_line_consent": False, "has_sms_consent": False, "has_dm_consent": False,
        "has_phone_consent": False,
    }
    row.update(overrides)
    return row


@pytest.fixture
def warehouse(settings: Settings):
    con = duckdb.connect(str(settings.warehouse.parent.mkdir(parents=True, exist_ok=True) or settings.warehouse))
    con.execute("create schema marts")
    con.execute(f"create table marts.dim_customers ({CUSTOMER_COLUMNS})")
    yield con
    con.close()


def add_customers(con, rows: list[dict]) -> None:
    for row in rows:
        con.execute(
            f"insert into marts.dim_customers ({', '.join(row)}) values ({', '.join('?' * len(row))})",
            list(row.values()),
        )


def outbox(settings: Settings):
    return lambda name: OutboxChannel(settings.outbox_dir, name, settings.sender_name, settings.sender_email)


def f2() -> list[Scenario]:
    return [s for s in load_scenarios() if s.id == "f2_standard"]


def sends(con) -> list[tuple]:
    return con.execute(
        "select customer_id, step_id, status from ledger.sends order by customer_id, step_id"
    ).fetchall()


def test_due_customers_get_the_step_and_others_do_not(settings, warehouse):
    yesterday = RUN_DATE - timedelta(days=1)
    add_customers(warehouse, [
        customer("C1", yesterday),                                   # thank-you due today
        customer("C2", yesterday, has_email_consent=False),          # no consent
        customer("C3", yesterday, is_erased=True),                   # asked to be erased
        customer("C4", yesterday, order_count=2, stage="continuing"),  # already bought again
        customer("C5", yesterday, email=None),                       # nowhere to send
        customer("C6", RUN_DATE - timedelta(days=5)),                # usage guide due today
        customer("C7", RUN_DATE - timedelta(days=20)),               # every step fell due too long ago
    ])
    result = run_campaigns(warehouse, settings, f2(), RUN_DATE, outbox(settings))
    # Reached but not contactable: recorded as skipped with the reason; the goal reached (C4) and
    # steps that fell due before any run (C7) are not recorded at all.
    assert warehouse.execute(
        "select customer_id, step_id, status, detail from ledger.sends order by customer_id, step_id"
    ).fetchall() == [
        ("C1", "thank_you", "sent", ""), ("C2", "thank_you", "skipped", "no_consent"),
        ("C3", "thank_you", "skipped", "erased"), ("C5", "thank_you", "skipped", "no_address"),
        ("C6", "usage_guide", "sent", ""),
    ]
    assert result.total("sent") == 2
    files = sorted((settings.outbox_dir / "email").glob("*.eml"))
    assert len(files) == 2


def test_every_marketing_email_carries_the_legal_footer(settings, warehouse):
    add_customers(warehouse, [customer("C1", RUN_DATE - timedelta(days=12))])  # testimonials + coupon
    run_campaigns(warehouse, settings, f2(), RUN_DATE, outbox(settings))
    (eml,) = (settings.outbox_dir / "email").glob("*.eml")
    mail = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    send_id = eml.stem
    link = unsubscribe_url(settings, send_id, "C1", "email")  # the signed link of this send (same day)
    for body in (text, html):
        assert settings.sender_name in body
        assert settings.sender_address in body
        assert link in body
    assert "F2-THANKS10" in text and "2026年12月7日(月)" in text  # offer code and expiry (run date + 14 days)
    assert " ".join(mail["List-Unsubscribe"].split()).startswith(f"<{link}>, <mailto:")
    assert mail["To"].addresses[0].addr_spec == "C1@example.jp"


def test_rerunning_the_same_night_sends_nothing_twice(settings, warehouse):
    add_customers(warehouse, [customer("C1", RUN_DATE - timedelta(days=1))])
    first = run_campaigns(warehouse, settings, f2(), RUN_DATE, outbox(settings))
    second = run_campaigns(warehouse, settings, f2(), RUN_DATE, outbox(settings))
    assert first.total("sent") == 1 and second.total("sent") == 0
    assert sum(second.planned.values()) == 0
    index = (settings.outbox_dir / "index.jsonl").read_text().splitlines()
    assert len(index) == 1


def test_missed_nights_are_caught_up_within_the_window_only(settings, warehouse):
    settings.catch_up_days = 3
    add_customers(warehouse, [
        customer("C1", RUN_DATE - timedelta(days=1 + 3)),  # thank-you fell due 3 days ago: still sent
        customer("C2", RUN_DATE - timedelta(days=1 + 4)),  # 4 days ago: too late for a thank-you,
    ])                                                    # but its usage guide (day 5) is due today
    run_campaigns(warehouse, settings, f2(), RUN_DATE, outbox(settings))
    assert sends(warehouse) == [("C1", "thank_you", "sent"), ("C2", "usage_guide", "sent")]


class ExplodingChannel(Channel):
    """A provider without idempotency key that dies mid-batch (the process crashes)."""

    name = "email"

    def send_batch(self, messages: list[Message], journal=NO_JOURNAL) -> list[Outcome]:
        journal.handing_over([m.send_id for m in messages])
        raise SystemExit("killed while the provider had the request")


def test_a_crash_during_delivery_is_flagged_not_resent_on_non_idempotent_channels(settings, warehouse):
    add_customers(warehouse, [customer("C1", RUN_DATE - timedelta(days=1))])
    with pytest.raises(SystemExit):
        run_campaigns(warehouse, settings, f2(), RUN_DATE, lambda name: ExplodingChannel())
    ledger.attach(warehouse, settings.ledger)  # as the next reader does: the journal folded in
    assert sends(warehouse) == [("C1", "thank_you", "sending")]

    class Recording(ExplodingChannel):
        calls: list = []

        def send_batch(self, messages, journal=NO_JOURNAL):
            self.calls.append(messages)
            return [Outcome(m.send_id, "sent") for m in messages]

    run_campaigns(warehouse, settings, f2(), RUN_DATE, lambda name: Recording())
    assert Recording.calls == []
    assert sends(warehouse) == [("C1", "thank_you", "unknown")]


def test_a_crash_during_delivery_is_finished_once_on_the_idempotent_outbox(settings, warehouse):
    add_customers(warehouse, [customer("C1", RUN_DATE - timedelta(days=1))])
    channel = outbox(settings)
    # The process dies after the outbox wrote the message but before the ledger recorded it.
    original = OutboxChannel.send_batch

    def write_then_die(self, messages, journal=NO_JOURNAL):
        original(self, messages, journal)
        raise SystemExit("killed after delivery")

    OutboxChannel.send_batch = write_then_die
    try:
        with pytest.raises(SystemExit):
            run_campaigns(warehouse, settings, f2(), RUN_DATE, channel)
    finally:
        OutboxChannel.send_batch = original
    ledger.attach(warehouse, settings.ledger)  # as the next reader does: the journal folded in
    assert sends(warehouse) == [("C1", "thank_you", "sending")]
    run_campaigns(warehouse, settings, f2(), RUN_DATE, channel)
    assert sends(warehouse) == [("C1", "thank_you", "sent")]
    assert len(list((settings.outbox_dir / "email").glob("*.eml"))) == 1
    assert len((settings.outbox_dir / "index.jsonl").read_text().splitlines()) == 1


def test_the_ledger_survives_in_its_own_file(settings, warehouse):
    add_customers(warehouse, [customer("C1", RUN_DATE - timedelta(days=1))])
    run_campaigns(warehouse, settings, f2(), RUN_DATE, outbox(settings))
    warehouse.execute("detach ledger")
    with duckdb.connect(str(settings.ledger)) as con:
        assert con.execute("select count(*), any_value(status) from sends").fetchone() == (1, "sent")


def test_an_email_without_sender_identity_is_refused(settings, warehouse):
    settings.sender_address = ""
    add_customers(warehouse, [customer("C1", RUN_DATE - timedelta(days=1))])
    result = run_campaigns(warehouse, settings, f2(), RUN_DATE, outbox(settings))
    assert "postal address" in result.channel_problems["email"]
    assert not (settings.outbox_dir / "email").exists() or not list((settings.outbox_dir / "email").glob("*.eml"))
    assert sends(warehouse) == [("C1", "thank_you", "planned")]  # it waits for the sender settings


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("id: x\nname: X\npriority: 1\nstage: initial\nentry: {event: first_order}\nsteps: []\n", "steps"),
        ("id: x\nname: X\npriority: 1\nstage: initial\nentry: {event: first_order}\n"
         "steps: [{id: a, day: 1, channel: fax, template: f2_thank_you}]\n", "steps.0.channel"),
        ("id: x\nname: X\npriority: 1\nstage: initial\nentry: {event: first_order}\n"
         "steps: [{id: a, day: 1, channel: email, template: nope}]\n", "campaigns/templates/nope.txt.j2"),
        ("id: x\nname: X\npriority: 1\nstage: initial\nentry: {event: first_order}\nsegment: {shoe_size: '42'}\n"
         "steps: [{id: a, day: 1, channel: email, template: f2_thank_you}]\n", "unknown segment column"),
        ("id: x\nname: X\npriority: 1\nstage: initial\nentry: {event: first_order}\n"
         "steps: [{id: a, day: -1, channel: email, template: f2_thank_you}]\n", "steps.0.day"),
        ("id: [unclosed\n", "not valid YAML"),
    ],
)
def test_scenario_errors_name_the_file_and_the_field(tmp_path, yaml_text, expected):
    path = tmp_path / "broken_scenario.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    assert "broken_scenario.yaml" in str(error.value)
    assert expected in str(error.value)


def test_ledger_send_ids_are_stable_and_opaque(settings, warehouse):
    def send_id(customer_id: str) -> str:
        sql = ledger.send_id_sql("?", "?", "?", "?::date")
        return warehouse.execute(f"select {sql}", ["f2_standard", "thank_you", customer_id, "2026-11-22"]).fetchone()[0]

    assert send_id("C1") == send_id("C1")
    assert send_id("C1") != send_id("C2")
    assert len(send_id("C1")) == 24 and "C1" not in send_id("C1")

"""A/B variants of a step: the schema, the stable assignment in the selection SQL, the ledger's
`variant`, delivery of each variant's own template / offer / channel, and promoting a winner.

Real components: a DuckDB warehouse (a hand-written marts.dim_customers), the real ledger file,
the engine and the local outbox channel.
"""

from __future__ import annotations

import email
import json
from collections import Counter
from datetime import date, timedelta
from email import policy
from pathlib import Path

import duckdb
import pytest
import yaml

from campaigns.engine import in_holdout, run_campaigns, variant_for
from campaigns.schema import Scenario, load_scenario
from connectors.channels.outbox import OutboxChannel
from kizuna.config import Settings
from kizuna.errors import ScenarioError
from test_campaigns import CUSTOMER_COLUMNS, add_customers, customer

RUN_DATE = date(2026, 11, 23)
CUSTOMERS = 600


def scenario_data(**step_overrides) -> dict:
    step = {"id": "coupon", "day": 1, "channel": "email", "template": "f2_testimonials",
            "offer": {"type": "percent_off", "value": 10, "code": "AB-A10"},
            "variants": [{"id": "a", "weight": 50},
                         {"id": "b", "weight": 30, "offer": {"type": "percent_off", "value": 20, "code": "AB-B20"}},
                         {"id": "c", "weight": 20, "channel": "line", "template": "cart_reminder_line"}]}
    step.update(step_overrides)
    return {"id": "ab_test", "name": "A/B", "priority": 10, "stage": "initial", "entry": {"event": "first_order"},
            "holdout_percent": 20, "steps": [step]}


def write_scenario(folder: Path, data: dict) -> Scenario:
    path = folder / "ab_test.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_scenario(path)


@pytest.fixture
def warehouse(settings: Settings):
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.warehouse))
    con.execute("create schema marts")
    con.execute(f"create table marts.dim_customers ({CUSTOMER_COLUMNS})")
    add_customers(con, [customer(f"K{i:04d}", RUN_DATE - timedelta(days=1), line_user_id=f"U{i:04d}",
                                 has_line_consent=True) for i in range(CUSTOMERS)])
    yield con
    con.close()


def outbox(settings: Settings):
    return lambda name: OutboxChannel(settings.outbox_dir, name, settings.sender_name, settings.sender_email)


def test_each_customer_gets_the_variant_the_hash_gives_and_the_ledger_records_it(settings, warehouse, tmp_path):
    scenario = write_scenario(tmp_path, scenario_data())
    run_campaigns(warehouse, settings, [scenario], RUN_DATE, outbox(settings))
    rows = warehouse.execute("select customer_id, variant, channel, status from ledger.sends").fetchall()
    assert len(rows) == CUSTOMERS  # one row per customer: exactly one variant each
    step = scenario.steps[0]
    for customer_id, variant, channel, status in rows:
        # The SQL assigns what the Python rule says (stable: a pure function of scenario, step, customer).
        assert variant == variant_for("ab_test", step, customer_id)
        assert channel == ("line" if variant == "c" else "email")
        assert status == ("held_out" if in_holdout(customer_id, "ab_test", 20) else "sent")
    shares = Counter(v for _, v, _, _ in rows)
    for variant, weight in (("a", 0.5), ("b", 0.3), ("c", 0.2)):
        assert abs(shares[variant] / CUSTOMERS - weight) < 0.06, shares
    # Independent of the hold-out: the control group is split like everyone else.
    held = Counter(v for _, v, _, s in rows if s == "held_out")
    assert sum(held.values()) > 60 and all(held[v] > 0 for v in "abc")
    assert abs(held["a"] / sum(held.values()) - 0.5) < 0.15


def test_each_variant_sends_its_own_template_offer_and_channel(settings, warehouse, tmp_path):
    scenario = write_scenario(tmp_path, scenario_data())
    result = run_campaigns(warehouse, settings, [scenario], RUN_DATE, outbox(settings))
    assert not result.channel_problems
    variant_of = dict(warehouse.execute("select send_id, variant from ledger.sends where status = 'sent'").fetchall())
    index = [json.loads(line) for line in (settings.outbox_dir / "index.jsonl").read_text().splitlines()]
    assert {m["send_id"] for m in index} == set(variant_of)
    for m in index:
        body = _text(settings.outbox_dir / m["file"])
        variant = variant_of[m["send_id"]]
        assert m["channel"] == ("line" if variant == "c" else "email")
        if variant == "c":
            assert "カートに商品が残っています" in body and "AB-A10" in body  # inherited offer, own template
        elif variant == "b":
            assert "AB-B20" in body and "AB-A10" not in body
        else:
            assert "AB-A10" in body and "AB-B20" not in body


def _text(path: Path) -> str:
    """The text a customer reads: the plain part of an e-mail, the whole file of other channels."""
    if path.suffix != ".eml":
        return path.read_text(encoding="utf-8")
    mail = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    return mail["subject"] + "\n" + mail.get_body(("plain",)).get_content()


def test_promoting_a_winner_keeps_the_history(settings, warehouse, tmp_path):
    scenario = write_scenario(tmp_path, scenario_data())
    run_campaigns(warehouse, settings, [scenario], RUN_DATE, outbox(settings))
    before = warehouse.execute("select send_id, variant from ledger.sends order by 1").fetchall()
    # The marketer promotes b: its offer on the step, `variants` removed.
    promoted = scenario_data(offer={"type": "percent_off", "value": 20, "code": "AB-B20"})
    del promoted["steps"][0]["variants"]
    scenario = write_scenario(tmp_path, promoted)
    add_customers(warehouse, [customer("NEW1", RUN_DATE)])
    run_campaigns(warehouse, settings, [scenario], RUN_DATE + timedelta(days=1), outbox(settings))
    assert warehouse.execute("select send_id, variant from ledger.sends where customer_id <> 'NEW1' "
                             "order by 1").fetchall() == before
    assert warehouse.execute("select variant, status from ledger.sends where customer_id = 'NEW1'").fetchall() \
        == [(None, "sent")]


def test_an_old_ledger_gains_the_variant_column(settings, warehouse):
    settings.ledger.parent.mkdir(parents=True, exist_ok=True)
    old = duckdb.connect(str(settings.ledger))
    old.execute("create table sends (send_id varchar primary key, scenario_id varchar not null, step_id varchar "
                "not null, customer_id varchar not null, anchor_date date not null, channel varchar not null, "
                "due_date date not null, run_date date not null, status varchar not null, detail varchar, "
                "provider_message_id varchar, planned_at timestamp not null, updated_at timestamp not null, "
                "unique (scenario_id, step_id, customer_id, anchor_date))")
    old.execute("insert into sends values ('x', 's', 't', 'K0001', '2026-01-01', 'email', '2026-01-02', "
                "'2026-01-02', 'sent', null, null, now(), now())")
    old.close()
    from campaigns import ledger

    ledger.attach(warehouse, settings.ledger)
    assert warehouse.execute("select send_id, variant from ledger.sends").fetchall() == [("x", None)]


@pytest.mark.parametrize("variants, expected", [
    ([{"id": "a", "weight": 100}], "at least two variants"),
    ([{"id": "a", "weight": 50}, {"id": "a", "weight": 50, "template": "f2_thank_you"}], "variant ids must be unique"),
    ([{"id": "a", "weight": 50}, {"id": "b", "weight": 0, "template": "f2_thank_you"}],
     "steps.0.variants.1.weight (step coupon)"),
    ([{"id": "a", "weight": 50}, {"id": "b", "weight": 50}], "send exactly what a sends"),
    ([{"id": "a", "weight": 50}, {"id": "b", "weight": 50, "template": "nope"}], "nope.txt.j2"),
    ([{"id": "a", "weight": 50}, {"id": "b", "weight": 50, "channel": "fax"}], "steps.0.variants.1.channel"),
    ([{"id": "a", "weight": 50}, {"id": "b", "weight": 50, "offer": {"type": "percent_off", "value": 5,
                                                                      "unique": True}}], "single-use codes"),
    ([{"id": f"v{i}", "weight": 1, "template": "f2_thank_you" if i else "f2_testimonials"} for i in range(6)],
     "at most 5 variants"),
])
def test_bad_variants_are_named_with_file_step_and_fix(tmp_path, variants, expected):
    with pytest.raises(ScenarioError) as error:
        write_scenario(tmp_path, scenario_data(variants=variants))
    message = str(error.value)
    assert "ab_test.yaml" in message and expected in message
    assert "coupon" in message  # the step, by its id


def test_validate_renders_every_variant(tmp_path):
    """`kizuna campaigns validate` renders each variant's own template: a broken variant B is found
    before a night sends it (the control renders fine)."""
    import os
    import subprocess
    import sys

    shop = tmp_path / "shop"
    (shop / "templates").mkdir(parents=True)
    (shop / "templates" / "broken_b.subject.j2").write_text("件名 B", encoding="utf-8")
    (shop / "templates" / "broken_b.txt.j2").write_text("{{ customer.lst_name }} 様\n", encoding="utf-8")
    data = scenario_data(variants=[{"id": "a", "weight": 50}, {"id": "b", "weight": 50, "template": "broken_b"}])
    (shop / "ab_test.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    kizuna = Path(sys.executable).with_name("kizuna")
    done = subprocess.run([str(kizuna), "campaigns", "validate"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "KIZUNA_SCENARIOS_DIR": str(shop), "COLUMNS": "400"})
    errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(errors) == 1, done.stdout + done.stderr
    assert "broken_b.txt.j2:1:" in errors[0] and "customer.lst_name" in errors[0]

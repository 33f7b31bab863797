"""Unique single-use coupon codes: issued once per send at planning, carried into the message, exported
for the cart, created in Shopify (through the loopback twin) before any message carries them."""

from __future__ import annotations

import csv
import email
from email import policy
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from campaigns import coupons, ledger
from campaigns.engine import run_campaigns
from campaigns.schema import load_scenario
from campaigns.template_vars import jdate
from connectors.channels.loopback.shopify import DEFAULT_TOKEN, ShopifyLoopback
from connectors.channels.outbox import OutboxChannel
from kizuna.config import Settings
from kizuna.demo_shop import generate_shop
from kizuna.errors import ScenarioError
from campaign_fakes import add_customer, make_warehouse

RUN_DATE = date(2026, 11, 23)
FIRST_ORDER = RUN_DATE - timedelta(days=12)  # the testimonials step (day 12) is due tonight

SCENARIO = """
id: f2_unique
name: F2 with a code per customer
priority: 100
stage: initial
entry: {event: first_order}
exit: {goal: second_order}
holdout_percent: 0
steps:
  - {id: d12_coupon, day: 12, channel: email, template: f2_testimonials,
     offer: {type: percent_off, value: 10, code: F2, expires_in_days: 14, unique: true}}
"""


def _scenario(tmp_path: Path, text: str = SCENARIO):
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return [load_scenario(path)]


def _settings(tmp_path: Path, **kw) -> Settings:
    return Settings(home=tmp_path, data_dir=tmp_path / "data", **kw)


def _outbox(settings: Settings):
    return lambda name: OutboxChannel(settings.outbox_dir, name, settings.sender_name, settings.sender_email)


def _codes(con) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in con.execute(
        "select c.customer_id, c.code, c.expires_on, c.state, s.status from ledger.coupons c "
        "join ledger.sends s using (send_id)").fetchall()}


def _emails(settings: Settings) -> list[str]:
    """The text parts of the e-mails in the outbox."""
    out = []
    for path in settings.outbox_dir.rglob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        out.append(msg.get_body(("plain",)).get_content())
    return out


def test_every_customer_gets_an_own_code_kept_across_reruns_and_shown_in_the_message(tmp_path):
    settings = _settings(tmp_path)
    con = make_warehouse(settings.warehouse)
    for i in range(60):
        add_customer(con, f"C{i:03d}", FIRST_ORDER)
    scenarios = _scenario(tmp_path)

    run_campaigns(con, settings, scenarios, RUN_DATE, _outbox(settings))
    codes = _codes(con)
    assert len(codes) == 60
    assert len({c for c, *_ in codes.values()}) == 60  # two customers never share a code
    for code, expires, state, status in codes.values():
        prefix, body = code.split("-")
        assert prefix == "F2" and len(body) == 10 and set(body) <= set(coupons.ALPHABET)
        assert not set(body) & set("0O1IL")
        assert expires == RUN_DATE + timedelta(days=14)
        assert status == "sent" and state == "issued"

    # The message carries the customer's own code and its expiry, not the step's shared prefix.
    emls = _emails(settings)
    assert len(emls) == 60
    for code, expires, *_ in codes.values():
        assert sum(code in text and jdate(expires) in text for text in emls) == 1, code
    assert not any("：F2\n" in text for text in emls)

    # A re-run of the night, and a send retried after a failure, keep their codes.
    con.execute("update ledger.sends set status = 'failed', failures = 1 where customer_id = 'C007'")
    run_campaigns(con, settings, scenarios, RUN_DATE, _outbox(settings))
    assert _codes(con)["C007"][0] == codes["C007"][0]
    assert {k: v[0] for k, v in _codes(con).items()} == {k: v[0] for k, v in codes.items()}
    assert con.execute("select count(*) from ledger.coupons").fetchone()[0] == 60

    # Exported for the cart: one file for the send date, every code once, kizuna's columns.
    with (settings.coupons_dir / f"{RUN_DATE.isoformat()}.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == coupons.EXPORT_COLUMNS
    assert sorted(r["code"] for r in rows) == sorted(v[0] for v in codes.values())
    assert {(r["discount_type"], r["discount_value"], r["usage_limit"], r["expires_on"]) for r in rows} == {
        ("percent_off", "10", "1", (RUN_DATE + timedelta(days=14)).isoformat())}


def test_the_ledger_refuses_a_code_given_twice(tmp_path):
    settings = _settings(tmp_path)
    con = make_warehouse(settings.warehouse)
    add_customer(con, "C001", FIRST_ORDER)
    add_customer(con, "C002", FIRST_ORDER)
    run_campaigns(con, settings, _scenario(tmp_path), RUN_DATE, _outbox(settings))
    code = con.execute("select code from ledger.coupons where customer_id = 'C001'").fetchone()[0]
    with pytest.raises(duckdb.ConstraintException):
        con.execute("update ledger.coupons set code = ? where customer_id = 'C002'", [code])


def test_a_drawn_code_that_exists_is_drawn_again(tmp_path, monkeypatch):
    settings = _settings(tmp_path)
    con = make_warehouse(settings.warehouse)
    for i in range(3):
        add_customer(con, f"C{i}", FIRST_ORDER)
    ledger.attach(con, settings.ledger)
    con.execute("insert into ledger.coupons values ('F2-AAAAAAAAAA', 'x', 's', 't', 'C9', 'percent_off', 10, "
                "current_date, null, 'issued', null, null, now()::timestamp, now()::timestamp)")
    draws = iter(["F2-AAAAAAAAAA", "F2-AAAAAAAAAA", "F2-BBBBBBBBBB", "F2-CCCCCCCCCC", "F2-DDDDDDDDDD"])
    monkeypatch.setattr(coupons, "new_code", lambda prefix, length=10: next(draws))
    run_campaigns(con, settings, _scenario(tmp_path), RUN_DATE, _outbox(settings))
    assert sorted(r[0] for r in con.execute("select code from ledger.coupons").fetchall()) == [
        "F2-AAAAAAAAAA", "F2-BBBBBBBBBB", "F2-CCCCCCCCCC", "F2-DDDDDDDDDD"]


def test_unique_applies_to_cart_discounts_with_a_clean_prefix(tmp_path):
    with pytest.raises(ScenarioError, match="unique codes are cart discounts"):
        _scenario(tmp_path, SCENARIO.replace("type: percent_off, value: 10", "type: gift"))
    with pytest.raises(ScenarioError, match="prefix"):
        _scenario(tmp_path, SCENARIO.replace("code: F2", "code: 'F2 10%'"))


# -- Shopify --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    exports = tmp_path_factory.mktemp("shop") / "exports"
    generate_shop(exports, 40, 5, date(2025, 6, 30), 1)
    return exports


def _shop_customers(exports: Path) -> list[str]:
    folder = sorted(p for p in exports.iterdir() if p.is_dir())[0]
    with (folder / "customers.csv").open(encoding="utf-8", newline="") as f:
        return [row["customer_id"] for row in csv.DictReader(f)]


def test_with_shopify_each_code_is_created_for_its_customer_and_a_refused_one_is_not_sent(
        tmp_path, shop, monkeypatch):
    from connectors.channels.loopback.shopify import _number

    monkeypatch.setenv("KIZUNA_SHOPIFY_ACCESS_TOKEN", DEFAULT_TOKEN)
    with ShopifyLoopback.from_exports(shop, restore_rate=5000) as twin:
        settings = _settings(tmp_path, source="shopify", shopify_shop="kizuna-demo.myshopify.com",
                             shopify_api_url=twin.url)
        con = make_warehouse(settings.warehouse)
        known = [str(_number(c)) for c in _shop_customers(shop)[:3]]  # as the Shopify source names them
        for cid in known + ["999999999"]:  # the last one is no customer of the shop: Shopify refuses its code
            add_customer(con, cid, FIRST_ORDER)
        scenarios = _scenario(tmp_path)
        result = run_campaigns(con, settings, scenarios, RUN_DATE, _outbox(settings))

        codes = _codes(con)
        for cid in known:
            code, expires, state, status = codes[cid]
            assert (state, status) == ("created", "sent")
            discount = twin.discounts[code]
            assert discount["usageLimit"] == 1 and discount["appliesOncePerCustomer"] is True
            assert discount["context"] == {"customers": {"add": [f"gid://shopify/Customer/{cid}"]}}
            assert discount["customerGets"]["value"] == {"percentage": 0.1}
            assert discount["endsAt"] == f"{expires.isoformat()}T15:00:00Z"  # the end of that day in Japan
        code, _, state, status = codes["999999999"]
        assert (state, status) == ("failed", "failed")
        assert code not in twin.discounts
        detail = con.execute("select detail from ledger.sends where customer_id = '999999999'").fetchone()[0]
        assert "ショップに作成できませんでした" in detail and "does not exist" in detail
        assert result.coupons is not None and result.coupons.created == 3
        texts = _emails(settings)
        assert len(texts) == 3 and not any(code in t for t in texts)
        assert all(any(codes[cid][0] in t for t in texts) for cid in known)

        # The next night tries the refused code again (the send is retried with the same code); codes the
        # shop already has are not created twice.
        requests = twin.graphql_requests
        run_campaigns(con, settings, scenarios, RUN_DATE + timedelta(days=1), _outbox(settings))
        assert twin.graphql_requests == requests + 1
        assert _codes(con)["999999999"][0] == code


def test_a_code_shopify_already_has_counts_as_created(tmp_path, shop, monkeypatch):
    """The client repeats a request after a 5xx: a code created by the lost first attempt is TAKEN, not failed."""
    from connectors.channels.loopback.shopify import _number

    monkeypatch.setenv("KIZUNA_SHOPIFY_ACCESS_TOKEN", DEFAULT_TOKEN)
    with ShopifyLoopback.from_exports(shop, restore_rate=5000) as twin:
        settings = _settings(tmp_path, source="shopify", shopify_shop="kizuna-demo.myshopify.com",
                             shopify_api_url=twin.url)
        con = make_warehouse(settings.warehouse)
        cid = str(_number(_shop_customers(shop)[0]))
        add_customer(con, cid, FIRST_ORDER)
        ledger.attach(con, settings.ledger)
        from campaigns.engine import CampaignResult, plan

        plan(con, settings, _scenario(tmp_path), RUN_DATE, CampaignResult(RUN_DATE))
        coupons.provision(con, settings)
        con.execute("update ledger.coupons set state = 'failed', detail = 'HTTP 502'")  # the answer was lost
        created, failed = coupons.create_in_shopify(con, settings)
        assert (created, dict(failed)) == (1, {})
        assert con.execute("select state from ledger.coupons").fetchone()[0] == "created"
        assert len(twin.discounts) == 1

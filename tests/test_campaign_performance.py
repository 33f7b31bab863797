"""campaign_performance and campaign_lift built for real (dbt) on a small hand-made case.

Only the campaign marts (and the channel_costs seed) are built, on a warehouse whose
`marts.fct_orders` is a hand-written stand-in (the columns the marts read): seconds
instead of a full build. tests/test_dbt_models.py's full build covers the marts on the
real fct_orders (with empty campaign sources). RUN_DATE 2025-06-30, window 30 days.

Each scenario's goal (raw.campaign_scenarios) is the conversion counted:
- f2_standard (goal: second order). C001 is sent the F2 thank-you e-mail on 06-01 (delivered,
  opened twice, clicked) and a LINE coupon on 05-20; her second order (06-10, ¥9,000) falls in
  both windows and converts both, her third (same day, ¥5,000) is no goal order; her first
  (05-01) in neither window.
- C003 is sent the thank-you on 06-01 (delivered) and never buys again.
- C006 and C007 get the coupon on 05-20 and place their second order on day 30 (06-19:
  counted) and day 31 (06-20: not counted).
- C008 gets the coupon and buys in the window, but it is her third order: not converted.
- C002 and C004 are held out of f2_standard; C002 bought long before and not since, C004 never.
- C005's send was skipped: not counted anywhere.
- Scenario `big` (not in the scenario table: any order): 30 reached customers, 20 of whom
  buy, against 30 held out, 5 of whom buy.
- Scenario `flat` (goal: new order): 30 and 30 customers, nobody buys.
- Scenario `sub` (goal: subscription start): P1 buys a one-off (not converted), P2 starts a
  subscription (its first delivery, ¥6,000: converted).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from kizuna.events.load import create_raw_tables
from kizuna.modelling import build_models
from test_dbt_models import RUN_DATE, _query, _settings

LOADED = datetime(2025, 6, 30, 3)
CAMPAIGN_MARTS = ["channel_costs", "campaign_performance", "campaign_lift"]

# customer, ordered_date, revenue, purchase_sequence_number, order_kind, delivery_number
ORDERS = [
    ("C001", date(2025, 5, 1), 1980, 1, "trial", None), ("C001", date(2025, 6, 10), 9000, 2, "one_off", None),
    ("C001", date(2025, 6, 10), 5000, 3, "one_off", None),
    ("C002", date(2025, 1, 1), 1980, 1, "trial", None), ("C003", date(2025, 1, 2), 5500, 1, "one_off", None),
    ("C006", date(2025, 4, 1), 1980, 1, "trial", None), ("C006", date(2025, 6, 19), 5000, 2, "one_off", None),
    ("C007", date(2025, 4, 1), 1980, 1, "trial", None), ("C007", date(2025, 6, 20), 5000, 2, "one_off", None),
    ("C008", date(2025, 1, 1), 1980, 1, "trial", None), ("C008", date(2025, 2, 1), 5000, 2, "one_off", None),
    ("C008", date(2025, 6, 1), 5000, 3, "one_off", None),
    ("P1", date(2025, 5, 1), 1980, 1, "trial", None), ("P1", date(2025, 6, 10), 5000, 2, "one_off", None),
    ("P2", date(2025, 5, 1), 1980, 1, "trial", None), ("P2", date(2025, 6, 10), 6000, 2, "subscription", 1),
    *[(f"T{i:02d}", date(2025, 6, 5), 5000, 1, "one_off", None) for i in range(1, 21)],
    *[(f"H{i:02d}", date(2025, 6, 5), 5000, 1, "one_off", None) for i in range(1, 6)],
]
SCENARIOS = [("f2_standard", "F2", "second_order"), ("flat", "Flat", "new_order"), ("sub", "Trial", "subscription_start")]


def _warehouse(settings) -> duckdb.DuckDBPyConnection:
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.warehouse))
    con.execute("create schema marts")
    con.execute("create table marts.fct_orders (customer_id varchar, ordered_date date, revenue bigint, "
                "purchase_sequence_number bigint, order_kind varchar, delivery_number bigint, order_id varchar, "
                "ordered_at timestamp, media_code varchar, coupon_code varchar)")
    return con


def _send(send_id: str, scenario: str, step: str, customer: str, channel: str, day: date, status: str) -> tuple:
    return (send_id, scenario, step, customer, day, channel, day, day, status, "", None, LOADED, LOADED, LOADED)


SENDS = [
    _send("S1", "f2_standard", "thank_you", "C001", "email", date(2025, 6, 1), "sent"),
    _send("S2", "f2_standard", "thank_you", "C003", "email", date(2025, 6, 1), "sent"),
    _send("S3", "f2_standard", "thank_you", "C004", "email", date(2025, 6, 1), "held_out"),
    _send("S4", "f2_standard", "thank_you", "C002", "email", date(2025, 6, 1), "held_out"),
    _send("S5", "f2_standard", "coupon", "C001", "line", date(2025, 5, 20), "sent"),
    _send("S6", "f2_standard", "thank_you", "C005", "email", date(2025, 6, 1), "skipped"),
    _send("S7", "f2_standard", "coupon", "C006", "line", date(2025, 5, 20), "sent"),
    _send("S8", "f2_standard", "coupon", "C007", "line", date(2025, 5, 20), "sent"),
    _send("S9", "f2_standard", "coupon", "C008", "line", date(2025, 5, 20), "sent"),
    _send("P1", "sub", "s1", "P1", "line", date(2025, 6, 1), "sent"),
    _send("P2", "sub", "s1", "P2", "line", date(2025, 6, 1), "sent"),
    *[_send(f"B{arm}{i}", "big", "s1", f"{arm}{i:02d}", "line", date(2025, 6, 1),
            "sent" if arm == "T" else "held_out") for arm in "TH" for i in range(1, 31)],
    *[_send(f"F{arm}{i}", "flat", "s1", f"F{arm}{i:02d}", "dm", date(2025, 6, 1),
            "sent" if arm == "T" else "held_out") for arm in "TH" for i in range(1, 31)],
]

EVENTS = [("e1", "delivered", "S1"), ("e2", "open", "S1"), ("e3", "open", "S1"), ("e4", "click", "S1"),
          ("e5", "delivered", "S2"), ("e6", "processed", None)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    settings = _settings(tmp_path_factory.mktemp("campaign_marts"))
    con = _warehouse(settings)
    try:
        con.executemany("insert into marts.fct_orders values (?, ?, ?, ?, ?, ?, ?, ?, null, null)",
                        [(*o, f"O{n}", o[1]) for n, o in enumerate(ORDERS)])
        create_raw_tables(con, settings.dbt_project_dir)
        con.executemany("insert into raw.campaign_scenarios values (?, ?, ?, null, ?)",
                        [(*s, LOADED) for s in SCENARIOS])
        con.executemany(f"insert into raw.campaign_sends values ({', '.join('?' * 14)})", SENDS)
        for n, (event_id, event, send_id) in enumerate(EVENTS, 1):
            con.execute("insert into raw.message_events values (?, ?, ?, ?, 'f2_standard', 'thank_you', null, "
                        "?, null, null, '{}', ?, ?, null)", [n, event_id, event, send_id, LOADED, LOADED, LOADED])
    finally:
        con.close()
    result = build_models(settings, RUN_DATE, select=CAMPAIGN_MARTS)
    assert result.success
    tests = [n for n in result.nodes if n.resource_type == "test"]
    assert tests and all(n.status == "pass" for n in tests)
    return settings


def test_campaign_performance(built) -> None:
    rows = _query(built.warehouse, "select scenario_id || '/' || step_id || '/' || channel || '/' || send_date, * "
                                   "from marts.campaign_performance where scenario_id = 'f2_standard'")
    assert sorted(rows) == ["f2_standard/coupon/line/2025-05-20", "f2_standard/thank_you/email/2025-06-01"]
    mail = rows["f2_standard/thank_you/email/2025-06-01"]
    assert {k: mail[k] for k in ("sent_count", "delivered_count", "opened_count", "clicked_count",
                                 "converted_count", "conversion_revenue")} == {
        "sent_count": 2, "delivered_count": 2, "opened_count": 1, "clicked_count": 1,
        "converted_count": 1, "conversion_revenue": 9000}
    assert mail["conversion_rate"] == 0.5
    assert float(mail["channel_cost"]) == 2.0 and float(mail["cost_per_conversion"]) == 2.0
    assert mail["return_on_cost"] == pytest.approx((9000 - 2) / 2)
    assert mail["is_window_complete"] is False  # 06-01 + 30 days is after 06-30

    line = rows["f2_standard/coupon/line/2025-05-20"]
    # C001 and C006 (day 30) converted; C007 (day 31) and C008 (a third order) did not.
    assert (line["sent_count"], line["delivered_count"], line["opened_count"], line["converted_count"]) == \
        (4, None, None, 2)
    assert line["conversion_revenue"] == 9000 + 5000
    assert float(line["channel_cost"]) == 12.0 and float(line["cost_per_conversion"]) == 6.0
    assert line["return_on_cost"] == pytest.approx((14000 - 12) / 12)
    assert line["is_window_complete"] is True

    big = _query(built.warehouse, "select step_id, * from marts.campaign_performance where scenario_id = 'big'")
    assert (big["s1"]["sent_count"], big["s1"]["converted_count"], big["s1"]["conversion_revenue"]) == (30, 20, 100000)

    sub = _query(built.warehouse, "select step_id, * from marts.campaign_performance where scenario_id = 'sub'")
    assert (sub["s1"]["sent_count"], sub["s1"]["converted_count"], sub["s1"]["conversion_revenue"]) == (2, 1, 6000)


def test_campaign_lift(built) -> None:
    rows = _query(built.warehouse, "select * from marts.campaign_lift")
    assert sorted(rows) == ["big", "f2_standard", "flat", "sub"]

    f2 = rows["f2_standard"]
    assert (f2["treated_customers"], f2["treated_converted"], f2["holdout_customers"], f2["holdout_converted"]) == \
        (5, 2, 2, 0)
    assert f2["absolute_lift"] == pytest.approx(0.4)
    assert f2["lift_warning"] == "too few to tell"

    big = rows["big"]
    p_t, p_h = 20 / 30, 5 / 30
    se = math.sqrt(p_t * (1 - p_t) / 30 + p_h * (1 - p_h) / 30)
    assert (big["treated_customers"], big["holdout_customers"]) == (30, 30)
    assert big["treated_conversion_rate"] == pytest.approx(p_t)
    assert big["holdout_conversion_rate"] == pytest.approx(p_h)
    assert big["absolute_lift"] == pytest.approx(0.5)
    assert big["relative_lift"] == pytest.approx(3.0)
    assert big["lift_standard_error"] == pytest.approx(se)
    assert big["lift_ci_low"] == pytest.approx(0.5 - 1.96 * se)
    assert big["lift_ci_high"] == pytest.approx(0.5 + 1.96 * se)
    assert big["lift_warning"] is None

    flat = rows["flat"]
    assert (flat["absolute_lift"], flat["lift_warning"]) == (0, "not significant")


def test_campaign_marts_build_with_no_send_and_no_event(tmp_path: Path) -> None:
    """No ledger, no webhook ever: dbt creates the raw tables empty and the marts build, tests passing.

    Only the campaign marts are built (their upstream fct_orders stands in as a plain table)."""
    settings = _settings(tmp_path)
    _warehouse(settings).close()
    result = build_models(settings, RUN_DATE, select=CAMPAIGN_MARTS)
    assert result.success
    assert result.node("campaign_performance").status == "success"
    assert result.node("campaign_lift").status == "success"
    rows = _query(settings.warehouse, "select 'n', (select count(*) from marts.campaign_performance) as perf, "
                                      "(select count(*) from marts.campaign_lift) as lift, "
                                      "(select count(*) from raw.message_events) as events")
    assert (rows["n"]["perf"], rows["n"]["lift"], rows["n"]["events"]) == (0, 0, 0)

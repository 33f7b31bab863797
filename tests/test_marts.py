"""The analytics marts built for real on a small hand-written shop, checked against hand-computed values.

One module-scoped build (dbt costs seconds); the raw schema is written with the helpers
of tests/test_dbt_models.py. The shop, as of RUN_DATE 2025-10-15:

- MEAL, the worked example of docs/domain.md: M1, M2 and M3 acquired in January 2025 buy
  ¥5,000 × 4, × 7 and × 2 (one product, unit cost ¥2,000); ¥24,000 spent on MEAL in
  January (CPO ¥8,000). M2's first two orders are on one day; M3 also has a cancelled
  and M1 a zero-total order, which never count. M2 (S1, cancelled in May) and M1 (S2)
  subscribe.
- AFF: A1 acquired 2025-09-20 (one order) and A2 acquired 2025-10-01 (second order 9
  days later); ¥30,000 spent in September and ¥20,000 in October.
- N1: acquired in June 2024 without a media code; orders 2024-06-15, 2024-07-01, 2025-10-01.
- P1: registered, never bought (prospect).

Fulfilment cost per order comes from the project's seed (`seeds/fulfilment_costs.csv`,
¥650 as shipped); expectations are computed from the seed so that a shop's own costs do
not break the test.
"""

from __future__ import annotations

import csv
import itertools
from datetime import date, datetime
from typing import Any

import pytest

from kizuna.config import Settings
from kizuna.modelling import BuildResult, build_models
from test_dbt_models import DBT_PROJECT, _query, _settings, create_raw_schema

RUN_DATE = date(2025, 10, 15)
PRICE = 5000
UNIT_COST = 2000


def _fulfilment_cost_per_order() -> int:
    with (DBT_PROJECT / "seeds" / "fulfilment_costs.csv").open(encoding="utf-8") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["valid_from"])
    current = [r for r in rows if date.fromisoformat(r["valid_from"]) <= date(2024, 1, 1)][-1]
    assert all(date.fromisoformat(r["valid_from"]) <= date(2024, 1, 1) for r in rows), "test assumes one cost period"
    return int(current["order_handling_cost"]) + int(current["shipping_cost"]) + int(current["payment_fee"])


FULFILMENT = _fulfilment_cost_per_order()


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text if " " in text else f"{text} 12:00:00")


_order_numbers = itertools.count(1)


def _order(customer: str, day: str, *, media: str | None = None, status: str = "confirmed", total: int = PRICE,
           kind: str = "one_off", subscription: str | None = None, delivery: int | None = None) -> dict[str, Any]:
    return {"order_id": f"O{next(_order_numbers):03d}", "customer_id": customer, "ordered_at": _ts(day), "status": status,
            "order_kind": kind, "subscription_id": subscription, "delivery_number": delivery, "media_code": media,
            "subtotal": total, "total": total}


ORDERS = [
    # M1: 4 purchases; a zero-total order does not count.
    _order("M1", "2025-01-10", media="MEAL", kind="trial"),
    _order("M1", "2025-02-10"),
    _order("M1", "2025-03-10", kind="subscription", subscription="S2", delivery=1),
    _order("M1", "2025-05-10", kind="subscription", subscription="S2", delivery=2),
    _order("M1", "2025-06-01", total=0),
    # M2: 7 purchases, the first two on one day.
    _order("M2", "2025-01-20 09:00:00", media="MEAL", kind="trial"),
    _order("M2", "2025-01-20 18:00:00"),
    _order("M2", "2025-02-20", kind="subscription", subscription="S1", delivery=1),
    _order("M2", "2025-03-20", kind="subscription", subscription="S1", delivery=2),
    _order("M2", "2025-04-19", kind="subscription", subscription="S1", delivery=3),
    _order("M2", "2025-05-19", status="cancelled", kind="subscription", subscription="S1", delivery=4),
    _order("M2", "2025-06-01"),
    _order("M2", "2025-09-01"),
    # M3: 2 purchases; a cancelled order in between.
    _order("M3", "2025-01-31", media="MEAL", kind="trial"),
    _order("M3", "2025-02-15", status="cancelled"),
    _order("M3", "2025-03-31"),
    # AFF.
    _order("A1", "2025-09-20", media="AFF"),
    _order("A2", "2025-10-01", media="AFF"),
    _order("A2", "2025-10-10"),
    # N1: no media code.
    _order("N1", "2024-06-15"),
    _order("N1", "2024-07-01"),
    _order("N1", "2025-10-01"),
]

RAW_ROWS: dict[str, list[dict[str, Any]]] = {
    "customers": [
        {"customer_id": c, "last_name": "山田", "first_name": c, "registered_at": _ts("2024-06-01"),
         "email": f"{c.lower()}@example.jp"}
        for c in ("M1", "M2", "M3", "A1", "A2", "N1", "P1")
    ],
    "products": [
        {"product_id": "P-MAIN", "sku": "KZ-M", "product_name": "本品", "product_type": "main",
         "list_price": PRICE, "unit_cost": UNIT_COST, "is_subscription_eligible": True},
    ],
    "media": [
        {"media_code": "MEAL", "media_name": "Meal article", "media_type": "affiliate"},
        {"media_code": "AFF", "media_name": "Affiliate", "media_type": "affiliate"},
    ],
    "ad_spend": [
        {"media_code": "MEAL", "spend_month": date(2025, 1, 1), "amount": 24000},
        {"media_code": "AFF", "spend_month": date(2025, 9, 1), "amount": 30000},
        {"media_code": "AFF", "spend_month": date(2025, 10, 1), "amount": 20000},
    ],
    "orders": ORDERS,
    "order_lines": [
        {"order_line_id": f"L{o['order_id']}", "order_id": o["order_id"], "product_id": "P-MAIN",
         "quantity": 1, "unit_price": o["total"]}
        for o in ORDERS
    ],
    "subscriptions": [
        {"subscription_id": "S1", "customer_id": "M2", "product_id": "P-MAIN", "started_at": _ts("2025-01-20 18:00:00"),
         "interval_days": 30, "status": "cancelled", "cancelled_at": _ts("2025-05-10 10:00:00"), "cancel_reason": "price"},
        {"subscription_id": "S2", "customer_id": "M1", "product_id": "P-MAIN", "started_at": _ts("2025-03-10"),
         "interval_days": 60, "status": "active"},
    ],
    "shipments": [
        {"shipment_id": "SH1", "order_id": ORDERS[0]["order_id"], "shipped_at": _ts("2025-01-11 10:00:00"),
         "delivered_at": _ts("2025-01-12 15:00:00"), "carrier": "yamato"},
    ],
    "consents": [
        {"customer_id": "M2", "channel": "email", "status": "granted", "consented_at": _ts("2025-01-20"),
         "source": "checkout"},
    ],
    "survey_responses": [
        {"response_id": "R1", "customer_id": "M2", "answered_at": _ts("2025-06-01"), "satisfaction": 5,
         "intention_to_continue": 5},
        {"response_id": "R2", "customer_id": "M1", "answered_at": _ts("2025-06-01"), "satisfaction": 4,
         "intention_to_continue": 2},
        {"response_id": "R3", "customer_id": "M3", "answered_at": _ts("2025-02-01"), "satisfaction": 5,
         "intention_to_continue": 5},  # superseded by R4
        {"response_id": "R4", "customer_id": "M3", "answered_at": _ts("2025-04-01"), "satisfaction": 2,
         "intention_to_continue": 4},
        {"response_id": "R5", "customer_id": "A1", "answered_at": _ts("2025-10-01"), "satisfaction": 3,
         "intention_to_continue": 3},
        {"response_id": "R6", "customer_id": "N1", "answered_at": _ts("2025-10-02"), "satisfaction": 5,
         "intention_to_continue": 1},
    ],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, BuildResult]:
    tmp = tmp_path_factory.mktemp("marts_build")
    settings = _settings(tmp)
    create_raw_schema(settings.warehouse, RAW_ROWS)
    return settings, build_models(settings, RUN_DATE)


def _mart(built: tuple[Settings, BuildResult], sql: str) -> dict[Any, dict[str, Any]]:
    settings, _ = built
    return _query(settings.warehouse, sql)


def test_build_passes_every_test_and_unit_test(built: tuple[Settings, BuildResult]) -> None:
    _, result = built
    assert result.success
    for name in ("customer_rfm", "cohort_retention_monthly", "cohort_purchase_counts",
                 "revenue_new_vs_existing_monthly", "ltv_by_media", "ltv_by_media_cohort", "f2_conversion",
                 "f2_days_to_second_purchase", "subscription_retention", "subscription_retention_by_delivery",
                 "customer_value_deciles", "survey_quadrants", "campaign_audience", "fulfilment_costs"):
        assert result.node(name).status == "success", name
    for unit_test in ("ltv_by_media_worked_example", "customer_rfm_scores_on_cut_points",
                      "customer_rfm_cut_points_are_vars", "f2_conversion_windows_and_eligibility",
                      "cohort_retention_monthly_edge_cases", "ltv_horizon_needs_old_enough_cohorts",
                      "revenue_new_vs_existing_second_order_in_acquisition_month"):
        assert result.node(unit_test).status == "pass", unit_test
    assert result.node("assert_new_plus_existing_revenue_equals_fct_orders").status == "pass"
    assert result.node("assert_ltv_lifetime_revenue_equals_fct_orders").status == "pass"


def test_fct_orders_carries_fulfilment_cost_from_the_seed(built: tuple[Settings, BuildResult]) -> None:
    orders = _mart(built, "select order_id, fulfilment_cost, unit_cost from marts.fct_orders")
    assert len(orders) == 4 + 7 + 2 + 1 + 2 + 3
    assert {o["fulfilment_cost"] for o in orders.values()} == {FULFILMENT}
    assert {o["unit_cost"] for o in orders.values()} == {UNIT_COST}


def test_rfm_scores_and_segments(built: tuple[Settings, BuildResult]) -> None:
    rfm = _mart(built, "select customer_id, recency_days, frequency, monetary, rfm_code, rfm_segment "
                       "from marts.customer_rfm")
    got = {k: (v["recency_days"], v["frequency"], v["monetary"], v["rfm_code"], v["rfm_segment"])
           for k, v in rfm.items()}
    assert got == {
        "M1": ((RUN_DATE - date(2025, 5, 10)).days, 4, 20000, "333", "at_risk"),  # 158 days
        "M2": (44, 7, 35000, "444", "loyal"),
        "M3": ((RUN_DATE - date(2025, 3, 31)).days, 2, 10000, "222", "dormant"),  # 198 days
        "A1": (25, 1, 5000, "512", "new"),
        "A2": (5, 2, 10000, "522", "promising"),
        "N1": (14, 3, 15000, "533", "loyal"),
    }  # P1 (prospect) has no row


def test_cohort_retention(built: tuple[Settings, BuildResult]) -> None:
    rows = _mart(built, "select months_since_acquisition, cohort_size, customers_bought, retention_rate, "
                        "next_month_repurchase_rate, is_partial_month from marts.cohort_retention_monthly "
                        "where cohort_month = date '2025-01-01'")
    assert sorted(rows) == list(range(10))  # January .. October 2025, empty months included
    bought = {k: v["customers_bought"] for k, v in rows.items()}
    # Feb: M3's cancelled order does not count; Jul, Aug, Oct: no one.
    assert bought == {0: 3, 1: 2, 2: 3, 3: 1, 4: 1, 5: 1, 6: 0, 7: 0, 8: 1, 9: 0}
    assert {v["cohort_size"] for v in rows.values()} == {3}
    assert rows[1]["retention_rate"] == pytest.approx(2 / 3)
    assert rows[0]["retention_rate"] == 1
    assert rows[0]["next_month_repurchase_rate"] == pytest.approx(2 / 3)  # M1, M2 of M1, M2, M3
    assert rows[1]["next_month_repurchase_rate"] == 1  # M1 and M2 bought in March again
    assert rows[9]["next_month_repurchase_rate"] is None
    assert rows[9]["is_partial_month"] is True and rows[8]["is_partial_month"] is False


def test_cohort_purchase_counts(built: tuple[Settings, BuildResult]) -> None:
    rows = _mart(built, "select purchase_count, customers_with_exactly, customers_with_at_least "
                        "from marts.cohort_purchase_counts where cohort_month = date '2025-01-01'")
    assert sorted(rows) == list(range(1, 8))
    assert {k: v["customers_with_exactly"] for k, v in rows.items()} == {1: 0, 2: 1, 3: 0, 4: 1, 5: 0, 6: 0, 7: 1}
    assert rows[3]["customers_with_at_least"] == 2


def test_revenue_new_vs_existing(built: tuple[Settings, BuildResult]) -> None:
    rows = _mart(built, "select order_month, new_customers, new_customer_revenue, existing_customers, "
                        "existing_customer_revenue, total_revenue from marts.revenue_new_vs_existing_monthly")
    columns = ("new_customers", "new_customer_revenue", "existing_customers", "existing_customer_revenue",
               "total_revenue")

    def pick(month: date) -> tuple[Any, ...]:
        return tuple(rows[month][c] for c in columns)

    assert pick(date(2025, 1, 1)) == (3, 20000, 0, 0, 20000)  # M2's two January orders are new-customer revenue
    assert pick(date(2025, 9, 1)) == (1, 5000, 1, 5000, 10000)  # A1 new, M2 existing
    assert pick(date(2025, 10, 1)) == (1, 10000, 1, 5000, 15000)  # A2 new (2 orders), N1 existing
    assert pick(date(2024, 7, 1)) == (0, 0, 1, 5000, 5000)
    total = _mart(built, "select 1, sum(revenue) as revenue from marts.fct_orders")[1]["revenue"]
    assert sum(r["total_revenue"] for r in rows.values()) == total == 95000


def _profit(revenue: int, purchases: int, spend: int, customers: int) -> float:
    return round((revenue - purchases * (UNIT_COST + FULFILMENT) - spend) / customers, 2)


def test_ltv_by_media_worked_example_and_horizons(built: tuple[Settings, BuildResult]) -> None:
    rows = _mart(built, "select acquisition_media_code || '/' || horizon, * from marts.ltv_by_media")
    # MEAL's January cohort is old enough for 3 and 6 months (from May and August 2025), not for 12.
    assert {k for k in rows if k.startswith("MEAL/")} == {"MEAL/3m", "MEAL/6m", "MEAL/lifetime"}
    lifetime = rows["MEAL/lifetime"]
    assert (lifetime["new_customers"], lifetime["purchases"], lifetime["revenue"]) == (3, 13, 65000)
    assert lifetime["average_order_value"] == 5000
    assert lifetime["average_purchases"] == pytest.approx(4.3333)
    assert lifetime["ltv"] == pytest.approx(21666.67)
    assert lifetime["cpo"] == 8000
    assert lifetime["unit_cost_per_purchase"] == UNIT_COST
    assert lifetime["fulfilment_cost_per_purchase"] == FULFILMENT
    assert lifetime["profit_per_customer"] == pytest.approx(_profit(65000, 13, 24000, 3))
    if FULFILMENT == 950:
        assert lifetime["profit_per_customer"] == pytest.approx(883.33)  # docs/domain.md, exact (not ¥815)
    # 3 months: M1 3 (Jan 10 .. Mar 10), M2 5 (to Apr 19), M3 2 (Jan 31 + 3 months = Apr 30).
    three = rows["MEAL/3m"]
    assert (three["purchases"], three["revenue"], three["ad_spend"]) == (10, 50000, 24000)
    assert three["profit_per_customer"] == pytest.approx(_profit(50000, 10, 24000, 3))
    six = rows["MEAL/6m"]
    assert (six["purchases"], six["revenue"]) == (12, 60000)  # M2's Jun 1 counts, Sep 1 does not
    assert six["profit_per_customer"] == pytest.approx(_profit(60000, 12, 24000, 3))
    # AFF's cohorts are too young for any horizon; lifetime takes both months' spend.
    assert {k for k in rows if k.startswith("AFF/")} == {"AFF/lifetime"}
    aff = rows["AFF/lifetime"]
    assert (aff["new_customers"], aff["purchases"], aff["ad_spend"], aff["cpo"]) == (2, 3, 50000, 25000)
    # No media code: acquired June 2024, old enough for 12 months; two orders before 2025-06-15.
    assert rows["(none)/12m"]["purchases"] == 2
    assert rows["(none)/lifetime"]["purchases"] == 3
    assert rows["(none)/lifetime"]["cpo"] == 0


def test_ltv_by_media_cohort(built: tuple[Settings, BuildResult]) -> None:
    rows = _mart(built, "select acquisition_media_code || '/' || cast(cohort_month as varchar) || '/' || horizon, "
                        "new_customers, ad_spend, purchases from marts.ltv_by_media_cohort")
    assert rows["MEAL/2025-01-01/6m"]["purchases"] == 12
    assert rows["AFF/2025-09-01/lifetime"]["new_customers"] == 1
    assert rows["AFF/2025-10-01/lifetime"]["ad_spend"] == 20000
    assert "AFF/2025-09-01/3m" not in rows


def test_f2_conversion(built: tuple[Settings, BuildResult]) -> None:
    rows = _mart(built, "select acquisition_media_code || '/' || cast(cohort_month as varchar) || '/' "
                        "|| cast(window_days as varchar), eligible_buyers, converted_buyers, f2_conversion_rate "
                        "from marts.f2_conversion")
    # Days to second purchase: M1 31, M2 0 (same day), M3 59.
    assert rows["MEAL/2025-01-01/30"]["converted_buyers"] == 1
    assert rows["MEAL/2025-01-01/30"]["f2_conversion_rate"] == pytest.approx(1 / 3)
    assert rows["MEAL/2025-01-01/60"]["f2_conversion_rate"] == 1
    assert rows["MEAL/2025-01-01/90"]["f2_conversion_rate"] == 1
    # A1 (Sep 20) and A2 (Oct 1) are fewer than 30 days before RUN_DATE: not in any denominator.
    assert rows["AFF/2025-09-01/30"]["eligible_buyers"] == 0
    assert rows["AFF/2025-10-01/30"]["converted_buyers"] == 0
    assert rows["AFF/2025-10-01/30"]["f2_conversion_rate"] is None
    assert rows["(none)/2024-06-01/30"]["f2_conversion_rate"] == 1  # 16 days


def test_f2_days_to_second_purchase(built: tuple[Settings, BuildResult]) -> None:
    rows = _mart(built, "select days_bucket, customers, cumulative_share from marts.f2_days_to_second_purchase")
    # Second purchasers: M2 0, A2 9, N1 16, M1 31, M3 59 days.
    assert {k: v["customers"] for k, v in rows.items() if v["customers"]} == {"0-7": 1, "8-14": 1, "15-30": 1,
                                                                             "31-60": 2}
    assert rows["15-30"]["cumulative_share"] == pytest.approx(3 / 5)
    assert rows["366+"]["cumulative_share"] == pytest.approx(1)


def test_subscription_retention(built: tuple[Settings, BuildResult]) -> None:
    monthly = _mart(built, "select cast(start_month as varchar) || '/' || cast(months_since_start as varchar), "
                           "subscriptions_observed, subscriptions_surviving, survival_rate "
                           "from marts.subscription_retention")
    assert monthly["2025-01-01/3"]["survival_rate"] == 1  # S1 alive on Apr 20
    assert monthly["2025-01-01/4"]["survival_rate"] == 0  # cancelled May 10, before May 20
    assert monthly["2025-01-01/9"]["subscriptions_observed"] == 0  # Oct 20 is after RUN_DATE
    assert monthly["2025-03-01/7"]["survival_rate"] == 1  # S2 still active
    by_delivery = _mart(built, "select delivery_number, subscriptions_due, subscriptions_reached "
                               "from marts.subscription_retention_by_delivery")
    got = {k: (v["subscriptions_due"], v["subscriptions_reached"]) for k, v in by_delivery.items()}
    # S1 reached delivery 3 (its cancelled 4th does not count), S2 delivery 2.
    assert got == {1: (2, 2), 2: (2, 2), 3: (2, 1), 4: (2, 0)}


def test_customer_value_deciles(built: tuple[Settings, BuildResult]) -> None:
    rows = _mart(built, "select value_decile, customers, revenue, cumulative_revenue_share, "
                        "top_20_percent_revenue_share from marts.customer_value_deciles")
    # Six buyers, one per decile: M2 35,000, M1 20,000, N1 15,000, A2 and M3 10,000 (tie by id), A1 5,000.
    assert {k: v["revenue"] for k, v in rows.items()} == {1: 35000, 2: 20000, 3: 15000, 4: 10000, 5: 10000,
                                                          6: 5000}
    assert rows[1]["top_20_percent_revenue_share"] == pytest.approx(55000 / 95000)
    assert rows[6]["cumulative_revenue_share"] == pytest.approx(1)


def test_survey_quadrants(built: tuple[Settings, BuildResult]) -> None:
    rows = _mart(built, "select quadrant, customers, revenue, ltv from marts.survey_quadrants")
    got = {k: (v["customers"], v["revenue"], v["ltv"]) for k, v in rows.items()}
    assert got == {
        "satisfied_continuing": (1, 35000, 35000),  # M2
        "satisfied_not_continuing": (2, 35000, 17500),  # M1 and N1
        "unsatisfied_continuing": (1, 10000, 10000),  # M3's latest answer
        "unsatisfied_not_continuing": (1, 5000, 5000),  # A1 (3 is not high)
    }


def test_campaign_audience(built: tuple[Settings, BuildResult]) -> None:
    rows = _mart(built, "select * from marts.campaign_audience")
    assert len(rows) == 7
    m1 = rows["M1"]
    assert m1["days_since_first_order"] == (RUN_DATE - date(2025, 1, 10)).days
    assert m1["days_since_first_shipment"] == (RUN_DATE - date(2025, 1, 11)).days
    assert m1["days_since_first_delivery"] == (RUN_DATE - date(2025, 1, 12)).days
    assert m1["days_since_last_order"] == (RUN_DATE - date(2025, 5, 10)).days
    assert (m1["stage"], m1["rfm_segment"]) == ("continuing", "at_risk")
    assert (rows["M3"]["stage"], rows["M3"]["rfm_segment"]) == ("dormant", "dormant")
    assert rows["A2"]["days_since_first_shipment"] is None
    assert (rows["P1"]["stage"], rows["P1"]["rfm_segment"]) == ("prospect", None)
    assert rows["M2"]["is_contactable"] is True and rows["M1"]["is_contactable"] is False


def test_generate_docs(built: tuple[Settings, BuildResult]) -> None:
    from kizuna.modelling import generate_docs, target_dir

    settings, _ = built
    index = generate_docs(settings)
    assert index.is_file()  # the one page the README points to, with the catalog embedded ...
    page = index.read_text(encoding="utf-8")
    assert "ltv_by_media" in page and "customer_rfm" in page
    # ... and the whole site in the warehouse's own target folder (`dbt docs serve --target-path`)
    catalog = (target_dir(settings) / "catalog.json").read_text(encoding="utf-8")
    assert "ltv_by_media" in catalog and "customer_rfm" in catalog


# --- Analysts (issue 18 item 5): names beside codes, 限界CPO, payback, descriptions in the warehouse ---


def test_ltv_by_media_names_break_even_cpo_and_payback(built: tuple[Settings, BuildResult]) -> None:
    rows = _mart(built, "select acquisition_media_code || '/' || horizon, * from marts.ltv_by_media")
    gross = {h: rows[f"MEAL/{h}"]["revenue"] - rows[f"MEAL/{h}"]["purchases"] * (UNIT_COST + FULFILMENT)
             for h in ("3m", "6m", "lifetime")}
    for horizon, profit_before_ads in gross.items():
        row = rows[f"MEAL/{horizon}"]
        assert (row["media_name"], row["media_type"]) == ("Meal article", "affiliate")
        assert row["break_even_cpo"] == pytest.approx(round(profit_before_ads / 3, 2))  # 限界CPO
        assert row["break_even_cpo"] == pytest.approx(row["cpo"] + row["profit_per_customer"], abs=0.01)
    # Payback: the first month horizon whose profit before ad spend covers MEAL's ¥24,000 (3m: ¥23,500 with
    # the shipped ¥650 fulfilment, short of it; 6m: ¥28,200).
    expected = next((m for m, h in ((3, "3m"), (6, "6m")) if gross[h] >= 24000), None)
    assert {rows[f"MEAL/{h}"]["payback_months"] for h in ("3m", "6m", "lifetime")} == {expected}
    if FULFILMENT == 650:
        assert expected == 6
    # AFF has only a lifetime row: no month horizon, no payback month; no code, no name.
    assert rows["AFF/lifetime"]["payback_months"] is None and rows["AFF/lifetime"]["media_name"] == "Affiliate"
    assert rows["(none)/lifetime"]["media_name"] is None
    cohort = _mart(built, "select acquisition_media_code || '/' || horizon || '/' || cast(cohort_month as varchar), "
                          "media_name, break_even_cpo from marts.ltv_by_media_cohort")
    assert cohort["MEAL/lifetime/2025-01-01"]["media_name"] == "Meal article"
    assert cohort["MEAL/lifetime/2025-01-01"]["break_even_cpo"] == rows["MEAL/lifetime"]["break_even_cpo"]
    f2 = _mart(built, "select acquisition_media_code || '/' || cast(window_days as varchar), media_name "
                      "from marts.f2_conversion where cohort_month = date '2025-01-01'")
    assert f2["MEAL/30"]["media_name"] == "Meal article"


def test_descriptions_are_in_the_warehouse(built: tuple[Settings, BuildResult]) -> None:
    """persist_docs: the yml descriptions are comments on the tables and columns a BI tool reads."""
    tables = _mart(built, "select schema_name || '.' || table_name, comment from duckdb_tables() "
                          "where schema_name in ('marts', 'intermediate', 'reference')")
    views = _mart(built, "select schema_name || '.' || view_name, comment from duckdb_views() "
                         "where schema_name = 'staging'")
    assert tables["marts.ltv_by_media"]["comment"].startswith("One row per acquisition medium and LTV horizon")
    assert "{{" not in tables["marts.ltv_by_media"]["comment"]  # doc() blocks rendered, not their source
    assert views["staging.stg_shop__media"]["comment"].startswith("Acquisition media")
    undocumented = [name for name, row in {**tables, **views}.items() if not row["comment"]]
    assert not undocumented, undocumented
    columns = _mart(built, "select column_name, comment from duckdb_columns() "
                           "where schema_name = 'marts' and table_name = 'ltv_by_media'")
    assert columns["break_even_cpo"]["comment"].startswith("限界CPO")
    assert all(row["comment"] for row in columns.values()), [c for c, r in columns.items() if not r["comment"]]

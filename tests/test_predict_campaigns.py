"""Issue 19, part 4: scenarios use the predictions: segment filters on P(alive), churn-risk band and
predicted CLV, the `expected_next_order` anchor, and the built-in at-risk win-back.

The real engine runs over a small DuckDB warehouse (tests/campaign_fakes.py) with a
marts.customer_predictions table as the prediction stage leaves it, and the real ledger.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from campaign_fakes import MemoryChannel as Memory, add_customer, add_order, make_warehouse
from campaigns.engine import run_campaigns
from campaigns.schema import Scenario, load_scenarios


@pytest.fixture
def wh(settings):
    con = make_warehouse(settings.warehouse)
    con.execute("""create table marts.customer_predictions (customer_id varchar, p_alive double,
                   churn_risk_band varchar, predicted_clv_12m double, expected_next_order_date date)""")
    yield con
    con.close()


def predicted(con, customer_id: str, p_alive: float, clv: float = 10000.0, next_order: date | None = None) -> None:
    band = "high" if p_alive < 0.3 else "medium" if p_alive < 0.7 else "low"
    con.execute("delete from marts.customer_predictions where customer_id = ?", [customer_id])
    con.execute("insert into marts.customer_predictions values (?, ?, ?, ?, ?)",
                [customer_id, p_alive, band, clv, next_order])


def scenario(**fields) -> Scenario:
    data = {"id": "t", "name": "test", "priority": 10, "stage": "any", "holdout_percent": 0} | fields
    return Scenario.model_validate(data)


def run_nights(con, settings, scenarios, first: date, last: date, on_night=None) -> set[tuple[date, str, str]]:
    log, sent, night = [], set(), first
    while night <= last:
        if on_night:
            on_night(night)
        before = len(log)
        run_campaigns(con, settings, scenarios, night, lambda name: Memory(name, log))
        sent |= {(night, m.step_id, m.customer_id) for m in log[before:]}
        night += timedelta(days=1)
    return sent


def test_segments_filter_on_p_alive_band_and_predicted_clv(settings, wh):
    d0 = date(2026, 3, 1)
    for cid, p, clv in (("RISKY_RICH", 0.2, 30000), ("RISKY_POOR", 0.2, 1000), ("SAFE_RICH", 0.9, 30000),
                        ("EDGE", 0.3, 30000)):
        add_customer(wh, cid, d0)
        predicted(wh, cid, p, clv)
    add_customer(wh, "UNSCORED", d0)  # no prediction: matches no prediction filter
    s = scenario(entry={"event": "first_order"}, segment={"p_alive_below": 0.3, "predicted_clv_12m_at_least": 20000},
                 steps=[{"id": "d3_mail", "day": 3, "channel": "email", "template": "dormant_winback"}])
    band = scenario(id="b", entry={"event": "first_order"}, segment={"churn_risk_band": ["medium"]},
                    steps=[{"id": "d3_mail", "day": 3, "channel": "email", "template": "dormant_winback"}])
    sent = run_nights(wh, settings, [s], d0, d0 + timedelta(days=4))
    assert {c for _, _, c in sent} == {"RISKY_RICH"}  # 0.3 is not below 0.3; CLV 1,000 is too low
    sent = run_nights(wh, settings, [band], d0, d0 + timedelta(days=4))
    assert {c for _, _, c in sent} == {"EDGE"}  # the band's lower cut point 0.3 is medium


def test_expected_next_order_anchor_reminds_five_days_before_and_moves_with_a_new_order(settings, wh):
    d0 = date(2026, 4, 1)
    add_customer(wh, "A", d0)
    add_customer(wh, "B", d0)
    predicted(wh, "A", 0.8, next_order=d0 + timedelta(days=40))
    predicted(wh, "B", 0.8, next_order=d0 + timedelta(days=40))
    reminder = scenario(entry={"event": "expected_next_order"},
                        steps=[{"id": "before5_mail", "day": -5, "channel": "email", "template": "run_out_reminder"}])

    def life(night: date) -> None:
        if night == d0 + timedelta(days=30):  # B orders again: the prediction stage moves the date ahead
            add_order(wh, "B", night)
            predicted(wh, "B", 0.9, next_order=night + timedelta(days=45))

    sent = run_nights(wh, settings, [reminder], d0, d0 + timedelta(days=80), life)
    assert sent == {(d0 + timedelta(days=35), "before5_mail", "A"),
                    (d0 + timedelta(days=70), "before5_mail", "B")}


def test_builtin_at_risk_winback_reaches_repeat_buyers_whose_p_alive_fell(settings, wh):
    d0 = date(2026, 1, 5)
    for cid in ("AT_RISK", "ALIVE", "LATE", "UNSCORED", "ONE_OFF", "SUB"):
        add_customer(wh, cid, d0 - timedelta(days=100), subscription_status="active" if cid == "SUB" else "none")
        if cid != "ONE_OFF":
            add_order(wh, cid, d0, kind="subscription" if cid == "SUB" else "one_off")
    for cid, p in (("AT_RISK", 0.4), ("ALIVE", 0.9), ("LATE", 0.9), ("ONE_OFF", 0.1), ("SUB", 0.1)):
        predicted(wh, cid, p)

    def life(night: date) -> None:
        if night == d0 + timedelta(days=60):  # LATE's P(alive) falls after day 45: the day-75 step reaches them
            predicted(wh, "LATE", 0.35)

    at_risk = next(s for s in load_scenarios() if s.id == "at_risk_winback").model_copy(update={"holdout_percent": 0})
    sent = run_nights(wh, settings, [at_risk], d0 + timedelta(days=40), d0 + timedelta(days=80), life)
    assert sent == {(d0 + timedelta(days=45), "d45_at_risk_mail", "AT_RISK"),
                    (d0 + timedelta(days=75), "d75_at_risk_mail", "AT_RISK"),
                    (d0 + timedelta(days=75), "d75_at_risk_mail", "LATE")}


def test_without_the_predictions_mart_a_prediction_filter_selects_nobody(settings, tmp_path):
    con = make_warehouse(tmp_path / "bare.duckdb")  # a warehouse never scored: no customer_predictions
    add_customer(con, "A", date(2026, 5, 1))
    s = scenario(entry={"event": "first_order"}, segment={"p_alive_at_least": 0.0},
                 steps=[{"id": "d1_mail", "day": 1, "channel": "email", "template": "dormant_winback"}])
    assert run_nights(con, settings, [s], date(2026, 5, 1), date(2026, 5, 3)) == set()
    con.close()


@pytest.mark.parametrize("segment, expected", [
    ({"p_alive_below": "low"}, "segment p_alive_below takes a number"),
    ({"p_alive_below": 1.5}, "is a probability between 0 and 1"),
    ({"age_band": 30}, "segment age_band takes a name or a list of names"),
    ({"p_alive_under": 0.3}, "unknown segment column(s) ['p_alive_under']"),
])
def test_prediction_segments_are_validated(segment, expected):
    with pytest.raises(Exception) as info:
        scenario(entry={"event": "first_order"}, segment=segment,
                 steps=[{"id": "d1_mail", "day": 1, "channel": "email", "template": "dormant_winback"}])
    assert expected in str(info.value)


def test_expected_next_order_allows_days_before_it():
    s = scenario(entry={"event": "expected_next_order"},
                 steps=[{"id": "before5_mail", "day": -5, "channel": "email", "template": "run_out_reminder"}])
    assert s.entry.table_read == "marts.customer_predictions"

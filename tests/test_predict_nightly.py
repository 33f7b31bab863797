"""Issue 19 in the nightly run: the prediction stage on a real small shop (demo exports, ingest, dbt build),
the marts it builds (customer_predictions, customer_predictions_by_media, the predicted columns of
ltv_by_media) with their dbt tests, the hold-out check, the report's section, and the fallback of a
shop too small to fit."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from built_shop import build_small_shop
from kizuna import stages
from kizuna.config import Settings
from kizuna.i18n import translations


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A 3,000-customer demo shop, built and scored with a threshold its ~300 repeat buyers pass."""
    folder = tmp_path_factory.mktemp("predict_shop")
    built, outcome = build_small_shop(folder, customers=3000, seed=11, end=date(2026, 10, 31))
    settings = Settings(data_dir=built.data_dir, predict_min_repeat_buyers=100, predict_holdout_weeks=8)
    outcome.predictions = stages.predict_customers(settings, outcome.run_date)
    return settings, outcome


def query(settings: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_every_buyer_is_scored_with_consistent_predictions(shop):
    settings, outcome = shop
    fits = {f.model: f for f in outcome.predictions.fits}
    assert fits["bgnbd_gamma_gamma"].status == "fitted" and fits["sbg"].status == "fitted"
    buyers = query(settings, "select count(*) from marts.dim_customers where order_count > 0 and not is_erased")[0][0]
    rows = query(settings, "select count(*), count(model) from marts.customer_predictions")[0]
    assert rows[0] == buyers and rows[1] > 0.9 * buyers
    bad = query(settings, """
        select count(*) from marts.customer_predictions where model is not null and not (
            p_alive between 0 and 1
            and churn_risk_band = case when p_alive < 0.3 then 'high' when p_alive < 0.7 then 'medium' else 'low' end
            and expected_purchases_90d <= expected_purchases_180d and expected_purchases_180d <= expected_purchases_365d
            and predicted_clv_12m >= 0 and predicted_ltv_12m <= predicted_ltv_36m)""")[0][0]
    assert bad == 0
    # subscribers: alive while subscribed, nothing to expect once cancelled
    subs = dict(query(settings, """select subscription_status = 'cancelled', max(expected_purchases_365d)
                                    from marts.customer_predictions where model = 'sbg' group by 1"""))
    assert subs[True] == 0 and subs[False] > 0
    # the next order is after the last one (BG/NBD: the last + the expected time between orders)
    early = query(settings, """select count(*) from marts.customer_predictions p join marts.dim_customers c
                               using (customer_id) where p.model is not null
                               and p.expected_next_order_date <= c.last_order_date""")[0][0]
    assert early == 0


def test_prediction_marts_are_tested_by_dbt_and_feed_ltv_by_media(shop):
    settings, _ = shop
    build = stages.build_prediction_marts(settings, date(2026, 11, 1))
    tests = [n for n in build.nodes if n.resource_type == "test"]
    assert any("customer_predictions" in n.name for n in tests) and all(n.status == "pass" for n in tests)
    mismatched = query(settings, """
        select count(*) from marts.ltv_by_media l join marts.customer_predictions_by_media p using (acquisition_media_code)
        where l.predicted_ltv_12m is distinct from p.predicted_ltv_12m
           or l.predicted_profit_36m is distinct from p.predicted_profit_36m""")[0][0]
    assert mismatched == 0
    media = query(settings, "select count(distinct acquisition_media_code) from marts.ltv_by_media "
                            "where predicted_ltv_36m is not null")[0][0]
    assert media >= 3
    # the mean over the medium's scored customers, recomputed here
    check = query(settings, """
        select max(abs(b.predicted_ltv_12m - a.v)) from marts.customer_predictions_by_media b join (
            select coalesce(acquisition_media_code, '(none)') as acquisition_media_code, avg(predicted_ltv_12m) as v
            from marts.customer_predictions where model is not null group by 1) a using (acquisition_media_code)""")
    assert check[0][0] < 0.01


def test_holdout_counts_the_actual_repeat_purchases_of_the_last_weeks(shop):
    settings, outcome = shop
    fit = outcome.predictions.fit("bgnbd_gamma_gamma")
    assert fit.holdout_weeks == 8
    cutoff = outcome.run_date - timedelta(weeks=8)
    # one-off buyers known at the cut-off: their order days after it, up to the as-of day
    actual = query(settings, f"""
        with one_off as (select customer_id from marts.dim_customers where subscription_status = 'none'
                         and not is_erased),
        known as (select customer_id from marts.fct_orders join one_off using (customer_id)
                  group by 1 having min(ordered_date) <= date '{cutoff}')
        select count(distinct (customer_id, ordered_date)) from marts.fct_orders join known using (customer_id)
        where ordered_date > date '{cutoff}' and ordered_date <= date '{outcome.run_date}'""")[0][0]
    assert fit.holdout_actual == actual
    weekly = query(settings, "select week, predicted_cumulative, actual_cumulative from predict.holdout_weekly "
                             "order by week")
    assert [w for w, _, _ in weekly] == list(range(1, 9)) and weekly[-1][2] == actual
    assert all(a[1] <= b[1] and a[2] <= b[2] for a, b in zip(weekly, weekly[1:]))  # cumulative
    assert fit.holdout_predicted == pytest.approx(weekly[-1][1])


def test_report_shows_the_holdout_chart_and_the_churn_bands(shop):
    settings, outcome = shop
    path = stages.write_report(settings, outcome)
    html = path.read_text(encoding="utf-8")
    _ = translations("ja").gettext
    assert _("Predictions (CLV)") in html and 'id="chart-prediction-holdout"' in html
    assert 'id="chart-prediction-frequency"' in html and html.count("<circle") >= 16  # 2 lines × 8 weeks
    fit = outcome.predictions.fit("bgnbd_gamma_gamma")
    assert f"{fit.holdout_error * 100:.1f}%" in html
    bands = query(settings, "select churn_risk_band, count(*) from marts.customer_predictions "
                            "where churn_risk_band is not null group by 1")
    for band, n in bands:
        assert f'data-band="{band}"' in html and f"{n:,}" in html


def test_a_shop_too_small_to_fit_falls_back_to_the_historical_marts(shop, tmp_path):
    settings, outcome = shop
    data = tmp_path / "data"
    shutil.copytree(settings.data_dir, data)
    small = Settings(data_dir=data, predict_min_repeat_buyers=100000)
    result = stages.predict_customers(small, outcome.run_date)
    assert {f.model: f.status for f in result.fits} == {"bgnbd_gamma_gamma": "too_small", "sbg": "too_small"}
    assert query(small, "select count(model), count(*) from marts.customer_predictions")[0][0] == 0
    assert query(small, "select count(predicted_ltv_12m) from marts.ltv_by_media")[0][0] == 0
    assert query(small, "select count(*) from predict.holdout_weekly")[0][0] == 0
    html = stages.write_report(small, outcome).read_text(encoding="utf-8")
    assert "data-prediction-warning" in html and "100,000" in html

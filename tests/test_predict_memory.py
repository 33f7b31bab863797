"""The prediction stage's memory-lean paths (issue 19: 1M customers within 1.5 GiB, `python -m bench.predict`)
give the same results as the plain ones they replace.

- the fitted models hand back a model holding only the parameters (not every customer's data);
- read_history keys the orders by integers in SQL (no per-order string in Python), and predict() scores
  the same from those as from string-keyed orders;
- the one-off scores, evaluated on the distinct (frequency, recency, T) rows, equal the library's forecasts
  per customer.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ is not an installed package
from bench.predict import synthetic_orders, write_marts  # noqa: E402
from kizuna.predict import models as m  # noqa: E402
from kizuna.predict import score  # noqa: E402

CDNOW = Path(__file__).parent / "data" / "cdnow" / "CDNOW_sample.txt"
AS_OF = date(2026, 11, 1)  # bench.predict's generated orders end here


@pytest.fixture(scope="module")
def calibration() -> pd.DataFrame:
    raw = pd.read_csv(CDNOW, sep=r"\s+", header=None, names=["master_id", "customer_id", "day", "cds", "revenue"],
                      dtype={"day": str})
    return m.rfm_summary(raw.assign(ordered_date=pd.to_datetime(raw["day"], format="%Y%m%d").dt.date),
                         date(1997, 9, 30))


@pytest.fixture(scope="module")
def fitted(calibration):
    return m.fit_beta_geo(calibration), m.fit_gamma_gamma(calibration)


def test_fitted_models_keep_the_parameters_not_the_customers(calibration, fitted):
    (params, bg), (gg_params, gg) = fitted
    # the data a fitted model holds is one row: the 2,357 customers' copies went with the fitted graph
    assert len(bg.data) == 1 and len(gg.data) == 1
    # and its forecasts are those of the parameters
    reference = m.beta_geo_model(calibration, params)
    assert np.allclose(m.expected_purchases(bg, calibration, 39), m.expected_purchases(reference, calibration, 39))
    assert np.allclose(m.expected_spend(gg, calibration),
                       m.expected_spend(m.gamma_gamma_model(calibration, gg_params), calibration))


def test_one_off_scores_from_distinct_rows_equal_the_per_customer_forecasts(calibration, fitted, monkeypatch):
    (params, bg), (_, gg) = fitted
    monkeypatch.setattr(m, "CHUNK_ROWS", 500)  # several slices on 2,357 customers (fewer distinct rows)
    history = pd.DataFrame({"customer_id": calibration["customer_id"], "revenue_12m": 0.0, "revenue_36m": 0.0})
    out = score._one_off_scores(calibration, bg, gg, date(1997, 9, 30), 0.10, params, history)
    data = calibration[["customer_id", "frequency", "recency", "T"]]
    each = [np.asarray(bg.expected_purchases(data=data, future_t=k * score.WEEKS_PER_MONTH)).reshape(-1)
            for k in range(0, 13)]
    discount = (1.10) ** (-np.arange(1, 13) / 12)
    clv = sum((each[k] - each[k - 1]) * discount[k - 1] for k in range(1, 13)) * m.expected_spend(gg, calibration)
    assert np.allclose(out["predicted_clv_12m"], clv, rtol=1e-9)
    alive = np.asarray(bg.expected_probability_alive(data=data)).reshape(-1)
    assert np.allclose(out["p_alive"], alive, rtol=1e-9)
    assert len(np.unique(out["p_alive"].round(9))) > 100  # real per-customer values, not one spread value


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("predict-memory") / "warehouse.duckdb"
    write_marts(path, *synthetic_orders(1200, seed=3))
    return path


def test_read_history_keys_the_orders_by_customer_row_in_sql(shop):
    con = duckdb.connect(str(shop), read_only=True)
    orders, customers = score.read_history(con)
    plain = con.execute("select customer_id, ordered_date, order_kind from marts.fct_orders").df()
    con.close()
    assert "customer_id" not in orders.columns and orders["customer_key"].dtype.kind == "i"
    assert isinstance(orders["order_kind"].dtype, pd.CategoricalDtype)
    # each order's key is its customer's row: the same orders as the plain read, customer by customer
    keyed = pd.DataFrame({"customer_id": customers["customer_id"].to_numpy()[orders["customer_key"].to_numpy()],
                          "ordered_date": orders["ordered_date"], "order_kind": orders["order_kind"].astype(str)})
    key = ["customer_id", "ordered_date", "order_kind"]
    pd.testing.assert_frame_equal(keyed.sort_values(key).reset_index(drop=True),
                                  plain.sort_values(key).reset_index(drop=True), check_dtype=False)


def test_predict_scores_the_same_from_keyed_and_string_orders(shop):
    con = duckdb.connect(str(shop), read_only=True)
    orders, customers = score.read_history(con)
    plain = con.execute("select customer_id, ordered_date, cast(revenue as double) as revenue, order_kind "
                        "from marts.fct_orders").df()
    con.close()
    keyed, *_ = score.predict(orders, customers, AS_OF, min_repeat_buyers=50, holdout_weeks=4)
    by_id, *_ = score.predict(plain, customers, AS_OF, min_repeat_buyers=50, holdout_weeks=4)
    assert keyed["model"].notna().all() and set(keyed["model"]) == {"bgnbd_gamma_gamma", "sbg"}
    pd.testing.assert_frame_equal(keyed.sort_values("customer_id").reset_index(drop=True),
                                  by_id.sort_values("customer_id").reset_index(drop=True), rtol=1e-6)

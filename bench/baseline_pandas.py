"""What an analyst would write instead of the marts: pandas for RFM, cohort retention and LTV.

Reads the raw tables it needs from the warehouse into data frames (timed apart as `read`),
then computes, with ordinary pandas (groupby, merge, cumcount), the same figures as
customer_rfm, cohort_retention_monthly and ltv_by_media (revenue and unit cost per
acquisition medium and horizon). Used by `python -m bench.scale`; runnable alone:

    python -m bench.baseline_pandas WAREHOUSE.duckdb [RUN_DATE]
"""

from __future__ import annotations

import sys
import time
from datetime import date

import duckdb
import numpy as np
import pandas as pd

HORIZONS = {"3m": 3, "6m": 6, "12m": 12, "lifetime": None}


def read(warehouse: str) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(warehouse, read_only=True)
    con.execute("set enable_progress_bar = false")
    try:
        return {
            "orders": con.execute("select order_id, customer_id, ordered_at, status, media_code, total "
                                  "from raw.orders").df(),
            "order_lines": con.execute("select order_id, product_id, quantity from raw.order_lines").df(),
            "products": con.execute("select product_id, unit_cost from raw.products").df(),
        }
    finally:
        con.close()


def compute(frames: dict[str, pd.DataFrame], run_date: date) -> dict[str, pd.DataFrame]:
    as_of = pd.Timestamp(run_date)
    raw = frames["orders"]
    acquisition = (raw[raw["media_code"].notna()].sort_values(["customer_id", "ordered_at", "order_id"])
                   .drop_duplicates("customer_id")[["customer_id", "media_code"]]
                   .rename(columns={"media_code": "media"}))
    lines = frames["order_lines"].merge(frames["products"], on="product_id", how="left")
    lines["cost"] = lines["quantity"] * lines["unit_cost"]
    line_costs = lines.groupby("order_id", as_index=False)["cost"].sum()

    orders = raw[(raw["status"] == "confirmed") & (raw["total"] > 0)].sort_values(["customer_id", "ordered_at", "order_id"])
    orders = orders.assign(seq=orders.groupby("customer_id").cumcount() + 1,
                           ordered_date=orders["ordered_at"].dt.normalize())
    orders = orders.merge(acquisition, on="customer_id", how="left").merge(line_costs, on="order_id", how="left")
    orders["media"] = orders["media"].fillna("(none)")

    # RFM
    per_customer = orders.groupby("customer_id").agg(
        first_order_date=("ordered_date", "min"), last_order_date=("ordered_date", "max"),
        frequency=("order_id", "size"), monetary=("total", "sum"), media=("media", "first"))
    rfm = per_customer.copy()
    rfm["recency_days"] = (as_of - rfm["last_order_date"]).dt.days
    rfm["r"] = 5 - np.searchsorted([30, 90, 180, 365], rfm["recency_days"], side="right")
    rfm["f"] = 1 + np.searchsorted([2, 3, 5, 10], rfm["frequency"], side="right")
    rfm["m"] = 1 + np.searchsorted([5000, 15000, 30000, 60000], rfm["monetary"], side="right")
    rfm["rfm_code"] = rfm["r"].astype(str) + rfm["f"].astype(str) + rfm["m"].astype(str)
    rfm["rfm_segment"] = np.select(
        [rfm["r"] <= 2, (rfm["r"] == 3) & (rfm["f"] >= 3), rfm["r"] == 3, rfm["f"] >= 3, rfm["f"] == 2],
        ["dormant", "at_risk", "needs_attention", "loyal", "promising"], default="new")

    # Cohort retention (monthly)
    orders = orders.merge(per_customer[["first_order_date"]], left_on="customer_id", right_index=True)
    first, ordered = orders["first_order_date"].dt, orders["ordered_date"].dt
    orders["cohort_month"] = first.year * 12 + first.month - 1  # months since year 0 (vectorised)
    orders["months_since"] = ordered.year * 12 + ordered.month - 1 - orders["cohort_month"]
    buyers = orders[["cohort_month", "months_since", "customer_id"]].drop_duplicates()
    sizes = buyers[buyers["months_since"] == 0].groupby("cohort_month")["customer_id"].nunique()
    bought = buyers.groupby(["cohort_month", "months_since"])["customer_id"].nunique().rename("customers_bought")
    retention = bought.reset_index().merge(sizes.rename("cohort_size"), left_on="cohort_month", right_index=True)
    retention["retention_rate"] = retention["customers_bought"] / retention["cohort_size"]
    retention_matrix = retention.pivot(index="cohort_month", columns="months_since", values="retention_rate")

    # LTV by acquisition medium and horizon
    ltv = []
    new_customers = per_customer.groupby("media").size()
    for horizon, months in HORIZONS.items():
        inside = orders if months is None else orders[
            orders["ordered_date"] < orders["first_order_date"] + pd.DateOffset(months=months)]
        agg = inside.groupby("media").agg(purchases=("order_id", "size"), revenue=("total", "sum"),
                                          unit_cost=("cost", "sum"))
        agg["horizon"] = horizon
        agg["new_customers"] = new_customers
        agg["ltv"] = agg["revenue"] / agg["new_customers"]
        ltv.append(agg.reset_index())
    return {"rfm": rfm, "retention": retention_matrix, "ltv": pd.concat(ltv, ignore_index=True)}


def run(warehouse: str, run_date: date) -> dict[str, float]:
    started = time.perf_counter()
    frames = read(warehouse)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    out = compute(frames, run_date)
    compute_s = time.perf_counter() - started
    return {"read": read_s, "compute": compute_s, "total": read_s + compute_s,
            "rows": {k: len(v) for k, v in out.items()}}


if __name__ == "__main__":
    print(run(sys.argv[1], date.fromisoformat(sys.argv[2]) if len(sys.argv) > 2 else date.today()))

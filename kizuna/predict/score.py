"""The nightly predictions: fit the models on the marts, score every customer, check the fit on a hold-out.

Reads marts.fct_orders and marts.dim_customers (after the dbt build) and writes these tables of
the warehouse's `predict` schema, rebuilt whole each night (but `next_order_dates`, kept; see
`hold_next_order_dates`):

- `predict.customer_scores`: one row per customer with an order (erased customers left out); the
  dbt mart `marts.customer_predictions` documents and tests it and adds the churn-risk band.
- `predict.fit_runs`: one row per model and night: status (`fitted`, `too_small`, `no_data`), the
  parameters, the hold-out check's totals and error.
- `predict.holdout_weekly`: predicted vs actual cumulative repeat purchases per hold-out week (the
  report's chart).

One-off buyers (subscription_status `none`) get BG/NBD + Gamma-Gamma; subscribers the sBG of their
subscription's start month (their acquisition cohort). Below `predict_min_repeat_buyers` repeat
buyers the purchase model is not fitted (status `too_small`): those customers' predictions stay
empty and the report says to use the historical marts (Klaviyo does the same below ~500).
"""

from __future__ import annotations

import gc
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from kizuna.predict import models as m

log = logging.getLogger("kizuna")

WEEKS_PER_MONTH = 365.25 / 12 / 7
DAYS_PER_MONTH = 365.25 / 12
SCHEMA = "predict"


@dataclass
class ModelFit:
    """What one model did tonight (a row of predict.fit_runs)."""

    model: str  # bgnbd_gamma_gamma | sbg
    status: str  # fitted | too_small | no_data
    customers: int = 0
    repeat_buyers: int = 0
    params: dict = field(default_factory=dict)
    message: str = ""
    holdout_weeks: int | None = None
    holdout_predicted: float | None = None
    holdout_actual: float | None = None
    holdout_customer_mae: float | None = None
    seconds: float = 0.0
    #: The hold-out check per calibration frequency (predict.holdout_by_frequency); not a fit_runs column.
    by_frequency: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def holdout_error(self) -> float | None:
        """Relative error of the predicted hold-out repeat purchases (None without a check)."""
        if self.holdout_predicted is None or not self.holdout_actual:
            return None
        return (self.holdout_predicted - self.holdout_actual) / self.holdout_actual


@dataclass
class PredictionResult:
    as_of: date
    fits: list[ModelFit]
    customers: int
    seconds: float

    def summary(self) -> str:
        parts = [f"{f.model}: {f.status}" + (f" ({f.message})" if f.message else "") for f in self.fits]
        return f"predictions as of {self.as_of}: {self.customers} customer(s) scored; " + "; ".join(parts)

    def fit(self, model: str) -> ModelFit | None:
        return next((f for f in self.fits if f.model == model), None)


# ------------------------------------------------------------------------------------------ reading


def read_history(con) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(orders, customers) from the marts: counted orders of customers not erased.

    Lean for 1M customers: orders come keyed by `customer_key`, the customer's row in `customers` (numbered
    in SQL), and their kind as a categorical, so no per-order string is ever made in Python (3M order rows
    of string ids and kinds cost hundreds of MiB, and the process keeps that memory once freed)."""
    buyers = "from marts.dim_customers where not coalesce(is_erased, false) and order_count > 0"
    customers = con.execute(
        "select customer_id, subscription_status, acquisition_media_code, first_order_date, last_order_date "
        f"{buyers} order by customer_id").df()
    kinds = [k for (k,) in con.execute("select distinct order_kind from marts.fct_orders "
                                       "where order_kind is not null order by 1").fetchall()]
    kind = (f"cast(o.order_kind as enum({', '.join(_sql_text(k) for k in kinds)}))" if kinds
            else "cast(o.order_kind as varchar)")
    orders = con.execute(
        f"with c as (select customer_id, row_number() over (order by customer_id) - 1 as customer_key {buyers}) "
        f"select c.customer_key, o.ordered_date, cast(o.revenue as double) as revenue, {kind} as order_kind "
        "from marts.fct_orders o join c using (customer_id)").df()
    return orders, customers


def _sql_text(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


# ------------------------------------------------------------------------------------------ one-off buyers


def _one_off_scores(summary: pd.DataFrame, bg, gg, as_of: date, discount_rate: float,
                    params: m.BetaGeoParams, horizon_revenue: pd.DataFrame) -> pd.DataFrame:
    """Per one-off buyer: P(alive), expected purchases, spend, discounted 12-month CLV, next order date,
    and the predicted LTV 12/36 months after the first order (actual so far + expected remainder)."""
    out = pd.DataFrame({"customer_id": summary["customer_id"].to_numpy(), "model": "bgnbd_gamma_gamma"})
    # Every BG/NBD forecast depends on (frequency, recency, T) only: the distinct rows and each customer's row
    # among them are found once, every horizon is evaluated on those rows and spread back once (no month of
    # the CLV is ever a full-length column: that stack was the stage's peak memory at 1M customers).
    codes, rows = m.distinct_rows(summary[["frequency", "recency", "T"]])
    out["p_alive"] = m.p_alive_rows(bg, rows)[codes]
    for days in (90, 180, 365):
        out[f"expected_purchases_{days}d"] = m.expected_purchases_rows(bg, rows, days / 7)[codes]
    spend = m.expected_spend(gg, summary)
    out["expected_spend_per_order"] = spend
    # CLV: expected purchases month by month, each month's spend discounted to today.
    clv, before = np.zeros(len(rows)), np.zeros(len(rows))
    for k in range(1, 13):
        cumulative = m.expected_purchases_rows(bg, rows, k * WEEKS_PER_MONTH)
        clv += (cumulative - before) * (1 + discount_rate) ** (-k / 12)
        before = cumulative
    out["predicted_clv_12m"] = clv[codes] * spend
    # The next order: the last one plus the customer's expected time between orders, 1/E[rate | purchases to
    # the last], which stays put between orders (a reminder anchored on it is not chased ahead night by night).
    gap_weeks = (params.alpha + summary["recency"].to_numpy()) / (params.r + summary["frequency"].to_numpy())
    # recency is in weeks (days / 7): rounded back to whole days, or 3/7 * 7 could fall a day short.
    last = pd.to_datetime(summary["first_order_date"]) + pd.to_timedelta(np.round(summary["recency"].to_numpy() * 7),
                                                                         unit="D")
    # Dates stay datetime64 (write_tables casts them): 1M Python date objects per column cost ~60 MiB each.
    out["last_order_date"] = last.to_numpy()
    out["expected_next_order_date"] = (last + pd.to_timedelta(np.round(gap_weeks * 7), unit="D")).to_numpy()
    del last
    for months in (12, 36):
        remaining = np.clip(months * WEEKS_PER_MONTH - rows["T"].to_numpy(), 0, None)
        future = np.where(remaining > 0, m.expected_purchases_rows(bg, rows, np.maximum(remaining, 1e-9)), 0.0)
        out[f"predicted_ltv_{months}m"] = horizon_revenue[f"revenue_{months}m"].to_numpy() + future[codes] * spend
    return out


# ------------------------------------------------------------------------------------------ subscribers


def subscription_rows(orders: pd.DataFrame, customers: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Per subscriber: the sBG data with monthly periods. cohort = the month of the first subscription
    delivery; T = the months the cohort was observed (+1: the first period); recency = T while the
    subscription goes on, else the months it lasted (1 = cancelled in the first month)."""
    subs = orders[orders["order_kind"] == "subscription"]
    if subs.empty:
        return pd.DataFrame(columns=["customer_id", "cohort", "recency", "T", "deliveries", "last_delivery",
                                     "spend", "active"])
    g = subs.assign(ordered_date=pd.to_datetime(subs["ordered_date"])).groupby("customer_id")
    d = pd.DataFrame({"first": g["ordered_date"].min(), "last_delivery": g["ordered_date"].max(),
                      "deliveries": g.size(), "spend": g["revenue"].mean()}).reset_index()
    d = d.merge(customers[["customer_id", "subscription_status"]], on="customer_id")
    start = d["first"].dt.to_period("M").dt.to_timestamp()
    asof = pd.Timestamp(as_of)
    d["cohort"] = start.dt.strftime("%Y-%m")
    d["T"] = ((asof.year - start.dt.year) * 12 + (asof.month - start.dt.month) + 1).astype(int)
    lasted = ((d["last_delivery"] - d["first"]).dt.days / DAYS_PER_MONTH).round().astype(int) + 1
    d["active"] = d["subscription_status"] != "cancelled"
    d["recency"] = np.where(d["active"], d["T"], np.clip(lasted, 1, np.maximum(d["T"] - 1, 1)))
    return d


def _sbg_scores(d: pd.DataFrame, params: dict[str, m.SbgParams], as_of: date, discount_rate: float) -> pd.DataFrame:
    """Per subscriber: alive is known (active or cancelled); the renewals to expect from the cohort's sBG."""
    fallback = m.SbgParams(alpha=float(np.mean([p.alpha for p in params.values()])),
                           beta=float(np.mean([p.beta for p in params.values()])))
    rows = []
    factors = (1 + discount_rate) ** (-np.arange(1, 13) / 12)
    for cohort, part in d.groupby("cohort"):
        p = params.get(str(cohort), fallback)  # a cohort too young to fit takes the mean of the others
        survived = part["recency"].to_numpy()
        alive = part["active"].to_numpy()
        per_month = part["deliveries"].to_numpy() / np.maximum(part["recency"].to_numpy(), 1)
        months = np.stack([m.sbg_expected_renewals(p, survived, k) for k in range(1, 13)], axis=1)
        monthly = np.diff(np.concatenate([np.zeros((len(part), 1)), months], axis=1), axis=1)
        spend = part["spend"].to_numpy()
        r = pd.DataFrame({"customer_id": part["customer_id"].to_numpy(), "model": "sbg"})
        r["p_alive"] = alive.astype(float)
        for days, n in ((90, 3), (180, 6), (365, 12)):
            r[f"expected_purchases_{days}d"] = np.where(alive, months[:, n - 1] * per_month, 0.0)
        r["expected_spend_per_order"] = spend
        r["predicted_clv_12m"] = np.where(alive, (monthly * factors).sum(axis=1) * per_month * spend, 0.0)
        gap = pd.to_timedelta(np.round(DAYS_PER_MONTH / np.maximum(per_month, 1e-6)), unit="D")
        r["last_order_date"] = part["last_delivery"].to_numpy()  # datetime64, as the one-off scores'
        r["expected_next_order_date"] = (part["last_delivery"] + gap).where(alive).to_numpy()
        # renewals expected within k more months, k = 1..36, for each subscriber (cumulative sums)
        ahead = np.stack([m.sbg_expected_renewals(p, survived, k) for k in range(1, 37)], axis=1)
        for horizon in (12, 36):
            left = np.clip(horizon - part["T"].to_numpy() + 1, 0, 36).astype(int)
            future = np.where((left > 0) & alive, ahead[np.arange(len(part)), np.maximum(left - 1, 0)], 0.0)
            so_far = np.minimum(part["recency"].to_numpy(), horizon) * per_month * spend
            r[f"predicted_ltv_{horizon}m"] = so_far + future * per_month * spend
        rows.append(r)
    return pd.concat(rows, ignore_index=True)


# ------------------------------------------------------------------------------------------ the hold-out check


def _empty_weekly() -> pd.DataFrame:
    return pd.DataFrame({"week": pd.Series(dtype="int64"), "predicted_cumulative": pd.Series(dtype="float64"),
                         "actual_cumulative": pd.Series(dtype="int64")})


def holdout_check(orders: pd.DataFrame, as_of: date, weeks: int, fit: ModelFit) -> pd.DataFrame:
    """Fit on the orders before the last `weeks` weeks and predict those weeks: per week the predicted
    (sum of conditional expectations) and actual cumulative repeat purchases of the customers known at
    the cut-off; fills the hold-out fields of `fit`. New customers of the hold-out weeks are left out."""
    cutoff = as_of - timedelta(days=7 * weeks)
    calibration = m.rfm_summary(orders, cutoff)
    if int((calibration["frequency"] > 0).sum()) == 0:
        return _empty_weekly()
    _, bg = m.fit_beta_geo(calibration)
    later = orders[(pd.to_datetime(orders["ordered_date"]) > pd.Timestamp(cutoff))
                   & (pd.to_datetime(orders["ordered_date"]) <= pd.Timestamp(as_of))
                   & orders["customer_id"].isin(calibration["customer_id"])]
    days = later.groupby(["customer_id", "ordered_date"]).size().reset_index()[["customer_id", "ordered_date"]]
    day_index = (pd.to_datetime(days["ordered_date"]) - pd.Timestamp(cutoff)).dt.days
    # Each week's total over the distinct (frequency, recency, T) rows, weighted by their customers.
    codes, distinct = m.distinct_rows(calibration[["frequency", "recency", "T"]])
    weight = np.bincount(codes, minlength=len(distinct))
    rows = []
    for w in range(1, weeks + 1):
        predicted = float((m.expected_purchases_rows(bg, distinct, w) * weight).sum())
        rows.append({"week": w, "predicted_cumulative": predicted, "actual_cumulative": int((day_index <= 7 * w).sum())})
    per_customer = days.groupby("customer_id").size().reindex(calibration["customer_id"], fill_value=0).to_numpy()
    predicted_each = m.expected_purchases_rows(bg, distinct, weeks)[codes]
    fit.holdout_weeks = weeks
    fit.by_frequency = by_frequency(calibration["frequency"].to_numpy(), predicted_each, per_customer)
    fit.holdout_predicted = rows[-1]["predicted_cumulative"]
    fit.holdout_actual = float(rows[-1]["actual_cumulative"])
    fit.holdout_customer_mae = float(np.abs(predicted_each - per_customer).mean())
    return pd.DataFrame(rows)


#: Customers are grouped by their repeat purchases before the cut-off, the last group open-ended (Fader,
#: Hardie & Lee 2005, figure 4: conditional expectations by calibration frequency).
FREQUENCY_GROUPS = 7


def by_frequency(frequency: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> pd.DataFrame:
    """Per group of repeat purchases before the cut-off (0, 1, ..., 7+): customers and the mean predicted
    and actual purchases in the hold-out weeks (the per-customer error, where the model misses)."""
    group = np.minimum(frequency, FREQUENCY_GROUPS)
    frame = pd.DataFrame({"frequency": group, "predicted": predicted, "actual": actual})
    out = frame.groupby("frequency").agg(customers=("predicted", "size"), predicted_mean=("predicted", "mean"),
                                         actual_mean=("actual", "mean")).reset_index()
    return out.astype({"frequency": "int64", "customers": "int64"})


# ------------------------------------------------------------------------------------------ the stage


def horizon_revenue(orders: pd.DataFrame, first: pd.DataFrame) -> pd.DataFrame:
    """Per customer the revenue of orders within 12 and 36 months of the first order (the historical part
    of the predicted LTV; the months after it come from the model)."""
    o = orders.merge(first[["customer_id", "first_order_date"]], on="customer_id")
    age = (pd.to_datetime(o["ordered_date"]) - pd.to_datetime(o["first_order_date"])).dt.days / DAYS_PER_MONTH
    out = pd.DataFrame({"customer_id": first["customer_id"].to_numpy()})
    for months in (12, 36):
        s = o.loc[age < months].groupby("customer_id")["revenue"].sum()
        out[f"revenue_{months}m"] = s.reindex(out["customer_id"], fill_value=0.0).to_numpy()
    return out


def predict(orders: pd.DataFrame, customers: pd.DataFrame, as_of: date, *, discount_rate: float = 0.10,
            min_repeat_buyers: int = 500, holdout_weeks: int = 13
            ) -> tuple[pd.DataFrame, list[ModelFit], pd.DataFrame]:
    """(scores, fits, hold-out weekly) for every customer in `customers` with an order up to `as_of`.
    `orders` has customer_id, or customer_key: the customer's row in `customers` (as read_history gives)."""
    # Integer keys for the group-bys (1M string ids cost seconds and hundreds of MiB); mapped back at the end.
    # Orders keyed by `customer_key` (read_history: the customer's row in `customers`) are keyed already.
    if "customer_key" in orders.columns:
        ids = pd.Index(customers["customer_id"])
        keys = np.arange(len(customers))
        orders = orders.rename(columns={"customer_key": "customer_id"})
    else:
        ids = pd.Index(customers["customer_id"].unique())
        keys = ids.get_indexer(customers["customer_id"])
        orders = orders.assign(customer_id=ids.get_indexer(orders["customer_id"]))
    orders = orders.loc[orders["customer_id"] >= 0, ["customer_id", "ordered_date", "revenue", "order_kind"]]
    orders["ordered_date"] = pd.to_datetime(orders["ordered_date"])
    orders["order_kind"] = orders["order_kind"].astype("category")
    customers = customers.assign(customer_id=keys)
    scores: list[pd.DataFrame] = []
    fits: list[ModelFit] = []
    holdout = _empty_weekly()
    orders = orders[pd.to_datetime(orders["ordered_date"]) <= pd.Timestamp(as_of)]

    one_off_ids = customers.loc[customers["subscription_status"] == "none", "customer_id"]
    one_off_orders = orders[orders["customer_id"].isin(one_off_ids)]
    # Only the subscription deliveries are read after this (subscription_rows): the rest goes before the fits.
    orders = orders[orders["order_kind"] == "subscription"]
    started = time.perf_counter()
    fit = ModelFit(model="bgnbd_gamma_gamma", status="no_data")
    if not one_off_orders.empty:
        summary = m.rfm_summary(one_off_orders, as_of)
        fit.customers = len(summary)
        fit.repeat_buyers = int((summary["frequency"] > 0).sum())
        if fit.repeat_buyers < min_repeat_buyers:
            fit.status = "too_small"
            fit.message = (f"{fit.repeat_buyers} repeat buyer(s), fewer than {min_repeat_buyers} "
                           "(KIZUNA_PREDICT_MIN_REPEAT_BUYERS): not fitted; use the historical marts")
        else:
            params, bg = m.fit_beta_geo(summary)
            gg_params, gg = m.fit_gamma_gamma(summary)
            fit.status = "fitted"
            fit.params = {**asdict(params), **asdict(gg_params)}
            scores.append(_one_off_scores(summary, bg, gg, as_of, discount_rate, params,
                                          horizon_revenue(one_off_orders, summary)))
            del bg, gg, summary  # the fitted graphs and their data go before the hold-out fit builds its own
            gc.collect()
            holdout = holdout_check(one_off_orders, as_of, holdout_weeks, fit)
    fit.seconds = time.perf_counter() - started
    fits.append(fit)

    started = time.perf_counter()
    sfit = ModelFit(model="sbg", status="no_data")
    subs = subscription_rows(orders, customers[customers["subscription_status"] != "none"], as_of)
    if not subs.empty:
        sfit.customers = len(subs)
        fittable = subs[subs["T"] >= 2]
        if len(subs) < min_repeat_buyers:
            sfit.status = "too_small"
            sfit.message = (f"{len(subs)} subscriber(s), fewer than {min_repeat_buyers} "
                            "(KIZUNA_PREDICT_MIN_REPEAT_BUYERS): not fitted; use the historical marts")
        elif fittable.empty:
            sfit.status = "too_small"
            sfit.message = "no subscription cohort is two months old yet"
        else:
            params_by_cohort = m.fit_sbg(fittable)
            sfit.status = "fitted"
            sfit.params = {c: asdict(p) for c, p in params_by_cohort.items()}
            scores.append(_sbg_scores(subs, params_by_cohort, as_of, discount_rate))
    sfit.seconds = time.perf_counter() - started
    fits.append(sfit)

    columns = ["customer_id", "model", "p_alive", "expected_purchases_90d", "expected_purchases_180d",
               "expected_purchases_365d", "expected_spend_per_order", "predicted_clv_12m", "expected_next_order_date",
               "predicted_ltv_12m", "predicted_ltv_36m", "last_order_date"]
    table = pd.concat(scores, ignore_index=True)[columns] if scores else pd.DataFrame(columns=columns)
    # Customers without a fitted model keep a row (model null): the mart lists every buyer.
    missing = customers.loc[~customers["customer_id"].isin(table["customer_id"]), ["customer_id"]]
    table = pd.concat([table, missing.assign(model=None)], ignore_index=True) if len(missing) else table
    # datetime64 (not date objects: see _one_off_scores); write_tables stores them as dates.
    table["expected_next_order_date"] = pd.to_datetime(table["expected_next_order_date"])
    table["last_order_date"] = pd.to_datetime(table["last_order_date"])
    table["customer_id"] = ids[table["customer_id"].astype("int64").to_numpy()]
    return table, fits, holdout


def write_tables(con, as_of: date, table: pd.DataFrame, fits: list[ModelFit], holdout: pd.DataFrame) -> None:
    """Replace the three predict.* tables in one transaction."""
    runs = pd.DataFrame([{**{k: v for k, v in asdict(f).items() if k not in ("params", "by_frequency")},
                          "params": json.dumps(f.params), "holdout_error": f.holdout_error, "as_of_date": as_of}
                         for f in fits])
    weekly = holdout.assign(as_of_date=as_of)
    groups = next((f.by_frequency for f in fits if f.by_frequency is not None), None)
    if groups is None:
        groups = pd.DataFrame({"frequency": pd.Series(dtype="int64"), "customers": pd.Series(dtype="int64"),
                               "predicted_mean": pd.Series(dtype="float64"), "actual_mean": pd.Series(dtype="float64")})
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute("begin")
    try:
        for name, frame in (("customer_scores", table.assign(as_of_date=as_of)), ("fit_runs", runs),
                            ("holdout_weekly", weekly), ("holdout_by_frequency", groups)):
            # Typed by name: a column that is all null tonight (a shop too small to fit) keeps its type.
            columns = ", ".join(f'cast("{c}" as {_column_type(c)}) as "{c}"' for c in frame.columns)
            con.register("_frame", frame)
            con.execute(f"create or replace table {SCHEMA}.{name} as select {columns} from _frame")
            con.unregister("_frame")
        hold_next_order_dates(con, as_of)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


#: The expected next-order date of each (customer, last order date) as first scored; see hold_next_order_dates.
NEXT_ORDER_DATES = "next_order_dates"


def hold_next_order_dates(con, as_of: date) -> None:
    """Make `customer_scores.expected_next_order_date` stable between a customer's orders.

    The campaign anchor `expected_next_order` reads this date and the send ledger's key holds the anchor
    date, so a date that moved by a day when tonight's refit shifted the parameters slightly would be a new
    anchor and the same reminder would go out again. So the date computed the first night a
    (customer, last order date) pair is scored is kept in predict.next_order_dates (insert-only) and every
    later night's scores read it; a new order is a new pair and gets tonight's date. A customer no longer
    scored (erased, no counted order left) loses their rows. Runs inside write_tables' transaction."""
    con.execute(f"""create table if not exists {SCHEMA}.{NEXT_ORDER_DATES} (
                        customer_id varchar not null, last_order_date date not null,
                        expected_next_order_date date not null, first_scored_on date not null)""")
    con.execute(f"""insert into {SCHEMA}.{NEXT_ORDER_DATES}
                    select s.customer_id, s.last_order_date, s.expected_next_order_date, ?
                    from {SCHEMA}.customer_scores s
                    where s.expected_next_order_date is not null and s.last_order_date is not null
                      and not exists (select 1 from {SCHEMA}.{NEXT_ORDER_DATES} h
                                      where h.customer_id = s.customer_id and h.last_order_date = s.last_order_date)""",
                [as_of])
    con.execute(f"""update {SCHEMA}.customer_scores s set expected_next_order_date = h.expected_next_order_date
                    from {SCHEMA}.{NEXT_ORDER_DATES} h
                    where h.customer_id = s.customer_id and h.last_order_date = s.last_order_date
                      and s.expected_next_order_date is not null
                      and h.expected_next_order_date <> s.expected_next_order_date""")
    con.execute(f"""delete from {SCHEMA}.{NEXT_ORDER_DATES} h
                    where not exists (select 1 from {SCHEMA}.customer_scores s where s.customer_id = h.customer_id)""")


_TEXT = ("customer_id", "model", "status", "message", "params")
_INTEGER = ("customers", "repeat_buyers", "holdout_weeks", "week", "actual_cumulative", "frequency")


def _column_type(column: str) -> str:
    if column in _TEXT:
        return "varchar"
    if column in _INTEGER:
        return "bigint"
    if column.endswith("_date"):
        return "date"
    return "double"


def fit_and_score(con, as_of: date, *, discount_rate: float = 0.10, min_repeat_buyers: int = 500,
                  holdout_weeks: int = 13) -> PredictionResult:
    """Read the marts, fit, score and write predict.* (the Python half of the stage)."""
    started = time.perf_counter()
    # No reference kept here: predict() replaces the string-keyed frames by integer-keyed ones and frees them.
    table, fits, holdout = predict(*read_history(con), as_of, discount_rate=discount_rate,
                                   min_repeat_buyers=min_repeat_buyers, holdout_weeks=holdout_weeks)
    write_tables(con, as_of, table, fits, holdout)
    return PredictionResult(as_of=as_of, fits=fits, customers=len(table), seconds=time.perf_counter() - started)


def read_latest(con) -> tuple[list[ModelFit], pd.DataFrame] | None:
    """The fits and the hold-out weeks written by the last run (None when predictions never ran)."""
    exists = con.execute("select count(*) from duckdb_tables() where schema_name = ? and table_name = 'fit_runs'",
                         [SCHEMA]).fetchone()[0]
    if not exists:
        return None
    runs = con.execute(f"select * from {SCHEMA}.fit_runs").df()
    fits = []
    for row in runs.to_dict("records"):
        kwargs = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()
                  if k in ModelFit.__dataclass_fields__ and k != "by_frequency"}
        kwargs["params"] = json.loads(row["params"] or "{}")
        fits.append(ModelFit(**kwargs))
    weekly = con.execute(f"select week, predicted_cumulative, actual_cumulative from {SCHEMA}.holdout_weekly "
                         "order by week").df()
    groups = con.execute(f"select * from {SCHEMA}.holdout_by_frequency order by frequency").df() if con.execute(
        "select count(*) from duckdb_tables() where schema_name = ? and table_name = 'holdout_by_frequency'",
        [SCHEMA]).fetchone()[0] else None
    for f in fits:
        if f.model == "bgnbd_gamma_gamma" and groups is not None and len(groups):
            f.by_frequency = groups
    return fits, weekly

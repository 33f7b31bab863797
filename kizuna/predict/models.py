"""The probability models behind the predictions, fitted with pymc-marketing's CLV module.

One-off buyers: BG/NBD (Fader, Hardie & Lee 2005) for who is still alive and how often they will
buy, Gamma-Gamma (Fader & Hardie 2013) for what they spend per order. Subscriptions: the
shifted-beta-geometric model (Fader & Hardie 2007) of renewals per acquisition cohort.

Every model is fitted by maximum a posteriori with flat (HalfFlat) priors, which is maximum
likelihood: the parameters are the papers' and compare with them (tests/test_predict_models.py).
pymc-marketing has no weights, so each customer is one row (1M customers fit in seconds:
`python -m bench.predict`). Its import takes seconds, so it is imported where a model is fitted.

Time is in weeks (`UNIT_DAYS`), as in the papers; forecasts here are closed forms evaluated with
the fitted parameters through the library's own predictive methods.
"""

from __future__ import annotations

import gc
import logging
import warnings
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
import pandas as pd

log = logging.getLogger("kizuna")

#: Days per model time unit (weeks, as in Fader, Hardie & Lee 2005).
UNIT_DAYS = 7


@dataclass(frozen=True)
class BetaGeoParams:
    """BG/NBD: purchase rate ~ Gamma(r, alpha); drop-out probability after each purchase ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma: spend per order ~ Gamma(p, nu), nu ~ Gamma(q, v) across customers."""

    p: float
    q: float
    v: float


@dataclass(frozen=True)
class SbgParams:
    """sBG: the churn probability per period of a subscriber ~ Beta(alpha, beta)."""

    alpha: float
    beta: float


def rfm_summary(orders: pd.DataFrame, end: date, unit_days: int = UNIT_DAYS) -> pd.DataFrame:
    """Per customer the sufficient statistics of BG/NBD and Gamma-Gamma up to `end` (inclusive).

    `orders` has customer_id, ordered_date and revenue. Orders of one customer on one day count as
    one purchase (their revenue summed), as in the papers. frequency = repeat purchases, recency =
    first to last purchase, T = first purchase to `end` (in units of `unit_days`); monetary_value
    is the mean revenue of the repeat purchases (0 for one-off buyers), as Gamma-Gamma expects;
    first_order_date (datetime64). Sorted by customer_id.
    """
    end_ts = pd.Timestamp(end)
    # One sort of the orders by (customer, day) and numpy reductions over its runs: the pandas group-bys this
    # replaces copied the orders three times (the hold-out's summary was the stage's peak at 1M customers).
    day = pd.to_datetime(orders["ordered_date"]).to_numpy().astype("datetime64[D]")
    keep = day <= end_ts.to_datetime64().astype("datetime64[D]")
    codes, ids = pd.factorize(orders["customer_id"].to_numpy()[keep], sort=True)
    day = day[keep]
    revenue = np.nan_to_num(orders["revenue"].to_numpy(dtype="float64")[keep])
    order = np.lexsort((day, codes))
    codes, day, revenue = codes[order], day[order], revenue[order]
    del order, keep
    if not len(codes):
        return pd.DataFrame({"customer_id": orders["customer_id"].iloc[:0], "frequency": np.zeros(0, dtype="int64"),
                             **{c: np.zeros(0) for c in ("recency", "T", "monetary_value")},
                             "first_order_date": np.zeros(0, dtype="datetime64[ns]")})
    # purchases: one per customer and day, their revenue summed
    starts = np.flatnonzero(np.r_[True, (codes[1:] != codes[:-1]) | (day[1:] != day[:-1])])
    revenue = np.add.reduceat(revenue, starts)
    codes, day = codes[starts], day[starts]
    # customers: runs of purchases
    first_at = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    last_at = np.r_[first_at[1:], len(codes)] - 1
    first, last = day[first_at], day[last_at]
    frequency = (last_at - first_at).astype("int64")
    repeat_revenue = np.add.reduceat(revenue, first_at) - revenue[first_at]
    out = pd.DataFrame({
        "customer_id": ids[codes[first_at]],
        "frequency": frequency,
        "recency": (last - first).astype("int64") / unit_days,
        "T": (end_ts.to_datetime64().astype("datetime64[D]") - first).astype("int64") / unit_days,
        "monetary_value": np.where(frequency > 0, repeat_revenue / np.maximum(frequency, 1), 0.0),
        "first_order_date": first.astype("datetime64[ns]"),  # datetime64: 1M date objects cost ~60 MiB
    })
    return out


def _flat(*names: str, dims: str | None = None) -> dict:
    from pymc_extras.prior import Prior

    return {n: (Prior("HalfFlat", dims=dims) if dims else Prior("HalfFlat")) for n in names}


def _map_values(model) -> dict[str, np.ndarray]:
    """The MAP point of a fitted pymc-marketing model: {parameter: value(s)} (one chain, one draw)."""
    post = model.fit_result
    return {name: np.asarray(post[name]).reshape(-1) for name in post.data_vars}


def _quiet_fit(model, data: pd.DataFrame) -> None:
    """MAP fit without the progress bar and the library's chatter (warnings on MAP's lack of
    uncertainty are expected: kizuna reports point predictions)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("pymc").setLevel(logging.ERROR)
        model.fit(data=data, method="map", progressbar=False)


def beta_geo_model(summary: pd.DataFrame, params: BetaGeoParams | None = None):
    """A pymc-marketing BetaGeoModel over `summary` (customer_id, frequency, recency, T): fitted by
    MAP with flat priors, or, with `params`, built and set to those parameters (for forecasts from
    published values)."""
    from pymc_marketing.clv import BetaGeoModel

    data = summary[["customer_id", "frequency", "recency", "T"]]
    model = BetaGeoModel(model_config=_flat("r", "alpha", "a", "b"))
    if params is None:
        _quiet_fit(model, data)
    else:
        _set_point(model, data, asdict(params))
    return model


def gamma_gamma_model(summary: pd.DataFrame, params: GammaGammaParams | None = None):
    """A pymc-marketing GammaGammaModel over the repeat buyers of `summary` (frequency > 0)."""
    from pymc_marketing.clv import GammaGammaModel

    data = summary.loc[summary["frequency"] > 0, ["customer_id", "frequency", "monetary_value"]]
    model = GammaGammaModel(model_config=_flat("p", "q", "v"))
    if params is None:
        _quiet_fit(model, data)
    else:
        _set_point(model, data, asdict(params))
    return model


def _set_point(model, data: pd.DataFrame, values: dict[str, float]) -> None:
    """Make `model` hold `values` as its fitted point (as a MAP fit would), for forecasts."""
    import arviz as az

    model.build_model(data)
    model.idata = az.from_dict(posterior={k: np.array([[v]]) for k, v in values.items()})


def _free_fitted() -> None:
    """Collect the model just fitted: it keeps its compiled graph and copies of every customer's data
    (~300 MiB at 1M customers) in reference cycles; forecasts need only the parameters, so the fit
    functions return a model holding the point over one row (the data is passed to each forecast)."""
    gc.collect()


def _beta_geo_params(model) -> BetaGeoParams:
    v = _map_values(model)
    return BetaGeoParams(r=float(v["r"][0]), alpha=float(v["alpha"][0]), a=float(v["a"][0]), b=float(v["b"][0]))


def _gamma_gamma_params(model) -> GammaGammaParams:
    v = _map_values(model)
    return GammaGammaParams(p=float(v["p"][0]), q=float(v["q"][0]), v=float(v["v"][0]))


def fit_beta_geo(summary: pd.DataFrame) -> tuple[BetaGeoParams, object]:
    """(parameters, a model holding only them) fitted on `summary`; see _free_fitted."""
    params = _beta_geo_params(beta_geo_model(summary))  # the fitted model is no one's once this returns
    _free_fitted()
    return params, beta_geo_model(summary.head(1), params)


def fit_gamma_gamma(summary: pd.DataFrame) -> tuple[GammaGammaParams, object]:
    """(parameters, a model holding only them) fitted on the repeat buyers of `summary`; see _free_fitted."""
    params = _gamma_gamma_params(gamma_gamma_model(summary))
    _free_fitted()
    return params, gamma_gamma_model(summary.loc[summary["frequency"] > 0].head(1), params)


def fit_sbg(data: pd.DataFrame) -> dict[str, SbgParams]:
    """sBG per cohort. `data`: customer_id, cohort, recency (the last period the subscription was
    renewed into, 1 = cancelled in the first period) and T (the periods the cohort was observed,
    one value per cohort; recency = T: still subscribed). Returns {cohort: SbgParams}."""
    from pymc_marketing.clv import ShiftedBetaGeoModel

    model = ShiftedBetaGeoModel(model_config=_flat("alpha", "beta", dims="cohort"))
    _quiet_fit(model, data[["customer_id", "recency", "T", "cohort"]])
    v = _map_values(model)
    return {str(c): SbgParams(alpha=float(v["alpha"][i]), beta=float(v["beta"][i]))
            for i, c in enumerate(model.cohorts)}


def survival_to_cohort(survival: list[float], customers: int = 1000, cohort: str = "all") -> pd.DataFrame:
    """Per-customer sBG rows from a published survival series (share still subscribed at the start,
    after period 1, 2, ...): the customers lost in period t have recency t, the survivors recency = T."""
    counts = np.round(np.asarray(survival) * customers).astype(int)
    T = len(survival)
    rows = []
    for t in range(1, T):
        rows += [t] * int(counts[t - 1] - counts[t])
    rows += [T] * int(counts[-1])
    return pd.DataFrame({"customer_id": np.arange(len(rows)), "recency": rows, "T": T, "cohort": cohort})


def _squeeze(x) -> np.ndarray:
    """A MAP prediction (chain=1, draw=1, customer_id) as a flat array per customer."""
    return np.asarray(x).reshape(-1)


#: Rows per call of a library predictive method: each call builds a dozen arrays the length of its data
#: (xarray, hyp2f1), so 1M rows at once cost hundreds of MiB on top of the scores; slices keep that small.
CHUNK_ROWS = 100_000


def distinct_rows(frame: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """(codes, rows): the distinct rows of `frame` and, per row of `frame`, the index of its distinct row
    (so `values[codes]` spreads per-row values back). Customers share their sufficient statistics often
    (every one-off buyer of a day has the same frequency 0, recency 0 and T)."""
    codes = frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy()
    rows = frame.drop_duplicates().reset_index(drop=True)  # first-appearance order, as ngroup(sort=False)
    return codes, rows


def _in_chunks(rows: pd.DataFrame, predict) -> np.ndarray:
    """`predict(slice)` over `rows` in slices of CHUNK_ROWS, each with its own customer_id column."""
    parts = [np.asarray(predict(rows.iloc[i:i + CHUNK_ROWS].assign(
        customer_id=np.arange(i, i + min(CHUNK_ROWS, len(rows) - i))))) for i in range(0, len(rows), CHUNK_ROWS)]
    return np.concatenate(parts) if parts else np.zeros(0)


def _on_unique(frame: pd.DataFrame, predict) -> np.ndarray:
    """`predict(rows)` evaluated once per distinct row of `frame` and spread back to every customer,
    so 1M customers are a fraction of that many evaluations."""
    codes, rows = distinct_rows(frame)
    return _in_chunks(rows, predict)[codes]


def p_alive(model, summary: pd.DataFrame) -> np.ndarray:
    codes, rows = distinct_rows(summary[["frequency", "recency", "T"]])
    return p_alive_rows(model, rows)[codes]


def p_alive_rows(model, rows: pd.DataFrame) -> np.ndarray:
    """P(alive) per row of `rows` (frequency, recency, T), no de-duplication (rows from distinct_rows)."""
    return _in_chunks(rows[["frequency", "recency", "T"]],
                      lambda d: _squeeze(model.expected_probability_alive(data=d)))


def expected_purchases(model, summary: pd.DataFrame, weeks) -> np.ndarray:
    """E[purchases in the next `weeks` | the customer's history] (BG/NBD conditional expectation);
    `weeks` one number or one per customer."""
    data = summary[["frequency", "recency", "T"]].assign(future_t=np.broadcast_to(weeks, len(summary)))
    return _on_unique(data, lambda d: _squeeze(model.expected_purchases(data=d)))


def expected_purchases_rows(model, rows: pd.DataFrame, weeks) -> np.ndarray:
    """expected_purchases per row of `rows` without de-duplication (rows from distinct_rows: the
    caller spreads the values back once for all its horizons)."""
    data = rows[["frequency", "recency", "T"]].assign(future_t=np.broadcast_to(weeks, len(rows)))
    return _in_chunks(data, lambda d: _squeeze(model.expected_purchases(data=d)))


def expected_purchases_new(model, weeks: np.ndarray) -> np.ndarray:
    """E[repeat purchases within `weeks` of the first] for a customer of the population (eq. 9)."""
    weeks = np.asarray(weeks, dtype=float)
    data = pd.DataFrame({"customer_id": np.arange(len(weeks))})
    return _squeeze(model.expected_purchases_new_customer(data=data, t=weeks))


def expected_spend(model, summary: pd.DataFrame) -> np.ndarray:
    """E[spend per order] per customer (Gamma-Gamma): the population mean for one-off buyers,
    shrunk toward the customer's own mean for repeat buyers."""
    return _on_unique(summary[["frequency", "monetary_value"]],
                      lambda d: _squeeze(model.expected_customer_spend(data=d)))


def sbg_survival(params: SbgParams, periods: np.ndarray) -> np.ndarray:
    """S(t) = B(alpha, beta + t) / B(alpha, beta): the share of a new cohort still subscribed after t periods."""
    from scipy.special import betaln

    t = np.asarray(periods, dtype=float)
    return np.exp(betaln(params.alpha, params.beta + t) - betaln(params.alpha, params.beta))


def sbg_expected_renewals(params: SbgParams, survived: np.ndarray, periods: int) -> np.ndarray:
    """E[renewals in the next `periods`] of a subscriber still subscribed after `survived` periods:
    sum over k of S(survived + k) / S(survived) (Fader & Hardie 2010)."""
    from scipy.special import betaln

    s = np.asarray(survived, dtype=float)[:, None]
    k = np.arange(1, periods + 1, dtype=float)[None, :]
    ratio = np.exp(betaln(params.alpha, params.beta + s + k) - betaln(params.alpha, params.beta + s))
    return ratio.sum(axis=1)

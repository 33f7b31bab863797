"""Time the nightly predictions (issue 19): fit and score N customers, with the peak memory.

Synthetic orders drawn from the models themselves (so the fit has something real to find):
customers' first orders spread over three years; one-off buyers buy at a Gamma(r=0.5, alpha=10 weeks)
distributed rate and drop out after each purchase with a Beta(a=0.8, b=2.5) probability, spending a
Gamma-Gamma amount; 10 % are subscribers (monthly deliveries until a Beta(1, 3) churn). The timed part
runs in a child process that reads the orders from a Parquet file, so its peak RSS is the stage's own:
`kizuna.predict.score.predict` as the nightly stage calls it (BG/NBD, Gamma-Gamma, the 13-week hold-out
fit, sBG per cohort, every score). Baseline in the same run: the per-customer summary alone (a pandas
group-by of the orders), so the fit reads as "N summaries".

    python -m bench.predict --customers 1000000

Budget (issue 19): 1M customers in ≤ 120 s and ≤ 1.5 GiB peak on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

AS_OF = date(2026, 11, 1)
BUDGET_SECONDS = 120
BUDGET_MIB = 1536


def synthetic_orders(customers: int, seed: int = 19) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(orders, customers) as the marts would give them (customer_id, ordered_date, revenue, order_kind)."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"C{i:07d}" for i in range(customers)])
    start = rng.uniform(0, 156, customers)  # first order, weeks after the start of the three years
    subscriber = rng.random(customers) < 0.10
    T = 156 - start
    lam = rng.gamma(0.5, 1 / 10, customers)
    p = rng.beta(0.8, 2.5, customers)
    nu = rng.gamma(3.7, 1 / 15.4, customers)
    cust_idx, times = [np.arange(customers)], [np.zeros(customers)]
    t = np.zeros(customers)
    alive = ~subscriber
    while alive.any():
        idx = np.flatnonzero(alive)
        t[idx] += rng.exponential(1 / lam[idx])
        bought = idx[t[idx] <= T[idx]]
        cust_idx.append(bought)
        times.append(t[bought].copy())
        alive[:] = False
        alive[bought] = rng.random(len(bought)) >= p[bought]
    # subscribers: monthly deliveries until they churn (or the as-of day)
    sub = np.flatnonzero(subscriber)
    months = np.minimum(rng.geometric(rng.beta(1, 3, len(sub))), np.floor(T[sub] / 4.348).astype(int) + 1)
    reps = np.repeat(sub, months)
    k = np.concatenate([np.arange(m) for m in months]) if len(months) else np.array([], dtype=int)
    cust_idx.append(reps)
    times.append(k * 4.348)
    ci, tt = np.concatenate(cust_idx), np.concatenate(times)
    first_day = np.datetime64(AS_OF - timedelta(weeks=156))
    days = (start[ci] + tt) * 7
    orders = pd.DataFrame({
        "customer_id": ids[ci],
        "ordered_date": first_day + days.astype("timedelta64[D]"),
        "revenue": np.round(rng.gamma(6.25, 1 / nu[ci]) * 100),
        "order_kind": np.where(subscriber[ci], "subscription", "one_off"),
    })
    orders = orders[orders["ordered_date"] <= np.datetime64(AS_OF)]
    status = np.where(subscriber, np.where(rng.random(customers) < 0.4, "active", "cancelled"), "none")
    table = pd.DataFrame({"customer_id": ids, "subscription_status": status, "acquisition_media_code": "BENCH"})
    return orders, table


def _child(folder: Path) -> None:
    """The timed part, alone in its process: read, fit, score; print seconds and peak RSS as JSON."""
    import kizuna  # noqa: F401
    from kizuna.predict import models
    from kizuna.predict.score import predict

    started = time.perf_counter()
    # As the stage does (score.fit_and_score): the frames are handed over, no reference kept.
    table, fits, _ = predict(pd.read_parquet(folder / "orders.parquet"), pd.read_parquet(folder / "customers.parquet"),
                             AS_OF, min_repeat_buyers=500, holdout_weeks=13)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    orders = pd.read_parquet(folder / "orders.parquet")
    started = time.perf_counter()
    models.rfm_summary(orders[orders["order_kind"] == "one_off"], AS_OF)
    summary_s = time.perf_counter() - started
    print(json.dumps({
        "seconds": seconds, "summary_seconds": summary_s, "scored": len(table),
        "peak_rss_mib": peak,
        "fits": {f.model: {"status": f.status, "seconds": round(f.seconds, 1), "holdout_error": f.holdout_error,
                           "params": f.params if f.model != "sbg" else len(f.params)} for f in fits},
    }))


def measure(customers: int) -> dict:
    """Fit and score `customers` synthetic customers; {seconds, peak_rss_mib, ...} of the stage alone."""
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-predict-") as tmp:
        folder = Path(tmp)
        orders, table = synthetic_orders(customers)
        orders.to_parquet(folder / "orders.parquet")
        table.to_parquet(folder / "customers.parquet")
        n_orders = len(orders)
        del orders, table
        run = subprocess.run([sys.executable, "-m", "bench.predict", "--child", str(folder)],
                             capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"the prediction bench failed:\n{run.stderr[-3000:]}")
        result = json.loads(run.stdout.strip().splitlines()[-1])
    result.update(customers=customers, orders=n_orders,
                  ratio_to_summary=result["seconds"] / max(result["summary_seconds"], 1e-9),
                  within_budget=result["seconds"] <= BUDGET_SECONDS and result["peak_rss_mib"] <= BUDGET_MIB)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    for n in args.customers:
        r = measure(n)
        print(f"predictions, {n:,} customers ({r['orders']:,} orders): fit and score {r['seconds']:.1f} s "
              f"({r['ratio_to_summary']:.0f}× the per-customer summary, {r['summary_seconds']:.1f} s), "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB; budget {BUDGET_SECONDS} s / {BUDGET_MIB} MiB: "
              f"{'within' if r['within_budget'] else 'OVER'}")
        for model, fit in r["fits"].items():
            print(f"  {model}: {fit}")


if __name__ == "__main__":
    main()

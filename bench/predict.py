"""Time the nightly predictions (issue 19): fit and score N customers, with the peak memory.

Synthetic orders drawn from the models themselves (so the fit has something real to find):
customers' first orders spread over three years; one-off buyers buy at a Gamma(r=0.5, alpha=10 weeks)
distributed rate and drop out after each purchase with a Beta(a=0.8, b=2.5) probability, spending a
Gamma-Gamma amount; 10 % are subscribers (monthly deliveries until a Beta(1, 3) churn).

What is measured is the stage as the night runs it: the generated orders are written (by this process)
into a DuckDB warehouse's marts.fct_orders and marts.dim_customers, and a child process opens it and runs
`kizuna.predict.score.fit_and_score` (read the marts, BG/NBD, Gamma-Gamma, the 13-week hold-out fit, sBG
per cohort, every score, write predict.*). The child's peak RSS is the stage's own: the generator's frames
(~500 MB at 1M customers) are not in it, as no generated data is in a real night's process. Baseline in the
same run: the per-customer summary alone (a pandas group-by of the orders read from the same marts), so the
fit reads as "N summaries".

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


def write_marts(path: Path, orders: pd.DataFrame, table: pd.DataFrame) -> None:
    """The two marts the stage reads (only the columns it reads), as the nightly dbt build leaves them."""
    import duckdb

    con = duckdb.connect(str(path))
    try:
        con.execute("create schema marts")
        con.register("_orders", orders)
        con.register("_customers", table)
        con.execute("create table marts.fct_orders as select customer_id, cast(ordered_date as date) as ordered_date, "
                    "cast(revenue as decimal(18, 2)) as revenue, order_kind from _orders")
        con.execute("""create table marts.dim_customers as
                       select c.customer_id, c.subscription_status, c.acquisition_media_code,
                              min(o.ordered_date) as first_order_date, max(o.ordered_date) as last_order_date,
                              count(o.customer_id) as order_count, false as is_erased
                       from _customers c left join marts.fct_orders o using (customer_id)
                       group by all""")
    finally:
        con.close()


def _child(warehouse: Path) -> None:
    """The timed part, alone in its process: the stage's fit_and_score on the warehouse; seconds and peak RSS as JSON."""
    import duckdb

    import kizuna  # noqa: F401
    from kizuna.predict import models
    from kizuna.predict.score import fit_and_score

    con = duckdb.connect(str(warehouse))
    started = time.perf_counter()
    result = fit_and_score(con, AS_OF, min_repeat_buyers=500, holdout_weeks=13)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    orders = con.execute("select customer_id, ordered_date, cast(revenue as double) as revenue from marts.fct_orders "
                         "where order_kind = 'one_off'").df()
    con.close()
    started = time.perf_counter()
    models.rfm_summary(orders, AS_OF)
    summary_s = time.perf_counter() - started
    print(json.dumps({
        "seconds": seconds, "summary_seconds": summary_s, "scored": result.customers,
        "peak_rss_mib": peak,
        "fits": {f.model: {"status": f.status, "seconds": round(f.seconds, 1), "holdout_error": f.holdout_error,
                           "params": f.params if f.model != "sbg" else len(f.params)} for f in result.fits},
    }))


def measure(customers: int) -> dict:
    """Fit and score `customers` synthetic customers as the nightly stage does; {seconds, peak_rss_mib,
    within_budget, ...} of the stage alone (its own process, reading and writing the warehouse)."""
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-predict-") as tmp:
        warehouse = Path(tmp) / "warehouse.duckdb"
        orders, table = synthetic_orders(customers)
        write_marts(warehouse, orders, table)
        n_orders = len(orders)
        del orders, table
        run = subprocess.run([sys.executable, "-m", "bench.predict", "--child", str(warehouse)],
                             capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"the prediction bench failed:\n{run.stderr[-3000:]}")
        result = json.loads(run.stdout.strip().splitlines()[-1])
    result.update(customers=customers, orders=n_orders,
                  ratio_to_summary=result["seconds"] / max(result["summary_seconds"], 1e-9),
                  within_budget=result["seconds"] <= BUDGET_SECONDS and result["peak_rss_mib"] <= BUDGET_MIB)
    return result


def report(r: dict) -> list[str]:
    """The lines `python -m bench.predict` (and `python -m bench`) print for one measure() result."""
    lines = [f"predictions, {r['customers']:,} customers ({r['orders']:,} orders): fit and score {r['seconds']:.1f} s "
             f"({r['ratio_to_summary']:.0f}× the per-customer summary, {r['summary_seconds']:.1f} s), "
             f"peak RSS {r['peak_rss_mib']:.0f} MiB; budget {BUDGET_SECONDS} s / {BUDGET_MIB} MiB: "
             f"{'within' if r['within_budget'] else 'OVER'}"]
    return lines + [f"  {model}: {fit}" for model, fit in r["fits"].items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    for n in args.customers:
        print("\n".join(report(measure(n))), flush=True)


if __name__ == "__main__":
    main()

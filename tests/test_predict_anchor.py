"""Issue 19: a reminder anchored on `expected_next_order` is never sent twice for one order.

The date is refitted every night; the send ledger's key holds the anchor date, so a date that moves by a
day when the parameters shift would be a new anchor and the same reminder would be planned again. The
real prediction stage (kizuna.predict.score.fit_and_score) scores a small synthetic shop on night 1; on
night 2 more customers' history changes the fit, and the real engine and ledger run the reminder.
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ is not an installed package
from bench.predict import synthetic_orders  # noqa: E402
from campaign_fakes import MemoryChannel as Memory, make_warehouse  # noqa: E402
from campaigns.engine import run_campaigns  # noqa: E402
from campaigns.schema import Scenario  # noqa: E402
from kizuna.config import Settings  # noqa: E402
from kizuna.predict.score import fit_and_score  # noqa: E402

NIGHT1 = date(2026, 11, 1)  # the synthetic orders end here (bench.predict.AS_OF)
NIGHT2 = NIGHT1 + timedelta(days=1)


def load_customers(con, orders: pd.DataFrame, customers: pd.DataFrame, prefix: str) -> None:
    """Bulk-load synthetic one-off buyers into the fake marts, as the nightly dbt build would have them."""
    orders = orders[orders["order_kind"] == "one_off"].assign(customer_id=lambda o: prefix + o["customer_id"])
    g = orders.groupby("customer_id")["ordered_date"]
    dim = pd.DataFrame({"first_order_date": g.min().dt.date, "last_order_date": g.max().dt.date,
                        "order_count": g.size()}).reset_index()
    dim = dim.assign(stage=np.where(dim["order_count"] > 1, "continuing", "initial"), subscription_status="none",
                     acquisition_media_code="AFF01", is_erased=False, has_email_consent=True,
                     email=dim["customer_id"] + "@example.jp", last_name="山田", first_name="花子")
    con.register("_dim", dim)
    con.execute("insert into marts.dim_customers by name select * from _dim")
    con.execute("insert into marts.campaign_audience select customer_id, 'new' from _dim")
    con.unregister("_dim")
    fct = orders.assign(order_id=lambda o: "O" + pd.Series(range(len(o)), index=o.index).astype(str) + o["customer_id"],
                        ordered_date=orders["ordered_date"].dt.date)
    con.register("_fct", fct[["order_id", "customer_id", "ordered_date", "order_kind", "revenue"]])
    con.execute("insert into marts.fct_orders by name select * from _fct")
    con.unregister("_fct")


@pytest.fixture
def shop(tmp_path: Path):
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data")
    con = make_warehouse(settings.warehouse)
    con.execute("alter table marts.fct_orders add column revenue double")
    load_customers(con, *synthetic_orders(1500, seed=1), prefix="A")
    yield settings, con
    con.close()


def night(con, as_of: date) -> dict[str, date]:
    """The prediction stage's Python half, and the mart the anchor reads (dbt's customer_predictions, its
    columns the campaigns use, over predict.customer_scores)."""
    fit_and_score(con, as_of, min_repeat_buyers=100, holdout_weeks=4)
    con.execute("""create or replace view marts.customer_predictions as
                   select customer_id, p_alive, predicted_clv_12m, expected_next_order_date,
                          case when p_alive < 0.3 then 'high' when p_alive < 0.7 then 'medium' else 'low' end
                              as churn_risk_band
                   from predict.customer_scores""")
    return dict(con.execute("select customer_id, expected_next_order_date from predict.customer_scores "
                            "where expected_next_order_date is not null").fetchall())


def test_refit_does_not_move_the_next_order_anchor_nor_send_the_reminder_again(shop):
    settings, con = shop
    first = night(con, NIGHT1)
    # The reminder's day is chosen so that it falls on night 1 for as many of the shop's customers as possible.
    ahead = pd.Series({c: (d - NIGHT1).days for c, d in first.items() if d > NIGHT1})
    days_before = int(ahead.value_counts().index[0])
    due_tonight = set(ahead.index[ahead == days_before])
    reminder = Scenario.model_validate({
        "id": "next_order", "name": "reminder", "priority": 10, "stage": "any", "holdout_percent": 0,
        "entry": {"event": "expected_next_order"},
        "steps": [{"id": "before_mail", "day": -days_before, "channel": "email", "template": "run_out_reminder"}]})
    log: list = []
    run_campaigns(con, settings, [reminder], NIGHT1, lambda name: Memory(name, log))
    reminded_night1 = {m.customer_id for m in log}  # the first run also takes steps that fell due just before
    assert due_tonight and due_tonight <= reminded_night1

    # Night 2: the shop gained customers who buy more slowly; the refit's parameters move.
    params_before = con.execute("select params from predict.fit_runs where model = 'bgnbd_gamma_gamma'").fetchone()
    orders, customers = synthetic_orders(1500, seed=2)
    orders = orders.assign(ordered_date=pd.Timestamp(NIGHT1) - (pd.Timestamp(NIGHT1) - orders["ordered_date"]) * 2)
    load_customers(con, orders, customers, prefix="B")
    second = night(con, NIGHT2)
    assert con.execute("select params from predict.fit_runs where model = 'bgnbd_gamma_gamma'").fetchone() \
        != params_before
    # No A customer ordered again: each keeps the date of night 1 (the refit alone would have moved some).
    assert {c: second[c] for c in first} == first
    # B customers are scored tonight with tonight's fit.
    assert any(c.startswith("B") for c in second)

    for day in range(2, 2 + days_before + 3):  # the reminder's whole window for the night-1 anchors, and after
        run_campaigns(con, settings, [reminder], NIGHT1 + timedelta(days=day - 1), lambda name: Memory(name, log))
    twice = con.execute("select customer_id, count(*) from ledger.sends where customer_id like 'A%' "
                        "and status in ('planned', 'sending', 'sent', 'unknown') group by 1 having count(*) > 1"
                        ).fetchall()
    assert twice == []
    reminded = Counter(m.customer_id for m in log)
    assert {c: reminded[c] for c in reminded_night1} == {c: 1 for c in reminded_night1}


def test_a_new_order_gives_a_new_anchor(shop):
    settings, con = shop
    first = night(con, NIGHT1)
    customer = next(iter(first))
    con.execute("insert into marts.fct_orders (order_id, customer_id, ordered_date, order_kind, revenue) "
                "values ('NEW', ?, ?, 'one_off', 5000)", [customer, NIGHT2])
    con.execute("update marts.dim_customers set order_count = order_count + 1, last_order_date = ? "
                "where customer_id = ?", [NIGHT2, customer])
    second = night(con, NIGHT2)
    assert second[customer] > NIGHT2 and second[customer] != first[customer]
    kept = con.execute("select last_order_date from predict.next_order_dates where customer_id = ? order by 1",
                       [customer]).fetchall()
    assert [d for (d,) in kept][-1] == NIGHT2 and len(kept) == 2

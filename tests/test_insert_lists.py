"""Package-insert lists name the order and shipment each insert goes into; with no parcel, no insert."""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta
from pathlib import Path

from campaign_fakes import add_customer, add_order, make_warehouse
from campaigns.engine import run_campaigns
from campaigns.schema import load_scenario
from connectors.channels.lists import ListChannel
from kizuna.config import Settings

RUN_DATE = date(2026, 11, 23)
ANCHOR = RUN_DATE - timedelta(days=1)  # the insert step is day 1 after the first order

SCENARIO = """
id: trial_insert
name: Insert in the parcel
priority: 100
stage: any
entry: {event: first_order}
holdout_percent: 0
steps:
  - {id: d01_insert, day: 1, channel: insert, template: suppa_insert,
     offer: {type: percent_off, value: 10, code: TEIKI, unique: true}}
"""


def _rows(settings: Settings) -> dict[str, dict[str, str]]:
    out = {}
    for path in (settings.data_dir / "lists").rglob("insert-list-*.csv"):
        with path.open(encoding="utf-8-sig", newline="") as f:
            out.update({row["customer_id"]: row for row in csv.DictReader(f)})
    return out


def test_an_insert_goes_into_the_next_unshipped_parcel_and_without_one_there_is_none(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data")
    con = make_warehouse(settings.warehouse)
    con.execute("create table raw.shipments (shipment_id varchar, order_id varchar, shipped_at timestamp)")
    # K1: first order unshipped, its shipment exported (not yet left): order and shipment named.
    add_customer(con, "K1", ANCHOR)
    con.execute("insert into raw.shipments values ('SH-K1', 'O-K1-1', null)")
    # K2: first order already shipped; a second order today, not yet shipped nor exported as a shipment.
    add_customer(con, "K2", ANCHOR)
    con.execute("update marts.fct_orders set shipped_at = ? where order_id = 'O-K2-1'", [datetime(2026, 11, 22, 15)])
    con.execute("insert into raw.shipments values ('SH-K2', 'O-K2-1', '2026-11-22 15:00:00')")
    add_order(con, "K2", RUN_DATE)
    # K3: everything shipped: no parcel to put the insert in.
    add_customer(con, "K3", ANCHOR)
    con.execute("update marts.fct_orders set shipped_at = ? where customer_id = 'K3'", [datetime(2026, 11, 22, 15)])
    # K4: an old unshipped order from before the anchor does not count (a stuck order is not the parcel).
    add_customer(con, "K4", ANCHOR)
    con.execute("update marts.fct_orders set shipped_at = ? where customer_id = 'K4'", [datetime(2026, 11, 22, 15)])
    con.execute("insert into marts.fct_orders (order_id, customer_id, purchase_sequence_number, ordered_date, "
                "order_kind, ordered_at) values ('O-K4-0', 'K4', 0, '2026-01-05', 'one_off', '2026-01-05 10:00')")

    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    scenarios = [load_scenario(path)]
    run_campaigns(con, settings, scenarios, RUN_DATE,
                  lambda name: ListChannel(settings.data_dir / "lists", name, timezone=settings.timezone))

    rows = _rows(settings)
    assert set(rows) == {"K1", "K2"}
    assert (rows["K1"]["order_id"], rows["K1"]["shipment_id"]) == ("O-K1-1", "SH-K1")
    assert (rows["K2"]["order_id"], rows["K2"]["shipment_id"]) == ("O-K2-2", "")
    codes = dict(con.execute("select customer_id, code from ledger.coupons").fetchall())
    assert rows["K1"]["offer_code"] == codes["K1"] and codes["K1"].startswith("TEIKI-")
    status = dict(con.execute("select customer_id, status || ':' || coalesce(detail, '') from ledger.sends"
                              ).fetchall())
    assert status["K3"] == "skipped:no_parcel" and status["K4"] == "skipped:no_parcel"
    assert "K3" not in codes  # a skipped send gets no code

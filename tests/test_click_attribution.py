"""A click on a tracked link followed by an order is attributed to its step in campaign_performance.

Through the real stages: the engine sends e-mail through the real SendGrid connector to the loopback
SendGrid, which posts its signed `processed` events to kizuna's webhook service (uvicorn on
127.0.0.1); SendGrid's `click` events (with the `url` clicked) are posted, signed, to the same
webhook; `load_events` carries them, with their URL, into the warehouse; dbt builds the campaign
marts. Orders stand in marts.fct_orders as the nightly build leaves them.

- C1 clicks twice (12:00 and 12:30 on the send date) and orders two days later (¥7,000): a
  click-through order. Her order from before the click does not count.
- C2 clicks and does not order.
- C3 does not click; she orders with her own coupon code (typed in lower case), and a second order
  carries the same code again: one redeemed coupon, with the first order's revenue.
- C4 does not click; her order's visit carried kizuna's UTM parameters (media_code
  kizuna_f2_unique): a click-through order too.
- C5 clicks, but orders 40 days later: outside the 30-day window.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from campaign_fakes import add_customer, make_warehouse
from campaigns.engine import run_campaigns
from campaigns.schema import load_scenario
from connectors.channels.loopback import SendGridLoopback
from connectors.channels.registry import channel_for
from kizuna.config import Settings
from kizuna.events.load import load_events
from kizuna.modelling import build_models
from test_coupons import SCENARIO
from test_events import keys, post, running, sendgrid_headers  # noqa: F401 - keys is a fixture
from kizuna.events.webhook import create_app

DBT_PROJECT = Path(__file__).resolve().parent.parent / "dbt_project"
RUN_DATE = date(2026, 11, 23)
FIRST_ORDER = RUN_DATE - timedelta(days=12)
TOKYO = ZoneInfo("Asia/Tokyo")
LINK = ("https://kizuna-organics.example/products/dha?utm_source=kizuna&utm_medium=email"
        "&utm_campaign=f2_unique&utm_content=d12_coupon")


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute)


def _orders(con: duckdb.DuckDBPyConnection, code_c3: str) -> None:
    """marts.fct_orders as the nightly build leaves it (the columns the campaign marts read)."""
    con.execute("drop table marts.fct_orders")
    con.execute("""create table marts.fct_orders (order_id varchar, customer_id varchar, ordered_at timestamp,
                   ordered_date date, revenue bigint, purchase_sequence_number bigint, order_kind varchar,
                   delivery_number bigint, media_code varchar, coupon_code varchar, shipped_at timestamp)""")
    rows = [("O1", "C1", _at(FIRST_ORDER, 9), 1980, 1, None, None), ("O2", "C1", _at(RUN_DATE, 11), 3000, 2, None, None),
            ("O3", "C1", _at(RUN_DATE + timedelta(days=2), 20), 7000, 3, None, None),
            ("O4", "C2", _at(FIRST_ORDER, 9), 1980, 1, None, None),
            ("O5", "C3", _at(FIRST_ORDER, 9), 1980, 1, None, None),
            ("O6", "C3", _at(RUN_DATE + timedelta(days=3), 10), 5000, 2, None, f" {code_c3.lower()} "),
            ("O7", "C3", _at(RUN_DATE + timedelta(days=5), 10), 4000, 3, None, code_c3),
            ("O8", "C4", _at(FIRST_ORDER, 9), 1980, 1, None, None),
            ("O9", "C4", _at(RUN_DATE + timedelta(days=1), 10), 6000, 2, "kizuna_f2_unique", None),
            ("O10", "C5", _at(FIRST_ORDER, 9), 1980, 1, None, None),
            ("O11", "C5", _at(RUN_DATE + timedelta(days=40), 10), 9000, 2, None, None)]
    con.executemany("insert into marts.fct_orders values (?, ?, ?, cast(? as date), ?, ?, 'one_off', null, ?, ?, ?)",
                    [(o, c, at, at.date(), rev, seq, media, code, at) for o, c, at, rev, seq, media, code in rows])


def _click(send_id: str, event_id: str, at: datetime) -> dict:
    return {"email": "customer@example.jp", "timestamp": int(at.replace(tzinfo=TOKYO).timestamp()), "event": "click",
            "sg_event_id": event_id, "sg_message_id": f"m.{send_id}", "url": LINK, "url_offset": {"index": 0},
            "send_id": send_id, "scenario_id": "f2_unique", "step_id": "d12_coupon"}


def test_a_click_followed_by_an_order_is_attributed_to_its_step(tmp_path: Path, keys, monkeypatch) -> None:
    private, public = keys
    scenario_file = tmp_path / "f2_unique.yaml"
    scenario_file.write_text(SCENARIO, encoding="utf-8")
    scenarios = [load_scenario(scenario_file)]
    with SendGridLoopback() as sendgrid:
        monkeypatch.setenv("KIZUNA_SENDGRID_API_KEY", sendgrid.api_key)
        settings = Settings(home=tmp_path, data_dir=tmp_path / "data", dbt_project_dir=DBT_PROJECT,
                            email_provider="sendgrid",
                            sendgrid_host=sendgrid.url, sender_name="テスト商店株式会社",
                            sender_address="〒100-0001 東京都千代田区千代田1-1", sender_contact="0120-111-222",
                            sender_email="shop@test-shop.example",
                            unsubscribe_base_url="https://test-shop.example/unsubscribe")
        con = make_warehouse(settings.warehouse)
        for cid in ("C1", "C2", "C3", "C4", "C5"):
            add_customer(con, cid, FIRST_ORDER)
        with running(create_app(settings, sendgrid_public_key=public)) as webhook:
            sendgrid.send_events_to(f"{webhook}/webhooks/sendgrid", private, every=0.05)
            result = run_campaigns(con, settings, scenarios, RUN_DATE, lambda name: channel_for(settings, name))
            assert result.total("sent") == 5
            sends = dict(con.execute("select customer_id, send_id from ledger.sends").fetchall())
            code_c3 = con.execute("select code from ledger.coupons where customer_id = 'C3'").fetchone()[0]
            deadline = time.monotonic() + 10
            while sendgrid.stats()["events_pending"] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sendgrid.events_posted == 5
            clicks = [_click(sends["C1"], "k1", _at(RUN_DATE, 12)), _click(sends["C1"], "k2", _at(RUN_DATE, 12, 30)),
                      _click(sends["C2"], "k3", _at(RUN_DATE, 13)), _click(sends["C5"], "k4", _at(RUN_DATE, 14))]
            body = json.dumps(clicks).encode()
            assert post(f"{webhook}/webhooks/sendgrid", body, sendgrid_headers(private, body))[0] == 200
        _orders(con, code_c3)
        con.close()

    loaded = load_events(settings, scenarios)
    assert loaded.email_events_loaded == 9
    with duckdb.connect(str(settings.warehouse)) as wh:
        urls = wh.execute("select distinct url from raw.message_events where event = 'click'").fetchall()
        assert urls == [(LINK,)]
        assert wh.execute("select count(*) from raw.message_events where event <> 'click' and url is not null"
                          ).fetchone()[0] == 0

    built = build_models(settings, RUN_DATE + timedelta(days=45), select=["channel_costs", "campaign_performance"])
    assert built.success, [n for n in built.nodes if n.status not in ("success", "pass")]
    with duckdb.connect(str(settings.warehouse), read_only=True) as wh:
        cursor = wh.execute("select * from marts.campaign_performance where scenario_id = 'f2_unique'")
        rows = [dict(zip([d[0] for d in cursor.description], r)) for r in cursor.fetchall()]
    assert len(rows) == 1
    row = rows[0]
    assert (row["step_id"], row["channel"], row["send_date"], row["sent_count"]) == ("d12_coupon", "email", RUN_DATE, 5)
    assert row["clicked_count"] == 3 and row["clicked_customers"] == 3 and row["click_count"] == 4
    assert row["click_through_orders"] == 2  # C1's O3 (after her click) and C4's O9 (kizuna's UTMs)
    assert row["click_through_revenue"] == 7000 + 6000
    assert row["redeemed_coupons"] == 1 and row["coupon_revenue"] == 5000  # one code, its first order

"""The EC-CUBE source against a real PostgreSQL holding EC-CUBE 4.2's schema (tests/pg_cluster.py).

The same generated shop, written into the EC-CUBE tables night by night and pulled by the source, gives the
marts kizuna's own CSV export of it gives, restricted to what EC-CUBE carries; a cancellation arrives as a
later `update_date`; a night the gate refuses leaves the cursor; the connection cannot write; the URL is
never shown; statuses, guests, consents and the rest map as docs/sources/ec_cube.md says.
"""

from __future__ import annotations

import csv
import logging
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
from sqlalchemy import text

from connectors.sources.ec_cube import EcCubeSource, demo
from connectors.sources.ec_cube.source import CURSOR_TABLE
from connectors.sources.loader import ensure_raw_tables
from kizuna import stages
from kizuna.config import PROJECT_ROOT, Settings
from kizuna.demo_shop import generate_shop
from kizuna.errors import ExportError, QualityGateFailed
from pg_cluster import eccube, new_database, postgres  # noqa: F401  (fixtures)
from source_parity import assert_same_marts, build, restrict

TZ = ZoneInfo("Asia/Tokyo")
#: A shop that ended in the past: the source pulls finished nights only (before the start of today).
END = date(2026, 3, 20)
NIGHTS = 3
ID_COLUMNS = {"customer_id", "order_id", "order_line_id", "product_id", "shipment_id"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shop")
    generate_shop(out, customers=800, seed=15, end_date=END, nights=NIGHTS)
    return out


def _settings(tmp: Path, **kw) -> Settings:
    return Settings(home=PROJECT_ROOT, data_dir=tmp, **kw)


def _as_ec_cube(table: str, column: str, value: str) -> str:
    """How EC-CUBE spells what the generated shop holds (ids are numbers, phones digits, payment methods
    names) and the values EC-CUBE has no source for (docs/sources/ec_cube.md)."""
    if column in ID_COLUMNS:
        return demo.translate_id(value)
    if (table, column) == ("customers", "phone"):
        return value.replace("-", "")
    if (table, column) == ("orders", "payment_method"):
        return demo.PAYMENT_NAMES[value]
    return {("orders", "order_kind"): "one_off", ("products", "product_type"): "main",
            ("products", "unit_cost"): "0", ("products", "is_subscription_eligible"): "false"}.get((table, column), value)


def _ec_cube_reference(exports: Path, dest: Path) -> Path:
    """Kizuna's CSV export of the shop restricted to what EC-CUBE carries: no media, ad spend,
    subscriptions, carts or surveys; no LINE id, medium, coupon, subscription or delivery date; e-mail
    consent only."""
    restrict(exports, dest, keep={t: None for t in ("customers", "products", "orders", "order_lines", "shipments",
                                                   "consents")},
             empty={"customers": ["line_user_id"], "shipments": ["delivered_at"],
                    "orders": ["subscription_id", "delivery_number", "media_code", "coupon_code"]},
             translate=_as_ec_cube)
    for path in dest.glob("*/consents.csv"):
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        channel = rows[0].index("channel")
        with path.open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerows([rows[0]] + [r for r in rows[1:] if r[channel] == "email"])
    return dest


def _source(db, tmp: Path, url: str | None = None, **kw) -> EcCubeSource:
    return EcCubeSource(url or db.reader_url, tmp / "landing" / "ec_cube", warehouse=tmp / "warehouse.duckdb", **kw)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


# -- the acceptance test: the same shop, two ways ---------------------------------------------


def test_the_same_shop_through_ec_cube_and_through_csv_gives_the_same_marts(shop, postgres, tmp_path,
                                                                             monkeypatch):
    db = new_database(postgres)
    monkeypatch.setenv("KIZUNA_EC_CUBE_DATABASE_URL", db.reader_url)
    candidate = _settings(tmp_path / "ec_cube", source="ec_cube")
    folders = sorted(p for p in shop.iterdir() if p.is_dir())
    assert [p.name for p in folders][-1] == END.isoformat() and len(folders) == NIGHTS + 1
    nights = []
    for folder in folders:  # the cart writes a day, kizuna pulls it that night
        with db.connect() as con:
            demo.load_night(con, folder)
        night = stages.resolve_night(candidate, None)
        nights += [r.night for r in stages.ingest(candidate, night)]
        stages.erase(candidate)
    assert nights[-1] == END and nights == sorted(set(nights)) and len(nights) >= 2

    reference = _settings(tmp_path / "csv", exports_dir=_ec_cube_reference(shop, tmp_path / "csv_view"))
    build(reference, END, run_date=END + timedelta(days=1))
    build(candidate, END, run_date=END + timedelta(days=1))
    assert_same_marts(reference, candidate)

    with duckdb.connect(str(candidate.warehouse), read_only=True) as con:
        orders, kinds = con.execute("select count(*), count(distinct status) from raw.orders").fetchone()
        cursor = con.execute(f"select max(pulled_before) from {CURSOR_TABLE}").fetchone()[0]
        consents = con.execute("select count(*) from marts.dim_customers where has_email_consent").fetchone()[0]
    assert orders > 1000 and kinds == 3 and consents > 100  # the comparison was not of empty marts
    assert cursor == datetime(END.year, END.month, END.day, 15, 0)  # the end of the last night, in UTC


# -- incremental nights -----------------------------------------------------------------------


def _one_customer_shop(con, at: datetime) -> None:
    """A product, one member who asked for the mail magazine, and two orders, both shipped."""
    for sql in (
        "insert into dtb_product (id, name, create_date, update_date, discriminator_type) "
        "values (1, 'きずな青汁 30日分', %(at)s, %(at)s, 'product')",
        "insert into dtb_product_class (id, product_id, product_code, stock_unlimited, price02, visible, create_date, "
        "update_date, discriminator_type) values (1, 1, 'KZ-AOJ-30', true, 4980, true, %(at)s, %(at)s, 'productclass')",
        "insert into dtb_customer (id, name01, name02, email, password, secret_key, point, create_date, update_date, "
        "customer_status_id, sex_id, pref_id, postal_code, phone_number, plg_mailmagazine_flg, discriminator_type) "
        "values (7, '山田', '花子', 'hanako@example.jp', 'x', 'k7', 0, %(at)s, %(at)s, 2, 2, 13, '1500001', "
        "'09012345678', 1, 'customer')",
    ):
        con.execute(sql, {"at": at})
    for order_id in (1, 2):
        for sql in (
            "insert into dtb_order (id, name01, name02, subtotal, discount, delivery_fee_total, charge, tax, total, "
            "payment_total, payment_method, create_date, update_date, order_date, add_point, use_point, "
            "order_status_id, customer_id, discriminator_type) values (%(id)s, '山田', '花子', 4980, 0, 550, 330, "
            "452, 5860, 5860, '代金引換', %(at)s, %(at)s, %(at)s, 0, 0, 1, 7, 'order')",
            "insert into dtb_order_item (id, product_name, price, quantity, tax, order_id, product_id, "
            "product_class_id, tax_display_type_id, order_item_type_id, discriminator_type) values "
            "(%(id)s * 10, 'きずな青汁 30日分', 4527, 1, 453, %(id)s, 1, 1, 1, 1, 'orderitem'), "
            "(%(id)s * 10 + 1, '送料', 550, 1, 0, %(id)s, null, null, 2, 2, 'orderitem'), "
            "(%(id)s * 10 + 2, '手数料', 330, 1, 0, %(id)s, null, null, 2, 3, 'orderitem')",
            "insert into dtb_shipping (id, name01, name02, delivery_name, shipping_date, tracking_number, "
            "create_date, update_date, order_id, discriminator_type) values (%(id)s, '山田', '花子', 'ヤマト運輸', "
            "%(at)s, '1234', %(at)s, %(at)s, %(id)s, 'shipping')",
        ):
            con.execute(sql, {"id": order_id, "at": at})


def test_a_cancellation_arrives_later_as_a_newer_update_date(eccube, tmp_path, monkeypatch):
    monkeypatch.setenv("KIZUNA_EC_CUBE_DATABASE_URL", eccube.reader_url)
    settings = _settings(tmp_path, source="ec_cube")
    day1, day3 = date(2026, 2, 1), date(2026, 2, 3)
    with eccube.connect() as con:
        _one_customer_shop(con, datetime(2026, 2, 1, 10, 0, tzinfo=TZ))
    assert [r.night for r in stages.ingest(settings, stages.resolve_night(settings, None))] == [day1]
    with eccube.connect() as con:  # two nights later the shop cancels order 2 in its admin screen
        con.execute("update dtb_order set order_status_id = 3, update_date = %s where id = 2",
                    [datetime(2026, 2, 3, 9, 30, tzinfo=TZ)])
    assert stages.resolve_night(settings, None) == day3
    loaded = stages.ingest(settings, day3)
    assert [r.night for r in loaded] == [day3] and loaded[0].rows_updated == 2  # the order and its line
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("select order_id, status, updated_at from raw.orders order by 1").fetchall() == [
            ("1", "confirmed", datetime(2026, 2, 1, 10, 0)), ("2", "cancelled", datetime(2026, 2, 3, 9, 30))]
        assert con.execute(f"select night, pulled_before from {CURSOR_TABLE} order by 1").fetchall() == [
            (day1, datetime(2026, 2, 1, 15, 0)), (day3, datetime(2026, 2, 3, 15, 0))]
    assert stages.ingest(settings, day3) == []  # nothing new: nothing loaded, nothing pulled twice
    assert not (settings.landing_dir / "ec_cube" / day1.isoformat()).exists()  # kept nights leave the landing


def test_a_night_refused_by_the_gate_leaves_the_cursor_where_it_was(eccube, tmp_path, monkeypatch):
    monkeypatch.setenv("KIZUNA_EC_CUBE_DATABASE_URL", eccube.reader_url)
    settings = _settings(tmp_path, source="ec_cube")
    day1, day2 = date(2026, 2, 1), date(2026, 2, 2)
    with eccube.connect() as con:
        _one_customer_shop(con, datetime(2026, 2, 1, 10, 0, tzinfo=TZ))
    stages.ingest(settings, day1)
    with eccube.connect() as con:  # a broken edit: the payment total no longer adds up
        con.execute("update dtb_order set payment_total = 99999, update_date = %s where id = 1",
                    [datetime(2026, 2, 2, 11, 0, tzinfo=TZ)])
    with pytest.raises(QualityGateFailed, match="total"):
        stages.ingest(settings, day2)

    def state():
        with duckdb.connect(str(settings.warehouse), read_only=True) as con:
            return (con.execute(f"select max(pulled_before) from {CURSOR_TABLE}").fetchone()[0],
                    con.execute("select total from raw.orders where order_id = '1'").fetchone()[0])

    assert state() == (datetime(2026, 2, 1, 15, 0), 5860)  # nothing of the night kept, the cursor unmoved
    with eccube.connect() as con:  # fixed the same day
        con.execute("update dtb_order set payment_total = 5860, update_date = %s where id = 1",
                    [datetime(2026, 2, 2, 12, 0, tzinfo=TZ)])
    assert [r.night for r in stages.ingest(settings, day2)] == [day2]
    assert state() == (datetime(2026, 2, 2, 15, 0), 5860)


def test_only_finished_nights_are_pulled(eccube, tmp_path):
    """A change made today waits for tonight to end: a run at 02:00 never loads half a day. (EC-CUBE keeps
    only a row's current version: the order changed today is pulled with tonight, not before.)"""
    with eccube.connect() as con:
        _one_customer_shop(con, datetime(2026, 2, 1, 10, 0, tzinfo=TZ))
        con.execute("update dtb_order set order_status_id = 3, update_date = %s where id = 2",
                    [datetime(2026, 2, 2, 1, 30, tzinfo=TZ)])
    at_two = datetime(2026, 2, 2, 2, 0, tzinfo=TZ)
    source = _source(eccube, tmp_path, until=datetime(2026, 2, 2, tzinfo=TZ))
    assert source.nights() == [date(2026, 2, 1)]
    orders = _read(next(r.path for r in source.files(date(2026, 2, 1)) if r.table == "orders"))
    assert {o["order_id"]: o["status"] for o in orders} == {"1": "confirmed"}
    later = _source(eccube, tmp_path / "later", until=at_two + timedelta(days=1))
    assert later.nights() == [date(2026, 2, 2)]
    orders = _read(next(r.path for r in later.files(date(2026, 2, 2)) if r.table == "orders"))
    assert {o["order_id"]: o["status"] for o in orders} == {"1": "confirmed", "2": "cancelled"}


# -- the mapping ------------------------------------------------------------------------------


def test_statuses_guests_items_consents_and_customers_map_as_documented(eccube, tmp_path):
    at = datetime(2026, 2, 1, 10, 0, tzinfo=TZ)
    with eccube.connect() as con:
        _one_customer_shop(con, at)
        con.execute("insert into mtb_order_status (id, name, sort_no, display_order_count, discriminator_type) "
                    "values (10, '出荷保留', 8, false, 'orderstatus')")  # a status a shop added
        con.execute("""
            insert into dtb_customer (id, name01, name02, email, password, secret_key, point, create_date,
                update_date, customer_status_id, sex_id, plg_mailmagazine_flg, birth, discriminator_type) values
                (8, '仮', '会員', 'kari@example.jp', 'x', 'k8', 0, %(at)s, %(at)s, 1, 1, 1, null, 'customer'),
                (9, '退会', '済み', 'x@dummy.dummy', 'x', 'k9', 0, %(at)s, %(at)s, 3, 4, 0,
                 '1980-04-01 15:00:00+00', 'customer');
        """, {"at": at})
        for order_id, status, customer in ((3, 3, 7), (4, 4, 7), (5, 5, 7), (6, 6, 7), (7, 7, 7), (8, 8, 7),
                                           (9, 9, 7), (10, 10, 7), (11, 1, None)):
            con.execute("""
                insert into dtb_order (id, name01, name02, email, postal_code, pref_id, subtotal, discount,
                    delivery_fee_total, charge, tax, total, payment_total, create_date, update_date, order_date,
                    add_point, use_point, order_status_id, customer_id, discriminator_type)
                    values (%s, '客', '一見', 'guest@example.jp', '5300001', 27, 1000, 100, 0, 0, 90, 900, 900,
                            %s, %s, %s, 0, 0, %s, %s, 'order')""", [order_id, at, at, at, status, customer])
    source = _source(eccube, tmp_path, until=datetime(2026, 2, 2, tzinfo=TZ))
    con = duckdb.connect()
    ensure_raw_tables(con)
    source.begin(con)
    files = {ref.table: _read(ref.path) for ref in source.files(date(2026, 2, 1))}
    assert set(files) == {"customers", "products", "orders", "order_lines", "shipments", "consents"}

    statuses = {o["order_id"]: o["status"] for o in files["orders"]}
    assert statuses == {"1": "confirmed", "2": "confirmed", "3": "cancelled", "4": "confirmed", "5": "confirmed",
                        "6": "confirmed", "9": "returned", "10": "confirmed", "11": "confirmed"}  # no 7, 8
    order1 = next(o for o in files["orders"] if o["order_id"] == "1")
    assert (order1["subtotal"], order1["discount"], order1["shipping_fee"], order1["total"],
            order1["payment_method"], order1["order_kind"], order1["media_code"]) == (
        "4980", "0", "880", "5860", "代金引換", "one_off", "")  # the charge goes with the shipping fee
    assert [(line["order_line_id"], line["product_id"], line["unit_price"], line["line_amount"])
            for line in files["order_lines"]] == [("10", "1", "4980", "4980"), ("20", "1", "4980", "4980")]
    assert [(s["shipment_id"], s["shipped_at"], s["carrier"], s["delivered_at"]) for s in files["shipments"]] == [
        ("1", "2026-02-01 10:00:00", "ヤマト運輸", ""), ("2", "2026-02-01 10:00:00", "ヤマト運輸", "")]
    assert files["products"] == [{"product_id": "1", "sku": "KZ-AOJ-30", "product_name": "きずな青汁 30日分",
                                  "product_type": "main", "list_price": "4980", "unit_cost": "0",
                                  "is_subscription_eligible": "false", "days_per_unit": "",  # not in EC-CUBE
                                  "updated_at": "2026-02-01 10:00:00"}]

    customers = {c["customer_id"]: c for c in files["customers"]}
    assert set(customers) == {"7", "8", "9", "guest-11"}
    assert (customers["7"]["gender"], customers["7"]["prefecture"], customers["7"]["postal_code"],
            customers["7"]["phone"], customers["7"]["deleted_at"]) == ("female", "東京都", "150-0001",
                                                                       "09012345678", "")
    assert (customers["9"]["gender"], customers["9"]["birth_date"], customers["9"]["deleted_at"]) == (
        "unknown", "1980-04-02", "2026-02-01 10:00:00")  # 退会 is an erasure request; birth in Japan time
    guest = customers["guest-11"]
    assert (guest["last_name"], guest["email"], guest["prefecture"], guest["registered_at"]) == (
        "客", "guest@example.jp", "大阪府", "2026-02-01 10:00:00")
    assert next(o for o in files["orders"] if o["order_id"] == "11")["customer_id"] == "guest-11"
    # Only a regular member who asked for the mail magazine consents (the provisional one is not confirmed).
    assert [(c["customer_id"], c["channel"], c["status"]) for c in files["consents"]] == [("7", "email", "granted")]


def test_an_e_mail_consent_turned_off_is_withdrawn_and_keeps_its_first_time(eccube, tmp_path, monkeypatch):
    monkeypatch.setenv("KIZUNA_EC_CUBE_DATABASE_URL", eccube.reader_url)
    settings = _settings(tmp_path, source="ec_cube")
    with eccube.connect() as con:
        _one_customer_shop(con, datetime(2026, 2, 1, 10, 0, tzinfo=TZ))
    stages.ingest(settings, date(2026, 2, 1))
    with eccube.connect() as con:  # an address change, then the mail magazine turned off
        con.execute("update dtb_customer set addr01 = '渋谷区', update_date = %s where id = 7",
                    [datetime(2026, 2, 2, 9, 0, tzinfo=TZ)])
    stages.ingest(settings, date(2026, 2, 2))
    with eccube.connect() as con:
        con.execute("update dtb_customer set plg_mailmagazine_flg = 0, update_date = %s where id = 7",
                    [datetime(2026, 2, 3, 9, 0, tzinfo=TZ)])
    stages.ingest(settings, date(2026, 2, 3))
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("select status, consented_at, withdrawn_at from raw.consents").fetchall() == [
            ("withdrawn", datetime(2026, 2, 1, 10, 0), datetime(2026, 2, 3, 9, 0))]


def test_without_the_mail_magazine_plugin_there_are_no_consents(postgres, tmp_path):
    db = new_database(postgres, mail_magazine=False)
    with db.connect() as con:
        con.execute("alter table dtb_customer add plg_mailmagazine_flg smallint")  # just for the shared rows
        _one_customer_shop(con, datetime(2026, 2, 1, 10, 0, tzinfo=TZ))
        con.execute("alter table dtb_customer drop column plg_mailmagazine_flg")
    source = _source(db, tmp_path, until=datetime(2026, 2, 2, tzinfo=TZ))
    assert "consents" not in source.carries and "orders" in source.carries
    assert "consents" not in {ref.table for ref in source.files(date(2026, 2, 1))}


# -- safety -----------------------------------------------------------------------------------


def test_the_connection_is_read_only_even_for_a_user_who_may_write(eccube, tmp_path):
    for url in (eccube.owner_url, eccube.reader_url):
        source = _source(eccube, tmp_path, url=url)
        with pytest.raises(ExportError, match="only reads.*read-only transaction"):
            with source.connection() as con:
                con.execute(text("update mtb_sex set name = 'x' where id = 1"))
    with eccube.connect() as con:
        assert con.execute("select name from mtb_sex where id = 1").fetchone() == ("男性",)


def test_the_database_url_is_never_logged_or_shown(eccube, tmp_path, monkeypatch, caplog):
    password = re.search(r"://[^:]+:([^@]+)@", eccube.reader_url).group(1)
    monkeypatch.setenv("KIZUNA_EC_CUBE_DATABASE_URL", eccube.reader_url)
    settings = _settings(tmp_path, source="ec_cube")
    for name in (None, "sqlalchemy.engine", "sqlalchemy.pool", "psycopg"):  # everything, restored afterwards
        caplog.set_level(logging.DEBUG, logger=name)
    with eccube.connect() as con:
        _one_customer_shop(con, datetime(2026, 2, 1, 10, 0, tzinfo=TZ))
    stages.ingest(settings, stages.resolve_night(settings, None))
    source = stages.source_for(settings)
    wrong = eccube.reader_url.replace(password, password + "-wrong")
    with pytest.raises(ExportError) as refused:
        _source(eccube, tmp_path, url=wrong).nights()
    shown = [r.getMessage() for r in caplog.records] + [repr(source), str(source), str(refused.value)]
    assert "password authentication failed" in str(refused.value) and "KIZUNA_EC_CUBE_DATABASE_URL" in str(refused.value)
    assert any("EC-CUBE night 2026-02-01" in m for m in shown)  # the log was captured
    for text_ in shown:
        assert password not in text_ and eccube.reader_url not in text_ and "@/" not in text_


def test_a_database_that_is_not_ec_cube_is_named_as_such(postgres, tmp_path):
    postgres.execute("create database not_a_shop")
    url = postgres.url("postgres", postgres.superuser_password, "not_a_shop")
    for ask in (lambda source: source.nights(), lambda source: source.carries):
        with pytest.raises(ExportError, match="has no table dtb_customer.*EC-CUBE 4.2/4.3"):
            ask(EcCubeSource(url, tmp_path / "landing"))

"""The demo shop generator: layout, determinism, encodings, integrity and realism."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from connectors.sources.export_format import (
    CHANNELS,
    CONSENT_STATUSES,
    EXPORT_FILES,
    ORDER_KINDS,
    ORDER_STATUSES,
    SUBSCRIPTION_STATUSES,
)
from kizuna.demo_shop import ShopSummary, generate_shop
from kizuna.demo_shop import catalog, names
from kizuna.errors import KizunaError

END = date(2026, 11, 22)
NIGHTS = 3
CUSTOMERS = 1_500
SEED = 11
FOLDERS = [(END - timedelta(days=NIGHTS - i)).isoformat() for i in range(NIGHTS + 1)]
TABLES = [spec.table for spec in EXPORT_FILES]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ShopSummary, list[tuple[str, float]]]:
    out = tmp_path_factory.mktemp("shop")
    calls: list[tuple[str, float]] = []
    summary = generate_shop(out, customers=CUSTOMERS, seed=SEED, end_date=END, nights=NIGHTS,
                            progress=lambda message, done: calls.append((message, done)))
    return out, summary, calls


@pytest.fixture(scope="module")
def db(shop) -> duckdb.DuckDBPyConnection:
    """Every table over all folders, loaded once, with a `folder` column (all values text)."""
    out = shop[0]
    con = duckdb.connect()
    for table in TABLES:
        con.execute(
            f"create table {table} as select *, regexp_extract(filename, '(\\d{{4}}-\\d{{2}}-\\d{{2}})', 1) as folder "
            f"from read_csv('{out.as_posix()}/*/{table}.csv', all_varchar = true, filename = true, header = true)"
        )
        # Each key's latest version over all folders.
        spec = next(s for s in EXPORT_FILES if s.table == table)
        key = ", ".join(spec.primary_key)
        con.execute(
            f"create table latest_{table} as select * from {table} "
            f"qualify row_number() over (partition by {key} order by updated_at desc) = 1"
        )
    return con


def _one(con: duckdb.DuckDBPyConnection, sql: str):
    return con.execute(sql).fetchone()[0]


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.csv"))}


def test_layout_headers_and_marker(shop) -> None:
    out, summary, calls = shop
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == FOLDERS
    for folder in FOLDERS:
        files = sorted(p.name for p in (out / folder).iterdir())
        assert files == sorted(spec.file_name for spec in EXPORT_FILES)
        for spec in EXPORT_FILES:
            with open(out / folder / spec.file_name, encoding="utf-8", newline="") as f:
                rows = list(csv.reader(f))
            assert rows[0] == spec.column_names, (folder, spec.table)
            assert all(len(r) == len(spec.column_names) for r in rows)
    meta = json.loads((out / "shop.json").read_text(encoding="utf-8"))
    assert meta["seed"] == SEED and meta["customers"] == CUSTOMERS and meta["nights"] == NIGHTS
    assert meta["end_date"] == END.isoformat() and meta["encoding"] == "utf-8" and meta["generator_version"]
    assert set(meta["rows"]) == set(TABLES) and meta["rows"] == summary.rows
    assert not list(out.glob("*.tmp"))
    assert summary.folders == tuple(FOLDERS)
    text = str(summary)
    assert "1,500 customers" in text and "orders" in text and FOLDERS[0] in text
    # Progress is reported per block and ends at 1.
    assert calls and calls[-1][1] == 1.0
    assert [d for _, d in calls] == sorted(d for _, d in calls)


def test_same_arguments_give_identical_files(shop, tmp_path: Path) -> None:
    out = shop[0]
    generate_shop(tmp_path / "again", customers=CUSTOMERS, seed=SEED, end_date=END, nights=NIGHTS)
    assert _digest(tmp_path / "again") == _digest(out)
    generate_shop(tmp_path / "other", customers=CUSTOMERS, seed=SEED + 1, end_date=END, nights=NIGHTS)
    assert _digest(tmp_path / "other") != _digest(out)


def test_cp932_export(tmp_path: Path) -> None:
    generate_shop(tmp_path, customers=1_000, seed=3, end_date=END, nights=1, encoding="cp932")
    raw = (tmp_path / FOLDERS[-2] / "customers.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("cp932")
    surnames = {s.kanji for s in names.SURNAMES}
    assert any(row.split(",")[1].strip('"') in surnames for row in text.splitlines()[1:])
    assert "きずな青汁" in (tmp_path / FOLDERS[-2] / "products.csv").read_bytes().decode("cp932")
    assert json.loads((tmp_path / "shop.json").read_text(encoding="utf-8"))["encoding"] == "cp932"


def test_all_demo_names_encode_in_cp932() -> None:
    texts = [s.kanji + s.kana for s in names.SURNAMES] + [g.kanji + g.kana for g in names.GIVEN_NAMES]
    texts += [c.prefecture + c.city for c in names.CITIES] + list(names.TOWNS) + list(names.BUILDINGS)
    texts += [p.name for p in catalog.PRODUCTS] + [m.name for m in catalog.MEDIA]
    texts += [c for group in catalog.SURVEY_COMMENTS for c in group]
    texts += [c for c, _ in catalog.PARCEL_CARRIERS] + [catalog.LETTER_CARRIER]
    for t in texts:
        t.encode("cp932")


def test_referential_integrity_across_folders(db) -> None:
    # A reference must be satisfied by a row in the same or an earlier folder.
    checks = {
        "orders.customer_id": ("orders", "customer_id", "customers", "customer_id"),
        "orders.subscription_id": ("orders", "subscription_id", "subscriptions", "subscription_id"),
        "orders.media_code": ("orders", "media_code", "media", "media_code"),
        "order_lines.order_id": ("order_lines", "order_id", "orders", "order_id"),
        "order_lines.product_id": ("order_lines", "product_id", "products", "product_id"),
        "shipments.order_id": ("shipments", "order_id", "orders", "order_id"),
        "subscriptions.customer_id": ("subscriptions", "customer_id", "customers", "customer_id"),
        "carts.customer_id": ("carts", "customer_id", "customers", "customer_id"),
        "carts.order_id": ("carts", "order_id", "orders", "order_id"),
        "consents.customer_id": ("consents", "customer_id", "customers", "customer_id"),
        "survey_responses.customer_id": ("survey_responses", "customer_id", "customers", "customer_id"),
        "ad_spend.media_code": ("ad_spend", "media_code", "media", "media_code"),
    }
    for name, (child, column, parent, key) in checks.items():
        dangling = _one(db, f"""
            select count(*) from {child} c where c.{column} is not null and not exists (
                select 1 from {parent} p where p.{key} = c.{column} and p.folder <= c.folder)""")
        assert dangling == 0, name
    assert _one(db, "select count(*) from customers") >= CUSTOMERS
    assert _one(db, "select count(distinct customer_id) from customers") == CUSTOMERS
    # Keys are unique within a folder.
    for spec in EXPORT_FILES:
        key = ", ".join(spec.primary_key)
        assert _one(db, f"select count(*) - count(distinct ({key}, folder)) from {spec.table}") == 0, spec.table


def test_money_adds_up(db) -> None:
    assert _one(db, "select count(*) from orders where total::int <> subtotal::int - discount::int + shipping_fee::int") == 0
    assert _one(db, "select count(*) from orders where discount::int < 0 or discount::int > subtotal::int") == 0
    assert _one(db, "select count(*) from order_lines where line_amount::int <> quantity::int * unit_price::int") == 0
    assert _one(db, """
        select count(*) from latest_orders o
        join (select order_id, sum(line_amount::int) s from latest_order_lines group by 1) l using (order_id)
        where l.s <> o.subtotal::int""") == 0
    assert _one(db, "select count(*) from latest_orders where order_id not in (select order_id from order_lines)") == 0
    # Shipping: one-off orders below the threshold pay it; trials and subscriptions never do.
    assert _one(db, f"""
        select count(*) from orders where shipping_fee::int <> case
            when order_kind = 'one_off' and subtotal::int < {catalog.FREE_SHIPPING_FROM} then {catalog.SHIPPING_FEE}
            else 0 end""") == 0
    assert _one(db, "select count(*) from orders where coupon_code is not null") > 0
    assert _one(db, "select count(*) from order_lines where product_id = 'P004' and unit_price::int = 0") > 0


def test_most_buy_once_and_media_differ(db) -> None:
    per_customer = """(select customer_id, count(*) n from latest_orders group by 1)"""
    buyers = _one(db, f"select count(*) from {per_customer}")
    assert buyers >= 0.95 * CUSTOMERS
    f2 = _one(db, f"select avg((n >= 2)::int) from {per_customer}")
    assert 0.18 <= f2 <= 0.40
    by_medium = dict(db.execute(f"""
        select f.media_code, avg((n >= 2)::int) from latest_orders f join {per_customer} using (customer_id)
        where f.media_code is not null group by 1""").fetchall())
    assert len(by_medium) >= 5
    assert max(by_medium.values()) - min(by_medium.values()) > 0.08
    # Every first order carries a medium; no later order does.
    assert _one(db, "select count(*) - count(distinct customer_id) from latest_orders where media_code is not null") == 0
    kinds = dict(db.execute("select order_kind, count(*) from latest_orders group by 1").fetchall())
    assert set(kinds) == set(ORDER_KINDS)


def test_statuses_and_subscriptions(db) -> None:
    statuses = dict(db.execute("select status, count(*) from latest_orders group by 1").fetchall())
    assert set(statuses) == set(ORDER_STATUSES)
    total = sum(statuses.values())
    assert 0.005 < statuses["cancelled"] / total < 0.08
    assert 0.002 < statuses["returned"] / total < 0.05
    # Cancelled orders are never shipped; returned ones were delivered first.
    assert _one(db, "select count(*) from latest_orders o join shipments s using (order_id) where o.status = 'cancelled'") == 0
    assert _one(db, """select count(*) from latest_orders o join latest_shipments s using (order_id)
                       where o.status = 'returned' and (s.delivered_at is null or s.delivered_at > o.updated_at)""") == 0
    subs = dict(db.execute("select status, count(*) from latest_subscriptions group by 1").fetchall())
    assert set(subs) <= set(SUBSCRIPTION_STATUSES) and subs["active"] > 0 and subs["cancelled"] > 0
    assert _one(db, """select count(*) from latest_subscriptions
                       where (status = 'cancelled') <> (cancelled_at is not null and cancel_reason is not null)""") == 0
    # Most cancellations come within the first three deliveries.
    early = _one(db, """
        select avg((k <= 3)::int) from latest_subscriptions s
        join (select subscription_id, max(delivery_number::int) k from orders group by 1) d using (subscription_id)
        where s.status = 'cancelled'""")
    assert early > 0.6
    # Shipments: delivered 1-3 days after shipped, never before the order.
    assert _one(db, """select count(*) from shipments where delivered_at is not null and
                       date_diff('day', shipped_at::timestamp::date, delivered_at::timestamp::date) not between 1 and 3""") == 0
    assert _one(db, """select count(*) from shipments s join latest_orders o using (order_id)
                       where s.shipped_at::timestamp <= o.ordered_at::timestamp""") == 0
    carts = dict(db.execute("select status, count(*) from latest_carts group by 1").fetchall())
    assert carts.get("abandoned", 0) > 0 and carts.get("converted", 0) > 0
    assert _one(db, "select count(*) from latest_carts where (status = 'converted') <> (order_id is not null)") == 0


def test_nights_hold_new_rows_and_later_versions(db) -> None:
    for night in FOLDERS[1:]:
        assert _one(db, f"select count(*) from orders where folder = '{night}'") >= 1, night
        assert _one(db, f"select count(*) from customers where folder = '{night}'") >= 1, night
        # A night holds only rows changed that day.
        for table in TABLES:
            assert _one(db, f"select count(*) from {table} where folder = '{night}' "
                            f"and updated_at::timestamp::date <> '{night}'::date") == 0, (night, table)
    # The full folder holds nothing later than its day.
    for table in TABLES:
        assert _one(db, f"select count(*) from {table} where folder = '{FOLDERS[0]}' "
                        f"and updated_at::timestamp::date > '{FOLDERS[0]}'::date") == 0, table
    # Keys that changed on a night: shipments delivered after being shipped in an earlier folder.
    changed = _one(db, """
        select count(*) from shipments n join shipments e using (shipment_id)
        where n.folder > e.folder and n.updated_at > e.updated_at and e.delivered_at is null
          and n.delivered_at is not null""")
    assert changed > 0
    renewed = 0
    for table, key in [("orders", "order_id"), ("subscriptions", "subscription_id"), ("carts", "cart_id"),
                       ("consents", "customer_id, channel")]:
        renewed += _one(db, f"""select count(*) from (select {key} from {table} group by {key}
                                having count(distinct folder) > 1)""")
    assert renewed > 0


def test_customers_and_consents(db) -> None:
    ages = db.execute(f"""select min(date_diff('year', birth_date::date, '{END}'::date)),
                                 max(date_diff('year', birth_date::date, '{END}'::date))
                          from customers""").fetchone()
    assert 19 <= ages[0] and ages[1] <= 71
    assert _one(db, "select count(*) from customers where email is null") < 0.15 * CUSTOMERS
    assert _one(db, "select count(*) from customers where line_user_id is not null and not regexp_full_match(line_user_id, 'U[0-9a-f]{32}')") == 0
    assert _one(db, "select count(*) from customers where not regexp_full_match(postal_code, '\\d{3}-\\d{4}')") == 0
    assert _one(db, "select count(*) from latest_customers where deleted_at is not null") < 0.02 * CUSTOMERS
    # Nothing happens to an erased customer after the erasure; their consents are withdrawn.
    for table, at in [("orders", "ordered_at"), ("carts", "created_at"), ("survey_responses", "answered_at")]:
        assert _one(db, f"""select count(*) from {table} t join latest_customers c using (customer_id)
                            where t.{at}::timestamp >= c.deleted_at::timestamp""") == 0, table
    assert _one(db, """select count(*) from latest_consents t join latest_customers c using (customer_id)
                       where c.deleted_at is not null and t.status = 'granted'""") == 0
    channels = dict(db.execute("select channel, count(*) from latest_consents group by 1").fetchall())
    assert set(channels) == set(CHANNELS)
    assert channels["email"] > channels["sms"] and channels["email"] > channels["phone"]
    assert channels["dm"] > channels["phone"]
    statuses = dict(db.execute("select status, count(*) from latest_consents group by 1").fetchall())
    assert set(statuses) == set(CONSENT_STATUSES) and statuses["withdrawn"] < statuses["granted"]
    assert _one(db, "select count(*) from consents where (status = 'withdrawn') <> (withdrawn_at is not null)") == 0
    assert _one(db, "select count(*) from consents where withdrawn_at::timestamp < consented_at::timestamp") == 0
    # LINE consent only for LINE followers.
    assert _one(db, """select count(*) from latest_consents c join latest_customers u using (customer_id)
                       where c.channel = 'line' and u.line_user_id is null""") == 0


def test_survey_follows_repeat_behaviour(db) -> None:
    assert _one(db, "select count(*) from survey_responses") > 20
    assert _one(db, """select count(*) from survey_responses where satisfaction::int not between 1 and 5
                       or intention_to_continue::int not between 1 and 5""") == 0
    repeat, once = db.execute("""
        with n as (select customer_id, count(*) k from latest_orders group by 1)
        select avg(satisfaction::int) filter (where k >= 2), avg(satisfaction::int) filter (where k = 1)
        from survey_responses join n using (customer_id)""").fetchone()
    assert repeat > once + 0.3


def test_ad_spend_per_medium_and_month(db) -> None:
    months = db.execute("select distinct spend_month from ad_spend order by 1").fetchall()
    assert len(months) >= 36
    per_medium = dict(db.execute("select media_code, count(distinct spend_month) from latest_ad_spend group by 1").fetchall())
    assert len(per_medium) >= 5 and all(n == len(months) for n in per_medium.values())
    # Spend is CPO x new customers, give or take noise.
    rows = db.execute("""
        with new as (select media_code, count(*) n from latest_orders where media_code is not null group by 1),
        spend as (select media_code, sum(amount::bigint) s from latest_ad_spend group by 1)
        select media_code, s / n from spend join new using (media_code)""").fetchall()
    cpo = {m.code: m.cpo for m in catalog.MEDIA}
    assert len(rows) >= 5
    for code, per_new in rows:
        assert 0.7 * cpo[code] < per_new < 1.3 * cpo[code], code
    assert len({round(per_new, -2) for _, per_new in rows}) >= 4


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(KizunaError):
        generate_shop(tmp_path, customers=0, seed=1, end_date=END, nights=1)
    with pytest.raises(KizunaError):
        generate_shop(tmp_path, customers=100, seed=1, end_date=END, nights=1, encoding="latin-1")
    assert not (tmp_path / "shop.json").exists()


def test_regenerates_in_place_but_refuses_another_shops_folders(tmp_path: Path) -> None:
    first = generate_shop(tmp_path, customers=300, seed=1, end_date=END, nights=1)
    again = generate_shop(tmp_path, customers=300, seed=1, end_date=END, nights=1)
    assert again.rows == first.rows
    with pytest.raises(KizunaError, match="another shop"):
        generate_shop(tmp_path, customers=300, seed=1, end_date=END + timedelta(days=1), nights=1)
    assert (tmp_path / "shop.json").exists()

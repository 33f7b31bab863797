"""A generated shop (kizuna's export format, `kizuna.demo_shop.generate_shop`) written into EC-CUBE's tables.

The tests and `kizuna demo --source ec_cube` need an EC-CUBE database holding a shop whose history kizuna
also has as CSV, to compare the two. `load_night` writes one night folder the way the cart would have
written it that day, with the `update_date`s it would have set (the time of each change), as the shop's
application user:

* products -> `dtb_product` + one `dtb_product_class` (product_code = SKU, price02 = list price);
* customers -> `dtb_customer` as 本会員 (regular members; an erasure request, `deleted_at`, is a 退会 with the
  address scrambled as EC-CUBE's own withdrawal does), sex and prefecture by EC-CUBE's master ids, postal
  code and phone number as EC-CUBE stores them (digits only); a customer without an e-mail address gets an
  empty one (EC-CUBE's column is NOT NULL);
* e-mail consents -> the mail magazine plugin's flag (`plg_mailmagazine_flg`), the change moving the
  member's `update_date`; other channels have nowhere to go in EC-CUBE and are dropped;
* orders -> `dtb_order` (新規受付, then 発送済み when a parcel ships, 注文取消し / 返品 when cancelled or
  returned, each change moving `update_date`), the buyer's details copied in as EC-CUBE does, with a
  product item per order line (price before tax + tax = the unit price charged) and a delivery-fee and a
  discount item where there is one;
* shipments -> `dtb_shipping` (shipping_date = shipped, delivery_name = carrier);
* abandoned carts -> a `dtb_order` left in 購入処理中 (a checkout never finished), as EC-CUBE keeps them;
* media, ad spend, subscriptions, surveys: EC-CUBE's core tables have no place for them (not written).

Ids are the generated ones' numbers (C0000042 -> 42); `translate_id` maps a generated id to EC-CUBE's.
Items and abandoned checkouts, which have no generated id, are numbered from `EXTRA_ITEM_IDS` and
`CHECKOUT_IDS` up.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

log = logging.getLogger("kizuna.sources.ec_cube.demo")

SCHEMA = Path(__file__).with_name("schema_postgres.sql")
MAIL_MAGAZINE_PLUGIN = Path(__file__).with_name("plugin_mailmagazine_postgres.sql")
#: The names the demo's payment methods have in EC-CUBE (dtb_order.payment_method holds the name).
PAYMENT_NAMES = {"credit_card": "クレジットカード決済", "cod": "代金引換", "convenience_store": "コンビニ決済",
                 "carrier": "キャリア決済", "amazon_pay": "Amazon Pay", "bank_transfer": "銀行振込"}
SEX_IDS = {"male": 1, "female": 2, "unknown": 4}  # unknown -> 回答しない
EXTRA_ITEM_IDS = 1_000_000_000  # + 2 x order number (+1): delivery-fee and discount items
CHECKOUT_IDS = 1_500_000_000  # + cart number: abandoned checkouts (購入処理中)
NEW, CANCELLED, SHIPPED, PROCESSING, RETURNED = 1, 3, 5, 8, 9  # mtb_order_status ids
STATUS_IDS = {"confirmed": NEW, "cancelled": CANCELLED, "returned": RETURNED}
TAX_RATE = 10


def translate_id(value: str) -> str:
    """EC-CUBE's id for a generated one: its number (C0000042 -> 42, P001 -> 1)."""
    return str(int(value[1:]))


def _n(value: str) -> int:
    return int(value[1:])


def _digits(value: str | None) -> str | None:
    return re.sub(r"\D", "", value) if value else None


@dataclass
class NightLoaded:
    night: str
    rows: dict[str, int] = field(default_factory=dict)


def create_schema(con, mail_magazine: bool = True) -> None:
    """EC-CUBE 4.2's tables and master data (and the mail magazine plugin's column), through `con`."""
    con.execute(SCHEMA.read_text(encoding="utf-8"))
    if mail_magazine:
        con.execute(MAIL_MAGAZINE_PLUGIN.read_text(encoding="utf-8"))


class _Night:
    """One night folder's rows, read as text (empty values as None)."""

    def __init__(self, folder: Path, tz: ZoneInfo) -> None:
        self.folder, self.tz = folder, tz

    def rows(self, table: str) -> Iterator[dict[str, str | None]]:
        path = self.folder / f"{table}.csv"
        if not path.exists():
            return
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                yield {k: (v if v != "" else None) for k, v in row.items()}

    def at(self, value: str | None) -> datetime | None:
        """A generated timestamp (Japan time, no offset) as an aware datetime for a timestamptz column."""
        return datetime.fromisoformat(value).replace(tzinfo=self.tz) if value else None


def load_night(con, folder: Path, tz: str = "Asia/Tokyo") -> NightLoaded:
    """Write one night folder of a generated shop into the EC-CUBE tables (one transaction, `con` psycopg)."""
    night = _Night(Path(folder), ZoneInfo(tz))
    done = NightLoaded(Path(folder).name)
    with con.transaction():
        prefs = dict(con.execute("select name, id from mtb_pref").fetchall())
        done.rows["products"] = _products(con, night)
        done.rows["customers"] = _customers(con, night, prefs)
        done.rows["consents"] = _consents(con, night)
        done.rows["orders"] = _orders(con, night)
        done.rows["order_lines"] = _order_lines(con, night)
        done.rows["shipments"] = _shipments(con, night)
        done.rows["checkouts"] = _abandoned_checkouts(con, night)
    return done


def load_shop(con, exports_dir: Path, through: date | None = None, tz: str = "Asia/Tokyo") -> list[NightLoaded]:
    """Every night folder of a generated shop up to `through` (default: all), oldest first."""
    nights = sorted(p for p in Path(exports_dir).iterdir() if p.is_dir() and re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.name))
    return [load_night(con, p, tz) for p in nights if through is None or date.fromisoformat(p.name) <= through]


def _products(con, night: _Night) -> int:
    rows = list(night.rows("products"))
    for r in rows:
        n, at = _n(r["product_id"]), night.at(r["updated_at"])
        con.execute("""insert into dtb_product (id, name, create_date, update_date, product_status_id, discriminator_type)
            values (%s, %s, %s, %s, 1, 'product')
            on conflict (id) do update set name = excluded.name, update_date = excluded.update_date""",
                    [n, r["product_name"], at, at])
        con.execute("""insert into dtb_product_class (id, product_id, product_code, stock_unlimited, price02, visible,
                sale_type_id, create_date, update_date, discriminator_type)
            values (%s, %s, %s, true, %s, true, 1, %s, %s, 'productclass')
            on conflict (id) do update set product_code = excluded.product_code, price02 = excluded.price02,
                update_date = excluded.update_date""", [n, n, r["sku"], int(r["list_price"]), at, at])
    return len(rows)


def _customers(con, night: _Night, prefs: dict[str, int]) -> int:
    rows = []
    for r in night.rows("customers"):
        n = _n(r["customer_id"])
        withdrawn = r["deleted_at"] is not None
        email = r["email"] or ""
        if withdrawn:  # EC-CUBE's withdrawal (Mypage\WithdrawController) scrambles the address
            email = hashlib.sha256(f"{n}{email}".encode()).hexdigest()[:60] + "@dummy.dummy"
        birth = night.at(r["birth_date"] + " 00:00:00") if r["birth_date"] else None
        rows.append([n, r["last_name"], r["first_name"], r["last_name_kana"], r["first_name_kana"],
                     _digits(r["postal_code"]), r["city"], r["address_line"], email, _digits(r["phone"]), birth,
                     f"demo-{n}", night.at(r["registered_at"]), night.at(r["updated_at"]),
                     3 if withdrawn else 2, SEX_IDS.get(r["gender"] or ""), prefs.get(r["prefecture"] or "")])
    with con.cursor() as cur:
        cur.executemany("""insert into dtb_customer (id, name01, name02, kana01, kana02, postal_code, addr01, addr02,
                email, phone_number, birth, password, secret_key, point, create_date, update_date,
                customer_status_id, sex_id, pref_id, discriminator_type)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'demo', %s, 0, %s, %s, %s, %s, %s, 'customer')
            on conflict (id) do update set name01 = excluded.name01, name02 = excluded.name02,
                kana01 = excluded.kana01, kana02 = excluded.kana02, postal_code = excluded.postal_code,
                addr01 = excluded.addr01, addr02 = excluded.addr02, email = excluded.email,
                phone_number = excluded.phone_number, birth = excluded.birth, update_date = excluded.update_date,
                customer_status_id = excluded.customer_status_id, sex_id = excluded.sex_id,
                pref_id = excluded.pref_id""", rows)
    return len(rows)


def _consents(con, night: _Night) -> int:
    """E-mail consents only: the mail magazine flag; the change is a change of the member (update_date)."""
    rows = [[1 if r["status"] == "granted" and not r["withdrawn_at"] else 0, night.at(r["updated_at"]),
             _n(r["customer_id"])] for r in night.rows("consents") if r["channel"] == "email"]
    with con.cursor() as cur:
        cur.executemany("""update dtb_customer set plg_mailmagazine_flg = %s,
                update_date = greatest(update_date, %s) where id = %s and customer_status_id <> 3""", rows)
    return len(rows)


def _orders(con, night: _Night) -> int:
    """New orders copy the buyer's details from the member, as EC-CUBE does; a later version changes the
    status (a confirmed order already shipped stays 発送済み)."""
    rows = []
    for r in night.rows("orders"):
        subtotal, total = int(r["subtotal"]), int(r["total"])
        rows.append([_n(r["order_id"]), f"demo-{_n(r['order_id'])}", str(_n(r["order_id"])), subtotal,
                     int(r["discount"]), int(r["shipping_fee"]), subtotal * TAX_RATE // (100 + TAX_RATE), total,
                     total, PAYMENT_NAMES.get(r["payment_method"] or "", r["payment_method"]),
                     night.at(r["ordered_at"]), night.at(r["updated_at"]), night.at(r["ordered_at"]),
                     STATUS_IDS[r["status"]], _n(r["customer_id"])])
    with con.cursor() as cur:
        cur.executemany("""insert into dtb_order (id, pre_order_id, order_no, name01, name02, kana01, kana02, email,
                phone_number, postal_code, addr01, addr02, birth, sex_id, pref_id, subtotal, discount,
                delivery_fee_total, charge, tax, total, payment_total, payment_method, create_date, update_date,
                order_date, add_point, use_point, order_status_id, customer_id, discriminator_type)
            select %s, %s, %s, c.name01, c.name02, c.kana01, c.kana02, c.email, c.phone_number, c.postal_code,
                c.addr01, c.addr02, c.birth, c.sex_id, c.pref_id, %s, %s, %s, 0, %s, %s, %s, %s, %s, %s, %s, 0, 0,
                %s, c.id, 'order'
            from dtb_customer c where c.id = %s
            on conflict (id) do update set update_date = excluded.update_date,
                order_status_id = case when excluded.order_status_id = 1 and dtb_order.order_status_id = 5
                                       then 5 else excluded.order_status_id end""", rows)
    return len(rows)


def _order_lines(con, night: _Night) -> int:
    rows, extras = [], []
    for r in night.rows("order_lines"):
        unit = int(r["unit_price"])
        price = round(unit * 100 / (100 + TAX_RATE))
        rows.append([_n(r["order_line_id"]), price, int(r["quantity"]), unit - price, TAX_RATE,
                     _n(r["order_id"]), _n(r["product_id"])])
    with con.cursor() as cur:
        cur.executemany("""insert into dtb_order_item (id, product_name, product_code, price, quantity, tax, tax_rate,
                tax_adjust, order_id, product_id, product_class_id, rounding_type_id, tax_type_id, tax_display_type_id,
                order_item_type_id, discriminator_type)
            select %s, p.name, pc.product_code, %s, %s, %s, %s, 0, %s, p.id, pc.id, 1, 1, 1, 1, 'orderitem'
            from dtb_product_class pc join dtb_product p on p.id = pc.product_id where pc.id = %s
            on conflict (id) do nothing""", rows)
        # The order's other items (送料, 割引): EC-CUBE keeps them beside the products; kizuna must skip them.
        for order_id, fee, discount in con.execute(
                "select id, delivery_fee_total, discount from dtb_order where id = any(%s)",
                [sorted({r[5] for r in rows})]).fetchall():
            if fee:
                extras.append([EXTRA_ITEM_IDS + 2 * order_id, "送料", fee, 2, order_id])
            if discount:
                extras.append([EXTRA_ITEM_IDS + 2 * order_id + 1, "割引", -discount, 4, order_id])
        cur.executemany("""insert into dtb_order_item (id, product_name, price, quantity, tax, tax_rate, tax_adjust,
                order_id, tax_display_type_id, order_item_type_id, discriminator_type)
            values (%s, %s, %s, 1, 0, 0, 0, %s, 2, %s, 'orderitem') on conflict (id) do nothing""",
                        [[e[0], e[1], e[2], e[4], e[3]] for e in extras])
    return len(rows)


def _shipments(con, night: _Night) -> int:
    """A parcel copies the order's address; shipping it marks the order 発送済み (a change of the order)."""
    rows = [[_n(r["shipment_id"]), r["carrier"], night.at(r["shipped_at"]), r["tracking_number"],
             night.at(r["updated_at"]), _n(r["order_id"])] for r in night.rows("shipments")]
    with con.cursor() as cur:
        cur.executemany("""insert into dtb_shipping (id, name01, name02, kana01, kana02, phone_number, postal_code,
                addr01, addr02, pref_id, delivery_name, shipping_date, tracking_number, create_date, update_date,
                order_id, discriminator_type)
            select %s, o.name01, o.name02, o.kana01, o.kana02, o.phone_number, o.postal_code, o.addr01, o.addr02,
                o.pref_id, %s, %s, %s, o.create_date, %s, o.id, 'shipping'
            from dtb_order o where o.id = %s
            on conflict (id) do update set delivery_name = excluded.delivery_name,
                shipping_date = excluded.shipping_date, tracking_number = excluded.tracking_number,
                update_date = excluded.update_date""", rows)
        cur.executemany("""update dtb_order set order_status_id = 5, update_date = greatest(update_date, %s)
            where id = %s and order_status_id = 1""", [[r[2], r[5]] for r in rows if r[2] is not None])
    return len(rows)


def _abandoned_checkouts(con, night: _Night) -> int:
    rows = [[CHECKOUT_IDS + _n(r["cart_id"]), f"checkout-{_n(r['cart_id'])}", int(r["amount"]), int(r["amount"]),
             int(r["amount"]), night.at(r["created_at"]), night.at(r["updated_at"]), _n(r["customer_id"])]
            for r in night.rows("carts") if r["status"] == "abandoned"]
    with con.cursor() as cur:
        cur.executemany("""insert into dtb_order (id, pre_order_id, name01, name02, email, subtotal, discount,
                delivery_fee_total, charge, tax, total, payment_total, create_date, update_date, add_point,
                use_point, order_status_id, customer_id, discriminator_type)
            select %s, %s, c.name01, c.name02, c.email, %s, 0, 0, 0, 0, %s, %s, %s, %s, 0, 0, 8, c.id, 'order'
            from dtb_customer c where c.id = %s
            on conflict (id) do nothing""", rows)
    return len(rows)


@dataclass
class DemoDatabase:
    """A throwaway PostgreSQL holding an EC-CUBE database: `owner_url` is the shop application's user,
    `reader_url` a user that may only read (give that one to kizuna). `close()` stops and removes it."""

    cluster: object
    database: str
    owner: str
    owner_password: str
    reader_url: str
    owner_url: str

    def connect(self):
        """A psycopg connection as the shop application's user (to write the shop)."""
        return self.cluster.connect(self.database, self.owner, self.owner_password, autocommit=True)

    def close(self) -> None:
        self.cluster.remove()


def create_database(cluster, name: str = "eccube", mail_magazine: bool = True) -> DemoDatabase:
    """An EC-CUBE database in `cluster` (a started `ThrowawayPostgres`): the shop's user owns the schema,
    kizuna's user `<name>_kizuna` may only read it."""
    import secrets

    owner, owner_pw, reader_pw = f"{name}_app", secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    cluster.create_database(name, owner, owner_pw)
    cluster.execute(SCHEMA.read_text(encoding="utf-8"), name, owner, owner_pw)
    if mail_magazine:
        cluster.execute(MAIL_MAGAZINE_PLUGIN.read_text(encoding="utf-8"), name, owner, owner_pw)
    cluster.create_reader(name, f"{name}_kizuna", reader_pw)
    return DemoDatabase(cluster, name, owner, owner_pw, cluster.url(f"{name}_kizuna", reader_pw, name),
                        cluster.url(owner, owner_pw, name))


def start_demo_database(exports_dir: Path, through: date | None = None, tz: str = "Asia/Tokyo") -> DemoDatabase:
    """For `kizuna demo --source ec_cube`: start a throwaway PostgreSQL (Debian's `postgresql` package must be
    installed), create an EC-CUBE database in it and load the generated shop in `exports_dir` night by night.
    Point KIZUNA_EC_CUBE_DATABASE_URL at `reader_url`; `close()` removes the database when done."""
    from connectors.sources.ec_cube.pg_cluster import ThrowawayPostgres

    cluster = ThrowawayPostgres().start()
    try:
        db = create_database(cluster)
        with db.connect() as con:
            for loaded in load_shop(con, exports_dir, through, tz):
                log.info("EC-CUBE demo database: night %s written (%s)", loaded.night,
                         ", ".join(f"{n:,} {t}" for t, n in loaded.rows.items() if n))
        return db
    except BaseException:
        cluster.remove()
        raise

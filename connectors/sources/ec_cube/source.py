"""The EC-CUBE 4 source: a shop's EC-CUBE database, read read-only, pulled incrementally on `update_date`.

What it reads (EC-CUBE 4.2/4.3; the DDL it was written against is `schema_postgres.sql` beside this file):
`dtb_customer`, `dtb_order`, `dtb_order_item`, `dtb_shipping`, `dtb_product`, `dtb_product_class` and the
master table `mtb_pref`; order statuses, sexes and item types by their fixed ids (the constants of
`Eccube\\Entity\\Master\\OrderStatus`, `Sex`, `OrderItemType`, `CustomerStatus`), never by their names,
which a shop may rename. With the official mail magazine plugin installed it also reads
`dtb_customer.plg_mailmagazine_flg` (e-mail consent). How each column maps, and what EC-CUBE cannot carry,
is in docs/sources/ec_cube.md.

Nights and the cursor. A night is a calendar day in the shop's time zone (`KIZUNA_TIMEZONE`); only
finished nights are pulled (nothing changed at or after `until`, by default the start of today), so a run
at 02:00 never loads half a day. The cursor is the end of the last night kept, stored in the warehouse
(`raw._ec_cube_cursor`) by `commit()` inside that night's transaction: a night refused by the gate, or a
load that fails, leaves it where it was. The first load (no cursor) is one night, the newest finished one,
holding everything changed before its end. Later, every night with a change since the cursor is one night.
Each night's pull re-reads the `OVERLAP` before the cursor, so a row written by a transaction that
committed just after the previous pull is not lost (a row read twice changes nothing: the loader keeps the
newest `updated_at`). All tables of one pull are read in one REPEATABLE READ, READ ONLY transaction, so an
order and its items are from the same moment. Rows are streamed (server-side cursors) into the night's
files in the landing folder, which are put in place only when the whole pull succeeded; the landing folders
of nights already kept are removed on the next run (the loader's archive holds their copy, and erasure
purges it there).

The connection is read-only twice over: the session is set to read-only transactions before anything is
read, whatever the database user may do (give it a user with SELECT only, all the same). The URL
(`KIZUNA_EC_CUBE_DATABASE_URL`, a secret) is never logged or shown: errors name the variable instead.
"""

from __future__ import annotations

import csv
import filecmp
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from connectors.sources.base import ExportFileRef, ExportSource
from connectors.sources.export_format import EXPORT_FILES_BY_TABLE
from kizuna.errors import ExportError

if TYPE_CHECKING:
    import duckdb
    import sqlalchemy

log = logging.getLogger("kizuna.sources.ec_cube")

SOURCE = "ec_cube"
CURSOR_TABLE = "raw._ec_cube_cursor"
#: Re-read this much before the cursor on every pull (see the module docstring).
OVERLAP = timedelta(hours=1)
#: What the core tables carry; `consents` too when the mail magazine plugin's column exists.
CORE_TABLES = frozenset({"customers", "products", "orders", "order_lines", "shipments"})
MAIL_MAGAZINE_COLUMN = "plg_mailmagazine_flg"

# Fixed ids of EC-CUBE's master data (src/Eccube/Entity/Master/*.php constants).
ORDER_CANCELLED, ORDER_RETURNED = 3, 9  # 注文取消し, 返品
#: 決済処理中 (PENDING, a payment not finished) and 購入処理中 (PROCESSING, a checkout not finished) are
#: not orders yet: left out until they become one (the change moves their update_date).
ORDER_NOT_YET = (7, 8)
SEX = {1: "male", 2: "female", 3: "unknown", 4: "unknown"}  # 男性, 女性, その他, 回答しない
CUSTOMER_PROVISIONAL, CUSTOMER_REGULAR, CUSTOMER_WITHDRAWN = 1, 2, 3  # 仮会員, 本会員, 退会
ITEM_PRODUCT = 1  # mtb_order_item_type 商品: the other item types (送料, 手数料, 割引, 税, ポイント) are order totals
TAX_INCLUDED = 2  # mtb_tax_display_type 税込: the item's price already holds its tax
#: Guest orders (no member) become a customer of their own: `guest-<order id>`.
GUEST_PREFIX = "guest-"

#: What EC-CUBE cannot carry: written as empty columns (null), never an invented value (docs/sources/ec_cube.md).
NOT_CARRIED = {
    "customers": ("line_user_id",),
    "orders": ("subscription_id", "delivery_number", "media_code", "coupon_code"),
    "shipments": ("delivered_at",),
    "products": ("days_per_unit",),  # EC-CUBE has no supply per unit: no run-out anchor (docs/anchors.md)
}
TABLE_ORDER = ("customers", "products", "orders", "order_lines", "shipments", "consents")


def database_url(url: str | SecretStr) -> str:
    """The SQLAlchemy URL for an EC-CUBE `DATABASE_URL`: `postgres://` and `postgresql://` read through
    psycopg 3, `mysql://` through PyMySQL; a URL naming its driver (`postgresql+psycopg://`) is kept."""
    raw = url.get_secret_value() if isinstance(url, SecretStr) else url
    scheme, sep, rest = raw.strip().partition("://")
    if not sep:
        raise ExportError("KIZUNA_EC_CUBE_DATABASE_URL is not a database URL: write it as "
                          "postgresql://USER:PASSWORD@HOST:PORT/DATABASE (or mysql://...), as in EC-CUBE's .env.")
    scheme = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg",
              "pgsql": "postgresql+psycopg", "mysql": "mysql+pymysql"}.get(scheme.lower(), scheme)
    if not scheme.startswith(("postgresql", "mysql")):
        raise ExportError(f"KIZUNA_EC_CUBE_DATABASE_URL names a {scheme.split('+')[0]!r} database: the EC-CUBE "
                          "source reads PostgreSQL (postgresql://...) or MySQL (mysql://...).")
    return f"{scheme}://{rest}"


class _Scrubber:
    """Takes the URL and its password out of any text (a driver's error message) before it is shown."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        self.secrets = [url]
        try:
            password = make_url(url).password
        except Exception:  # noqa: BLE001 - an unparsable URL: the whole of it is still scrubbed
            password = None
        if password:
            self.secrets.append(str(password))

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "**********")
        return text


def _int_text(value: Any) -> str:
    """Money and quantities: EC-CUBE keeps NUMERIC(12,2); whole yen are written as integers, anything else
    as it is (the loader quarantines it with the reason, nothing is rounded away)."""
    if value is None:
        return ""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return str(int(value))
    return str(value)


def _postal(value: str | None) -> str:
    """EC-CUBE stores postal codes as 7 digits (1500001); kizuna's format is NNN-NNNN."""
    if not value:
        return ""
    digits = value.strip()
    return f"{digits[:3]}-{digits[3:]}" if re.fullmatch(r"\d{7}", digits) else digits


class EcCubeSource(ExportSource):
    """Pull an EC-CUBE 4 database into kizuna's export format, one landing folder per night.

    `url`: EC-CUBE's database URL (a secret; see `database_url`). `landing_dir`: where nights are written
    (`<landing>/<night>/<table>.csv`). `warehouse`: the DuckDB file holding the cursor (read only when
    `nights()` is asked before `begin()`). `until`: pull nothing changed at or after it (default: the start
    of today in `tz`), for a database whose clock is not the wall clock (a demo shop).
    """

    encoding = "utf-8"

    def __init__(self, url: str | SecretStr, landing_dir: Path, warehouse: Path | None = None,
                 tz: str = "Asia/Tokyo", until: datetime | None = None) -> None:
        self._url = SecretStr(database_url(url))
        self._scrub = _Scrubber(self._url.get_secret_value())
        self.landing_dir = Path(landing_dir)
        self.warehouse = Path(warehouse) if warehouse else None
        self.tz = ZoneInfo(tz)
        self._until = until
        self._engine: sqlalchemy.Engine | None = None
        self._has_mail_magazine: bool | None = None
        self._begun = False
        self._cursor: datetime | None = None  # UTC, aware: the end of the last night kept
        self._kept: set[date] = set()  # the nights kept so far
        self._granted: dict[str, str] = {}  # customer_id -> consented_at, the e-mail consents in force
        self._pulled: dict[date, tuple[datetime, list[ExportFileRef]]] = {}  # night -> (its end, files)

    def __repr__(self) -> str:
        return f"EcCubeSource(url=**********, landing_dir={str(self.landing_dir)!r})"

    # -- the database ------------------------------------------------------------------------

    def _engine_(self) -> "sqlalchemy.Engine":
        if self._engine is None:
            from sqlalchemy import create_engine, event
            from sqlalchemy.pool import NullPool

            try:
                engine = create_engine(self._url.get_secret_value(), poolclass=NullPool, hide_parameters=True,
                                       isolation_level="REPEATABLE READ")
            except ModuleNotFoundError as exc:
                raise ExportError(f"the database driver for KIZUNA_EC_CUBE_DATABASE_URL is not installed "
                                  f"({exc.name}): for MySQL, `pip install pymysql` into kizuna's environment.") from None
            except Exception as exc:  # noqa: BLE001 - a malformed URL: say so without showing it
                raise ExportError(f"KIZUNA_EC_CUBE_DATABASE_URL cannot be used ({type(exc).__name__}): write it as "
                                  "postgresql://USER:PASSWORD@HOST:PORT/DATABASE or mysql://...") from None
            read_only = ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
                         if engine.dialect.name == "postgresql" else "SET SESSION TRANSACTION READ ONLY")

            @event.listens_for(engine, "connect")
            def _read_only(dbapi_connection, _record) -> None:  # every connection, before anything is read
                cursor = dbapi_connection.cursor()
                cursor.execute(read_only)
                cursor.close()
                dbapi_connection.commit()

            self._engine = engine
        return self._engine

    @contextmanager
    def connection(self) -> Iterator["sqlalchemy.Connection"]:
        """One read-only, repeatable-read transaction on the shop's database (errors say what, never the URL)."""
        from sqlalchemy import exc as sa_exc

        try:
            with self._engine_().connect() as con:
                yield con
        except sa_exc.DBAPIError as error:
            raise self._database_error(error) from None

    def _database_error(self, error: Exception) -> ExportError:
        orig = getattr(error, "orig", None) or error
        detail = self._scrub(str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__)
        missing = re.search(r'relation "(\w+)" does not exist|Table \'[\w.]*?(\w+)\' doesn\'t exist', detail)
        if missing:
            table = missing.group(1) or missing.group(2)
            return ExportError(f"the database of KIZUNA_EC_CUBE_DATABASE_URL has no table {table}: it must be an "
                               f"EC-CUBE 4.2/4.3 database and the user must be allowed to read it ({detail}).")
        if "read-only" in detail or "READ ONLY" in detail:
            return ExportError(f"the EC-CUBE source only reads: the database refused a write ({detail}).")
        return ExportError(f"could not read the EC-CUBE database (KIZUNA_EC_CUBE_DATABASE_URL): {detail}. Check that "
                           "the database is reachable and the URL's user, password and database are right.")

    def has_mail_magazine(self) -> bool:
        """Whether the mail magazine plugin's column (`dtb_customer.plg_mailmagazine_flg`) exists."""
        if self._has_mail_magazine is None:
            from sqlalchemy import exc as sa_exc, inspect

            with self.connection() as con:
                try:
                    columns = {c["name"].lower() for c in inspect(con).get_columns("dtb_customer")}
                except sa_exc.NoSuchTableError:
                    raise self._database_error(Exception('relation "dtb_customer" does not exist')) from None
            self._has_mail_magazine = MAIL_MAGAZINE_COLUMN in columns
        return self._has_mail_magazine

    @property
    def carries(self) -> frozenset[str]:  # type: ignore[override]
        """The core tables, and `consents` (e-mail only) when the mail magazine plugin is installed."""
        return CORE_TABLES | ({"consents"} if self.has_mail_magazine() else set())

    # -- time --------------------------------------------------------------------------------

    @property
    def until(self) -> datetime:
        """Nothing changed at or after this is pulled: by default the start of today (a night is finished)."""
        if self._until is not None:
            return self._until if self._until.tzinfo else self._until.replace(tzinfo=self.tz)
        return datetime.combine(datetime.now(self.tz).date(), time(), self.tz)

    def _night_end(self, night: date) -> datetime:
        return datetime.combine(night + timedelta(days=1), time(), self.tz)

    def _to_db(self, moment: datetime) -> datetime:
        """A bound for `update_date`: aware for PostgreSQL, naive UTC for MySQL (EC-CUBE stores UTC there)."""
        moment = moment.astimezone(timezone.utc)
        return moment if self._engine_().dialect.name == "postgresql" else moment.replace(tzinfo=None)

    def _local(self, value: datetime | None) -> datetime | None:
        """A stored `datetimetz` in the shop's time zone, naive (a naive value is UTC: EC-CUBE writes UTC)."""
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(self.tz).replace(tzinfo=None)

    def _ts(self, value: datetime | None) -> str:
        local = self._local(value)
        return local.strftime("%Y-%m-%d %H:%M:%S") if local else ""

    # -- the cursor --------------------------------------------------------------------------

    def begin(self, con: "duckdb.DuckDBPyConnection") -> None:
        """Read the cursor and the e-mail consents in force (so a consent keeps its first time and one the
        customer turns off is withdrawn) from the warehouse."""
        con.execute(f"create table if not exists {CURSOR_TABLE} (night date, pulled_before timestamp, "
                    "committed_at timestamp)")
        self._cursor, self._kept = self._read_state(con)
        self._remove_kept_nights()
        self._granted = {customer: at.strftime("%Y-%m-%d %H:%M:%S") for customer, at in con.execute(
            "select customer_id, consented_at from raw.consents where channel = 'email' and status = 'granted' "
            "and withdrawn_at is null").fetchall()}
        self._begun = True

    def _remove_kept_nights(self) -> None:
        """Landing folders of nights already kept go: the loader archived their files (where erasure purges
        them), and a copy left here would keep an erased customer's details."""
        if self._cursor is None or not self.landing_dir.is_dir():
            return
        kept = (self._cursor.astimezone(self.tz) - timedelta(days=1)).date()
        for folder in self.landing_dir.iterdir():
            try:
                night = date.fromisoformat(folder.name)
            except ValueError:
                continue
            if night <= kept and folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder)

    @staticmethod
    def _read_state(con) -> tuple[datetime | None, set[date]]:
        rows = con.execute(f"select night, pulled_before from {CURSOR_TABLE}").fetchall()
        cursor = max((at for _, at in rows), default=None)
        return (cursor.replace(tzinfo=timezone.utc) if cursor else None), {night for night, _ in rows}

    def _state(self) -> tuple[datetime | None, set[date]]:
        """(the end of the last night kept (UTC) or None before the first load, the nights kept)."""
        if self._begun:
            return self._cursor, self._kept
        if self.warehouse is None or not self.warehouse.exists():
            return None, set()
        import duckdb

        try:
            with duckdb.connect(str(self.warehouse), read_only=True) as con:
                exists = con.execute("select count(*) from duckdb_tables() where schema_name = 'raw' "
                                     "and table_name = '_ec_cube_cursor'").fetchone()[0]
                return self._read_state(con) if exists else (None, set())
        except duckdb.Error as exc:
            raise ExportError(f"could not read the EC-CUBE cursor from the warehouse {self.warehouse}: {exc}") from None

    def cursor(self) -> datetime | None:
        """The end of the last night kept (UTC), or None before the first load."""
        return self._state()[0]

    def commit(self, con: "duckdb.DuckDBPyConnection", night: date) -> None:
        """Inside the night's transaction: the cursor moves to the end of what was pulled for it."""
        pulled = self._pulled.get(night)
        if pulled is None:
            return
        end = pulled[0]
        con.execute(f"insert into {CURSOR_TABLE} values (?, ?, ?)",
                    [night, end.astimezone(timezone.utc).replace(tzinfo=None),
                     datetime.now(timezone.utc).replace(tzinfo=None)])
        self._cursor = end
        self._kept.add(night)

    # -- nights ------------------------------------------------------------------------------

    _CHANGED = ("dtb_customer", "dtb_order", "dtb_order_item", "dtb_shipping", "dtb_product", "dtb_product_class")

    def nights(self) -> list[date]:
        """The nights kept so far (nothing more to pull for them: a run on one loads nothing new, as with a
        folder of exports already loaded), then the newest finished night before the first load, or every
        finished night with a change since the cursor."""
        cursor, kept = self._state()
        return sorted(kept | set(self._pending(cursor)))

    def _pending(self, cursor: datetime | None) -> list[date]:
        from sqlalchemy import text

        until = self.until
        tables = [t for t in self._CHANGED if t != "dtb_order_item"]  # items change only with their order
        with self.connection() as con:
            if cursor is None:
                newest = [con.execute(text(f"select max(update_date) from {t} where update_date < :until"),
                                      {"until": self._to_db(until)}).scalar() for t in tables]
                newest = [n for n in newest if n is not None]
                return [self._local(max(newest, key=self._local)).date()] if newest else []
            days: set[date] = set()
            for t in tables:
                for (at,) in con.execute(text(f"select distinct update_date from {t} "
                                              "where update_date >= :cursor and update_date < :until"),
                                         {"cursor": self._to_db(cursor), "until": self._to_db(until)}):
                    days.add(self._local(at).date())
        return sorted(days)

    def files_dir(self, night: date) -> Path:
        return self.landing_dir / night.isoformat()

    def files(self, night: date) -> list[ExportFileRef]:
        """Pull what changed up to the end of `night` (since the cursor) and write it in kizuna's format."""
        if night in self._pulled:
            return self._pulled[night][1]
        cursor = self.cursor()
        end = min(self._night_end(night), self.until)
        if cursor is not None and end <= cursor:
            return []  # a night already kept: everything up to its end is in the warehouse
        since = cursor - OVERLAP if cursor is not None else None
        with _NightFiles(night, self.files_dir(night)) as out:
            self._pull(since, end, out)
        refs = out.refs
        self._pulled[night] = (end, refs)
        counts = ", ".join(f"{n:,} {table}" for table, n in out.counts.items() if n) or "nothing"
        log.info("EC-CUBE night %s: %s changed %s%s", night, counts,
                 f"since {self._ts(since)}" if since else "(first load: everything)", f" up to {self._ts(end)}")
        return refs

    # -- pulling -----------------------------------------------------------------------------

    def _pull(self, since: datetime | None, end: datetime, out: "_NightFiles") -> None:
        """Stream every change in [since, end) into `out`, table by table, in one snapshot."""
        from sqlalchemy import text

        params = {"end": self._to_db(end), **({"since": self._to_db(since)} if since else {})}

        def window(alias: str) -> str:
            return (f"{alias}.update_date < :end" + (f" and {alias}.update_date >= :since" if since else ""))

        not_yet = ", ".join(map(str, ORDER_NOT_YET))
        mail_magazine = self.has_mail_magazine()
        with self.connection() as con:
            con = con.execution_options(stream_results=True, yield_per=10_000)  # server-side: bounded memory
            flag = f"c.{MAIL_MAGAZINE_COLUMN}" if mail_magazine else "null"
            for row in con.execute(text(f"""
                    select c.id, c.name01, c.name02, c.kana01, c.kana02, c.sex_id, c.birth, c.email,
                           c.phone_number, c.postal_code, p.name as pref, c.addr01, c.addr02, c.create_date,
                           c.update_date, c.customer_status_id, {flag} as mail_magazine
                    from dtb_customer c left join mtb_pref p on p.id = c.pref_id
                    where {window('c')} order by c.id"""), params).mappings():
                out["customers"].append(self._customer(str(row["id"]), row, row["create_date"],
                                                       row["customer_status_id"]))
                if mail_magazine:
                    consent = self._consent(str(row["id"]), row)
                    if consent:
                        out["consents"].append(consent)
            for row in con.execute(text(f"""
                    select o.id, o.customer_id, o.order_date, o.create_date, o.update_date, o.order_status_id,
                           o.subtotal, o.discount, o.delivery_fee_total, o.charge, o.payment_total,
                           o.payment_method, o.name01, o.name02, o.kana01, o.kana02, o.sex_id, o.birth, o.email,
                           o.phone_number, o.postal_code, p.name as pref, o.addr01, o.addr02
                    from dtb_order o left join mtb_pref p on p.id = o.pref_id
                    where {window('o')} and o.order_status_id not in ({not_yet}) order by o.id"""),
                                   params).mappings():
                out["orders"].append(self._order(row))
                if row["customer_id"] is None:  # a guest order: its own customer, from the order's details
                    out["customers"].append(self._customer(f"{GUEST_PREFIX}{row['id']}", row,
                                                           row["order_date"] or row["create_date"], None))
            for row in con.execute(text(f"""
                    select i.id, i.order_id, i.product_class_id, i.quantity, i.price, i.tax,
                           i.tax_display_type_id, o.update_date
                    from dtb_order_item i join dtb_order o on o.id = i.order_id
                    where {window('o')} and o.order_status_id not in ({not_yet})
                      and i.order_item_type_id = {ITEM_PRODUCT} order by i.id"""), params).mappings():
                out["order_lines"].append(self._order_line(row))
            for row in con.execute(text(f"""
                    select s.id, s.order_id, s.shipping_date, s.delivery_name, s.tracking_number, s.update_date
                    from dtb_shipping s join dtb_order o on o.id = s.order_id
                    where {window('s')} and s.shipping_date is not null
                      and o.order_status_id not in ({not_yet}) order by s.id"""), params).mappings():
                out["shipments"].append([str(row["id"]), str(row["order_id"]), self._ts(row["shipping_date"]),
                                         row["delivery_name"] or "", row["tracking_number"] or "",
                                         self._ts(row["update_date"])])
            for row in con.execute(text(f"""
                    select pc.id, pc.product_code, p.name, pc.price02, pc.update_date as class_updated,
                           p.update_date as product_updated
                    from dtb_product_class pc join dtb_product p on p.id = pc.product_id
                    where ({window('pc')}) or ({window('p')}) order by pc.id"""), params).mappings():
                out["products"].append(self._product(row))

    def _customer(self, customer_id: str, row, registered_at, status: int | None) -> list[str]:
        """A member (dtb_customer) or a guest order's customer; 退会 (withdrawn) is an erasure request."""
        withdrawn = status == CUSTOMER_WITHDRAWN
        birth = self._local(row["birth"])
        return [customer_id, row["name01"] or "", row["name02"] or "", row["kana01"] or "", row["kana02"] or "",
                SEX.get(row["sex_id"], "unknown") if row["sex_id"] is not None else "",
                birth.date().isoformat() if birth else "", row["email"] or "", row["phone_number"] or "",
                _postal(row["postal_code"]), row["pref"] or "", row["addr01"] or "", row["addr02"] or "",
                self._ts(registered_at), self._ts(row["update_date"]) if withdrawn else "",
                self._ts(row["update_date"])]

    def _consent(self, customer_id: str, row) -> list[str] | None:
        """E-mail consent from the mail magazine flag. EC-CUBE keeps no consent time: a consent's time is the
        `update_date` of the first version kizuna saw with the flag on (kept from then on); turning the flag
        off, or leaving (退会), withdraws it at that version's `update_date`. Only a 本会員 (regular member,
        e-mail confirmed) can consent: a 仮会員's address is not confirmed yet."""
        updated = self._ts(row["update_date"])
        on = row["mail_magazine"] == 1 and row["customer_status_id"] == CUSTOMER_REGULAR
        if on:
            consented = self._granted.setdefault(customer_id, updated)
            return [customer_id, "email", "granted", consented, "", "mail_magazine", updated]
        consented = self._granted.pop(customer_id, None)
        if consented is None:
            return None  # never consented: no row (no row means no consent)
        return [customer_id, "email", "withdrawn", consented, updated, "mail_magazine", updated]

    def _order(self, row) -> list[str]:
        """Status by id: 注文取消し -> cancelled, 返品 -> returned, every other (new, paid, in progress,
        shipped, a shop's own) -> confirmed. Total: payment_total, which EC-CUBE computes as subtotal +
        delivery fee + charge - discount (points included), so the charge (手数料) goes with shipping_fee."""
        status = {ORDER_CANCELLED: "cancelled", ORDER_RETURNED: "returned"}.get(row["order_status_id"], "confirmed")
        customer = str(row["customer_id"]) if row["customer_id"] is not None else f"{GUEST_PREFIX}{row['id']}"
        fee = (row["delivery_fee_total"] or 0) + (row["charge"] or 0)
        return [str(row["id"]), customer, self._ts(row["order_date"] or row["create_date"]), status, "one_off",
                _int_text(row["subtotal"]), _int_text(row["discount"]), _int_text(fee),
                _int_text(row["payment_total"]), row["payment_method"] or "", self._ts(row["update_date"])]

    def _order_line(self, row) -> list[str]:
        """Product items only; the unit price as charged (tax included: price + tax unless already 税込)."""
        price = row["price"] if row["tax_display_type_id"] == TAX_INCLUDED else row["price"] + (row["tax"] or 0)
        quantity = row["quantity"]
        return [str(row["id"]), str(row["order_id"]),
                str(row["product_class_id"]) if row["product_class_id"] is not None else "",
                _int_text(quantity), _int_text(price), _int_text(price * quantity), self._ts(row["update_date"])]

    def _product(self, row) -> list[str]:
        """One kizuna product per product class (規格): its code, the product's name, price02 (販売価格)."""
        updated = max(self._local(row["class_updated"]), self._local(row["product_updated"]))
        code = row["product_code"] or f"product_class:{row['id']}"
        return [str(row["id"]), code, row["name"] or "", "main", _int_text(row["price02"]), "0", "false",
                updated.strftime("%Y-%m-%d %H:%M:%S")]



class _TableFile:
    """One table's CSV of a night, written row by row into a temporary file beside its final name."""

    def __init__(self, night: date, folder: Path, table: str) -> None:
        self.spec = EXPORT_FILES_BY_TABLE[table]
        self.night, self.path = night, folder / self.spec.file_name
        self.tmp = folder / f".{self.spec.file_name}.tmp"
        self.count = 0
        self._fh = None
        self._carried = [c for c in self.spec.column_names if c not in NOT_CARRIED.get(table, ())]

    def append(self, row: list[str]) -> None:
        if self._fh is None:
            self._fh = self.tmp.open("w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._fh, lineterminator="\n")
            self._writer.writerow(self.spec.column_names)
        values = dict(zip(self._carried, row))
        self._writer.writerow([values.get(c, "") for c in self.spec.column_names])
        self.count += 1

    def finish(self, keep: bool) -> ExportFileRef | None:
        """Put the file in place (an identical one is left alone, so the loader skips it without reading;
        a table with no rows now has no file: none means no change)."""
        if self._fh is not None:
            self._fh.close()
        if not keep or not self.count:
            self.tmp.unlink(missing_ok=True)
            if keep:
                self.path.unlink(missing_ok=True)
            return None
        if self.path.is_file() and filecmp.cmp(self.tmp, self.path, shallow=False):
            self.tmp.unlink()
        else:
            os.replace(self.tmp, self.path)
        return ExportFileRef(self.night, self.spec, self.path)


class _NightFiles:
    """A night's files in kizuna's format in its landing folder: `out["orders"].append(row)`; on a clean
    exit every file is put in place at once (`refs`), on an error none is touched."""

    def __init__(self, night: date, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.files = {table: _TableFile(night, folder, table) for table in TABLE_ORDER}
        self.refs: list[ExportFileRef] = []

    def __getitem__(self, table: str) -> _TableFile:
        return self.files[table]

    @property
    def counts(self) -> dict[str, int]:
        return {table: f.count for table, f in self.files.items()}

    def __enter__(self) -> "_NightFiles":
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        refs = [f.finish(keep=exc_type is None) for f in self.files.values()]
        self.refs = [r for r in refs if r is not None]


def source_from_settings(settings) -> EcCubeSource:
    """`KIZUNA_SOURCE=ec_cube`: the database at the secret `EC_CUBE_DATABASE_URL` (KIZUNA_EC_CUBE_DATABASE_URL)."""
    from kizuna.secrets import get_secret

    return EcCubeSource(get_secret("EC_CUBE_DATABASE_URL"), settings.landing_dir / SOURCE,
                        warehouse=settings.warehouse, tz=settings.timezone)

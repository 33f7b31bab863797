"""From the records of one night's pull to kizuna's export files, in SQL.

The pull writes each record (`mapping.py`) as one JSON line into a staging file per kind
(customer, order, line, fulfillment, variant, checkout, checkout_line) as it streams in;
nothing is held in memory. DuckDB then joins them into the night's CSV files in kizuna's
export format: an order's kind from its lines, a line's `updated_at` from its order, a
cart's product from its first line, consents from the customers' marketing states. A
record seen twice (a page that shifted) keeps its newest version once. A table with no row
is not written: an absent file means no change that night.

Columns Shopify cannot carry are left out of the files (not written empty), so the loader
keeps whatever a warehouse already holds in them and says nothing is known for new keys
(docs/sources/shopify.md lists them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import duckdb

from connectors.sources.export_format import EXPORT_FILES_BY_TABLE

#: Staging kinds and their columns (VARCHAR unless said).
STAGING: dict[str, dict[str, str]] = {
    "customer": dict.fromkeys(["customer_id", "last_name", "first_name", "email", "phone", "postal_code",
                               "prefecture", "city", "address_line", "registered_at", "updated_at", "email_state",
                               "email_at", "sms_state", "sms_at"], "VARCHAR"),
    "order": dict.fromkeys(["order_id", "customer_id", "ordered_at", "status", "media_code", "coupon_code",
                            "subtotal", "discount", "shipping_fee", "total", "payment_method", "updated_at"],
                           "VARCHAR"),
    "line": {"order_line_id": "VARCHAR", "order_id": "VARCHAR", "product_id": "VARCHAR", "quantity": "VARCHAR",
             "unit_price": "VARCHAR", "line_amount": "VARCHAR", "selling_plan": "BOOLEAN"},
    "fulfillment": dict.fromkeys(["shipment_id", "order_id", "shipped_at", "delivered_at", "carrier",
                                  "tracking_number", "updated_at"], "VARCHAR"),
    "variant": {**dict.fromkeys(["product_id", "sku", "product_name", "product_type", "list_price", "unit_cost",
                                 "is_subscription_eligible", "updated_at"], "VARCHAR"), "in_window": "BOOLEAN"},
    "checkout": dict.fromkeys(["cart_id", "customer_id", "created_at", "status", "amount", "updated_at"], "VARCHAR"),
    "checkout_line": {"cart_id": "VARCHAR", "product_id": "VARCHAR", "quantity": "VARCHAR", "seq": "BIGINT"},
}

#: kizuna's columns each file carries (the export format's order); the rest is not in Shopify.
CARRIED: dict[str, list[str]] = {
    "customers": ["customer_id", "last_name", "first_name", "email", "phone", "postal_code", "prefecture", "city",
                  "address_line", "registered_at", "updated_at"],
    "products": ["product_id", "sku", "product_name", "product_type", "list_price", "unit_cost",
                 "is_subscription_eligible", "updated_at"],
    "orders": ["order_id", "customer_id", "ordered_at", "status", "order_kind", "media_code", "coupon_code",
               "subtotal", "discount", "shipping_fee", "total", "payment_method", "updated_at"],
    "order_lines": ["order_line_id", "order_id", "product_id", "quantity", "unit_price", "line_amount", "updated_at"],
    "shipments": ["shipment_id", "order_id", "shipped_at", "delivered_at", "carrier", "tracking_number",
                  "updated_at"],
    "carts": ["cart_id", "customer_id", "created_at", "status", "product_id", "quantity", "amount", "updated_at"],
    "consents": ["customer_id", "channel", "status", "consented_at", "withdrawn_at", "updated_at"],
}
for _table, _columns in CARRIED.items():  # the export format is the authority on names and order
    _spec = EXPORT_FILES_BY_TABLE[_table].column_names
    assert [c for c in _spec if c in _columns] == _columns, _table


class Staging:
    """Per-kind JSON-lines files the pull appends records to, one line each."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, IO[str]] = {}
        self.counts: dict[str, int] = dict.fromkeys(STAGING, 0)
        self._seq = 0

    def add(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        for kind, record in records:
            if kind == "checkout_line":
                self._seq += 1
                record = {**record, "seq": self._seq}  # arrival order: a checkout's first line is its lowest
            fh = self._files.get(kind)
            if fh is None:
                fh = self._files[kind] = (self.folder / f"{kind}.jsonl").open("w", encoding="utf-8")
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.counts[kind] += 1

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()


@dataclass
class NightFiles:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows written
    notes: list[str] = field(default_factory=list)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _load_staging(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    for kind, columns in STAGING.items():
        path = folder / f"{kind}.jsonl"
        spec = "{" + ", ".join(f"{_literal(c)}: {_literal(t)}" for c, t in columns.items()) + "}"
        if path.exists() and path.stat().st_size:
            source = f"read_json({_literal(str(path))}, format = 'newline_delimited', columns = {spec})"
        else:
            source = "(select " + ", ".join(f"null::{t} as {c}" for c, t in columns.items()) + " limit 0)"
        con.execute(f"create or replace table staged_{kind} as select * from {source}")


#: kizuna table -> the query producing its rows (columns as in CARRIED).
_SQL = {
    "customers": """
        select customer_id, last_name, first_name, email, phone, postal_code, prefecture, city, address_line,
               registered_at, updated_at
        from cust order by customer_id""",
    "consents": """
        with states as (
            select customer_id, 'email' as channel, email_state as state, email_at as at, updated_at
            from cust where email_state is not null
            union all
            select customer_id, 'sms', sms_state, sms_at, updated_at from cust where sms_state is not null)
        select s.customer_id, s.channel,
               case when s.state = 'SUBSCRIBED' then 'granted' else 'withdrawn' end as status,
               case when s.state = 'SUBSCRIBED' then s.at else o.consented_at end as consented_at,
               case when s.state = 'SUBSCRIBED' then null else coalesce(s.at, s.updated_at) end as withdrawn_at,
               coalesce(s.at, s.updated_at) as updated_at
        from states s left join known_consents o on o.customer_id = s.customer_id and o.channel = s.channel
        -- no consent and none recorded before: no row ("no row means no consent")
        where (s.state = 'SUBSCRIBED' or o.consented_at is not null)
          -- a version kizuna holds already is not sent again
          and (o.updated_at is null or o.updated_at < coalesce(s.at, s.updated_at))
        order by s.customer_id, s.channel""",
    "products": """
        select product_id, sku, product_name, product_type, list_price, unit_cost, is_subscription_eligible, updated_at
        from variants where in_window order by product_id""",
    "orders": """
        with kinds as (
            select l.order_id, bool_or(l.selling_plan) as subscription, bool_or(v.product_type = 'trial') as trial
            from lines l left join variants v using (product_id) group by l.order_id)
        select o.order_id, o.customer_id, o.ordered_at, o.status,
               case when k.subscription then 'subscription' when k.trial then 'trial' else 'one_off' end
                   as order_kind,
               o.media_code, o.coupon_code, o.subtotal, o.discount, o.shipping_fee, o.total, o.payment_method,
               o.updated_at
        from ords o left join kinds k using (order_id) order by o.order_id""",
    "order_lines": """
        select l.order_line_id, l.order_id, l.product_id, l.quantity, l.unit_price, l.line_amount, o.updated_at
        from lines l join ords o using (order_id) order by l.order_line_id""",
    "shipments": """
        select f.shipment_id, f.order_id, f.shipped_at, f.delivered_at, f.carrier, f.tracking_number, f.updated_at
        from staged_fulfillment f left join known_shipments k using (shipment_id)
        where k.updated_at is null or k.updated_at < f.updated_at  -- a version kizuna holds is not sent again
        qualify row_number() over (partition by f.shipment_id order by f.updated_at desc nulls last) = 1
        order by f.shipment_id""",
    "carts": """
        with first_lines as (
            select cart_id, arg_min(product_id, seq) as product_id, arg_min(quantity, seq) as quantity
            from staged_checkout_line group by cart_id)
        select c.cart_id, c.customer_id, c.created_at, c.status, f.product_id, f.quantity, c.amount, c.updated_at
        from chk c left join first_lines f using (cart_id)
        where c.customer_id is not null order by c.cart_id""",
}


def write_night(staging: Path, out_dir: Path, known: Path | None, work: Path) -> NightFiles:
    """kizuna's CSV files for the night from the staged records and what the warehouse holds (`known`:
    the source's snapshot); returns rows per table and notes."""
    result = NightFiles()
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"set temp_directory = {_literal(str(work))}")
        con.execute("set memory_limit = '1GB'")
        con.execute("set preserve_insertion_order = false")
        _load_staging(con, staging)
        newest = "qualify row_number() over (partition by {key} order by updated_at desc nulls last) = 1"
        con.execute(f"create table cust as select * from staged_customer {newest.format(key='customer_id')}")
        con.execute(f"create table ords as select * from staged_order {newest.format(key='order_id')}")
        con.execute("create table lines as select * from staged_line "
                    "qualify row_number() over (partition by order_line_id) = 1")
        con.execute(f"create table variants as select * from staged_variant {newest.format(key='product_id')}")
        con.execute(f"create table chk as select * from staged_checkout {newest.format(key='cart_id')}")
        _load_known(con, known)
        for table in CARRIED:
            rows = con.execute(f"select count(*) from ({_SQL[table]})").fetchone()[0]
            if not rows:
                continue
            path = out_dir / f"{table}.csv"
            con.execute(f"copy ({_SQL[table]}) to {_literal(str(path))} (header, delimiter ',', quote '\"')")
            result.rows[table] = rows
        result.notes += _notes(con)
    finally:
        con.close()
    return result


_KNOWN = {
    "consents": "customer_id varchar, channel varchar, consented_at varchar, updated_at varchar",
    "shipments": "shipment_id varchar, updated_at varchar",
}


def _load_known(con: duckdb.DuckDBPyConnection, known: Path | None) -> None:
    """The warehouse's snapshot as tables `known_<table>`, times as export-format text (empty: first load)."""
    for table, columns in _KNOWN.items():
        path = known / f"{table}.parquet" if known is not None else None
        if path is not None and path.exists():
            names = [c.split()[0] for c in columns.split(", ")]
            select = ", ".join(f"strftime({n}, '%Y-%m-%d %H:%M:%S') as {n}" if n.endswith("_at") else n
                               for n in names)
            con.execute(f"create table known_{table} as select {select} from read_parquet({_literal(str(path))})")
        else:
            con.execute(f"create table known_{table} ({columns})")


def _notes(con: duckdb.DuckDBPyConnection) -> list[str]:
    """What the night's data holds that kizuna cannot use as it is, one sentence each."""
    notes = []
    guests = con.execute("select count(*) from chk where customer_id is null").fetchone()[0]
    if guests:
        notes.append(f"carts: {guests} abandoned checkout(s) of guests (no customer account) not loaded: kizuna's "
                     "carts belong to customers it can contact")
    orphans = con.execute("select count(*) from lines anti join ords using (order_id)").fetchone()[0]
    if orphans:
        notes.append(f"order_lines: {orphans} line item(s) whose order was not in the same pull were not loaded")
    no_cost = con.execute("select count(*), min(sku) from variants where in_window and unit_cost is null").fetchone()
    if no_cost[0]:
        notes.append(f"products: {no_cost[0]} variant(s) without a cost per item in Shopify (e.g. SKU {no_cost[1]}); "
                     "the loader quarantines them (unit_cost is required): set 'Cost per item' on the variant in "
                     "Shopify and the next night brings it")
    return notes

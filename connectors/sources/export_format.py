"""The nightly CSV export format: every file, column, type, key and meaning.

This module is the single definition of the format. The demo shop generator writes
it, the CSV connector reads and validates it, the raw tables in DuckDB are created
from it, and `docs/export-format.md` is generated from it (`kizuna docs export-format`),
so the three can never drift apart.

One export is a folder named for the night it covers (`YYYY-MM-DD`), holding one CSV
file per table with the rows created or updated that day (JST). The first export a
shop sends is usually a full one: the same files holding its whole history.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Logical column types and the DuckDB type each is stored as in the `raw` schema.
DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "boolean": "BOOLEAN",
}

#: How each logical type is written in the CSV files.
TYPE_FORMATS: dict[str, str] = {
    "string": "text; empty means null",
    "integer": "decimal digits, optional leading minus; money in whole yen",
    "date": "`YYYY-MM-DD`",
    "timestamp": "`YYYY-MM-DD HH:MM:SS`, Japan time (Asia/Tokyo), no offset",
    "boolean": "`true`/`false` (also accepted: `1`/`0`)",
}

CHANNELS = ("email", "line", "sms", "dm", "phone")
ORDER_STATUSES = ("confirmed", "cancelled", "returned")
ORDER_KINDS = ("trial", "one_off", "subscription")
SUBSCRIPTION_STATUSES = ("active", "paused", "cancelled")
CART_STATUSES = ("open", "abandoned", "converted")
CONSENT_STATUSES = ("granted", "withdrawn")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool
    description: str

    @property
    def duckdb_type(self) -> str:
        return DUCKDB_TYPES[self.type]


@dataclass(frozen=True)
class ExportFile:
    """One CSV file of a nightly export and the raw table it loads into."""

    table: str
    primary_key: tuple[str, ...]
    description: str
    columns: tuple[Column, ...]

    @property
    def file_name(self) -> str:
        return f"{self.table}.csv"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.file_name} has no column {name!r}")


def _c(name: str, type_: str, required: bool, description: str) -> Column:
    return Column(name, type_, required, description)


_UPDATED_AT = _c(
    "updated_at", "timestamp", True,
    "When the row was created or last changed in the cart system. Of two versions of "
    "the same key, the one with the newest `updated_at` wins.",
)

EXPORT_FILES: tuple[ExportFile, ...] = (
    ExportFile(
        "customers", ("customer_id",),
        "One row per registered customer (members; guest orders get a customer row too).",
        (
            _c("customer_id", "string", True, "Customer key in the cart system."),
            _c("last_name", "string", True, "Family name (姓), kanji."),
            _c("first_name", "string", True, "Given name (名), kanji."),
            _c("last_name_kana", "string", False, "Family name in katakana (セイ)."),
            _c("first_name_kana", "string", False, "Given name in katakana (メイ)."),
            _c("gender", "string", False, "`female`, `male` or `unknown`."),
            _c("birth_date", "date", False, "Date of birth, when the customer gave it."),
            _c("email", "string", False, "E-mail address."),
            _c("phone", "string", False, "Phone number as entered (mobile numbers start 070/080/090)."),
            _c("postal_code", "string", False, "Postal code, `NNN-NNNN`."),
            _c("prefecture", "string", False, "Prefecture (都道府県)."),
            _c("city", "string", False, "City, ward, town or village (市区町村)."),
            _c("address_line", "string", False, "Rest of the address: block, building, room."),
            _c("line_user_id", "string", False,
               "LINE user id (`U` + 32 hex digits) when the customer follows the shop's LINE account."),
            _c("registered_at", "timestamp", True, "When the customer registered (or first ordered as a guest)."),
            _c("deleted_at", "timestamp", False,
               "When the customer asked for their data to be erased (APPI); such customers are never contacted."),
            _UPDATED_AT,
        ),
    ),
    ExportFile(
        "products", ("product_id",),
        "The shop's products with list price and unit cost.",
        (
            _c("product_id", "string", True, "Product key."),
            _c("sku", "string", True, "Stock-keeping unit code."),
            _c("product_name", "string", True, "Product name."),
            _c("product_type", "string", True, "`trial` (first-purchase offer), `main` or `gift`."),
            _c("list_price", "integer", True, "List price in yen, tax included."),
            _c("unit_cost", "integer", True, "Cost of goods per unit in yen."),
            _c("is_subscription_eligible", "boolean", True, "Whether it can be bought by subscription (定期)."),
            _c("days_per_unit", "integer", False,
               "How many days one unit lasts at the recommended use (30 for a 30-day pack); optional, empty when "
               "it does not apply. With it kizuna knows when a customer's product runs out (the `run_out` "
               "scenario anchor, docs/anchors.md)."),
            _UPDATED_AT,
        ),
    ),
    ExportFile(
        "media", ("media_code",),
        "Acquisition media: the ads, affiliates and campaigns whose code orders carry.",
        (
            _c("media_code", "string", True, "Media code as carried by orders (広告媒体コード)."),
            _c("media_name", "string", True, "Human name of the medium."),
            _c("media_type", "string", True, "`affiliate`, `search`, `social`, `line_ads`, `print`, `organic`, ..."),
            _UPDATED_AT,
        ),
    ),
    ExportFile(
        "ad_spend", ("media_code", "spend_month"),
        "Advertising spend per medium and month.",
        (
            _c("media_code", "string", True, "Medium the money was spent on."),
            _c("spend_month", "date", True, "First day of the month."),
            _c("amount", "integer", True, "Spend in yen, tax excluded."),
            _UPDATED_AT,
        ),
    ),
    ExportFile(
        "orders", ("order_id",),
        "One row per order, including cancelled and returned ones. A later cancellation or "
        "return arrives as a new version of the same order with a newer `updated_at`.",
        (
            _c("order_id", "string", True, "Order key."),
            _c("customer_id", "string", True, "Who ordered."),
            _c("ordered_at", "timestamp", True, "When the order was placed."),
            _c("status", "string", True, "`confirmed`, `cancelled` or `returned`."),
            _c("order_kind", "string", True,
               "`trial` (trial offer), `one_off` (regular purchase) or `subscription` (a delivery of a 定期 subscription)."),
            _c("subscription_id", "string", False, "The subscription this delivery belongs to."),
            _c("delivery_number", "integer", False, "For subscription deliveries: 1 for the first, 2 for the second, ..."),
            _c("media_code", "string", False, "Acquisition medium the order came through (landing-page parameter)."),
            _c("coupon_code", "string", False, "Coupon used, if any."),
            _c("subtotal", "integer", True, "Sum of the order lines in yen."),
            _c("discount", "integer", True, "Discount in yen (0 when none)."),
            _c("shipping_fee", "integer", True, "Shipping fee charged to the customer in yen."),
            _c("total", "integer", True, "Amount charged: subtotal - discount + shipping_fee."),
            _c("payment_method", "string", False, "`credit_card`, `cod`, `convenience_store`, `carrier`, ..."),
            _UPDATED_AT,
        ),
    ),
    ExportFile(
        "order_lines", ("order_line_id",),
        "The products in each order.",
        (
            _c("order_line_id", "string", True, "Order line key."),
            _c("order_id", "string", True, "Order the line belongs to."),
            _c("product_id", "string", True, "Product bought."),
            _c("quantity", "integer", True, "Units."),
            _c("unit_price", "integer", True, "Price per unit in yen, as charged."),
            _c("line_amount", "integer", True, "quantity x unit_price, in yen."),
            _UPDATED_AT,
        ),
    ),
    ExportFile(
        "subscriptions", ("subscription_id",),
        "Subscriptions (定期購入): a product delivered every `interval_days` until cancelled.",
        (
            _c("subscription_id", "string", True, "Subscription key."),
            _c("customer_id", "string", True, "Subscriber."),
            _c("product_id", "string", True, "Product delivered."),
            _c("started_at", "timestamp", True, "When the subscription was taken out."),
            _c("interval_days", "integer", True, "Days between deliveries."),
            _c("status", "string", True, "`active`, `paused` or `cancelled`."),
            _c("cancelled_at", "timestamp", False, "When it was cancelled."),
            _c("cancel_reason", "string", False, "Reason given: `price`, `surplus_stock`, `no_effect`, `other`."),
            _UPDATED_AT,
        ),
    ),
    ExportFile(
        "shipments", ("shipment_id",),
        "Parcels sent for orders, with shipped and delivered dates.",
        (
            _c("shipment_id", "string", True, "Shipment key."),
            _c("order_id", "string", True, "Order shipped."),
            _c("shipped_at", "timestamp", False, "When the parcel left the warehouse."),
            _c("delivered_at", "timestamp", False, "When the carrier reported it delivered."),
            _c("carrier", "string", False, "Carrier name."),
            _c("tracking_number", "string", False, "Carrier tracking number."),
            _UPDATED_AT,
        ),
    ),
    ExportFile(
        "carts", ("cart_id",),
        "Carts of logged-in customers: open, abandoned (left without ordering) or converted.",
        (
            _c("cart_id", "string", True, "Cart key."),
            _c("customer_id", "string", True, "Whose cart."),
            _c("created_at", "timestamp", True, "When the first item was put in."),
            _c("status", "string", True, "`open`, `abandoned` or `converted`."),
            _c("product_id", "string", True, "Main product in the cart."),
            _c("quantity", "integer", True, "Units."),
            _c("amount", "integer", True, "Cart value in yen."),
            _c("order_id", "string", False, "The order it became, when converted."),
            _UPDATED_AT,
        ),
    ),
    ExportFile(
        "consents", ("customer_id", "channel"),
        "Marketing consent per customer and channel, with when it was given or withdrawn. "
        "No row means no consent.",
        (
            _c("customer_id", "string", True, "Customer."),
            _c("channel", "string", True, "`email`, `line`, `sms`, `dm` (printed mail) or `phone`."),
            _c("status", "string", True, "`granted` or `withdrawn`."),
            _c("consented_at", "timestamp", True, "When consent was given (kept as evidence of opt-in)."),
            _c("withdrawn_at", "timestamp", False, "When it was withdrawn."),
            _c("source", "string", False, "Where it was given: `checkout`, `mypage`, `line_follow`, `phone`, ..."),
            _UPDATED_AT,
        ),
    ),
    ExportFile(
        "survey_responses", ("response_id",),
        "Answers to the post-purchase survey.",
        (
            _c("response_id", "string", True, "Response key."),
            _c("customer_id", "string", True, "Who answered."),
            _c("answered_at", "timestamp", True, "When."),
            _c("satisfaction", "integer", True, "Satisfaction, 1 (low) to 5 (high)."),
            _c("intention_to_continue", "integer", True, "Intention to keep buying, 1 (low) to 5 (high)."),
            _c("comment", "string", False, "Free text."),
            _UPDATED_AT,
        ),
    ),
)

EXPORT_FILES_BY_TABLE: dict[str, ExportFile] = {f.table: f for f in EXPORT_FILES}

ENCODINGS = ("utf-8", "cp932")

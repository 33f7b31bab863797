"""Shopify's objects, one at a time, as the flat records kizuna's tables are made of.

Each function takes one node as the Admin GraphQL API returns it (a page's node, or one line
of a bulk operation's JSONL file) and returns plain records; nothing here holds more than one
object. The joins between objects (an order's kind from its lines, a line's time from its
order, a cart's product from its first line) are SQL over the records (`transform.py`).

The rules (docs/sources/shopify.md repeats them for people):

* **Ids**: the number at the end of a global id, which is the resource's legacy (REST) id:
  `gid://shopify/Order/450789469` -> `450789469`. Every key and reference uses it.
* **Times**: Shopify's ISO 8601 UTC times as the shop's wall clock (`KIZUNA_TIMEZONE`,
  Asia/Tokyo), `YYYY-MM-DD HH:MM:SS`, kizuna's export format.
* **Money**: the shop-currency amount (`shopMoney.amount`) in whole yen (`"4980.0"` -> `4980`).
  An amount with a fraction is passed on as written, and the loader quarantines the row.
* **Phone**: Shopify keeps E.164 (`+819012345678`); a Japanese number is written the way
  Japanese shops write it, with the trunk 0 and without separators (`09012345678`); any
  other country's number stays in E.164.
* **Prefecture**: from the address's ISO 3166-2 code (`JP-13` -> 東京都); without a Japanese
  code, the province name as Shopify gives it.
* **Address**: `address1`, then `address2` after one space.
* **Medium** (`orders.media_code`): from the order's first visit
  (`customerJourneySummary.firstVisit`): its `utmParameters`, or else the `utm_source` /
  `utm_campaign` query parameters of its `landingPage` URL; `<source>_<campaign>` when both
  are set, the one that is set otherwise, none without UTM parameters (an organic or direct
  visit has no medium code; an order without a recorded visit neither).
* **Order status**: `cancelled` when `cancelledAt` is set; else `returned` when the order is
  fully refunded (`displayFinancialStatus` REFUNDED); else `confirmed`. A partial refund
  leaves the order `confirmed` (kizuna has no partial return).
* **Consent**: marketing state SUBSCRIBED is `granted` (at `consentUpdatedAt`); every other
  state (UNSUBSCRIBED, NOT_SUBSCRIBED, PENDING, REDACTED, INVALID) is no consent.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

#: ISO 3166-2:JP code -> (prefecture as Japanese addresses write it, its name in Shopify's English).
JP_PREFECTURES: dict[str, tuple[str, str]] = {
    "JP-01": ("北海道", "Hokkaido"), "JP-02": ("青森県", "Aomori"), "JP-03": ("岩手県", "Iwate"),
    "JP-04": ("宮城県", "Miyagi"), "JP-05": ("秋田県", "Akita"), "JP-06": ("山形県", "Yamagata"),
    "JP-07": ("福島県", "Fukushima"), "JP-08": ("茨城県", "Ibaraki"), "JP-09": ("栃木県", "Tochigi"),
    "JP-10": ("群馬県", "Gunma"), "JP-11": ("埼玉県", "Saitama"), "JP-12": ("千葉県", "Chiba"),
    "JP-13": ("東京都", "Tokyo"), "JP-14": ("神奈川県", "Kanagawa"), "JP-15": ("新潟県", "Niigata"),
    "JP-16": ("富山県", "Toyama"), "JP-17": ("石川県", "Ishikawa"), "JP-18": ("福井県", "Fukui"),
    "JP-19": ("山梨県", "Yamanashi"), "JP-20": ("長野県", "Nagano"), "JP-21": ("岐阜県", "Gifu"),
    "JP-22": ("静岡県", "Shizuoka"), "JP-23": ("愛知県", "Aichi"), "JP-24": ("三重県", "Mie"),
    "JP-25": ("滋賀県", "Shiga"), "JP-26": ("京都府", "Kyoto"), "JP-27": ("大阪府", "Osaka"),
    "JP-28": ("兵庫県", "Hyogo"), "JP-29": ("奈良県", "Nara"), "JP-30": ("和歌山県", "Wakayama"),
    "JP-31": ("鳥取県", "Tottori"), "JP-32": ("島根県", "Shimane"), "JP-33": ("岡山県", "Okayama"),
    "JP-34": ("広島県", "Hiroshima"), "JP-35": ("山口県", "Yamaguchi"), "JP-36": ("徳島県", "Tokushima"),
    "JP-37": ("香川県", "Kagawa"), "JP-38": ("愛媛県", "Ehime"), "JP-39": ("高知県", "Kochi"),
    "JP-40": ("福岡県", "Fukuoka"), "JP-41": ("佐賀県", "Saga"), "JP-42": ("長崎県", "Nagasaki"),
    "JP-43": ("熊本県", "Kumamoto"), "JP-44": ("大分県", "Oita"), "JP-45": ("宮崎県", "Miyazaki"),
    "JP-46": ("鹿児島県", "Kagoshima"), "JP-47": ("沖縄県", "Okinawa"),
}

_GID = re.compile(r"^gid://shopify/([A-Za-z]+)/([^?/]+)")


def gid_type(gid: str | None) -> str | None:
    m = _GID.match(gid or "")
    return m.group(1) if m else None


def legacy_id(gid: str | None) -> str | None:
    """`gid://shopify/Order/450789469` -> `450789469` (None for no id)."""
    if not gid:
        return None
    m = _GID.match(gid)
    return m.group(2) if m else gid


class Clock:
    """Shopify's UTC times as the shop's wall clock (kizuna's export format)."""

    def __init__(self, tz: str) -> None:
        self.zone = ZoneInfo(tz)

    def local(self, value: str | None) -> str | None:
        if not value:
            return None
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:  # Shopify always sends an offset; a bare time is taken as UTC
            at = at.replace(tzinfo=timezone.utc)
        return at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")


def yen(money: Any) -> str | None:
    """A `MoneyBag`/`MoneyV2` (or a bare `Money` string) as whole yen; a fraction is kept as written."""
    if isinstance(money, dict):
        money = (money.get("shopMoney") or money).get("amount")
    if money is None:
        return None
    try:
        amount = Decimal(str(money))
    except InvalidOperation:
        return str(money)
    return str(int(amount)) if amount == amount.to_integral_value() else str(money)


def phone(value: str | None) -> str | None:
    if not value:
        return None
    digits = re.sub(r"[^0-9+]", "", value)
    if digits.startswith("+81"):
        return "0" + digits[3:]
    return value


def prefecture(address: dict[str, Any] | None) -> str | None:
    if not address:
        return None
    code = address.get("provinceCode") or ""
    if code in JP_PREFECTURES:
        return JP_PREFECTURES[code][0]
    if code.isdigit() and f"JP-{int(code):02d}" in JP_PREFECTURES:  # a bare number, as some apps store it
        return JP_PREFECTURES[f"JP-{int(code):02d}"][0]
    return address.get("province") or None


def _clean(value: Any) -> str | None:
    text = (value or "").strip() if isinstance(value, str) else ""
    return text or None


def media_code(journey: dict[str, Any] | None) -> str | None:
    """The medium code of an order from its first visit's UTM parameters (rule in the module docstring)."""
    visit = (journey or {}).get("firstVisit") or {}
    utm = visit.get("utmParameters") or {}
    source, campaign = _clean(utm.get("source")), _clean(utm.get("campaign"))
    if not (source or campaign) and visit.get("landingPage"):
        query = parse_qs(urlsplit(visit["landingPage"]).query)
        source = _clean((query.get("utm_source") or [None])[0])
        campaign = _clean((query.get("utm_campaign") or [None])[0])
    if source and campaign:
        return f"{source}_{campaign}"
    return source or campaign


def order_status(node: dict[str, Any]) -> str:
    if node.get("cancelledAt"):
        return "cancelled"
    if node.get("displayFinancialStatus") == "REFUNDED":
        return "returned"
    return "confirmed"


def product_type(value: str | None) -> str:
    """Shopify's free-text product type as kizuna's: `trial` or `gift` when it says so, else `main`."""
    text = (value or "").strip().lower()
    return text if text in ("trial", "gift", "main") else "main"


# -- one node -> records -------------------------------------------------------------------------

Records = list[tuple[str, dict[str, Any]]]  # (staging table, record)


def customer(node: dict[str, Any], clock: Clock) -> Records:
    address = node.get("defaultAddress") or {}
    line = " ".join(p for p in (_clean(address.get("address1")), _clean(address.get("address2"))) if p) or None
    email = node.get("emailMarketingConsent") or {}
    sms = node.get("smsMarketingConsent") or {}
    return [("customer", {
        "customer_id": legacy_id(node.get("id")),
        "last_name": node.get("lastName"),
        "first_name": node.get("firstName"),
        "email": node.get("email"),
        "phone": phone(node.get("phone")),
        "postal_code": address.get("zip"),
        "prefecture": prefecture(address),
        "city": address.get("city"),
        "address_line": line,
        "registered_at": clock.local(node.get("createdAt")),
        "updated_at": clock.local(node.get("updatedAt")),
        "email_state": email.get("marketingState") if node.get("emailMarketingConsent") else None,
        "email_at": clock.local(email.get("consentUpdatedAt")),
        "sms_state": sms.get("marketingState") if node.get("smsMarketingConsent") else None,
        "sms_at": clock.local(sms.get("consentUpdatedAt")),
    })]


def order(node: dict[str, Any], clock: Clock) -> Records:
    order_id = legacy_id(node.get("id"))
    codes = [c for c in node.get("discountCodes") or [] if c]
    gateways = [g for g in node.get("paymentGatewayNames") or [] if g]
    out: Records = [("order", {
        "order_id": order_id,
        "customer_id": legacy_id((node.get("customer") or {}).get("id")),
        "ordered_at": clock.local(node.get("processedAt") or node.get("createdAt")),
        "status": order_status(node),
        "media_code": media_code(node.get("customerJourneySummary")),
        "coupon_code": codes[0] if codes else None,
        "subtotal": _subtotal(node),
        "discount": yen(node.get("totalDiscountsSet")) or "0",
        "shipping_fee": yen(node.get("totalShippingPriceSet")) or "0",
        "total": yen(node.get("totalPriceSet")),
        "payment_method": gateways[0] if gateways else None,
        "updated_at": clock.local(node.get("updatedAt")),
    })]
    for f in node.get("fulfillments") or []:
        tracking = (f.get("trackingInfo") or [{}])[0] or {}
        out.append(("fulfillment", {
            "shipment_id": legacy_id(f.get("id")),
            "order_id": order_id,
            "shipped_at": clock.local(f.get("createdAt")),
            "delivered_at": clock.local(f.get("deliveredAt")),
            "carrier": _clean(tracking.get("company")),
            "tracking_number": _clean(tracking.get("number")),
            "updated_at": clock.local(f.get("updatedAt") or f.get("createdAt")),
        }))
    return out


def _subtotal(node: dict[str, Any]) -> str | None:
    """kizuna's subtotal is before discounts; Shopify's `subtotalPriceSet` is after them."""
    after, discount = yen(node.get("subtotalPriceSet")), yen(node.get("totalDiscountsSet")) or "0"
    try:
        return str(int(after) + int(discount)) if after is not None else None
    except ValueError:  # a fraction: passed on as written, the loader quarantines it with the reason
        return after


def line_item(node: dict[str, Any], parent_gid: str | None) -> Records:
    return [("line", {
        "order_line_id": legacy_id(node.get("id")),
        "order_id": legacy_id(parent_gid),
        "product_id": legacy_id((node.get("variant") or {}).get("id")),
        "quantity": node.get("quantity"),
        "unit_price": yen(node.get("originalUnitPriceSet")),
        "line_amount": yen(node.get("originalTotalSet")),
        "selling_plan": node.get("sellingPlan") is not None,
    })]


def variant(node: dict[str, Any], clock: Clock) -> Records:
    product = node.get("product") or {}
    item = node.get("inventoryItem") or {}
    title = _clean(product.get("title")) or ""
    own = _clean(node.get("title"))
    name = f"{title} - {own}" if own and own != "Default Title" else title
    times = [t for t in (node.get("updatedAt"), product.get("updatedAt"), item.get("updatedAt")) if t]
    latest = max(times, key=lambda t: datetime.fromisoformat(t)) if times else None
    return [("variant", {
        "product_id": legacy_id(node.get("id")),
        "sku": node.get("sku"),
        "product_name": name or None,
        "product_type": product_type(product.get("productType")),
        "list_price": yen(node.get("price")),
        "unit_cost": yen(item.get("unitCost")),
        "is_subscription_eligible": "true" if ((node.get("sellingPlanGroupsCount") or {}).get("count") or 0) > 0
        else "false",
        "updated_at": clock.local(latest),
    })]


def checkout(node: dict[str, Any], clock: Clock) -> Records:
    return [("checkout", {
        "cart_id": legacy_id(node.get("id")),
        "customer_id": legacy_id((node.get("customer") or {}).get("id")),
        "created_at": clock.local(node.get("createdAt")),
        "status": "converted" if node.get("completedAt") else "abandoned",
        "amount": yen(node.get("totalLineItemsPriceSet")),
        "updated_at": clock.local(node.get("updatedAt")),
    })]


def checkout_line(node: dict[str, Any], parent_gid: str | None) -> Records:
    return [("checkout_line", {
        "cart_id": legacy_id(parent_gid),
        "product_id": legacy_id((node.get("variant") or {}).get("id")),
        "quantity": node.get("quantity"),
    })]

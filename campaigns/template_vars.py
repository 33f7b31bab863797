"""The one definition of what a message template may use: variables, filters, and their samples.

Three things are made from it, so they cannot disagree:

- the renderer's context (`campaigns.render.Renderer` passes a customer exactly these fields,
  so a template sees the same names in a check as in a real send);
- the complete sample customer `kizuna campaigns validate` renders every step with;
- `docs/templates.md` (`kizuna docs templates`; a test checks the committed file is current).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

WEEKDAYS_JA = "月火水木金土日"


@dataclass(frozen=True)
class Variable:
    name: str  # as written in a template, e.g. customer.last_name
    kind: str  # 文字列 / 日付 / 数値 / ...
    description: str
    sample: Any = None  # what `kizuna campaigns validate` uses; None: built from the step or settings
    example: str = ""  # how it reads, for the doc (default: the sample)


#: Fields of the customer row (marts.dim_customers) a template may use. The engine selects
#: these for every message (campaigns/engine.py `_CUSTOMER_FIELDS`, a test checks).
CUSTOMER: tuple[Variable, ...] = (
    Variable("customer.customer_id", "文字列", "顧客ID (the shop's customer id).", "C00012345"),
    Variable("customer.last_name", "文字列", "姓 (family name).", "山田"),
    Variable("customer.first_name", "文字列", "名 (given name).", "花子"),
    Variable("customer.email", "文字列 / なし", "メールアドレス.", "hanako.yamada@example.jp"),
    Variable("customer.line_user_id", "文字列 / なし", "LINE のユーザーID (LINE channel only has one for sure).",
             "U4af4980629a4f0b1c2d3e4f5a6b7c8d9"),
    Variable("customer.phone", "文字列 / なし", "電話番号.", "090-1234-5678"),
    Variable("customer.postal_code", "文字列 / なし", "郵便番号.", "150-0001"),
    Variable("customer.prefecture", "文字列 / なし", "都道府県.", "東京都"),
    Variable("customer.city", "文字列 / なし", "市区町村.", "渋谷区"),
    Variable("customer.address_line", "文字列 / なし", "番地・建物名.", "神宮前1-2-3 絆ビル201"),
)
CUSTOMER_FIELDS: tuple[str, ...] = tuple(v.name.split(".", 1)[1] for v in CUSTOMER)

OTHERS: tuple[Variable, ...] = (
    Variable("offer", "特典 / なし", "The step's offer (`offer:` in the scenario file); none when the step has "
             "none: guard with `{% if offer %}`. Using `offer.x` in a step without an offer is an error."),
    Variable("offer.type", "文字列", "percent_off, yen_off, free_shipping, gift or points.", example="percent_off"),
    Variable("offer.value", "数値 / なし", "The amount: percent, yen or points.", example="20.0"),
    Variable("offer.label", "文字列 / なし", "How the offer reads, when the scenario file gives it.",
             example="定期初回お届け半額"),
    Variable("offer.headline", "文字列", "The label, else worded from type and value: `20%OFF`, `300円OFF`, "
             "`送料無料`, `100ポイント`, `プレゼント`.", example="20%OFF"),
    Variable("offer.code", "文字列 / なし", "The coupon code: the customer's own single-use code when one was "
             "issued for this send, else the step's fixed `code`.", example="WINBACK20"),
    Variable("offer.expires_on", "日付 / なし", "Last day the offer is valid: the issued coupon's expiry, else the "
             "send date + `expires_in_days`. Write `{{ offer.expires_on | jdate }}`.", example="2026-12-24"),
    Variable("offer.expires_in_days", "数値 / なし", "Days the offer is valid, from the scenario file.",
             example="30"),
    Variable("brand.shop_name", "文字列", "The shop's name (KIZUNA_BRAND_SHOP_NAME)."),
    Variable("brand.shop_url", "URL", "The shop's home page (KIZUNA_BRAND_SHOP_URL)."),
    Variable("brand.logo_url", "URL", "The logo (KIZUNA_BRAND_LOGO_URL); may be empty."),
    Variable("brand.product_image_url", "URL", "The product picture (KIZUNA_BRAND_PRODUCT_IMAGE_URL); may be empty."),
    Variable("brand.product_name", "文字列", "The product's name (KIZUNA_BRAND_PRODUCT_NAME)."),
    Variable("brand.primary_color", "色", "Buttons and headings (KIZUNA_BRAND_PRIMARY_COLOR)."),
    Variable("brand.accent_color", "色", "Offer boxes (KIZUNA_BRAND_ACCENT_COLOR)."),
    Variable("links.shop", "URL", "The shop's home page. Tagged with UTM parameters when sent."),
    Variable("links.cart", "URL", "The customer's cart (KIZUNA_BRAND_CART_URL). Tagged when sent."),
    Variable("links.product", "URL", "The product page (KIZUNA_BRAND_PRODUCT_URL). Tagged when sent."),
    Variable("unsubscribe_url", "URL", "This recipient's unsubscribe link (never tagged). The footer carries it "
             "already; a template may repeat it."),
    Variable("sender.name", "文字列", "The legal sender (KIZUNA_SENDER_NAME); the footer carries it."),
    Variable("sender.address", "文字列", "The sender's postal address (KIZUNA_SENDER_ADDRESS)."),
    Variable("sender.contact", "文字列", "The sender's contact (KIZUNA_SENDER_CONTACT)."),
    Variable("sender.email", "文字列", "The From address (KIZUNA_SENDER_EMAIL)."),
    Variable("step.id", "文字列", "The step's id in its scenario.", example="d180_winback_mail"),
    Variable("step.scenario_id", "文字列", "The scenario's id.", example="dormant_reactivation"),
    Variable("step.day", "数値", "Days after the anchor event.", example="180"),
    Variable("step.channel", "文字列", "email, line, sms, dm, phone or insert.", example="email"),
    Variable("send_date", "日付", "The day the message goes out. `{{ send_date | jdate }}`.", example="2026-11-24"),
)

VARIABLES: tuple[Variable, ...] = CUSTOMER + OTHERS


def sample_customer(scenario_id: str = "sample_scenario", step_id: str = "sample_step") -> dict[str, Any]:
    """A complete customer row as the engine passes it: every field a template may use, filled."""
    row = {v.name.split(".", 1)[1]: v.sample for v in CUSTOMER}
    return {**row, "scenario_id": scenario_id, "step_id": step_id}


# ---------------------------------------------------------------- filters

def jdate(value: date | str | None, weekday: bool = True) -> str:
    """A date as Japanese write it: 2026年12月30日(水). None: empty."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    text = f"{value.year}年{value.month}月{value.day}日"
    return f"{text}({WEEKDAYS_JA[value.weekday()]})" if weekday else text


def yen(value: int | float | str | Decimal | None) -> str:
    """An amount in yen: 1,980円 (rounded to the yen). None: empty."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value)).quantize(Decimal(1))
    except InvalidOperation:
        raise ValueError(f"yen: {value!r} is not an amount") from None
    return f"{int(amount):,}円"


@dataclass(frozen=True)
class Filter:
    name: str
    description: str
    example: str  # template expression
    args: tuple  # what the example is applied to


FILTERS: tuple[Filter, ...] = (
    Filter("jdate", "日付を和文で (a date in Japanese), with the weekday; `jdate(false)` leaves the weekday out.",
           "{{ offer.expires_on | jdate }}", (date(2026, 12, 30),)),
    Filter("yen", "金額を円で (an amount in yen, with thousands separators).", "{{ 1980 | yen }}", (1980,)),
)
FILTER_FUNCTIONS = {"jdate": jdate, "yen": yen}

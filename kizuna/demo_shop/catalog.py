"""The demo shop's business: what it sells, where it buys customers, how they behave.

A single-product repeat shop (単品リピート通販) selling an aojiru (green juice) powder:
a cheap trial pack brings customers in, the main product is sold one-off and by
subscription (定期, 20% off), a second product is cross-sold and a gift goes into the
third subscription parcel (mystery gift). The numbers are chosen so the analyses in
docs/domain.md find something: media differ in CPO and in how their customers repeat, so
LTV by medium separates good media from bad ones.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    product_id: str
    sku: str
    name: str
    product_type: str
    list_price: int
    unit_cost: int
    subscription_eligible: bool
    #: How many days one unit lasts (the export's optional days_per_unit); None: not exported.
    days_per_unit: int | None = None


TRIAL = Product("P001", "KZ-AOJ-T07", "【初回限定】きずな青汁 お試し7日分", "trial", 980, 260, False)
MAIN = Product("P002", "KZ-AOJ-30", "きずな青汁 30日分", "main", 4980, 1150, True, days_per_unit=30)
CROSS_SELL = Product("P003", "KZ-KRZ-30", "きずな黒酢カプセル 30日分", "main", 3980, 900, True, days_per_unit=30)
GIFT = Product("P004", "KZ-GFT-SHK", "ミステリーギフト 青汁シェイカー", "gift", 0, 180, False)
PRODUCTS: tuple[Product, ...] = (TRIAL, MAIN, CROSS_SELL, GIFT)

#: Subscription deliveries of the main product cost 20% less than a one-off purchase.
SUBSCRIPTION_PRICE = 3980
#: One-off orders below this subtotal pay the shipping fee; trials and subscriptions never do.
FREE_SHIPPING_FROM = 5000
SHIPPING_FEE = 550
#: The subscription delivery whose parcel carries the mystery gift (docs/domain.md, supplement B).
GIFT_DELIVERY = 3


@dataclass(frozen=True)
class Medium:
    """An acquisition medium and the behaviour of the customers it brings.

    The behaviour fields are probabilities per customer; they are what makes LTV
    differ by medium, which is the point of analysing it.
    """

    code: str
    name: str
    media_type: str
    #: Share of new customers at the start of the history, before `trend`.
    share: float
    #: Relative change of that share over the three years (+0.8: grows by 80%).
    trend: float
    #: Acquisition cost per new customer in yen (0 for organic: nothing is paid).
    cpo: int
    #: Mean age of its customers.
    mean_age: float
    #: First order is the trial pack.
    trial: float
    #: First order is already a subscription (定期初回 offer).
    subscription_first: float
    #: Trial buyers who convert to a subscription.
    conversion: float
    #: Non-subscribers who buy a second time (one-off).
    repeat: float
    #: Probability of each further one-off purchase after the second.
    loyalty: float
    #: Mean chance that a subscriber cancels after any one delivery.
    churn: float


MEDIA: tuple[Medium, ...] = (
    Medium("AF_A8", "A8.net アフィリエイト", "affiliate", 0.20, -0.2, 5000, 46, 0.70, 0.12, 0.12, 0.10, 0.40, 0.32),
    Medium("AF_VC", "バリューコマース アフィリエイト", "affiliate", 0.08, 0.0, 4500, 45, 0.75, 0.10, 0.09, 0.08, 0.35, 0.38),
    Medium("SE_GOOGLE", "Google 検索広告", "search", 0.15, 0.0, 7000, 50, 0.50, 0.16, 0.30, 0.18, 0.55, 0.17),
    Medium("SE_YAHOO", "Yahoo! 検索広告", "search", 0.09, -0.3, 6500, 56, 0.50, 0.15, 0.28, 0.18, 0.55, 0.17),
    Medium("SN_INSTA", "Instagram 広告", "social", 0.13, 0.8, 6000, 38, 0.65, 0.08, 0.15, 0.13, 0.45, 0.28),
    Medium("LN_ADS", "LINE 広告", "line_ads", 0.10, 0.6, 5500, 42, 0.60, 0.10, 0.22, 0.16, 0.50, 0.22),
    Medium("PR_NEWS", "新聞折込チラシ", "print", 0.08, -0.4, 9000, 63, 0.45, 0.22, 0.36, 0.24, 0.62, 0.12),
    Medium("ORGANIC", "自然流入（指名検索・口コミ）", "organic", 0.17, 0.2, 0, 50, 0.30, 0.15, 0.25, 0.25, 0.60, 0.15),
)

@dataclass(frozen=True)
class Coupon:
    code: str
    #: Percent off the subtotal.
    percent: int
    #: Fixed yen off.
    yen: int


# Coupons, each used at the moment a scenario of docs/domain.md offers it.
F2_COUPON = Coupon("THANKS500", 0, 500)  # second purchase, from the F2 step mail
CONVERSION_COUPON = Coupon("TEIKI10", 10, 0)  # first subscription delivery, conversion mails
DEEPER_CONVERSION_COUPON = Coupon("TEIKI15", 15, 0)  # ... once the offer deepens (day 27 on)
SUBSCRIBE_AT_ONCE_COUPON = Coupon("HAJIME50", 50, 0)  # a subscription taken out as first order
WINBACK_COUPON = Coupon("WINBACK20", 20, 0)  # a dormant customer coming back
SALE_COUPON = Coupon("SALE10", 10, 0)  # seasonal sale, any one-off order
COUPONS: tuple[Coupon, ...] = (
    F2_COUPON, CONVERSION_COUPON, DEEPER_CONVERSION_COUPON, SUBSCRIBE_AT_ONCE_COUPON, WINBACK_COUPON, SALE_COUPON,
)

#: From this day after the trial order the conversion offer is 15% instead of 10%.
DEEPER_OFFER_FROM_DAY = 27
#: Days after a trial order on which the conversion scenario reaches the customer
#: (package insert on day 2, then the mails of supplement A's scenario).
CONVERSION_TOUCH_DAYS: tuple[int, ...] = (2, 6, 14, 20, 27, 28, 32, 34, 35)

PAYMENT_METHODS: tuple[tuple[str, float], ...] = (
    ("credit_card", 0.58),
    ("cod", 0.12),
    ("convenience_store", 0.12),
    ("carrier", 0.08),
    ("amazon_pay", 0.10),
)

#: Carriers with the tracking-number prefix they use. Trial packs fit the letter box.
PARCEL_CARRIERS: tuple[tuple[str, float], ...] = (("ヤマト運輸", 0.7), ("佐川急便", 0.3))
LETTER_CARRIER = "日本郵便"

CANCEL_REASONS: tuple[str, ...] = ("price", "surplus_stock", "no_effect", "other")

#: Survey comments by satisfaction band (low 1-2, middle 3, high 4-5); no commas, so
#: that the CSV needs no quoting.
SURVEY_COMMENTS: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] = (
    (
        "効果を感じられませんでした",
        "量が多くて余ってしまいます",
        "値段が高いと感じます",
        "味が苦手でした",
        "梱包が過剰だと思います",
    ),
    (
        "まだ効果はよくわかりません",
        "味にもう少し工夫がほしいです",
        "もう少し続けてみます",
        "価格がもう少し安いと嬉しいです",
        "届く間隔を長くできると助かります",
    ),
    (
        "毎朝飲んでいます。調子が良いです",
        "家族にもすすめました",
        "飲みやすくて続けられそうです",
        "届くのが早くて助かります",
        "定期便が便利です",
    ),
)

"""A generated shop written as EC-CUBE 4's own nightly CSV exports (for `KIZUNA_SOURCE=mapped_csv`).

`write_ec_cube_exports(kizuna_exports, out_dir)` reads a shop in kizuna's export format (what
`generate_shop` writes) and writes, for each night folder, what an EC-CUBE 4.2 shop downloads
from its admin screens when it searches by 更新日 = that day (the first folder: everything):

* `customer_<YYYYmmddHHMMSS>.csv` (会員CSV), `order_<...>.csv` (受注CSV, one row per order item:
  products, the shipping-fee item, the discount item), `product_<...>.csv` (商品CSV), with
  EC-CUBE's headers, in CP932, dates as `Y-m-d H:i:s` and amounts as stored (`907.00`), exactly
  the columns switched on by default in EC-CUBE 4.2.3's `dtb_csv.csv`;
* beside the night folders, `kizuna_products.csv`: the sheet the shop keeps for what EC-CUBE
  does not know (商品区分 and 原価), read by the shipped mapping (`ec_cube4.yaml`).

It writes what EC-CUBE would hold, not what kizuna's export says: ids are EC-CUBE's integers
(`C0000042` -> 会員ID 42, `P002` -> 商品規格ID 2, `S000000007` -> 出荷ID 7, `L...` -> 注文詳細ID),
order numbers (注文番号) are kizuna's order ids; prices without tax (10 %, rounded half up: every
price of the demo shop has one); phone numbers and postal codes without hyphens; a withdrawn
member (退会) has a random e-mail as EC-CUBE gives one; an order appears again on the night it is
shipped (EC-CUBE updates it then: 発送済み, 発送日, 出荷伝票番号), not on the night it is delivered
(EC-CUBE does not know). What EC-CUBE has no place for (subscriptions, media, coupons, carts,
consents, surveys, delivered_at, LINE ids) is not written. The same input gives the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from kizuna.errors import KizunaError

#: The EC-CUBE release whose `dtb_csv.csv` the headers below are copied from (tag 4.2.3).
EC_CUBE_VERSION = "4.2.3"
TAX_RATE = 10
SHEET = "kizuna_products.csv"
ENCODING = "cp932"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # eccube_csv_export_date_format 'Y-m-d H:i:s'

#: 会員CSV (csv_type 2), the columns enabled by default, in sort order.
CUSTOMER_HEADER = (
    "会員ID", "お名前(姓)", "お名前(名)", "お名前(セイ)", "お名前(メイ)", "会社名", "郵便番号", "都道府県(ID)",
    "都道府県(名称)", "住所1", "住所2", "メールアドレス", "TEL", "性別(ID)", "性別(名称)", "職業(ID)", "職業(名称)",
    "誕生日", "初回購入日", "最終購入日", "購入回数", "ショップ用メモ欄", "会員ステータス(ID)", "会員ステータス(名称)",
    "登録日", "更新日", "ポイント",
)
#: 受注CSV (csv_type 3); `送料` twice: the order's delivery_fee_total, then the shipping's fee.
ORDER_HEADER = (
    "注文ID", "注文番号", "会員ID", "お名前(姓)", "お名前(名)", "お名前(セイ)", "お名前(メイ)", "会社名", "郵便番号",
    "都道府県(ID)", "都道府県(名称)", "住所1", "住所2", "メールアドレス", "TEL", "性別(ID)", "性別(名称)", "職業(ID)",
    "職業(名称)", "誕生日", "ショップ用メモ欄", "小計", "値引き", "送料", "税金", "合計", "支払合計", "対応状況(ID)",
    "対応状況(名称)", "支払方法(ID)", "支払方法(名称)", "受注日", "入金日", "注文詳細ID", "商品ID", "商品規格ID",
    "商品名", "商品コード", "規格名1", "規格名2", "規格分類名1", "規格分類名2", "価格", "個数", "税率", "税率ルール(ID)",
    "明細区分(ID)", "明細区分(名称)", "出荷ID", "配送先_お名前(姓)", "配送先_お名前(名)", "配送先_お名前(セイ)",
    "配送先_お名前(メイ)", "配送先_会社名", "配送先_郵便番号", "配送先_都道府県(ID)", "配送先_都道府県(名称)",
    "配送先_住所1", "配送先_住所2", "配送先_TEL", "配送業者(ID)", "配送業者(名称)", "お届け時間ID", "お届け時間(名称)",
    "お届け希望日", "送料", "発送日", "出荷伝票番号", "配達用メモ", "出荷メール送信日",
)
#: 商品CSV (csv_type 1); 送料, 税率 and 商品規格表示フラグ are switched off by default.
PRODUCT_HEADER = (
    "商品ID", "公開ステータス(ID)", "公開ステータス(名称)", "商品名", "ショップ用メモ欄", "商品説明(一覧)",
    "商品説明(詳細)", "検索ワード", "フリーエリア", "商品規格ID", "販売種別(ID)", "販売種別(名称)", "規格分類1(ID)",
    "規格分類1(名称)", "規格分類2(ID)", "規格分類2(名称)", "発送日目安(ID)", "発送日目安(名称)", "商品コード", "在庫数",
    "在庫数無制限フラグ", "販売制限数", "通常価格", "販売価格", "商品画像", "商品カテゴリ(ID)", "商品カテゴリ(名称)",
    "タグ(ID)", "タグ(名称)",
)
SHEET_HEADER = ("商品コード", "商品名", "商品区分", "原価")

#: mtb_pref, in id order.
PREFECTURES = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県", "埼玉県", "千葉県",
    "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県", "岐阜県", "静岡県", "愛知県", "三重県",
    "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県", "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県",
    "香川県", "愛媛県", "高知県", "福岡県", "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
)
SEX = {"male": ("1", "男性"), "female": ("2", "女性"), "unknown": ("4", "回答しない")}  # mtb_sex
#: dtb_payment: 1-4 are EC-CUBE's own; the others are what payment plugins add (ids as a shop might have them).
PAYMENTS = {"cod": ("4", "代金引換"), "credit_card": ("5", "クレジットカード決済"),
            "convenience_store": ("6", "コンビニ決済"), "carrier": ("7", "キャリア決済"), "amazon_pay": ("8", "Amazon Pay")}
PREPAID = {"credit_card", "carrier", "amazon_pay"}
CARRIERS = {"ヤマト運輸": "1", "佐川急便": "2", "日本郵便": "3"}
PRODUCT_KINDS = {"trial": "お試し", "main": "本商品", "gift": "同梱品"}
#: 注文詳細ID of the shipping-fee and discount items: past any product item's id.
OTHER_ITEM_IDS = 9_000_000_000


@dataclass
class EcCubeExports:
    """What `write_ec_cube_exports` wrote."""

    out_dir: Path
    folders: list[str]
    rows: dict[str, int] = field(default_factory=lambda: {"customer": 0, "order": 0, "product": 0})

    def __str__(self) -> str:
        return (f"EC-CUBE {EC_CUBE_VERSION} CSV exports in {self.out_dir}: {len(self.folders)} night folder(s), "
                + ", ".join(f"{n:,} {k} rows" for k, n in self.rows.items()))


def _number(kizuna_id: str) -> int:
    """EC-CUBE's integer id for a kizuna id: `C0000042` -> 42."""
    digits = kizuna_id.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    if not digits.isdigit():
        raise KizunaError(f"cannot write {kizuna_id!r} as an EC-CUBE id (a letter prefix and digits expected)")
    return int(digits)


def ec_cube_id(kizuna_id: str) -> str:
    """The id an EC-CUBE export gives what kizuna's export calls `kizuna_id` (tests translate with it)."""
    return str(_number(kizuna_id))


def _tax_excluded(price: int) -> int:
    """The price without tax that EC-CUBE stores for a price with tax (10 %, rounded half up)."""
    guess = int((Decimal(price) * 100 / (100 + TAX_RATE)).to_integral_value(ROUND_HALF_UP))
    for p in (guess, guess - 1, guess + 1):
        if _tax_included(p) == price:
            return p
    raise KizunaError(f"¥{price:,} is no price with {TAX_RATE} % tax rounded half up, so EC-CUBE could not hold it")


def _tax_included(price: int) -> int:
    return int((Decimal(price) * (100 + TAX_RATE) / 100).to_integral_value(ROUND_HALF_UP))


def _amount(value: int | str) -> str:
    """An amount as EC-CUBE's decimal(12,2) columns print it."""
    return f"{int(value)}.00" if value != "" else ""


def _when(text: str) -> str:
    return datetime.fromisoformat(text).strftime(DATE_FORMAT) if text else ""


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _read(path: Path) -> Iterator[dict[str, str]]:
    if not path.exists():
        return iter(())
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp932")
    return iter(list(csv.DictReader(io.StringIO(text, newline=""))))


class _Shop:
    """The shop as EC-CUBE would hold it at the end of each night, built up folder by folder."""

    def __init__(self) -> None:
        self.customers: dict[str, dict[str, str]] = {}
        self.products: dict[str, dict[str, str]] = {}
        self.orders: dict[str, dict[str, str]] = {}
        self.lines: dict[str, list[dict[str, str]]] = {}
        self.shipments: dict[str, dict[str, str]] = {}

    def apply(self, folder: Path) -> tuple[list[str], list[str], list[str]]:
        """Read one night's folder; returns the customers, orders and products EC-CUBE changed that night."""
        customers, orders, products = [], [], []
        for row in _read(folder / "customers.csv"):
            self.customers[row["customer_id"]] = row
            customers.append(row["customer_id"])
        for row in _read(folder / "products.csv"):
            self.products[row["product_id"]] = row
            products.append(row["product_id"])
        for row in _read(folder / "orders.csv"):
            self.orders[row["order_id"]] = row
            orders.append(row["order_id"])
        for row in _read(folder / "order_lines.csv"):
            self.lines.setdefault(row["order_id"], []).append(row)
            orders.append(row["order_id"])
        for row in _read(folder / "shipments.csv"):
            if row["order_id"] not in self.shipments:  # shipped tonight: EC-CUBE updates the order
                orders.append(row["order_id"])
            self.shipments[row["order_id"]] = row
        return list(dict.fromkeys(customers)), list(dict.fromkeys(orders)), list(dict.fromkeys(products))

    # -- rows -------------------------------------------------------------------------------

    def customer_row(self, customer_id: str) -> list[str]:
        c = self.customers[customer_id]
        withdrawn = bool(c.get("deleted_at"))
        email = c.get("email", "")
        if withdrawn:  # EC-CUBE's withdrawal: StringUtil::random(60).'@dummy.dummy'
            email = hashlib.sha256(customer_id.encode()).hexdigest()[:60] + "@dummy.dummy"
        sex = SEX.get(c.get("gender", ""), ("", ""))
        pref = c.get("prefecture", "")
        return [
            ec_cube_id(customer_id), c["last_name"], c["first_name"], c.get("last_name_kana", ""),
            c.get("first_name_kana", ""), "", _digits(c.get("postal_code", "")),
            str(PREFECTURES.index(pref) + 1) if pref in PREFECTURES else "", pref, c.get("city", ""),
            c.get("address_line", ""), email, _digits(c.get("phone", "")), sex[0], sex[1], "", "",
            f"{c['birth_date']} 00:00:00" if c.get("birth_date") else "", "", "", "", "",
            "3" if withdrawn else "2", "退会" if withdrawn else "本会員",
            _when(c["registered_at"]), _when(c["updated_at"]), "0",
        ]

    def product_row(self, product_id: str) -> list[str]:
        p = self.products[product_id]
        number = ec_cube_id(product_id)
        return [number, "1", "公開", p["product_name"], "", "", "", "", "", number, "1", "販売種別A", "", "", "", "",
                "", "", p["sku"], "", "1", "", "", _amount(_tax_excluded(int(p["list_price"]))), "", "", "", "", ""]

    def order_rows(self, order_id: str) -> list[list[str]]:
        o = self.orders[order_id]
        c = self.customers[o["customer_id"]]
        shipment = self.shipments.get(order_id)
        status = {"cancelled": ("3", "注文取消し"), "returned": ("9", "返品")}.get(
            o["status"], ("5", "発送済み") if shipment else ("1", "新規受付"))
        payment = PAYMENTS.get(o.get("payment_method", ""), ("99", o.get("payment_method", "")))
        lines = sorted(self.lines.get(order_id, []), key=lambda r: r["order_line_id"])
        items = []
        tax = 0
        for line in lines:
            product = self.products[line["product_id"]]
            price = int(line["unit_price"])
            excluded = _tax_excluded(price)
            tax += (price - excluded) * int(line["quantity"])
            items.append((ec_cube_id(line["order_line_id"]), ec_cube_id(line["product_id"]), product["product_name"],
                          product["sku"], excluded, line["quantity"], "1", "商品", True))
        number = _number(order_id)
        if int(o["shipping_fee"]):  # EC-CUBE keeps fees and discounts with tax, as items of the order
            items.append((str(OTHER_ITEM_IDS + 2 * number), "", "送料", "", int(o["shipping_fee"]), "1", "2", "送料",
                          True))
        if int(o["discount"]):
            items.append((str(OTHER_ITEM_IDS + 2 * number + 1), "", "割引", "", -int(o["discount"]), "1", "4", "割引",
                          False))
        pref = c.get("prefecture", "")
        pref_id = str(PREFECTURES.index(pref) + 1) if pref in PREFECTURES else ""
        sex = SEX.get(c.get("gender", ""), ("", ""))
        person = [c["last_name"], c["first_name"], c.get("last_name_kana", ""), c.get("first_name_kana", ""), ""]
        address = [_digits(c.get("postal_code", "")), pref_id, pref, c.get("city", ""), c.get("address_line", "")]
        shipped_at = _when(shipment["shipped_at"]) if shipment else ""
        rows = []
        for item_id, product_id, name, code, price, quantity, kind_id, kind, shipped_item in items:
            order_part = [
                str(number), order_id, ec_cube_id(o["customer_id"]), *person, *address, c.get("email", ""),
                _digits(c.get("phone", "")), sex[0], sex[1], "", "",
                f"{c['birth_date']} 00:00:00" if c.get("birth_date") else "", "",
                _amount(o["subtotal"]), _amount(o["discount"]), _amount(o["shipping_fee"]), _amount(tax),
                _amount(o["total"]), _amount(o["total"]), status[0], status[1], payment[0], payment[1],
                _when(o["ordered_at"]), _when(o["ordered_at"]) if o.get("payment_method") in PREPAID else "",
            ]
            item_part = [item_id, product_id, product_id, name, code, "", "", "", "", _amount(price), quantity,
                         str(TAX_RATE), "", kind_id, kind]
            if shipped_item:  # the discount item belongs to no shipping
                carrier = shipment["carrier"] if shipment else ""
                shipping_part = [
                    str(number), *person, *address, _digits(c.get("phone", "")), CARRIERS.get(carrier, ""), carrier,
                    "", "", "", _amount(o["shipping_fee"]), shipped_at,
                    shipment.get("tracking_number", "") if shipment else "", "", shipped_at,
                ]
            else:
                shipping_part = [""] * 22
            rows.append(order_part + item_part + shipping_part)
        return rows


def _csv_bytes(header: tuple[str, ...], rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")  # PHP's fputcsv ends lines with \n
    writer.writerow(header)
    for row in rows:
        assert len(row) == len(header), (len(row), len(header))
        writer.writerow(row)
    return buf.getvalue().encode(ENCODING)


def write_ec_cube_exports(kizuna_exports: Path, out_dir: Path) -> EcCubeExports:
    """Write the shop in `kizuna_exports` (kizuna's format, one folder per night) as EC-CUBE 4's CSV exports
    in `out_dir` (one folder per night, plus `kizuna_products.csv` and `shop.json`). `out_dir` must not
    hold another shop's night folders."""
    kizuna_exports, out_dir = Path(kizuna_exports), Path(out_dir)
    nights = sorted(p for p in kizuna_exports.iterdir() if p.is_dir() and len(p.name) == 10 and p.name[4] == "-")
    if not nights:
        raise KizunaError(f"no night folder (YYYY-MM-DD) in {kizuna_exports}: generate a shop there first")
    names = {p.name for p in nights}
    stale = sorted(p.name for p in out_dir.glob("????-??-??") if p.is_dir() and p.name not in names) \
        if out_dir.is_dir() else []
    if stale:
        raise KizunaError(f"{out_dir} already holds export folders of another shop ({', '.join(stale[:3])}): "
                          "empty it or choose another folder")
    shop = _Shop()
    summary = EcCubeExports(out_dir, [p.name for p in nights])
    for folder in nights:
        customers, orders, products = shop.apply(folder)
        night = date.fromisoformat(folder.name)
        stamp = f"{night + timedelta(days=1):%Y%m%d}013000"  # downloaded the next morning
        dest = out_dir / folder.name
        if dest.is_dir():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        files = {
            "customer": (CUSTOMER_HEADER, [shop.customer_row(c) for c in customers]),
            "order": (ORDER_HEADER, [r for o in orders for r in shop.order_rows(o)]),
            "product": (PRODUCT_HEADER, [shop.product_row(p) for p in products]),
        }
        for kind, (header, rows) in files.items():
            if rows:  # a search with no hit downloads nothing
                (dest / f"{kind}_{stamp}.csv").write_bytes(_csv_bytes(header, rows))
                summary.rows[kind] += len(rows)
    sheet = [[p["sku"], p["product_name"], PRODUCT_KINDS[p["product_type"]], p["unit_cost"]]
             for _, p in sorted(shop.products.items())]
    (out_dir / SHEET).write_bytes(_csv_bytes(SHEET_HEADER, sheet))
    meta_path = kizuna_exports / "shop.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    meta.update({"format": "ec_cube4_csv", "ec_cube_version": EC_CUBE_VERSION, "folders": summary.folders})
    (out_dir / "shop.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


def generate_ec_cube_shop(out_dir: Path, customers: int, seed: int, end_date: date, nights: int,
                          work_dir: Path | None = None) -> EcCubeExports:
    """Generate a demo shop (`generate_shop`) into `work_dir` (default: `<out_dir>.kizuna`) and write it to
    `out_dir` as EC-CUBE 4's CSV exports: what `kizuna demo --source mapped_csv` loads."""
    from kizuna.demo_shop.generator import generate_shop

    out_dir = Path(out_dir)
    work_dir = Path(work_dir) if work_dir else out_dir.with_name(out_dir.name + ".kizuna")
    generate_shop(work_dir, customers=customers, seed=seed, end_date=end_date, nights=nights)
    return write_ec_cube_exports(work_dir, out_dir)

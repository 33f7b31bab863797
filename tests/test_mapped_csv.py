"""The mapped CSV source: a cart's own CSV exports (EC-CUBE 4's standard ones, another cart's) through a YAML mapping.

The acceptance test writes one generated shop as EC-CUBE 4.2's CSV exports (CP932, Japanese headers, EC-CUBE's
dates, amounts and ids: `kizuna.demo_shop.ec_cube_csv`), loads it through the shipped mapping, and compares every
mart row by row with the same shop loaded from kizuna's own CSV restricted to what the mapping carries.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from connectors.sources import registry
from connectors.sources.export_format import EXPORT_FILES_BY_TABLE
from connectors.sources.loader import load_pending
from connectors.sources.mapped_csv import DEFAULT_MAPPING, MappedCsvSource, MappingError
from kizuna import stages
from kizuna.config import Settings
from kizuna.demo_shop import generate_shop
from kizuna.demo_shop.ec_cube_csv import ORDER_HEADER, SHEET, ec_cube_id, write_ec_cube_exports
from kizuna.errors import ExportError
from source_parity import assert_same_marts, build, restrict

END = date(2026, 11, 22)
NIGHTS = 3
CUSTOMERS = 1000  # seed 11: two members withdraw (退会), orders are cancelled and returned


def _columns(table: str, leave_out: set[str]) -> list[str]:
    return [c for c in EXPORT_FILES_BY_TABLE[table].column_names if c not in leave_out]


#: What EC-CUBE's standard CSV carries of kizuna's tables (docs/sources/mapped_csv.md says why the rest is absent).
CARRIED = {
    "customers": _columns("customers", {"line_user_id"}),
    "products": None,
    "orders": _columns("orders", {"subscription_id", "delivery_number", "media_code", "coupon_code"}),
    "order_lines": None,
    "shipments": _columns("shipments", {"delivered_at"}),
}
#: Columns EC-CUBE spells as integers.
EC_CUBE_IDS = {("customers", "customer_id"), ("orders", "customer_id"), ("products", "product_id"),
               ("order_lines", "product_id"), ("order_lines", "order_line_id"), ("shipments", "shipment_id")}


def as_ec_cube_has_it(table: str, column: str, value: str) -> str:
    """kizuna's value as EC-CUBE holds it: integer ids, phone numbers without hyphens, no subscriptions
    (a subscription delivery is an ordinary order in core EC-CUBE, no product is subscription-eligible)."""
    if (table, column) in EC_CUBE_IDS:
        return ec_cube_id(value)
    if column == "phone":
        return value.replace("-", "")
    if (table, column) == ("orders", "order_kind") and value == "subscription":
        return "one_off"
    if (table, column) == ("products", "is_subscription_eligible"):
        return "false"
    return value


def ec_cube_shop(root: Path, customers: int, seed: int = 11) -> tuple[Path, Path]:
    """(kizuna's export of a generated shop, the same shop as EC-CUBE's CSV exports)."""
    generate_shop(root / "kizuna", customers=customers, seed=seed, end_date=END, nights=NIGHTS)
    write_ec_cube_exports(root / "kizuna", root / "ec_cube")
    return root / "kizuna", root / "ec_cube"


def mapped_settings(root: Path, exports: Path, **kw) -> Settings:
    return Settings(data_dir=root / "data", exports_dir=exports, source="mapped_csv", **kw)


@pytest.fixture(scope="module")
def parity(tmp_path_factory) -> tuple[Settings, Settings]:
    root = tmp_path_factory.mktemp("mapped_parity")
    kizuna_exports, ec_cube_exports = ec_cube_shop(root, CUSTOMERS)
    reference = restrict(kizuna_exports, root / "reference", keep=CARRIED, translate=as_ec_cube_has_it)
    ref = Settings(data_dir=root / "ref", exports_dir=reference)
    cand = Settings(data_dir=root / "cand", exports_dir=ec_cube_exports, source="mapped_csv")
    build(ref)
    build(cand)
    return ref, cand


# -- the acceptance test --------------------------------------------------------------------------


def test_ec_cube_csv_exports_give_the_same_marts_as_kizunas_own_csv(parity):
    ref, cand = parity
    assert_same_marts(ref, cand)
    with duckdb.connect(str(cand.warehouse), read_only=True) as con:
        loaded = dict(con.execute("select file_name, sum(rows_read) from raw._load_log group by 1").fetchall())
        quarantined = con.execute("select count(*) from raw._quarantine").fetchone()[0]
        kinds = dict(con.execute("select order_kind, count(*) from raw.orders group by 1").fetchall())
        statuses = dict(con.execute("select status, count(*) from raw.orders group by 1").fetchall())
        erased = con.execute("select count(*) from raw.customers where deleted_at is not null").fetchone()[0]
    assert set(loaded) == {f"{t}.csv" for t in CARRIED}
    assert loaded["orders.csv"] > CUSTOMERS and quarantined == 0
    assert set(kinds) == {"trial", "one_off"}  # trial orders recognised through the product sheet
    assert set(statuses) == {"confirmed", "cancelled", "returned"} and erased > 0  # the comparison covers them


def test_what_ec_cube_cannot_carry_is_absent_not_invented(parity):
    _, cand = parity
    source = registry.source_for(cand)
    assert source.carries == frozenset(CARRIED)
    with duckdb.connect(str(cand.warehouse), read_only=True) as con:
        for table in ("subscriptions", "media", "ad_spend", "carts", "consents", "survey_responses"):
            assert con.execute(f"select count(*) from raw.{table}").fetchone()[0] == 0, table
        assert con.execute("""select count(*) from raw.orders where media_code is not null or coupon_code is not null
            or subscription_id is not null or delivery_number is not null""").fetchone()[0] == 0
        assert con.execute("select count(*) from raw.shipments where delivered_at is not null").fetchone()[0] == 0
        assert con.execute("select count(*) from raw.customers where line_user_id is not null").fetchone()[0] == 0
    landed = (cand.landing_dir / "mapped_csv" / END.isoformat() / "orders.csv").read_text(encoding="utf-8")
    assert "media_code" not in landed.splitlines()[0]  # absent, not an empty column


def test_a_second_run_loads_nothing_new_and_rewrites_nothing(parity):
    _, cand = parity
    landing = cand.landing_dir / "mapped_csv"
    before = {p: p.stat().st_mtime_ns for p in landing.rglob("*")}
    with duckdb.connect(str(cand.warehouse), read_only=True) as con:
        log_rows = con.execute("select count(*) from raw._load_log").fetchone()[0]
    assert stages.ingest(cand, END) == []
    assert {p: p.stat().st_mtime_ns for p in landing.rglob("*")} == before
    with duckdb.connect(str(cand.warehouse), read_only=True) as con:
        assert con.execute("select count(*) from raw._load_log").fetchone()[0] == log_rows


# -- a small EC-CUBE shop for the other tests ------------------------------------------------------


@pytest.fixture
def small(tmp_path) -> tuple[Path, Path]:
    """(root, EC-CUBE exports) of a shop of 200 customers."""
    _, ec_cube_exports = ec_cube_shop(tmp_path, 200, seed=3)
    return tmp_path, ec_cube_exports


def first_night(exports: Path) -> Path:
    return sorted(p for p in exports.iterdir() if p.is_dir())[0]


def read_cp932(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("cp932"), newline="")))


def write_cp932(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode("cp932"))


def load(root: Path, exports: Path, **kw):
    """Load every night through the mapped source (no gate); returns the settings."""
    settings = mapped_settings(root, exports, **kw)
    source = registry.source_for(settings)
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.warehouse)) as con:
        load_pending(con, source, through=END, archive_dir=settings.archive_dir)
    return settings


def quarantine(settings: Settings) -> list[tuple[str, str, str]]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        return con.execute("select file_name, \"key\", reason from raw._quarantine order by 1, 2").fetchall()


def single_item_orders(rows: list[list[str]]) -> list[str]:
    """注文番号 of orders with exactly one row in an order CSV (no shipping-fee or discount item)."""
    number = ORDER_HEADER.index("注文番号")
    counts: dict[str, int] = {}
    for row in rows[1:]:
        counts[row[number]] = counts.get(row[number], 0) + 1
    return [n for n, c in counts.items() if c == 1]


def test_bad_cart_values_are_quarantined_with_a_reason_that_says_what_was_wrong(small):
    root, exports = small
    order_file = next(first_night(exports).glob("order_*.csv"))
    rows = read_cp932(order_file)
    h = {name: ORDER_HEADER.index(name) for name in ("注文番号", "受注日", "合計", "対応状況(ID)")}
    bad_date, bad_total, bad_status = single_item_orders(rows)[:3]
    for row in rows[1:]:
        if row[h["注文番号"]] == bad_date:
            row[h["受注日"]] = "2025/13/45 9:03"
        if row[h["注文番号"]] == bad_total:
            row[h["合計"]] = "1,98O円"
        if row[h["注文番号"]] == bad_status:
            row[h["対応状況(ID)"]] = "99"
    write_cp932(order_file, rows)
    sheet = read_cp932(exports / SHEET)
    write_cp932(exports / SHEET, [r for r in sheet if r[0] != "KZ-GFT-SHK"])  # the gift's cost is unknown

    settings = load(root, exports)
    reasons = {(f, k): r for f, k, r in quarantine(settings)}
    date_reason = reasons[("orders.csv", bad_date)]
    assert "ordered_at: '2025/13/45 9:03 (not a date: the mapping reads 受注日 as %Y-%m-%d %H:%M:%S" in date_reason
    assert "total: '1,98O円 (not an amount" in reasons[("orders.csv", bad_total)]
    status_reason = reasons[("orders.csv", bad_status)]
    assert "status: 対応状況(ID) '99' is not in the mapping's map" in status_reason
    gift = ec_cube_id("P004")
    assert "unit_cost: 'KZ-GFT-SHK (no row for 商品コード 'KZ-GFT-SHK' in kizuna_products.csv)" in \
        reasons[("products.csv", gift)]
    assert "product_type:" in reasons[("products.csv", gift)]
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        loaded = {r[0] for r in con.execute("select order_id from raw.orders").fetchall()}
        assert bad_date not in loaded and bad_total not in loaded and bad_status not in loaded
        assert len(loaded) > 50  # the rest of the night loaded
        products = {r[0] for r in con.execute("select product_id from raw.products").fetchall()}
    assert products == {ec_cube_id(p) for p in ("P001", "P002", "P003")}


def test_orders_and_lines_come_from_one_file_once_each(small):
    """EC-CUBE's order CSV repeats an order on each of its items (products, shipping fee, discount):
    one order row, one line per product item, one shipment per shipped order."""
    root, exports = small
    rows = read_cp932(next(first_night(exports).glob("order_*.csv")))
    col = {name: ORDER_HEADER.index(name) for name in ("注文番号", "明細区分(ID)", "発送日")}
    orders = {r[col["注文番号"]] for r in rows[1:]}
    products = [r for r in rows[1:] if r[col["明細区分(ID)"]] == "1"]
    shipped = {r[col["注文番号"]] for r in rows[1:] if r[col["発送日"]]}
    assert len(rows) - 1 > len(products) > len(orders)  # items other than products are there too
    settings = load(root, exports)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        counts = {t: con.execute(f"select count(*) from raw.{t} where _night = ?", [first_night(exports).name])
                  .fetchone()[0] for t in ("orders", "order_lines", "shipments")}
    assert counts == {"orders": len(orders), "order_lines": len(products), "shipments": len(shipped)}
    assert quarantine(settings) == []


def test_ec_cube_shipping_csv_beside_the_order_csv_adds_no_second_shipment(small):
    """EC-CUBE's 配送CSV has the 受注CSV's layout; a night holding both loads each shipment once."""
    root, exports = small
    order_file = next(first_night(exports).glob("order_*.csv"))
    shutil.copy(order_file, order_file.with_name(order_file.name.replace("order_", "shipping_")))
    settings = load(root, exports)
    rows = read_cp932(order_file)
    shipped = {r[ORDER_HEADER.index("出荷ID")] for r in rows[1:] if r[ORDER_HEADER.index("発送日")]}
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("select count(*) from raw.shipments where _night = ?",
                           [first_night(exports).name]).fetchone()[0] == len(shipped) > 0
    assert quarantine(settings) == []


def test_guest_orders_become_customers_of_their_own(small):
    root, exports = small
    order_file = next(first_night(exports).glob("order_*.csv"))
    rows = read_cp932(order_file)
    member, number = ORDER_HEADER.index("会員ID"), ORDER_HEADER.index("注文番号")
    guest = rows[1][number]
    for row in rows[1:]:
        if row[number] == guest:
            row[member] = ""  # 非会員購入
    write_cp932(order_file, rows)
    settings = load(root, exports)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("select customer_id from raw.orders where order_id = ?", [guest]).fetchone()[0] == \
            f"guest-{guest}"
        name = con.execute("select last_name from raw.customers where customer_id = ?", [f"guest-{guest}"]).fetchone()
    assert name is not None and name[0] == rows[1][ORDER_HEADER.index("お名前(姓)")]
    assert quarantine(settings) == []


# -- mapping errors: one line naming the mapping file, the field and the header --------------------


def shipped_mapping_with(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_MAPPING.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / "broken.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


ORDERED_AT = 'ordered_at: {header: 受注日, formats: ["%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M"]}'


@pytest.mark.parametrize("old, new, field, header", [
    (ORDERED_AT, ORDERED_AT.replace("ordered_at", "order_date"), "orders.order_date", "受注日"),  # unknown column
    (ORDERED_AT, 'ordered_at: {header: 受注日, formats: ["%Y/%m/%q"]}', "orders.ordered_at.formats", "受注日"),
    ("subtotal: {header: 小計, parse: money}", "subtotal: {header: 小計, parse: yen}", "orders.subtotal.parse", "小計"),
    ('shipping_fee: {expr: "{合計} - {小計} + {値引き}"}', 'shipping_fee: {expr: "{合計} - {小計} +"}',
     "orders.shipping_fee.expr", "合計"),
    ('shipping_fee: {expr: "{合計} - {小計} + {値引き}"}', 'shipping_fee: {expr: "{合計} ** 2"}',
     "orders.shipping_fee.expr", "合計"),  # only + - * / and rounding
    ("postal_code: {header: 郵便番号, regex: '(\\d{3})-?(\\d{4})'", "postal_code: {header: 郵便番号, regex: '(\\d{3}'",
     "customers[1].postal_code.regex", "郵便番号"),
    ("  orders:\n", "  order:\n", "tables.order", ""),  # unknown table
    (ORDERED_AT + "\n", "", "orders.ordered_at", ""),  # a required column left out
])
def test_a_malformed_mapping_is_one_line_naming_file_field_and_header(small, old, new, field, header):
    root, exports = small
    path = shipped_mapping_with(root, old, new)
    with pytest.raises(MappingError) as caught:
        registry.source_for(mapped_settings(root, exports, source_mapping=path))
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message and field in message and header in message, message


def test_a_header_missing_from_the_carts_file_is_named_before_anything_loads(small):
    root, exports = small
    order_file = sorted(exports.glob("*/order_*.csv"))[-1]  # the newest night's: the first ones are fine
    night = order_file.parent
    assert night != first_night(exports)
    rows = read_cp932(order_file)
    rows[0] = ["受注日時" if h == "受注日" else h for h in rows[0]]  # the shop renamed the column
    write_cp932(order_file, rows)
    settings = mapped_settings(root, exports)
    with pytest.raises(MappingError) as caught:
        registry.source_for(settings)
    message = str(caught.value)
    assert "\n" not in message
    assert str(DEFAULT_MAPPING) in message  # the file, a field reading 受注日, the header, where it looked
    assert re.search(r": (orders\.ordered_at|customers\[2\]\.registered_at): header '受注日' is not in "
                     + re.escape(f"{night.name}/{order_file.name}") + r" \(did you mean '受注日時'\?", message)
    assert not settings.warehouse.exists()  # nothing loaded, not even the first nights


def test_a_missing_lookup_sheet_or_sheet_column_is_named(small):
    root, exports = small
    sheet = read_cp932(exports / SHEET)
    write_cp932(exports / SHEET, [[h if h != "原価" else "仕入値" for h in sheet[0]]] + sheet[1:])
    with pytest.raises(MappingError) as caught:
        registry.source_for(mapped_settings(root, exports))
    message = str(caught.value)
    assert "products.unit_cost" in message and "'原価'" in message and SHEET in message and "\n" not in message
    (exports / SHEET).unlink()
    with pytest.raises(MappingError) as caught:
        registry.source_for(mapped_settings(root, exports))
    message = str(caught.value)
    assert "lookups.product_sheet" in message and SHEET in message and str(DEFAULT_MAPPING) in message


def test_a_mapping_that_is_not_yaml_names_the_line(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("tables:\n  orders: {files: order_*.csv\n", encoding="utf-8")
    with pytest.raises(MappingError, match=r"m\.yaml: line \d+, column \d+: not valid YAML"):
        MappedCsvSource(tmp_path, tmp_path / "landing", path)


# -- links and stray files --------------------------------------------------------------------------


def test_links_are_refused_and_stray_files_named(small):
    root, exports = small
    night = first_night(exports)
    (night / "メモ.txt").write_text("memo", encoding="utf-8")
    (exports / "archive").mkdir()
    source = MappedCsvSource(exports, root / "landing")
    notes = source.ignored()
    assert any(n.startswith(f"{night.name}/メモ.txt: ignored: no table of mapping") for n in notes), notes
    assert any(n.startswith("archive/: ") for n in notes)  # not a night folder (in the team's language)
    assert not any(n.startswith(SHEET) for n in notes)  # the lookup sheet belongs there

    order_file = next(night.glob("order_*.csv"))
    target = root / "elsewhere.csv"
    shutil.move(order_file, target)
    os.symlink(target, order_file)
    with pytest.raises(ExportError, match="symbolic link"):
        source.files(date.fromisoformat(night.name))


# -- another cart: words, yen amounts and dates a mapping has to convert -----------------------------


GENERIC_MAPPING = """
name: generic_cart
encoding: cp932
tables:
  customers:
    files: 会員一覧*.csv
    columns:
      customer_id: 会員番号
      last_name: 姓
      first_name: 名
      gender: {header: 性別, map: {男性: male, 女性: female}, default: unknown}
      birth_date: {header: 生年月日, formats: ["%Y年%m月%d日"]}
      registered_at: {header: 登録日時, formats: ["%Y/%m/%d %H:%M"]}
      updated_at: {header: 更新日時, formats: ["%Y/%m/%d %H:%M"]}
  orders:
    files: 受注明細*.csv
    columns:
      order_id: 受注番号
      customer_id: 会員番号
      ordered_at: {header: 受注日時, formats: ["%Y/%m/%d %H:%M"]}
      status: {header: ステータス, map: {受注: confirmed, 発送済: confirmed, キャンセル: cancelled, 返品: returned}}
      order_kind: {header: 定期, map: {定期: subscription}, default: one_off, if_empty: one_off}
      subtotal: {header: 商品合計, parse: money}
      discount: {header: 値引, parse: money, if_empty: "0"}
      shipping_fee: {header: 送料, parse: money}
      total: {header: 請求金額, parse: money}
      updated_at: {header: 更新日時, formats: ["%Y/%m/%d %H:%M"]}
  order_lines:
    files: 受注明細*.csv
    columns:
      order_line_id: {template: "{受注番号}-{行}"}
      order_id: 受注番号
      product_id: 商品番号
      quantity: {header: 数量, parse: integer}
      unit_price: {header: 単価, parse: money}
      line_amount: {expr: "{単価} * {数量}"}
      updated_at: {header: 更新日時, formats: ["%Y/%m/%d %H:%M"]}
"""


def test_another_carts_words_yen_and_dates_are_converted(tmp_path):
    night = tmp_path / "exports" / "2025-01-05"
    night.mkdir(parents=True)
    write_cp932(night / "会員一覧_20250106.csv", [
        ["会員番号", "姓", "名", "性別", "生年月日", "登録日時", "更新日時"],
        ["M1", "山田", "太郎", "男性", "1980年4月1日", "2025/01/05 9:03", "2025/01/05 9:03"],
        ["M2", "佐藤", "花子", "女性", "", "2025/01/05 10:15", "2025/01/05 10:15"],
        ["M3", "鈴木", "光", "その他", "", "2025/01/05 11:00", "2025/01/05 11:00"],
    ])
    header = ["受注番号", "行", "会員番号", "受注日時", "ステータス", "定期", "商品番号", "数量", "単価", "商品合計", "値引",
              "送料", "請求金額", "更新日時"]
    write_cp932(night / "受注明細_20250106.csv", [
        header,
        ["A-1", "1", "M1", "2025/01/05 9:03", "受注", "", "P1", "2", "1,980円", "4,460円", "", "550円", "5,010円",
         "2025/01/05 9:03"],
        ["A-1", "2", "M1", "2025/01/05 9:03", "受注", "", "P2", "1", "５００円", "4,460円", "", "550円", "5,010円",
         "2025/01/05 9:03"],
        ["A-2", "1", "M2", "2025/01/05 10:20", "キャンセル", "定期", "P1", "1", "1,980円", "1,980円", "198円", "0円",
         "1,782円", "2025/01/05 12:00"],
        ["A-3", "1", "M3", "2025/01/05 11:05", "返品", "", "P1", "1", "1,980", "1,980", "0", "0", "1,980",
         "2025/01/05 18:30"],
    ])
    mapping = tmp_path / "generic.yaml"
    mapping.write_text(GENERIC_MAPPING, encoding="utf-8")
    source = MappedCsvSource(tmp_path / "exports", tmp_path / "landing", mapping)
    assert source.carries == {"customers", "orders", "order_lines"}
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        load_pending(con, source, through=date(2025, 1, 5))
        customers = con.execute("select customer_id, gender, birth_date::varchar, registered_at::varchar "
                                "from raw.customers order by 1").fetchall()
        orders = con.execute("select order_id, status, order_kind, subtotal, discount, shipping_fee, total, "
                             "ordered_at::varchar from raw.orders order by 1").fetchall()
        lines = con.execute("select order_line_id, quantity, unit_price, line_amount from raw.order_lines "
                            "order by 1").fetchall()
        assert con.execute("select count(*) from raw._quarantine").fetchone()[0] == 0
    assert customers == [("M1", "male", "1980-04-01", "2025-01-05 09:03:00"),
                         ("M2", "female", None, "2025-01-05 10:15:00"),
                         ("M3", "unknown", None, "2025-01-05 11:00:00")]
    assert orders == [("A-1", "confirmed", "one_off", 4460, 0, 550, 5010, "2025-01-05 09:03:00"),
                      ("A-2", "cancelled", "subscription", 1980, 198, 0, 1782, "2025-01-05 10:20:00"),
                      ("A-3", "returned", "one_off", 1980, 0, 0, 1980, "2025-01-05 11:05:00")]
    assert lines == [("A-1-1", 2, 1980, 3960), ("A-1-2", 1, 500, 500), ("A-2-1", 1, 1980, 1980),
                     ("A-3-1", 1, 1980, 1980)]


def test_a_column_renamed_over_the_years_is_read_under_either_name(tmp_path):
    """`headers: [A, B]`: a file needs one of them (old nights keep the old name); with neither, the error
    lists both."""
    header = ["受注番号", "行", "会員番号", "受注日時", "ステータス", "定期", "商品番号", "数量", "単価", "商品合計", "値引",
              "送料", "請求金額", "更新日時"]
    row = ["A-1", "1", "M1", "2025/01/05 9:03", "受注", "", "P1", "1", "980", "980", "", "0", "980", "2025/01/05 9:03"]
    for night, name in (("2025-01-05", "受注日時"), ("2025-01-06", "注文日時")):
        (tmp_path / "exports" / night).mkdir(parents=True)
        renamed = [name if h == "受注日時" else h for h in header]
        updated = f"{night.replace('-', '/')} 9:03"
        write_cp932(tmp_path / "exports" / night / "受注明細.csv", [renamed, row[:13] + [updated]])
    mapping = tmp_path / "generic.yaml"
    text = GENERIC_MAPPING.replace("files: 会員一覧*.csv", "files: none*.csv")
    mapping.write_text(text.replace("ordered_at: {header: 受注日時", "ordered_at: {headers: [受注日時, 注文日時]"),
                       encoding="utf-8")
    source = MappedCsvSource(tmp_path / "exports", tmp_path / "landing", mapping)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        assert len(load_pending(con, source, through=date(2025, 1, 6))) == 2
        assert con.execute("select ordered_at::varchar from raw.orders").fetchone()[0] == "2025-01-05 09:03:00"
    mapping.write_text(text.replace("ordered_at: {header: 受注日時", "ordered_at: {headers: [受注日, 注文日]"),
                       encoding="utf-8")
    with pytest.raises(MappingError, match=r"orders\.ordered_at: none of the headers '受注日', '注文日' is in "
                                           r"2025-01-05/受注明細\.csv \(did you mean '受注日時'\?"):
        MappedCsvSource(tmp_path / "exports", tmp_path / "landing", mapping)


def test_a_changed_cart_file_is_converted_and_loaded_again(tmp_path):
    """A re-sent file changes the landed file (and only then): the loader loads the night again."""
    night = tmp_path / "exports" / "2025-01-05"
    night.mkdir(parents=True)
    rows = [["会員番号", "姓", "名", "性別", "生年月日", "登録日時", "更新日時"],
            ["M1", "山田", "太郎", "男性", "", "2025/01/05 9:03", "2025/01/05 9:03"]]
    write_cp932(night / "会員一覧.csv", rows)
    mapping = tmp_path / "generic.yaml"
    mapping.write_text(GENERIC_MAPPING, encoding="utf-8")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        first = load_pending(con, MappedCsvSource(tmp_path / "exports", tmp_path / "landing", mapping),
                             through=date(2025, 1, 5))
        assert [f.rows_inserted for f in first[0].files] == [1]
        assert load_pending(con, MappedCsvSource(tmp_path / "exports", tmp_path / "landing", mapping),
                            through=date(2025, 1, 5)) == []
        rows[1][1], rows[1][-1] = "山本", "2025/01/05 20:00"
        write_cp932(night / "会員一覧.csv", rows)
        again = load_pending(con, MappedCsvSource(tmp_path / "exports", tmp_path / "landing", mapping),
                             through=date(2025, 1, 5))
        assert [f.rows_updated for f in again[0].files] == [1]
        assert con.execute("select last_name from raw.customers").fetchone()[0] == "山本"


def test_a_landed_night_is_converted_again_only_when_its_inputs_change(tmp_path):
    """A landed file blanked since (as an erasure would) stays blanked; a missing one is written again."""
    night = tmp_path / "exports" / "2025-01-05"
    night.mkdir(parents=True)
    write_cp932(night / "会員一覧.csv", [["会員番号", "姓", "名", "性別", "生年月日", "登録日時", "更新日時"],
                                       ["M1", "山田", "太郎", "男性", "", "2025/01/05 9:03", "2025/01/05 9:03"]])
    mapping = tmp_path / "generic.yaml"
    mapping.write_text(GENERIC_MAPPING, encoding="utf-8")
    source = MappedCsvSource(tmp_path / "exports", tmp_path / "landing", mapping)
    landed = source.files(date(2025, 1, 5))[0].path
    blanked = landed.read_text(encoding="utf-8").replace("山田", "").replace("太郎", "")
    landed.write_text(blanked, encoding="utf-8")
    assert source.files(date(2025, 1, 5))[0].path.read_text(encoding="utf-8") == blanked
    landed.unlink()
    assert "山田" in source.files(date(2025, 1, 5))[0].path.read_text(encoding="utf-8")


def test_the_quarantine_reason_keeps_the_explanation_whole():
    """The loader shows 80 characters of a bad value: every explanation the converter writes fits."""
    from connectors.sources import mapped_csv as m

    mapping = m.load_mapping()
    rule = next(c for c in mapping.tables["orders"][0].columns if c.column.name == "ordered_at")
    converter = m._Converter(mapping.tables["orders"][0], list(ORDER_HEADER), END, mapping.lookups)
    with pytest.raises(m._Bad) as bad:
        converter.parse(rule, "2025/13/45 9:03 " + "x" * 100)
    assert len(bad.value.message) <= m.REASON_VALUE_CHARS
    assert re.match(r"2025/13/45 9:03 x+… \(not a date", bad.value.message)

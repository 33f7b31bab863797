"""The dbt project built for real on a tiny hand-written raw schema.

One module-scoped build (dbt costs seconds per build) feeds the value checks; one more
build, on a second warehouse file and a narrow selection, checks that a failing dbt
test stops the run with a readable error.

The shop, as of RUN_DATE 2025-06-30 (dormant after 180 days):
- C001 Hanako: trial, a cancelled order, two orders on one day, a returned order and a
  zero-total order; two subscriptions, the latest active; e-mail and DM consent, LINE
  consent withdrawn; 39 (her birthday is the day after RUN_DATE).
- C002 Taro: one order exactly 180 days before RUN_DATE: dormant; 75.
- C003 Jiro: one order 179 days before RUN_DATE: still initial; no birth date; paused.
- C004 Yuki: only a cancelled order: prospect; turns 22 on RUN_DATE.
- C005 (erased): one order; personal fields must be gone from dim_customers.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from connectors.sources.export_format import EXPORT_FILES, EXPORT_FILES_BY_TABLE
from kizuna.config import PROJECT_ROOT, Settings
from kizuna.errors import KizunaError
from kizuna.modelling import BuildResult, ModelBuildFailed, build_models

DBT_PROJECT = PROJECT_ROOT / "dbt_project"
RUN_DATE = date(2025, 6, 30)
LOADED_AT = datetime(2025, 6, 30, 3, 0, 0)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


RAW_ROWS: dict[str, list[dict[str, Any]]] = {
    "customers": [
        {"customer_id": "C001", "last_name": "山田", "first_name": "花子", "gender": "female",
         "birth_date": date(1985, 7, 1), "email": "hanako@example.jp", "phone": "090-1111-2222",
         "postal_code": "150-0001", "prefecture": "東京都", "city": "渋谷区", "address_line": "神宮前1-1",
         "line_user_id": "U" + "a" * 32, "registered_at": _ts("2025-04-30 20:00:00")},
        {"customer_id": "C002", "last_name": "佐藤", "first_name": "太郎", "birth_date": date(1950, 1, 15),
         "postal_code": "530-0001", "prefecture": "大阪府", "city": "大阪市北区", "address_line": "梅田2-2",
         "registered_at": _ts("2024-12-31 09:00:00")},
        {"customer_id": "C003", "last_name": "鈴木", "first_name": "次郎", "email": "jiro@example.jp",
         "registered_at": _ts("2025-01-01 09:00:00")},
        {"customer_id": "C004", "last_name": "高橋", "first_name": "由紀", "birth_date": date(2003, 6, 30),
         "email": "yuki@example.jp", "registered_at": _ts("2025-06-01 12:00:00")},
        {"customer_id": "C005", "last_name": "田中", "first_name": "一郎", "birth_date": date(1980, 5, 5),
         "email": "ichiro@example.jp", "phone": "080-3333-4444", "registered_at": _ts("2025-02-01 12:00:00"),
         "deleted_at": _ts("2025-06-15 10:00:00")},
    ],
    "products": [
        {"product_id": "P-TRIAL", "sku": "KZ-T", "product_name": "お試し", "product_type": "trial",
         "list_price": 1980, "unit_cost": 300, "is_subscription_eligible": False},
        {"product_id": "P-MAIN", "sku": "KZ-M", "product_name": "本品", "product_type": "main",
         "list_price": 5000, "unit_cost": 1200, "is_subscription_eligible": True},
        {"product_id": "P-GIFT", "sku": "KZ-G", "product_name": "ギフト", "product_type": "gift",
         "list_price": 0, "unit_cost": 100, "is_subscription_eligible": False},
    ],
    "media": [
        {"media_code": "AFF01", "media_name": "Affiliate A", "media_type": "affiliate"},
        {"media_code": "SRCH01", "media_name": "Search", "media_type": "search"},
    ],
    "ad_spend": [
        {"media_code": "AFF01", "spend_month": date(2025, 5, 1), "amount": 100000},
        {"media_code": "SRCH01", "spend_month": date(2025, 5, 1), "amount": 50000},
    ],
    "orders": [
        # C001: trial, cancelled, two on one day, returned, zero total.
        {"order_id": "O001", "customer_id": "C001", "ordered_at": _ts("2025-05-01 10:00:00"), "status": "confirmed",
         "order_kind": "trial", "media_code": "AFF01", "subtotal": 1980, "total": 1980},
        {"order_id": "O002", "customer_id": "C001", "ordered_at": _ts("2025-05-20 10:00:00"), "status": "cancelled",
         "order_kind": "one_off", "media_code": "SRCH01", "subtotal": 5000, "total": 5000},
        {"order_id": "O003", "customer_id": "C001", "ordered_at": _ts("2025-06-10 09:00:00"), "status": "confirmed",
         "order_kind": "one_off", "subtotal": 10000, "discount": 1000, "shipping_fee": 0, "total": 9000},
        {"order_id": "O004", "customer_id": "C001", "ordered_at": _ts("2025-06-10 18:00:00"), "status": "confirmed",
         "order_kind": "subscription", "subscription_id": "S002", "delivery_number": 1,
         "subtotal": 5000, "total": 5000},
        {"order_id": "O005", "customer_id": "C001", "ordered_at": _ts("2025-06-12 08:00:00"), "status": "returned",
         "order_kind": "one_off", "subtotal": 5000, "total": 5000},
        {"order_id": "O006", "customer_id": "C001", "ordered_at": _ts("2025-06-13 08:00:00"), "status": "confirmed",
         "order_kind": "one_off", "subtotal": 0, "total": 0},
        # C002: exactly 180 days before RUN_DATE.
        {"order_id": "O007", "customer_id": "C002", "ordered_at": _ts("2025-01-01 23:30:00"), "status": "confirmed",
         "order_kind": "trial", "media_code": "SRCH01", "subtotal": 1980, "total": 1980},
        # C003: 179 days before RUN_DATE.
        {"order_id": "O008", "customer_id": "C003", "ordered_at": _ts("2025-01-02 00:10:00"), "status": "confirmed",
         "order_kind": "one_off", "subtotal": 5000, "shipping_fee": 500, "total": 5500},
        # C004: only a cancelled order.
        {"order_id": "O009", "customer_id": "C004", "ordered_at": _ts("2025-06-20 12:00:00"), "status": "cancelled",
         "order_kind": "trial", "subtotal": 1980, "total": 1980},
        # C005: erased customer.
        {"order_id": "O010", "customer_id": "C005", "ordered_at": _ts("2025-03-01 12:00:00"), "status": "confirmed",
         "order_kind": "one_off", "subtotal": 5000, "total": 5000},
    ],
    "order_lines": [
        {"order_line_id": "L001", "order_id": "O001", "product_id": "P-TRIAL", "quantity": 1, "unit_price": 1980},
        {"order_line_id": "L002", "order_id": "O002", "product_id": "P-MAIN", "quantity": 1, "unit_price": 5000},
        {"order_line_id": "L003", "order_id": "O003", "product_id": "P-MAIN", "quantity": 2, "unit_price": 5000},
        {"order_line_id": "L004", "order_id": "O004", "product_id": "P-MAIN", "quantity": 1, "unit_price": 5000},
        {"order_line_id": "L005", "order_id": "O004", "product_id": "P-GIFT", "quantity": 1, "unit_price": 0},
        {"order_line_id": "L006", "order_id": "O007", "product_id": "P-TRIAL", "quantity": 1, "unit_price": 1980},
        {"order_line_id": "L007", "order_id": "O008", "product_id": "P-MAIN", "quantity": 1, "unit_price": 5000},
        {"order_line_id": "L008", "order_id": "O010", "product_id": "P-MAIN", "quantity": 1, "unit_price": 5000},
    ],
    "subscriptions": [
        {"subscription_id": "S001", "customer_id": "C001", "product_id": "P-MAIN",
         "started_at": _ts("2025-05-01 10:00:00"), "interval_days": 30, "status": "cancelled",
         "cancelled_at": _ts("2025-05-15 10:00:00"), "cancel_reason": "surplus_stock"},
        {"subscription_id": "S002", "customer_id": "C001", "product_id": "P-MAIN",
         "started_at": _ts("2025-06-10 18:00:00"), "interval_days": 30, "status": "active"},
        {"subscription_id": "S003", "customer_id": "C003", "product_id": "P-MAIN",
         "started_at": _ts("2025-01-02 00:10:00"), "interval_days": 60, "status": "paused"},
    ],
    "shipments": [
        {"shipment_id": "SH001", "order_id": "O001", "shipped_at": _ts("2025-05-02 10:00:00"),
         "delivered_at": _ts("2025-05-03 14:00:00"), "carrier": "yamato", "tracking_number": "1234"},
        {"shipment_id": "SH002", "order_id": "O003", "shipped_at": _ts("2025-06-11 10:00:00"), "carrier": "yamato"},
    ],
    "carts": [
        {"cart_id": "CA01", "customer_id": "C004", "created_at": _ts("2025-06-25 21:00:00"), "status": "abandoned",
         "product_id": "P-MAIN", "quantity": 1, "amount": 5000},
    ],
    "consents": [
        {"customer_id": "C001", "channel": "email", "status": "granted", "consented_at": _ts("2025-04-30 20:00:00"),
         "source": "checkout"},
        {"customer_id": "C001", "channel": "line", "status": "withdrawn", "consented_at": _ts("2025-05-01 10:00:00"),
         "withdrawn_at": _ts("2025-06-01 10:00:00"), "source": "line_follow"},
        {"customer_id": "C001", "channel": "dm", "status": "granted", "consented_at": _ts("2025-04-30 20:00:00"),
         "source": "checkout"},
        {"customer_id": "C002", "channel": "phone", "status": "granted", "consented_at": _ts("2024-12-31 09:00:00"),
         "source": "phone"},
        {"customer_id": "C005", "channel": "email", "status": "granted", "consented_at": _ts("2025-02-01 12:00:00"),
         "source": "checkout"},
    ],
    "survey_responses": [
        {"response_id": "R001", "customer_id": "C001", "answered_at": _ts("2025-06-15 10:00:00"),
         "satisfaction": 5, "intention_to_continue": 4, "comment": "良い"},
    ],
}

#: Values for required columns a row above leaves out.
_DEFAULTS = {"discount": 0, "shipping_fee": 0, "updated_at": LOADED_AT}


def create_raw_schema(path: Path, rows: dict[str, Iterable[dict[str, Any]]]) -> None:
    """Create every raw table of the export format, as the CSV connector would, and fill it."""
    con = duckdb.connect(str(path))
    try:
        con.execute("create schema if not exists raw")
        for export in EXPORT_FILES:
            columns = [f"{c.name} {c.duckdb_type}" for c in export.columns]
            columns += ["_night DATE", "_source_file VARCHAR", "_loaded_at TIMESTAMP"]
            con.execute(f"create table raw.{export.table} ({', '.join(columns)})")
            names = [*export.column_names, "_night", "_source_file", "_loaded_at"]
            for row in rows.get(export.table, []):
                values = [_value(export.table, name, row) for name in names]
                placeholders = ", ".join("?" for _ in names)
                con.execute(f"insert into raw.{export.table} values ({placeholders})", values)
    finally:
        con.close()


def _value(table: str, column: str, row: dict[str, Any]) -> Any:
    if column in row:
        return row[column]
    if column == "_night":
        return LOADED_AT.date()
    if column == "_source_file":
        return f"2025-06-30/{table}.csv"
    if column == "_loaded_at":
        return LOADED_AT
    if column == "line_amount":
        return row["quantity"] * row["unit_price"]
    return _DEFAULTS.get(column)


def _settings(tmp: Path) -> Settings:
    return Settings(home=tmp, warehouse=tmp / "w.duckdb", dbt_project_dir=DBT_PROJECT)


def _query(path: Path, sql: str) -> dict[str, dict[str, Any]]:
    """Rows keyed by their first column. Same connection configuration as dbt-duckdb's."""
    con = duckdb.connect(str(path))
    try:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return {row[0]: dict(zip(names, row)) for row in cursor.fetchall()}
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, BuildResult]:
    tmp = tmp_path_factory.mktemp("dbt_build")
    settings = _settings(tmp)
    create_raw_schema(settings.warehouse, RAW_ROWS)
    return settings, build_models(settings, RUN_DATE)


@pytest.fixture(scope="module")
def customers(built: tuple[Settings, BuildResult]) -> dict[str, dict[str, Any]]:
    settings, _ = built
    return _query(settings.warehouse, "select * from marts.dim_customers")


@pytest.fixture(scope="module")
def orders(built: tuple[Settings, BuildResult]) -> dict[str, dict[str, Any]]:
    settings, _ = built
    return _query(settings.warehouse, "select * from marts.fct_orders")


def test_build_reports_every_node(built: tuple[Settings, BuildResult]) -> None:
    _, result = built
    assert result.success and not result.failed
    kinds = {n.resource_type for n in result.nodes}
    assert {"model", "test", "unit_test"} <= kinds
    assert result.node("dim_customers").status == "success"
    assert result.node("dim_customers_stage_and_age_band").status == "pass"
    assert result.node("fct_orders_sequences_counted_orders_only").status == "pass"
    assert all(n.seconds >= 0 for n in result.nodes)


def test_models_land_in_plain_schemas(built: tuple[Settings, BuildResult]) -> None:
    settings, _ = built
    rows = _query(
        settings.warehouse,
        "select table_name, table_schema, table_type from information_schema.tables "
        "where table_schema in ('staging', 'intermediate', 'marts')",
    )
    assert rows["stg_shop__orders"]["table_schema"] == "staging"
    assert rows["stg_shop__orders"]["table_type"] == "VIEW"
    assert rows["int_orders_costed"]["table_schema"] == "intermediate"
    assert rows["dim_customers"]["table_schema"] == "marts"
    assert rows["dim_customers"]["table_type"] == "BASE TABLE"
    assert len([r for r in rows.values() if r["table_schema"] == "staging"]) == len(EXPORT_FILES)


def test_fct_orders_counts_confirmed_paid_orders_only(orders: dict[str, dict[str, Any]]) -> None:
    assert sorted(orders) == ["O001", "O003", "O004", "O007", "O008", "O010"]


def test_fct_orders_sequence_and_days_since_previous(orders: dict[str, dict[str, Any]]) -> None:
    got = {k: (v["purchase_sequence_number"], v["days_since_previous_purchase"]) for k, v in orders.items()
           if v["customer_id"] == "C001"}
    # The cancelled O002 is skipped; O003 and O004 are two purchases on one day.
    assert got == {"O001": (1, None), "O003": (2, 40), "O004": (3, 0)}
    assert orders["O001"]["is_first_purchase"] is True
    assert orders["O004"]["is_first_purchase"] is False


def test_fct_orders_money_and_shipping(orders: dict[str, dict[str, Any]]) -> None:
    assert orders["O003"]["revenue"] == 9000
    assert orders["O003"]["unit_cost"] == 2 * 1200
    assert orders["O004"]["unit_cost"] == 1200 + 100
    assert orders["O001"]["media_code"] == "AFF01"
    assert orders["O001"]["ordered_date"] == date(2025, 5, 1)
    assert orders["O001"]["shipped_at"] == _ts("2025-05-02 10:00:00")
    assert orders["O004"]["shipped_at"] is None


def test_dim_customers_stage(customers: dict[str, dict[str, Any]]) -> None:
    assert {k: v["stage"] for k, v in customers.items()} == {
        "C001": "continuing",
        "C002": "dormant",  # last order exactly 180 days before run_date
        "C003": "initial",  # 179 days
        "C004": "prospect",  # cancelled order only
        "C005": "initial",
    }
    assert customers["C002"]["days_since_last_order"] == 180
    assert customers["C004"]["order_count"] == 0
    assert customers["C004"]["total_revenue"] == 0


def test_dim_customers_first_order_facts(customers: dict[str, dict[str, Any]]) -> None:
    hanako = customers["C001"]
    assert hanako["order_count"] == 3
    assert hanako["total_revenue"] == 1980 + 9000 + 5000
    assert hanako["first_order_date"] == date(2025, 5, 1)
    assert hanako["last_order_date"] == date(2025, 6, 10)
    assert hanako["acquisition_media_code"] == "AFF01"
    assert hanako["first_order_kind"] == "trial"
    assert hanako["first_shipped_at"] == _ts("2025-05-02 10:00:00")
    assert hanako["first_delivered_at"] == _ts("2025-05-03 14:00:00")
    assert customers["C002"]["acquisition_media_code"] == "SRCH01"


def test_dim_customers_subscription_status(customers: dict[str, dict[str, Any]]) -> None:
    assert customers["C001"]["subscription_status"] == "active"  # latest of cancelled S001, active S002
    assert customers["C001"]["latest_subscription_id"] == "S002"
    assert customers["C003"]["subscription_status"] == "paused"
    assert customers["C002"]["subscription_status"] == "none"


def test_dim_customers_age_band(customers: dict[str, dict[str, Any]]) -> None:
    assert (customers["C001"]["age"], customers["C001"]["age_band"]) == (39, "30s")  # birthday tomorrow
    assert (customers["C002"]["age"], customers["C002"]["age_band"]) == (75, "70+")
    assert (customers["C003"]["age"], customers["C003"]["age_band"]) == (None, None)
    assert (customers["C004"]["age"], customers["C004"]["age_band"]) == (22, "20s")  # birthday today
    assert customers["C001"]["as_of_date"] == RUN_DATE


def test_dim_customers_consent_per_channel(customers: dict[str, dict[str, Any]]) -> None:
    hanako = customers["C001"]
    assert hanako["has_email_consent"] is True
    assert hanako["has_line_consent"] is False  # withdrawn
    assert hanako["has_dm_consent"] is True
    assert hanako["has_sms_consent"] is False  # no row
    assert hanako["has_phone_consent"] is False
    assert customers["C002"]["has_phone_consent"] is True
    assert not any(customers["C004"][f"has_{c}_consent"] for c in ("email", "line", "sms", "dm", "phone"))


def test_dim_customers_contact_fields_and_erasure(customers: dict[str, dict[str, Any]]) -> None:
    hanako = customers["C001"]
    assert hanako["email"] == "hanako@example.jp"
    assert hanako["line_user_id"] == "U" + "a" * 32
    assert (hanako["postal_code"], hanako["prefecture"], hanako["city"]) == ("150-0001", "東京都", "渋谷区")
    assert (hanako["last_name"], hanako["first_name"]) == ("山田", "花子")
    assert hanako["is_erased"] is False
    erased = customers["C005"]
    assert erased["is_erased"] is True
    assert erased["erased_at"] == _ts("2025-06-15 10:00:00")
    personal = ("email", "phone", "last_name", "first_name", "birth_date", "age", "age_band", "postal_code")
    assert all(erased[c] is None for c in personal)
    assert erased["order_count"] == 1  # the figures stay


def test_failing_dbt_test_raises_kizuna_error_naming_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    rows = dict(RAW_ROWS)
    rows["customers"] = [*RAW_ROWS["customers"], RAW_ROWS["customers"][0]]  # the loader let a duplicate in
    create_raw_schema(settings.warehouse, rows)

    with pytest.raises(KizunaError) as caught:
        build_models(settings, RUN_DATE, select=["stg_shop__customers"])

    message = str(caught.value)
    assert "unique_stg_shop__customers_customer_id" in message
    assert "fail" in message
    assert "Traceback" not in message
    assert isinstance(caught.value, ModelBuildFailed)
    assert caught.value.result is not None
    failed = caught.value.result.node("unique_stg_shop__customers_customer_id")
    assert failed.failures == 1


def test_sources_yaml_matches_export_format() -> None:
    """The dbt sources describe exactly the raw tables the export format defines."""
    spec = yaml.safe_load((DBT_PROJECT / "models/staging/shop/_shop__sources.yml").read_text(encoding="utf-8"))
    (source,) = spec["sources"]
    assert source["schema"] == "raw"
    tables = {t["name"]: [c["name"] for c in t["columns"]] for t in source["tables"]}
    assert set(tables) == set(EXPORT_FILES_BY_TABLE)
    for name, columns in tables.items():
        expected = [*EXPORT_FILES_BY_TABLE[name].column_names, "_night", "_source_file", "_loaded_at"]
        assert columns == expected, name
    staging = {p.stem for p in (DBT_PROJECT / "models/staging/shop").glob("stg_shop__*.sql")}
    assert staging == {f"stg_shop__{t}" for t in tables}

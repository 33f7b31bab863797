"""The quality gates: Great Expectations on the night's batch and on the marts."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from kizuna import quality
from kizuna.errors import QualityGateFailed

NIGHT = date(2026, 11, 22)


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("create schema raw")
    con.execute("""create table raw.customers (customer_id varchar, email varchar, _night date)""")
    con.execute("""create table raw.orders (order_id varchar, customer_id varchar, status varchar, subtotal bigint,
                   discount bigint, shipping_fee bigint, total bigint, _night date)""")
    con.execute("""create table raw._load_log (night date, file_name varchar, rows_read bigint,
                   rows_quarantined bigint, status varchar)""")
    con.execute("insert into raw.customers values ('C1', 'hanako@example.jp', ?), ('C2', 'taro@example.jp', ?)",
                [NIGHT, NIGHT])
    con.execute("insert into raw._load_log values (?, 'orders.csv', 100, 0, 'loaded')", [NIGHT])
    yield con
    con.close()


def add_order(con, order_id, customer_id="C1", status="confirmed", subtotal=4980, discount=0, shipping=550,
              total=None, night=NIGHT):
    total = subtotal - discount + shipping if total is None else total
    con.execute("insert into raw.orders values (?, ?, ?, ?, ?, ?, ?, ?)",
                [order_id, customer_id, status, subtotal, discount, shipping, total, night])


def failed(result: quality.GateResult) -> set[tuple[str, str, str]]:
    return {(o.check.frame, o.check.column, o.check.severity) for o in result.errors + result.warnings}


def test_a_clean_night_passes(con):
    add_order(con, "O1")
    add_order(con, "O2", customer_id="C2", discount=500)
    result = quality.check_raw_night(con, NIGHT)
    assert failed(result) == set()
    assert result.passed == len(result.outcomes) == len(quality.RAW_NIGHT_CHECKS)
    result.raise_on_error()  # does not raise


@pytest.mark.parametrize(
    "bad_order, expected",
    [
        ({"order_id": "O9", "status": "shipped"}, ("orders", "status", "error")),
        ({"order_id": "O9", "total": 1}, ("orders", "total_adds_up", "error")),
        ({"order_id": "O9", "customer_id": "C404"}, ("orders", "customer_known", "error")),
        ({"order_id": "O9", "subtotal": -100, "total": -100, "shipping": 0}, ("orders", "total", "error")),
        ({"order_id": "O1"}, ("orders", "order_id", "error")),  # the same key twice in one night
    ],
)
def test_each_fault_is_named_with_table_column_and_examples(con, bad_order, expected):
    add_order(con, "O1")
    add_order(con, **bad_order)
    result = quality.check_raw_night(con, NIGHT)
    assert expected in failed(result)
    with pytest.raises(QualityGateFailed) as error:
        result.raise_on_error()
    message = str(error.value)
    assert f"{expected[0]}.{expected[1]}" in message and "nothing was modelled or sent" in message


def test_a_malformed_email_is_a_warning_that_does_not_stop_the_run(con):
    con.execute("insert into raw.customers values ('C3', 'ｈａｎａｋｏ@example.jp ', ?)", [NIGHT])
    add_order(con, "O1")
    result = quality.check_raw_night(con, NIGHT)
    assert failed(result) == {("customers", "email", "warning")}
    (warning,) = result.warnings
    assert warning.unexpected_count == 1 and "ｈａｎａｋｏ@example.jp " in warning.examples
    result.raise_on_error()


def test_a_night_with_many_quarantined_rows_stops_the_run(con):
    con.execute("insert into raw._load_log values (?, 'customers.csv', 100, 30, 'loaded')", [NIGHT])
    add_order(con, "O1")
    result = quality.check_raw_night(con, NIGHT)
    assert ("load_log", "quarantined_share", "error") in failed(result)


def test_only_the_nights_batch_is_judged(con):
    add_order(con, "O1")
    add_order(con, "O0", status="shipped", night=date(2026, 11, 1))  # an old night's problem
    assert failed(quality.check_raw_night(con, NIGHT)) == set()


def test_mart_gate_catches_a_duplicated_customer(con):
    con.execute("create schema marts")
    con.execute("create table marts.dim_customers as select * from (values ('C1', 'initial'), ('C1', 'initial'), "
                "('C2', 'vip')) t(customer_id, stage)")
    result = quality.check_marts(con)
    assert failed(result) == {("dim_customers", "customer_id", "error"), ("dim_customers", "stage", "error")}

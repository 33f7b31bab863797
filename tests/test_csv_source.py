"""The CSV source connector: encodings, validation, quarantine, merge, load log, archive."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import duckdb
import pytest

from connectors.sources.csv_export import CsvExportSource
from connectors.sources.export_format import EXPORT_FILES, EXPORT_FILES_BY_TABLE
from connectors.sources.loader import load_night, load_pending
from kizuna.docs_export_format import render_export_format_doc
from kizuna.errors import ExportError

N1, N2, N3 = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)

CUSTOMERS = [
    {"customer_id": "C001", "last_name": "山田", "first_name": "花子", "last_name_kana": "ヤマダ",
     "first_name_kana": "ハナコ", "gender": "female", "birth_date": "1980-04-01", "email": "hanako@example.jp",
     "prefecture": "東京都", "city": "渋谷区", "registered_at": "2025-02-01 10:00:00",
     "updated_at": "2025-02-01 10:00:00"},
    {"customer_id": "C002", "last_name": "佐藤", "first_name": "健太", "prefecture": "大阪府",
     "registered_at": "2025-02-03 12:30:00", "updated_at": "2025-02-03 12:30:00"},
    {"customer_id": "C003", "last_name": "鈴木", "first_name": "美咲", "prefecture": "北海道",
     "registered_at": "2025-02-04 08:00:00", "updated_at": "2025-02-04 08:00:00"},
]


def order(order_id: str, status: str = "confirmed", updated_at: str = "2025-03-01 09:00:00", **kw) -> dict:
    row = {"order_id": order_id, "customer_id": "C001", "ordered_at": "2025-03-01 09:00:00", "status": status,
           "order_kind": "trial", "media_code": "AF01", "subtotal": "1980", "discount": "0",
           "shipping_fee": "0", "total": "1980", "payment_method": "credit_card", "updated_at": updated_at}
    row.update(kw)
    return row


def csv_text(table: str, rows: list[dict], columns: list[str] | None = None) -> str:
    columns = columns or EXPORT_FILES_BY_TABLE[table].column_names
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([r.get(c, "") for c in columns])
    return buf.getvalue()


def write(exports: Path, night: date, table: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    path = exports / night.isoformat() / f"{table}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


@pytest.fixture
def env(tmp_path):
    exports, archive = tmp_path / "exports", tmp_path / "archive"
    exports.mkdir()
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield exports, archive, con
    con.close()


def snapshot(con) -> dict:
    tables = [f.table for f in EXPORT_FILES] + ["_load_log", "_quarantine"]
    return {t: sorted(map(repr, con.execute(f"select * from raw.{t}").fetchall())) for t in tables}


def test_cp932_export_with_malformed_rows_loads_the_rest_and_quarantines_them(env):
    exports, archive, con = env
    text = csv_text("customers", CUSTOMERS)
    bad_date = CUSTOMERS[1] | {"customer_id": "C009", "birth_date": "1990/13/45"}
    text += "C010,高橋,一郎\r\n"  # wrong number of fields
    text += csv_text("customers", [bad_date]).split("\r\n", 1)[1]
    write(exports, N1, "customers", text, encoding="cp932")
    write(exports, N1, "orders", csv_text("orders", [order("O1")]), encoding="cp932")

    [result] = load_pending(con, CsvExportSource(exports), through=N1, archive_dir=archive)

    names = con.execute("select customer_id, last_name, first_name, prefecture from raw.customers "
                        "order by 1").fetchall()
    assert names == [("C001", "山田", "花子", "東京都"), ("C002", "佐藤", "健太", "大阪府"),
                     ("C003", "鈴木", "美咲", "北海道")]
    customers = next(f for f in result.files if f.file_name == "customers.csv")
    assert customers.encoding == "cp932"
    assert (customers.rows_read, customers.rows_inserted, customers.rows_quarantined) == (5, 3, 2)
    quarantined = con.execute("select line, key, reason, raw_row from raw._quarantine order by line").fetchall()
    assert quarantined[0][:2] == (5, None) and "cannot be parsed as CSV" in quarantined[0][2]
    assert "高橋" in quarantined[0][3]
    assert quarantined[1][:2] == (6, "C009")
    assert "birth_date" in quarantined[1][2] and "1990/13/45" in quarantined[1][2]
    assert "高橋" not in quarantined[1][3] and "佐藤" in quarantined[1][3]
    assert result.rows_quarantined == 2 and "2 quarantined" in result.summary()


def test_a_missing_required_column_fails_the_night_and_writes_nothing(env):
    exports, archive, con = env
    source = CsvExportSource(exports)
    write(exports, N1, "customers", csv_text("customers", CUSTOMERS))
    write(exports, N1, "orders", csv_text("orders", [order("O1")]))
    load_pending(con, source, through=N1, archive_dir=archive)
    before = snapshot(con)

    # Night 2: customers would load fine, but orders lacks `total`: nothing of night 2 may land.
    write(exports, N2, "customers", csv_text("customers", [CUSTOMERS[0] | {"city": "新宿区",
                                                                           "updated_at": "2025-03-02 08:00:00"}]))
    columns = [c for c in EXPORT_FILES_BY_TABLE["orders"].column_names if c != "total"]
    write(exports, N2, "orders", csv_text("orders", [order("O2")], columns=columns))
    with pytest.raises(ExportError) as err:
        load_pending(con, source, through=N2, archive_dir=archive)
    message = str(err.value)
    assert "orders.csv" in message and "total" in message and "Found: order_id" in message
    assert snapshot(con) == before
    assert not (archive / N2.isoformat()).exists()


def test_a_failure_while_writing_rolls_back_the_files_already_merged(env, monkeypatch):
    from connectors.sources import loader

    exports, archive, con = env
    source = CsvExportSource(exports)
    write(exports, N1, "customers", csv_text("customers", CUSTOMERS[:1]))
    load_pending(con, source, through=N1, archive_dir=archive)
    before = snapshot(con)
    write(exports, N2, "customers", csv_text("customers", CUSTOMERS[1:]))
    write(exports, N2, "orders", csv_text("orders", [order("O1")]))
    real = loader._load_file

    def failing(con, p, *args):
        if p.ref.table == "orders":
            raise ExportError("orders.csv: simulated failure after customers.csv was merged")
        return real(con, p, *args)

    monkeypatch.setattr(loader, "_load_file", failing)
    with pytest.raises(ExportError, match="simulated"):
        load_pending(con, source, through=N2, archive_dir=archive)
    assert snapshot(con) == before
    monkeypatch.setattr(loader, "_load_file", real)
    [result] = load_pending(con, source, through=N2, archive_dir=archive)
    assert result.rows_inserted == 3


def test_loading_the_same_night_twice_changes_nothing(env):
    exports, archive, con = env
    source = CsvExportSource(exports)
    write(exports, N1, "customers", csv_text("customers", CUSTOMERS))
    write(exports, N1, "orders", csv_text("orders", [order("O1"), order("O2", total="x")]))
    assert len(load_pending(con, source, through=N1, archive_dir=archive)) == 1
    before = snapshot(con)

    assert load_pending(con, source, through=N1, archive_dir=archive) == []
    again = load_night(con, source, N1, archive_dir=archive)
    assert {f.status for f in again.files} == {"skipped"}
    assert again.rows_read == again.rows_inserted == again.rows_quarantined == 0
    assert "nothing new" in again.summary()
    after = snapshot(con)
    for table in before:
        if table != "_load_log":
            assert after[table] == before[table], table
    assert con.execute("select count(*) from raw._load_log where status = 'loaded'").fetchone()[0] == 2


def test_newer_versions_win_and_older_ones_change_nothing(env):
    exports, archive, con = env
    source = CsvExportSource(exports)
    write(exports, N1, "customers", csv_text("customers", CUSTOMERS))
    write(exports, N1, "orders", csv_text("orders", [order("O1"), order("O2"), order("O3")]))
    # Night 2: O1 cancelled (newer), O2 with an older version (stale re-send), O4 new.
    write(exports, N2, "orders", csv_text("orders", [
        order("O1", "cancelled", "2025-03-02 11:00:00"),
        order("O2", "returned", "2025-02-28 09:00:00"),
        order("O4", updated_at="2025-03-02 12:00:00"),
    ]))
    # Night 3: the same key twice in one file: the newest updated_at wins, the other is quarantined.
    write(exports, N3, "orders", csv_text("orders", [
        order("O3", "returned", "2025-03-03 15:00:00"),
        order("O3", "cancelled", "2025-03-03 10:00:00"),
    ]))
    results = load_pending(con, source, through=N3, archive_dir=archive)
    assert [r.night for r in results] == [N1, N2, N3]
    n2 = results[1].files[0]
    assert (n2.rows_read, n2.rows_inserted, n2.rows_updated, n2.rows_unchanged) == (3, 1, 1, 1)
    n3 = results[2].files[0]
    assert (n3.rows_read, n3.rows_updated, n3.rows_quarantined) == (2, 1, 1)
    rows = dict(con.execute("select order_id, status || ' ' || _night || ' ' || _source_file "
                            "from raw.orders").fetchall())
    assert rows == {"O1": "cancelled 2025-03-02 2025-03-02/orders.csv",
                    "O2": "confirmed 2025-03-01 2025-03-01/orders.csv",
                    "O3": "returned 2025-03-03 2025-03-03/orders.csv",
                    "O4": "confirmed 2025-03-02 2025-03-02/orders.csv"}
    line, reason = con.execute("select line, reason from raw._quarantine").fetchone()
    assert line == 3 and reason.startswith("duplicate key in file") and "line 2" in reason
    assert con.execute("select typeof(ordered_at), typeof(total) from raw.orders limit 1").fetchone() == (
        "TIMESTAMP", "BIGINT")


def test_utf8_with_bom_and_a_changed_file_is_loaded_again(env):
    exports, archive, con = env
    source = CsvExportSource(exports, encoding="auto")
    path = write(exports, N1, "customers", "\ufeff" + csv_text("customers", CUSTOMERS[:2]), encoding="utf-8")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    [first] = load_pending(con, source, through=N1, archive_dir=archive)
    assert first.files[0].encoding == "utf-8" and first.files[0].rows_inserted == 2
    assert con.execute("select last_name from raw.customers where customer_id = 'C001'").fetchone() == ("山田",)

    # The shop re-sends night 1 with one more customer: only the changed file is loaded again.
    write(exports, N1, "customers", "\ufeff" + csv_text("customers", CUSTOMERS), encoding="utf-8")
    [again] = load_pending(con, source, through=N1, archive_dir=archive)
    assert (again.files[0].rows_read, again.files[0].rows_inserted, again.files[0].rows_unchanged) == (3, 1, 2)
    assert (archive / N1.isoformat() / "customers.csv").read_bytes() == path.read_bytes()
    assert len(list((archive / N1.isoformat()).glob("customers.*.csv"))) == 1  # the first version, kept


def test_archive_copies_are_identical_and_the_load_log_counts(env):
    exports, archive, con = env
    source = CsvExportSource(exports)
    (exports / "shop.json").write_text("{}")
    (exports / "archive").mkdir()
    write(exports, N1, "customers", csv_text("customers", CUSTOMERS))
    write(exports, N1, "orders", csv_text("orders", [order("O1"), order("O2", ordered_at="昨日")]))
    write(exports, N2, "orders", csv_text("orders", [order("O1", "cancelled", "2025-03-02 10:00:00")]))
    assert source.nights() == [N1, N2]
    results = load_pending(con, source, through=N1, archive_dir=archive)
    assert [r.night for r in results] == [N1]  # `through` is respected
    load_pending(con, source, through=N2, archive_dir=archive)

    for night, table in [(N1, "customers"), (N1, "orders"), (N2, "orders")]:
        original = exports / night.isoformat() / f"{table}.csv"
        assert (archive / night.isoformat() / f"{table}.csv").read_bytes() == original.read_bytes()
        assert original.exists()
    logged = con.execute("""select night, file_name, rows_read, rows_inserted, rows_updated, rows_quarantined,
        status, length(checksum) from raw._load_log order by night, file_name""").fetchall()
    assert logged == [(N1, "customers.csv", 3, 3, 0, 0, "loaded", 64), (N1, "orders.csv", 2, 1, 0, 1, "loaded", 64),
                      (N2, "orders.csv", 1, 0, 1, 0, "loaded", 64)]
    assert "ordered_at" in con.execute("select reason from raw._quarantine").fetchone()[0]

    # A lost archive copy is made again on the next run, without loading anything twice.
    (archive / N2.isoformat() / "orders.csv").unlink()
    assert load_pending(con, source, through=N2, archive_dir=archive) == []
    assert (archive / N2.isoformat() / "orders.csv").read_bytes() == (exports / "2025-03-02/orders.csv").read_bytes()
    assert con.execute("select count(*) from raw._quarantine").fetchone()[0] == 1


def test_undecodable_files_and_strict_utf8_give_clear_errors(env):
    exports, archive, con = env
    write(exports, N1, "customers", csv_text("customers", CUSTOMERS).encode("cp932") + b"\x81\x00\xff\r\n")
    with pytest.raises(ExportError, match=r"customers\.csv.*CP932.*byte offset"):
        load_pending(con, CsvExportSource(exports), through=N1, archive_dir=archive)
    write(exports, N1, "customers", csv_text("customers", CUSTOMERS), encoding="cp932")
    with pytest.raises(ExportError, match=r"customers\.csv: not valid UTF-8 at byte offset .* \(line 2\)"):
        load_pending(con, CsvExportSource(exports, encoding="utf-8"), through=N1, archive_dir=archive)
    [ok] = load_pending(con, CsvExportSource(exports, encoding="cp932"), through=N1, archive_dir=archive)
    assert ok.rows_inserted == 3


@pytest.mark.parametrize(("column", "value"), [
    ("total", "1980.5"), ("total", "0x10"), ("total", "１９８０"), ("ordered_at", "2025/03/01 09:00:00"),
    ("ordered_at", "2025-03-01 09:00:00+00:00"), ("ordered_at", "2025-02-30 09:00:00"), ("delivery_number", "1e3"),
])
def test_values_that_are_not_exactly_in_the_format_are_quarantined(env, column, value):
    exports, archive, con = env
    write(exports, N1, "orders", csv_text("orders", [order("O1"), order("O2", **{column: value})]))
    [result] = load_pending(con, CsvExportSource(exports), through=N1, archive_dir=archive)
    assert (result.rows_inserted, result.rows_quarantined) == (1, 1)
    reason = con.execute("select reason from raw._quarantine").fetchone()[0]
    assert reason.startswith(f"{column}: '{value}' is not a valid")


def test_optional_columns_may_be_missing_and_unknown_ones_are_ignored(env, caplog):
    exports, archive, con = env
    columns = EXPORT_FILES_BY_TABLE["customers"].required_columns + ["会員ランク", "", ""]
    rows = [r | {"会員ランク": "ゴールド"} for r in CUSTOMERS] + [{"customer_id": "C004", "last_name": "伊藤"}]
    write(exports, N1, "customers", csv_text("customers", rows, columns))
    write(exports, N1, "orders", "")  # empty file: nothing that night for orders
    [result] = load_pending(con, CsvExportSource(exports), through=N1, archive_dir=archive)
    assert result.rows_inserted == 3 and any("会員ランク" in w for w in result.warnings)
    assert result.rows_quarantined == 1
    reason, raw_row = con.execute("select reason, raw_row from raw._quarantine").fetchone()
    assert "first_name: required but empty" in reason and "伊藤" in raw_row and "column 7" in raw_row
    assert con.execute("select count(*) from raw.customers where email is null").fetchone()[0] == 3


def test_the_export_format_doc_covers_every_file_and_column():
    doc = render_export_format_doc()
    for spec in EXPORT_FILES:
        assert f"`{spec.file_name}`" in doc
        for column in spec.columns:
            assert f"`{column.name}`" in doc
    for topic in ("CP932", "BOM", "quarantine", "_load_log", "archive", "updated_at"):
        assert topic in doc
    written = Path(__file__).resolve().parent.parent / "docs" / "export-format.md"
    assert written.read_text(encoding="utf-8") == doc, "run `kizuna docs export-format`"

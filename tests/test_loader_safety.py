"""The loader never trusts an unchecked night and never destroys.

Real CSV folders in tmp dirs, a real DuckDB file, and a small real gate (SQL on the
night's rows, raising `QualityGateFailed`) standing in for the data-quality gate.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from connectors.sources.base import ExportFileRef
from connectors.sources.csv_export import CsvExportSource
from connectors.sources.export_format import EXPORT_FILES_BY_TABLE
from connectors.sources.loader import MAX_RECORD_BYTES, load_night, load_pending
from kizuna.errors import ExportError, NightRejected, QualityGateFailed
from test_csv_source import CUSTOMERS, csv_text, env, order, snapshot, write  # noqa: F401  (env: a fixture)

N28, N29, N30 = date(2026, 11, 28), date(2026, 11, 29), date(2026, 11, 30)




class TotalsGate:
    """Tonight's orders must have total = subtotal - discount + shipping_fee; the original
    files must be where the gate is told they are. Records every night it checks."""

    def __init__(self) -> None:
        self.checked: list[date] = []

    def __call__(self, con, night, files_dir):
        assert files_dir is not None and (files_dir / "orders.csv").is_file()
        self.checked.append(night)
        bad = con.execute("""select order_id from raw.orders where _night = ?
            and total <> subtotal - discount + shipping_fee order by 1""", [night]).fetchall()
        if bad:
            raise QualityGateFailed(f"orders.total_matches: {len(bad)} order(s) whose total is not "
                                    f"subtotal - discount + shipping_fee: {', '.join(r[0] for r in bad)}")
        return {"night": night, "orders": con.execute(
            "select count(*) from raw.orders where _night = ?", [night]).fetchone()[0]}


def night_rows(con, night: date) -> int:
    """Rows of `night` anywhere in raw: every table, the quarantine, `loaded` load-log rows."""
    tables = [t for t in EXPORT_FILES_BY_TABLE]
    n = sum(con.execute(f"select count(*) from raw.{t} where _night = ?", [night]).fetchone()[0] for t in tables)
    n += con.execute("select count(*) from raw._quarantine where night = ?", [night]).fetchone()[0]
    n += con.execute("select count(*) from raw._load_log where night = ? and status <> 'rejected'",
                     [night]).fetchone()[0]
    return n


def orders_night(exports: Path, night: date, *rows: dict) -> None:
    write(exports, night, "orders", csv_text("orders", list(rows)))


# -- gate before trust ---------------------------------------------------------------------


def test_a_refused_night_keeps_nothing_and_later_nights_wait_until_it_is_fixed(env):
    exports, archive, con = env
    gate, source = TotalsGate(), CsvExportSource(exports)
    orders_night(exports, N28, order("O1", updated_at="2026-11-28 09:00:00"))
    write(exports, N29, "customers", csv_text("customers", [CUSTOMERS[1] | {"updated_at": "2026-11-29 08:00:00"}]))
    orders_night(exports, N29, order("O2", updated_at="2026-11-29 09:00:00"),
                 order("O3", updated_at="2026-11-29 10:00:00", total="99999"))
    orders_night(exports, N30, order("O4", updated_at="2026-11-30 09:00:00"))

    with pytest.raises(NightRejected) as err:
        load_pending(con, source, through=N30, archive_dir=archive, gate=gate)
    e = err.value
    assert e.night == N29 and isinstance(e.cause, QualityGateFailed)
    assert [r.night for r in e.loaded] == [N28] and e.loaded[0].gate == {"night": N28, "orders": 1}
    message = str(e)
    # KIZUNA_LOCALE=ja, the default
    assert "夜 2026-11-29 はチェックで拒否された" in message and "O3" in message and "total_matches" in message
    assert "チェック済みの夜（保持）: 2026-11-28" in message and "待っています: 2026-11-30" in message
    assert "エクスポートフォルダの夜 2026-11-29 のファイルを直し" in message
    assert gate.checked == [N28, N29]  # night 30 was neither loaded nor checked
    assert night_rows(con, N29) == night_rows(con, N30) == 0
    assert con.execute("select count(*) from raw.customers").fetchone()[0] == 0
    rejected = con.execute("""select file_name, reason from raw._load_log where night = ? and status = 'rejected'
        order by 1""", [N29]).fetchall()
    assert [r[0] for r in rejected] == ["customers.csv", "orders.csv"] and "O3" in rejected[0][1]
    assert not (archive / N29.isoformat()).exists() and not (archive / N30.isoformat()).exists()

    # Unchanged files: the night is still not loaded, so it is loaded and checked again (and refused again).
    with pytest.raises(NightRejected):
        load_pending(con, source, through=N30, archive_dir=archive, gate=gate)
    assert gate.checked == [N28, N29, N29] and night_rows(con, N29) == 0

    # The shop fixes night 29: both nights load, each checked before it is committed.
    orders_night(exports, N29, order("O2", updated_at="2026-11-29 09:00:00"),
                 order("O3", updated_at="2026-11-29 10:00:00"))
    results = load_pending(con, source, through=N30, archive_dir=archive, gate=gate)
    assert [(r.night, r.gate) for r in results] == [(N29, {"night": N29, "orders": 2}),
                                                    (N30, {"night": N30, "orders": 1})]
    assert gate.checked == [N28, N29, N29, N29, N30]
    assert con.execute("select count(*) from raw.orders").fetchone()[0] == 4
    assert con.execute("select count(*) from raw.customers").fetchone()[0] == 1
    assert (archive / N29.isoformat() / "orders.csv").read_bytes() == (exports / "2026-11-29/orders.csv").read_bytes()
    assert load_pending(con, source, through=N30, archive_dir=archive, gate=gate) == []
    assert gate.checked == [N28, N29, N29, N29, N30]  # nothing new: nothing to check


def test_a_late_folder_for_an_older_night_and_a_resent_file_are_checked(env):
    exports, archive, con = env
    gate, source = TotalsGate(), CsvExportSource(exports)
    orders_night(exports, N30, order("O4", updated_at="2026-11-30 09:00:00"))
    assert [r.night for r in load_pending(con, source, through=N30, archive_dir=archive, gate=gate)] == [N30]

    # Night 29 turns up late, broken: it is checked and refused; night 30 stays as it was.
    orders_night(exports, N29, order("O2", updated_at="2026-11-29 09:00:00", total="1"))
    before = snapshot(con)
    with pytest.raises(NightRejected) as err:
        load_pending(con, source, through=N30, archive_dir=archive, gate=gate)
    assert err.value.night == N29 and err.value.loaded == [] and gate.checked == [N30, N29]
    assert "それより前に取り込んだ夜はありません" in str(err.value)
    assert {t: v for t, v in snapshot(con).items() if t != "_load_log"} == \
           {t: v for t, v in before.items() if t != "_load_log"}

    # A re-sent file of a loaded night is checked too; refused, the earlier version stays.
    orders_night(exports, N30, order("O4", "cancelled", updated_at="2026-11-30 12:00:00", total="5"))
    (exports / "2026-11-29" / "orders.csv").unlink()  # night 29 withdrawn: nothing of it to load
    with pytest.raises(NightRejected) as err:
        load_pending(con, source, through=N30, archive_dir=archive, gate=gate)
    assert err.value.night == N30 and gate.checked == [N30, N29, N30]
    assert con.execute("select status from raw.orders where order_id = 'O4'").fetchone() == ("confirmed",)
    orders_night(exports, N30, order("O4", "cancelled", updated_at="2026-11-30 12:00:00"))
    [again] = load_pending(con, source, through=N30, archive_dir=archive, gate=gate)
    assert again.night == N30 and again.rows_updated == 1 and gate.checked[-1] == N30
    assert con.execute("select status from raw.orders where order_id = 'O4'").fetchone() == ("cancelled",)


def test_a_bad_file_stops_the_run_and_reports_the_nights_kept(env):
    exports, archive, con = env
    source = CsvExportSource(exports)
    orders_night(exports, N28, order("O1", updated_at="2026-11-28 09:00:00"))
    columns = [c for c in EXPORT_FILES_BY_TABLE["orders"].column_names if c != "total"]
    write(exports, N29, "orders", csv_text("orders", [order("O2")], columns=columns))
    orders_night(exports, N30, order("O4", updated_at="2026-11-30 09:00:00"))
    with pytest.raises(ExportError) as err:
        load_pending(con, source, through=N30, archive_dir=archive)
    e = err.value
    assert isinstance(e, NightRejected) and e.night == N29 and [r.night for r in e.loaded] == [N28]
    assert "2026-11-29/orders.csv: required column(s) total missing" in str(e)
    assert "取り込んだ夜（保持）: 2026-11-28" in str(e) and "待っています: 2026-11-30" in str(e)
    assert night_rows(con, N28) > 0 and night_rows(con, N29) == night_rows(con, N30) == 0
    assert con.execute("select count(*) from raw._load_log where status = 'rejected'").fetchone()[0] == 0


# -- bounded versions ----------------------------------------------------------------------


def test_a_row_from_the_future_never_locks_its_key(env):
    exports, archive, con = env
    source = CsvExportSource(exports)
    n1, n2, n3, n4 = (date(2025, 3, d) for d in (1, 2, 3, 4))
    c001 = CUSTOMERS[0]
    write(exports, n1, "customers", csv_text("customers", [c001]))
    write(exports, n2, "customers", csv_text("customers", [
        c001 | {"last_name": "未来", "updated_at": "9999-12-31 00:00:00"},
        CUSTOMERS[1] | {"updated_at": "2025-03-03 23:59:59"},  # within the night's end + 1 day: loaded
    ]))
    write(exports, n3, "customers", csv_text("customers", [c001 | {"last_name": "山本",
                                                                   "updated_at": "2025-03-03 10:00:00"}]))
    erased = c001 | {"last_name": "山本", "deleted_at": "2025-03-04 09:00:00", "updated_at": "2025-03-04 09:00:00"}
    write(exports, n4, "customers", csv_text("customers", [erased]))
    results = load_pending(con, source, through=n4, archive_dir=archive)
    assert [(r.night, r.rows_quarantined) for r in results] == [(n1, 0), (n2, 1), (n3, 0), (n4, 0)]
    line, key, reason = con.execute("select line, key, reason from raw._quarantine").fetchone()
    assert (line, key) == (2, "C001")
    assert reason.startswith("updated_at 9999-12-31 00:00:00 is after the night's end + 1 day: 2025-03-04 00:00:00")
    assert con.execute("select last_name, deleted_at is not null from raw.customers where customer_id = 'C001'"
                       ).fetchone() == ("山本", True)
    assert con.execute("select count(*) from raw.customers").fetchone()[0] == 2


def test_the_slack_is_a_setting_and_an_already_stored_future_version_is_replaced(env):
    exports, archive, con = env
    source = CsvExportSource(exports)
    n1, n2 = date(2025, 3, 1), date(2025, 3, 2)
    write(exports, n1, "customers", csv_text("customers", [CUSTOMERS[0] | {"updated_at": "2025-03-02 13:00:00"}]))
    [r] = load_pending(con, source, through=n1, archive_dir=archive, future_slack=timedelta(hours=12))
    assert r.rows_quarantined == 1
    assert "after the night's end + 12 hours: 2025-03-02 12:00:00" in con.execute(
        "select reason from raw._quarantine").fetchone()[0]

    # A warehouse loaded before such rows were refused: the key holds a version from the future.
    con.execute("""insert into raw.customers (customer_id, last_name, first_name, registered_at, updated_at,
        _night, _source_file, _loaded_at) values ('C009', '未来', '太郎', '2025-02-01', '9999-12-31', ?,
        '2025-03-01/customers.csv', now())""", [n1])
    write(exports, n2, "customers", csv_text("customers", [CUSTOMERS[2] | {
        "customer_id": "C009", "last_name": "訂正", "updated_at": "2025-03-02 09:00:00"}]))
    [r] = load_pending(con, source, through=n2, archive_dir=archive)
    assert r.rows_updated == 1
    assert con.execute("select last_name, updated_at::varchar from raw.customers where customer_id = 'C009'"
                       ).fetchone() == ("訂正", "2025-03-02 09:00:00")


# -- loads never destroy -------------------------------------------------------------------


def test_a_file_without_optional_columns_keeps_the_stored_values(env):
    exports, archive, con = env
    source = CsvExportSource(exports)
    n1, n2 = date(2025, 3, 1), date(2025, 3, 2)
    full = [CUSTOMERS[0] | {"phone": "090-1111-2222", "postal_code": "150-0001", "address_line": "1-2-3",
                            "deleted_at": "2025-02-20 10:00:00"}, CUSTOMERS[1] | {"email": "kenta@example.jp"}]
    write(exports, n1, "customers", csv_text("customers", full))
    load_pending(con, source, through=n1, archive_dir=archive)
    required = EXPORT_FILES_BY_TABLE["customers"].required_columns
    write(exports, n2, "customers", csv_text("customers", [
        full[0] | {"first_name": "花", "updated_at": "2025-03-02 08:00:00"},
        full[1] | {"last_name": "佐藤木", "updated_at": "2025-03-02 08:00:00"},
        CUSTOMERS[2] | {"updated_at": "2025-03-02 08:00:00"},
    ], columns=required))
    [r] = load_pending(con, source, through=n2, archive_dir=archive)
    assert (r.rows_updated, r.rows_inserted) == (2, 1)
    rows = con.execute("""select customer_id, last_name, first_name, email, phone, postal_code, prefecture,
        address_line, deleted_at::varchar, _night from raw.customers order by 1""").fetchall()
    assert rows == [
        ("C001", "山田", "花", "hanako@example.jp", "090-1111-2222", "150-0001", "東京都", "1-2-3",
         "2025-02-20 10:00:00", n2),
        ("C002", "佐藤木", "健太", "kenta@example.jp", None, None, "大阪府", None, None, n2),
        ("C003", "鈴木", "美咲", None, None, None, None, None, None, n2),
    ]


# -- no symlinks followed ------------------------------------------------------------------


def test_symbolic_links_are_refused_by_name_and_never_read(env, tmp_path):
    exports, archive, con = env
    source = CsvExportSource(exports)
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    outside = tmp_path / "elsewhere" / "customers.csv"
    outside.parent.mkdir()
    outside.write_text(csv_text("customers", CUSTOMERS), encoding="utf-8")
    n1, n2, n3 = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)
    orders_night(exports, n1, order("O1"))
    (exports / "2025-03-02").mkdir()
    (exports / "2025-03-02" / "customers.csv").symlink_to(secret)

    with pytest.raises(NightRejected) as err:
        load_pending(con, source, through=n2, archive_dir=archive)
    message = str(err.value)
    assert "2025-03-02/customers.csv is a symbolic link" in message and "root" not in message
    assert [r.night for r in err.value.loaded] == [n1]

    (exports / "2025-03-02" / "customers.csv").unlink()
    (exports / "2025-03-02" / "customers.csv").symlink_to(outside)
    with pytest.raises(ExportError, match=r"2025-03-02/customers\.csv is a symbolic link"):
        load_pending(con, source, through=n2, archive_dir=archive)
    (exports / "2025-03-02" / "customers.csv").unlink()
    (exports / "2025-03-03").symlink_to(outside.parent, target_is_directory=True)
    with pytest.raises(ExportError, match=r"night folder 2025-03-03 is a symbolic link"):
        load_pending(con, source, through=n3, archive_dir=archive)
    assert con.execute("select count(*) from raw.customers").fetchone()[0] == 0
    assert not list(archive.glob("2025-03-0[23]/*"))

    # A source that hands the loader a link anyway: the loader refuses it itself.
    spec = EXPORT_FILES_BY_TABLE["customers"]
    (exports / "2025-03-02" / "customers.csv").symlink_to(outside)
    with pytest.raises(ExportError, match=r"2025-03-02/customers\.csv is a symbolic link"):
        load_night(con, source, n2, refs=[ExportFileRef(n2, spec, exports / "2025-03-02" / "customers.csv")])
    assert con.execute("select count(*) from raw.customers").fetchone()[0] == 0


def test_the_header_in_an_error_is_bounded(env):
    exports, archive, con = env
    names = [f"column_{i:03d}_" + "x" * 60 for i in range(100)]
    write(exports, date(2025, 3, 1), "customers", ",".join(names) + "\r\n" + ",".join("v" * 100) + "\r\n")
    with pytest.raises(ExportError) as err:
        load_pending(con, CsvExportSource(exports), through=date(2025, 3, 1), archive_dir=archive)
    found = str(err.value).split("Found: ", 1)[1].split(". Expected", 1)[0]
    shown = found.split(" and ")[0].split(", ")
    assert len(shown) == 20 and all(len(n) <= 40 for n in shown) and found.endswith(" and 80 more")

    write(exports, date(2025, 3, 1), "customers", "x" * 200_000)  # no line break at all
    with pytest.raises(ExportError, match="first line is longer than 65,536 bytes") as err:
        load_pending(con, CsvExportSource(exports), through=date(2025, 3, 1), archive_dir=archive)
    assert len(str(err.value)) < 500


# -- every ignored entry named -------------------------------------------------------------


def test_every_ignored_entry_is_named_with_the_reason(env, caplog, monkeypatch):
    from kizuna.config import get_settings

    monkeypatch.setenv("KIZUNA_LOCALE", "en")  # the notes' English source wording, listed exactly
    get_settings.cache_clear()
    exports, archive, con = env
    n1 = date(2025, 3, 1)
    orders_night(exports, n1, order("O1"))
    (exports / "shop.json").write_text("{}")
    (exports / ".DS_Store").write_bytes(b"\0")
    for folder in ("2026-13-40", "foo", "2025-3-2"):
        (exports / folder).mkdir()
    (exports / "notes.txt").write_text("hello")
    write(exports, n1, "order", csv_text("orders", [order("O2")]))  # order.csv: a typo
    (exports / "2025-03-01" / "old").mkdir()
    (exports / "2025-03-01" / ".hidden").write_text("")

    source = CsvExportSource(exports)
    assert source.ignored() == [
        "2025-3-2/: ignored: not a night folder (named YYYY-MM-DD); did you mean 2025-03-02?",
        "2026-13-40/: ignored: not a night folder, 2026-13-40 is not a valid date",
        "foo/: ignored: not a night folder (a night folder is named YYYY-MM-DD, e.g. 2025-03-01)",
        "notes.txt: ignored: a file in the exports folder, which holds only night folders (YYYY-MM-DD)",
        "2025-03-01/old/: ignored: a folder inside a night folder (export files are read only directly "
        "from the night folder)",
        "2025-03-01/order.csv: ignored: not an export file name; did you mean orders.csv?",
    ]
    assert source.nights() == [n1]
    with caplog.at_level(logging.WARNING, logger="kizuna.loader"):
        [r] = load_pending(con, source, through=n1, archive_dir=archive)
    assert r.ignored == source.ignored(n1) and "2 other entries ignored" in r.summary()
    logged = caplog.text
    assert "2026-13-40 is not a valid date" in logged and "did you mean orders.csv?" in logged
    assert "shop.json" not in logged and ".DS_Store" not in logged
    monkeypatch.setenv("KIZUNA_LOCALE", "ja")  # and in the team's language
    get_settings.cache_clear()
    assert "2025-03-01/order.csv: 無視しました。エクスポートファイルの名前ではありません。orders.csv のことですか？" in \
        source.ignored()
    get_settings.cache_clear()


# -- clear errors for odd files ------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["auto", "cp932", "utf-8"])
def test_a_bom_before_a_cp932_body_is_named(env, encoding):
    exports, archive, con = env
    n1 = date(2025, 3, 1)
    body = csv_text("customers", CUSTOMERS).encode("cp932")
    write(exports, n1, "customers", b"\xef\xbb\xbf" + body)
    with pytest.raises(ExportError) as err:
        load_pending(con, CsvExportSource(exports, encoding=encoding), through=n1, archive_dir=archive)
    offset = 3 + body.index("山".encode("cp932"))
    message = str(err.value)
    assert "customers.csv: starts with a UTF-8 byte-order mark (BOM) but is not UTF-8 after it" in message
    assert f"byte offset {offset:,} (line 2)" in message and "the rest of the file is CP932" in message


def test_a_bom_utf8_file_is_read_as_utf8_even_when_cp932_is_set(env):
    exports, archive, con = env
    n1 = date(2025, 3, 1)
    write(exports, n1, "customers", "\ufeff" + csv_text("customers", CUSTOMERS))
    [r] = load_pending(con, CsvExportSource(exports, encoding="cp932"), through=n1, archive_dir=archive)
    assert r.files[0].encoding == "utf-8" and r.rows_inserted == 3
    assert any("byte-order mark" in w for w in r.warnings)
    assert con.execute("select last_name from raw.customers where customer_id = 'C001'").fetchone() == ("山田",)


def survey(response_id: str, comment: str, **kw) -> dict:
    return {"response_id": response_id, "customer_id": "C001", "answered_at": "2025-03-01 10:00:00",
            "satisfaction": "5", "intention_to_continue": "4", "comment": comment,
            "updated_at": "2025-03-01 10:00:00"} | kw


@pytest.mark.parametrize("char", ["あ", "a"])
def test_a_record_longer_than_the_limit_is_quarantined_with_its_length(env, char):
    exports, archive, con = env
    n1 = date(2025, 3, 1)
    huge = char * (10_000_000 // len(char.encode()))
    text = csv_text("survey_responses", [survey("R1", "良い"), survey("R2", huge), survey("R3", "普通"),
                                         survey("R4", "x", satisfaction="five")])
    write(exports, n1, "survey_responses", text)
    write(exports, n1, "customers", csv_text("customers", CUSTOMERS))
    [r] = load_pending(con, CsvExportSource(exports), through=n1, archive_dir=archive)
    assert [(f.file_name, f.rows_read, f.rows_inserted, f.rows_quarantined) for f in r.files] == [
        ("customers.csv", 3, 3, 0), ("survey_responses.csv", 4, 2, 2)]
    assert con.execute("select response_id from raw.survey_responses order by 1").fetchall() == [("R1",), ("R3",)]
    rows = con.execute("select line, reason, length(raw_row) from raw._quarantine order by line").fetchall()
    size = len(text.split("\n")[2].encode())  # the record's bytes before its line feed
    assert rows[0][0] == 3 and rows[0][1].startswith(
        f"the record is too long: {size:,} bytes, more than the {MAX_RECORD_BYTES:,} a record may have")
    assert "unicode" not in rows[0][1].lower() and rows[0][2] < 20_000
    assert rows[1][:1] == (5,) and rows[1][1].startswith("satisfaction: 'five' is not a valid integer")
    assert con.execute("select count(*) from raw._load_log").fetchone()[0] == 2


def test_long_malformed_records_are_quarantined_not_a_unicode_error(env):
    """DuckDB 1.5 keeps the first 10,000 bytes of a record it rejects and fails the whole file
    when that cuts a character ("Invalid unicode"): such records are set aside and quarantined."""
    exports, archive, con = env
    n1 = date(2025, 3, 1)
    prefix = "R2,C001,2025-03-01 10:00:00,5,4,"
    assert (10_000 - len(prefix)) % 3 != 0  # byte 10,000 falls inside a 3-byte character
    text = csv_text("survey_responses", [survey("R1", "良い")])
    text += prefix + "あ" * 5000 + ",2025-03-01 10:00:00,EXTRA\r\n"  # one field too many
    more = csv_text("survey_responses", [survey("R3", "普通"), survey("R4", "x", satisfaction="9x")])
    text += more.split("\r\n", 1)[1]
    text += 'R5,C001,2025-03-01 10:00:00,5,4,"' + "閉じない引用。" * 3000 + "\r\nR6,C001,x,5,4,,y\r\n"
    write(exports, n1, "survey_responses", text)
    write(exports, n1, "customers", csv_text("customers", CUSTOMERS))
    [r] = load_pending(con, CsvExportSource(exports), through=n1, archive_dir=archive)
    assert [(f.rows_read, f.rows_inserted, f.rows_quarantined) for f in r.files] == [(3, 3, 0), (5, 2, 3)]
    rows = con.execute("select line, key, reason, raw_row from raw._quarantine order by line").fetchall()
    assert [(line, key) for line, key, _, _ in rows] == [(3, None), (5, "R4"), (6, None)]
    assert rows[0][2].startswith("cannot be parsed as CSV: 8 fields where the header has 7")
    assert rows[0][3].startswith(prefix + "あ") and rows[0][3].endswith("EXTRA")
    assert rows[1][2].startswith("satisfaction: '9x' is not a valid integer")
    assert "a quoted value opened in this record is never closed" in rows[2][2]
    assert con.execute("select response_id from raw.survey_responses order by 1").fetchall() == [("R1",), ("R3",)]


def test_a_warehouse_from_before_rejected_nights_gets_the_reason_column(env):
    exports, archive, con = env
    con.execute("create schema raw")
    con.execute("""create table raw._load_log (night date, file_name varchar, checksum varchar, rows_read bigint,
        rows_inserted bigint, rows_updated bigint, rows_quarantined bigint, status varchar, loaded_at timestamp,
        seconds double, encoding varchar, file_size bigint, file_mtime_ns bigint)""")
    orders_night(exports, N29, order("O1", updated_at="2026-11-29 09:00:00", total="7"))
    with pytest.raises(NightRejected):
        load_pending(con, CsvExportSource(exports), through=N29, archive_dir=archive, gate=TotalsGate())
    assert con.execute("select status, reason like '%O1%' from raw._load_log").fetchall() == [("rejected", True)]

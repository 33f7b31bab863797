"""Erasure that erases (APPI): a customer with `deleted_at` leaves no readable trace, and stays erased.

The acceptance test builds a real data folder: a small generated shop (CP932 exports) plus
hand-written nights for 消去 太郎左衛門 (erase-me-7@example.com, 090-7777-1234), loaded by
the real loader (archive on), modelled by the real dbt build, sent to the outbox and to
the DM / call / insert lists, with SendGrid and LINE events in the real SQLite store
loaded into the warehouse. Then the night with their `deleted_at`, `apply_erasures`; then
a night that re-imports their old row and a newer one without `deleted_at` (the loader
quarantines the older as a duplicate), plus a new customer id with their e-mail and phone
written differently, and `apply_erasures` again. Every file of the data folder (exports
aside), decoded every way it can be, every column of every table of the warehouse, the
ledger and the event store, must hold none of the person's e-mail, phone, names,
address, LINE id or comment; only salted hashes remain.
"""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
import sqlite3
import stat
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from campaigns.engine import run_campaigns
from campaigns.schema import Scenario, load_scenarios
from connectors.channels import registry
from connectors.sources.csv_export import CsvExportSource
from connectors.sources.export_format import EXPORT_FILES_BY_TABLE
from connectors.sources.loader import load_pending
from kizuna import stages
from kizuna.config import Settings
from kizuna.demo_shop.generator import generate_shop
from kizuna.errors import KizunaError
from kizuna.events import store
from kizuna.modelling import build_models
from kizuna.privacy import (
    SQL_FUNCTION,
    apply_erasures,
    erasure_hash,
    erasure_salt,
    normalise,
    register_sql_hash,
    rewrite_warehouse,
)
from kizuna.privacy import files as privacy_files
from kizuna.warehouse import connect

ROOT = Path(__file__).resolve().parent.parent
BASE = date(2026, 3, 1)        # the generated shop's full history ends here
N1 = BASE + timedelta(days=1)  # the person registers and orders
N2 = N1 + timedelta(days=2)    # they ask for erasure
N3 = N2 + timedelta(days=1)    # an older export is re-sent, and a new account with their address

PERSON = "C9000007"
NEW_ID = "C9000008"
KEEP_ID = "C9000001"
FAMILY_ID = "C9000009"  # registered before the erasure, shares the person's phone
LINE_ID = "U" + "7e" * 16
PERSON_ROW = {
    "customer_id": PERSON, "last_name": "消去", "first_name": "太郎左衛門", "last_name_kana": "ショウキョ",
    "first_name_kana": "タロウザエモン", "gender": "male", "birth_date": "1970-07-07",
    "email": "erase-me-7@example.com", "phone": "090-7777-1234", "postal_code": "170-7777",
    "prefecture": "東京都", "city": "豊島区", "address_line": "消去町7丁目7-7 ハイツ七号", "line_user_id": LINE_ID,
    "registered_at": f"{N1} 09:00:00", "deleted_at": "", "updated_at": f"{N1} 09:00:00",
}
KEEP_ROW = {
    **PERSON_ROW, "customer_id": KEEP_ID, "last_name": "山田", "first_name": "花子", "last_name_kana": "ヤマダ",
    "first_name_kana": "ハナコ", "gender": "female", "birth_date": "1980-01-01", "email": "keep-me@example.com",
    "phone": "090-1111-2222", "postal_code": "150-0001", "prefecture": "東京都", "city": "渋谷区",
    "address_line": "神宮前1-1-1", "line_user_id": "U" + "1a" * 16,
}
FAMILY_ROW = {
    **KEEP_ROW, "customer_id": FAMILY_ID, "last_name": "共有", "first_name": "花", "last_name_kana": "キョウユウ",
    "first_name_kana": "ハナ", "email": "family@example.com", "phone": "09077771234", "line_user_id": "",
}
COMMENT = "太郎左衛門です。090-7777-1234 にお電話ください"
#: What must not be found anywhere after erasure (compared lower-case).
NEEDLES = ("erase-me-7@example.com", "090-7777-1234", "09077771234", "90-7777-1234", "77771234", "7777-1234",
           "消去", "太郎左衛門", "ショウキョ", "タロウザエモン", "消去町", "ハイツ七号", "170-7777", LINE_ID.lower(),
           "お電話ください")

PROBE = Scenario.model_validate({
    "id": "erasure_probe", "name": "Erasure probe: every other channel", "priority": 100, "stage": "any",
    "entry": {"event": "first_order"}, "exit": {"goal": "second_order"}, "holdout_percent": 0,
    "steps": [{"id": "dm", "day": 1, "channel": "dm", "template": "dormant_dm"},
              {"id": "call", "day": 1, "channel": "phone", "template": "suppa_info"},
              {"id": "sms", "day": 1, "channel": "sms", "template": "cart_reminder_line"},
              {"id": "line", "day": 1, "channel": "line", "template": "cart_reminder_line"},
              {"id": "insert", "day": 1, "channel": "insert", "template": "suppa_insert"}],
})


# -- writing nights ---------------------------------------------------------------------------


def write_csv(folder: Path, table: str, rows: list[dict], encoding: str = "utf-8") -> None:
    columns = EXPORT_FILES_BY_TABLE[table].column_names
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{table}.csv").write_bytes(out.getvalue().encode(encoding))


def order_rows(customer_id: str, order_id: str, day: date) -> tuple[dict, dict, list[dict]]:
    at = f"{day} 10:00:00"
    order = {"order_id": order_id, "customer_id": customer_id, "ordered_at": at, "status": "confirmed",
             "order_kind": "one_off", "media_code": "AF_A8", "subtotal": 4980, "discount": 0, "shipping_fee": 550,
             "total": 5530, "payment_method": "credit_card", "updated_at": at}
    line = {"order_line_id": "L" + order_id, "order_id": order_id, "product_id": "P002", "quantity": 1,
            "unit_price": 4980, "line_amount": 4980, "updated_at": at}
    consents = [{"customer_id": customer_id, "channel": ch, "status": "granted", "consented_at": at,
                 "source": "checkout", "updated_at": at} for ch in ("email", "line", "sms", "dm", "phone")]
    return order, line, consents


def write_night_1(exports: Path) -> None:
    folder = exports / N1.isoformat()
    orders, lines, consents = zip(order_rows(PERSON, "O9000007", N1), order_rows(KEEP_ID, "O9000001", N1),
                                  order_rows(FAMILY_ID, "O9000009", N1))
    write_csv(folder, "customers", [PERSON_ROW, KEEP_ROW, FAMILY_ROW], "cp932")
    write_csv(folder, "orders", list(orders), "cp932")
    write_csv(folder, "order_lines", list(lines), "cp932")
    write_csv(folder, "consents", [c for group in consents for c in group], "cp932")
    write_csv(folder, "survey_responses", [
        {"response_id": "R9000007", "customer_id": PERSON, "answered_at": f"{N1} 12:00:00", "satisfaction": 5,
         "intention_to_continue": 4, "comment": COMMENT, "updated_at": f"{N1} 12:00:00"},
        {"response_id": "R9000001", "customer_id": KEEP_ID, "answered_at": f"{N1} 12:00:00", "satisfaction": 4,
         "intention_to_continue": 4, "comment": "美味しいです", "updated_at": f"{N1} 12:00:00"}], "cp932")


def write_night_2(exports: Path) -> None:
    erased = {**PERSON_ROW, "deleted_at": f"{N2} 10:00:00", "updated_at": f"{N2} 10:00:00"}
    write_csv(exports / N2.isoformat(), "customers", [erased], "cp932")


def write_night_3(exports: Path) -> None:
    """The old row re-sent, a newer version without deleted_at (same file: the older one is quarantined
    as a duplicate key), a new customer with the same e-mail and phone written differently; UTF-8."""
    folder = exports / N3.isoformat()
    newer = {**PERSON_ROW, "address_line": "消去町8丁目8-8 ハイツ七号", "updated_at": f"{N3} 08:00:00"}
    new = {**PERSON_ROW, "customer_id": NEW_ID, "last_name": "新規", "first_name": "次郎",
           "last_name_kana": "シンキ", "first_name_kana": "ジロウ", "email": " Erase-Me-7@Example.COM",
           "phone": "+81 90-7777-1234", "postal_code": "100-0001", "city": "千代田区", "address_line": "千代田1-1",
           "line_user_id": "", "registered_at": f"{N3} 09:00:00", "updated_at": f"{N3} 09:00:00"}
    write_csv(folder, "customers", [PERSON_ROW, newer, new], "utf-8-sig")
    with (folder / "customers.csv").open("ab") as fh:  # a broken line (too many fields) with their address
        fh.write(f"C9000010,誤入力,行,,,,,ERASE-ME-7@example.com,,,,,,,{N3} 09:00:00,,{N3} 09:00:00,x,y\r\n"
                 .encode("utf-8"))
    order, line, consents = order_rows(NEW_ID, "O9000008", N3)
    write_csv(folder, "orders", [order])
    write_csv(folder, "order_lines", [line])
    write_csv(folder, "consents", consents)
    write_csv(folder, "survey_responses", [
        {"response_id": "R9000007", "customer_id": PERSON, "answered_at": f"{N1} 12:00:00", "satisfaction": 5,
         "intention_to_continue": 4, "comment": COMMENT, "updated_at": f"{N1} 12:00:00"}])


# -- running the real stages ----------------------------------------------------------------------


def make_settings(data: Path) -> Settings:
    return Settings(home=ROOT, data_dir=data, dbt_project_dir=ROOT / "dbt_project", dm_provider="list",
                    phone_provider="list", insert_provider="list", duckdb_memory_limit="500MB")


def load(settings: Settings, through: date) -> None:
    with connect(settings.warehouse) as con:
        load_pending(con, CsvExportSource(settings.exports_dir), through, archive_dir=settings.archive_dir)


def send(settings: Settings, run_date: date) -> None:
    scenarios = [s for s in load_scenarios() if s.id == "f2_standard"] + [PROBE]
    with connect(settings.warehouse) as con:
        run_campaigns(con, settings, scenarios, run_date, registry.factory(settings))


def add_provider_events(settings: Settings) -> None:
    with duckdb.connect(str(settings.ledger), read_only=True) as con:
        send_id = con.execute("select send_id from sends where customer_id = ? and channel = 'email'",
                              [PERSON]).fetchone()[0]
    ts = int(datetime(2026, 3, 3, 11).timestamp())
    events = store.connect(settings.events_store)
    try:
        common = {"email": PERSON_ROW["email"], "send_id": send_id, "scenario_id": "f2_standard",
                  "step_id": "thank_you", "timestamp": ts}
        store.add_sendgrid_events(events, [
            {**common, "event": "delivered", "sg_event_id": "ev-e7-1", "ip": "203.0.113.7",
             "response": f"250 OK <{PERSON_ROW['email']}>"},
            {**common, "event": "bounce", "type": "bounce", "sg_event_id": "ev-e7-2",
             "reason": f"550 5.1.1 <{PERSON_ROW['email']}>: Recipient address rejected (消去 太郎左衛門)"},
        ])
        store.add_line_events(events, [{"type": "follow", "webhookEventId": "line-e7-1", "timestamp": ts * 1000,
                                        "source": {"type": "user", "userId": LINE_ID},
                                        "replyToken": "r7", "mode": "active"}])
    finally:
        events.close()
    stages.load_events(settings)


# -- looking for the person ------------------------------------------------------------------------


def texts(path: Path) -> list[str]:
    """Every reading of a file: UTF-8, CP932, and for e-mail the decoded headers and parts."""
    data = path.read_bytes()
    out = [data.decode("utf-8", "ignore"), data.decode("cp932", "ignore")]
    if path.suffix == ".eml":
        message = email.message_from_bytes(data, policy=email.policy.default)
        out += [str(v) for v in message.values()]
        out += [part.get_content() for part in message.walk() if not part.is_multipart()]
    return [t.lower() for t in out]


def found_in_files(data_dir: Path, exports_dir: Path) -> dict[str, set[str]]:
    hits: dict[str, set[str]] = {}
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        if exports_dir in path.parents:
            continue
        readings = texts(path)
        for needle in NEEDLES:
            forms = {needle.lower(), json.dumps(needle)[1:-1].lower()}
            if any(form in text for form in forms for text in readings):
                hits.setdefault(str(path.relative_to(data_dir)), set()).add(needle)
    return hits


def found_in_duckdb(path: Path) -> dict[str, set[str]]:
    """Every column of every table and view, as text."""
    hits: dict[str, set[str]] = {}
    with duckdb.connect(str(path), read_only=True) as con:
        relations = con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = current_database() "
            "union all select schema_name, view_name from duckdb_views() "
            "where database_name = current_database() and not internal").fetchall()
        for schema, table in relations:
            columns = [r[0] for r in con.execute(
                "select column_name from duckdb_columns() where database_name = current_database() "
                "and schema_name = ? and table_name = ?", [schema, table]).fetchall()]
            text = "lower(concat_ws(chr(31), " + ", ".join(f'cast("{c}" as varchar)' for c in columns) + "))"
            tests = ", ".join(f"coalesce(bool_or(contains(t, ${i + 1})), false)" for i in range(len(NEEDLES)))
            found = con.execute(f'select {tests} from (select {text} as t from "{schema}"."{table}")',
                                [n.lower() for n in NEEDLES]).fetchone()
            if any(found):
                hits[f"{schema}.{table}"] = {n for n, hit in zip(NEEDLES, found) if hit}
    return hits


def found_in_sqlite(path: Path) -> dict[str, set[str]]:
    hits: dict[str, set[str]] = {}
    con = sqlite3.connect(str(path))
    try:
        for (table,) in con.execute("select name from sqlite_master where type = 'table'").fetchall():
            for row in con.execute(f"select * from {table}").fetchall():
                text = "\x1f".join(str(v) for v in row).lower()
                for needle in NEEDLES:
                    if needle.lower() in text:
                        hits.setdefault(table, set()).add(needle)
    finally:
        con.close()
    return hits


def found_anywhere(settings: Settings) -> dict[str, set[str]]:
    hits = found_in_files(settings.data_dir, settings.exports_dir)
    hits.update({f"warehouse:{k}": v for k, v in found_in_duckdb(settings.warehouse).items()})
    hits.update({f"ledger:{k}": v for k, v in found_in_duckdb(settings.ledger).items()})
    hits.update({f"events:{k}": v for k, v in found_in_sqlite(settings.events_store).items()})
    return hits


def others_fingerprint(settings: Settings) -> list[tuple]:
    """Every other customer's raw row and survey answers, as loaded."""
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        return con.execute(
            "select c.* exclude (_night, _source_file, _loaded_at), s.comment from raw.customers c "
            "left join raw.survey_responses s using (customer_id) "
            "where customer_id not in (?, ?, ?) order by customer_id", [PERSON, NEW_ID, FAMILY_ID]).fetchall()


# -- the acceptance test -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    """The data folder through night 1: loaded, modelled, sent, events in. Yields the settings and what
    was found before any erasure."""
    data = tmp_path_factory.mktemp("erasure") / "data"
    settings = make_settings(data)
    generate_shop(settings.exports_dir, 100, 7, BASE, 0, encoding="cp932")
    write_night_1(settings.exports_dir)
    load(settings, N1)
    quiet = apply_erasures(settings)  # every night, right after the load: nobody to erase yet
    assert (quiet.newly_erased, quiet.blocked_by_identity, quiet.warehouse_rewritten) == (0, 0, False)
    build_models(settings, N1 + timedelta(days=1), unit_tests=False)
    send(settings, N1 + timedelta(days=1))
    add_provider_events(settings)
    return settings


def test_erased_person_leaves_no_trace_and_stays_erased(shop: Settings, monkeypatch) -> None:
    settings = shop
    before = found_anywhere(settings)
    # The person is everywhere kizuna keeps data (else the test proves nothing).
    for place in ("archive/2026-03-02/customers.csv", "archive/2026-03-02/survey_responses.csv",
                  "outbox/index.jsonl", "events:sendgrid_events", "events:line_events",
                  "warehouse:raw.customers", "warehouse:raw.survey_responses", "warehouse:marts.dim_customers",
                  "warehouse:raw.message_events", "warehouse:raw.line_follow_events"):
        assert place in before, (place, sorted(before))
    for folder in ("outbox/email/", "outbox/sms/", "outbox/line/", "lists/"):
        assert any(k.startswith(folder) for k in before), (folder, sorted(before))
    assert any(k.startswith("lists/") and "dm-list" in k for k in before)  # CP932, decoded
    others = others_fingerprint(settings)
    keep_mail = _outbox_files(settings, KEEP_ID)
    # A page written before erasure that shows example values (as quality pages did).
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    page = settings.reports_dir / f"quality-{N1}.html"
    page.write_text(f"<td><code>{PERSON_ROW['email']}</code> <code>{PERSON_ROW['phone']}</code> "
                    f"<code>{PERSON_ROW['last_name']}</code> <code>{KEEP_ROW['email']}</code></td>", encoding="utf-8")
    assert keep_mail

    # Night 2: the person asks for erasure.
    write_night_2(settings.exports_dir)
    load(settings, N2)
    first = apply_erasures(settings)
    assert found_anywhere(settings) == {}  # not in any file's bytes, nor any column, marts included
    # The family member loaded on an earlier night shares the phone: found once the register grew.
    assert first.newly_erased == 1 and first.repurged == 0 and first.blocked_by_identity == 1
    assert first.warehouse_rewritten and first.events_store_vacuumed
    assert first.blanked["raw.customers"] == 2 and first.blanked["marts.dim_customers"] == 2  # person, family
    assert first.blanked["archive rows"] >= 2 and first.blanked["list rows"] >= 3
    assert first.files_deleted >= 4 and first.blanked["report values"] == 3, first.summary()
    assert KEEP_ROW["email"] in page.read_text(encoding="utf-8")
    assert "新たに削除した顧客 1 人" in first.summary()  # KIZUNA_LOCALE=ja, the default

    # Night 3: the old row re-sent (and a newer one without deleted_at), and a new id with their address.
    write_night_3(settings.exports_dir)
    load(settings, N3)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:  # the loader un-erased them
        assert con.execute("select deleted_at, email from raw.customers where customer_id = ?",
                           [PERSON]).fetchone() == (None, PERSON_ROW["email"])
    again = apply_erasures(settings)
    assert found_anywhere(settings) == {}
    assert again.newly_erased == 0 and again.repurged == 1 and again.blocked_by_identity == 1, again.summary()
    assert again.blanked["raw._quarantine"] == 2  # the older duplicate, and the broken line's address
    assert again.blanked["raw.customers"] == 2  # the person again, and the new id's e-mail and phone
    # What the campaign engine reads (dim_customers and what it is built from), and only their own
    # tests (not those that compare them with the other marts): seconds, not a full build.
    monkeypatch.setenv("DBT_INDIRECT_SELECTION", "cautious")
    build_models(settings, N3 + timedelta(days=1), select=["+dim_customers"], unit_tests=False)
    send(settings, N3 + timedelta(days=1))

    assert found_anywhere(settings) == {}
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        row = con.execute("select deleted_at, last_name, first_name, email, phone, address_line, line_user_id, "
                          "birth_date from raw.customers where customer_id = ?", [PERSON]).fetchone()
        assert row[0] == datetime(2026, 3, 4, 10) and set(row[1:]) == {None}  # erased, and stays erased
        assert con.execute("select is_erased from marts.dim_customers where customer_id = ?",
                           [PERSON]).fetchone() == (True,)
        new = con.execute("select last_name, email, phone from raw.customers where customer_id = ?",
                          [NEW_ID]).fetchone()
        assert new == ("新規", None, None)  # only the erased identity is blanked
        broken = con.execute("select reason, raw_row from raw._quarantine where raw_row like 'C9000010,%'").fetchall()
        assert len(broken) == 1 and broken[0][0].startswith("cannot be parsed as CSV")  # kept, address blanked
        assert broken[0][1].startswith("C9000010,誤入力,行,,,,,,,")
        family = con.execute("select last_name, email, phone from raw.customers where customer_id = ?",
                             [FAMILY_ID]).fetchone()
        assert family == ("共有", "family@example.com", None)
    with duckdb.connect(str(settings.ledger), read_only=True) as con:
        for blocked in (NEW_ID, FAMILY_ID):
            assert con.execute("select channel, reason from suppressions where customer_id = ?",
                               [blocked]).fetchall() == [(None, "erased_identity")]
        # The engine saw the new customer's thank-you fall due and planned nothing.
        statuses = con.execute("select status, detail from sends where customer_id = ?", [NEW_ID]).fetchall()
        assert statuses and all(s == ("skipped", "suppressed") for s in statuses), statuses
        register = dict(con.execute("select kind, count(*) from erasures group by kind").fetchall())
        salt = erasure_salt(settings)
        hashes = {r[0] for r in con.execute("select value_hash from erasures").fetchall()}
    assert register == {"customer_id": 1, "email": 1, "phone": 1, "line_user_id": 1}
    assert {erasure_hash("customer_id", PERSON, salt), erasure_hash("email", PERSON_ROW["email"], salt),
            erasure_hash("phone", "+81 90-7777-1234", salt), erasure_hash("line_user_id", LINE_ID, salt)} == hashes

    # The other customers' data is intact.
    assert others_fingerprint(settings) == others
    assert _outbox_files(settings, KEEP_ID) == keep_mail and all(p.exists() for p in keep_mail)
    for path in (settings.exports_dir / BASE.isoformat()).glob("*.csv"):
        assert (settings.archive_dir / BASE.isoformat() / path.name).read_bytes() == path.read_bytes(), path.name
    archived = (settings.archive_dir / N1.isoformat() / "customers.csv").read_bytes()
    original = (settings.exports_dir / N1.isoformat() / "customers.csv").read_bytes()
    assert archived.splitlines()[0] == original.splitlines()[0]  # header as received
    assert archived.splitlines()[2] == original.splitlines()[2]  # 山田 花子's row, byte for byte (CP932)
    keep = archived.decode("cp932").splitlines()[1].split(",")
    assert keep[0] == PERSON and keep[-2:] == ["", f"{N1} 09:00:00"]  # the key and dates stay
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("select email from marts.dim_customers where customer_id = ?",
                           [KEEP_ID]).fetchone() == (KEEP_ROW["email"],)
    index = [json.loads(line) for line in (settings.outbox_dir / "index.jsonl").read_text().splitlines()]
    assert all(line.get("subject") for line in index if line["customer_id"] == KEEP_ID)

    # Idempotent: a night with nothing new purges nothing and rewrites nothing.
    quiet = apply_erasures(settings)
    assert (quiet.newly_erased, quiet.repurged, quiet.blocked_by_identity) == (0, 0, 0)
    assert not quiet.purged_anything and not quiet.warehouse_rewritten, quiet.summary()
    assert "消去すべきものは残っていません" in quiet.summary()  # KIZUNA_LOCALE=ja, the default

    # The warehouse rebuilt from the shop's exports (which still hold the person: they are the shop's):
    # the register in the ledger erases them again, and the archive's fresh copies too.
    settings.warehouse.unlink()
    load(settings, N3)
    stages.load_events(settings)
    rebuilt = apply_erasures(settings)
    assert rebuilt.repurged == 1 and rebuilt.newly_erased == 0 and rebuilt.warehouse_rewritten, rebuilt.summary()
    assert found_anywhere(settings) == {}
    assert len(list((settings.archive_dir / N1.isoformat()).glob("customers.*.csv"))) == 1  # the blanked copy


def _outbox_files(settings: Settings, customer_id: str) -> list[Path]:
    with duckdb.connect(str(settings.ledger), read_only=True) as con:
        sends = con.execute("select send_id, channel from sends where customer_id = ? and status = 'sent'",
                            [customer_id]).fetchall()
    return sorted(p for send_id, channel in sends for p in (settings.outbox_dir / channel).glob(f"{send_id}.*"))


# -- the pieces -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "variants"), [
    ("email", ["erase-me-7@example.com", " Erase-Me-7@Example.COM ", "ｅｒａｓｅ－ｍｅ－７＠ｅｘａｍｐｌｅ．ｃｏｍ",
               "erase-me-7@example.com\u3000"]),
    ("phone", ["090-7777-1234", "09077771234", "+81 90-7777-1234", "+81 (0)90-7777-1234", "81-90-7777-1234",
               "０９０ー７７７７ー１２３４", "090 7777 1234"]),
])
def test_one_identity_written_many_ways_is_one_hash(kind, variants):
    salt = "s" * 32
    assert len({erasure_hash(kind, v, salt) for v in variants}) == 1
    assert erasure_hash(kind, variants[0], "t" * 32) != erasure_hash(kind, variants[0], salt)  # salted
    assert erasure_hash("email", "other@example.com", salt) != erasure_hash("email", variants[0], salt)
    assert normalise("phone", "+81 90-7777-1234") == "09077771234"


def test_no_value_no_hash_and_kinds_do_not_collide():
    salt = "s" * 32
    assert erasure_hash("email", None, salt) is None and erasure_hash("phone", " - ", salt) is None
    assert erasure_hash("customer_id", "0901234", salt) != erasure_hash("phone", "0901234", salt)
    assert erasure_hash("customer_id", "C1 ", salt) != erasure_hash("customer_id", "C1", salt)  # keys as loaded
    with pytest.raises(ValueError, match="unknown identity kind"):
        erasure_hash("name", "x", salt)


def test_the_sql_form_is_the_python_form():
    salt = "pepper-" * 5
    values = [("email", " ＥＲＡＳＥ-me@Example.com"), ("email", "a@b.jp"), ("email", None), ("phone", "+81 (0)3-1234-5678"),
              ("phone", "０３ー１２３４ー５６７８"), ("phone", "abc"), ("line_user_id", " U" + "ab" * 16),
              ("customer_id", "C0000001"), ("customer_id", "顧客🙂")]
    con = duckdb.connect()
    try:
        register_sql_hash(con, salt)
        con.execute("create table v (kind varchar, value varchar)")
        con.executemany("insert into v values (?, ?)", values)
        got = con.execute(f"select kind, value, {SQL_FUNCTION}(kind, value) from v order by rowid").fetchall()
    finally:
        con.close()
    assert got == [(k, v, erasure_hash(k, v, salt)) for k, v in values]


def test_the_salt_is_generated_once_private_and_a_secret_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("KIZUNA_ERASURE_SALT", raising=False)
    monkeypatch.delenv("KIZUNA_ERASURE_SALT_BLOCK", raising=False)
    settings = Settings(home=ROOT, data_dir=tmp_path / "data")
    salt = erasure_salt(settings)
    path = tmp_path / "data" / "erasure.salt"
    assert len(salt) == 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert erasure_salt(settings) == salt
    monkeypatch.setenv("KIZUNA_ERASURE_SALT", "from-the-secret-store-0123456789")
    assert erasure_salt(settings) == "from-the-secret-store-0123456789"


def test_a_changed_salt_is_refused_not_silently_used(tmp_path, monkeypatch):
    monkeypatch.delenv("KIZUNA_ERASURE_SALT", raising=False)
    settings = Settings(home=ROOT, data_dir=tmp_path / "data")
    with connect(settings.warehouse) as con:
        con.execute("create schema raw")
        con.execute("create table raw.customers (customer_id varchar, email varchar, phone varchar, "
                    "line_user_id varchar, deleted_at timestamp, _loaded_at timestamp)")
        con.execute("insert into raw.customers values ('C1', 'a@b.jp', null, null, '2026-01-01', now())")
    assert apply_erasures(settings).newly_erased == 1
    (tmp_path / "data" / "erasure.salt").write_text("another-salt-than-before-0123456789\n")
    with pytest.raises(KizunaError, match="erasure salt is not the one"):
        apply_erasures(settings)


def test_scrubbing_a_csv_keeps_every_other_record_byte_for_byte(tmp_path):
    header = '"customer_id","name","address"\r\n'
    keep = '"K1","山田 花子","東京都渋谷区\r\n神宮前1-1"\r\n'  # a quoted line break
    erase = '"E7","消去 太郎","豊島区 ""七号"""\r\n'
    for encoding in ("cp932", "utf-8-sig", "utf-8"):
        path = tmp_path / f"list-{encoding}.csv"
        path.write_bytes((header + keep + erase + keep).encode(encoding))

        seen = []

        def decider(names):
            i = names.index("customer_id")

            def decide(row):
                seen.append(row[1])
                return {1, 2} if row[i] == "E7" else set()
            return decide

        scrub = privacy_files.scrub_csv(path, decider)
        assert (scrub.rows_blanked, scrub.rewritten) == (1, True)
        assert seen == ["山田 花子", "消去 太郎", "山田 花子"]  # decoded from its own encoding
        assert path.read_bytes() == (header + keep + "E7,,\r\n" + keep).encode(encoding), encoding
        assert privacy_files.scrub_csv(path, decider).rewritten is False  # nothing left to blank
        assert privacy_files.scrub_csv(path, lambda names: None).encoding == ""  # not read past the header


def test_report_pages_lose_the_values_however_they_were_written(tmp_path):
    page = tmp_path / "quality-2026-03-04.html"
    page.write_text("<td><code>erase-me-7@example.com </code></td><td>O&#x27;消去</td>", encoding="utf-8")
    data = tmp_path / "quality-2026-03-04.json"
    data.write_text(json.dumps({"examples": ["erase-me-7@example.com ", "O'消去", "keep@example.com"]}),
                    encoding="utf-8")  # ASCII-escaped JSON
    for path in (page, data):
        assert privacy_files.redact_literals(path, {"erase-me-7@example.com", "O'消去"}) >= 2
        text = path.read_text(encoding="utf-8")
        assert "erase-me" not in text and "消去" not in text and "\\u6d88" not in text
    assert "keep@example.com" in data.read_text(encoding="utf-8")


def test_rewriting_the_warehouse_drops_the_freed_blocks(tmp_path):
    settings = Settings(home=ROOT, data_dir=tmp_path / "data")
    with connect(settings.warehouse) as con:
        con.execute("create schema raw")
        con.execute("create table raw.customers (customer_id varchar primary key, email varchar)")
        con.execute("insert into raw.customers values ('E7', 'erase-me-7@example.com'), ('K1', 'keep@example.com')")
        con.execute("create view raw.v as select * from raw.customers")
    with connect(settings.warehouse) as con:
        con.execute("update raw.customers set email = null where customer_id = 'E7'")
    assert b"erase-me-7@example.com" in settings.warehouse.read_bytes()  # DuckDB does not zero freed blocks
    rewrite_warehouse(settings)
    assert b"erase-me-7@example.com" not in settings.warehouse.read_bytes()
    with connect(settings.warehouse) as con:
        assert con.execute("select * from raw.v order by 1").fetchall() == [("E7", None), ("K1", "keep@example.com")]
    assert [p.name for p in settings.warehouse.parent.iterdir()] == ["warehouse.duckdb"]


def test_vacuuming_the_event_store_drops_what_an_update_left_in_the_file(tmp_path):
    from kizuna.privacy.erasure import vacuum_store

    path = tmp_path / "events.sqlite"
    events = store.connect(path)
    try:
        events.execute("pragma secure_delete = off")  # as SQLite builds without SQLITE_SECURE_DELETE do
        store.add_sendgrid_events(events, [{"event": "bounce", "sg_event_id": f"e{i}", "send_id": f"s{i}",
                                            "timestamp": 1795000000,
                                            "reason": f"550 <{'erase-me-7' if i == 5 else 'x'}@example.com>"}
                                           for i in range(40)])
        events.execute("update sendgrid_events set reason = null, raw_json = '{}' where sg_event_id = 'e5'")
        events.execute("pragma wal_checkpoint(truncate)")
        assert b"erase-me-7" in path.read_bytes()  # updated away, still in the file
        assert vacuum_store(events)
        assert b"erase-me-7" not in path.read_bytes()
        assert events.execute("select count(*) from sendgrid_events").fetchone()[0] == 40
    finally:
        events.close()


def test_nothing_to_do_before_the_first_load(tmp_path):
    result = apply_erasures(Settings(home=ROOT, data_dir=tmp_path / "data"))
    assert result.newly_erased == 0 and not result.warehouse_rewritten
    assert "消去すべきものは残っていません" in result.summary()  # KIZUNA_LOCALE=ja, the default



def test_a_new_erasure_reads_only_the_archived_files_that_hold_the_person(tmp_path, monkeypatch):
    """The archive's index (`ledger.erasure_file_values`): the night a new erasure is registered, an archived file
    read in full before and unchanged since is cleared by its index when it holds none of the person's
    identities, and read (and scrubbed) when it does. At 1M customers reading every archived customer file
    again took 20-35 s of each such night (docs/privacy.md)."""
    settings = Settings(home=ROOT, data_dir=tmp_path / "data")
    from connectors.sources.loader import ensure_raw_tables

    rows = {cid: {**KEEP_ROW, "customer_id": cid, "email": f"{cid.lower()}@example.com",
                  "phone": f"090-0000-{cid[-4:]}", "line_user_id": ""} for cid in ("C0001", "C0002", "C0003")}
    rows["C0002"]["phone"] = "０９０ー２２２２ー０００２"  # written the other way: the same phone as below
    with connect(settings.warehouse) as con:
        ensure_raw_tables(con)
        for row in rows.values():
            con.execute("insert into raw.customers (customer_id, email, phone, registered_at, updated_at, _night) "
                        "values (?, ?, ?, ?, ?, ?)", [row["customer_id"], row["email"], row["phone"],
                                                      row["registered_at"], row["updated_at"], N1])
    first = settings.archive_dir / N1.isoformat()
    second = settings.archive_dir / N2.isoformat()
    write_csv(first, "customers", [rows["C0001"], rows["C0002"]], encoding="cp932")
    write_csv(second, "customers", [rows["C0003"]])
    write_csv(second, "survey_responses", [{"response_id": "S1", "customer_id": "C0002", "answered_at": f"{N2} 10:00:00",
                                   "comment": "C0002 の声"}])

    read: list[str] = []
    scrub = privacy_files.scrub_csv

    def observed(path, decider):
        read.append(f"{path.parent.name}/{path.name}")
        return scrub(path, decider)

    monkeypatch.setattr(privacy_files, "scrub_csv", observed)

    def erase(customer_id: str | None) -> list[str]:
        if customer_id:
            with connect(settings.warehouse) as con:
                con.execute("update raw.customers set deleted_at = ? where customer_id = ?",
                            [datetime(2026, 3, 4, 9), customer_id])
        read.clear()
        apply_erasures(settings)
        return sorted(read)

    every = sorted([f"{N1}/customers.csv", f"{N2}/customers.csv", f"{N2}/survey_responses.csv"])
    assert erase(None) == every  # the first look reads every file (and indexes it)
    assert erase(None) == []  # nothing new: nothing read
    assert erase("C0003") == [f"{N2}/customers.csv"]  # only the file that holds C0003
    assert b"c0003@example.com" not in (second / "customers.csv").read_bytes()
    # C0002 is in the CP932 file and the survey; the index finds them by hash, as the full read would.
    assert erase("C0002") == [f"{N1}/customers.csv", f"{N2}/survey_responses.csv"]
    archived = (first / "customers.csv").read_bytes().decode("cp932")
    assert "c0002@example.com" not in archived and "c0001@example.com" in archived
    assert "C0002 の声" not in (second / "survey_responses.csv").read_bytes().decode("utf-8")
    # A file changed since it was indexed is read in full again.
    with (first / "customers.csv").open("ab") as fh:
        fh.write(b"\r\n")
    with connect(settings.warehouse) as con:
        con.execute("update raw.customers set deleted_at = ? where customer_id = 'C0001'", [datetime(2026, 3, 5)])
    read.clear()
    apply_erasures(settings)
    assert f"{N1}/customers.csv" in read
    assert "c0001@example.com" not in (first / "customers.csv").read_bytes().decode("cp932")

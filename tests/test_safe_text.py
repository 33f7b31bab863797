"""Unsafe customer text never reaches a person: a header, a printed label or a spreadsheet.

Defect 4 of the data-reliability probe: a NUL in a name reached an e-mail `Subject`; CR/LF
in an address produced a three-line DM label; names like `=HYPERLINK(...)`, `+cmd`,
`@SUM(...)` were written unchanged into the DM, call and insert CSVs a person opens in Excel.
These run the real engine into the real outbox and list channels.
"""

from __future__ import annotations

import csv
import email
from datetime import date, timedelta
from email import policy
from pathlib import Path

import pytest

from campaign_fakes import add_customer, make_warehouse
from campaigns.engine import run_campaigns
from campaigns.schema import load_scenario
from connectors.channels.registry import factory
from connectors.channels.safe_text import clean_body, one_line, spreadsheet_cell
from kizuna.config import Settings

ORDER_DAY = date(2026, 11, 22)
RUN = ORDER_DAY + timedelta(days=1)

UNSAFE = {
    "last_name": "山\x00田",
    "first_name": '=HYPERLINK("http://evil.example","click")',
    "city": "渋\u200b谷区\u202e",
    "address_line": "神宮前1-1\r\nメゾン\n301",
}
FORMULAS = {"last_name": "+cmd|' /C calc'!A0", "first_name": "@SUM(1+1)", "address_line": "-2+3"}


@pytest.fixture
def shop(tmp_path: Path):
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data", dm_provider="list", phone_provider="list",
                        insert_provider="list")
    con = make_warehouse(settings.warehouse)
    consents = dict(has_email_consent=True, has_dm_consent=True, has_phone_consent=True, has_line_consent=True)
    add_customer(con, "U1", ORDER_DAY, **UNSAFE, **consents)
    add_customer(con, "U2", ORDER_DAY, **FORMULAS, **consents)
    scenario = tmp_path / "every_channel.yaml"
    scenario.write_text(
        "id: every_channel\nname: Every channel\npriority: 1\nstage: initial\nentry: {event: first_order}\n"
        "steps:\n" + "".join(f"  - {{id: {ch}_1, day: 1, channel: {ch}, template: f2_thank_you}}\n"
                             for ch in ("email", "line", "dm", "phone", "insert")), encoding="utf-8")
    yield settings, con, [load_scenario(scenario)]
    con.close()


def _list_rows(settings: Settings, prefix: str, encoding: str) -> list[list[str]]:
    rows = []
    for path in sorted((settings.data_dir / "lists").glob(f"*/{prefix}-*.csv")):
        with path.open(encoding=encoding, newline="") as f:
            rows += list(csv.reader(f))[1:]
    return rows


def test_unsafe_names_and_addresses_are_harmless_in_every_channel(shop):
    settings, con, scenarios = shop
    result = run_campaigns(con, settings, scenarios, RUN, factory(settings))
    assert result.channel_problems == {}
    statuses = con.execute("select channel, status, count(*) from ledger.sends group by all order by all").fetchall()
    assert statuses == [(ch, "sent", 2) for ch in ("dm", "email", "insert", "line", "phone")]

    # E-mail: the NUL is gone from the Subject and the To header, each one line.
    for path in (settings.outbox_dir / "email").glob("*.eml"):
        raw = path.read_bytes()
        assert b"\x00" not in raw
        mail = email.message_from_bytes(raw, policy=policy.default)
        for header in ("Subject", "To"):
            assert "\n" not in str(mail[header]) and "\r" not in str(mail[header])
    subjects = sorted(str(email.message_from_bytes(p.read_bytes(), policy=policy.default)["Subject"])
                      for p in (settings.outbox_dir / "email").glob("*.eml"))
    assert "山田様、ご購入ありがとうございました" in subjects

    # DM labels: one record of six fields per customer, the address on one line, no invisible characters.
    dm = _list_rows(settings, "dm-list", "cp932")
    assert len(dm) == 2 and all(len(row) == 6 for row in dm)
    addresses = sorted(row[3] for row in dm)
    assert "東京都 渋谷区 神宮前1-1 メゾン 301" in addresses
    for row in dm + _list_rows(settings, "call-list", "utf-8-sig") + _list_rows(settings, "insert-list", "utf-8-sig"):
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row  # a spreadsheet shows it as text
            assert one_line(cell) == cell, row
    names = sorted(row[1] for row in dm)
    assert names == sorted(["'+cmd|' /C calc'!A0 @SUM(1+1)", '山田 =HYPERLINK("http://evil.example","click")'])


def test_the_text_helpers():
    assert one_line("a\r\n b\tc\x00d\u200be\u202e") == "a b cde"
    assert clean_body("line 1\r\nline 2\x00\u2028line 3") == "line 1\nline 2\nline 3"
    assert [spreadsheet_cell(v) for v in ("=1+1", "+81 90", "-5", "@A1", "\t=x", "山田", "", None)] == [
        "'=1+1", "'+81 90", "'-5", "'@A1", "'=x", "山田", "", ""]

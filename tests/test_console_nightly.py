"""The nightly run honours the console's actions (issue 22): holds, approvals of DM/call lists, a person's
verdict on unknown sends and erasure requests — against a real DuckDB warehouse, the real ledger and the
console's real SQLite store; the actions are recorded in `ledger.console_actions` (who, when)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from campaign_fakes import MemoryChannel, add_customer, make_warehouse
from campaigns import ledger
from campaigns.engine import run_campaigns
from campaigns.schema import Scenario, load_scenario
from connectors.channels.base import Message
from kizuna.config import Settings
from kizuna.console import nightly, store
from kizuna.errors import KizunaError

D = date(2026, 11, 23)  # the first night of each test; the customers' first order is the day before


def scenario_files(folder: Path) -> list[Scenario]:
    """Two scenarios on different customers: `care` (an e-mail and a DM the same day) and `trial` (an e-mail)."""
    folder.mkdir(parents=True, exist_ok=True)
    care = {"id": "care", "name": "Care", "priority": 20, "stage": "initial", "entry": {"event": "first_order"},
            "segment": {"first_order_kind": "one_off"},
            "steps": [{"id": "mail", "day": 1, "channel": "email", "template": "f2_thank_you"},
                      {"id": "letter", "day": 1, "channel": "dm", "template": "dormant_dm"}]}
    trial = {"id": "trial", "name": "Trial", "priority": 10, "stage": "initial", "entry": {"event": "first_order"},
             "segment": {"first_order_kind": "trial"},
             "steps": [{"id": "mail", "day": 1, "channel": "email", "template": "f2_usage_guide"}]}
    out = []
    for data in (care, trial):
        path = folder / f"{data['id']}.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        out.append(load_scenario(path))
    return out


@pytest.fixture
def shop(settings: Settings, tmp_path: Path):
    con = make_warehouse(settings.warehouse)
    for i in range(4):
        add_customer(con, f"C{i}", D - timedelta(days=1), kind="one_off")
    for i in range(3):
        add_customer(con, f"T{i}", D - timedelta(days=1), kind="trial")
    yield con, scenario_files(tmp_path / "scenarios")
    con.close()


def night(con, settings: Settings, scenarios: list[Scenario], day: date) -> list[Message]:
    """One nightly campaign run; the messages every channel delivered."""
    delivered: list[Message] = []
    run_campaigns(con, settings, scenarios, day, lambda name: MemoryChannel(name, delivered))
    return delivered


def statuses(con, **where) -> dict[str, int]:
    cond = " and ".join(f"{k} = ?" for k in where) or "true"
    rows = con.execute(f"select status, count(*) from ledger.sends where {cond} group by 1", list(where.values()))
    return dict(rows.fetchall())


def console(settings: Settings):
    return store.opened(settings.console_store)


def actions(con, kind: str) -> list[dict]:
    cur = con.execute("select * from ledger.console_actions where kind = ? order by acted_at", [kind])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def test_a_held_scenario_is_recorded_held_the_rest_is_sent_and_after_release_it_goes_once(settings, shop):
    con, scenarios = shop
    with console(settings) as sq:
        hold = store.add_hold(sq, "care", None, None, by="hanako")

    sent = night(con, settings, scenarios, D)
    assert {m.scenario_id for m in sent} == {"trial"}  # everything else went
    assert len(sent) == 3
    assert statuses(con, scenario_id="care") == {"held": 8}
    detail = con.execute("select any_value(detail) from ledger.sends where status = 'held'").fetchone()[0]
    assert "hanako" in detail and "until released" in detail
    recorded = actions(con, "hold")
    assert [(a["scenario_id"], a["step_id"], a["by_user"]) for a in recorded] == [("care", None, "hanako")]
    assert recorded[0]["acted_at"] is not None and recorded[0]["folded_at"] is not None

    assert night(con, settings, scenarios, D + timedelta(days=1)) == []  # still held, nothing resent
    with console(settings) as sq:
        assert store.release_hold(sq, hold.id, by="taro")
    sent = night(con, settings, scenarios, D + timedelta(days=2))
    assert sorted((m.scenario_id, m.step_id) for m in sent) == [("care", "letter")] * 4 + [("care", "mail")] * 4
    assert statuses(con, scenario_id="care") == {"sent": 8}
    assert [a["by_user"] for a in actions(con, "release")] == ["taro"]
    assert night(con, settings, scenarios, D + timedelta(days=3)) == []  # never twice


def test_a_held_message_keeps_its_place_under_the_frequency_cap(tmp_path, shop):
    """At most one e-mail a week: a held e-mail counts, so another scenario's e-mail the next day is capped,
    and once the hold is released the customer still gets one e-mail that week, not two."""
    con, scenarios = shop
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data", campaign_caps={"email": 1, "dm": 2})
    extra = {"id": "extra", "name": "Extra", "priority": 5, "stage": "initial", "entry": {"event": "first_order"},
             "segment": {"first_order_kind": "one_off"},
             "steps": [{"id": "mail", "day": 2, "channel": "email", "template": "f2_usage_guide"}]}
    path = tmp_path / "scenarios" / "extra.yaml"
    path.write_text(yaml.safe_dump(extra, allow_unicode=True), encoding="utf-8")
    scenarios = [*scenarios, load_scenario(path)]
    with console(settings) as sq:
        hold = store.add_hold(sq, "care", "mail", None, by="hanako")
    night(con, settings, scenarios, D)
    assert statuses(con, scenario_id="care", step_id="mail") == {"held": 4}
    sent = night(con, settings, scenarios, D + timedelta(days=1))
    assert [m for m in sent if m.scenario_id == "extra"] == []
    assert statuses(con, scenario_id="extra") == {"capped": 4}
    with console(settings) as sq:
        store.release_hold(sq, hold.id, by="taro")
    night(con, settings, scenarios, D + timedelta(days=2))
    emails = con.execute("select customer_id, count(*) from ledger.sends where channel = 'email' and status = 'sent' "
                         "and customer_id like 'C%' group by 1").fetchall()
    assert sorted(emails) == [(f"C{i}", 1) for i in range(4)]


def test_a_step_held_for_one_night_waits_that_night_only(settings, shop):
    con, scenarios = shop
    with console(settings) as sq:
        store.add_hold(sq, "care", "letter", D, by="hanako")
    sent = night(con, settings, scenarios, D)
    assert sorted({(m.scenario_id, m.step_id) for m in sent}) == [("care", "mail"), ("trial", "mail")]
    assert statuses(con, step_id="letter") == {"held": 4}
    sent = night(con, settings, scenarios, D + timedelta(days=1))  # the hold was for night D only
    assert sorted((m.scenario_id, m.step_id) for m in sent) == [("care", "letter")] * 4


def test_a_hold_released_after_the_catch_up_window_leaves_the_messages_missed(settings, shop):
    con, scenarios = shop
    with console(settings) as sq:
        hold = store.add_hold(sq, "trial", None, None, by="hanako")
    night(con, settings, scenarios, D)
    with console(settings) as sq:
        store.release_hold(sq, hold.id, by="hanako")
    late = D + timedelta(days=settings.catch_up_days + 1)
    assert [m for m in night(con, settings, scenarios, late) if m.scenario_id == "trial"] == []
    assert statuses(con, scenario_id="trial") == {"skipped": 3}


def test_the_dm_list_waits_for_approval_and_is_written_once_when_approved(settings, shop):
    con, scenarios = shop
    settings = settings.model_copy(update={"require_approval": "dm"})
    delivered: list[Message] = []
    result = run_campaigns(con, settings, scenarios, D, lambda name: MemoryChannel(name, delivered))
    assert {m.channel for m in delivered} == {"email"}  # the e-mails do not wait
    assert statuses(con, channel="dm") == {"awaiting_approval": 4}
    assert result.delivered[("care", "letter", "dm", "awaiting_approval")] == 4  # in the summary and the report
    assert result.planned[("care", "letter", "dm")] == 0 and result.planned[("care", "mail", "email")] == 4
    assert night(con, settings, scenarios, D + timedelta(days=1)) == []  # not approved yet: still waiting

    with console(settings) as sq:
        assert store.approve(sq, "dm", D, rows_seen=4, by="taro")
        assert not store.approve(sq, "dm", D, rows_seen=4, by="jiro")  # the first approval stands
    sent = night(con, settings, scenarios, D + timedelta(days=2))
    assert sorted((m.channel, m.customer_id) for m in sent) == [("dm", f"C{i}") for i in range(4)]
    assert statuses(con, channel="dm") == {"sent": 4}
    approval = actions(con, "approval")
    assert [(a["channel"], a["night"], a["by_user"]) for a in approval] == [("dm", D, "taro")]
    assert night(con, settings, scenarios, D + timedelta(days=3)) == []  # never twice


def test_a_list_approved_before_the_night_is_written_that_night(settings, shop):
    con, scenarios = shop
    settings = settings.model_copy(update={"require_approval": "dm,phone"})
    with console(settings) as sq:
        store.approve(sq, "dm", D, rows_seen=4, by="taro")
    sent = night(con, settings, scenarios, D)
    assert sorted(m.customer_id for m in sent if m.channel == "dm") == [f"C{i}" for i in range(4)]
    # another night's list is not covered by that approval
    add_customer(con, "C9", D, kind="one_off")
    sent = night(con, settings, scenarios, D + timedelta(days=1))
    assert [m.channel for m in sent] == ["email"]
    assert statuses(con, channel="dm", customer_id="C9") == {"awaiting_approval": 1}


def test_a_person_verdict_on_an_unknown_send_is_recorded_and_it_is_never_resent(settings, shop):
    con, scenarios = shop
    night(con, settings, scenarios, D)
    sent_ids = [r[0] for r in con.execute("select send_id from ledger.sends where status = 'sent' and channel = 'email' "
                                          "order by send_id limit 2").fetchall()]
    # two messages whose fate the provider left open (a run that died mid-request leaves them so)
    ledger.mark(con, sent_ids, "unknown", "process stopped during delivery")
    with console(settings) as sq:
        store.decide(sq, sent_ids[0], delivered=True, by="hanako")
        store.decide(sq, sent_ids[1], delivered=False, by="hanako")

    resent = night(con, settings, scenarios, D + timedelta(days=1))
    assert resent == []  # this channel would hand unknown messages over again: the verdicts stop that
    rows = dict(con.execute("select send_id, status || '|' || coalesce(retry, true) || '|' || detail from ledger.sends "
                            "where send_id in (select unnest(?::varchar[]))", [sent_ids]).fetchall())
    assert rows[sent_ids[0]].startswith("sent|true|marked delivered by hanako on ")
    assert rows[sent_ids[1]].startswith("failed|false|marked not delivered by hanako on ")
    assert "(console)" in rows[sent_ids[1]]
    assert night(con, settings, scenarios, D + timedelta(days=2)) == []  # a failed one without retry stays so
    decisions = actions(con, "decision")
    assert sorted((a["send_id"], a["verdict"], a["outcome"]) for a in decisions) == sorted([
        (sent_ids[0], "delivered", "recorded on the send"), (sent_ids[1], "not delivered", "recorded on the send")])


def test_without_the_fold_an_unknown_send_on_this_channel_would_be_resent(settings, shop):
    """The control of the test above: the same set-up without a verdict hands the messages over again."""
    con, scenarios = shop
    night(con, settings, scenarios, D)
    ids = [r[0] for r in con.execute("select send_id from ledger.sends where status = 'sent' and channel = 'email' "
                                     "order by send_id limit 2").fetchall()]
    ledger.mark(con, ids, "unknown", "process stopped during delivery")
    assert sorted(m.send_id for m in night(con, settings, scenarios, D + timedelta(days=1))) == sorted(ids)


def test_actions_are_folded_once_however_many_nights_run(settings, shop):
    con, scenarios = shop
    with console(settings) as sq:
        store.add_hold(sq, "trial", "mail", D, by="hanako")
        store.approve(sq, "phone", D, rows_seen=0, by="taro")
    for i in range(3):
        night(con, settings, scenarios, D + timedelta(days=i))
    assert con.execute("select kind, count(*) from ledger.console_actions group by 1 order by 1").fetchall() == [
        ("approval", 1), ("hold", 1)]


def test_an_unreadable_console_store_stops_the_campaigns_before_anything_is_sent(settings, shop):
    con, scenarios = shop
    settings.console_store.parent.mkdir(parents=True, exist_ok=True)
    settings.console_store.write_bytes(b"this is not an SQLite database" * 100)
    delivered: list[Message] = []
    with pytest.raises(KizunaError, match="console's store cannot be read"):
        run_campaigns(con, settings, scenarios, D, lambda name: MemoryChannel(name, delivered))
    assert delivered == []


def test_an_erasure_request_sets_deleted_at_and_the_erasure_rules_follow(settings, tmp_path):
    from kizuna.privacy import apply_erasures

    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute("create schema raw")
        con.execute("create table raw.customers (customer_id varchar, email varchar, phone varchar, "
                    "line_user_id varchar, last_name varchar, deleted_at timestamp, _loaded_at timestamp)")
        con.execute("insert into raw.customers values ('C1', 'c1@example.jp', '090-1111-2222', null, '山田', null, "
                    "now()::timestamp - interval 1 day), ('C2', 'c2@example.jp', null, null, '佐藤', null, "
                    "now()::timestamp - interval 1 day)")
    apply_erasures(settings)  # a first night: nothing erased, the watermark of raw.customers is set
    with console(settings) as sq:
        assert store.request_erasure(sq, "C1", by="hanako")
        assert not store.request_erasure(sq, "C1", by="hanako")

    assert nightly.fold_erasure_requests(settings) == 1
    result = apply_erasures(settings)
    with duckdb.connect(str(settings.warehouse)) as con:
        rows = dict(con.execute("select customer_id, email is null and last_name is null and deleted_at is not null "
                                "from raw.customers").fetchall())
        ledger.attach(con, settings.ledger)
        registered = con.execute("select count(*) from ledger.erasures where kind = 'customer_id'").fetchone()[0]
        recorded = con.execute("select customer_id, by_user, outcome from ledger.console_actions").fetchall()
    assert rows == {"C1": True, "C2": False}
    assert registered == 1 and result.summary()
    assert recorded == [("C1", "hanako", "deleted_at set: erased tonight")]
    assert nightly.fold_erasure_requests(settings) == 0  # folded once


# -- the ledger while someone reads it ---------------------------------------------------------------------------


def _reader_holding(path, seconds: float):
    """Another process holding the ledger open read-only (the console copying it, a preview) for `seconds`."""
    import subprocess
    import sys

    code = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); print('open', flush=True); "
            "time.sleep(float(sys.argv[2]))")
    reader = subprocess.Popen([sys.executable, "-c", code, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "open"
    return reader


def test_the_night_waits_for_a_reader_of_the_ledger_to_let_go(tmp_path, monkeypatch):
    import time

    import duckdb

    from campaigns import ledger
    from kizuna.errors import KizunaError

    path = tmp_path / "ledger.duckdb"
    con = duckdb.connect()
    ledger.attach(con, path)
    con.close()
    reader = _reader_holding(path, 2.0)
    started = time.monotonic()
    con = duckdb.connect()
    ledger.attach(con, path)  # used to fail at once: "Could not set lock on file"
    waited = time.monotonic() - started
    reader.wait()
    assert waited > 0.3 and con.execute("select count(*) from ledger.sends").fetchone() == (0,)
    con.close()
    # A reader that never lets go: a clear stop naming the file, nothing sent.
    monkeypatch.setattr(ledger, "ATTACH_WAIT_SECONDS", 0.5)
    reader = _reader_holding(path, 10.0)
    try:
        with pytest.raises(KizunaError, match="stayed in use by another process"):
            ledger.attach(duckdb.connect(), path)
    finally:
        reader.kill()

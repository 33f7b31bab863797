"""Issue 17, parts 3 and 4: birthday, date-column and run-out anchors, and `send_time: best`.

The real engine runs night after night over a small DuckDB warehouse (tests/campaign_fakes.py) with
the real ledger; what it hands to an in-process channel is compared with the expected calendar.
"""

from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path

import pytest

from campaign_fakes import MemoryChannel as Memory, add_customer, add_order, make_warehouse
from campaigns.engine import best_send_hours, run_campaigns
from campaigns.schema import Scenario, load_scenarios
from connectors.channels.base import Message
from kizuna.errors import ScenarioError


@pytest.fixture
def wh(settings):
    con = make_warehouse(settings.warehouse)
    yield con
    con.close()


def builtin(scenario_id: str) -> Scenario:
    """A shipped scenario, hold-out off so every customer is sent to."""
    return next(s for s in load_scenarios() if s.id == scenario_id).model_copy(update={"holdout_percent": 0})


def scenario(**fields) -> Scenario:
    data = {"id": "t", "name": "test", "priority": 10, "stage": "any", "holdout_percent": 0} | fields
    return Scenario.model_validate(data)


class Nights:
    """Runs the engine on each night of some date ranges; records (send date, step, channel, customer)."""

    def __init__(self, con, settings, scenarios):
        self.con, self.settings, self.scenarios = con, settings, scenarios
        self.log: list[Message] = []
        self.sent: set[tuple[date, str, str, str]] = set()

    def run(self, night: date):
        before = len(self.log)
        result = run_campaigns(self.con, self.settings, self.scenarios, night, lambda name: Memory(name, self.log))
        for m in self.log[before:]:
            self.sent.add((night, m.step_id, m.channel, m.customer_id))
        return result

    def run_range(self, first: date, last: date, on_night=None):
        night = first
        while night <= last:
            if on_night:
                on_night(night)
            self.run(night)
            night += timedelta(days=1)


# --- birthday ------------------------------------------------------------------------------------------


def test_birthday_fires_a_week_before_and_on_the_day_leap_day_and_new_year(settings, wh):
    add_customer(wh, "MAR", date(2020, 5, 1), rfm_segment="loyal", birth_date=date(1980, 3, 15))
    add_customer(wh, "LEAP", date(2020, 5, 1), rfm_segment="loyal", birth_date=date(1992, 2, 29))
    add_customer(wh, "JAN", date(2020, 5, 1), rfm_segment="loyal", birth_date=date(1985, 1, 2))
    add_customer(wh, "NOBD", date(2020, 5, 1), rfm_segment="loyal", birth_date=None)
    add_customer(wh, "NEW", date(2020, 5, 1), rfm_segment="new", birth_date=date(1980, 3, 15))
    nights = Nights(wh, settings, [builtin("birthday_gift_loyal")])
    # Around New Year, the end of February and mid-March, in a leap year (2024) and the next (2025).
    for year in (2024, 2025):
        for first, last in (((year - 1, 12, 23), (year, 1, 3)), ((year, 2, 19), (year, 3, 1)),
                            ((year, 3, 6), (year, 3, 16))):
            nights.run_range(date(*first), date(*last))
    mail, line = ("before7_gift_mail", "email"), ("on_day_greeting_line", "line")
    expected = {
        (date(2024, 3, 8), *mail, "MAR"), (date(2024, 3, 15), *line, "MAR"),
        (date(2025, 3, 8), *mail, "MAR"), (date(2025, 3, 15), *line, "MAR"),
        # 29 February: on the day in 2024, on 28 February in 2025 (the mail a week before that)
        (date(2024, 2, 22), *mail, "LEAP"), (date(2024, 2, 29), *line, "LEAP"),
        (date(2025, 2, 21), *mail, "LEAP"), (date(2025, 2, 28), *line, "LEAP"),
        # 2 January: the mail goes out on 26 December of the year before
        (date(2023, 12, 26), *mail, "JAN"), (date(2024, 1, 2), *line, "JAN"),
        (date(2024, 12, 26), *mail, "JAN"), (date(2025, 1, 2), *line, "JAN"),
    }
    assert nights.sent == expected
    # nothing else in the ledger either (no row due in a night not run, recorded as missed)
    assert wh.execute("select status, count(*) from ledger.sends group by all").fetchall() == [("sent", 12)]
    # The ledger keys each year's birthday as its own anchor, the New Year mail under the coming birthday.
    anchors = wh.execute("select customer_id, due_date, anchor_date from ledger.sends "
                         "where customer_id = 'JAN' and channel = 'email' order by due_date").fetchall()
    assert anchors == [("JAN", date(2023, 12, 26), date(2024, 1, 2)), ("JAN", date(2024, 12, 26), date(2025, 1, 2))]
    assert nights.run(date(2025, 3, 15)).total("sent") == 0  # a re-run of a night sends nothing again


# --- run-out -------------------------------------------------------------------------------------------


def bought(con, customer_id: str, day: date, units: int, product: str = "P002", days_per_unit: int = 30) -> None:
    """The customer's order of `units` units; marts.customer_run_out follows as the nightly build would
    (the dbt model customer_run_out: last counted order of the product, units × days_per_unit later)."""
    con.execute("delete from marts.customer_run_out where customer_id = ? and product_id = ?", [customer_id, product])
    con.execute("insert into marts.customer_run_out values (?, ?, ?)",
                [customer_id, product, day + timedelta(days=units * days_per_unit)])


def test_run_out_reminder_five_days_before_and_a_reorder_stops_it(settings, wh):
    d0 = date(2026, 1, 10)
    for cid, units in (("ONE", 1), ("TWO", 2), ("REORDER", 1), ("SUB", 1)):
        add_customer(wh, cid, d0, subscription_status="active" if cid == "SUB" else "none")
        bought(wh, cid, d0, units)
    add_customer(wh, "OTHER", d0)
    bought(wh, "OTHER", d0, 1, product="P003")  # another product's run-out: not this scenario's anchor

    def life(night: date) -> None:
        if night == d0 + timedelta(days=20):  # REORDER buys again before the reminder (day 30 - 5)
            add_order(wh, "REORDER", night)
            bought(wh, "REORDER", night, 1)

    nights = Nights(wh, settings, [builtin("run_out_reminder")])
    nights.run_range(d0, d0 + timedelta(days=63), life)
    assert nights.sent == {
        (d0 + timedelta(days=25), "before5_reorder_mail", "email", "ONE"),  # runs out on day 30
        (d0 + timedelta(days=32), "after2_reorder_line", "line", "ONE"),
        (d0 + timedelta(days=55), "before5_reorder_mail", "email", "TWO"),  # two packs: day 60
        (d0 + timedelta(days=62), "after2_reorder_line", "line", "TWO"),
    }


def test_a_reorder_moves_the_run_out_anchor_without_any_goal(settings, wh):
    """Without a goal the reorder still stops the old reminder: the run-out date moves with the new order,
    and the reminder comes again before the new date."""
    d0 = date(2026, 1, 10)
    add_customer(wh, "R", d0)
    bought(wh, "R", d0, 1)
    s = scenario(entry={"event": "run_out"}, steps=[{"id": "before5", "day": -5, "channel": "email",
                                                      "template": "run_out_reminder"}])
    nights = Nights(wh, settings, [s])
    nights.run_range(d0, d0 + timedelta(days=60),
                     lambda n: n == d0 + timedelta(days=22) and bought(wh, "R", n, 1))
    assert nights.sent == {(d0 + timedelta(days=22 + 25), "before5", "email", "R")}


# --- a named date column -------------------------------------------------------------------------------


def test_date_column_anchor_fires_on_the_columns_date(settings, wh):
    d0 = date(2026, 3, 2)
    add_customer(wh, "D", d0, first_delivered_at=f"{d0 + timedelta(days=3)} 15:20:00")
    add_customer(wh, "U", d0)  # not delivered yet: no anchor
    s = scenario(entry={"event": "date_column", "column": "first_delivered_at"},
                 steps=[{"id": "after2", "day": 2, "channel": "email", "template": "f2_usage_guide"}])
    nights = Nights(wh, settings, [s])
    nights.run_range(d0, d0 + timedelta(days=10))
    assert nights.sent == {(d0 + timedelta(days=5), "after2", "email", "D")}


@pytest.mark.parametrize("entry, expected", [
    ({"event": "date_column", "column": "first_deliverd_at"},
     ["'first_deliverd_at'", "no such column", "first_delivered_at", "first_order_date", "last_order_date"]),
    ({"event": "date_column", "column": "stage"}, ["marts.dim_customers.stage is VARCHAR", "first_delivered_at"]),
    ({"event": "date_column", "column": "x", "table": "marts.nope"}, ["no table marts.nope"]),
])
def test_date_column_is_checked_against_the_warehouse(settings, wh, entry, expected):
    add_customer(wh, "D", date(2026, 3, 2))
    s = scenario(entry=entry, steps=[{"id": "a", "day": 1, "channel": "email", "template": "f2_usage_guide"}])
    with pytest.raises(ScenarioError) as error:
        run_campaigns(wh, settings, [s], date(2026, 3, 5), lambda name: Memory(name, []))
    for text in ["scenario t", *expected]:
        assert text in str(error.value)
    assert wh.execute("select count(*) from ledger.sends").fetchone()[0] == 0  # nothing recorded


@pytest.mark.parametrize("fields, expected", [
    ({"entry": {"event": "first_order"}, "steps": [{"id": "a", "day": -3, "channel": "email",
                                                     "template": "f2_usage_guide"}]}, "steps.0.day"),
    ({"entry": {"event": "date_column"}}, "needs column"),
    ({"entry": {"event": "birthday", "column": "birth_date"}}, "only to event date_column"),
    ({"entry": {"event": "first_order", "product": ["P002"]}}, "only to event run_out"),
    ({"entry": {"event": "run_out", "product": ["P002'; drop"]}}, "product id"),
    ({"steps": [{"id": "a", "day": 1, "channel": "email", "template": "f2_usage_guide",
                 "send_time_fallback": "09:00"}]}, "only with send_time: best"),
])
def test_anchor_and_send_time_options_are_validated(fields, expected):
    data = {"entry": {"event": "birthday"},
            "steps": [{"id": "a", "day": 1, "channel": "email", "template": "f2_usage_guide"}]} | fields
    with pytest.raises(ValueError) as error:
        scenario(**data)
    assert expected in str(error.value)


# --- send_time: best -----------------------------------------------------------------------------------


def opened(con, send_id: str, *times: str) -> None:
    con.execute("create table if not exists raw.message_events (send_id varchar, event varchar, event_at timestamp)")
    for at in times:
        con.execute("insert into raw.message_events values (?, 'open', ?)", [send_id, at])


def test_send_time_best_picks_the_most_frequent_open_hour_with_a_fallback(settings, wh):
    d0 = date(2026, 5, 1)
    for cid in ("OWL", "LARK", "NEVER"):
        add_customer(wh, cid, d0, has_dm_consent=True)
    first = scenario(id="first", entry={"event": "first_order"},
                     steps=[{"id": "hello", "day": 1, "channel": "email", "template": "f2_thank_you"}])
    later = scenario(id="later", entry={"event": "first_order"}, steps=[
        {"id": "best_mail", "day": 3, "channel": "email", "template": "f2_usage_guide",
         "send_time": "best", "send_time_fallback": "09:30"},
        {"id": "best_dm", "day": 3, "channel": "dm", "template": "dormant_dm", "send_time": "best"},
        {"id": "fixed_line", "day": 4, "channel": "line", "template": "birthday_line", "send_time": "18:00"},
    ])
    nights = Nights(wh, settings, [first, later])
    nights.run_range(d0, d0 + timedelta(days=2))
    sends = dict(wh.execute("select customer_id, send_id from ledger.sends where step_id = 'hello'").fetchall())
    # OWL opens mostly at 21h (shop time), once at 7h; LARK at 7h and 8h, tie broken by the latest open.
    opened(wh, sends["OWL"], "2026-05-02 21:05:00", "2026-05-03 21:40:00", "2026-05-02 07:10:00", "2026-05-04 21:00:00")
    opened(wh, sends["LARK"], "2026-05-02 07:10:00", "2026-05-03 08:30:00")
    wh.execute("insert into raw.message_events values (?, 'delivered', '2026-05-02 03:00:00')", [sends["NEVER"]])
    assert best_send_hours(wh, ["OWL", "LARK", "NEVER"]) == {"OWL": 21, "LARK": 8}
    nights.run_range(d0 + timedelta(days=3), d0 + timedelta(days=4))
    at = {(m.step_id, m.customer_id): m.extra["send_at"] for m in nights.log}
    day3, day4 = d0 + timedelta(days=3), d0 + timedelta(days=4)
    assert at[("best_mail", "OWL")] == f"{day3}T21:00:00"
    assert at[("best_mail", "LARK")] == f"{day3}T08:00:00"
    assert at[("best_mail", "NEVER")] == f"{day3}T09:30:00"  # no opens: the step's fallback time
    # a printed DM list ignores it: the fixed default time for everyone; a fixed time stays fixed
    assert {at[("best_dm", c)] for c in ("OWL", "LARK", "NEVER")} == {f"{day3}T10:00:00"}
    assert {at[("fixed_line", c)] for c in ("OWL", "LARK", "NEVER")} == {f"{day4}T18:00:00"}


def test_send_time_default_stays_fixed():
    s = scenario(entry={"event": "birthday"}, steps=[{"id": "a", "day": 0, "channel": "email",
                                                       "template": "birthday_gift"}])
    assert s.steps[0].send_time == time(10, 0) and not s.steps[0].uses_best_time


def test_validate_checks_a_date_column_against_the_warehouse(tmp_path):
    """`kizuna campaigns validate` names the missing column and the date columns there are, when the
    warehouse exists; without one it cannot know and passes (the nightly run checks it then)."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "scenarios"
    (folder / "templates").mkdir(parents=True)
    (folder / "s.yaml").write_text(
        "id: s\nname: S\npriority: 1\nstage: any\nentry: {event: date_column, column: first_deliverd_at}\n"
        "steps:\n  - {id: a, day: 1, channel: email, template: f2_usage_guide}\n", encoding="utf-8")
    env = {**os.environ, "KIZUNA_SCENARIOS_DIR": str(folder), "KIZUNA_WAREHOUSE": str(tmp_path / "w.duckdb"),
           "COLUMNS": "400"}
    kizuna = Path(sys.executable).parent / "kizuna"

    def validate() -> subprocess.CompletedProcess:
        return subprocess.run([str(kizuna), "campaigns", "validate"], capture_output=True, text=True, timeout=120,
                              env=env)

    assert validate().returncode == 0  # no warehouse yet
    make_warehouse(tmp_path / "w.duckdb").close()
    done = validate()
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert "'first_deliverd_at'" in done.stdout and "first_delivered_at" in done.stdout

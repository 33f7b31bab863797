"""Journeys that react (docs/journeys.md): conditions on earlier steps and the same-day fallback channel.

The simulation runs the real nightly path day by day: SendGrid's events are stored as the webhook
stores them (kizuna.events.store), `load_events` copies them into raw.message_events, and the real
engine selects, records and delivers (to an in-process channel) against a warehouse file and a ledger.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from campaign_fakes import MemoryChannel as Memory, add_abandoned_cart, add_customer, add_order, make_warehouse
from campaigns import ledger
from campaigns.engine import preview_campaigns, run_campaigns
from campaigns.schema import Scenario, load_scenario, load_scenarios
from connectors.channels.base import Message
from kizuna.config import Settings
from kizuna.errors import ScenarioError
from kizuna.events import store
from kizuna.events.load import load_events

ROOT = Path(__file__).resolve().parent.parent
D0 = date(2026, 9, 1)  # the day of the first (trial) order

JOURNEY = """\
id: trial_journey
name: Trial journey (mail on day 6, LINE on day 8 to those who did not open it)
priority: 900
stage: initial
entry: {event: first_order}
holdout_percent: 0
steps:
  - {id: d06_mail, day: 6, channel: email, template: suppa_info,
     fallback: {channel: line, template: cart_reminder_line}}
  - {id: d08_line, day: 8, channel: line, template: cart_reminder_line,
     only_if: {not_opened: d06_mail, within_days: 2}}
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, data_dir=tmp_path / "data", dbt_project_dir=ROOT / "dbt_project")


def scenario_file(folder: Path, text: str, name: str = "journey.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


class Nights:
    """The nightly flow, one night at a time: webhook events received so far are stored, loaded into the
    warehouse (load_events), then the campaign run for the day. The warehouse is open only during a night."""

    def __init__(self, settings: Settings, scenarios: list[Scenario]):
        self.settings, self.scenarios = settings, scenarios
        self.log: list[Message] = []
        self.sent: list[tuple[int, str, str, str]] = []  # (day, customer, step, channel)
        self.pending: list[dict] = []  # SendGrid events not yet received by the webhook
        self.tz = ZoneInfo(settings.timezone)

    def event(self, send_id: str, kind: str, at: datetime) -> None:
        """A SendGrid event (custom args at the top level, as kizuna's mails carry them) happening at `at`."""
        self.pending.append({"email": "x@example.jp", "event": kind, "sg_event_id": f"{send_id}-{kind}-{at:%j%H%M}",
                             "timestamp": int(at.replace(tzinfo=self.tz).timestamp()), "send_id": send_id})

    def night(self, n: int) -> None:
        self.receive(n)
        run_date = D0 + timedelta(days=n)
        with duckdb.connect(str(self.settings.warehouse)) as con:
            before = len(self.log)
            run_campaigns(con, self.settings, self.scenarios, run_date, lambda name: Memory(name, self.log))
            for m in self.log[before:]:
                self.sent.append((n, m.customer_id, m.step_id, m.channel))

    def receive(self, n: int) -> None:
        """The night's first stage: events received before its run (02:00), stored and loaded."""
        run_date = D0 + timedelta(days=n)
        cutoff = datetime.combine(run_date, time(2, 0)).replace(tzinfo=self.tz).timestamp()  # the run at 02:00
        arrived = [e for e in self.pending if e["timestamp"] < cutoff]
        self.pending = [e for e in self.pending if e["timestamp"] >= cutoff]
        events = store.connect(self.settings.events_store)
        try:
            store.add_sendgrid_events(events, arrived)
        finally:
            events.close()
        load_events(self.settings, self.scenarios)

    def send_id(self, customer_id: str, step_id: str, scenario_id: str | None = None) -> str:
        with duckdb.connect(str(self.settings.ledger), read_only=True) as con:
            (send_id,), = con.execute("select send_id from sends where customer_id = ? and step_id = ? "
                                      "and scenario_id = coalesce(?, scenario_id)",
                                      [customer_id, step_id, scenario_id]).fetchall()
            return send_id

    def ledger_rows(self, scenario_id: str) -> dict[tuple[str, str], tuple[str, str, str]]:
        with duckdb.connect(str(self.settings.ledger), read_only=True) as con:
            rows = con.execute("select customer_id, step_id, channel, status, detail from sends "
                               "where scenario_id = ?", [scenario_id]).fetchall()
        return {(c, s): (ch, st, d) for c, s, ch, st, d in rows}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(D0 + timedelta(days=day), time(hour, minute))


def test_day_by_day_non_openers_get_the_line_and_no_consent_gets_it_on_day_6(settings, tmp_path):
    con = make_warehouse(settings.warehouse)
    for cid, extra in [
        ("OPENS", {}),                   # opens the day-6 mail on day 7
        ("CLICKS", {}),                  # clicks in it (images blocked: no open event); a click proves the open
        ("IGNORES", {}),                 # the mail is delivered, never opened
        ("LATE", {}),                    # opens it on day 8 at 00:30, after the two-day window
        ("NOMAIL", {"has_email_consent": False}),  # no e-mail consent: LINE on day 6, not again on day 8
        ("NOWHERE", {"has_email_consent": False, "has_line_consent": False}),  # reachable by neither
    ]:
        add_customer(con, cid, D0, kind="trial", age_band="60s", **extra)
    con.close()
    scenario = load_scenario(scenario_file(tmp_path / "scenarios", JOURNEY))
    nights = Nights(settings, [scenario])
    for n in range(0, 7):
        nights.night(n)
    mail = {cid: nights.send_id(cid, "d06_mail") for cid in ("OPENS", "CLICKS", "IGNORES", "LATE")}
    for cid, send_id in mail.items():
        nights.event(send_id, "delivered", at(6, 10, 1))
    nights.event(mail["OPENS"], "open", at(7, 12))
    nights.event(mail["CLICKS"], "click", at(6, 21))
    nights.event(mail["LATE"], "open", at(8, 0, 30))
    for n in range(7, 11):
        nights.night(n)

    assert sorted(nights.sent) == [
        (6, "CLICKS", "d06_mail", "email"), (6, "IGNORES", "d06_mail", "email"), (6, "LATE", "d06_mail", "email"),
        (6, "NOMAIL", "d06_mail", "line"), (6, "OPENS", "d06_mail", "email"),
        (8, "IGNORES", "d08_line", "line"), (8, "LATE", "d08_line", "line"),
    ]
    rows = nights.ledger_rows("trial_journey")
    assert rows[("OPENS", "d08_line")] == ("line", "skipped", "condition:not_opened")
    assert rows[("CLICKS", "d08_line")] == ("line", "skipped", "condition:not_opened")
    assert rows[("IGNORES", "d08_line")][:2] == ("line", "sent")
    assert rows[("NOMAIL", "d06_mail")][:2] == ("line", "sent")  # the channel actually used
    assert rows[("NOMAIL", "d08_line")] == ("line", "skipped", "condition:not_opened")  # had it on LINE already
    assert rows[("NOWHERE", "d06_mail")] == ("email", "skipped", "no_consent")  # the step's own reason
    assert rows[("NOWHERE", "d08_line")] == ("line", "skipped", "no_consent")
    # one ledger row per step and customer: nobody got the mail and its fallback
    assert len(rows) == 12
    with duckdb.connect(str(settings.warehouse), read_only=True) as wh:  # the events came the webhook's way
        loaded = wh.execute("select event, count(*) from raw.message_events group by all order by all").fetchall()
    assert loaded == [("click", 1), ("delivered", 4), ("open", 2)]


def test_the_fallback_is_noted_and_a_step_is_never_sent_the_night_of_the_one_it_depends_on(settings, tmp_path):
    """The cart reminder as shipped: the e-mail falls back to LINE. When missed nights make the e-mail and the
    LINE reminder due the same night, nobody can have opened the e-mail yet: the LINE is skipped, recorded
    once (a re-run of the night adds nothing)."""
    con = make_warehouse(settings.warehouse)
    add_customer(con, "U1", None, has_email_consent=False)  # a prospect without e-mail consent
    add_abandoned_cart(con, "U1", D0)
    add_customer(con, "U2", None)
    add_abandoned_cart(con, "U2", D0)
    cart = [s.model_copy(update={"holdout_percent": 0}) for s in load_scenarios() if s.id == "cart_abandonment"]
    con.close()
    with duckdb.connect(str(settings.warehouse), read_only=True) as ro:
        preview = preview_campaigns(ro, settings, cart, D0 + timedelta(days=1), audience=True)
    fallback = [r for r in preview.audience if r["customer_id"] == "U1"]
    assert [(r["channel"], r["status"], r["detail"]) for r in fallback] == [
        ("line", "planned", "fallback:email:no_consent")]

    nights = Nights(settings, cart)
    nights.night(3)  # nights 1 and 2 did not run: both steps fall due tonight (catch-up)
    assert sorted(nights.sent) == [(3, "U1", "d01_reminder_mail", "line"), (3, "U2", "d01_reminder_mail", "email")]
    rows = nights.ledger_rows("cart_abandonment")
    assert rows[("U1", "d03_reminder_line")] == ("line", "skipped", "condition:not_opened")
    assert rows[("U2", "d03_reminder_line")] == ("line", "skipped", "condition:not_opened")
    nights.night(3)  # the same night again
    nights.night(4)
    assert len(nights.ledger_rows("cart_abandonment")) == 4 and len(nights.sent) == 2


@pytest.mark.parametrize("kind, within, events, orders, sent", [
    # kind, within_days, SendGrid events of the day-1 mail (day offset), order days, is day 3 sent?
    ("delivered", 2, [("delivered", 1)], [], True),
    ("delivered", 2, [], [], False),                      # SendGrid never said delivered (bounced, dropped)
    ("not_delivered", 2, [("bounce", 1)], [], True),
    ("opened", 2, [("delivered", 1), ("open", 2)], [], True),
    ("opened", 1, [("delivered", 1), ("open", 2)], [], False),  # opened on day 2, the window is day 1 only
    ("clicked", 2, [("open", 1)], [], False),
    ("not_clicked", 2, [("open", 1)], [], True),
    ("ordered", 2, [], [2], True),
    ("ordered", 2, [], [], False),
    ("not_ordered", 2, [], [2], False),
])
def test_each_condition_kind(settings, tmp_path, kind, within, events, orders, sent):
    text = f"""\
id: kinds
name: Condition kinds
priority: 900
stage: any
entry: {{event: first_order}}
holdout_percent: 0
steps:
  - {{id: d01_mail, day: 1, channel: email, template: suppa_info}}
  - {{id: d03_dm, day: 3, channel: dm, template: suppa_dm_offer, only_if: {{{kind}: d01_mail, within_days: {within}}}}}
"""
    con = make_warehouse(settings.warehouse)
    add_customer(con, "K1", D0)
    con.close()
    scenario = load_scenario(scenario_file(tmp_path / "scenarios", text))
    nights = Nights(settings, [scenario])
    nights.night(1)
    send_id = nights.send_id("K1", "d01_mail")
    for event, day in events:
        nights.event(send_id, event, at(day, 15))
    for day in orders:
        with duckdb.connect(str(settings.warehouse)) as wh:
            add_order(wh, "K1", D0 + timedelta(days=day))
    nights.night(2)
    nights.night(3)
    row = nights.ledger_rows("kinds")[("K1", "d03_dm")]
    assert row[1] == ("sent" if sent else "skipped")
    assert sent or row[2] == f"condition:{kind}"


BASE = "id: x\nname: X\npriority: 1\nstage: initial\nentry: {event: first_order}\nsteps:\n"


@pytest.mark.parametrize("steps, expected", [
    ("  - {id: a, day: 1, channel: email, template: f2_thank_you}\n"
     "  - {id: b, day: 3, channel: line, template: cart_reminder_line, only_if: {not_opened: zz}}\n",
     "step b (only_if: {not_opened: zz}): this scenario has no step zz; name an earlier step of this scenario: ['a']"),
    ("  - {id: a, day: 3, channel: email, template: f2_thank_you}\n"
     "  - {id: b, day: 3, channel: line, template: cart_reminder_line, only_if: {opened: a}}\n",
     "a is not before it (day 3 vs 3)"),
    ("  - {id: a, day: 1, channel: line, template: cart_reminder_line}\n"
     "  - {id: b, day: 3, channel: email, template: f2_thank_you, only_if: {not_opened: a}}\n",
     "opens and clicks are known only for e-mail (SendGrid events), and a is a line step"),
    ("  - {id: a, day: 1, channel: email, template: f2_thank_you}\n"
     "  - {id: b, day: 3, channel: line, template: cart_reminder_line, only_if: {not_opened: a, within_days: 5}}\n",
     "use within_days <= 2 or move the step to day 6"),
    ("  - {id: a, day: 1, channel: email, template: f2_thank_you}\n"
     "  - {id: b, day: 3, channel: line, template: cart_reminder_line, only_if: {opened: a, clicked: a}}\n",
     "only_if takes exactly one of"),
    ("  - {id: a, day: 1, channel: email, template: f2_thank_you}\n"
     "  - {id: b, day: 3, channel: line, template: cart_reminder_line, only_if: {within_days: 2}}\n",
     "only_if takes exactly one of"),
    ("  - {id: a, day: 1, channel: email, template: f2_thank_you, fallback: {channel: email, template: f2_thank_you}}\n",
     "a fallback must use another channel"),
    ("  - {id: a, day: 1, channel: email, template: f2_thank_you, fallback: [{channel: line, template: no_such}]}\n",
     "no template 'no_such'"),
])
def test_journey_errors_name_file_step_and_fix(tmp_path, steps, expected):
    path = scenario_file(tmp_path, BASE + steps, "my_journey.yaml")
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    assert "my_journey.yaml" in str(error.value) and expected in str(error.value), str(error.value)


def test_within_days_defaults_to_the_days_between_the_steps(tmp_path):
    path = scenario_file(tmp_path, BASE + "  - {id: a, day: 1, channel: email, template: f2_thank_you}\n"
                         "  - {id: b, day: 4, channel: line, template: cart_reminder_line, only_if: {opened: a}}\n")
    scenario = load_scenario(path)
    assert scenario.condition_days(scenario.steps[1]) == 3


def test_cli_preview_shows_why_per_step_writes_the_audience_csv_and_nothing_else(settings, tmp_path):
    folder = tmp_path / "scenarios"
    scenario_file(folder, JOURNEY)
    scenario_file(folder, JOURNEY.replace("id: trial_journey", "id: other_journey").replace("priority: 900",
                                                                                          "priority: 10"), "other.yaml")
    con = make_warehouse(settings.warehouse)
    for cid, extra in [("OPENS", {}), ("IGNORES", {}), ("NOMAIL", {"has_email_consent": False}),
                       ("NOLINE", {"has_line_consent": False})]:
        add_customer(con, cid, D0, kind="trial", **extra)
    con.close()
    nights = Nights(settings, load_scenarios(folder))
    for n in range(0, 7):
        nights.night(n)
    nights.event(nights.send_id("OPENS", "d06_mail", "trial_journey"), "open", at(7, 9))
    nights.night(7)
    nights.receive(8)  # the night of day 8 has loaded its events; the preview comes before its campaign run
    ledger_before = settings.ledger.stat().st_mtime_ns, settings.ledger.stat().st_size
    warehouse_before = settings.warehouse.stat().st_mtime_ns

    cli = [sys.executable, "-m", "kizuna.cli", "campaigns", "preview", "--date", str(D0 + timedelta(days=8))]
    env = {**os.environ, "KIZUNA_HOME": str(tmp_path), "KIZUNA_DATA_DIR": str(settings.data_dir),
           "KIZUNA_SCENARIOS_DIR": str(folder), "COLUMNS": "220"}
    out = tmp_path / "audience.csv"
    done = subprocess.run([*cli, "--scenario", "trial_journey", "--csv", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if "d08_line" in x)
    # due 4; sent to IGNORES; OPENS opened, NOMAIL had it by LINE: condition; NOLINE: no LINE consent
    assert "trial_journey" in line and " 4 " in line and "line 1" in line, done.stdout
    assert "条件不成立 (condition) not_opened 2" in line and "同意なし (no consent) 1" in line, done.stdout
    assert "other_journey" not in done.stdout  # --scenario: only that one is shown
    with out.open(encoding="utf-8-sig", newline="") as f:
        rows = {r["customer_id"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"OPENS", "IGNORES", "NOMAIL", "NOLINE"}
    assert (rows["OPENS"]["status"], rows["OPENS"]["reason"], rows["OPENS"]["detail"]) == (
        "skipped", "condition", "condition:not_opened")
    assert (rows["IGNORES"]["status"], rows["IGNORES"]["channel"], rows["IGNORES"]["reason"]) == ("planned", "line", "")
    assert (rows["NOLINE"]["reason"], rows["NOLINE"]["detail"]) == ("consent", "no_consent")
    assert {r["step_id"] for r in rows.values()} == {"d08_line"}
    # nothing was written: the ledger and the warehouse are as they were
    assert (settings.ledger.stat().st_mtime_ns, settings.ledger.stat().st_size) == ledger_before
    assert settings.warehouse.stat().st_mtime_ns == warehouse_before

    wrong = subprocess.run([*cli, "--scenario", "no_such"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=120)
    assert wrong.returncode == 1 and "no such scenario" in wrong.stdout and "trial_journey" in wrong.stdout
    assert "Traceback" not in wrong.stdout + wrong.stderr

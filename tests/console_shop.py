"""A small shop for the console tests: a real DuckDB warehouse (the marts the selection reads), its published
copy, a send ledger with a night already sent (two messages of which are left `unknown`, as a run that died
mid-request leaves them), the shop's own scenarios, users, and a console served by uvicorn on loopback.

Scenarios: `care` (an e-mail the day after a one-off first order), `letter` (a printed DM the same day, to
the same customers) and `trial` (an e-mail the day after a trial order). The campaign result marts hold a
few illustrative rows so that the results page has something to draw (they are test data, not a result).
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator

import duckdb
import yaml

from campaign_fakes import add_customer, make_warehouse
from campaigns import ledger
from campaigns.engine import run_campaigns
from campaigns.schema import load_scenarios
from connectors.channels.outbox import OutboxChannel
from kizuna.config import Settings
from kizuna.console import auth

FIRST_NIGHT = date(2026, 11, 23)  # already run: its messages are in the ledger
NEXT_NIGHT = FIRST_NIGHT + timedelta(days=1)  # "tonight" in the tests
USER, PASSWORD = "hanako", "sakura-2026-console"

SCENARIOS = [
    {"id": "care", "name": "Care", "priority": 30, "stage": "initial", "entry": {"event": "first_order"},
     "segment": {"first_order_kind": "one_off"},
     "steps": [{"id": "thanks", "day": 1, "channel": "email", "template": "f2_thank_you"}]},
    {"id": "letter", "name": "Letter", "priority": 20, "stage": "initial", "entry": {"event": "first_order"},
     "segment": {"first_order_kind": "one_off"},
     "steps": [{"id": "dm", "day": 1, "channel": "dm", "template": "dormant_dm"}]},
    {"id": "trial", "name": "Trial", "priority": 10, "stage": "initial", "entry": {"event": "first_order"},
     "segment": {"first_order_kind": "trial"},
     "steps": [{"id": "guide", "day": 1, "channel": "email", "template": "f2_usage_guide"}]},
]


def make_settings(folder: Path, **overrides) -> Settings:
    scenarios = folder / "scenarios"
    (scenarios / "templates").mkdir(parents=True, exist_ok=True)
    for data in SCENARIOS:
        (scenarios / f"{data['id']}.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return Settings(home=folder, data_dir=folder / "data", scenarios_dir=scenarios, require_approval="dm",
                    **overrides)


def outbox(settings: Settings):
    return lambda name: OutboxChannel(settings.outbox_dir, name, settings.sender_name, settings.sender_email)


def run_night(settings: Settings, day: date):
    """One nightly campaign run on the warehouse (delivering to the local outbox)."""
    with duckdb.connect(str(settings.warehouse)) as con:
        return run_campaigns(con, settings, load_scenarios(settings.scenarios_dir), day, outbox(settings))


def publish(settings: Settings) -> None:
    """What the nightly run does after its mart gate: the warehouse copied whole to the published file."""
    partial = settings.published_warehouse.with_name("published.part")
    shutil.copyfile(settings.warehouse, partial)
    partial.replace(settings.published_warehouse)


def build(folder: Path, **overrides) -> tuple[Settings, list[str]]:
    """The shop after its first night; returns the settings and the two send ids left `unknown`."""
    settings = make_settings(folder, **overrides)
    with make_warehouse(settings.warehouse) as con:
        for i in range(3):
            add_customer(con, f"C{i}", FIRST_NIGHT - timedelta(days=1), kind="one_off")
        add_customer(con, "T0", FIRST_NIGHT - timedelta(days=1), kind="trial")
        for i in range(60):  # due tonight: more than one page of customers
            add_customer(con, f"N{i:02d}", NEXT_NIGHT - timedelta(days=1), kind="one_off",
                         email=f"n{i:02d}@example.jp")
        for i in range(2):
            add_customer(con, f"R{i}", NEXT_NIGHT - timedelta(days=1), kind="trial")
        add_customer(con, "X0", NEXT_NIGHT - timedelta(days=1), kind="one_off", has_email_consent=False)
        _result_marts(con)
    first = settings.model_copy(update={"require_approval": ""})  # the first night's list went out unapproved
    run_night(first, FIRST_NIGHT)
    with duckdb.connect(str(settings.warehouse)) as con:
        ledger.attach(con, settings.ledger)
        unknown = [r[0] for r in con.execute("select send_id from ledger.sends where channel = 'email' and "
                                             "status = 'sent' order by send_id limit 2").fetchall()]
        ledger.mark(con, unknown, "unknown", "process stopped during delivery; the provider may have it: not resent")
        con.execute("detach ledger")
    publish(settings)
    auth.add_user(settings.console_users, USER, PASSWORD)
    return settings, unknown


def _result_marts(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""create table marts.campaign_performance as select * from (values
        ('care', 'thanks', 'email', date '2026-11-01', 400, 392, 180, 61, 22, 132000.0, 0.0),
        ('letter', 'dm', 'dm', date '2026-11-01', 120, 120, 0, 0, 9, 54000.0, 14400.0),
        ('trial', 'guide', 'email', date '2026-11-01', 150, 147, 90, 30, 12, 70000.0, 0.0))
        t(scenario_id, step_id, channel, send_date, sent_count, delivered_count, opened_count, clicked_count,
          converted_count, conversion_revenue, channel_cost)""")
    con.execute("""create table marts.campaign_lift as select * from (values
        ('care', 400, 44, 0.055, 0.023, 0.032, 0.004, 0.060, cast(null as varchar)),
        ('trial', 150, 16, 0.080, 0.0625, 0.0175, -0.05, 0.085, 'too few to tell'))
        t(scenario_id, treated_customers, holdout_customers, treated_conversion_rate, holdout_conversion_rate,
          absolute_lift, lift_ci_low, lift_ci_high, lift_warning)""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(settings: Settings) -> Iterator[str]:
    """The console on 127.0.0.1 (uvicorn in a thread); yields its base URL; stopped at the end."""
    import uvicorn

    from kizuna.console.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, ledger_refresh_seconds=0), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

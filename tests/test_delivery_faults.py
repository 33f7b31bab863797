"""Delivery under crashes and faults: each defect of the delivery probe, against real processes and servers.

1. a kill leaves at most the requests in flight undecided, and SendGrid's events reconcile them;
2. LINE never resends once its retry key has expired (an injected clock);
3. a LINE 429 after an attempt that may have been accepted is `unknown`, not `failed`;
4. one channel's fault never stops another, and every channel is checked before anything is sent;
5. the outbox index and the ledger agree after a write that fails half-way;
6. the operator is told of unknown and failed messages from earlier runs; a failed send is retried;
7. one run at a time.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from pydantic import SecretStr

from campaign_fakes import add_abandoned_cart, add_customer, make_warehouse
from campaigns import ledger
from campaigns.engine import run_campaigns
from campaigns.schema import load_scenarios
from connectors.channels.base import Message, Outcome
from connectors.channels.line import LineChannel
from connectors.channels.loopback import Fault, LineLoopback, SendGridLoopback
from connectors.channels.policy import DeliveryPolicy
from connectors.channels.registry import factory
from kizuna.config import Settings
from kizuna.events.load import load_events
from kizuna.events.webhook import create_app
from test_events import keys, running  # noqa: F401  (a module fixture and the uvicorn helper)

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).parent / "delivery_child.py"
ORDER_DAY = date(2026, 11, 22)
RUN = ORDER_DAY + timedelta(days=1)
T0 = datetime(2026, 11, 23, 2, 0)  # the first run's clock (UTC)
SECRET_ENV = ("KIZUNA_SENDGRID_API_KEY", "KIZUNA_LINE_CHANNEL_ACCESS_TOKEN")


@pytest.fixture(autouse=True)
def _no_secrets_from_the_machine(monkeypatch):
    for var in SECRET_ENV:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var + "_BLOCK", raising=False)


def f2():
    return [s.model_copy(update={"holdout_percent": 0}) for s in load_scenarios() if s.id == "f2_standard"]


def statuses(con) -> Counter:
    return Counter(dict(((ch, st), n) for ch, st, n in con.execute(
        "select channel, status, count(*) from ledger.sends group by all").fetchall()))


# ---------------------------------------------------------------- 1. small blast radius, reconciled


def test_a_kill_leaves_only_the_requests_in_flight_unknown_and_events_reconcile_them(tmp_path, keys, monkeypatch):
    private, public = keys
    data = tmp_path / "data"
    con = make_warehouse(data / "warehouse.duckdb")
    con.begin()
    for i in range(1000):
        add_customer(con, f"E{i:04d}", ORDER_DAY)
    con.commit()
    con.close()
    settings = Settings(home=tmp_path, data_dir=data, reconcile_wait_hours=0, dbt_project_dir=ROOT / "dbt_project")
    with SendGridLoopback() as sendgrid, \
            running(create_app(settings, sendgrid_public_key=public)) as webhook:
        sendgrid.send_events_to(f"{webhook}/webhooks/sendgrid", private, every=0.1)
        # Requests 3 and 4 hang: the third is accepted after 3 s (its answer never read), the fourth
        # is dropped unprocessed. Each request carries 100 (200 in flight over 2 concurrent requests).
        sendgrid.fail_next(Fault(), Fault(), Fault.slow(3), Fault.timeout(3, accepted=False))
        env = {**os.environ, "KIZUNA_EMAIL_PROVIDER": "sendgrid", "KIZUNA_SENDGRID_HOST": sendgrid.url,
               "KIZUNA_SENDGRID_API_KEY": sendgrid.api_key, "KIZUNA_CHANNEL_CONCURRENCY": "2",
               "KIZUNA_CHANNEL_MAX_IN_FLIGHT": "200", "KIZUNA_CHANNEL_TIMEOUT_SECONDS": "30"}
        child = subprocess.Popen([sys.executable, str(CHILD), str(data), RUN.isoformat()], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while sendgrid.stats()["requests"] < 4:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never reached its fourth request"
            time.sleep(0.02)
        time.sleep(0.3)
        child.send_signal(signal.SIGKILL)
        child.wait()

        with ledger.open_file(data / "ledger.duckdb") as led:  # attaching folds the dead run's journal in
            left = dict(led.execute("select status, count(*) from ledger.sends group by all").fetchall())
        assert left == {"sent": 200, "sending": 200, "planned": 600}  # not the whole batch of 1,000

        # The next run: the two requests in doubt become unknown (never resent), the rest goes out.
        monkeypatch.setenv("KIZUNA_SENDGRID_API_KEY", sendgrid.api_key)
        live = settings.model_copy(update={"email_provider": "sendgrid", "sendgrid_host": sendgrid.url})
        con = duckdb.connect(str(settings.warehouse))
        run_campaigns(con, live, f2(), RUN, factory(live))
        assert statuses(con) == Counter({("email", "sent"): 800, ("email", "unknown"): 200})
        con.close()

        time.sleep(3.5)  # the hung request is processed by now; SendGrid posts its events
        sendgrid.flush_events()
        result = load_events(settings, f2())
        assert (result.reconciled.sent, result.reconciled.resend, result.reconciled.still_unknown) == (100, 100, 0)
        con = duckdb.connect(str(settings.warehouse))
        run_campaigns(con, live, f2(), RUN, factory(live))  # the never-accepted 100 go out once more
        assert statuses(con) == Counter({("email", "sent"): 1000})
        con.close()
        delivered = Counter(r["custom_args"]["send_id"] for r in sendgrid.accepted)
        assert len(delivered) == 1000 and set(delivered.values()) == {1}  # everyone once, nobody twice


# ---------------------------------------------------------------- 2 and 3. LINE's retry key


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def utc(self) -> datetime:
        return self.at

    def epoch(self) -> float:
        return (self.at - datetime(1970, 1, 1)).total_seconds()


class KilledAfterAccept(LineChannel):
    """LINE accepts the chunk, then the process dies before the ledger hears of it."""

    def _multicast_with_key(self, ids, to, text, key):
        super()._multicast_with_key(ids, to, text, key)
        raise SystemExit("killed after LINE accepted")


def _line_shop(tmp_path: Path):
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data")
    con = make_warehouse(settings.warehouse)
    for i in range(6):  # prospects with an abandoned cart: a LINE reminder on day 3
        cid = f"L{i}"
        add_customer(con, cid, None, line_user_id="U" + f"{i:032x}", has_line_consent=True)
        add_abandoned_cart(con, cid, RUN - timedelta(days=3))
    # The reminder by LINE alone (its e-mail step is not what is tested here).
    scenario = next(s for s in load_scenarios() if s.id == "cart_abandonment")
    scenario = scenario.model_copy(update={"holdout_percent": 0,
                                           "steps": [st for st in scenario.steps if st.channel == "line"]})
    return settings, con, [scenario]


def _line(server: LineLoopback, settings: Settings, clock: Clock, cls=LineChannel):
    """A channel factory: LINE against the loopback, with the test's clock."""
    return lambda name: cls(SecretStr(server.access_token), host=server.url, state_dir=settings.data_dir / "channels",
                            clock=clock.epoch,
                            policy=DeliveryPolicy(timeout=2, max_attempts=2, backoff_seconds=0.01, max_wait=1))


def test_line_is_not_resent_once_its_retry_key_has_expired(tmp_path):
    settings, con, scenarios = _line_shop(tmp_path)
    clock = Clock(T0)
    with LineLoopback() as server:
        with pytest.raises(SystemExit):
            run_campaigns(con, settings, scenarios, RUN, _line(server, settings, clock, KilledAfterAccept),
                          now=clock.utc)
        ledger.attach(con, settings.ledger)  # as the next reader does: the journal folded in
        in_doubt = statuses(con)[("line", "sending")]
        assert in_doubt == server.accepted_count > 0
        clock.at = T0 + timedelta(hours=25)  # the next night: LINE has forgotten the key
        run_campaigns(con, settings, scenarios, RUN + timedelta(days=1), _line(server, settings, clock),
                      now=clock.utc)
        received = Counter(a["to"] for a in server.accepted)
        assert len(received) == 6 and set(received.values()) == {1}  # everyone once: nothing sent twice
        rows = con.execute("select status, detail from ledger.sends where status <> 'sent'").fetchall()
        assert len(rows) == in_doubt and {s for s, _ in rows} == {"unknown"} and all("expired" in d for _, d in rows)


def test_line_within_the_key_life_resends_with_the_same_key_and_delivers_once(tmp_path):
    settings, con, scenarios = _line_shop(tmp_path)
    clock = Clock(T0)
    with LineLoopback() as server:
        with pytest.raises(SystemExit):
            run_campaigns(con, settings, scenarios, RUN, _line(server, settings, clock, KilledAfterAccept),
                          now=clock.utc)
        first_keys = {r["retry_key"] for r in server.requests}
        clock.at = T0 + timedelta(hours=2)
        run_campaigns(con, settings, scenarios, RUN, _line(server, settings, clock), now=clock.utc)
        received = Counter(a["to"] for a in server.accepted)
        assert len(received) == 6 and set(received.values()) == {1}
        assert any(r["status"] == 409 and r["retry_key"] in first_keys for r in server.requests)  # accepted earlier
        assert statuses(con) == Counter({("line", "sent"): 6})


def test_line_429_after_an_attempt_that_may_have_gone_out_is_unknown_not_failed(tmp_path):
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data")
    with LineLoopback() as server:
        channel = _line(server, settings, Clock(T0))("line")
        # accepted, but the answer is a 500; the retry is told to wait far longer than allowed
        server.fail_next(Fault.error(500, accepted=True), Fault.rate_limit(wait=100))
        message = Message("S1", "line", "C1", "U" + "0" * 32, "山田 花子", "", "こんにちは")
        (outcome,) = channel.send_batch([message])
        assert server.accepted_count == 1
        assert outcome.status == "unknown", outcome


# ---------------------------------------------------------------- 4. isolation


def _every_channel_shop(tmp_path: Path, **settings_update):
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data", dm_provider="list", **settings_update)
    con = make_warehouse(settings.warehouse)
    consents = dict(has_email_consent=True, has_dm_consent=True, has_line_consent=True)
    add_customer(con, "A1", ORDER_DAY, last_name="改行\r\n山田", address_line="神宮前\u200b1-1", **consents)
    add_customer(con, "A2", ORDER_DAY, **consents)
    scenario = tmp_path / "three_channels.yaml"
    scenario.write_text(
        "id: three_channels\nname: Three channels\npriority: 1\nstage: initial\nentry: {event: first_order}\n"
        "steps:\n" + "".join(f"  - {{id: {ch}_1, day: 1, channel: {ch}, template: f2_thank_you}}\n"
                             for ch in ("dm", "email", "line")), encoding="utf-8")
    from campaigns.schema import load_scenario
    return settings, con, [load_scenario(scenario)]


def test_an_unwritable_dm_folder_stops_only_the_dm(tmp_path):
    settings, con, scenarios = _every_channel_shop(tmp_path)
    (settings.data_dir / "lists").write_text("a file where the lists folder should be")
    result = run_campaigns(con, settings, scenarios, RUN, factory(settings))
    assert "lists" in result.channel_problems["dm"] and set(result.channel_problems) == {"dm"}
    assert statuses(con) == Counter({("email", "sent"): 2, ("line", "sent"): 2, ("dm", "planned"): 2})
    (settings.data_dir / "lists").unlink()  # fixed: the next run sends the DM, and only it
    result = run_campaigns(con, settings, scenarios, RUN, factory(settings))
    assert result.channel_problems == {}
    assert statuses(con) == Counter({("email", "sent"): 2, ("line", "sent"): 2, ("dm", "sent"): 2})


def test_a_missing_secret_is_found_before_anything_is_sent_and_stops_only_its_channel(tmp_path):
    settings, con, scenarios = _every_channel_shop(tmp_path, email_provider="sendgrid")
    made, sent = [], []
    registry_factory = factory(settings)

    def channel_for(name):
        made.append(name)
        channel = registry_factory(name)
        original = channel.send_batch
        channel.send_batch = lambda messages, journal: (sent.append(name), original(messages, journal))[1]
        return channel

    result = run_campaigns(con, settings, scenarios, RUN, channel_for)
    assert "KIZUNA_SENDGRID_API_KEY" in result.channel_problems["email"]
    assert sorted(made) == ["dm", "email", "line"] and sorted(sent) == ["dm", "line"]
    assert statuses(con) == Counter({("dm", "sent"): 2, ("line", "sent"): 2, ("email", "planned"): 2})


def test_a_name_with_a_line_break_and_an_address_with_a_zero_width_space_are_sent_cleanly(tmp_path):
    """The probe: such a customer raised in rendering, left 25 e-mails `sending`, LINE and inserts unsent,
    and the re-run crashed the same way."""
    settings, con, scenarios = _every_channel_shop(tmp_path)
    result = run_campaigns(con, settings, scenarios, RUN, factory(settings))
    assert result.channel_problems == {}
    assert statuses(con) == Counter({(ch, "sent"): 2 for ch in ("dm", "email", "line")})
    send_id = con.execute("select send_id from ledger.sends where customer_id = 'A1' and channel = 'email'").fetchone()[0]
    mail = email.message_from_bytes((settings.outbox_dir / "email" / f"{send_id}.eml").read_bytes(),
                                    policy=email.policy.default)
    assert str(mail["Subject"]) == "改行 山田様、ご購入ありがとうございました"
    (dm_list,) = (settings.data_dir / "lists").glob("*/dm-list-*.csv")
    assert "神宮前1-1" in dm_list.read_text(encoding="cp932")  # the zero-width space is gone (CP932 has none)


# ---------------------------------------------------------------- 5. the outbox index


def test_a_full_disk_half_way_leaves_outbox_index_and_ledger_agreeing_after_the_rerun(tmp_path):
    data = tmp_path / "data"
    con = make_warehouse(data / "warehouse.duckdb")
    for i in range(20):
        add_customer(con, f"E{i:02d}", ORDER_DAY)
    con.close()
    index = data / "outbox" / "index.jsonl"
    index.parent.mkdir(parents=True)
    earlier = "".join(json.dumps({"send_id": f"old{i:06d}", "channel": "email", "pad": "x" * 200}) + "\n"
                      for i in range(12_000))  # ~2.8 MB of earlier nights
    index.write_text(earlier, encoding="utf-8")
    env = {**os.environ, "KIZUNA_TEST_FSIZE_LIMIT": str(len(earlier.encode()) + 1500)}
    child = subprocess.run([sys.executable, str(CHILD), str(data), RUN.isoformat()], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    with ledger.open_file(data / "ledger.duckdb") as led:
        first = dict(led.execute("select status, count(*) from ledger.sends group by all").fetchall())
    assert first.get("failed", 0) > 0 and first.get("sent", 0) > 0  # the disk filled up half-way

    settings = Settings(home=tmp_path, data_dir=data)
    con = duckdb.connect(str(settings.warehouse))
    run_campaigns(con, settings, f2(), RUN, factory(settings))  # space again: the failed ones are retried
    assert statuses(con) == Counter({("email", "sent"): 20})
    sent_ids = {r[0] for r in con.execute("select send_id from ledger.sends where status = 'sent'").fetchall()}
    con.close()
    files = {p.stem for p in (data / "outbox" / "email").glob("*.eml")}
    lines = [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines() if line.strip()]
    indexed = Counter(line["send_id"] for line in lines if not line["send_id"].startswith("old"))
    assert files == sent_ids == set(indexed) and set(indexed.values()) == {1}
    assert len(lines) == 12_000 + 20  # no earlier line damaged


def test_a_message_file_without_its_index_line_gets_it_on_the_retry(tmp_path):
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data")
    con = make_warehouse(settings.warehouse)
    add_customer(con, "E1", ORDER_DAY)
    run_campaigns(con, settings, f2(), RUN, factory(settings))
    index = settings.outbox_dir / "index.jsonl"
    # As a kill between the file and its line would leave it: the file, no line, the ledger `sending`.
    index.write_text("")
    con.execute("update ledger.sends set status = 'sending'")
    run_campaigns(con, settings, f2(), RUN, factory(settings))
    assert statuses(con) == Counter({("email", "sent"): 1})
    assert len(index.read_text().splitlines()) == 1 and len(list((settings.outbox_dir / "email").iterdir())) == 1


# ---------------------------------------------------------------- 6. tell the operator; retry failures


class Refusing:
    """A provider that refuses the first `n` requests (4xx: nothing sent), then accepts."""

    name = "email"
    max_batch_size = 100
    resend_safe_for = None
    idempotent = False

    def __init__(self, n: int) -> None:
        self.n = n

    def preflight(self) -> None:
        pass

    def send_batch(self, messages, journal):
        journal.handing_over([m.send_id for m in messages])
        self.n -= 1
        status = "failed" if self.n >= 0 else "sent"
        outcomes = [Outcome(m.send_id, status, "provider said 400: bad request" if status == "failed" else "ok")
                    for m in messages]
        journal.settled(outcomes)
        return outcomes


def test_a_failed_send_is_retried_on_later_runs_within_the_limit_with_its_reasons(tmp_path):
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data", send_max_failures=2)
    con = make_warehouse(settings.warehouse)
    add_customer(con, "E1", ORDER_DAY)
    provider = Refusing(2)
    first = run_campaigns(con, settings, f2(), RUN, lambda name: provider)
    assert first.attention[("email", "failed, will retry")] == 1
    second = run_campaigns(con, settings, f2(), RUN + timedelta(days=1), lambda name: provider)
    assert second.retried == 1 and second.attention[("email", "failed, gave up")] == 1
    third = run_campaigns(con, settings, f2(), RUN + timedelta(days=2), lambda name: provider)
    assert third.retried == 0  # the limit: two failures
    status, detail, failures = con.execute("select status, detail, failures from ledger.sends").fetchone()
    assert (status, failures) == ("failed", 2) and detail.count("400") == 2  # both reasons kept

    settings.send_max_failures = 3  # a shop that allows one more: it goes out, and says what came before
    fourth = run_campaigns(con, settings, f2(), RUN + timedelta(days=3), lambda name: provider)
    assert fourth.retried == 1 and fourth.attention == Counter()
    status, detail = con.execute("select status, detail from ledger.sends").fetchone()
    assert status == "sent" and "after: retry 3 of 3" in detail and "400" in detail


def test_unknown_messages_of_earlier_runs_are_reported_and_resolved_by_hand(tmp_path):
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data")
    con = make_warehouse(settings.warehouse)
    add_customer(con, "E1", ORDER_DAY)
    add_customer(con, "E2", ORDER_DAY)

    class Dies(Refusing):
        def send_batch(self, messages, journal):
            journal.handing_over([m.send_id for m in messages])
            raise SystemExit("killed mid-request")

    with pytest.raises(SystemExit):
        run_campaigns(con, settings, f2(), RUN, lambda name: Dies(0))
    later = run_campaigns(con, settings, f2(), RUN + timedelta(days=1), lambda name: Refusing(0))
    assert later.attention == Counter({("email", "unknown"): 2})  # from the run before, still told
    con.close()
    cli = [sys.executable, "-m", "kizuna.cli"]
    env = {**os.environ, "KIZUNA_HOME": str(tmp_path), "KIZUNA_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}
    listed = subprocess.run([*cli, "sends", "unknown"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and "2 unknown message(s)" in listed.stdout, listed.stdout + listed.stderr
    with duckdb.connect(str(settings.ledger), read_only=True) as ro:
        ids = [r[0] for r in ro.execute("select send_id from sends order by 1").fetchall()]
    done = subprocess.run([*cli, "sends", "resolve", ids[0], "--not-delivered", "--by", "tanaka"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    with duckdb.connect(str(settings.ledger), read_only=True) as ro:
        row = ro.execute("select status, retry, detail from sends where send_id = ?", [ids[0]]).fetchone()
    assert row[0] == "failed" and row[1] is False and "tanaka" in row[2]  # recorded, never resent


# ---------------------------------------------------------------- 7. one run at a time


def test_a_second_run_stops_at_once_naming_the_first(tmp_path):
    from kizuna.runlock import RunInProgress, run_lock

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, '.'); from pathlib import Path; from kizuna.runlock import run_lock\n"
        f"with run_lock(Path({str(tmp_path)!r})):\n    print('held', flush=True); time.sleep(30)")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(RunInProgress) as error:
            with run_lock(tmp_path):
                pass
        assert time.monotonic() - started < 1
        assert f"pid {holder.pid}" in str(error.value) and "\n" not in str(error.value)
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path):  # the kernel released the dead holder's lock
        pass


def test_a_run_stops_the_temporary_prefect_server_a_killed_run_left(tmp_path):
    from kizuna.runlock import lock_path, run_lock

    orphan = subprocess.Popen([sys.executable, "-c", "print('up', flush=True); import time; time.sleep(60)",
                               "prefect.server.api.server:create_app"], stdout=subprocess.PIPE, text=True)
    assert orphan.stdout.readline().strip() == "up"  # exec'd: its command line is the server's
    lock_path(tmp_path).write_text(json.dumps({"pid": 999999, "prefect_server_pids": [orphan.pid]}))
    with run_lock(tmp_path):
        pass
    assert orphan.wait(timeout=10) == -signal.SIGTERM


def test_a_stage_waits_for_a_reader_to_let_go_of_the_warehouse(tmp_path):
    from kizuna.warehouse import connect

    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    reader = subprocess.Popen([sys.executable, "-c", (
        f"import duckdb, time; c = duckdb.connect({str(path)!r}, read_only=True); print('open', flush=True); "
        "time.sleep(2); c.close()")], stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "open"
    started = time.monotonic()
    with connect(path, wait_seconds=30) as con:
        con.execute("create table t as select 1")
    assert 0.5 < time.monotonic() - started < 30
    reader.wait()


def test_the_journal_is_folded_into_the_ledger_once_even_if_a_fold_is_interrupted(tmp_path):
    """A fold that committed but died before removing the journal must not count attempts or failures twice."""
    settings = Settings(home=tmp_path, data_dir=tmp_path / "data")
    con = make_warehouse(settings.warehouse)
    add_customer(con, "E1", ORDER_DAY)
    ledger.attach(con, settings.ledger)
    run_campaigns(con, settings, f2(), RUN, lambda name: Refusing(0))  # planned and sent: one hand-over
    send_id = con.execute("select send_id from ledger.sends").fetchone()[0]
    con.execute("update ledger.sends set status = 'planned', attempts = 0, failures = 0")
    path = ledger.journal_path(settings.ledger)
    journal = ledger.Journal(path, lambda: T0)
    journal.handing_over([send_id])
    journal.settled([Outcome(send_id, "failed", "provider said no")])
    journal.close()
    kept = path.read_bytes()
    ledger.fold_journal(con, settings.ledger)
    path.write_bytes(kept)  # as if the process died after the fold's commit, before removing the file
    ledger.attach(con, settings.ledger)  # the next attach folds again
    assert con.execute("select status, attempts, failures from ledger.sends").fetchone() == ("failed", 1, 1)
    assert not path.exists()

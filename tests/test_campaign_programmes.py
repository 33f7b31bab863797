"""The built-in programmes day by day, goals, priorities, caps, consent, suppression, hold-out, preview."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pytest

from campaign_fakes import MemoryChannel as Memory, add_abandoned_cart, add_customer, add_order, make_warehouse
from campaigns import ledger
from campaigns.engine import in_holdout, preview_campaigns, run_campaigns
from campaigns.schema import Scenario, load_scenario, load_scenarios
from connectors.channels.base import Message
from kizuna.errors import ScenarioError

D0 = date(2026, 9, 1)  # the day of the first (trial) order

SUPPLEMENT_A = {  # docs/domain.md, supplement A: day after order -> channels
    1: {"insert"}, 6: {"email"}, 14: {"email"}, 20: {"email"}, 21: {"email"}, 27: {"email"},
    28: {"email", "dm"}, 32: {"dm"}, 34: {"email"}, 35: {"email", "dm"},
}
SUPPLEMENT_B_TRIAL = [4, 5, 8, 11, 15, 18, 22, 26, 32]
SUPPLEMENT_B_SUBSCRIPTION = [2, 4, 11, 18, 21]


@pytest.fixture
def wh(settings):
    con = make_warehouse(settings.warehouse)
    yield con
    con.close()  # closing twice is harmless


def builtins(holdout: float | None = 0) -> list[Scenario]:
    scenarios = load_scenarios()
    if holdout is None:
        return scenarios
    return [s.model_copy(update={"holdout_percent": holdout}) for s in scenarios]


class Simulation:
    """Runs the engine night after night, recording (run date, scenario, step, channel, customer)."""

    def __init__(self, con, settings, scenarios):
        self.con, self.settings, self.scenarios = con, settings, scenarios
        self.log: list[Message] = []
        self.sent: list[tuple[int, str, str, str, str]] = []

    def run(self, day: date):
        before = len(self.log)
        result = run_campaigns(self.con, self.settings, self.scenarios, day, lambda name: Memory(name, self.log))
        for m in self.log[before:]:
            self.sent.append(((day - D0).days, m.scenario_id, m.step_id, m.channel, m.customer_id))
        return result

    def run_days(self, first: int, last: int, on_day=None):
        for n in range(first, last + 1):
            if on_day:
                on_day(n)
            self.run(D0 + timedelta(days=n))

    def schedule(self, scenario_id: str, customer_id: str) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for day, sid, _, channel, cid in self.sent:
            if sid == scenario_id and cid == customer_id:
                out.setdefault(day, set()).add(channel)
        return out


def test_supplement_a_reaches_a_trial_buyer_on_exactly_the_published_days(settings, wh):
    add_customer(wh, "A1", D0, kind="trial", age_band="60s")
    sim = Simulation(wh, settings, builtins())
    sim.run_days(0, 37)
    assert sim.schedule("supplement_a_trial", "A1") == SUPPLEMENT_A
    assert {s[1] for s in sim.sent} == {"supplement_a_trial"}  # no F2 mail on top, nothing else
    offers = {m.step_id: m.body_text for m in sim.log}
    assert "TEIKI10" in offers["d06_mail1"] and "TEIKI15" in offers["d27_mail5"]  # the offer deepens on day 27
    assert "TEIKI" not in offers["d14_mail2"]
    assert sim.run(D0 + timedelta(days=35)).total("sent") == 0  # a re-run of a night sends nothing


def test_supplement_b_trial_then_subscription_then_mystery_gift(settings, wh):
    add_customer(wh, "B1", D0, kind="trial", age_band="30s")

    def life(n: int) -> None:
        if n == 40:
            add_order(wh, "B1", D0 + timedelta(days=40), "subscription", "S1", 1)
        if n == 70:
            add_order(wh, "B1", D0 + timedelta(days=70), "subscription", "S1", 2)
        if n == 100:
            add_order(wh, "B1", D0 + timedelta(days=100), "subscription", "S1", 3)

    sim = Simulation(wh, settings, builtins())
    # Only the nights that matter run (for speed); the loyalization mail of day 85 falls in the gap: missed.
    for first, last in ((0, 36), (39, 62), (98, 101)):
        sim.run_days(first, last, life)
    assert sorted(sim.schedule("supplement_b_trial", "B1")) == SUPPLEMENT_B_TRIAL
    assert all("HAJIME50" in m.body_text and "半額" in m.body_text for m in sim.log if m.scenario_id == "supplement_b_trial")
    assert sim.schedule("supplement_b_subscription", "B1") == {40 + d: {"email"} for d in SUPPLEMENT_B_SUBSCRIPTION}
    assert sim.schedule("subscription_third_delivery_gift", "B1") == {100: {"insert"}}
    # The first subscription delivery was B1's second purchase: loyalization from day 40 (days 7, 21, 45),
    # but its day-21 mail (day 61) meets supplement B's day-21 upsell on the same channel and loses.
    assert sorted(sim.schedule("loyalization", "B1")) == [47]
    assert wh.execute("select status, detail from ledger.sends where step_id = 'd21_development_story'").fetchall() \
        == [("skipped", "priority:supplement_b_subscription")]


def test_the_goal_ends_the_programme(settings, wh):
    add_customer(wh, "G1", D0, kind="trial", age_band="50s")
    sim = Simulation(wh, settings, builtins())
    sim.run_days(0, 38, lambda n: n == 16 and add_order(wh, "G1", D0 + timedelta(days=16), "subscription", "S9", 1))
    assert sorted(sim.schedule("supplement_a_trial", "G1")) == [1, 6, 14]  # subscribed on day 16: no day-20 mail
    assert sorted(sim.schedule("supplement_b_subscription", "G1")) == [16 + d for d in SUPPLEMENT_B_SUBSCRIPTION]


def test_f2_goal_second_order(settings, wh):
    add_customer(wh, "F1", D0)
    sim = Simulation(wh, settings, builtins())
    sim.run_days(0, 14, lambda n: n == 3 and add_order(wh, "F1", D0 + timedelta(days=3)))
    assert sorted(sim.schedule("f2_standard", "F1")) == [1]


def test_priority_decides_between_scenarios_on_the_same_day_and_channel(settings, wh):
    add_customer(wh, "P1", D0)
    add_abandoned_cart(wh, "P1", D0)  # cart reminder (priority 150) due day 1, like the F2 thank-you (300)
    sim = Simulation(wh, settings, builtins())
    sim.run(D0 + timedelta(days=1))
    rows = wh.execute("select scenario_id, step_id, status, detail from ledger.sends order by all").fetchall()
    assert rows == [("cart_abandonment", "d01_reminder_mail", "skipped", "priority:f2_standard"),
                    ("f2_standard", "thank_you", "sent", "")]
    sim.run_days(2, 3)  # the LINE reminder on day 3 meets no rival on its channel
    assert sim.schedule("cart_abandonment", "P1") == {3: {"line"}}


def test_frequency_cap_per_channel(settings, wh):
    settings.campaign_caps = {"email": 2}
    settings.campaign_cap_days = 7
    add_customer(wh, "K1", D0)                 # F2: e-mails on days 1 and 5
    add_abandoned_cart(wh, "K1", D0 + timedelta(days=2))  # cart e-mail on day 3, LINE on day 5
    sim = Simulation(wh, settings, builtins())
    sim.run_days(0, 6)
    statuses = dict(((s, st), (status, detail)) for s, st, status, detail in wh.execute(
        "select scenario_id, step_id, status, detail from ledger.sends").fetchall())
    assert statuses[("f2_standard", "thank_you")][0] == "sent"
    assert statuses[("cart_abandonment", "d01_reminder_mail")][0] == "sent"
    assert statuses[("f2_standard", "usage_guide")] == ("capped", "cap:2 per 7 days")  # third e-mail in 7 days
    assert statuses[("cart_abandonment", "d03_reminder_line")][0] == "sent"  # LINE is not capped here


def test_consent_erasure_and_suppression_skip_with_a_reason(settings, wh):
    for cid, extra in [("C1", {}), ("C2", {"has_email_consent": False}), ("C3", {"is_erased": True}),
                       ("C4", {}), ("C5", {}), ("C6", {"email": None})]:
        add_customer(wh, cid, D0, **extra)
    ledger.attach(wh, settings.ledger)
    ledger.suppress(wh, "C4", "unsubscribed", channel="email")
    ledger.suppress(wh, "C5", "complaint")  # every channel
    add_customer(wh, "C7", None)  # a prospect who left a cart; unsubscribed from e-mail only
    ledger.suppress(wh, "C7", "unsubscribed", channel="email")
    add_abandoned_cart(wh, "C7", D0 - timedelta(days=2))  # e-mail reminder due D0-1 (caught up), LINE D0+1
    sim = Simulation(wh, settings, builtins())
    sim.run(D0 + timedelta(days=1))
    got = wh.execute("select customer_id, step_id, status, detail from ledger.sends "
                     "where scenario_id = 'f2_standard' order by customer_id").fetchall()
    assert got == [("C1", "thank_you", "sent", ""), ("C2", "thank_you", "skipped", "no_consent"),
                   ("C3", "thank_you", "skipped", "erased"), ("C4", "thank_you", "skipped", "suppressed"),
                   ("C5", "thank_you", "skipped", "suppressed"), ("C6", "thank_you", "skipped", "no_address")]
    assert sorted((m.customer_id, m.channel) for m in sim.log) == [("C1", "email"), ("C7", "line")]
    # C7's e-mail reminder cannot reach them (unsubscribed from e-mail): the same step goes by LINE, its
    # fallback (docs/journeys.md); the LINE reminder for non-openers, due the same night, is not sent on top.
    assert wh.execute("select step_id, channel, status, detail from ledger.sends where customer_id = 'C7' "
                      "order by step_id").fetchall() == [("d01_reminder_mail", "line", "sent", ""),
                                                         ("d03_reminder_line", "line", "skipped", "condition:not_opened")]


def test_a_send_left_planned_by_a_dead_run_respects_a_later_withdrawal(settings, wh):
    add_customer(wh, "W1", D0)
    add_customer(wh, "W2", D0)

    def die(name):
        raise SystemExit("killed after planning")

    with pytest.raises(SystemExit):
        run_campaigns(wh, settings, builtins(), D0 + timedelta(days=1), die)
    wh.execute("update marts.dim_customers set has_email_consent = false where customer_id = 'W1'")
    ledger.suppress(wh, "W2", "unsubscribed", channel="email")
    log: list[Message] = []
    run_campaigns(wh, settings, builtins(), D0 + timedelta(days=1), lambda n: Memory(n, log))
    assert log == []
    assert wh.execute("select customer_id, status, detail from ledger.sends order by 1").fetchall() == [
        ("W1", "skipped", "no_consent"), ("W2", "skipped", "suppressed")]


def test_holdout_is_stable_and_recorded_never_sent(settings, wh):
    ids = [f"H{i:03d}" for i in range(300)]
    wh.begin()
    for cid in ids:
        add_customer(wh, cid, D0)
    wh.commit()
    scenarios = [s.model_copy(update={"holdout_percent": 20}) if s.id == "f2_standard" else s for s in builtins()]
    sim = Simulation(wh, settings, scenarios)
    sim.run(D0 + timedelta(days=1))
    sim.run(D0 + timedelta(days=5))
    held = wh.execute("select step_id, list(customer_id order by customer_id) from ledger.sends "
                      "where status = 'held_out' group by step_id").fetchall()
    expected = sorted(c for c in ids if in_holdout(c, "f2_standard", 20))
    assert 30 <= len(expected) <= 90  # about 20% of 300
    assert dict(held) == {"thank_you": expected, "usage_guide": expected}  # the same people, night after night
    assert not {m.customer_id for m in sim.log} & set(expected)
    assert len(sim.log) == 2 * (300 - len(expected))
    assert set(expected) != {c for c in ids if in_holdout(c, "other_scenario", 20)}  # per scenario


def test_missed_nights_beyond_the_catch_up_window_are_recorded_as_missed(settings, wh):
    settings.catch_up_days = 2
    add_customer(wh, "M1", D0, kind="trial", age_band="30s")  # supplement B: days 4, 5, 8, 11, ...
    sim = Simulation(wh, settings, builtins())
    sim.run(D0 + timedelta(days=3))
    sim.run(D0 + timedelta(days=9))   # nights 4..8 did not run; window is 7..9
    rows = wh.execute("select step_id, status, detail, run_date from ledger.sends order by step_id").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("d04_mail1", "skipped", "missed"), ("d05_mail2", "skipped", "missed"), ("d08_mail3", "sent", "")]


def test_rerunning_every_scenario_on_the_same_night_records_and_sends_nothing_new(settings, wh):
    add_customer(wh, "R1", D0 - timedelta(days=1))
    add_customer(wh, "R2", D0 - timedelta(days=6), kind="trial", age_band="30s")
    add_abandoned_cart(wh, "R2", D0 - timedelta(days=1))
    sim = Simulation(wh, settings, builtins(holdout=None))
    first = sim.run(D0)
    rows = wh.execute("select count(*) from ledger.sends").fetchone()[0]
    second = sim.run(D0)
    assert first.total("sent") >= 2 and second.total("sent") == 0
    assert sum(second.recorded.values()) == 0
    assert wh.execute("select count(*) from ledger.sends").fetchone()[0] == rows


def test_preview_counts_and_renders_without_writing(settings, wh):
    add_customer(wh, "V1", D0 - timedelta(days=1))
    add_customer(wh, "V2", D0 - timedelta(days=1), has_email_consent=False)
    wh.close()
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:  # as `kizuna campaigns preview` opens it
        preview = preview_campaigns(con, settings, builtins(), D0, sample=2)
    assert ("f2_standard", "thank_you", "email", "planned", 1) in preview.counts
    assert ("f2_standard", "thank_you", "email", "skipped", 1) in preview.counts
    (scenario, step, channel, rendered), = preview.samples
    assert (scenario, step) == ("f2_standard", "thank_you") and settings.sender_address in rendered.text
    assert not settings.ledger.exists()  # nothing written, not even an empty ledger


def test_preview_on_an_existing_ledger_is_read_only(settings, wh):
    add_customer(wh, "V1", D0 - timedelta(days=1))
    run_campaigns(wh, settings, builtins(), D0, lambda n: Memory(n, []))
    wh.close()
    before = settings.ledger.stat().st_mtime_ns, settings.ledger.stat().st_size
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        preview = preview_campaigns(con, settings, builtins(), D0)
        assert preview.counts == []  # the night already ran: the preview reads the ledger
        with pytest.raises(duckdb.Error):
            con.execute("insert into ledger.runs values (current_date, now()::timestamp)")
    assert (settings.ledger.stat().st_mtime_ns, settings.ledger.stat().st_size) == before


BASE = "id: x\nname: X\npriority: 1\nstage: initial\n"
STEP = "steps: [{id: a, day: 1, channel: email, template: f2_thank_you}]\n"


@pytest.mark.parametrize("text, expected", [
    (BASE + "entry: {event: page_viewed}\n" + STEP, "page views are not in the shop's exports"),
    (BASE + "entry: {event: second_breakfast}\n" + STEP, "unknown anchor event"),
    (BASE + "entry: {event: subscription_delivery}\n" + STEP, "needs n"),
    (BASE + "entry: {event: first_order, n: 2}\n" + STEP, "remove it"),
    (BASE + "entry: {event: first_order}\nexit: {goal: world_peace}\n" + STEP, "exit.goal"),
    (BASE + "entry: {event: first_order}\nexit: {goal: subscription_cancelled}\n" + STEP,
     "'second_order', 'subscription_start' or 'new_order'"),  # a stop condition, not a goal
    (BASE + "entry: {event: first_order}\nholdout_percent: 80\n" + STEP, "holdout_percent"),
    (BASE + "entry: {event: first_order}\nsteps: [{id: a, day: 1, channel: email, template: f2_thank_you, "
     "offer: {type: percent_off}}]\n", "needs a value"),
])
def test_scenario_errors_name_file_field_and_fix(tmp_path, text, expected):
    path = tmp_path / "my_scenario.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    assert "my_scenario.yaml" in str(error.value) and expected in str(error.value)


def test_segment_on_rfm_segment_media_and_product(settings, wh, tmp_path):
    add_customer(wh, "S1", D0, rfm_segment="loyal", acquisition_media_code="TV01")
    add_customer(wh, "S2", D0, rfm_segment="new", acquisition_media_code="TV01")
    add_customer(wh, "S3", D0, rfm_segment="loyal", acquisition_media_code="AFF01")
    wh.execute("insert into raw.order_lines values ('O-S1-1', 'P002'), ('O-S3-1', 'P002'), ('O-S2-1', 'P001')")
    path = tmp_path / "seg.yaml"
    path.write_text("id: seg\nname: Seg\npriority: 500\nstage: any\nentry: {event: first_order}\n"
                    "segment: {rfm_segment: loyal, media: [TV01], product: [P002]}\n" + STEP, encoding="utf-8")
    log: list[Message] = []
    run_campaigns(wh, settings, [load_scenario(path)], D0 + timedelta(days=1), lambda n: Memory(n, log))
    assert [m.customer_id for m in log] == ["S1"]

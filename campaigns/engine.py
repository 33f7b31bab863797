"""The nightly campaign run: select who is due, record them in the ledger, deliver, record outcomes.

Selection is set-based SQL on DuckDB (one statement per scenario step, never a loop
over customers). Delivery goes through the channel interface in batches; the ledger
is written before each hand-over, so a crash at any point is finished by the next
run without sending anything twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable

import duckdb

from campaigns import ledger
from campaigns.render import Renderer
from campaigns.schema import ANCHOR_COLUMNS, GOAL_CONDITIONS, Scenario, Step
from connectors.channels.base import Channel, Message
from kizuna.config import Settings

#: Per channel: the consent flag and the contact field in marts.dim_customers.
CHANNEL_REACH = {
    "email": ("has_email_consent", "email"),
    "line": ("has_line_consent", "line_user_id"),
    "sms": ("has_sms_consent", "phone"),
    "dm": ("has_dm_consent", "postal_code"),
    "phone": ("has_phone_consent", "phone"),
}

ChannelFactory = Callable[[str], Channel]


@dataclass
class CampaignResult:
    run_date: date
    planned: Counter = field(default_factory=Counter)  # (scenario, step, channel) -> newly planned
    delivered: Counter = field(default_factory=Counter)  # (scenario, step, channel, status) -> count

    def total(self, status: str) -> int:
        return sum(n for (_, _, _, s), n in self.delivered.items() if s == status)


def _plan_step(con: duckdb.DuckDBPyConnection, scenario: Scenario, step: Step, run_date: date,
               catch_up_days: int) -> int:
    """Record in the ledger every customer due for `step` today (or in the catch-up window)."""
    anchor = ANCHOR_COLUMNS[scenario.entry.event]
    consent, contact = CHANNEL_REACH.get(step.channel, ("true", "customer_id"))
    where = ["not is_erased", f"{anchor} is not null", f"{consent}", f"{contact} is not null"]
    params: list[object] = []
    if scenario.stage != "any":
        where.append("stage = ?")
        params.append(scenario.stage)
    for column, value in scenario.segment.items():
        values = value if isinstance(value, list) else [value]
        where.append(f"{column} in (select unnest(?::varchar[]))")
        params.append(values)
    if scenario.exit.goal:
        where.append(f"not ({GOAL_CONDITIONS[scenario.exit.goal]})")
    send_id = ledger.send_id_sql("?", "?", "customer_id", "anchor_date")
    sql = f"""
        insert into ledger.sends
        select {send_id}, ?, ?, customer_id, anchor_date, ?, due_date, ?, 'planned', null, null,
               now()::timestamp, now()::timestamp
        from (
            select customer_id, {anchor} as anchor_date, {anchor} + {step.day} as due_date
            from marts.dim_customers
            where {' and '.join(where)}
        )
        where due_date between ?::date - {catch_up_days} and ?::date
        on conflict do nothing
    """
    before = con.execute("select count(*) from ledger.sends").fetchone()[0]
    con.execute(sql, [scenario.id, step.id, scenario.id, step.id, step.channel, run_date, *params, run_date, run_date])
    return con.execute("select count(*) from ledger.sends").fetchone()[0] - before


def _deliverable(con: duckdb.DuckDBPyConnection, channel: str) -> list[dict]:
    rows = con.execute(
        """
        select s.send_id, s.scenario_id, s.step_id, s.customer_id, s.run_date, s.status,
               c.last_name, c.first_name, c.email, c.line_user_id, c.phone,
               c.postal_code, c.prefecture, c.city, c.address_line
        from ledger.sends s
        join marts.dim_customers c using (customer_id)
        where s.channel = ? and s.status in ('planned', 'sending')
        order by s.send_id
        """,
        [channel],
    ).fetchall()
    names = [d[0] for d in con.description]
    return [dict(zip(names, row)) for row in rows]


def _address(channel: str, row: dict) -> str:
    if channel == "email":
        return row["email"]
    if channel == "line":
        return row["line_user_id"]
    if channel in ("sms", "phone"):
        return row["phone"]
    return " ".join(str(row[k] or "") for k in ("postal_code", "prefecture", "city", "address_line")).strip()


def run_campaigns(con: duckdb.DuckDBPyConnection, settings: Settings, scenarios: list[Scenario],
                  run_date: date, channel_for: ChannelFactory) -> CampaignResult:
    """Plan and deliver every scenario step due on `run_date`; return what was planned and delivered."""
    ledger.attach(con, settings.ledger)
    result = CampaignResult(run_date)
    steps = {(s.id, st.id): (s, st) for s in scenarios for st in s.steps}
    for scenario in scenarios:  # highest priority first
        for step in scenario.steps:
            con.execute("begin")
            planned = _plan_step(con, scenario, step, run_date, settings.catch_up_days)
            con.execute("commit")
            result.planned[(scenario.id, step.id, step.channel)] += planned

    renderer = Renderer(settings)
    for channel_name in sorted({st.channel for _, st in steps.values()}):
        channel = channel_for(channel_name)
        pending = _deliverable(con, channel_name)
        # A message left `sending` by a crashed run may have reached a provider that has no
        # idempotency key: flag it for a person rather than risk a second copy.
        if not getattr(channel, "idempotent", False):
            stale = [r["send_id"] for r in pending if r["status"] == "sending"]
            if stale:
                ledger.mark(con, stale, "unknown", "process stopped during delivery; check the provider before resending")
            pending = [r for r in pending if r["status"] == "planned"]
        for start in range(0, len(pending), channel.max_batch_size):
            batch = pending[start:start + channel.max_batch_size]
            messages = []
            for row in batch:
                scenario, step = steps[(row["scenario_id"], row["step_id"])]
                send_date = row["run_date"]
                rendered = renderer.render(step, row, row["send_id"], send_date)
                messages.append(Message(
                    send_id=row["send_id"], channel=channel_name, customer_id=row["customer_id"],
                    address=_address(channel_name, row), recipient_name=f"{row['last_name']} {row['first_name']}",
                    subject=rendered.subject, body_text=rendered.text, body_html=rendered.html,
                    scenario_id=scenario.id, step_id=step.id,
                    extra={"unsubscribe_url": rendered.unsubscribe_url,
                           "send_at": datetime.combine(send_date, step.send_time).isoformat()},
                ))
            ledger.mark(con, [m.send_id for m in messages], "sending")
            outcomes = channel.send_batch(messages)
            ledger.record_outcomes(con, [(o.send_id, o.status, o.detail, o.provider_message_id) for o in outcomes])
            by_id = {m.send_id: m for m in messages}
            for o in outcomes:
                m = by_id[o.send_id]
                result.delivered[(m.scenario_id, m.step_id, channel_name, o.status)] += 1
    return result


def send_date_for(night: date) -> date:
    """Messages selected after night D go out on D + 1 (the nightly run happens at 02:00 the next day)."""
    return night + timedelta(days=1)


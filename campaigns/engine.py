"""The nightly campaign run: select who is due, record them in the ledger, deliver, record outcomes.

Selection is one set-based SQL statement on DuckDB over every scenario step at once
(never a loop over customers): anchors (first order, subscription start, abandoned
cart, ...) are joined to the steps, due = anchor + day; then consent, suppression,
hold-out, priority between scenarios and the frequency cap decide each row's status,
and all rows are inserted into the ledger in that one statement. Delivery goes
through the channel interface in batches; the channel journals each provider request
as `sending` right before it and its outcomes right after (`ledger.Journal`), so a crash
at any point leaves at most the requests in flight undecided, and the next run finishes
the rest without sending anything twice: it hands a message over again only where the
provider deduplicates, and flags it `unknown` otherwise (docs/delivery.md).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import duckdb

from campaigns import coupons, ledger
from campaigns.render import Rendered, Renderer
from campaigns.schema import (EXIT_CONDITIONS, PREDICTION_SEGMENTS, SEGMENT_COLUMNS, SEGMENT_RANGES, VARIANT_BUCKETS,
                              Scenario, Step, entry_problems)
from campaigns.unsubscribe import fold_unsubscribes
from connectors.channels.base import ALWAYS, Channel, Message, Outcome
from connectors.channels.registry import require_sender_identity
from connectors.channels.safe_text import clean_body, one_line
from kizuna.config import Settings
from kizuna.errors import KizunaError, ScenarioError

log = logging.getLogger("kizuna.campaigns")

#: Per channel: the consent flag and the contact test in marts.dim_customers (`c`).
#: A package insert travels in a parcel the customer ordered: no consent or address needed.
CHANNEL_REACH = {
    "email": ("c.has_email_consent", "c.email is not null"),
    "line": ("c.has_line_consent", "c.line_user_id is not null"),
    "sms": ("c.has_sms_consent", "c.phone is not null"),
    "dm": ("c.has_dm_consent", "c.postal_code is not null"),
    "phone": ("c.has_phone_consent", "c.phone is not null"),
    "insert": ("true", "true"),
}

#: A package insert goes into a parcel: the customer's next unshipped order, placed on or after the step's
#: anchor date (an older order stuck unshipped is not it). None: no insert (status `skipped`, `no_parcel`).
#: marts.fct_orders holds counted (confirmed) orders.
#: Per customer, the newest unshipped order's date: a parcel exists for a row when it is on or after the
#: row's anchor date (a join on the few unshipped orders, not a correlated subquery per candidate).
_UNSHIPPED = ("(select customer_id, max(ordered_date) as last_unshipped from marts.fct_orders "
              "where shipped_at is null group by customer_id)")
_NO_ORDERS = "(select cast(null as varchar) as customer_id, cast(null as date) as last_unshipped where false)"


def _unshipped(tables: set[str]) -> str:
    """_UNSHIPPED over marts.fct_orders; before the first build (no orders table) there is no parcel."""
    return _UNSHIPPED if "marts.fct_orders" in tables else _NO_ORDERS

ChannelFactory = Callable[[str], Channel]


@dataclass
class CampaignResult:
    run_date: date
    planned: Counter = field(default_factory=Counter)  # (scenario, step, channel) -> newly planned
    recorded: Counter = field(default_factory=Counter)  # (scenario, step, channel, status) -> rows recorded at planning
    delivered: Counter = field(default_factory=Counter)  # (scenario, step, channel, status) -> count
    retried: int = 0  # failed messages planned again tonight
    #: channel -> why nothing (more) was sent through it tonight; its messages wait for the next run
    channel_problems: dict[str, str] = field(default_factory=dict)
    #: (channel, status) -> messages in the whole ledger that need attention after this run
    #: (`unknown`; `failed` with no retry left), whichever night they come from
    attention: Counter = field(default_factory=Counter)
    coupons_issued: int = 0  # unique coupon codes assigned tonight
    coupons: coupons.ProvisionResult | None = None  # what reached the shop (import file, Shopify)
    #: customers who unsubscribed through a link since the last run (folded into the ledger tonight)
    unsubscribed: int = 0
    #: the console's holds, approvals and decisions honoured tonight (kizuna/console/nightly.py)
    console: Any = None

    def total(self, status: str) -> int:
        return sum(n for (_, _, _, s), n in self.delivered.items() if s == status)


def in_holdout(customer_id: str, scenario_id: str, percent: float) -> bool:
    """The hold-out rule in Python (the SQL below computes the same): stable across runs and machines."""
    bucket = int(hashlib.md5(f"{scenario_id}|{customer_id}".encode()).hexdigest()[:8], 16) % 10000
    return bucket < percent * 100


# --- A/B variants (issue 17, part 2) ---------------------------------------------------------------
#: The customer's variant bucket of a step, in SQL over the step row `s` and the anchor row `a`: md5 of
#: 'variant|scenario|step|customer', so that it is stable across runs and anchors and independent of the
#: hold-out's hash (md5 of 'scenario|customer'). `variant_bucket` computes the same in Python.
VARIANT_BUCKET_SQL = ("((('0x' || substr(md5('variant|' || s.scenario_id || '|' || s.step_id || '|' || a.customer_id), "
                      f"1, 8))::bigint % {VARIANT_BUCKETS}))")


def variant_bucket(scenario_id: str, step_id: str, customer_id: str) -> int:
    """The bucket (0..VARIANT_BUCKETS-1) VARIANT_BUCKET_SQL gives a customer for a step."""
    digest = hashlib.md5(f"variant|{scenario_id}|{step_id}|{customer_id}".encode()).hexdigest()
    return int(digest[:8], 16) % VARIANT_BUCKETS


def variant_for(scenario_id: str, step: Step, customer_id: str) -> str | None:
    """The variant of `step` a customer gets (None: the step has no variants), as the selection assigns it."""
    bucket = variant_bucket(scenario_id, step.id, customer_id)
    return next((v for v, _, lo, hi in step.variant_bounds() if lo <= bucket < hi), None)


def _variant_step_rows(scenario_sql: str, step: Step, tail: str) -> list[str]:
    """The `steps` table's rows of one step: one per variant (its id, channel and bucket range), or one with
    null variant columns. `scenario_sql` and `tail` are the step row's other values around the channel."""
    if not step.variants:
        return [f"({scenario_sql}, '{step.channel}', {tail}, cast(null as varchar), cast(null as integer), "
                "cast(null as integer))"]
    return [f"({scenario_sql}, '{channel}', {tail}, '{variant}', {lo}, {hi})"
            for variant, channel, lo, hi in step.variant_bounds()]


def step_channels(step: Step) -> set[str]:
    """Every channel a step may send on: its own, its variants' and their fallbacks'."""
    return {ch for arm in step.arms() for ch in arm.channels}


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "select schema_name || '.' || table_name from duckdb_tables() where database_name = current_database() "
        "union all select schema_name || '.' || view_name from duckdb_views() where database_name = current_database()"
    ).fetchall()
    return {r[0] for r in rows}


def _require(tables: set[str], needed: str, why: str) -> None:
    if needed not in tables:
        raise KizunaError(f"{why} needs the table {needed}, which the warehouse does not have: "
                          "run the nightly build first (or remove that scenario).")


# --- Predictions (issue 19, docs/predictions.md) -------------------------------------------------------
_NO_PREDICTIONS = ("(select cast(null as varchar) as customer_id, cast(null as double) as p_alive, "
                   "cast(null as varchar) as churn_risk_band, cast(null as double) as predicted_clv_12m where false)")


def _predictions_join(scenarios: list[Scenario], tables: set[str]) -> str:
    """The join on marts.customer_predictions (alias `p`) when a scenario's segment reads it; without the
    mart (never built) nobody matches a prediction filter."""
    if not any(column in PREDICTION_SEGMENTS for s in scenarios for column in s.segment):
        return ""
    source = "marts.customer_predictions" if "marts.customer_predictions" in tables else _NO_PREDICTIONS
    return f"left join {source} p on p.customer_id = x.customer_id"
# ----------------------------------------------------------------------------------------------------


def last_run_before(con: duckdb.DuckDBPyConnection, run_date: date) -> date | None:
    if not ledger.is_attached(con):
        return None
    return con.execute("select max(run_date) from ledger.runs where run_date < ?", [run_date]).fetchone()[0]


# ---- journeys: conditions on earlier steps and same-day fallback (docs/journeys.md) ----------------
#
# Both join the one selection as small constant tables keyed by (scenario_id, step_id), so the
# selection stays one set-based statement: `step_channels` expands a step with fallbacks into one
# candidate row per channel (the first that can reach the customer is kept, `_pick_channel_sql`);
# `cond` says, per due row of a step with `only_if`, whether its condition is met (`_conditions_sql`).

#: Reasons that belong to one channel: the next fallback channel may still reach the customer.
REACH_REASONS = ("suppressed", "no_consent", "no_address", "no_parcel")
#: SendGrid events that prove each reaction (a click proves the open; an open, the delivery).
_EVENTS_FOR = {"delivered": ("delivered", "open", "click"), "opened": ("open", "click"), "clicked": ("click",)}


def _step_channels_sql(scenarios: list[Scenario]) -> str | None:
    """VALUES of (scenario_id, step_id, channel, option_k, n_options) for steps with fallbacks; None: none has."""
    rows = [f"('{s.id}', '{st.id}', '{ch}', {k}, {len(st.channels)})"
            for s in scenarios for st in s.steps if st.fallback for k, ch in enumerate(st.channels, 1)]
    return ", ".join(rows) if rows else None


def _pick_channel_sql(with_fallback: bool) -> str:
    """Body of CTE `x` over `x_options`: per ledger key, the first channel option that can reach the customer
    (else the step's own channel, with its reason). A fallback row notes why: `fallback:<channel>:<reason>`."""
    if not with_fallback:
        return "select *, cast(null as varchar) as fallback_note from x_options"
    reach = ", ".join(f"'{r}'" for r in REACH_REASONS)
    key = "partition by scenario_id, step_id, customer_id, anchor_date"
    # x_options is materialized when steps have fallbacks (plan_query): read twice here, computed once;
    # the window sorts the fallback steps' rows only.
    return f"""
        select * exclude (option_n), cast(null as varchar) as fallback_note
        from x_options where option_n = 1
        union all by name
        select * exclude (pick, option_n, first_channel, first_reason),
               case when option_k > 1 then 'fallback:' || first_channel || ':' || first_reason end as fallback_note
        from (
            select *,
                row_number() over ({key} order by coalesce(reason in ({reach}), false), option_k) as pick,
                first_value(channel) over ({key} order by option_k) as first_channel,
                first_value(reason) over ({key} order by option_k) as first_reason
            from x_options where option_n > 1
        ) where pick = 1"""


def _conditions_sql(scenarios: list[Scenario], tables: set[str], with_ledger: bool) -> str | None:
    """CTEs `step_conditions` and `cond` (met: true/false per due row of a step with `only_if`), or None.

    A condition looks at the earlier step's ledger row for the same customer and anchor date and at what
    followed within `within_days` of that row's run date (its send date; the due date when it has no row):
    SendGrid's events in raw.message_events (by send id) and orders in marts.fct_orders. The rules:
    - delivered: sent, and for e-mail a delivered/open/click event in the window; not_delivered: not that;
    - opened / clicked: an e-mail with an open (or click) / click event in the window;
      not_opened / not_clicked: not that, except for a message that went out through a channel that reports no
      opens (a fallback LINE or DM): the customer has had it, so the step is not sent again;
    - ordered: an order dated in the window; not_ordered: none.
    Evaluated on the step's due day with what is known then (docs/journeys.md). When the earlier step is due
    the same night (missed nights caught up), no reaction can be known: the condition is not met (the step is
    skipped, never sent the same night as the message it depends on)."""
    rows = []
    for s in scenarios:
        for st in s.steps:
            if st.only_if is not None:
                ref = s.condition_step(st)
                rows.append(f"('{s.id}', '{st.id}', '{st.only_if.kind}', '{st.only_if.step}', "
                            f"{ref.day if ref else 'cast(null as integer)'}, {s.condition_days(st)})")
    if not rows:
        return None
    sends = ("ledger.sends" if with_ledger else
             "(select cast(null as varchar) as send_id, cast(null as varchar) as scenario_id, "
             "cast(null as varchar) as step_id, cast(null as varchar) as customer_id, cast(null as date) as anchor_date, "
             "cast(null as varchar) as channel, cast(null as varchar) as status, cast(null as date) as run_date "
             "where false)")
    events = ("raw.message_events" if "raw.message_events" in tables else
              "(select cast(null as varchar) as send_id, cast(null as varchar) as event, "
              "cast(null as timestamp) as event_at where false)")
    orders = ("marts.fct_orders" if "marts.fct_orders" in tables else
              "(select cast(null as varchar) as order_id, cast(null as varchar) as customer_id, "
              "cast(null as date) as ordered_date where false)")

    def seen(kind: str) -> str:
        return "coalesce(ev." + kind + ", false)"

    flags = ", ".join(f"bool_or(e.event in ({', '.join(repr(n) for n in names)})) as {kind}"
                      for kind, names in _EVENTS_FOR.items())
    delivered = f"coalesce(k.ref_status = 'sent' and (k.ref_channel <> 'email' or {seen('delivered')}), false)"
    opened = f"coalesce(k.ref_channel = 'email' and {seen('opened')}, false)"
    clicked = f"coalesce(k.ref_channel = 'email' and {seen('clicked')}, false)"
    elsewhere = "coalesce(k.ref_status = 'sent' and k.ref_channel <> 'email', false)"  # no opens to see
    ordered = "coalesce(od.n, 0) > 0"
    key = "scenario_id, step_id, customer_id, anchor_date"
    same = " and ".join(f"{{a}}.{c} = k.{c}" for c in key.split(", "))
    return f"""
    step_conditions(scenario_id, step_id, kind, ref_step, ref_day, within_days) as (values {', '.join(rows)}),
    cond_keys as (
        select distinct f.scenario_id, f.step_id, f.customer_id, f.anchor_date, sc.kind, sc.within_days,
               r.send_id, r.channel as ref_channel, r.status as ref_status,
               coalesce(r.run_date, cast(f.anchor_date + sc.ref_day as date)) as ref_on,
               -- the earlier step is itself due tonight (no row yet: nights caught up late): nothing can be known
               r.send_id is null and f.anchor_date + sc.ref_day between $lo and $run_date as same_night
        from fresh f
        join step_conditions sc on sc.scenario_id = f.scenario_id and sc.step_id = f.step_id
        left join {sends} r on r.scenario_id = f.scenario_id and r.step_id = sc.ref_step
             and r.customer_id = f.customer_id and r.anchor_date = f.anchor_date
    ),
    -- what followed the earlier step within the window: its SendGrid events, the customer's orders
    cond_events as (
        select {', '.join('k.' + c for c in key.split(', '))}, {flags}
        from cond_keys k join {events} e on e.send_id = k.send_id
        where e.event in ('delivered', 'open', 'click') and e.event_at >= cast(k.ref_on as timestamp)
          and e.event_at < cast(cast(k.ref_on + k.within_days as date) as timestamp)
        group by all
    ),
    cond_orders as (
        select {', '.join('k.' + c for c in key.split(', '))}, count(*) as n
        from cond_keys k join {orders} o on o.customer_id = k.customer_id
        where k.kind in ('ordered', 'not_ordered')
          and o.ordered_date >= k.ref_on and o.ordered_date < cast(k.ref_on + k.within_days as date)
        group by all
    ),
    cond as (
        select k.scenario_id, k.step_id, k.customer_id, k.anchor_date, k.kind,
            case when k.same_night then false else case k.kind
                when 'delivered' then {delivered} when 'not_delivered' then not {delivered}
                when 'opened' then {opened} when 'not_opened' then not ({opened} or {elsewhere})
                when 'clicked' then {clicked} when 'not_clicked' then not ({clicked} or {elsewhere})
                when 'ordered' then {ordered} when 'not_ordered' then not {ordered}
            end end as met
        from cond_keys k
        left join cond_events ev on {same.format(a='ev')}
        left join cond_orders od on {same.format(a='od')}
    ),"""


def plan_query(con: duckdb.DuckDBPyConnection, settings: Settings, scenarios: list[Scenario], run_date: date,
               last_run: date | None) -> tuple[str, dict[str, Any]]:
    """The one SELECT that yields every new ledger row of the night, with its status and detail."""
    tables = _tables(con)
    _require(tables, "marts.dim_customers", "campaign selection")
    catch_up = settings.catch_up_days
    lo_live = run_date - timedelta(days=catch_up)
    lo = min(lo_live, last_run + timedelta(days=1)) if last_run else lo_live
    params: dict[str, Any] = {
        "run_date": run_date, "lo": lo, "lo_live": lo_live,
        "cap_from": run_date - timedelta(days=settings.campaign_cap_days - 1),
    }

    def bind(value: Any) -> str:
        name = f"p{len(params)}"
        params[name] = value
        return f"${name}"

    # Steps as a small constant table (ids are validated [a-z0-9_], so literals are safe).
    step_rows, windows = [], {}
    for s in scenarios:
        holdout = s.holdout_percent if s.holdout_percent is not None else settings.campaign_holdout_percent
        for st in s.steps:
            step_rows += _variant_step_rows(f"'{s.id}', '{st.id}', {st.day}", st,
                                            f"{s.priority}, '{s.entry.key}', {float(holdout)}")
            lo_day, hi_day = windows.get(s.entry.key, (st.day, st.day))
            windows[s.entry.key] = (min(lo_day, st.day), max(hi_day, st.day))
    anchor_parts = []
    for s in scenarios:
        key = s.entry.key
        if key not in windows:
            continue
        min_day, max_day = windows.pop(key)
        source = s.entry.sql(lo - timedelta(days=max_day), run_date - timedelta(days=min_day))
        _check_entry(con, s)
        for table in ("marts.fct_orders", "raw.carts", s.entry.table_read):
            if table and table in source:
                _require(tables, table, f"scenario {s.id} (entry {s.entry.event})")
        # Parenthesised: a step before its anchor (day -7) makes this `$run_date - (-7)`.
        anchor_parts.append(
            f"select '{key}' as event, customer_id, anchor_date from ({source}) "
            f"where anchor_date between $lo - ({max_day}) and $run_date - ({min_day})"
        )

    # Per scenario: stage, segment, goal and stop conditions over the customer row `c`.
    filters = []
    for s in scenarios:
        conds = [f"x.scenario_id = '{s.id}'"]
        if s.stage != "any":
            conds.append(f"c.stage = {bind(s.stage)}")
        for column, value in s.segment.items():
            values = value if isinstance(value, list) else [value]
            names = [v for v in values if v is not None]
            if column == "product":
                _require(tables, "raw.order_lines", f"scenario {s.id} (segment product)")
                conds.append(
                    "exists (select 1 from marts.fct_orders o join raw.order_lines l "
                    "on cast(l.order_id as varchar) = o.order_id where o.customer_id = c.customer_id "
                    f"and list_contains({bind(names)}::varchar[], cast(l.product_id as varchar)))")
                continue
            if column in SEGMENT_RANGES:  # issue 19: a threshold on the customer's prediction
                expr, op = SEGMENT_RANGES[column]
                conds.append(f"coalesce({expr} {op} {bind(float(value))}, false)")
                continue
            expr = SEGMENT_COLUMNS[column]
            test = f"list_contains({bind(names)}::varchar[], {expr})"
            conds.append(f"({test} or {expr} is null)" if None in values else f"coalesce({test}, false)")
        for condition in s.exit.conditions:
            conds.append(f"not coalesce({EXIT_CONDITIONS[condition]}, false)")
        filters.append("(" + " and ".join(conds) + ")")

    # journeys (docs/journeys.md): fallback channels and conditions, as separate CTEs
    step_channels = _step_channels_sql(scenarios)
    journey_ctes = _conditions_sql(scenarios, tables, ledger.is_attached(con)) or ""
    if step_channels:
        journey_ctes += f"""
    step_channels(scenario_id, step_id, channel, option_k, n_options) as (values {step_channels}),
    options as (
        select f.* replace (coalesce(o.channel, f.channel) as channel),
               coalesce(o.option_k, 1) as option_k, coalesce(o.n_options, 1) as option_n
        from fresh f left join step_channels o on o.scenario_id = f.scenario_id and o.step_id = f.step_id
    ),"""
    candidates = "options" if step_channels else "fresh"
    cond_join = ("left join cond on cond.scenario_id = x.scenario_id and cond.step_id = x.step_id "
                 "and cond.customer_id = x.customer_id and cond.anchor_date = x.anchor_date") if "cond as (" in journey_ctes else ""
    cond_reason = "when not coalesce(cond.met, true) then 'condition:' || cond.kind" if cond_join else ""

    consent = "case x.channel " + " ".join(f"when '{ch}' then {c}" for ch, (c, _) in CHANNEL_REACH.items()) + " end"
    contact = "case x.channel " + " ".join(f"when '{ch}' then {a}" for ch, (_, a) in CHANNEL_REACH.items()) + " end"
    caps = settings.campaign_caps
    cap = ("case channel " + " ".join(f"when '{ch}' then {int(n)}" for ch, n in caps.items() if ch in CHANNEL_REACH)
           + " else null end") if caps else "null"
    audience = ("marts.campaign_audience" if "marts.campaign_audience" in tables else
                "(select cast(null as varchar) as customer_id, cast(null as varchar) as rfm_segment where false)")
    holdout = "((('0x' || substr(md5(x.scenario_id || '|' || x.customer_id), 1, 8))::bigint % 10000) < x.hold_pct * 100)"
    send_id = ledger.send_id_sql("scenario_id", "step_id", "customer_id", "anchor_date")
    contact_statuses = ", ".join(f"'{s}'" for s in ledger.CONTACT_STATUSES)
    cols = "scenario_id, step_id, customer_id, anchor_date, channel, due_date, variant"
    sql = f"""
    with
    steps(scenario_id, step_id, step_day, channel, priority, event, hold_pct, variant, var_lo, var_hi)
        as (values {', '.join(step_rows)}),
    anchors as (select distinct * from ({' union all '.join(anchor_parts)})),
    due as (
        select s.*, a.customer_id, a.anchor_date, cast(a.anchor_date + s.step_day as date) as due_date
        from anchors a join steps s on a.event = s.event
        where a.anchor_date + s.step_day between $lo and $run_date
          and case when s.var_lo is null then true
                   else {VARIANT_BUCKET_SQL} >= s.var_lo and {VARIANT_BUCKET_SQL} < s.var_hi end
    ),
    fresh as {'materialized ' if cond_join else ''}(  -- read again by the conditions: computed once
        select * from due x
        where not exists (
            select 1 from ledger.sends l
            where l.scenario_id = x.scenario_id and l.step_id = x.step_id
              and l.customer_id = x.customer_id and l.anchor_date = x.anchor_date)
    ),{journey_ctes}
    x_options as {'materialized ' if step_channels else ''}(
        select x.*,
            case
                when x.due_date < $lo_live then 'missed'
                when coalesce(c.is_erased, false) then 'erased'
                when x.customer_id in (select customer_id from ledger.suppressions sp
                                       where sp.channel is null or sp.channel = x.channel) then 'suppressed'
                when not coalesce({consent}, false) then 'no_consent'
                when not coalesce({contact}, false) then 'no_address'
                when x.channel = 'insert' and not coalesce(u.last_unshipped >= x.anchor_date, false)
                    then 'no_parcel'
                when {holdout} then 'held_out'
                {cond_reason}
            end as reason
        from {candidates} x
        join marts.dim_customers c on c.customer_id = x.customer_id
        left join {audience} a on a.customer_id = x.customer_id
        {_predictions_join(scenarios, tables)}
        left join {_unshipped(tables)} u on u.customer_id = x.customer_id
        {cond_join}
        where {' or '.join(filters)}
    ),
    x as ({_pick_channel_sql(bool(step_channels))}
    ),
    live as (
        select *, first_value(scenario_id) over (
            partition by customer_id, channel order by priority desc, scenario_id) as winner
        from x where reason is null or reason = 'held_out'
    ),
    recent as (
        select customer_id, channel, count(*) as n from ledger.sends
        where status in ({contact_statuses}) and run_date between $cap_from and $run_date
        group by customer_id, channel
    ),
    capq as (
        select l.*, coalesce(r.n, 0) + row_number() over (
            partition by l.customer_id, l.channel order by l.priority desc, l.step_day, l.step_id) as nth
        from live l left join recent r on r.customer_id = l.customer_id and r.channel = l.channel
        where l.reason is null and l.winner = l.scenario_id
    ),
    final as (
        select {cols}, 'skipped' as status, reason as detail from x where reason <> 'held_out'
        union all
        select {cols},
            case when winner = scenario_id then 'held_out' else 'skipped' end,
            case when winner = scenario_id then 'holdout' else 'priority:' || winner end
        from live where reason = 'held_out'
        union all
        select {cols}, 'skipped', 'priority:' || winner from live where reason is null and winner <> scenario_id
        union all
        select {cols},
            case when nth > ({cap}) then 'capped' else 'planned' end,
            case when nth > ({cap}) then 'cap:' || ({cap}) || ' per {settings.campaign_cap_days} days'
                 else fallback_note end
        from capq
    )
    select {send_id} as send_id, {cols}, cast($run_date as date) as run_date, status, detail
    from final
    """
    if not ledger.is_attached(con):  # preview before any run: read an empty ledger, create none
        for table, empty in ledger.EMPTY.items():
            sql = sql.replace(f"from {table} ", f"from {empty} ").replace(f"from {table}\n", f"from {empty}\n")
    return sql, params


def _check_entry(con: duckdb.DuckDBPyConnection, scenario: Scenario) -> None:
    """A date_column entry names a column of the warehouse: checked here, where the warehouse is known
    (issue 17, part 3); the error names the column and the date columns there are."""
    problems = entry_problems(con, [scenario])
    if problems:
        raise ScenarioError("; ".join(problems))


def plan(con: duckdb.DuckDBPyConnection, settings: Settings, scenarios: list[Scenario], run_date: date,
         result: CampaignResult) -> None:
    """Record in the ledger, in one statement, every row of the night (planned, skipped, capped, held out).

    The SELECT already leaves out keys the ledger holds, so no ON CONFLICT clause (DuckDB's is
    ~100x slower here); should a key exist anyway, the unique constraint stops the statement and
    nothing of the night is recorded (one statement, one transaction).
    """
    last_run = last_run_before(con, run_date)
    sql, params = plan_query(con, settings, scenarios, run_date, last_run)
    rows = con.execute(
        f"""
        insert into ledger.sends (send_id, scenario_id, step_id, customer_id, anchor_date, channel, due_date,
                                  run_date, status, detail, planned_at, updated_at, variant)
        select send_id, scenario_id, step_id, customer_id, anchor_date, channel, due_date, run_date, status, detail,
               now()::timestamp, now()::timestamp, variant
        from ({sql})
        returning scenario_id, step_id, channel, status
        """,
        params,
    ).fetchall()
    for scenario_id, step_id, channel, status in rows:
        result.recorded[(scenario_id, step_id, channel, status)] += 1
        if status == "planned":
            result.planned[(scenario_id, step_id, channel)] += 1
    # Refused by a provider on an earlier run: tried again, within the limit and the catch-up window.
    result.retried = ledger.plan_retries(con, settings.send_max_failures,
                                         run_date - timedelta(days=settings.catch_up_days))
    # Planned by an earlier run that died, and now too old to send: missed, like any step past the window.
    con.execute(
        "update ledger.sends set status = 'skipped', detail = 'missed', updated_at = now()::timestamp "
        "where status = 'planned' and due_date < ?",
        [run_date - timedelta(days=settings.catch_up_days)],
    )
    _recheck_pending(con)
    # Unique coupon codes, once per send, before anything is delivered (a retried send keeps its code).
    result.coupons_issued = coupons.assign(con, scenarios, settings.coupon_code_length)
    con.execute("insert into ledger.runs values (?, now()::timestamp) on conflict do nothing", [run_date])


def _recheck_pending(con: duckdb.DuckDBPyConnection) -> None:
    """Rows still `planned` (an earlier run died before sending them) meet tonight's consent,
    erasure and suppression, not the night they were planned: a withdrawal in between wins."""
    consent = "case s.channel " + " ".join(f"when '{ch}' then {c}" for ch, (c, _) in CHANNEL_REACH.items()) + " end"
    contact = "case s.channel " + " ".join(f"when '{ch}' then {a}" for ch, (_, a) in CHANNEL_REACH.items()) + " end"
    con.execute(f"""
        update ledger.sends t set status = 'skipped', detail = r.reason, updated_at = now()::timestamp
        from (
            select s.send_id, case
                when c.customer_id is null or coalesce(c.is_erased, false) then 'erased'
                when s.customer_id in (select customer_id from ledger.suppressions sp
                                       where sp.channel is null or sp.channel = s.channel) then 'suppressed'
                when not coalesce({consent}, false) then 'no_consent'
                when not coalesce({contact}, false) then 'no_address'
                when s.channel = 'insert' and not coalesce(u.last_unshipped >= s.anchor_date, false)
                    then 'no_parcel'
            end as reason
            from ledger.sends s left join marts.dim_customers c on c.customer_id = s.customer_id
            left join {_unshipped(_tables(con))} u on u.customer_id = s.customer_id
            where s.status = 'planned'
        ) r
        where t.send_id = r.send_id and r.reason is not null
    """)


_CUSTOMER_FIELDS = ("last_name", "first_name", "email", "line_user_id", "phone",
                    "postal_code", "prefecture", "city", "address_line")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _deliverable(con: duckdb.DuckDBPyConnection, channel: str, with_unknown: bool) -> list[dict]:
    """The channel's rows still to deliver: planned, left `sending` by a run that died, and (where the
    channel could hand them over again) `unknown`. Customer fields come cleaned for people (`one_line`)."""
    statuses = "('planned', 'sending', 'unknown')" if with_unknown else "('planned', 'sending')"
    rows = con.execute(
        f"""
        select s.send_id, s.scenario_id, s.step_id, s.customer_id, s.anchor_date, s.run_date, s.status,
               s.handed_over_at, s.variant, {', '.join('c.' + f for f in _CUSTOMER_FIELDS)},
               cp.code as coupon_code, cp.expires_on as coupon_expires_on, cp.state as coupon_state,
               cp.detail as coupon_detail
        from ledger.sends s
        join marts.dim_customers c using (customer_id)
        left join ledger.coupons cp on cp.send_id = s.send_id
        where s.channel = ? and s.status in {statuses}
        order by s.send_id
        """,
        [channel],
    ).fetchall()
    names = [d[0] for d in con.description]
    out = []
    for row in rows:
        record = dict(zip(names, row))
        for f in _CUSTOMER_FIELDS:  # a NUL, a line break, a zero-width space never reach a message
            if record[f] is not None:
                record[f] = one_line(record[f])
        out.append(record)
    if channel == "insert" and out:
        parcels = _parcels(con, [r["send_id"] for r in out])
        for record in out:
            record["order_id"], record["shipment_id"] = parcels.get(record["send_id"], (None, None))
    return out


def _parcels(con: duckdb.DuckDBPyConnection, send_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    """send id -> (order id, shipment id) of the parcel a package insert goes into: the customer's earliest
    unshipped order since the anchor date (as in the selection) and its unshipped shipment, when the shop already
    exported one (many export a shipment only once it has left: then the order alone names the parcel)."""
    tables = _tables(con)
    if "marts.fct_orders" not in tables:
        return {}
    shipments = ("(select cast(shipment_id as varchar) as shipment_id, cast(order_id as varchar) as order_id "
                 "from raw.shipments where shipped_at is null)" if "raw.shipments" in tables else
                 "(select cast(null as varchar) as shipment_id, cast(null as varchar) as order_id where false)")
    rows = con.execute(f"""
        with o as (
            select s.send_id, po.order_id,
                   row_number() over (partition by s.send_id order by po.ordered_at, po.order_id) as k
            from ledger.sends s
            join marts.fct_orders po on po.customer_id = s.customer_id
                 and po.ordered_date >= s.anchor_date and po.shipped_at is null
            where s.send_id in (select unnest(?::varchar[]))
        )
        select o.send_id, o.order_id, min(sh.shipment_id)
        from o left join {shipments} sh on sh.order_id = o.order_id
        where o.k = 1
        group by all
    """, [send_ids]).fetchall()
    return {send_id: (order_id, shipment_id) for send_id, order_id, shipment_id in rows}


def _address(channel: str, row: dict) -> str:
    if channel == "email":
        return row["email"]
    if channel == "line":
        return row["line_user_id"]
    if channel in ("sms", "phone"):
        return row["phone"]
    return " ".join(str(row[k] or "") for k in ("postal_code", "prefecture", "city", "address_line")).strip()


# --- Send time (issue 17, part 4): `send_time: best` ------------------------------------------------
def best_send_hours(con: duckdb.DuckDBPyConnection, customer_ids: list[str]) -> dict[str, int]:
    """customer id -> the hour (0-23, shop time) at which the customer most often opened our e-mails
    (raw.message_events `open`, whose times are stored in the shop's time zone); ties go to the hour
    of the latest open. Customers without opens are absent (their step's fixed time applies)."""
    if not customer_ids or "raw.message_events" not in _tables(con) or not ledger.is_attached(con):
        return {}
    rows = con.execute("""
        select s.customer_id, hour(e.event_at) as h
        from raw.message_events e join ledger.sends s on s.send_id = e.send_id
        where e.event = 'open' and e.event_at is not null
          and s.customer_id in (select unnest(?::varchar[]))
        group by s.customer_id, hour(e.event_at)
        qualify row_number() over (partition by s.customer_id order by count(*) desc, max(e.event_at) desc, h) = 1
    """, [customer_ids]).fetchall()
    return {customer_id: int(hour) for customer_id, hour in rows}


def send_at(row: dict, step: Step, best_hours: dict[str, int]) -> str:
    """When the message goes out (shop-local ISO time): the step's fixed time, or with `send_time: best`
    on a timed channel the customer's most frequent open hour, else the step's fallback time."""
    at = step.fixed_send_time
    if step.uses_best_time and row["customer_id"] in best_hours:
        at = time(best_hours[row["customer_id"]], 0)
    return datetime.combine(row["run_date"], at).isoformat()
# -----------------------------------------------------------------------------------------------------


def _message(channel_name: str, row: dict, scenario: Scenario, step: Step, rendered: Rendered,
             best_hours: dict[str, int] | None = None) -> Message:
    return Message(
        send_id=row["send_id"], channel=channel_name, customer_id=row["customer_id"],
        address=_address(channel_name, row), recipient_name=one_line(f"{row['last_name']} {row['first_name']}"),
        subject=one_line(rendered.subject), body_text=clean_body(rendered.text),
        body_html=clean_body(rendered.html) if rendered.html else rendered.html,
        scenario_id=scenario.id, step_id=step.id,
        extra={"unsubscribe_url": rendered.unsubscribe_url,
               "send_at": send_at(row, step, best_hours or {}),
               # What printed lists (DM, call, package insert) name: the piece and its offer.
               "piece": step.template,
               # a unique code (the customer's own) wins over the step's shared code
               "offer_code": row.get("coupon_code") or ((step.offer.code or "") if step.offer else ""),
               # package inserts: the parcel they go into
               "order_id": row.get("order_id") or "", "shipment_id": row.get("shipment_id") or ""},
    )


def _fault_outcomes(messages: list[Message], journal: ledger.Journal, channel: Channel, why: str) -> list[Outcome]:
    """When a channel fails as a whole mid-batch: what is known stays known; a message it may have
    handed over is `unknown` where a second copy is possible, the rest `failed` (tried again later)."""
    out = []
    for m in messages:
        if m.send_id in journal.outcomes:
            out.append(journal.outcomes[m.send_id])
        elif m.send_id in journal.handed and not channel.idempotent:
            out.append(Outcome(m.send_id, "unknown", f"{why}; the provider may have it: not resent"))
        else:
            out.append(Outcome(m.send_id, "failed", why))
    return out


def _open_channels(names: list[str], channel_for: ChannelFactory, result: CampaignResult) -> dict[str, Channel]:
    """Every channel with work tonight, built and asked whether it can deliver before anything is sent:
    a missing secret or an unwritable folder is found up front, and only its own channel waits."""
    channels = {}
    for name in names:
        try:
            channel = channel_for(name)
            channel.preflight()
        except Exception as exc:  # noqa: BLE001 - whatever stops a channel, the others go on; said in the result
            result.channel_problems[name] = _reason(exc)
            log.error("channel %s not used tonight: %s", name, result.channel_problems[name])
            continue
        channels[name] = channel
    return channels


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, KizunaError) else f"{type(exc).__name__}: {exc}"


def run_campaigns(con: duckdb.DuckDBPyConnection, settings: Settings, scenarios: list[Scenario],
                  run_date: date, channel_for: ChannelFactory,
                  now: Callable[[], datetime] = _utcnow) -> CampaignResult:
    """Plan and deliver every scenario step due on `run_date`; return what was planned and delivered.

    Each channel, each batch and each message fails alone, with its reason in the ledger and the
    result: a channel that cannot deliver leaves its messages planned for the next run and the
    others go on. `now` (UTC) is the clock of hand-overs, injectable for tests."""
    require_sender_identity(settings)  # before anything is recorded or sent, on any channel
    ledger.attach(con, settings.ledger)
    result = CampaignResult(run_date)
    # Unsubscribes the web service took since the last run: suppressed before anyone is selected.
    result.unsubscribed = fold_unsubscribes(con, settings).customers
    steps = {(s.id, st.id): (s, st) for s in scenarios for st in s.steps}
    console_fold = honour_console_actions_before_plan(con, settings, run_date)
    plan(con, settings, scenarios, run_date, result)
    result.console = honour_console_actions_after_plan(con, settings, console_fold, result)
    coupon_problem = None
    try:
        result.coupons = coupons.provision(con, settings)
    except Exception as exc:  # noqa: BLE001 - the codes' file or shop: only messages carrying a code wait
        coupon_problem = f"クーポンコードをショップに渡せませんでした (coupon codes not handed to the shop: {_reason(exc)})"
        log.exception("coupon provisioning failed")

    wanted = sorted({ch for _, st in steps.values() for ch in step_channels(st)})  # A/B and fallback channels
    with_work = [r[0] for r in con.execute(
        "select distinct channel from ledger.sends where status in ('planned', 'sending', 'unknown') "
        "and list_contains(?::varchar[], channel) order by 1", [wanted]).fetchall()]
    channels = _open_channels(with_work, channel_for, result)
    renderer = Renderer(settings)
    for channel_name, channel in channels.items():
        try:
            _deliver_channel(con, channel_name, channel, steps, renderer, result, now, settings,
                             coupon_problem)
        except Exception as exc:  # noqa: BLE001 - a fault outside any batch (the ledger query...): this channel only
            log.exception("channel %s stopped", channel_name)
            result.channel_problems[channel_name] = _reason(exc)
    result.attention = ledger.needing_attention(con, settings.send_max_failures)
    return result


# --- The marketers' console (issue 22): holds, approvals and decisions made there ---------------------
def honour_console_actions_before_plan(con: duckdb.DuckDBPyConnection, settings: Settings, run_date: date):
    """Before selection: the console's actions into the ledger; verdicts on unknown sends; releases."""
    from kizuna.console.nightly import fold_console_actions

    return fold_console_actions(con, settings, run_date)


def honour_console_actions_after_plan(con: duckdb.DuckDBPyConnection, settings: Settings, fold,
                                      result: CampaignResult):
    """After selection, before delivery: held scenarios/steps and unapproved DM/call lists are not sent
    (counted in `result.delivered` as `held` / `awaiting_approval`)."""
    from kizuna.console.nightly import hold_back

    fold = hold_back(con, fold, settings)
    for status, counts in (("held", fold.held), ("awaiting_approval", fold.awaiting)):
        for (scenario_id, step_id, channel), n in counts.items():  # in the summary and the report, not sent
            result.delivered[(scenario_id, step_id, channel, status)] += n
            result.planned[(scenario_id, step_id, channel)] -= min(n, result.planned[(scenario_id, step_id, channel)])
    return fold
# -----------------------------------------------------------------------------------------------------


def _deliver_channel(con: duckdb.DuckDBPyConnection, channel_name: str, channel: Channel,
                     steps: dict[tuple[str, str], tuple[Scenario, Step]], renderer: Renderer,
                     result: CampaignResult, now: Callable[[], datetime], settings: Settings,
                     coupon_problem: str | None = None) -> None:
    ledger_file: Path = settings.ledger  # type: ignore[assignment]
    window = channel.resend_safe_for
    rows = [r for r in _deliverable(con, channel_name, with_unknown=window is not None)
            if (r["scenario_id"], r["step_id"]) in steps]

    def resendable(row: dict) -> bool:
        if window is None:
            return False
        if window == ALWAYS:
            return True
        return row["handed_over_at"] is not None and row["handed_over_at"] >= now() - window

    # Left `sending` by a run that died: hand over again where no second copy can come of it,
    # else `unknown` until the provider's own record (or a person) says what happened.
    stale = [r for r in rows if r["status"] == "sending" and not resendable(r)]
    if stale:
        why = ("process stopped during delivery; the provider may have it: not resent. SendGrid's events "
               "reconcile it; else see `kizuna sends unknown`" if window is None else
               "process stopped during delivery and the provider's idempotency key has expired: not resent "
               "(a resend could arrive twice); see `kizuna sends unknown`")
        ledger.mark(con, [r["send_id"] for r in stale], "unknown", why)
        for r in stale:
            result.delivered[(r["scenario_id"], r["step_id"], channel_name, "unknown")] += 1
    pending = [r for r in rows if r["status"] == "planned" or resendable(r)]
    best_hours = best_send_hours(con, sorted({r["customer_id"] for r in pending
                                              if steps[(r["scenario_id"], r["step_id"])][1].uses_best_time}))

    for start in range(0, len(pending), channel.max_batch_size):
        batch = pending[start:start + channel.max_batch_size]
        messages, refused = [], []
        for row in batch:
            scenario, step = steps[(row["scenario_id"], row["step_id"])]
            step = step.arm(row["variant"])  # an A/B variant's template, offer and channel
            try:
                step = step.on_channel(channel_name)  # a fallback row: the step's variant for this channel
            except ScenarioError as exc:  # the scenario file lost that fallback since the row was planned
                refused.append(Outcome(row["send_id"], "failed", str(exc)))
                continue
            if step.offer and step.offer.unique:  # a code the shop cannot honour never goes out in a message
                if coupon_problem or not coupons.usable(settings, row["coupon_state"]):
                    refused.append(Outcome(row["send_id"], "failed", coupon_problem or coupons.refusal(
                        settings, row["coupon_code"], row["coupon_state"], row["coupon_detail"])))
                    continue
            if channel_name == "insert" and not row.get("order_id"):
                refused.append(Outcome(row["send_id"], "failed", "同梱する出荷待ちの注文がありません (no unshipped "
                                       "order to put the insert in); not listed"))
                continue
            try:
                rendered = renderer.render(step, row, row["send_id"], row["run_date"])
            except ScenarioError as exc:  # the template or the sender settings: every message would fail
                result.channel_problems[channel_name] = str(exc)
                log.error("channel %s stopped: %s", channel_name, exc)
                return
            except Exception as exc:  # noqa: BLE001 - this customer's data: this message fails, with the reason
                refused.append(Outcome(row["send_id"], "failed", f"could not render {step.template}: {_reason(exc)}"))
                continue
            messages.append(_message(channel_name, row, scenario, step, rendered, best_hours))
        journal = ledger.Journal(ledger.journal_path(ledger_file), now)
        try:
            outcomes = channel.send_batch(messages, journal) if messages else []
            if [o.send_id for o in outcomes] != [m.send_id for m in messages]:
                raise KizunaError(f"channel {channel_name} returned {len(outcomes)} outcomes for "
                                  f"{len(messages)} messages (or out of order)")
        except Exception as exc:  # noqa: BLE001 - the channel failed as a whole: this channel stops tonight
            log.exception("channel %s failed", channel_name)
            result.channel_problems[channel_name] = _reason(exc)
            outcomes = _fault_outcomes(messages, journal, channel, f"channel failed: {_reason(exc)}")
            pending = []  # the rest stays planned for the next run
        try:
            journal.settled([o for o in [*refused, *outcomes] if journal.outcomes.get(o.send_id) != o])
        finally:
            journal.close()
        ledger.fold_journal(con, ledger_file)
        by_id = {r["send_id"]: r for r in batch}
        for o in [*refused, *outcomes]:
            r = by_id[o.send_id]
            result.delivered[(r["scenario_id"], r["step_id"], channel_name, o.status)] += 1
        if not pending:
            break


#: Why a row of the selection is not sent, as a marketer reads it (`kizuna campaigns preview`): the ledger
#: detail's kind -> (key in the audience CSV, label). Japanese first, English in parentheses.
SKIP_REASONS = {
    "no_consent": ("consent", "同意なし (no consent)"),
    "no_address": ("address", "宛先なし (no address)"),
    "suppressed": ("suppression", "配信停止 (suppressed)"),
    "erased": ("erased", "削除済み (erased)"),
    "no_parcel": ("parcel", "同梱する荷物なし (no parcel)"),
    "missed": ("missed", "配信日を過ぎた (missed)"),
    "priority": ("priority", "優先シナリオ (priority)"),
    "condition": ("condition", "条件不成立 (condition)"),
    "cap": ("cap", "頻度上限 (cap)"),
    "holdout": ("hold-out", "対照群 (hold-out)"),
    "fallback": ("fallback", "代替チャネル (fallback)"),
}


def reason_of(status: str, detail: str | None) -> str | None:
    """The reason key (SKIP_REASONS) of a selected row: None for a message that goes out on its own channel."""
    kind = (detail or "").split(":", 1)[0]
    if status == "capped":
        return "cap"
    if status == "held_out":
        return "hold-out"
    if kind in SKIP_REASONS:
        return SKIP_REASONS[kind][0]
    return detail or None


@dataclass
class Preview:
    run_date: date
    counts: list[tuple[str, str, str, str, int]]  # scenario, step, channel, status, rows
    samples: list[tuple[str, str, str, Rendered]]  # scenario, step, channel, rendered
    #: scenario, step, channel, status, detail (why: `no_consent`, `condition:not_opened`, `fallback:email:...`), rows
    details: list[tuple[str, str, str, str, str | None, int]] = field(default_factory=list)
    #: every selected row with its reason (when asked): what `--csv` writes
    audience: list[dict] | None = None


#: The audience CSV's columns (`kizuna campaigns preview --csv`): no personal data beyond the customer id.
AUDIENCE_COLUMNS = ("scenario_id", "step_id", "customer_id", "anchor_date", "due_date", "channel", "status",
                    "reason", "detail")


def preview_campaigns(con: duckdb.DuckDBPyConnection, settings: Settings, scenarios: list[Scenario],
                      run_date: date, sample: int = 2, scenario_id: str | None = None,
                      audience: bool = False) -> Preview:
    """What a run for `run_date` would record and send, without writing anything (ledger read-only).

    The selection runs over every scenario (priority between them is decided as in a run); `scenario_id`
    narrows what is shown. `audience`: also every selected row with its reason (`Preview.audience`)."""
    if scenario_id is not None and scenario_id not in {s.id for s in scenarios}:
        raise ScenarioError(f"シナリオ {scenario_id!r} はありません (no such scenario); "
                            f"one of: {', '.join(sorted(s.id for s in scenarios))}")
    ledger.attach(con, settings.ledger, read_only=True)
    sql, params = plan_query(con, settings, scenarios, run_date, last_run_before(con, run_date))
    where = ""
    if scenario_id is not None:
        params = {**params, "preview_scenario": scenario_id}
        where = "where p.scenario_id = $preview_scenario"
    details = con.execute(
        f"select scenario_id, step_id, channel, status, detail, count(*) from ({sql}) p {where} "
        "group by all order by all", params
    ).fetchall()
    totals: Counter = Counter()
    for scenario, step, channel, status, _, n in details:
        totals[(scenario, step, channel, status)] += n
    counts = [(*key, n) for key, n in sorted(totals.items())]
    fields = ", ".join("c." + f for f in _CUSTOMER_FIELDS)
    rows = con.execute(
        f"""
        select p.send_id, p.scenario_id, p.step_id, p.channel, p.customer_id, p.run_date, p.variant, {fields}
        from ({sql}) p join marts.dim_customers c on c.customer_id = p.customer_id
        {where + ' and' if where else 'where'} p.status = 'planned'
        qualify row_number() over (partition by p.scenario_id, p.step_id, p.variant order by p.send_id) <= {int(sample)}
        order by p.scenario_id, p.step_id, p.send_id
        """,
        params,
    ).fetchall()
    names = [d[0] for d in con.description]
    steps = {(s.id, st.id): (s, st) for s in scenarios for st in s.steps}
    renderer = Renderer(settings)
    samples = []
    for values in rows:
        row = dict(zip(names, values))
        scenario, step = steps[(row["scenario_id"], row["step_id"])]
        step = step.arm(row["variant"]).on_channel(row["channel"])  # the A/B variant's, or the fallback's message
        samples.append((scenario.id, step.id, step.channel, renderer.render(step, row, row["send_id"], run_date)))
    result = Preview(run_date, counts, samples, details)
    if audience:
        cur = con.execute(
            f"select scenario_id, step_id, customer_id, anchor_date, due_date, channel, status, detail "
            f"from ({sql}) p {where} order by scenario_id, step_id, customer_id, anchor_date", params)
        result.audience = [{**dict(zip(AUDIENCE_COLUMNS[:7], r[:7])), "reason": reason_of(r[6], r[7]), "detail": r[7]}
                           for r in cur.fetchall()]
    return result


def send_date_for(night: date) -> date:
    """Messages selected after night D go out on D + 1 (the nightly run happens at 02:00 the next day)."""
    return night + timedelta(days=1)

"""What each console page shows, gathered from the published warehouse, the ledger copy and the store.

Tonight's plan is the campaign preview (`campaigns.engine.preview_campaigns`, the selection the run
itself makes, read-only) over the published warehouse and the ledger copy, with each row's reason.
A preview is kept per night until the published warehouse or the ledger copy changes, so paging
through customers does not select the whole shop again.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from campaigns import engine
from campaigns.render import Renderer
from campaigns.schema import Scenario, load_scenarios
from kizuna.config import Settings
from kizuna.console import reads, store
from kizuna.errors import KizunaError

PAGE_SIZE = 50
#: Columns of the tonight table, in order: how a due row ends up (the preview's statuses and reasons).
OUTCOMES = ("send", "skipped", "capped", "held_out")


@dataclass
class StepPlan:
    scenario_id: str
    step_id: str
    channels: set[str] = field(default_factory=set)
    due: int = 0
    send: int = 0
    capped: int = 0
    held_out: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> rows

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


@dataclass
class Plan:
    run_date: date
    steps: list[StepPlan]
    audience: list[dict]
    ledger: reads.LedgerState
    planned_by_channel: Counter  # channel -> rows to send tonight


class PlanCache:
    """The night's preview per (night, published file's time, ledger copy's time): a few kept, oldest dropped."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self.items: OrderedDict[tuple, Plan] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple) -> Plan | None:
        with self.lock:
            return self.items.get(key)

    def put(self, key: tuple, plan: Plan) -> None:
        with self.lock:
            self.items[key] = plan
            while len(self.items) > self.size:
                self.items.popitem(last=False)


def scenarios(settings: Settings) -> list[Scenario]:
    return load_scenarios(settings.scenarios_dir) if settings.scenarios_dir else load_scenarios()


def _mtime(path: Path | None) -> float | None:
    return path.stat().st_mtime if path is not None and path.exists() else None


def plan(settings: Settings, copy: reads.LedgerCopy, cache: PlanCache, run_date: date) -> Plan | None:
    """Tonight's plan for `run_date` (None before the first published night)."""
    state = copy.state()
    key = (run_date, _mtime(Path(settings.published_warehouse)), _mtime(state.path))  # type: ignore[arg-type]
    cached = cache.get(key)
    if cached is not None:
        return cached
    with reads.published(settings) as con:
        if con is None:
            return None
        if state.path is None:  # no ledger yet: the preview reads an empty one and creates none
            view = settings.model_copy(update={"ledger": Path(settings.console_store).with_name("no-ledger.duckdb")})
        else:
            view = settings.model_copy(update={"ledger": state.path})
        preview = engine.preview_campaigns(con, view, scenarios(settings), run_date, sample=0, audience=True)
    steps: dict[tuple[str, str], StepPlan] = {}
    planned: Counter = Counter()
    for row in preview.audience or []:
        sp = steps.setdefault((row["scenario_id"], row["step_id"]), StepPlan(row["scenario_id"], row["step_id"]))
        sp.due += 1
        sp.channels.add(row["channel"])
        if row["status"] == "planned":
            sp.send += 1
            planned[row["channel"]] += 1
        elif row["status"] == "capped":
            sp.capped += 1
        elif row["status"] == "held_out":
            sp.held_out += 1
        else:
            sp.skipped[row["reason"] or row["status"]] += 1
    result = Plan(run_date, [steps[k] for k in sorted(steps)], preview.audience or [], state, planned)
    cache.put(key, result)
    return result


def page(rows: list[Any], number: int, size: int = PAGE_SIZE) -> tuple[list[Any], int]:
    """(the rows of page `number`, 1-based, and how many pages there are)."""
    pages = max(1, -(-len(rows) // size))
    number = min(max(1, number), pages)
    return rows[(number - 1) * size:number * size], pages


def send_id(scenario_id: str, step_id: str, customer_id: str, anchor_date: date) -> str:
    """The ledger's send id of a key, as `ledger.send_id_sql` computes it."""
    text = "|".join([scenario_id, step_id, customer_id, anchor_date.isoformat()])
    return hashlib.md5(text.encode("utf-8")).hexdigest()[:24]


@dataclass
class MessagePreview:
    channel: str
    subject: str
    text: str
    html: str
    list_columns: list[str]
    list_row: dict[str, str]


def message_preview(settings: Settings, run_date: date, row: dict) -> MessagePreview:
    """The message one audience row would get: rendered as the run renders it, and for printed channels the
    row of the list the vendor or the call centre receives."""
    from connectors.channels import lists

    found = {(s.id, st.id): (s, st) for s in scenarios(settings) for st in s.steps}
    scenario, step = found[(row["scenario_id"], row["step_id"])]
    with reads.published(settings) as con:
        if con is None:
            raise KizunaError("no published warehouse yet")
        fields = ", ".join(engine._CUSTOMER_FIELDS)
        cur = con.execute(f"select customer_id, {fields} from marts.dim_customers where customer_id = ?",
                          [row["customer_id"]])
        values = cur.fetchone()
        names = [d[0] for d in cur.description]
    if values is None:
        raise KizunaError(f"customer {row['customer_id']} is not in the published warehouse")
    customer = dict(zip(names, values))
    arm = step.arm(engine.variant_for(scenario.id, step, row["customer_id"])).on_channel(row["channel"])
    sid = send_id(scenario.id, step.id, row["customer_id"], row["anchor_date"])
    full = {**customer, "scenario_id": scenario.id, "step_id": step.id, "run_date": run_date, "send_id": sid}
    rendered = Renderer(settings).render(arm, full, sid, run_date)
    columns, list_row = [], {}
    if row["channel"] in lists.KINDS:
        _, columns, make_row = lists.KINDS[row["channel"]]
        list_row = make_row(engine._message(row["channel"], full, scenario, arm, rendered, {}))
    return MessagePreview(row["channel"], rendered.subject, rendered.text, rendered.html, columns, list_row)


# ---- messages that need a person ---------------------------------------------------------------------

def unknown_sends(copy: reads.LedgerCopy, decided: dict[str, dict]) -> tuple[list[dict], reads.LedgerState]:
    with copy.open() as (con, state):
        if con is None:
            return [], state
        rows = con.execute("""
            select send_id, channel, scenario_id, step_id, customer_id, run_date, handed_over_at, attempts,
                   provider_message_id, detail
            from ledger.sends where status = 'unknown' order by handed_over_at nulls first, send_id
            limit 1000""").fetchall()
        names = [d[0] for d in con.description]
    out = []
    for r in rows:
        item = dict(zip(names, r))
        item["decision"] = decided.get(item["send_id"])
        out.append(item)
    return out, state


def awaiting_lists(copy: reads.LedgerCopy) -> list[dict]:
    """Earlier nights' DM / call lists waiting for approval in the ledger: (channel, night, rows)."""
    with copy.open() as (con, _state):
        if con is None:
            return []
        return [{"channel": c, "night": n, "rows": k} for c, n, k in con.execute(
            "select channel, run_date, count(*) from ledger.sends where status = 'awaiting_approval' "
            "group by all order by 2, 1").fetchall()]


# ---- customers ----------------------------------------------------------------------------------------

CONSENTS = ("email", "line", "sms", "dm", "phone")


def find_customer(settings: Settings, query: str) -> dict | None:
    """A customer by id or e-mail (case-insensitive) in the published warehouse, with their consents."""
    query = query.strip()
    if not query:
        return None
    with reads.published(settings) as con:
        if con is None:
            return None
        consent = ", ".join(f"has_{c}_consent" for c in CONSENTS)
        cur = con.execute(
            f"select customer_id, last_name, first_name, email, stage, is_erased, {consent} from marts.dim_customers "
            "where customer_id = $q or lower(email) = lower($q) order by customer_id = $q desc limit 1", {"q": query})
        row = cur.fetchone()
        if row is None:
            return None
        found = dict(zip([d[0] for d in cur.description], row))
    found["consents"] = {c: found.pop(f"has_{c}_consent") for c in CONSENTS}
    return found


def customer_history(copy: reads.LedgerCopy, customer_id: str) -> tuple[list[dict], list[dict], reads.LedgerState]:
    """(suppressions, messages) of a customer in the ledger copy."""
    with copy.open() as (con, state):
        if con is None:
            return [], [], state
        sup = con.execute("select coalesce(channel, '*') as channel, reason, created_at from ledger.suppressions "
                          "where customer_id = ? order by created_at", [customer_id])
        suppressions = [dict(zip([d[0] for d in sup.description], r)) for r in sup.fetchall()]
        msg = con.execute("select send_id, run_date, scenario_id, step_id, channel, status, detail from ledger.sends "
                          "where customer_id = ? order by run_date desc, scenario_id, step_id limit 500", [customer_id])
        messages = [dict(zip([d[0] for d in msg.description], r)) for r in msg.fetchall()]
    return suppressions, messages, state


# ---- results -------------------------------------------------------------------------------------------

def results(settings: Settings) -> dict | None:
    """The campaign section of the nightly report (funnel per scenario and step, lift, A/B), from the published
    warehouse; None before the first published night."""
    from kizuna.report import _campaign_results

    with reads.published(settings) as con:
        if con is None:
            return None
        return _campaign_results(con, reads.mart_tables(con))


def store_state(settings: Settings) -> dict:
    """Holds, approvals, decisions and erasure requests in the console's store."""
    with store.opened(Path(settings.console_store)) as sq:  # type: ignore[arg-type]
        return {"holds": store.holds(sq), "approvals": store.approvals(sq),
                "decisions": {d["send_id"]: d for d in store.decisions(sq)},
                "erasures": {e["customer_id"]: e for e in store.erasure_requests(sq)}}

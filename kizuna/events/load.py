"""The nightly `load_events` stage: event store and ledger into the warehouse, feedback into the ledger.

1. New webhook events (store id above the highest already loaded: a watermark) are copied
   from the SQLite event store into `raw.message_events` (SendGrid) and
   `raw.line_follow_events` (LINE); the provider event id is the key, so a rerun, or an
   event seen twice, adds nothing.
   A click's link (SendGrid's `url` field) is parsed from the event here into `url`, so the dbt
   models can attribute orders to clicks in portable SQL.
2. The ledger's sends (and its unique coupon codes, `raw.campaign_coupons`) are copied whole into `raw.campaign_sends` (the dbt project reads
   the warehouse only; the ledger is its own DuckDB file), and the scenarios' goals into
   `raw.campaign_scenarios` (the conversion campaign_performance and campaign_lift count).
3. Feedback goes to the ledger's do-not-contact list (`ledger.suppressions`), which the
   campaign engine checks before every send:
   - SendGrid `bounce` (hard: type `bounce`, not the temporary `blocked`), `dropped`
     (SendGrid itself refuses the address: earlier bounce, unsubscribe, spam report or
     invalid), `spamreport`, `unsubscribe`, `group_unsubscribe` → e-mail suppressed for
     the customer of the send (`send_id` from custom_args → ledger.sends), reason
     `sendgrid_<event>`; a later `group_resubscribe` lifts the group unsubscribe (only it);
   - LINE: a user whose latest event is `unfollow` (blocked the account) → LINE
     suppressed, reason `line_unfollow`; following again lifts that suppression (only
     that one). LINE user → customer through `marts.dim_customers.line_user_id` (before
     the first build: `raw.customers`).
   Feedback is recomputed from every loaded event each night and only rows not already
   there are added, so the step is idempotent and catches up on events that could not
   be matched to a customer before.
4. `unknown` e-mails are reconciled from SendGrid's events (`campaigns.reconcile`): an
   event decides them; no event long after the hand-over means SendGrid never took it,
   and it is sent again tonight (up to `reconcile_max_attempts` hand-overs).

The raw tables' DDL is in dbt_project/macros/create_campaign_raw_tables.sql (dbt creates
them empty before a build, so the marts build before any event or send exists); the
loader runs the same statements.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd

from campaigns import ledger
from campaigns.reconcile import ReconcileResult, reconcile_unknown_emails
from campaigns.schema import Scenario, load_scenarios
from kizuna.config import Settings
from kizuna.i18n import gettext as _
from kizuna.events import store
from kizuna.warehouse import connect

log = logging.getLogger("kizuna")

#: The campaign raw tables' DDL is written once, in the dbt macro that creates them empty before
#: a build (so the marts build before any event or send exists); the loader runs the same statements.
RAW_TABLES_MACRO = "macros/create_campaign_raw_tables.sql"

#: SendGrid events that put the address on the do-not-contact list for e-mail.
EMAIL_SUPPRESSING_EVENTS = ("bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe")


@dataclass(frozen=True)
class EventsLoadResult:
    """What one `load_events` did."""

    email_events_loaded: int
    line_events_loaded: int
    sends_copied: int
    suppressions_added: int
    suppressions_lifted: int
    unmatched_feedback: int  # suppressing events whose send / LINE user matches no customer (yet)
    reconciled: ReconcileResult | None = None

    def summary(self) -> str:
        """One line for the console and the log, in KIZUNA_LOCALE."""
        text = _("events: {email} e-mail and {line} LINE events loaded, {copied} sends copied; {added} "
                 "suppression(s) added, {lifted} lifted").format(
            email=self.email_events_loaded, line=self.line_events_loaded, copied=self.sends_copied,
            added=self.suppressions_added, lifted=self.suppressions_lifted)
        if self.unmatched_feedback:
            text += _("; {n} feedback event(s) not matched to a customer").format(n=self.unmatched_feedback)
        if self.reconciled and (self.reconciled.sent or self.reconciled.dropped or self.reconciled.resend
                                or self.reconciled.still_unknown):
            text += "; " + self.reconciled.summary()
        return text


def create_raw_tables(con: duckdb.DuckDBPyConnection, dbt_project_dir: Path) -> None:
    """Create the campaign raw tables when missing, with the DDL of the dbt macro (between its
    `{#-ddl-#}` and `{#-end-#}` markers: plain SQL, no Jinja)."""
    macro = (dbt_project_dir / RAW_TABLES_MACRO).read_text(encoding="utf-8")
    con.execute("create schema if not exists raw")
    for part in macro.split("{#-ddl-#}")[1:]:
        con.execute(part.split("{#-end-#}")[0])


def _local(tz: ZoneInfo, seconds: float | None) -> datetime | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, tz).replace(tzinfo=None)


def _local_iso(tz: ZoneInfo, text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text).astimezone(tz).replace(tzinfo=None)


def _watermark(con: duckdb.DuckDBPyConnection, events, warehouse_table: str, store_table: str) -> int:
    """Highest store id already loaded; 0 when the store holds fewer ids (it was replaced: reload all,
    the provider event id keeps that idempotent)."""
    loaded = con.execute(f"select coalesce(max(store_id), 0) from raw.{warehouse_table}").fetchone()[0]
    newest = events.execute(f"select coalesce(max(id), 0) from {store_table}").fetchone()[0]
    return loaded if newest >= loaded else 0


def _copy_new_events(con: duckdb.DuckDBPyConnection, events: "store.sqlite3.Connection", tz: ZoneInfo,
                     loaded_at: datetime) -> tuple[int, int]:
    wm = _watermark(con, events, "message_events", "sendgrid_events")
    names, rows = store.read_since(events, "sendgrid_events", wm)
    email_new = 0
    if rows:
        df = pd.DataFrame(rows, columns=names)
        frame = pd.DataFrame({
            "store_id": df["id"], "sg_event_id": df["sg_event_id"], "event": df["event"],
            "send_id": df["send_id"], "scenario_id": df["scenario_id"], "step_id": df["step_id"],
            "email_sha256": df["email_sha256"],
            "event_at": [_local(tz, v) if pd.notna(v) else None for v in df["event_at"]],
            "bounce_type": df["bounce_type"], "reason": df["reason"], "raw_json": df["raw_json"],
            "received_at": [_local_iso(tz, v) for v in df["received_at"]],
            "_loaded_at": loaded_at,
            "url": [click_url(e, j) for e, j in zip(df["event"], df["raw_json"])],
        })
        email_new = _append_new(con, "message_events", "sg_event_id", frame, """
            store_id, sg_event_id, event, send_id, scenario_id, step_id, email_sha256,
            cast(event_at as timestamp), bounce_type, reason, raw_json, cast(received_at as timestamp),
            cast(_loaded_at as timestamp), cast(url as varchar)""")
    _backfill_click_urls(con)

    wm = _watermark(con, events, "line_follow_events", "line_events")
    names, rows = store.read_since(events, "line_events", wm)
    line_new = 0
    if rows:
        df = pd.DataFrame(rows, columns=names)
        frame = pd.DataFrame({
            "store_id": df["id"], "webhook_event_id": df["webhook_event_id"], "event_type": df["event_type"],
            "line_user_id": df["line_user_id"],
            "event_at": [_local(tz, v / 1000) if pd.notna(v) else None for v in df["event_at_ms"]],
            "is_redelivery": df["is_redelivery"].astype(bool), "raw_json": df["raw_json"],
            "received_at": [_local_iso(tz, v) for v in df["received_at"]],
            "_loaded_at": loaded_at,
        })
        line_new = _append_new(con, "line_follow_events", "webhook_event_id", frame, """
            store_id, webhook_event_id, event_type, line_user_id, cast(event_at as timestamp),
            is_redelivery, raw_json, cast(received_at as timestamp), cast(_loaded_at as timestamp)""")
    return email_new, line_new


def click_url(event: str | None, raw_json: str | None) -> str | None:
    """The link a SendGrid `click` event names (its `url` field), parsed here so the dbt models stay
    portable SQL (no engine-specific JSON functions); None for other events or a body without it."""
    if event != "click" or not raw_json:
        return None
    try:
        url = json.loads(raw_json).get("url")
    except (ValueError, AttributeError):
        return None
    return url if isinstance(url, str) and url else None


def _backfill_click_urls(con: duckdb.DuckDBPyConnection) -> None:
    """Clicks loaded before `url` existed gain it from their raw JSON (once: afterwards none is missing)."""
    rows = con.execute("select sg_event_id, raw_json from raw.message_events "
                       "where event = 'click' and url is null and raw_json is not null").fetchall()
    found = [(url, key) for key, raw in rows if (url := click_url("click", raw))]
    if found:
        con.executemany("update raw.message_events set url = ? where sg_event_id = ?", found)


def _append_new(con: duckdb.DuckDBPyConnection, table: str, key: str, frame: pd.DataFrame, columns: str) -> int:
    """Insert `columns` of the frame's rows whose `key` raw.<table> does not hold yet; how many were new."""
    count = f"select count(*) from raw.{table}"
    con.register("new_events", frame)
    try:
        before = con.execute(count).fetchone()[0]
        con.execute(f"insert into raw.{table} select {columns} from new_events n "
                    f"where not exists (select 1 from raw.{table} m where m.{key} = n.{key})")
        return con.execute(count).fetchone()[0] - before
    finally:
        con.unregister("new_events")


def _line_customers_sql(con: duckdb.DuckDBPyConnection) -> str | None:
    tables = {(s, t) for s, t in con.execute("select schema_name, table_name from duckdb_tables()").fetchall()}
    if ("marts", "dim_customers") in tables:
        return "select customer_id, line_user_id from marts.dim_customers where line_user_id is not null"
    if ("raw", "customers") in tables:
        return ("select customer_id, line_user_id from raw.customers "
                "where line_user_id is not null and deleted_at is null")
    return None


def _apply_feedback(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    count = "select count(*) from ledger.suppressions"
    before = con.execute(count).fetchone()[0]
    suppressing = ", ".join(f"'{e}'" for e in EMAIL_SUPPRESSING_EVENTS)
    # A group unsubscribe counts only while it is the customer's latest group event (no resubscribe since).
    group_latest = """
        select customer_id, event from (
            select s.customer_id, e.event,
                   row_number() over (partition by s.customer_id
                                      order by e.event_at desc nulls last, e.store_id desc) as r
            from raw.message_events e join ledger.sends s on s.send_id = e.send_id
            where e.event in ('group_unsubscribe', 'group_resubscribe')
        ) where r = 1
    """
    email_feedback = f"""
        select e.sg_event_id, e.event, s.customer_id
        from raw.message_events e left join ledger.sends s on s.send_id = e.send_id
        where e.event in ({suppressing}) and not (e.event = 'bounce' and coalesce(e.bounce_type, 'bounce') <> 'bounce')
          and not (e.event = 'group_unsubscribe' and s.customer_id in
                   (select customer_id from ({group_latest}) g where g.event = 'group_resubscribe'))
    """
    con.execute(f"""
        insert into ledger.suppressions (customer_id, channel, reason)
        select distinct f.customer_id, 'email', 'sendgrid_' || f.event
        from ({email_feedback}) f
        where f.customer_id is not null
          and not exists (select 1 from ledger.suppressions x
                          where x.customer_id = f.customer_id and x.channel = 'email'
                            and x.reason = 'sendgrid_' || f.event)
    """)
    unmatched = con.execute(f"select count(*) from ({email_feedback}) f where f.customer_id is null").fetchone()[0]

    resubscribed = f"select customer_id from ({group_latest}) g where g.event = 'group_resubscribe'"
    lifted = con.execute(f"""
        select count(*) from ledger.suppressions
        where channel = 'email' and reason = 'sendgrid_group_unsubscribe' and customer_id in ({resubscribed})
    """).fetchone()[0]
    con.execute(f"""
        delete from ledger.suppressions
        where channel = 'email' and reason = 'sendgrid_group_unsubscribe' and customer_id in ({resubscribed})
    """)
    customers = _line_customers_sql(con)
    latest = """
        select line_user_id, event_type from (
            select line_user_id, event_type,
                   row_number() over (partition by line_user_id order by event_at desc nulls last, store_id desc) as r
            from raw.line_follow_events where line_user_id is not null
        ) where r = 1
    """
    if customers is not None:
        con.execute(f"""
            insert into ledger.suppressions (customer_id, channel, reason)
            select distinct c.customer_id, 'line', 'line_unfollow'
            from ({latest}) l join ({customers}) c on c.line_user_id = l.line_user_id
            where l.event_type = 'unfollow'
              and not exists (select 1 from ledger.suppressions x
                              where x.customer_id = c.customer_id and x.channel = 'line' and x.reason = 'line_unfollow')
        """)
        refollowed = f"""
            select c.customer_id from ({latest}) l join ({customers}) c on c.line_user_id = l.line_user_id
            where l.event_type = 'follow'
        """
        lifted += con.execute(f"""
            select count(*) from ledger.suppressions
            where channel = 'line' and reason = 'line_unfollow' and customer_id in ({refollowed})
        """).fetchone()[0]
        con.execute(f"""
            delete from ledger.suppressions
            where channel = 'line' and reason = 'line_unfollow' and customer_id in ({refollowed})
        """)
        unmatched += con.execute(f"""
            select count(*) from ({latest}) l
            where l.event_type = 'unfollow'
              and l.line_user_id not in (select line_user_id from ({customers}) c)
        """).fetchone()[0]
    else:
        unmatched += con.execute(f"select count(*) from ({latest}) l where event_type = 'unfollow'").fetchone()[0]
    added = con.execute(count).fetchone()[0] - before + lifted
    return added, lifted, unmatched


def _copy_variants(con, scenarios: Sequence[Scenario], loaded_at: datetime) -> None:
    """A/B tests (issue 17, part 2): each send's variant, and the variants the files define now (the first
    is the control), for marts.campaign_variant_results."""
    con.execute("delete from raw.campaign_send_variants")
    con.execute("""
        insert into raw.campaign_send_variants
        select send_id, scenario_id, step_id, variant, ? from ledger.sends where variant is not null
    """, [loaded_at])
    con.execute("delete from raw.campaign_step_variants")
    rows = [(s.id, st.id, v.id, position, v.weight, loaded_at)
            for s in scenarios for st in s.steps for position, v in enumerate(st.variants or (), 1)]
    if rows:
        con.executemany("insert into raw.campaign_step_variants values (?, ?, ?, ?, ?, ?)", rows)


def load_events(settings: Settings, scenarios: Sequence[Scenario] | None = None) -> EventsLoadResult:
    """Copy new webhook events, the ledger's sends and the scenarios' goals (default: the built-in
    scenario folder's) into the warehouse; apply feedback to the ledger."""
    scenarios = load_scenarios() if scenarios is None else scenarios
    tz = ZoneInfo(settings.timezone)
    loaded_at = datetime.now(timezone.utc).astimezone(tz).replace(tzinfo=None, microsecond=0)
    events = store.connect(settings.events_store)  # type: ignore[arg-type]
    try:
        with connect(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds) as con:  # type: ignore[arg-type]
            create_raw_tables(con, settings.dbt_project_dir)  # type: ignore[arg-type]
            ledger.attach(con, settings.ledger)  # type: ignore[arg-type]
            email_new, line_new = _copy_new_events(con, events, tz, loaded_at)
            reconciled = reconcile_unknown_emails(con, settings.reconcile_wait_hours, settings.timezone,
                                                  max_attempts=settings.reconcile_max_attempts)
            con.execute("begin")
            con.execute("delete from raw.campaign_sends")
            con.execute("""
                insert into raw.campaign_sends
                select send_id, scenario_id, step_id, customer_id, anchor_date, channel, due_date, run_date,
                       status, detail, provider_message_id, planned_at, updated_at, ?
                from ledger.sends
            """, [loaded_at])
            # The current scenario files' goals: results are measured against the goal as it is now.
            con.execute("delete from raw.campaign_scenarios")
            con.executemany("insert into raw.campaign_scenarios values (?, ?, ?, ?, ?)", [
                (s.id, s.name, s.exit.goal, s.holdout_percent, loaded_at) for s in scenarios])
            _copy_variants(con, scenarios, loaded_at)
            # Unique coupon codes (campaigns/coupons.py): campaign_performance counts the redeemed ones.
            con.execute("delete from raw.campaign_coupons")
            con.execute("""
                insert into raw.campaign_coupons
                select code, send_id, scenario_id, step_id, customer_id, offer_type, offer_value, issued_on,
                       expires_on, state, ?
                from ledger.coupons
            """, [loaded_at])
            con.execute("commit")
            sends = con.execute("select count(*) from raw.campaign_sends").fetchone()[0]
            added, lifted, unmatched = _apply_feedback(con)
    finally:
        events.close()
    result = EventsLoadResult(email_new, line_new, sends, added, lifted, unmatched, reconciled)
    log.info("%s", result.summary())
    return result

"""Reconciling `unknown` e-mails from SendGrid's own record of them.

An e-mail is `unknown` when kizuna cannot tell whether SendGrid took it: the process died
while the request was in flight, or SendGrid answered 5xx or not at all. SendGrid has no
idempotency key, so a blind resend could mail the customer twice. But every message
SendGrid accepts produces events (`processed` within seconds, then `delivered`,
`deferred`, `bounce`, `open`, ... or `dropped`), and each carries our send id in its
`custom_args`. After the nightly events load:

1. an `unknown` e-mail with any event is decided by it: `dropped` → `failed` (SendGrid
   refused to deliver; not retried: the address is on its suppression list, and the
   feedback step suppresses it here too); any other event → `sent`;
2. an `unknown` e-mail with no event at all, handed over more than
   `reconcile_wait_hours` ago, while the webhook is demonstrably working (events arrived
   after that wait, and events arrived for other e-mails of the same night), was never
   accepted: it is planned again and sent by tonight's run. The same evidence is asked
   for again after each hand-over, so a resend never duplicates a message SendGrid has;
   the number of hand-overs is bounded all the same (`reconcile_max_attempts`), against
   a webhook that loses some events and not others: beyond it the message stays
   `unknown` for a person (`kizuna sends unknown`);
3. everything else stays `unknown` until its events arrive (or a person decides).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import duckdb


@dataclass(frozen=True)
class ReconcileResult:
    sent: int  # decided `sent` by a SendGrid event
    dropped: int  # decided `failed` by a `dropped` event
    resend: int  # no event long after the hand-over: planned for another attempt
    still_unknown: int

    def summary(self) -> str:
        """One line for the console and the log, in KIZUNA_LOCALE."""
        from kizuna.i18n import gettext as _

        return _("unknown e-mails reconciled from SendGrid events: {sent} sent, {dropped} dropped, {resend} "
                 "planned again (never accepted), {unknown} still unknown").format(
            sent=self.sent, dropped=self.dropped, resend=self.resend, unknown=self.still_unknown)


def reconcile_unknown_emails(con: duckdb.DuckDBPyConnection, wait_hours: float, shop_timezone: str,
                             now: datetime | None = None, max_attempts: int = 5) -> ReconcileResult:
    """Decide `unknown` e-mails from `raw.message_events` (loaded) and the ledger (attached as `ledger`).

    `now` is UTC (naive), like the ledger's `handed_over_at`; event times are shop-local."""
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    decided = con.execute("""
        with ev as (
            select send_id, bool_or(event = 'dropped') as dropped,
                   string_agg(distinct event, ', ' order by event) as events,
                   arg_max(reason, event = 'dropped') as reason
            from raw.message_events where send_id is not null group by send_id
        )
        update ledger.sends s
        set status = case when ev.dropped then 'failed' else 'sent' end,
            retry = case when ev.dropped then false else s.retry end,
            failures = coalesce(s.failures, 0) + case when ev.dropped then 1 else 0 end,
            detail = 'reconciled from SendGrid events (' || ev.events || ')'
                     || case when ev.dropped then ': dropped, ' || coalesce(ev.reason, 'no reason given') else '' end
                     || '; was: ' || coalesce(s.detail, ''),
            updated_at = now()::timestamp
        from ev
        where s.send_id = ev.send_id and s.channel = 'email' and s.status = 'unknown'
        returning s.status
    """).fetchall()
    sent = sum(1 for (status,) in decided if status == "sent")

    # Is the webhook working? The newest event received, and the nights for which events arrived.
    newest_local, = con.execute("select max(received_at) from raw.message_events").fetchone()
    resend = 0
    if newest_local is not None:
        newest = newest_local.replace(tzinfo=ZoneInfo(shop_timezone)).astimezone(timezone.utc).replace(tzinfo=None)
        cutoff = min(now, newest) - timedelta(hours=wait_hours)
        resend = con.execute("""
            update ledger.sends s
            set status = 'planned', updated_at = now()::timestamp,
                detail = 'sent again: no SendGrid event ' || $wait || ' h after hand-over ' || coalesce(s.attempts, 1)
                         || ' while events for the same night arrived, so SendGrid never accepted it; was: '
                         || coalesce(s.detail, '')
            where s.channel = 'email' and s.status = 'unknown' and coalesce(s.attempts, 1) < $max_attempts
              -- event arrival times are whole seconds: compare the hand-over at that precision
              and s.handed_over_at is not null and date_trunc('second', s.handed_over_at) <= $cutoff
              and not exists (select 1 from raw.message_events e where e.send_id = s.send_id)
              and exists (select 1 from raw.message_events e join ledger.sends o on o.send_id = e.send_id
                          where o.run_date = s.run_date and o.channel = 'email')
            returning 1
        """, {"wait": f"{wait_hours:g}", "cutoff": cutoff, "max_attempts": max_attempts}).fetchall()
        resend = len(resend)
    still, = con.execute("select count(*) from ledger.sends where channel = 'email' and status = 'unknown'").fetchone()
    return ReconcileResult(sent, len(decided) - sent, resend, still)

"""Time campaign selection across every built-in scenario on a synthetic shop of N customers.

Builds, with SQL in a fresh DuckDB file under bench/data/, the tables the selection reads
(marts.dim_customers, marts.campaign_audience, marts.fct_orders, raw.carts) with a
plausible shape: first orders spread over three years, trials, subscriptions with
deliveries, repeat buyers, dormant customers, abandoned carts. Then, against an empty
ledger:

- selection: the one planning SELECT for a night (every scenario and step), counted;
- plan night 1: the same, inserted into the ledger (what the nightly run does before sending);
- plan night 1 again: a re-run of the same night (nothing new; anti-join on the ledger);
- plan night 2: the next night, with night 1 in the ledger (frequency cap reads it).

The scenario set is the built-in one plus BENCH_JOURNEY, a journey with conditions on earlier steps
(docs/journeys.md): its day-6 e-mail (LINE fallback) is in the ledger as sent for the customers whose
day 8 and day 10 fall in tonight's window, and raw.message_events holds their SendGrid events (delivered,
~35 % opened) among ~2 events per customer of older sends, so the conditions join real volumes.

Baseline in the same run: a plain full scan of dim_customers and campaign_audience
(`count(*)` with a group-by), so the figures can be read as "N scans". Delivery
(rendering, channels) is not measured here.

    python -m bench.campaigns --customers 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

import kizuna  # noqa: F401
from campaigns.engine import CampaignResult, plan, plan_query
from campaigns import ledger
from campaigns.schema import TEMPLATE_DIR, Scenario, Variant, load_scenarios
from kizuna.config import Settings

BENCH_DIR = Path(__file__).parent
RUN_DATE = date(2026, 11, 23)


def build_shop(con: duckdb.DuckDBPyConnection, customers: int, seed: float = 0.42) -> None:
    con.execute(f"select setseed({seed})")
    con.execute("create schema marts; create schema raw")
    # One row per customer; first order within ~3 years before the run date.
    con.execute(f"""
    create table marts.dim_customers as
    with base as (
        select i, 'C' || lpad(i::varchar, 8, '0') as customer_id,
               random() as r_kind, random() as r_rep, random() as r_age, random() as r_c, random() as r_sub,
               cast(date '{RUN_DATE}' - cast(floor(power(random(), 1.6) * 1100) as integer) as date) as first_order_date
        from range({customers}) t(i)
    ), shaped as (
        select *,
            case when r_kind < 0.40 then 'trial' when r_kind < 0.85 then 'one_off' else 'subscription' end as first_order_kind,
            case when r_rep < 0.6 then 1 when r_rep < 0.8 then 2 else 2 + cast(floor(random() * 10) as integer) end as order_count
        from base
    )
    select customer_id, '山田' as last_name, '花子' as first_name, customer_id || '@example.jp' as email,
        case when r_c < 0.3 then 'U' || customer_id end as line_user_id, '090-0000-0000' as phone,
        '150-0001' as postal_code, '東京都' as prefecture, '渋谷区' as city, '神宮前1-1' as address_line,
        first_order_date,
        cast(least(date '{RUN_DATE}', first_order_date + case when order_count = 1 then 0
             else cast(floor(random() * 400) as integer) end) as date) as last_order_date,
        order_count, first_order_kind,
        cast(first_order_date + 1 as timestamp) + interval 10 hour as first_shipped_at,
        cast(first_order_date + 3 as timestamp) + interval 15 hour as first_delivered_at,
        case when r_age < 0.1 then '30s' when r_age < 0.3 then '40s' when r_age < 0.6 then '50s'
             when r_age < 0.85 then '60s' when r_age < 0.97 then '70+' end as age_band,
        'M' || cast(floor(r_kind * 12) as integer) as acquisition_media_code,
        case when first_order_kind = 'subscription' or r_sub < 0.15 then
             case when r_sub < 0.07 then 'cancelled' else 'active' end else 'none' end as subscription_status,
        'female' as gender, r_c > 0.995 as is_erased,
        r_c < 0.85 as has_email_consent, r_c < 0.3 as has_line_consent, false as has_sms_consent,
        r_c < 0.5 as has_dm_consent, false as has_phone_consent
    from shaped
    """)
    con.execute(f"""
    alter table marts.dim_customers add column stage varchar;
    update marts.dim_customers set stage = case
        when date '{RUN_DATE}' - last_order_date >= 180 then 'dormant'
        when order_count >= 2 then 'continuing' else 'initial' end;
    create table marts.campaign_audience as
    select customer_id, case when random() < 0.2 then 'loyal' when random() < 0.5 then 'new' else 'promising' end
           as rfm_segment from marts.dim_customers;
    create table marts.fct_orders as
    with n as (select customer_id, first_order_date, last_order_date, order_count, first_order_kind,
                      subscription_status from marts.dim_customers),
    seq as (select n.*, s.k from n, lateral (select unnest(range(1, n.order_count + 1)) as k) s)
    select customer_id || '-' || k as order_id, customer_id, k as purchase_sequence_number,
        cast(case when k = 1 then first_order_date
             else first_order_date + cast(((last_order_date - first_order_date) * (k - 1)) / greatest(order_count - 1, 1)
                  as integer) end as date) as ordered_date,
        case when subscription_status <> 'none' and (k > 1 or first_order_kind = 'subscription') then 'subscription'
             when k = 1 then first_order_kind else 'one_off' end as order_kind,
        case when subscription_status <> 'none' then 'S' || customer_id end as subscription_id,
        case when subscription_status <> 'none' then
             k - case when first_order_kind = 'subscription' then 0 else 1 end end as delivery_number
    from seq;
    -- orders ship the day after; the newest are still waiting (package inserts need such a parcel)
    alter table marts.fct_orders add column ordered_at timestamp;
    alter table marts.fct_orders add column shipped_at timestamp;
    update marts.fct_orders set ordered_at = cast(ordered_date as timestamp) + interval 10 hour,
        shipped_at = case when ordered_date < date '{RUN_DATE}' - 1 then cast(ordered_date + 1 as timestamp) end;
    create table raw.carts as
    select 'K' || i as cart_id, 'C' || lpad(cast(floor(random() * {customers}) as bigint)::varchar, 8, '0') as customer_id,
        'abandoned' as status,
        cast(date '{RUN_DATE}' - cast(floor(random() * 365) as integer) as timestamp) + interval 20 hour as updated_at
    from range({max(customers // 4, 1)}) t(i);
    """)
    # The birthday and run-out anchors (issue 17): birth dates (12 % not given, as in the demo shop) and
    # the main product's run-out, 30 or 60 days after one-off buyers' last order (marts.customer_run_out).
    con.execute(f"""
    alter table marts.dim_customers add column birth_date date;
    update marts.dim_customers set birth_date = case when random() < 0.88 then
        cast(date '1945-01-01' + cast(floor(random() * 21000) as integer) as date) end;
    create table marts.customer_run_out as
    select customer_id, 'P002' as product_id,
           cast(last_order_date + 30 * (1 + cast(hash(customer_id) % 2 as integer)) as date) as run_out_date
    from marts.dim_customers where first_order_kind = 'one_off';
    """)


#: A journey with conditions (docs/journeys.md), added to the built-in scenarios: LINE to those who did not
#: open the day-6 e-mail, a DM to those who did not order within 4 days of it.
BENCH_JOURNEY = {
    "id": "bench_journey", "name": "Bench: conditions on earlier steps", "priority": 50, "stage": "any",
    "entry": {"event": "first_order"}, "holdout_percent": 5,
    "steps": [
        {"id": "d06_mail", "day": 6, "channel": "email", "template": "suppa_info",
         "fallback": {"channel": "line", "template": "cart_reminder_line"}},
        {"id": "d08_line", "day": 8, "channel": "line", "template": "cart_reminder_line",
         "only_if": {"not_opened": "d06_mail", "within_days": 2}},
        {"id": "d10_dm", "day": 10, "channel": "dm", "template": "suppa_dm_offer",
         "only_if": {"not_ordered": "d06_mail", "within_days": 4}},
    ],
}


def seed_journey_history(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """The ledger rows of BENCH_JOURNEY's day-6 e-mail for the anchors whose later steps are due in tonight's
    window (as earlier nights would have left them), and SendGrid events: theirs, and older noise."""
    from campaigns.engine import CHANNEL_REACH  # noqa: F401 (the engine's module loaded as a run would)

    lo = RUN_DATE - timedelta(days=settings.catch_up_days)
    send_id = ledger.send_id_sql("'bench_journey'", "'d06_mail'", "customer_id", "first_order_date")
    con.execute(f"""
        insert into ledger.sends (send_id, scenario_id, step_id, customer_id, anchor_date, channel, due_date,
                                  run_date, status, detail, planned_at, updated_at)
        select {send_id}, 'bench_journey', 'd06_mail', customer_id, first_order_date,
               case when has_email_consent then 'email' else 'line' end, first_order_date + 6, first_order_date + 6,
               'sent', '', now()::timestamp, now()::timestamp
        from marts.dim_customers
        where first_order_date between date '{lo}' - 10 and date '{RUN_DATE}' - 8
          and (has_email_consent or has_line_consent)
    """)
    con.execute("create schema if not exists raw")
    con.execute("""
        create table raw.message_events as
        select row_number() over () as store_id, md5(send_id || event) as sg_event_id, event, send_id,
               scenario_id, step_id, null::varchar as email_sha256,
               cast(run_date as timestamp) + interval 10 hour + to_minutes(cast(floor(random() * 1500) as bigint))
                   as event_at,
               null::varchar as bounce_type, null::varchar as reason, null::varchar as raw_json,
               now()::timestamp as received_at, now()::timestamp as _loaded_at, null::varchar as url
        from (
            select send_id, scenario_id, step_id, run_date, unnest(case when random() < 0.35
                   then ['delivered', 'open'] else ['delivered'] end) as event
            from ledger.sends where scenario_id = 'bench_journey' and channel = 'email'
        )
    """)
    con.execute("""
        insert into raw.message_events
        select 1000000000 + i, 'noise-' || i, case when i % 3 = 0 then 'open' else 'delivered' end,
               substr(md5(i::varchar), 1, 24), 'older', 'older', null, timestamp '2026-01-01' + to_minutes(i % 400000),
               null, null, null, now()::timestamp, now()::timestamp, null
        from range((select 2 * count(*) from marts.dim_customers)) t(i)
    """)


def with_ab_test(scenarios: list) -> list:
    """The built-in scenarios with an A/B test on the F2 thank-you (three variants: the step, another
    template, LINE), so that the timed selection assigns variants in SQL as a shop running tests would."""
    out = []
    for s in scenarios:
        if s.id == "f2_standard":
            first = s.steps[0]
            variants = [Variant(id="a", weight=50), Variant(id="b", weight=30, template="f2_usage_guide"),
                        Variant(id="c", weight=20, channel="line", template="cart_reminder_line")]
            s = s.model_copy(update={"steps": [first.model_copy(update={"variants": variants}), *s.steps[1:]]})
        out.append(s)
    return out


def timed(fn, *args):
    started = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - started, value


def bench(customers: int) -> dict:
    work = BENCH_DIR / "data" / f"campaigns-{customers}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    settings = Settings(home=BENCH_DIR.parent, data_dir=work)
    scenarios = with_ab_test(load_scenarios())
    scenarios.append(Scenario.model_validate(BENCH_JOURNEY, context={"template_dirs": [TEMPLATE_DIR]}))
    con = duckdb.connect(str(settings.warehouse))
    build_seconds, _ = timed(build_shop, con, customers)
    sizes = {t: con.execute(f"select count(*) from {t}").fetchone()[0]
             for t in ("marts.dim_customers", "marts.fct_orders", "raw.carts")}
    baseline, _ = timed(lambda: [con.execute(
        f"select stage, count(*), sum(order_count) from {t} group by all").fetchall()
        for t in ("marts.dim_customers",)] + [con.execute(
        "select rfm_segment, count(*) from marts.campaign_audience group by all").fetchall()])
    ledger.attach(con, settings.ledger)
    seed_journey_history(con, settings)
    sizes["raw.message_events"] = con.execute("select count(*) from raw.message_events").fetchone()[0]

    def selection():
        sql, params = plan_query(con, settings, scenarios, RUN_DATE, None)
        return con.execute(f"select status, count(*) from ({sql}) group by all order by all", params).fetchall()

    selection_seconds, by_status = timed(selection)
    night1 = CampaignResult(RUN_DATE)
    plan1_seconds, _ = timed(plan, con, settings, scenarios, RUN_DATE, night1)
    again = CampaignResult(RUN_DATE)
    rerun_seconds, _ = timed(plan, con, settings, scenarios, RUN_DATE, again)
    night2 = CampaignResult(RUN_DATE + timedelta(days=1))
    plan2_seconds, _ = timed(plan, con, settings, scenarios, RUN_DATE + timedelta(days=1), night2)
    con.close()
    return {
        "customers": customers, **{f"rows_{k}": v for k, v in sizes.items()},
        "scenarios": len(scenarios), "steps": sum(len(s.steps) for s in scenarios),
        "build_shop_seconds": build_seconds, "baseline_scan_seconds": baseline,
        "selection_seconds": selection_seconds, "plan_night1_seconds": plan1_seconds,
        "rerun_night1_seconds": rerun_seconds, "plan_night2_seconds": plan2_seconds,
        "selection_vs_scan": selection_seconds / baseline if baseline else None,
        "conditions": sum(1 for s in scenarios for st in s.steps if st.only_if),
        "night1_rows_by_status": dict(by_status), "night1_planned": sum(night1.planned.values()),
        "rerun_new_rows": sum(again.recorded.values()), "night2_planned": sum(night2.planned.values()),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.campaigns", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="synthetic shop sizes (default: 100000 1000000)")
    args = parser.parse_args()
    report = [bench(n) for n in args.customers]
    header = ["customers", "fct_orders", "scan s", "select s", "plan n1 s", "rerun s", "plan n2 s", "x scan",
              "planned n1", "planned n2", "peak MiB"]
    print("  ".join(f"{h:>11}" for h in header))
    for r in report:
        cells = [f"{r['customers']:,}", f"{r['rows_marts.fct_orders']:,}", f"{r['baseline_scan_seconds']:.3f}",
                 f"{r['selection_seconds']:.2f}", f"{r['plan_night1_seconds']:.2f}", f"{r['rerun_night1_seconds']:.2f}",
                 f"{r['plan_night2_seconds']:.2f}", f"{r['selection_vs_scan']:.0f}x", f"{r['night1_planned']:,}",
                 f"{r['night2_planned']:,}", f"{r['peak_rss_mib']:.0f}"]
        print("  ".join(f"{c:>11}" for c in cells))
    for r in report:
        print(f"{r['customers']:,} customers, {r['steps']} steps in {r['scenarios']} scenarios "
              f"({r['conditions']} with a condition; {r['rows_raw.message_events']:,} message events); "
              "night 1 rows by status: "
              f"{r['night1_rows_by_status']}; re-run new rows: {r['rerun_new_rows']}")
    out = BENCH_DIR / "results" / f"campaigns-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()

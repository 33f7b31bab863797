-- The lower bound for the modelling stage: the same mart computations as one hand-written
-- DuckDB script over the raw tables, no orchestration, no tests, no views in between.
-- `{run_date}` is replaced by the bench (the "as of" day, like dbt's var run_date).
-- Results go to the temp schema: the warehouse is opened read-only and left untouched.
--
-- Computed: counted orders with purchase sequence and acquisition medium (fct_orders),
-- per-customer RFM (customer_rfm), monthly cohort retention (cohort_retention_monthly),
-- LTV by acquisition medium and horizon with unit cost and ad spend (ltv_by_media),
-- new vs existing revenue per month (revenue_new_vs_existing_monthly) and F2 conversion
-- at 30/60/90 days (f2_conversion). Fulfilment costs (a three-row seed) are left out.

create temp table b_orders as
with counted as (
    select order_id, customer_id, ordered_at, cast(ordered_at as date) as ordered_date, total as revenue
    from raw.orders
    where status = 'confirmed' and total > 0
),
acquisition as (
    select customer_id, arg_min(media_code, (ordered_at, order_id)) as acquisition_media_code
    from raw.orders where media_code is not null group by customer_id
),
line_costs as (
    select l.order_id, sum(l.quantity * p.unit_cost) as unit_cost
    from raw.order_lines l left join raw.products p using (product_id)
    group by l.order_id
)
select c.*, row_number() over (partition by c.customer_id order by c.ordered_at, c.order_id) as seq,
       coalesce(a.acquisition_media_code, '(none)') as media, lc.unit_cost
from counted c
left join acquisition a using (customer_id)
left join line_costs lc using (order_id);

create temp table b_customers as
select customer_id,
       min(ordered_date) as first_order_date,
       cast(date_trunc('month', min(ordered_date)) as date) as cohort_month,
       any_value(media) as media,
       min(case when seq = 2 then ordered_date end) as second_order_date,
       max(ordered_date) as last_order_date,
       count(*) as frequency,
       sum(revenue) as monetary
from b_orders group by customer_id;

create temp table b_rfm as
select customer_id,
       date_diff('day', last_order_date, date '{run_date}') as recency_days, frequency, monetary,
       5 - ((recency_days >= 30)::int + (recency_days >= 90)::int + (recency_days >= 180)::int + (recency_days >= 365)::int) as r,
       1 + (frequency >= 2)::int + (frequency >= 3)::int + (frequency >= 5)::int + (frequency >= 10)::int as f,
       1 + (monetary >= 5000)::int + (monetary >= 15000)::int + (monetary >= 30000)::int + (monetary >= 60000)::int as m,
       r::varchar || f::varchar || m::varchar as rfm_code,
       case when r <= 2 then 'dormant' when r = 3 and f >= 3 then 'at_risk' when r = 3 then 'needs_attention'
            when f >= 3 then 'loyal' when f = 2 then 'promising' else 'new' end as rfm_segment
from b_customers;

create temp table b_order_cohorts as
select o.customer_id, o.revenue, o.unit_cost, o.ordered_date,
       cast(date_trunc('month', o.ordered_date) as date) as order_month,
       c.cohort_month, c.first_order_date, c.media,
       date_diff('month', c.cohort_month, cast(date_trunc('month', o.ordered_date) as date)) as months_since
from b_orders o join b_customers c using (customer_id);

create temp table b_cohort_retention as
with sizes as (select cohort_month, count(*) as cohort_size from b_customers group by all),
buyers as (select distinct cohort_month, months_since, customer_id from b_order_cohorts),
bought as (
    select b.cohort_month, b.months_since, count(*) as customers_bought, count(n.customer_id) as bought_next_month
    from buyers b left join buyers n on n.customer_id = b.customer_id and n.months_since = b.months_since + 1
    group by all
),
cells as (
    select s.cohort_month, s.cohort_size, k.n as months_since
    from sizes s, range(0, 1000) k(n)
    where k.n <= date_diff('month', s.cohort_month, cast(date_trunc('month', date '{run_date}') as date))
)
select cells.*, coalesce(customers_bought, 0) as customers_bought,
       coalesce(customers_bought, 0) / cohort_size as retention_rate,
       bought_next_month / nullif(customers_bought, 0) as next_month_repurchase_rate
from cells left join bought using (cohort_month, months_since);

create temp table b_ltv_by_media as
with horizons(horizon, months) as (values ('3m', 3), ('6m', 6), ('12m', 12), ('lifetime', null)),
cohort_customers as (select media, cohort_month, count(*) as new_customers from b_customers group by all),
in_horizon as (
    select h.horizon, o.media, o.cohort_month, count(*) as purchases, sum(o.revenue) as revenue,
           sum(coalesce(o.unit_cost, 0)) as unit_cost
    from b_order_cohorts o cross join horizons h
    where h.months is null or o.ordered_date < o.first_order_date + to_months(h.months)
    group by all
),
mature as (
    select c.media, c.cohort_month, h.horizon, h.months
    from cohort_customers c cross join horizons h
    where h.months is null or c.cohort_month + to_months(h.months + 1) <= date '{run_date}'
),
spend as (select media_code as media, spend_month as cohort_month, sum(amount) as ad_spend from raw.ad_spend group by all)
select m.media, m.horizon, count(*) as cohorts, sum(coalesce(cc.new_customers, 0)) as new_customers,
       sum(coalesce(i.purchases, 0)) as purchases, sum(coalesce(i.revenue, 0)) as revenue,
       sum(coalesce(i.unit_cost, 0)) as unit_cost, sum(coalesce(s.ad_spend, 0)) as ad_spend,
       sum(coalesce(i.revenue, 0)) / nullif(sum(coalesce(cc.new_customers, 0)), 0) as ltv,
       sum(coalesce(s.ad_spend, 0)) / nullif(sum(coalesce(cc.new_customers, 0)), 0) as cpa
from mature m
left join cohort_customers cc using (media, cohort_month)
left join in_horizon i using (media, cohort_month, horizon)
left join spend s using (media, cohort_month)
group by all;

create temp table b_revenue_new_vs_existing as
select order_month,
       count(distinct customer_id) filter (where order_month = cohort_month) as new_customers,
       coalesce(sum(revenue) filter (where order_month = cohort_month), 0) as new_customer_revenue,
       count(distinct customer_id) filter (where order_month <> cohort_month) as existing_customers,
       coalesce(sum(revenue) filter (where order_month <> cohort_month), 0) as existing_customer_revenue,
       sum(revenue) as total_revenue
from b_order_cohorts group by order_month;

create temp table b_f2_conversion as
select c.cohort_month, c.media, w.days as window_days, count(*) as first_time_buyers,
       count(*) filter (where c.first_order_date + w.days <= date '{run_date}') as eligible,
       count(*) filter (where c.first_order_date + w.days <= date '{run_date}'
                        and date_diff('day', c.first_order_date, c.second_order_date) <= w.days) as converted
from b_customers c cross join (values (30), (60), (90)) w(days)
group by all;

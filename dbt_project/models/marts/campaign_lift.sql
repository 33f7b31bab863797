{%- set as_of = as_of_date(var('run_date')) -%}
{%- set window_days = conversion_window_days() -%}
{%- set min_group = var('lift_min_group_size', 30) | int -%}

with

sends as (

    select * from {{ ref('stg_campaigns__sends') }}

),

treated as (

    -- Customers the scenario reached: at least one message sent; measured from the first.
    select scenario_id, goal, customer_id, min(send_date) as reference_date
    from sends
    where status = 'sent'
    group by scenario_id, goal, customer_id

),

holdout as (

    -- The control group: customers held out (status held_out) and never sent to by this
    -- scenario; measured from the date they would first have been sent to.
    select h.scenario_id, h.goal, h.customer_id, min(h.send_date) as reference_date
    from sends h
    where h.status = 'held_out'
        and not exists (select 1 from treated t
                        where t.scenario_id = h.scenario_id and t.customer_id = h.customer_id)
    group by h.scenario_id, h.goal, h.customer_id

),

customers as (

    select *, 'treated' as arm from treated
    union all
    select *, 'holdout' as arm from holdout

),

orders as (

    select customer_id, ordered_date, purchase_sequence_number, order_kind, delivery_number
    from {{ ref('fct_orders') }}

),

outcomes as (

    -- A join and a count rather than a correlated `exists` in the select list: Spark cannot decorrelate
    -- that one (its range and goal conditions on the outer row); one row per customer of `customers`.
    select
        c.scenario_id,
        c.customer_id,
        c.arm,
        c.reference_date + {{ window_days }} > {{ as_of }} as is_window_open,
        count(o.customer_id) > 0 as is_converted

    from customers c
    left join orders o
        on o.customer_id = c.customer_id
        and o.ordered_date between c.reference_date and c.reference_date + {{ window_days }}
        and {{ order_meets_goal('c.goal') }}
    group by c.scenario_id, c.goal, c.customer_id, c.reference_date, c.arm

),

arms as (

    select
        scenario_id,
        count(case when arm = 'treated' then 1 end) as treated_customers,
        count(case when arm = 'treated' and is_converted then 1 end) as treated_converted,
        count(case when arm = 'holdout' then 1 end) as holdout_customers,
        count(case when arm = 'holdout' and is_converted then 1 end) as holdout_converted,
        count(case when is_window_open then 1 end) as customers_in_open_window

    from outcomes
    group by scenario_id

),

rates as (

    select
        *,
        cast(treated_converted as {{ type_double() }}) / nullif(treated_customers, 0) as treated_conversion_rate,
        cast(holdout_converted as {{ type_double() }}) / nullif(holdout_customers, 0) as holdout_conversion_rate

    from arms

),

lift as (

    select
        *,
        treated_conversion_rate - holdout_conversion_rate as absolute_lift,
        sqrt(
            treated_conversion_rate * (1 - treated_conversion_rate) / treated_customers
            + holdout_conversion_rate * (1 - holdout_conversion_rate) / holdout_customers
        ) as lift_standard_error

    from rates

)

select
    scenario_id,
    treated_customers,
    treated_converted,
    treated_conversion_rate,
    holdout_customers,
    holdout_converted,
    holdout_conversion_rate,
    absolute_lift,
    absolute_lift / nullif(holdout_conversion_rate, 0) as relative_lift,
    lift_standard_error,
    absolute_lift - 1.96 * lift_standard_error as lift_ci_low,
    absolute_lift + 1.96 * lift_standard_error as lift_ci_high,
    customers_in_open_window,
    case
        when treated_customers < {{ min_group }} or holdout_customers < {{ min_group }}
            then 'too few to tell'
        when absolute_lift - 1.96 * lift_standard_error <= 0
            and absolute_lift + 1.96 * lift_standard_error >= 0
            then 'not significant'
    end as lift_warning

from lift

{#- A/B test results per step and variant, each variant against the step's control (the first variant).
    Portable SQL (DuckDB, PostgreSQL, Spark): no count_if / bool_or, no casts to engine-specific types.
    The statistics (docs/ab-tests.md and the model's yml):
      p = converted ÷ sent per variant; difference = p_variant − p_control;
      SE = √(p_c(1 − p_c)/n_c + p_v(1 − p_v)/n_v) (two proportions, unpooled normal); 95 % CI = diff ± 1.96 SE;
      required sends per variant to detect the observed difference at 80 % power, alpha 0.05 two-sided
      (Bonferroni-divided by the step's number of comparisons): (z_alpha + z_0.80)² (p_c(1−p_c) + p_v(1−p_v)) ÷ diff²;
      verdict: '<winner> wins' only when |diff| > z_alpha × SE AND both arms have reached the required
      sends; else 'no difference yet'. The second condition (|z| ≳ z_alpha + 0.84 ≈ 2.8 for two arms)
      keeps a marketer who looks every night from crowning noise. -#}
{%- set as_of = as_of_date(var('run_date')) -%}
{%- set window_days = conversion_window_days() -%}
{%- set z_power = 0.841621 -%}

with

sends as (

    select
        s.send_id,
        s.scenario_id,
        s.step_id,
        s.channel,
        s.customer_id,
        s.send_date,
        s.goal,
        v.variant,
        v.control_variant

    from {{ ref('stg_campaigns__sends') }} s
    join {{ ref('stg_campaigns__send_variants') }} v on v.send_id = s.send_id
    where s.status = 'sent'

),

send_events as (

    select
        send_id,
        max(case when event_type = 'open' then 1 else 0 end) as was_opened,
        max(case when event_type = 'click' then 1 else 0 end) as was_clicked

    from {{ ref('stg_campaigns__message_events') }}
    group by send_id

),

orders as (

    select customer_id, ordered_date, revenue, purchase_sequence_number, order_kind, delivery_number
    from {{ ref('fct_orders') }}

),

send_orders as (

    -- Orders of the send's customer within the conversion window: an inner equi-join first (a hash join
    -- on every engine), the goal rule applied after it.
    select s.send_id, s.goal, o.revenue, o.purchase_sequence_number, o.order_kind, o.delivery_number
    from sends s
    join orders o on o.customer_id = s.customer_id
    where o.ordered_date between s.send_date and s.send_date + {{ window_days }}

),

send_conversions as (

    -- The goal rule of campaign_performance (macro order_meets_goal).
    select send_id, 1 as is_converted, sum(revenue) as conversion_revenue
    from send_orders o
    where {{ order_meets_goal('o.goal') }}
    group by send_id

),

per_variant as (

    select
        s.scenario_id,
        s.step_id,
        s.variant,
        max(s.control_variant) as control_variant,
        min(s.channel) as channel,
        count(*) as sent_count,
        sum(case when s.channel = 'email' then 1 else 0 end) as email_sent_count,
        cast(sum(coalesce(e.was_opened, 0)) as bigint) as opened_events,
        cast(sum(coalesce(e.was_clicked, 0)) as bigint) as clicked_events,
        cast(sum(coalesce(c.is_converted, 0)) as bigint) as converted_count,
        cast(sum(coalesce(c.conversion_revenue, 0)) as bigint) as conversion_revenue,
        cast(sum(case when s.send_date + {{ window_days }} > {{ as_of }} then 1 else 0 end) as bigint) as sends_in_open_window

    from sends s
    left join send_conversions c on c.send_id = s.send_id
    left join send_events e on e.send_id = s.send_id
    group by s.scenario_id, s.step_id, s.variant

),

per_step as (

    -- Comparisons per step (every variant but the control against it): the Bonferroni divisor.
    select scenario_id, step_id, count(*) - 1 as comparisons
    from per_variant
    group by scenario_id, step_id

),

paired as (

    select
        v.*,
        1.0 * v.converted_count / v.sent_count as conversion_rate,
        c.sent_count as control_sent_count,
        1.0 * c.converted_count / c.sent_count as control_conversion_rate,
        -- z of alpha 0.05 two-sided, Bonferroni-divided by the comparisons (at most 4: five variants)
        case
            when st.comparisons <= 1 then 1.959964
            when st.comparisons = 2 then 2.241403
            when st.comparisons = 3 then 2.393980
            when st.comparisons = 4 then 2.497705
            else 2.575829
        end as z_alpha

    from per_variant v
    join per_step st on st.scenario_id = v.scenario_id and st.step_id = v.step_id
    left join per_variant c
        on c.scenario_id = v.scenario_id and c.step_id = v.step_id and c.variant = v.control_variant

),

compared as (

    select
        p.*,
        case when p.variant <> p.control_variant then p.conversion_rate - p.control_conversion_rate end
            as rate_difference,
        case when p.variant <> p.control_variant then sqrt(
            p.conversion_rate * (1 - p.conversion_rate) / p.sent_count
            + p.control_conversion_rate * (1 - p.control_conversion_rate) / p.control_sent_count
        ) end as difference_standard_error,
        case when p.variant <> p.control_variant then ceil(
            (p.z_alpha + {{ z_power }}) * (p.z_alpha + {{ z_power }})
            * (p.conversion_rate * (1 - p.conversion_rate)
               + p.control_conversion_rate * (1 - p.control_conversion_rate))
            / nullif((p.conversion_rate - p.control_conversion_rate) * (p.conversion_rate - p.control_conversion_rate), 0)
        ) end as required_per_variant

    from paired p

)

select
    scenario_id,
    step_id,
    variant,
    control_variant,
    variant = control_variant as is_control,
    channel,
    sent_count,
    case when email_sent_count > 0 then opened_events end as opened_count,
    case when email_sent_count > 0 then clicked_events end as clicked_count,
    converted_count,
    conversion_rate,
    conversion_revenue,
    sends_in_open_window,
    control_conversion_rate,
    rate_difference,
    difference_standard_error,
    rate_difference - 1.959964 * difference_standard_error as difference_ci_low,
    rate_difference + 1.959964 * difference_standard_error as difference_ci_high,
    required_per_variant,
    case when required_per_variant is not null then greatest(
        required_per_variant - least(sent_count, control_sent_count), 0) end as still_needed_per_variant,
    case
        when variant = control_variant then null
        when difference_standard_error > 0
            and abs(rate_difference) > z_alpha * difference_standard_error
            and sent_count >= required_per_variant
            and control_sent_count >= required_per_variant
            then case when rate_difference > 0 then variant else control_variant end || ' wins'
        else 'no difference yet'
    end as verdict

from compared

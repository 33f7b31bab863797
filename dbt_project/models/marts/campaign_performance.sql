{%- set as_of = as_of_date(var('run_date')) -%}
{%- set window_days = conversion_window_days() -%}

with

sends as (

    select * from {{ ref('stg_campaigns__sends') }}
    where status = 'sent'

),

send_events as (

    -- One row per send that got any event; each flag counts a send once, however many
    -- times the event came (several opens, several clicks).
    select
        send_id,
        bool_or(event_type = 'delivered') as was_delivered,
        bool_or(event_type = 'open') as was_opened,
        bool_or(event_type = 'click') as was_clicked

    from {{ ref('stg_campaigns__message_events') }}
    group by send_id

),

orders as (

    select order_id, customer_id, ordered_at, ordered_date, revenue, purchase_sequence_number, order_kind,
           delivery_number, media_code, upper(trim(coupon_code)) as coupon_code
    from {{ ref('fct_orders') }}

),

clicks as (

    -- Per send: its SendGrid click events (every click counts in click_count) and the first one.
    select
        send_id,
        count(*) as click_count,
        min(event_at) as first_click_at

    from {{ ref('stg_campaigns__message_events') }}
    where event_type = 'click'
    group by send_id

),

click_orders as (

    -- Orders a tracked link led to, each once per step and send date (an order following clicks of
    -- several steps counts for each, as goal orders do): any counted order of the clicking customer
    -- from the first click through the conversion window after it; or an order whose visit carried
    -- kizuna's UTM parameters (orders.media_code `kizuna_<scenario>`, i.e. utm_source=kizuna and
    -- utm_campaign=<scenario>, as the Shopify source records the first visit) within the window after
    -- a send of that scenario to that customer.
    select distinct
        s.scenario_id,
        s.step_id,
        s.channel,
        s.send_date,
        o.order_id,
        o.revenue

    from sends s
    left join clicks k on k.send_id = s.send_id
    join orders o on o.customer_id = s.customer_id
    where (
            k.first_click_at is not null
            and o.ordered_at >= k.first_click_at
            and o.ordered_date <= cast(k.first_click_at as date) + {{ window_days }}
        )
        or (
            o.media_code = 'kizuna_' || s.scenario_id
            and o.ordered_date between s.send_date and s.send_date + {{ window_days }}
        )

),

click_results as (

    select
        scenario_id,
        step_id,
        channel,
        send_date,
        count(*) as click_through_orders,
        sum(revenue) as click_through_revenue

    from click_orders
    group by scenario_id, step_id, channel, send_date

),

redemptions as (

    -- A unique coupon code counts once, with its first counted order (two orders carrying one code,
    -- e.g. a cart that did not enforce single use, are one redemption).
    select coupon_code, revenue
    from (
        select
            coupon_code,
            revenue,
            row_number() over (partition by coupon_code order by ordered_at, order_id) as order_rank
        from orders
        where coupon_code is not null
    ) ranked
    where order_rank = 1

),

send_coupons as (

    select
        c.send_id,
        r.coupon_code is not null as is_redeemed,
        coalesce(r.revenue, 0) as coupon_revenue

    from {{ ref('stg_campaigns__coupons') }} c
    left join redemptions r on r.coupon_code = c.coupon_code

),

send_conversions as (

    -- Goal orders of the send's customer (the scenario's goal: order_meets_goal) from the send
    -- date to send date + window. An order is counted for every send it follows: sends of
    -- several steps share it (no attribution model).
    select
        s.send_id,
        count(o.customer_id) > 0 as is_converted,
        coalesce(sum(o.revenue), 0) as conversion_revenue

    from sends s
    left join orders o
        on o.customer_id = s.customer_id
        and o.ordered_date between s.send_date and s.send_date + {{ window_days }}
        and {{ order_meets_goal('s.goal') }}
    group by s.send_id

),

per_send as (

    select
        s.scenario_id,
        s.step_id,
        s.channel,
        s.send_date,
        coalesce(e.was_delivered, false) as was_delivered,
        coalesce(e.was_opened, false) as was_opened,
        coalesce(e.was_clicked, false) as was_clicked,
        s.customer_id,
        coalesce(k.click_count, 0) as click_count,
        c.is_converted,
        c.conversion_revenue,
        coalesce(sc.is_redeemed, false) as is_redeemed,
        coalesce(sc.coupon_revenue, 0) as coupon_revenue

    from sends s
    left join send_events e on e.send_id = s.send_id
    join send_conversions c on c.send_id = s.send_id
    left join clicks k on k.send_id = s.send_id
    left join send_coupons sc on sc.send_id = s.send_id

),

grouped as (

    select
        scenario_id,
        step_id,
        channel,
        send_date,
        count(*) as sent_count,
        count(case when was_delivered then 1 end) as delivered_events,
        count(case when was_opened then 1 end) as opened_events,
        count(case when was_clicked then 1 end) as clicked_events,
        count(distinct case when click_count > 0 then customer_id end) as clicked_customers,
        cast(sum(click_count) as bigint) as click_events_total,
        count(case when is_converted then 1 end) as converted_count,
        sum(conversion_revenue) as conversion_revenue,
        count(case when is_redeemed then 1 end) as redeemed_coupons,
        sum(coupon_revenue) as coupon_revenue

    from per_send
    group by scenario_id, step_id, channel, send_date

),

costed as (

    select
        g.*,
        cast(g.sent_count * c.cost_per_message as decimal(18, 2)) as channel_cost,
        coalesce(r.click_through_orders, 0) as click_through_orders,
        coalesce(r.click_through_revenue, 0) as click_through_revenue

    from grouped g
    left join {{ ref('channel_costs') }} c on c.channel = g.channel
    left join click_results r
        on r.scenario_id = g.scenario_id and r.step_id = g.step_id and r.channel = g.channel
        and r.send_date = g.send_date

)

select
    scenario_id,
    step_id,
    channel,
    send_date,
    sent_count,
    -- Delivery, open and click come from SendGrid's webhook: known for e-mail only.
    case when channel = 'email' then delivered_events end as delivered_count,
    case when channel = 'email' then opened_events end as opened_count,
    case when channel = 'email' then clicked_events end as clicked_count,
    case when channel = 'email' then clicked_customers end as clicked_customers,
    case when channel = 'email' then click_events_total end as click_count,
    click_through_orders,
    cast(click_through_revenue as bigint) as click_through_revenue,
    redeemed_coupons,
    cast(coupon_revenue as bigint) as coupon_revenue,
    converted_count,
    cast(converted_count as {{ type_double() }}) / sent_count as conversion_rate,
    cast(conversion_revenue as bigint) as conversion_revenue,
    channel_cost,
    cast(channel_cost / nullif(converted_count, 0) as decimal(18, 2)) as cost_per_conversion,
    cast((conversion_revenue - channel_cost) / nullif(channel_cost, 0) as {{ type_double() }}) as return_on_cost,
    send_date + {{ window_days }} <= {{ as_of }} as is_window_complete

from costed

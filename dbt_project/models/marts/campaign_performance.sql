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

    select customer_id, ordered_date, revenue, purchase_sequence_number, order_kind, delivery_number
    from {{ ref('fct_orders') }}

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
        c.is_converted,
        c.conversion_revenue

    from sends s
    left join send_events e on e.send_id = s.send_id
    join send_conversions c on c.send_id = s.send_id

),

grouped as (

    select
        scenario_id,
        step_id,
        channel,
        send_date,
        count(*) as sent_count,
        count_if(was_delivered) as delivered_events,
        count_if(was_opened) as opened_events,
        count_if(was_clicked) as clicked_events,
        count_if(is_converted) as converted_count,
        sum(conversion_revenue) as conversion_revenue

    from per_send
    group by scenario_id, step_id, channel, send_date

),

costed as (

    select
        g.*,
        cast(g.sent_count * c.cost_per_message as decimal(18, 2)) as channel_cost

    from grouped g
    left join {{ ref('channel_costs') }} c on c.channel = g.channel

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
    converted_count,
    cast(converted_count as double) / sent_count as conversion_rate,
    cast(conversion_revenue as bigint) as conversion_revenue,
    channel_cost,
    cast(channel_cost / nullif(converted_count, 0) as decimal(18, 2)) as cost_per_conversion,
    cast((conversion_revenue - channel_cost) / nullif(channel_cost, 0) as double) as return_on_cost,
    send_date + {{ window_days }} <= {{ as_of }} as is_window_complete

from costed

{%- set as_of = as_of_date(var('run_date')) -%}

with

subscriptions as (

    select * from {{ ref('stg_shop__subscriptions') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

deliveries as (

    select
        subscription_id,
        max(delivery_number) as deliveries_reached

    from orders
    where order_kind = 'subscription'
        and subscription_id is not null
        and delivery_number is not null
    group by subscription_id

),

delivery_numbers as (

    {{ integer_series(9999) }}

),

subscription_deliveries as (

    select
        delivery_numbers.n as delivery_number,
        subscriptions.subscription_id,
        cast(
            {{ dbt.dateadd('day', '(delivery_numbers.n - 1) * subscriptions.interval_days', 'subscriptions.started_at') }}
            as date
        ) <= {{ as_of }} as is_due,
        coalesce(deliveries.deliveries_reached, 0) >= delivery_numbers.n as is_reached

    from subscriptions
    left join deliveries
        on subscriptions.subscription_id = deliveries.subscription_id
    cross join delivery_numbers
    where delivery_numbers.n between 1 and (select coalesce(max(deliveries_reached), 0) + 1 from deliveries)
        and cast(subscriptions.started_at as date) <= {{ as_of }}

),

final as (

    select
        delivery_number,
        cast(sum(case when is_due then 1 else 0 end) as {{ dbt.type_bigint() }}) as subscriptions_due,
        cast(sum(case when is_due and is_reached then 1 else 0 end) as {{ dbt.type_bigint() }}) as subscriptions_reached,
        {{ safe_ratio(
            'sum(case when is_due and is_reached then 1 else 0 end)',
            'sum(case when is_due then 1 else 0 end)'
        ) }} as survival_rate,
        {{ as_of }} as as_of_date

    from subscription_deliveries
    group by delivery_number

)

select * from final

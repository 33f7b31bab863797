{%- set as_of = as_of_date(var('run_date')) -%}
{%- set personal_columns = [
    'last_name', 'first_name', 'last_name_kana', 'first_name_kana', 'gender', 'birth_date',
    'email', 'line_user_id', 'phone', 'postal_code', 'prefecture', 'city', 'address_line',
] -%}
{%- set channels = ['email', 'line', 'sms', 'dm', 'phone'] -%}

with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

orders as (

    -- Only the columns used: DuckDB materializes a CTE read twice, and fct_orders is wide.
    select
        customer_id,
        order_id,
        purchase_sequence_number,
        ordered_date,
        revenue,
        order_kind,
        acquisition_media_code,
        shipped_at,
        delivered_at

    from {{ ref('fct_orders') }}

),

subscriptions as (

    select * from {{ ref('stg_shop__subscriptions') }}

),

consents as (

    select * from {{ ref('int_customer_consents_pivoted') }}

),

customer_orders as (

    select
        customer_id,
        count(*) as order_count,
        min(ordered_date) as first_order_date,
        max(ordered_date) as last_order_date,
        sum(revenue) as total_revenue

    from orders
    group by customer_id

),

first_orders as (

    select
        customer_id,
        order_id as first_order_id,
        order_kind as first_order_kind,
        acquisition_media_code,
        shipped_at as first_shipped_at,
        delivered_at as first_delivered_at

    from orders
    where purchase_sequence_number = 1

),

ranked_subscriptions as (

    select
        customer_id,
        subscription_id,
        subscription_status,
        row_number() over (
            partition by customer_id
            order by started_at desc, subscription_id desc
        ) as recency_rank

    from subscriptions

),

latest_subscriptions as (

    select
        customer_id,
        subscription_id,
        subscription_status

    from ranked_subscriptions
    where recency_rank = 1

),

customers_measured as (

    select
        customers.*,
        customers.deleted_at is not null as is_erased,
        {{ as_of }} as as_of_date,
        {{ age_in_years('customers.birth_date', as_of) }} as age,
        coalesce(customer_orders.order_count, 0) as order_count,
        customer_orders.first_order_date,
        customer_orders.last_order_date,
        cast(
            {{ dbt.datediff('customer_orders.last_order_date', as_of, 'day') }}
            as {{ dbt.type_int() }}
        ) as days_since_last_order,
        coalesce(customer_orders.total_revenue, 0) as total_revenue,
        first_orders.first_order_id,
        first_orders.first_order_kind,
        first_orders.acquisition_media_code,
        first_orders.first_shipped_at,
        first_orders.first_delivered_at,
        latest_subscriptions.subscription_id as latest_subscription_id,
        coalesce(latest_subscriptions.subscription_status, 'none') as subscription_status,
        {%- for channel in channels %}
        coalesce(consents.has_{{ channel }}_consent, false) as has_{{ channel }}_consent,
        {%- endfor %}
        customers.deleted_at as erased_at

    from customers
    left join customer_orders
        on customers.customer_id = customer_orders.customer_id
    left join first_orders
        on customers.customer_id = first_orders.customer_id
    left join latest_subscriptions
        on customers.customer_id = latest_subscriptions.customer_id
    left join consents
        on customers.customer_id = consents.customer_id

),

final as (

    select
        customer_id,
        case
            when order_count = 0 then 'prospect'
            when days_since_last_order >= {{ var('dormant_after_days') }} then 'dormant'
            when order_count = 1 then 'initial'
            else 'continuing'
        end as stage,
        order_count,
        first_order_date,
        last_order_date,
        days_since_last_order,
        total_revenue,
        first_order_id,
        first_order_kind,
        acquisition_media_code,
        first_shipped_at,
        first_delivered_at,
        subscription_status,
        latest_subscription_id,
        case when is_erased then null else age end as age,
        case
            when is_erased or age is null then null
            when age < 20 then 'under_20'
            when age < 30 then '20s'
            when age < 40 then '30s'
            when age < 50 then '40s'
            when age < 60 then '50s'
            when age < 70 then '60s'
            else '70+'
        end as age_band,
        {%- for channel in channels %}
        has_{{ channel }}_consent,
        {%- endfor %}
        {%- for column in personal_columns %}
        case when is_erased then null else {{ column }} end as {{ column }},
        {%- endfor %}
        registered_at,
        is_erased,
        erased_at,
        as_of_date

    from customers_measured

)

select * from final

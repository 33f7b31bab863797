{{ config(materialized='incremental', incremental_strategy='replace_customers', on_schema_change='sync_all_columns') }}
-- Incremental by customer (a cancellation renumbers every later purchase of the customer; docs/modelling.md).
-- depends_on: {{ ref('int_changed_customers') }}

with

orders as (

    select * from {{ ref('int_orders_costed') }}
    {{ only_changed_customers() }}

),

shipments as (

    select * from {{ ref('stg_shop__shipments') }}
    {%- if is_incremental() %}
    where order_id in (select order_id from orders)
    {%- endif %}

),

counted_orders as (

    select
        *,
        cast(ordered_at as date) as ordered_date

    from orders
    where order_status = 'confirmed'
        and order_total > 0

),

acquisition_media as (

    -- The medium that brought the customer in: the code on their earliest order that
    -- carries one, whatever became of that order (the ad paid for it even if it was
    -- cancelled; later subscription deliveries carry no code).
    select customer_id, media_code as acquisition_media_code
    from (
        select
            customer_id,
            media_code,
            row_number() over (partition by customer_id order by ordered_at, order_id) as media_rank
        -- The model itself, not the `orders` CTE: a CTE read twice is materialized whole by
        -- DuckDB, which cost 40% of this model's time at 1M customers (bench/).
        from {{ ref('int_orders_costed') }}
        where media_code is not null
        {%- if is_incremental() %}
            and customer_id in (select customer_id from {{ ref('int_changed_customers') }})
        {%- endif %}
    ) ranked_media
    where media_rank = 1

),

order_shipments as (

    select
        order_id,
        min(shipped_at) as shipped_at,
        min(delivered_at) as delivered_at

    from shipments
    group by order_id

),

sequenced as (

    select
        *,
        row_number() over (
            partition by customer_id
            order by ordered_at, order_id
        ) as purchase_sequence_number,
        lag(ordered_date) over (
            partition by customer_id
            order by ordered_at, order_id
        ) as previous_ordered_date

    from counted_orders

),

final as (

    select
        sequenced.order_id,
        sequenced.customer_id,
        sequenced.purchase_sequence_number,
        sequenced.purchase_sequence_number = 1 as is_first_purchase,
        sequenced.ordered_at,
        sequenced.ordered_date,
        sequenced.previous_ordered_date,
        cast(
            {{ dbt.datediff('sequenced.previous_ordered_date', 'sequenced.ordered_date', 'day') }}
            as {{ dbt.type_int() }}
        ) as days_since_previous_purchase,
        sequenced.order_kind,
        sequenced.subscription_id,
        sequenced.delivery_number,
        sequenced.media_code,
        acquisition_media.acquisition_media_code,
        sequenced.coupon_code,
        sequenced.payment_method,
        sequenced.order_total as revenue,
        sequenced.subtotal,
        sequenced.discount_amount,
        sequenced.shipping_fee,
        sequenced.unit_cost,
        sequenced.order_handling_cost,
        sequenced.shipping_cost,
        sequenced.payment_fee,
        sequenced.fulfilment_cost,
        sequenced.cost_is_estimated,
        sequenced.line_count,
        sequenced.unit_count,
        order_shipments.shipped_at,
        order_shipments.delivered_at

    from sequenced
    left join acquisition_media
        on sequenced.customer_id = acquisition_media.customer_id
    left join order_shipments
        on sequenced.order_id = order_shipments.order_id

)

select * from final

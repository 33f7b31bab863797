{{ config(materialized='incremental', incremental_strategy='replace_customers', on_schema_change='sync_all_columns') }}
-- Incremental by customer (macro get_incremental_replace_customers_sql; docs/modelling.md).
-- depends_on: {{ ref('int_changed_customers') }}

with

orders as (

    select * from {{ ref('stg_shop__orders') }}
    {{ only_changed_customers() }}

),

order_lines as (

    select * from {{ ref('stg_shop__order_lines') }}
    {%- if is_incremental() %}
    where order_id in (select order_id from orders)
    {%- endif %}

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

fulfilment_costs as (

    select * from {{ ref('fulfilment_costs') }}

),

fulfilment_cost_periods as (

    -- Each row applies from its valid_from until the next row's. The earliest row also
    -- applies to every day before it (`applies_from` open-ended): an order older than the
    -- cost table is costed with the earliest known costs and flagged `cost_is_estimated`,
    -- never left without a cost (docs block `fulfilment_costs`).
    select
        valid_from,
        case
            when row_number() over (order by valid_from) = 1 then cast('0001-01-01' as date)
            else valid_from
        end as applies_from,
        lead(valid_from) over (order by valid_from) as valid_to,
        order_handling_cost,
        shipping_cost,
        payment_fee

    from fulfilment_costs

),

order_line_costs as (

    select
        order_lines.order_id,
        count(*) as line_count,
        -- bigint, not the 128-bit integer DuckDB sums bigints into (slower in every later model)
        cast(sum(order_lines.quantity) as {{ dbt.type_bigint() }}) as unit_count,
        case
            when count(products.product_id) = count(*)
                then cast(sum(order_lines.quantity * products.unit_cost) as {{ dbt.type_bigint() }})
        end as unit_cost

    from order_lines
    left join products
        on order_lines.product_id = products.product_id
    group by order_lines.order_id

),

final as (

    select
        orders.*,
        coalesce(order_line_costs.line_count, 0) as line_count,
        coalesce(order_line_costs.unit_count, 0) as unit_count,
        order_line_costs.unit_cost,
        -- An empty cost table leaves nothing to estimate from: 0, flagged as estimated.
        coalesce(fulfilment_cost_periods.order_handling_cost, 0) as order_handling_cost,
        coalesce(fulfilment_cost_periods.shipping_cost, 0) as shipping_cost,
        coalesce(fulfilment_cost_periods.payment_fee, 0) as payment_fee,
        coalesce(
            fulfilment_cost_periods.order_handling_cost
                + fulfilment_cost_periods.shipping_cost
                + fulfilment_cost_periods.payment_fee,
            0
        ) as fulfilment_cost,
        coalesce(cast(orders.ordered_at as date) < fulfilment_cost_periods.valid_from, true) as cost_is_estimated

    from orders
    left join order_line_costs
        on orders.order_id = order_line_costs.order_id
    left join fulfilment_cost_periods
        on cast(orders.ordered_at as date) >= fulfilment_cost_periods.applies_from
        and (
            fulfilment_cost_periods.valid_to is null
            or cast(orders.ordered_at as date) < fulfilment_cost_periods.valid_to
        )

)

select * from final

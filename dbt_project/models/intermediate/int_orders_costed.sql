with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

order_lines as (

    select * from {{ ref('stg_shop__order_lines') }}

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

fulfilment_costs as (

    select * from {{ ref('fulfilment_costs') }}

),

fulfilment_cost_periods as (

    select
        valid_from,
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
        fulfilment_cost_periods.order_handling_cost,
        fulfilment_cost_periods.shipping_cost,
        fulfilment_cost_periods.payment_fee,
        fulfilment_cost_periods.order_handling_cost
            + fulfilment_cost_periods.shipping_cost
            + fulfilment_cost_periods.payment_fee as fulfilment_cost

    from orders
    left join order_line_costs
        on orders.order_id = order_line_costs.order_id
    left join fulfilment_cost_periods
        on cast(orders.ordered_at as date) >= fulfilment_cost_periods.valid_from
        and (
            fulfilment_cost_periods.valid_to is null
            or cast(orders.ordered_at as date) < fulfilment_cost_periods.valid_to
        )

)

select * from final

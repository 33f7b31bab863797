{#-
    When each customer's product runs out: per customer and product with a days_per_unit, the
    customer's last counted order of it (fct_orders: confirmed, so cancelled and returned orders
    never count), the units in that order and the day they are used up. Counted from the order
    date, not the delivery: the anchor stays put when the parcel's delivery is reported later,
    and the days in transit are a margin. A new order of the product moves the date (the
    `run_out` scenario anchor, docs/anchors.md).
-#}
with

orders as (

    select order_id, customer_id, ordered_date, ordered_at
    from {{ ref('fct_orders') }}

),

lines as (

    select order_id, product_id, quantity
    from {{ ref('stg_shop__order_lines') }}

),

products as (

    select product_id, days_per_unit
    from {{ ref('stg_shop__products') }}
    where days_per_unit > 0

),

units_per_order as (

    select
        orders.customer_id,
        lines.product_id,
        orders.order_id,
        orders.ordered_date,
        orders.ordered_at,
        sum(lines.quantity) as units

    from orders
    inner join lines
        on orders.order_id = lines.order_id
    inner join products
        on lines.product_id = products.product_id
    group by orders.customer_id, lines.product_id, orders.order_id, orders.ordered_date, orders.ordered_at

),

ranked as (

    select
        *,
        row_number() over (
            partition by customer_id, product_id
            order by ordered_at desc, order_id desc
        ) as recency_rank

    from units_per_order
    where units > 0

),

final as (

    select
        ranked.customer_id,
        ranked.product_id,
        ranked.order_id as last_order_id,
        ranked.ordered_date as last_ordered_date,
        ranked.units,
        products.days_per_unit,
        cast(ranked.units * products.days_per_unit as {{ dbt.type_int() }}) as days_of_supply,
        cast(
            {{ dbt.dateadd('day', 'ranked.units * products.days_per_unit', 'ranked.ordered_date') }}
            as date
        ) as run_out_date

    from ranked
    inner join products
        on ranked.product_id = products.product_id
    where ranked.recency_rank = 1

)

select * from final

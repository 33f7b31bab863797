-- New + existing customer revenue per month must equal the month's revenue in fct_orders.

with

split as (

    select * from {{ ref('revenue_new_vs_existing_monthly') }}

),

orders as (

    select
        cast({{ dbt.date_trunc('month', 'ordered_date') }} as date) as order_month,
        sum(revenue) as revenue

    from {{ ref('fct_orders') }}
    group by 1

)

select
    coalesce(split.order_month, orders.order_month) as order_month,
    split.new_customer_revenue + split.existing_customer_revenue as split_revenue,
    orders.revenue as fct_orders_revenue

from split
full outer join orders
    on split.order_month = orders.order_month
where split.order_month is null
    or orders.order_month is null
    or split.new_customer_revenue + split.existing_customer_revenue <> orders.revenue

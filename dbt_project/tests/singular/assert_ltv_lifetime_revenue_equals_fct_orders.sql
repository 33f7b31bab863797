-- Lifetime LTV covers every counted order exactly once: its revenue and purchases add up to fct_orders.

with

ltv as (

    select
        sum(revenue) as revenue,
        sum(purchases) as purchases,
        sum(new_customers) as customers

    from {{ ref('ltv_by_media') }}
    where horizon = 'lifetime'

),

orders as (

    select
        coalesce(sum(revenue), 0) as revenue,
        count(*) as purchases,
        count(distinct customer_id) as customers

    from {{ ref('fct_orders') }}

)

select *
from ltv
cross join orders
where coalesce(ltv.revenue, 0) <> orders.revenue
    or coalesce(ltv.purchases, 0) <> orders.purchases
    or coalesce(ltv.customers, 0) <> orders.customers

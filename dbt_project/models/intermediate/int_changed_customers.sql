{#-
    The customers whose order-level rows must be computed again tonight (docs/modelling.md).

    The unit is the customer, not the order: a cancellation renumbers the customer's purchases
    and can change their acquisition medium, so every order of a customer with anything new is
    recomputed. "New" is whatever the loader merged after `changed_after` (the newest `_loaded_at`
    the last successful build had modelled, recorded by kizuna.modelling): an order, one of its
    lines or shipments, or a product on one of their lines (its unit cost). Left empty (a full
    refresh, a build by hand) every customer with an order is listed and the incremental models
    are rebuilt whole (macro `get_incremental_replace_customers_sql`).
-#}
{%- set changed_after = var('changed_after') | string | trim -%}

with

orders as (

    select order_id, customer_id, loaded_at from {{ ref('stg_shop__orders') }}

),

{%- if changed_after == '' %}

changed as (

    select distinct customer_id from orders

)

{%- else %}

watermark as (

    select cast('{{ changed_after }}' as {{ dbt.type_timestamp() }}) as changed_after

),

changed_orders as (

    select order_id from orders where loaded_at > (select changed_after from watermark)
    union
    select order_id from {{ ref('stg_shop__order_lines') }}
    where loaded_at > (select changed_after from watermark)
    union
    select order_id from {{ ref('stg_shop__shipments') }}
    where loaded_at > (select changed_after from watermark)
    union
    select order_id from {{ ref('stg_shop__order_lines') }}
    where product_id in (
        select product_id from {{ ref('stg_shop__products') }}
        where loaded_at > (select changed_after from watermark)
    )

),

changed as (

    select distinct orders.customer_id
    from orders
    inner join changed_orders on orders.order_id = changed_orders.order_id

)

{%- endif %}

select customer_id from changed

{{ config(materialized='incremental', incremental_strategy='replace_customers', on_schema_change='sync_all_columns') }}
-- Incremental by customer (each row depends on the customer's first order; docs/modelling.md).
-- depends_on: {{ ref('int_changed_customers') }}

with

orders as (

    -- Only the columns used: DuckDB materializes a CTE read twice, and fct_orders is wide.
    select
        order_id,
        customer_id,
        purchase_sequence_number,
        ordered_date,
        revenue,
        unit_cost,
        fulfilment_cost,
        cost_is_estimated,
        acquisition_media_code

    from {{ ref('fct_orders') }}
    {{ only_changed_customers() }}

),

first_orders as (

    select
        customer_id,
        ordered_date as first_order_date,
        cast({{ dbt.date_trunc('month', 'ordered_date') }} as date) as cohort_month,
        coalesce(acquisition_media_code, '(none)') as acquisition_media_code

    from orders
    where purchase_sequence_number = 1

),

final as (

    select
        orders.order_id,
        orders.customer_id,
        orders.purchase_sequence_number,
        orders.ordered_date,
        cast({{ dbt.date_trunc('month', 'orders.ordered_date') }} as date) as order_month,
        orders.revenue,
        orders.unit_cost,
        orders.fulfilment_cost,
        orders.cost_is_estimated,
        first_orders.first_order_date,
        first_orders.cohort_month,
        first_orders.acquisition_media_code,
        cast(
            {{ dbt.datediff('first_orders.first_order_date', 'orders.ordered_date', 'day') }}
            as {{ dbt.type_int() }}
        ) as days_since_first_order,
        cast(
            {{ dbt.datediff('first_orders.cohort_month', dbt.date_trunc('month', 'orders.ordered_date'), 'month') }}
            as {{ dbt.type_int() }}
        ) as months_since_acquisition

    from orders
    inner join first_orders
        on orders.customer_id = first_orders.customer_id

)

select * from final

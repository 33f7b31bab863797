{{ config(materialized='incremental', incremental_strategy='replace_customers', on_schema_change='sync_all_columns') }}
-- Incremental by customer (one row per customer, from their orders only; docs/modelling.md).
-- depends_on: {{ ref('int_changed_customers') }}

with

orders as (

    select * from {{ ref('int_orders_by_acquisition') }}
    {{ only_changed_customers() }}

),

per_customer as (

    select
        customer_id,
        min(first_order_date) as first_order_date,
        min(cohort_month) as cohort_month,
        min(acquisition_media_code) as acquisition_media_code,
        min(case when purchase_sequence_number = 2 then ordered_date end) as second_order_date,
        max(ordered_date) as last_order_date,
        count(*) as order_count,
        cast(sum(revenue) as {{ dbt.type_bigint() }}) as total_revenue,
        cast(sum(unit_cost) as {{ dbt.type_bigint() }}) as total_unit_cost,
        cast(sum(fulfilment_cost) as {{ dbt.type_bigint() }}) as total_fulfilment_cost

    from orders
    group by customer_id

),

final as (

    select
        customer_id,
        first_order_date,
        cohort_month,
        acquisition_media_code,
        second_order_date,
        cast(
            {{ dbt.datediff('first_order_date', 'second_order_date', 'day') }}
            as {{ dbt.type_int() }}
        ) as days_to_second_purchase,
        last_order_date,
        order_count,
        total_revenue,
        total_unit_cost,
        total_fulfilment_cost

    from per_customer

)

select * from final

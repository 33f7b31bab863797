with

orders as (

    select * from {{ ref('int_orders_by_acquisition') }}

),

classified as (

    select
        order_month,
        customer_id,
        revenue,
        order_month = cohort_month as is_new_customer

    from orders

),

final as (

    select
        order_month,
        count(distinct case when is_new_customer then customer_id end) as new_customers,
        cast(coalesce(sum(case when is_new_customer then revenue end), 0) as {{ dbt.type_bigint() }}) as new_customer_revenue,
        count(distinct case when not is_new_customer then customer_id end) as existing_customers,
        cast(coalesce(sum(case when not is_new_customer then revenue end), 0) as {{ dbt.type_bigint() }}) as existing_customer_revenue,
        count(distinct customer_id) as customers,
        cast(sum(revenue) as {{ dbt.type_bigint() }}) as total_revenue,
        {{ safe_ratio('coalesce(sum(case when not is_new_customer then revenue end), 0)', 'sum(revenue)') }}
            as existing_revenue_share

    from classified
    group by order_month

)

select * from final

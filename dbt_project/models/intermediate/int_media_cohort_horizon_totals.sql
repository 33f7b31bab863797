{%- set as_of = as_of_date(var('run_date')) -%}

with

orders as (

    select * from {{ ref('int_orders_by_acquisition') }}

),

customers as (

    select * from {{ ref('int_customers_acquired') }}

),

ad_spend as (

    select * from {{ ref('stg_shop__ad_spend') }}

),

horizons as (

    {{ ltv_horizons() }}

),

media_months as (

    select acquisition_media_code, cohort_month from customers
    union
    select media_code as acquisition_media_code, spend_month as cohort_month
    from ad_spend
    where spend_month <= {{ as_of }}

),

mature_cells as (

    select
        media_months.acquisition_media_code,
        media_months.cohort_month,
        horizons.horizon,
        horizons.horizon_months

    from media_months
    cross join horizons
    where horizons.horizon_months is null
        or cast({{ dbt.dateadd('month', 'horizons.horizon_months + 1', 'media_months.cohort_month') }} as date)
            <= {{ as_of }}

),

cohort_customers as (

    select
        acquisition_media_code,
        cohort_month,
        count(*) as new_customers

    from customers
    group by acquisition_media_code, cohort_month

),

orders_in_horizon as (

    select
        horizons.horizon,
        orders.acquisition_media_code,
        orders.cohort_month,
        count(*) as purchases,
        sum(orders.revenue) as revenue,
        sum(coalesce(orders.unit_cost, 0)) as unit_cost,
        sum(coalesce(orders.fulfilment_cost, 0)) as fulfilment_cost,
        sum(case when orders.cost_is_estimated then 1 else 0 end) as estimated_cost_orders

    from orders
    cross join horizons
    where horizons.horizon_months is null
        or orders.ordered_date
            < cast({{ dbt.dateadd('month', 'horizons.horizon_months', 'orders.first_order_date') }} as date)
    group by horizons.horizon, orders.acquisition_media_code, orders.cohort_month

),

monthly_spend as (

    select
        media_code as acquisition_media_code,
        spend_month as cohort_month,
        sum(spend_amount) as ad_spend

    from ad_spend
    group by media_code, spend_month

),

final as (

    select
        mature_cells.acquisition_media_code,
        mature_cells.cohort_month,
        mature_cells.horizon,
        mature_cells.horizon_months,
        cast(coalesce(cohort_customers.new_customers, 0) as {{ dbt.type_bigint() }}) as new_customers,
        cast(coalesce(orders_in_horizon.purchases, 0) as {{ dbt.type_bigint() }}) as purchases,
        cast(coalesce(orders_in_horizon.revenue, 0) as {{ dbt.type_bigint() }}) as revenue,
        cast(coalesce(orders_in_horizon.unit_cost, 0) as {{ dbt.type_bigint() }}) as unit_cost,
        cast(coalesce(orders_in_horizon.fulfilment_cost, 0) as {{ dbt.type_bigint() }}) as fulfilment_cost,
        cast(coalesce(orders_in_horizon.estimated_cost_orders, 0) as {{ dbt.type_bigint() }})
            as estimated_cost_orders,
        cast(coalesce(monthly_spend.ad_spend, 0) as {{ dbt.type_bigint() }}) as ad_spend

    from mature_cells
    left join cohort_customers
        on mature_cells.acquisition_media_code = cohort_customers.acquisition_media_code
        and mature_cells.cohort_month = cohort_customers.cohort_month
    left join orders_in_horizon
        on mature_cells.acquisition_media_code = orders_in_horizon.acquisition_media_code
        and mature_cells.cohort_month = orders_in_horizon.cohort_month
        and mature_cells.horizon = orders_in_horizon.horizon
    left join monthly_spend
        on mature_cells.acquisition_media_code = monthly_spend.acquisition_media_code
        and mature_cells.cohort_month = monthly_spend.cohort_month

)

select * from final

with

totals as (

    select * from {{ ref('int_media_cohort_horizon_totals') }}

),

per_media as (

    select
        acquisition_media_code,
        horizon,
        max(horizon_months) as horizon_months,
        count(*) as cohorts,
        min(cohort_month) as first_cohort_month,
        max(cohort_month) as last_cohort_month,
        cast(sum(new_customers) as {{ dbt.type_bigint() }}) as new_customers,
        cast(sum(purchases) as {{ dbt.type_bigint() }}) as purchases,
        cast(sum(revenue) as {{ dbt.type_bigint() }}) as revenue,
        cast(sum(unit_cost) as {{ dbt.type_bigint() }}) as unit_cost,
        cast(sum(fulfilment_cost) as {{ dbt.type_bigint() }}) as fulfilment_cost,
        cast(sum(ad_spend) as {{ dbt.type_bigint() }}) as ad_spend,
        cast(sum(estimated_cost_orders) as {{ dbt.type_bigint() }}) as estimated_cost_orders

    from totals
    group by acquisition_media_code, horizon

),

final as (

    select
        acquisition_media_code,
        horizon,
        horizon_months,
        cohorts,
        first_cohort_month,
        last_cohort_month,
        {{ ltv_metrics() }},
        estimated_cost_orders

    from per_media

)

select * from final

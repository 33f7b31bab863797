with

totals as (

    select * from {{ ref('int_media_cohort_horizon_totals') }}

),

final as (

    select
        acquisition_media_code,
        cohort_month,
        horizon,
        horizon_months,
        {{ ltv_metrics() }},
        estimated_cost_orders

    from totals

)

select * from final

with

totals as (

    select * from {{ ref('int_media_cohort_horizon_totals') }}

),

media as (

    select * from {{ ref('stg_shop__media') }}

),

-- Issue 19: the predicted 12/36-month LTV and profit of the medium (same on each horizon's row).
predictions as (

    select * from {{ ref('customer_predictions_by_media') }}

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
        per_media.acquisition_media_code,
        media.media_name,
        media.media_type,
        per_media.horizon,
        per_media.horizon_months,
        per_media.cohorts,
        per_media.first_cohort_month,
        per_media.last_cohort_month,
        {{ ltv_metrics() }},
        -- Payback: the shortest month horizon whose gross profit (before ad spend) covers the ad spend,
        -- compared on exact sums (the same as break_even_cpo >= cpo before rounding).
        min(case
            when per_media.horizon_months is not null
                and per_media.new_customers > 0
                and per_media.revenue - per_media.unit_cost - per_media.fulfilment_cost >= per_media.ad_spend
                then per_media.horizon_months
        end) over (partition by per_media.acquisition_media_code) as payback_months,
        per_media.estimated_cost_orders,
        predictions.predicted_ltv_12m,
        predictions.predicted_ltv_36m,
        predictions.predicted_profit_12m,
        predictions.predicted_profit_36m

    from per_media
    left join media
        on per_media.acquisition_media_code = media.media_code
    left join predictions
        on per_media.acquisition_media_code = predictions.acquisition_media_code

)

select * from final

with

totals as (

    select * from {{ ref('int_media_cohort_horizon_totals') }}

),

media as (

    select * from {{ ref('stg_shop__media') }}

),

final as (

    select
        totals.acquisition_media_code,
        media.media_name,
        media.media_type,
        totals.cohort_month,
        totals.horizon,
        totals.horizon_months,
        {{ ltv_metrics() }},
        totals.estimated_cost_orders

    from totals
    left join media
        on totals.acquisition_media_code = media.media_code

)

select * from final

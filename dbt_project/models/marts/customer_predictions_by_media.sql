{#-
    Predicted 12- and 36-month LTV and profit per acquisition medium (issue 19): the mean over the
    medium's customers of their predicted LTV from the first order (actual revenue so far within
    the horizon + the model's expected revenue for the months left), so a medium is judged before
    its cohorts are old enough for the historical horizons of ltv_by_media. Profit applies the
    medium's lifetime gross margin (revenue − unit cost − fulfilment cost) and subtracts its CPO,
    as ltv_by_media's profit_per_customer does. Media without a scored customer have no row.
-#}
{%- set margin = safe_ratio('lifetime.revenue - lifetime.unit_cost - lifetime.fulfilment_cost', 'lifetime.revenue') -%}
{%- set cpo = safe_ratio('lifetime.ad_spend', 'lifetime.new_customers') -%}
{#- Predicted profit per customer (a floating-point value: the predictions are): LTV x gross margin - CPO. -#}
{%- set predicted_profit_12m = 'per_media.predicted_ltv_12m * ' ~ margin ~ ' - coalesce(' ~ cpo ~ ', 0)' -%}
{%- set predicted_profit_36m = 'per_media.predicted_ltv_36m * ' ~ margin ~ ' - coalesce(' ~ cpo ~ ', 0)' -%}
with

predictions as (

    select * from {{ ref('customer_predictions') }}
    where model is not null

),

lifetime as (

    select
        acquisition_media_code,
        sum(new_customers) as new_customers,
        sum(revenue) as revenue,
        sum(unit_cost) as unit_cost,
        sum(fulfilment_cost) as fulfilment_cost,
        sum(ad_spend) as ad_spend

    from {{ ref('int_media_cohort_horizon_totals') }}
    where horizon = 'lifetime'
    group by acquisition_media_code

),

per_media as (

    select
        coalesce(acquisition_media_code, '(none)') as acquisition_media_code,
        count(*) as predicted_customers,
        avg(predicted_ltv_12m) as predicted_ltv_12m,
        avg(predicted_ltv_36m) as predicted_ltv_36m

    from predictions
    group by 1

),

final as (

    select
        per_media.acquisition_media_code,
        per_media.predicted_customers,
        {{ round_double('per_media.predicted_ltv_12m', 2) }} as predicted_ltv_12m,
        {{ round_double('per_media.predicted_ltv_36m', 2) }} as predicted_ltv_36m,
        {{ round_ratio('lifetime.revenue - lifetime.unit_cost - lifetime.fulfilment_cost', 'lifetime.revenue', 4) }}
            as gross_margin_ratio,
        {{ round_ratio('lifetime.ad_spend', 'lifetime.new_customers', 2) }} as cpo,
        {{ round_double(predicted_profit_12m, 2) }} as predicted_profit_12m,
        {{ round_double(predicted_profit_36m, 2) }} as predicted_profit_36m

    from per_media
    left join lifetime on lifetime.acquisition_media_code = per_media.acquisition_media_code

)

select * from final

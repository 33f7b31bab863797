{% macro ltv_horizons() -%}
    {#- The LTV horizons as a select: horizon (label), horizon_months (null for lifetime). -#}
    {%- for months in var('ltv_horizons_months') %}
    select '{{ months }}m' as horizon, cast({{ months }} as {{ dbt.type_int() }}) as horizon_months
    union all
    {%- endfor %}
    select 'lifetime' as horizon, cast(null as {{ dbt.type_int() }}) as horizon_months
{%- endmacro %}

{% macro ltv_metrics() -%}
    {#- Per-customer and per-purchase figures from the summed columns of int_media_cohort_horizon_totals. -#}
        new_customers,
        purchases,
        revenue,
        unit_cost,
        fulfilment_cost,
        ad_spend,
        {{ round_ratio('revenue', 'purchases', 2) }} as average_order_value,
        {{ round_ratio('purchases', 'new_customers', 4) }} as average_purchases,
        {{ round_ratio('revenue', 'new_customers', 2) }} as ltv,
        {{ round_ratio('ad_spend', 'new_customers', 2) }} as cpo,
        {{ round_ratio('unit_cost', 'purchases', 2) }} as unit_cost_per_purchase,
        {{ round_ratio('fulfilment_cost', 'purchases', 2) }} as fulfilment_cost_per_purchase,
        {{ round_ratio('revenue - unit_cost - fulfilment_cost - ad_spend', 'new_customers', 2) }}
            as profit_per_customer,
        {#- 限界CPO: the most a new customer may cost to acquire and still break even over the horizon. #}
        {{ round_ratio('revenue - unit_cost - fulfilment_cost', 'new_customers', 2) }} as break_even_cpo
{%- endmacro %}

{%- set as_of = as_of_date(var('run_date')) -%}

with

customers as (

    select * from {{ ref('dim_customers') }}

),

measured as (

    select
        customer_id,
        cast({{ dbt.datediff('last_order_date', as_of, 'day') }} as {{ dbt.type_int() }}) as recency_days,
        order_count as frequency,
        total_revenue as monetary,
        last_order_date,
        {{ as_of }} as as_of_date

    from customers
    where order_count > 0

),

scored as (

    select
        *,
        {{ score_from_cut_points('recency_days', var('rfm_recency_days'), descending=true) }} as recency_score,
        {{ score_from_cut_points('frequency', var('rfm_frequency_orders')) }} as frequency_score,
        {{ score_from_cut_points('monetary', var('rfm_monetary_yen')) }} as monetary_score

    from measured

),

final as (

    select
        customer_id,
        recency_days,
        frequency,
        monetary,
        recency_score,
        frequency_score,
        monetary_score,
        {{ dbt.concat([
            'cast(recency_score as ' ~ dbt.type_string() ~ ')',
            'cast(frequency_score as ' ~ dbt.type_string() ~ ')',
            'cast(monetary_score as ' ~ dbt.type_string() ~ ')',
        ]) }} as rfm_code,
        case
            when recency_score <= 2 then 'dormant'
            when recency_score = 3 and frequency_score >= 3 then 'at_risk'
            when recency_score = 3 then 'needs_attention'
            when frequency_score >= 3 then 'loyal'
            when frequency_score = 2 then 'promising'
            else 'new'
        end as rfm_segment,
        last_order_date,
        as_of_date

    from scored

)

select * from final

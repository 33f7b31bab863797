{%- set as_of = as_of_date(var('run_date')) -%}

with

customers as (

    select * from {{ ref('int_customers_acquired') }}

),

media as (

    select * from {{ ref('stg_shop__media') }}

),

windows as (

    {%- for days in var('f2_windows_days') %}
    select cast({{ days }} as {{ dbt.type_int() }}) as window_days{{ ' union all' if not loop.last }}
    {%- endfor %}

),

customer_windows as (

    select
        customers.cohort_month,
        customers.acquisition_media_code,
        windows.window_days,
        customers.customer_id,
        cast({{ dbt.dateadd('day', 'windows.window_days', 'customers.first_order_date') }} as date)
            <= {{ as_of }} as is_eligible,
        coalesce(customers.days_to_second_purchase <= windows.window_days, false) as is_converted

    from customers
    cross join windows

),

rates as (

    select
        cohort_month,
        acquisition_media_code,
        window_days,
        count(*) as first_time_buyers,
        cast(sum(case when is_eligible then 1 else 0 end) as {{ dbt.type_bigint() }}) as eligible_buyers,
        cast(sum(case when is_eligible and is_converted then 1 else 0 end) as {{ dbt.type_bigint() }}) as converted_buyers,
        {{ safe_ratio(
            'sum(case when is_eligible and is_converted then 1 else 0 end)',
            'sum(case when is_eligible then 1 else 0 end)'
        ) }} as f2_conversion_rate,
        {{ as_of }} as as_of_date

    from customer_windows
    group by cohort_month, acquisition_media_code, window_days

),

final as (

    select
        rates.cohort_month,
        rates.acquisition_media_code,
        media.media_name,
        rates.window_days,
        rates.first_time_buyers,
        rates.eligible_buyers,
        rates.converted_buyers,
        rates.f2_conversion_rate,
        rates.as_of_date

    from rates
    left join media
        on rates.acquisition_media_code = media.media_code

)

select * from final

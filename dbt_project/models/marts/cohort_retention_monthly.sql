{%- set as_of = as_of_date(var('run_date')) -%}

with

orders as (

    select * from {{ ref('int_orders_by_acquisition') }}

),

cohorts as (

    select
        cohort_month,
        count(distinct customer_id) as cohort_size

    from orders
    group by cohort_month

),

month_offsets as (

    {{ integer_series(999) }}

),

cohort_months as (

    select
        cohorts.cohort_month,
        cohorts.cohort_size,
        month_offsets.n as months_since_acquisition

    from cohorts
    cross join month_offsets
    where month_offsets.n <= {{ dbt.datediff('cohorts.cohort_month', dbt.date_trunc('month', as_of), 'month') }}

),

buyers as (

    select distinct
        cohort_month,
        months_since_acquisition,
        customer_id

    from orders

),

bought as (

    select
        buyers.cohort_month,
        buyers.months_since_acquisition,
        count(*) as customers_bought,
        cast(sum(case when next_buyers.customer_id is not null then 1 else 0 end) as {{ dbt.type_bigint() }}) as customers_bought_next_month

    from buyers
    left join buyers as next_buyers
        on buyers.customer_id = next_buyers.customer_id
        and next_buyers.months_since_acquisition = buyers.months_since_acquisition + 1
    group by buyers.cohort_month, buyers.months_since_acquisition

),

final as (

    select
        cohort_months.cohort_month,
        cohort_months.months_since_acquisition,
        cast({{ dbt.dateadd('month', 'cohort_months.months_since_acquisition', 'cohort_months.cohort_month') }} as date) as activity_month,
        cohort_months.cohort_size,
        coalesce(bought.customers_bought, 0) as customers_bought,
        {{ safe_ratio('coalesce(bought.customers_bought, 0)', 'cohort_months.cohort_size') }} as retention_rate,
        case
            when cohort_months.months_since_acquisition
                < {{ dbt.datediff('cohort_months.cohort_month', dbt.date_trunc('month', as_of), 'month') }}
                then coalesce(bought.customers_bought_next_month, 0)
        end as customers_bought_next_month,
        case
            when cohort_months.months_since_acquisition
                < {{ dbt.datediff('cohort_months.cohort_month', dbt.date_trunc('month', as_of), 'month') }}
                then {{ safe_ratio('coalesce(bought.customers_bought_next_month, 0)', 'bought.customers_bought') }}
        end as next_month_repurchase_rate,
        cohort_months.months_since_acquisition
            = {{ dbt.datediff('cohort_months.cohort_month', dbt.date_trunc('month', as_of), 'month') }}
            as is_partial_month,
        {{ as_of }} as as_of_date

    from cohort_months
    left join bought
        on cohort_months.cohort_month = bought.cohort_month
        and cohort_months.months_since_acquisition = bought.months_since_acquisition

)

select * from final

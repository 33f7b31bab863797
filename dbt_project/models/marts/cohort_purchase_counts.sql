with

customers as (

    select * from {{ ref('int_customers_acquired') }}

),

cohorts as (

    select
        cohort_month,
        count(*) as cohort_size,
        max(order_count) as max_order_count

    from customers
    group by cohort_month

),

purchase_counts as (

    {{ integer_series(9999) }}

),

cohort_counts as (

    select
        cohorts.cohort_month,
        cohorts.cohort_size,
        purchase_counts.n as purchase_count

    from cohorts
    cross join purchase_counts
    where purchase_counts.n between 1 and cohorts.max_order_count

),

final as (

    select
        cohort_counts.cohort_month,
        cohort_counts.purchase_count,
        cohort_counts.cohort_size,
        cast(sum(case when customers.order_count = cohort_counts.purchase_count then 1 else 0 end) as {{ dbt.type_bigint() }}) as customers_with_exactly,
        cast(sum(case when customers.order_count >= cohort_counts.purchase_count then 1 else 0 end) as {{ dbt.type_bigint() }}) as customers_with_at_least,
        {{ safe_ratio(
            'sum(case when customers.order_count >= cohort_counts.purchase_count then 1 else 0 end)',
            'cohort_counts.cohort_size'
        ) }} as share_with_at_least

    from cohort_counts
    inner join customers
        on cohort_counts.cohort_month = customers.cohort_month
    group by cohort_counts.cohort_month, cohort_counts.purchase_count, cohort_counts.cohort_size

)

select * from final

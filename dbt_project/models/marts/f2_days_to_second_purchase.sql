{%- set bounds = var('f2_day_buckets') -%}

with

customers as (

    select * from {{ ref('int_customers_acquired') }}

),

buckets as (

    {%- for upper in bounds %}
    select
        {{ loop.index }} as bucket_number,
        '{{ 0 if loop.first else bounds[loop.index0 - 1] + 1 }}-{{ upper }}' as days_bucket,
        {{ 0 if loop.first else bounds[loop.index0 - 1] + 1 }} as min_days,
        {{ upper }} as max_days
    union all
    {%- endfor %}
    select
        {{ bounds | length + 1 }} as bucket_number,
        '{{ bounds[-1] + 1 }}+' as days_bucket,
        {{ bounds[-1] + 1 }} as min_days,
        cast(null as {{ dbt.type_int() }}) as max_days

),

second_purchasers as (

    select
        customer_id,
        days_to_second_purchase

    from customers
    where days_to_second_purchase is not null

),

counted as (

    select
        buckets.bucket_number,
        buckets.days_bucket,
        buckets.min_days,
        buckets.max_days,
        count(second_purchasers.customer_id) as customers

    from buckets
    left join second_purchasers
        on second_purchasers.days_to_second_purchase >= buckets.min_days
        and (buckets.max_days is null or second_purchasers.days_to_second_purchase <= buckets.max_days)
    group by buckets.bucket_number, buckets.days_bucket, buckets.min_days, buckets.max_days

),

final as (

    select
        bucket_number,
        days_bucket,
        min_days,
        max_days,
        customers,
        {{ safe_ratio('customers', 'sum(customers) over ()') }} as share_of_second_purchasers,
        {{ safe_ratio(
            'sum(customers) over (order by bucket_number rows between unbounded preceding and current row)',
            'sum(customers) over ()'
        ) }} as cumulative_share

    from counted

)

select * from final

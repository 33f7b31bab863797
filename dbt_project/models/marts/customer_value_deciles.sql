with

customers as (

    select * from {{ ref('int_customers_acquired') }}

),

ranked as (

    select
        customer_id,
        total_revenue,
        cast(ntile(10) over (order by total_revenue desc, customer_id) as bigint) as value_decile

    from customers

),

per_decile as (

    select
        value_decile,
        count(*) as customers,
        cast(sum(total_revenue) as {{ dbt.type_bigint() }}) as revenue,
        min(total_revenue) as min_customer_revenue,
        max(total_revenue) as max_customer_revenue

    from ranked
    group by value_decile

),

final as (

    select
        value_decile,
        customers,
        revenue,
        min_customer_revenue,
        max_customer_revenue,
        {{ safe_ratio('revenue', 'sum(revenue) over ()') }} as revenue_share,
        {{ safe_ratio(
            'sum(customers) over (order by value_decile rows between unbounded preceding and current row)',
            'sum(customers) over ()'
        ) }} as cumulative_customer_share,
        {{ safe_ratio(
            'sum(revenue) over (order by value_decile rows between unbounded preceding and current row)',
            'sum(revenue) over ()'
        ) }} as cumulative_revenue_share,
        {{ safe_ratio(
            'sum(case when value_decile <= 2 then revenue else 0 end) over ()',
            'sum(revenue) over ()'
        ) }} as top_20_percent_revenue_share

    from per_decile

)

select * from final

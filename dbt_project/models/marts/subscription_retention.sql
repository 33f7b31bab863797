{%- set as_of = as_of_date(var('run_date')) -%}

with

subscriptions as (

    select * from {{ ref('stg_shop__subscriptions') }}

),

month_offsets as (

    {{ integer_series(999) }}

),

started as (

    select
        subscription_id,
        started_at,
        cast({{ dbt.date_trunc('month', 'started_at') }} as date) as start_month,
        case
            when cancelled_at is not null then cancelled_at
            when subscription_status = 'cancelled' then started_at
        end as ended_at

    from subscriptions
    where cast(started_at as date) <= {{ as_of }}

),

subscription_months as (

    select
        started.start_month,
        month_offsets.n as months_since_start,
        started.subscription_id,
        cast({{ dbt.dateadd('month', 'month_offsets.n', 'started.started_at') }} as {{ dbt.type_timestamp() }}) as checked_at,
        started.ended_at

    from started
    cross join month_offsets
    where month_offsets.n <= {{ dbt.datediff('started.start_month', dbt.date_trunc('month', as_of), 'month') }}

),

final as (

    select
        start_month,
        months_since_start,
        count(*) as subscriptions_started,
        cast(sum(case when cast(checked_at as date) <= {{ as_of }} then 1 else 0 end) as {{ dbt.type_bigint() }}) as subscriptions_observed,
        cast(sum(
            case
                when cast(checked_at as date) <= {{ as_of }} and (ended_at is null or ended_at > checked_at)
                    then 1
                else 0
            end
        ) as {{ dbt.type_bigint() }}) as subscriptions_surviving,
        {{ safe_ratio(
            'sum(case when cast(checked_at as date) <= ' ~ as_of ~ ' and (ended_at is null or ended_at > checked_at) then 1 else 0 end)',
            'sum(case when cast(checked_at as date) <= ' ~ as_of ~ ' then 1 else 0 end)'
        ) }} as survival_rate,
        {{ as_of }} as as_of_date

    from subscription_months
    group by start_month, months_since_start

)

select * from final

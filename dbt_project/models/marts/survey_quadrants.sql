{%- set high = var('survey_high_score') -%}

with

responses as (

    select * from {{ ref('stg_shop__survey_responses') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

quadrants as (

    select 1 as quadrant_number, 'satisfied_continuing' as quadrant, true as is_high_satisfaction, true as is_high_intention
    union all
    select 2, 'satisfied_not_continuing', true, false
    union all
    select 3, 'unsatisfied_continuing', false, true
    union all
    select 4, 'unsatisfied_not_continuing', false, false

),

ranked_responses as (

    select
        customer_id,
        satisfaction_score,
        intention_to_continue_score,
        row_number() over (
            partition by customer_id
            order by answered_at desc, survey_response_id desc
        ) as recency_rank

    from responses
    where satisfaction_score is not null
        and intention_to_continue_score is not null

),

respondents as (

    select
        ranked_responses.customer_id,
        ranked_responses.satisfaction_score >= {{ high }} as is_high_satisfaction,
        ranked_responses.intention_to_continue_score >= {{ high }} as is_high_intention,
        coalesce(customers.order_count, 0) as order_count,
        coalesce(customers.total_revenue, 0) as total_revenue

    from ranked_responses
    left join customers
        on ranked_responses.customer_id = customers.customer_id
    where ranked_responses.recency_rank = 1

),

final as (

    select
        quadrants.quadrant_number,
        quadrants.quadrant,
        quadrants.is_high_satisfaction,
        quadrants.is_high_intention,
        count(respondents.customer_id) as customers,
        {{ safe_ratio('count(respondents.customer_id)', 'sum(count(respondents.customer_id)) over ()') }}
            as share_of_respondents,
        cast(coalesce(sum(respondents.order_count), 0) as {{ dbt.type_bigint() }}) as purchases,
        cast(coalesce(sum(respondents.total_revenue), 0) as {{ dbt.type_bigint() }}) as revenue,
        {{ round_ratio('sum(respondents.total_revenue)', 'count(respondents.customer_id)', 2) }} as ltv,
        {{ round_ratio('sum(respondents.order_count)', 'count(respondents.customer_id)', 4) }} as average_purchases

    from quadrants
    left join respondents
        on quadrants.is_high_satisfaction = respondents.is_high_satisfaction
        and quadrants.is_high_intention = respondents.is_high_intention
    group by
        quadrants.quadrant_number,
        quadrants.quadrant,
        quadrants.is_high_satisfaction,
        quadrants.is_high_intention

)

select * from final

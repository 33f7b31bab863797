{#-
    Predictive CLV per customer (issue 19, docs/predictions.md): the scores the nightly prediction
    stage (kizuna/predict/score.py) writes to predict.customer_scores after the marts are built,
    with the customer's medium and a churn-risk band. The stage builds this model again (with
    ltv_by_media) once it has scored; until the first scoring the table does not exist and the
    mart is empty (the campaigns' prediction filters then select nobody).

    Churn-risk band from P(alive): high below 0.3, medium below 0.7, low from 0.7; none without a
    fitted model (a shop too small to fit: the historical marts stand).
-#}
{%- set high_below = 0.3 -%}
{%- set medium_below = 0.7 -%}
{%- set scores = adapter.get_relation(database=target.database, schema='predict', identifier='customer_scores') -%}

with

scores as (

    {% if scores is not none %}
    select * from {{ scores }}
    {% else %}
    select
        cast(null as {{ dbt.type_string() }}) as customer_id, cast(null as {{ dbt.type_string() }}) as model, cast(null as {{ type_double() }}) as p_alive,
        cast(null as {{ type_double() }}) as expected_purchases_90d, cast(null as {{ type_double() }}) as expected_purchases_180d,
        cast(null as {{ type_double() }}) as expected_purchases_365d, cast(null as {{ type_double() }}) as expected_spend_per_order,
        cast(null as {{ type_double() }}) as predicted_clv_12m, cast(null as date) as expected_next_order_date,
        cast(null as {{ type_double() }}) as predicted_ltv_12m, cast(null as {{ type_double() }}) as predicted_ltv_36m,
        cast(null as date) as as_of_date
    where false
    {% endif %}

),

customers as (

    select customer_id, acquisition_media_code, subscription_status
    from {{ ref('dim_customers') }}
    where not coalesce(is_erased, false)

),

final as (

    select
        scores.customer_id,
        customers.acquisition_media_code,
        customers.subscription_status,
        scores.model,
        {{ round_double('scores.p_alive', 4) }} as p_alive,
        case
            when scores.model is null or scores.p_alive is null then null
            when scores.p_alive < {{ high_below }} then 'high'
            when scores.p_alive < {{ medium_below }} then 'medium'
            else 'low'
        end as churn_risk_band,
        {{ round_double('scores.expected_purchases_90d', 4) }} as expected_purchases_90d,
        {{ round_double('scores.expected_purchases_180d', 4) }} as expected_purchases_180d,
        {{ round_double('scores.expected_purchases_365d', 4) }} as expected_purchases_365d,
        {{ round_double('scores.expected_spend_per_order', 0) }} as expected_spend_per_order,
        {{ round_double('scores.predicted_clv_12m', 0) }} as predicted_clv_12m,
        scores.expected_next_order_date,
        {{ round_double('scores.predicted_ltv_12m', 0) }} as predicted_ltv_12m,
        {{ round_double('scores.predicted_ltv_36m', 0) }} as predicted_ltv_36m,
        scores.as_of_date

    from scores
    join customers on customers.customer_id = scores.customer_id

)

select * from final

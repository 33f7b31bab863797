with

source as (

    select * from {{ source('shop', 'survey_responses') }}

),

renamed as (

    select
        cast(response_id as {{ dbt.type_string() }}) as survey_response_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(answered_at as {{ dbt.type_timestamp() }}) as answered_at,
        cast(satisfaction as {{ dbt.type_bigint() }}) as satisfaction_score,
        cast(intention_to_continue as {{ dbt.type_bigint() }}) as intention_to_continue_score,
        cast(comment as {{ dbt.type_string() }}) as comment,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_night as date) as export_date,
        cast(_source_file as {{ dbt.type_string() }}) as source_file,
        cast(_loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed

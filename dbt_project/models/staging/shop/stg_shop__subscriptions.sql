with

source as (

    select * from {{ source('shop', 'subscriptions') }}

),

renamed as (

    select
        cast(subscription_id as {{ dbt.type_string() }}) as subscription_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(product_id as {{ dbt.type_string() }}) as product_id,
        cast(started_at as {{ dbt.type_timestamp() }}) as started_at,
        cast(interval_days as {{ dbt.type_bigint() }}) as interval_days,
        cast(status as {{ dbt.type_string() }}) as subscription_status,
        cast(cancelled_at as {{ dbt.type_timestamp() }}) as cancelled_at,
        cast(cancel_reason as {{ dbt.type_string() }}) as cancel_reason,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_night as date) as export_date,
        cast(_source_file as {{ dbt.type_string() }}) as source_file,
        cast(_loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed

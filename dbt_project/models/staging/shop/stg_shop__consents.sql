with

source as (

    select * from {{ source('shop', 'consents') }}

),

renamed as (

    select
        {{ surrogate_key(['customer_id', 'channel']) }} as consent_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(channel as {{ dbt.type_string() }}) as channel,
        cast(status as {{ dbt.type_string() }}) as consent_status,
        cast(consented_at as {{ dbt.type_timestamp() }}) as consented_at,
        cast(withdrawn_at as {{ dbt.type_timestamp() }}) as withdrawn_at,
        cast(source as {{ dbt.type_string() }}) as consent_source,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_night as date) as export_date,
        cast(_source_file as {{ dbt.type_string() }}) as source_file,
        cast(_loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed

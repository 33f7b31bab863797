with

source as (

    select * from {{ source('shop', 'ad_spend') }}

),

renamed as (

    select
        {{ surrogate_key(['media_code', 'spend_month']) }} as ad_spend_id,
        cast(media_code as {{ dbt.type_string() }}) as media_code,
        cast(spend_month as date) as spend_month,
        cast(amount as {{ dbt.type_bigint() }}) as spend_amount,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_night as date) as export_date,
        cast(_source_file as {{ dbt.type_string() }}) as source_file,
        cast(_loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed

with

source as (

    select * from {{ source('shop', 'media') }}

),

renamed as (

    select
        cast(media_code as {{ dbt.type_string() }}) as media_code,
        cast(media_name as {{ dbt.type_string() }}) as media_name,
        cast(media_type as {{ dbt.type_string() }}) as media_type,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_night as date) as export_date,
        cast(_source_file as {{ dbt.type_string() }}) as source_file,
        cast(_loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed

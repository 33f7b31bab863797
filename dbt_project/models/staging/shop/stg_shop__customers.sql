with

source as (

    select * from {{ source('shop', 'customers') }}

),

renamed as (

    select
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(last_name as {{ dbt.type_string() }}) as last_name,
        cast(first_name as {{ dbt.type_string() }}) as first_name,
        cast(last_name_kana as {{ dbt.type_string() }}) as last_name_kana,
        cast(first_name_kana as {{ dbt.type_string() }}) as first_name_kana,
        cast(gender as {{ dbt.type_string() }}) as gender,
        cast(birth_date as date) as birth_date,
        cast(email as {{ dbt.type_string() }}) as email,
        cast(phone as {{ dbt.type_string() }}) as phone,
        cast(postal_code as {{ dbt.type_string() }}) as postal_code,
        cast(prefecture as {{ dbt.type_string() }}) as prefecture,
        cast(city as {{ dbt.type_string() }}) as city,
        cast(address_line as {{ dbt.type_string() }}) as address_line,
        cast(line_user_id as {{ dbt.type_string() }}) as line_user_id,
        cast(registered_at as {{ dbt.type_timestamp() }}) as registered_at,
        cast(deleted_at as {{ dbt.type_timestamp() }}) as deleted_at,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_night as date) as export_date,
        cast(_source_file as {{ dbt.type_string() }}) as source_file,
        cast(_loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed

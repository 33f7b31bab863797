with

source as (

    select * from {{ source('shop', 'order_lines') }}

),

renamed as (

    select
        cast(order_line_id as {{ dbt.type_string() }}) as order_line_id,
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        cast(product_id as {{ dbt.type_string() }}) as product_id,
        cast(quantity as {{ dbt.type_bigint() }}) as quantity,
        cast(unit_price as {{ dbt.type_bigint() }}) as unit_price,
        cast(line_amount as {{ dbt.type_bigint() }}) as line_amount,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_night as date) as export_date,
        cast(_source_file as {{ dbt.type_string() }}) as source_file,
        cast(_loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed

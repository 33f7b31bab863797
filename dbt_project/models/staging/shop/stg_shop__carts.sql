with

source as (

    select * from {{ source('shop', 'carts') }}

),

renamed as (

    select
        cast(cart_id as {{ dbt.type_string() }}) as cart_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        cast(status as {{ dbt.type_string() }}) as cart_status,
        cast(product_id as {{ dbt.type_string() }}) as product_id,
        cast(quantity as {{ dbt.type_bigint() }}) as quantity,
        cast(amount as {{ dbt.type_bigint() }}) as cart_amount,
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_night as date) as export_date,
        cast(_source_file as {{ dbt.type_string() }}) as source_file,
        cast(_loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed

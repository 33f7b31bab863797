with

source as (

    select * from {{ source('shop', 'products') }}

),

renamed as (

    select
        cast(product_id as {{ dbt.type_string() }}) as product_id,
        cast(sku as {{ dbt.type_string() }}) as sku,
        cast(product_name as {{ dbt.type_string() }}) as product_name,
        cast(product_type as {{ dbt.type_string() }}) as product_type,
        cast(list_price as {{ dbt.type_bigint() }}) as list_price,
        cast(unit_cost as {{ dbt.type_bigint() }}) as unit_cost,
        cast(is_subscription_eligible as {{ dbt.type_boolean() }}) as is_subscription_eligible,
        cast(days_per_unit as {{ dbt.type_bigint() }}) as days_per_unit,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_night as date) as export_date,
        cast(_source_file as {{ dbt.type_string() }}) as source_file,
        cast(_loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed

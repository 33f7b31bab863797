with

source as (

    select * from {{ source('shop', 'shipments') }}

),

renamed as (

    select
        cast(shipment_id as {{ dbt.type_string() }}) as shipment_id,
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        cast(shipped_at as {{ dbt.type_timestamp() }}) as shipped_at,
        cast(delivered_at as {{ dbt.type_timestamp() }}) as delivered_at,
        cast(carrier as {{ dbt.type_string() }}) as carrier,
        cast(tracking_number as {{ dbt.type_string() }}) as tracking_number,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_night as date) as export_date,
        cast(_source_file as {{ dbt.type_string() }}) as source_file,
        cast(_loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed

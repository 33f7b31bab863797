with

source as (

    select * from {{ source('shop', 'orders') }}

),

renamed as (

    select
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(ordered_at as {{ dbt.type_timestamp() }}) as ordered_at,
        cast(status as {{ dbt.type_string() }}) as order_status,
        cast(order_kind as {{ dbt.type_string() }}) as order_kind,
        cast(subscription_id as {{ dbt.type_string() }}) as subscription_id,
        cast(delivery_number as {{ dbt.type_bigint() }}) as delivery_number,
        cast(media_code as {{ dbt.type_string() }}) as media_code,
        cast(coupon_code as {{ dbt.type_string() }}) as coupon_code,
        cast(subtotal as {{ dbt.type_bigint() }}) as subtotal,
        cast(discount as {{ dbt.type_bigint() }}) as discount_amount,
        cast(shipping_fee as {{ dbt.type_bigint() }}) as shipping_fee,
        cast(total as {{ dbt.type_bigint() }}) as order_total,
        cast(payment_method as {{ dbt.type_string() }}) as payment_method,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(_night as date) as export_date,
        cast(_source_file as {{ dbt.type_string() }}) as source_file,
        cast(_loaded_at as {{ dbt.type_timestamp() }}) as loaded_at

    from source

)

select * from renamed

{%- set as_of = as_of_date(var('run_date')) -%}
{%- set channels = ['email', 'line', 'sms', 'dm', 'phone'] -%}

with

customers as (

    select * from {{ ref('dim_customers') }}

),

rfm as (

    select * from {{ ref('customer_rfm') }}

),

final as (

    select
        customers.customer_id,
        customers.stage,
        rfm.rfm_segment,
        rfm.recency_score,
        rfm.frequency_score,
        rfm.monetary_score,
        customers.order_count,
        customers.total_revenue,
        customers.first_order_date,
        customers.last_order_date,
        cast({{ dbt.datediff('customers.first_order_date', as_of, 'day') }} as {{ dbt.type_int() }})
            as days_since_first_order,
        cast({{ dbt.datediff('cast(customers.first_shipped_at as date)', as_of, 'day') }} as {{ dbt.type_int() }})
            as days_since_first_shipment,
        cast({{ dbt.datediff('cast(customers.first_delivered_at as date)', as_of, 'day') }} as {{ dbt.type_int() }})
            as days_since_first_delivery,
        customers.days_since_last_order,
        customers.first_order_kind,
        customers.acquisition_media_code,
        customers.subscription_status,
        customers.age_band,
        {%- for channel in channels %}
        customers.has_{{ channel }}_consent,
        {%- endfor %}
        customers.is_erased,
        not customers.is_erased and (
            {%- for channel in channels %}
            customers.has_{{ channel }}_consent{{ ' or' if not loop.last }}
            {%- endfor %}
        ) as is_contactable,
        {{ as_of }} as as_of_date

    from customers
    left join rfm
        on customers.customer_id = rfm.customer_id

)

select * from final

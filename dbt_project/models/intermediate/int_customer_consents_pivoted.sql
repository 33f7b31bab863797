{%- set channels = ['email', 'line', 'sms', 'dm', 'phone'] -%}

with

consents as (

    select * from {{ ref('stg_shop__consents') }}

),

pivoted as (

    select
        customer_id,
        {%- for channel in channels %}
        max(
            case
                when channel = '{{ channel }}'
                    and consent_status = 'granted'
                    and withdrawn_at is null
                    then 1
                else 0
            end
        ) = 1 as has_{{ channel }}_consent{{ ',' if not loop.last }}
        {%- endfor %}

    from consents
    group by customer_id

)

select * from pivoted

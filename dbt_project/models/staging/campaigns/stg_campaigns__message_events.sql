{{ config(materialized='ephemeral') }}

-- E-mail events that belong to a kizuna send (custom_args carried its send_id back).
select
    sg_event_id,
    send_id,
    event as event_type,
    event_at

from {{ source('campaigns', 'message_events') }}
where send_id is not null

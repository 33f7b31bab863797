{{ config(materialized='ephemeral') }}

-- E-mail events that belong to a kizuna send (custom_args carried its send_id back). `url`: the
-- link of a click (load_events parses it from the event, so no JSON function is needed here).
select
    sg_event_id,
    send_id,
    event as event_type,
    event_at,
    url

from {{ source('campaigns', 'message_events') }}
where send_id is not null

{{ config(materialized='ephemeral') }}

-- Ledger sends as recorded, with the send date named as such (the run that sent them).
select
    send_id,
    scenario_id,
    step_id,
    customer_id,
    anchor_date,
    channel,
    due_date,
    run_date as send_date,
    status,
    detail

from {{ source('campaigns', 'campaign_sends') }}

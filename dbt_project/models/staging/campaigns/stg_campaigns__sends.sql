{{ config(materialized='ephemeral') }}

-- Ledger sends as recorded, with the send date named as such (the run that sent them) and
-- the goal of their scenario (raw.campaign_scenarios: the scenario files as they are now).
-- A scenario without a goal, or no longer in the files, counts any new order.
with

sends as (

    select * from {{ source('campaigns', 'campaign_sends') }}

),

scenarios as (

    select * from {{ source('campaigns', 'campaign_scenarios') }}

)

select
    sends.send_id,
    sends.scenario_id,
    sends.step_id,
    sends.customer_id,
    sends.anchor_date,
    sends.channel,
    sends.due_date,
    sends.run_date as send_date,
    sends.status,
    sends.detail,
    coalesce(scenarios.goal, 'new_order') as goal

from sends
left join scenarios on scenarios.scenario_id = sends.scenario_id

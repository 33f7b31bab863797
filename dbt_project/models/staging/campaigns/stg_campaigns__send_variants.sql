{{ config(materialized='ephemeral') }}

-- The A/B variant of each send that has one, with its step's control variant: the first variant of
-- the step in the scenario file as it is now; for a test no longer in the file (its winner promoted),
-- the alphabetically first variant of its sends (ledger history stays readable).
with

assigned as (

    select send_id, scenario_id, step_id, variant
    from {{ source('campaigns', 'campaign_send_variants') }}

),

defined_control as (

    select scenario_id, step_id, variant as control_variant
    from {{ source('campaigns', 'campaign_step_variants') }}
    where position = 1

),

first_seen as (

    select scenario_id, step_id, min(variant) as control_variant
    from assigned
    group by scenario_id, step_id

)

select
    a.send_id,
    a.scenario_id,
    a.step_id,
    a.variant,
    coalesce(d.control_variant, f.control_variant) as control_variant

from assigned a
join first_seen f on f.scenario_id = a.scenario_id and f.step_id = a.step_id
left join defined_control d on d.scenario_id = a.scenario_id and d.step_id = a.step_id

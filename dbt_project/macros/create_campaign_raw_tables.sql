{#-
    The raw tables of the campaign feedback loop, created empty when missing (on-run-start),
    so that the campaign marts build, and their tests pass, before any message was sent or
    any webhook event arrived. The nightly `load_events` (kizuna/events/load.py) runs the
    same statements, found by the ddl/end markers below (Jinja comments): keep each
    statement plain SQL.
-#}
{% macro create_campaign_raw_tables() %}
    {{- return(adapter.dispatch('create_campaign_raw_tables', 'kizuna')()) -}}
{% endmacro %}

{% macro default__create_campaign_raw_tables() %}
create schema if not exists raw;
{#-ddl-#}
create table if not exists raw.message_events (
    store_id bigint not null,
    sg_event_id varchar primary key,
    event varchar not null,
    send_id varchar,
    scenario_id varchar,
    step_id varchar,
    email_sha256 varchar,
    event_at timestamp,
    bounce_type varchar,
    reason varchar,
    raw_json varchar,
    received_at timestamp,
    _loaded_at timestamp not null,
    url varchar
)
{#-end-#};
{#-ddl-#}
alter table raw.message_events add column if not exists url varchar
{#-end-#};
{#-ddl-#}
create table if not exists raw.campaign_coupons (
    code varchar primary key,
    send_id varchar not null,
    scenario_id varchar not null,
    step_id varchar not null,
    customer_id varchar not null,
    offer_type varchar not null,
    offer_value double precision,
    issued_on date not null,
    expires_on date,
    state varchar not null,
    _loaded_at timestamp not null
)
{#-end-#};
{#-ddl-#}
create table if not exists raw.line_follow_events (
    store_id bigint not null,
    webhook_event_id varchar primary key,
    event_type varchar not null,
    line_user_id varchar,
    event_at timestamp,
    is_redelivery boolean,
    raw_json varchar,
    received_at timestamp,
    _loaded_at timestamp not null
)
{#-end-#};
{#-ddl-#}
create table if not exists raw.campaign_scenarios (
    scenario_id varchar primary key,
    name varchar not null,
    goal varchar,
    holdout_percent double precision,
    _loaded_at timestamp not null
)
{#-end-#};
{#-ddl-#}
create table if not exists raw.campaign_sends (
    send_id varchar primary key,
    scenario_id varchar not null,
    step_id varchar not null,
    customer_id varchar not null,
    anchor_date date not null,
    channel varchar not null,
    due_date date not null,
    run_date date not null,
    status varchar not null,
    detail varchar,
    provider_message_id varchar,
    planned_at timestamp not null,
    updated_at timestamp not null,
    _loaded_at timestamp not null
)
{#-end-#};
{#- A/B variants (issue 17, part 2): the variant of each send (ledger.sends.variant, when set), and the
    variants the scenario files define now (position 1 is the control). -#}
{#-ddl-#}
create table if not exists raw.campaign_send_variants (
    send_id varchar primary key,
    scenario_id varchar not null,
    step_id varchar not null,
    variant varchar not null,
    _loaded_at timestamp not null
)
{#-end-#};
{#-ddl-#}
create table if not exists raw.campaign_step_variants (
    scenario_id varchar not null,
    step_id varchar not null,
    variant varchar not null,
    position integer not null,
    weight double precision not null,
    _loaded_at timestamp not null
)
{#-end-#};
{% endmacro %}

{#- Spark (engines, issue 21): the same tables, from the statements above. Spark runs one statement per call
    and has no primary keys, NOT NULL on Parquet tables nor `add column if not exists`: each `create table`
    runs on its own, as a Parquet table without the constraints (the loader and the raw-data gate keep them,
    in the warehouse file, whose tables kizuna.engines copies here before the build); the added columns are
    in the `create table` already (an older copy gets them with the night's copy of the file's table). -#}
{% macro spark__create_campaign_raw_tables() %}
    {%- if execute -%}
    {%- for statement in default__create_campaign_raw_tables().split(';') -%}
        {%- set sql = statement | trim -%}
        {%- if sql.startswith('create schema') -%}
            {%- do run_query(sql) -%}
        {%- elif sql.startswith('create table') -%}
            {%- set sql = modules.re.sub('(?i)\\s+primary key', '', sql) -%}
            {%- set sql = modules.re.sub('(?i)\\s+not null', '', sql) -%}
            {%- set sql = modules.re.sub('(?i)\\bvarchar\\b', 'string', sql) -%}
            {%- set sql = modules.re.sub('(?i)\\bdouble precision\\b', 'double', sql) -%}
            {%- do run_query(sql ~ ' using parquet') -%}
        {%- endif -%}
    {%- endfor -%}
    {%- endif -%}
    select 1
{% endmacro %}

{{ config(materialized='ephemeral') }}

-- Unique single-use coupon codes (ledger.coupons), with the code as a cart compares it: upper
-- case, no surrounding spaces (shops differ in how they store a code typed by a customer).
select
    upper(trim(code)) as coupon_code,
    send_id,
    scenario_id,
    step_id,
    customer_id,
    issued_on,
    expires_on

from {{ source('campaigns', 'campaign_coupons') }}

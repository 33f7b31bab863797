"""Channels: how a rendered message reaches a customer.

`base.Channel` is the contract (a batch in, one `Outcome` per message out: sent, failed
with a reason, or unknown). `registry.channel_for(settings, name)` picks the connector:

| channel | default (no secrets)        | provider connector                          |
|---------|-----------------------------|---------------------------------------------|
| email   | outbox (.eml files)         | sendgrid.SendGridChannel  (KIZUNA_EMAIL_PROVIDER=sendgrid) |
| line    | outbox                      | line.LineChannel          (KIZUNA_LINE_PROVIDER=line)      |
| sms     | outbox                      | sms.TwilioSmsChannel      (KIZUNA_SMS_PROVIDER=twilio)     |
| dm      | outbox                      | lists.ListChannel, CSV in CP932 for the print vendor (KIZUNA_DM_PROVIDER=list) |
| phone   | outbox                      | lists.ListChannel, call list (KIZUNA_PHONE_PROVIDER=list)          |
| insert  | outbox                      | lists.ListChannel, package-insert list (KIZUNA_INSERT_PROVIDER=list) |

Provider connectors return failed/unknown outcomes for provider errors and raise only
for configuration errors (missing secret or sender). `loopback/` holds offline twins of
the three provider APIs (real HTTP servers on 127.0.0.1) for the tests and the bench.
"""

"""Feedback from the channels: provider webhooks (SendGrid events, LINE follow/unfollow).

- `store`: the SQLite event store the webhook service appends to (WAL; dedupe on provider ids);
- `webhook`: the FastAPI service (`kizuna webhook serve`) that verifies and stores events;
- `load`: the nightly stage that copies events and ledger sends into the warehouse and
  turns bounces, complaints, unsubscribes and LINE blocks into suppressions.
"""

"""The webhook service (`kizuna webhook serve`): provider events in, into the event store.

- `POST /webhooks/sendgrid`: SendGrid Event Webhook. The request is signed (ECDSA P-256
  over `timestamp + raw body`); the signature is checked with the official helper
  (`sendgrid.helpers.eventwebhook.EventWebhook`) over the raw bytes as received, before
  any parsing. Forged, unsigned or stale (timestamp further than `webhook_max_age_seconds`
  from now: a replay) requests get 403 and nothing is stored. Events are deduplicated on
  `sg_event_id`: a redelivered batch answers 200 and stores nothing new.
- `POST /webhooks/line`: LINE Messaging API webhook, `X-Line-Signature` checked with the
  official `linebot.v3.WebhookParser`'s `SignatureValidator` (HMAC-SHA256 with the channel
  secret); follow/unfollow are stored, deduplicated on `webhookEventId`. LINE requests carry
  no signed timestamp and LINE redelivers late on purpose, so no age check here.
- `GET /healthz`: 200 when the store can be written.

A provider whose secret is not configured answers 503 (SendGrid and LINE retry), so the
service can run with one provider only. Responses never echo request content.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from kizuna.config import Settings
from kizuna.events import store
from kizuna.errors import KizunaError
from kizuna.secrets import MissingSecret

log = logging.getLogger("kizuna.webhook")

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
LINE_SIGNATURE = "X-Line-Signature"
#: Largest request body accepted (SendGrid batches are well under 1 MB).
MAX_BODY_BYTES = 5 * 1024 * 1024


def _secret(settings: Settings, attribute: str, given: str | SecretStr | None) -> str | None:
    if given is not None:
        return given.get_secret_value() if isinstance(given, SecretStr) else given
    try:
        return getattr(settings, attribute).get_secret_value()
    except MissingSecret:
        return None


def create_app(settings: Settings, *, sendgrid_public_key: str | SecretStr | None = None,
               line_channel_secret: str | SecretStr | None = None,
               clock: Callable[[], float] = time.time) -> FastAPI:
    """The webhook app. Secrets default to kizuna.secrets (env KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY,
    KIZUNA_LINE_CHANNEL_SECRET); tests pass them in."""
    from linebot.v3 import WebhookParser
    from sendgrid.helpers.eventwebhook import EventWebhook

    store_path: Path = settings.events_store  # type: ignore[assignment]  (set by Settings' validator)
    max_age = settings.webhook_max_age_seconds
    sg_key = _secret(settings, "sendgrid_webhook_public_key", sendgrid_public_key)
    line_secret = _secret(settings, "line_channel_secret", line_channel_secret)
    try:
        sg_verifier = EventWebhook(sg_key) if sg_key else None
    except Exception as exc:  # noqa: BLE001 - a malformed key is a configuration problem for a person
        raise KizunaError(
            f"The SendGrid webhook verification key (KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY) is not a valid "
            f"public key ({type(exc).__name__}): paste the key SendGrid shows under Mail Settings → "
            "Signed Event Webhook, without the BEGIN/END lines."
        ) from None
    line_parser = WebhookParser(line_secret) if line_secret else None

    # One connection per request: sqlite3 connections are not shared across the server's threads.
    store.connect(store_path).close()  # create the file and tables now, fail early

    app = FastAPI(title="kizuna webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    def refuse(status: int, why: str) -> JSONResponse:
        return JSONResponse({"error": why}, status_code=status)

    async def bounded_body(request: Request) -> bytes | None:
        """The raw body, or None when it is over MAX_BODY_BYTES (by its declared length, then as read)."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            return None
        body = await request.body()
        return None if len(body) > MAX_BODY_BYTES else body

    @app.get("/healthz")
    def healthz() -> dict:
        con = store.connect(store_path)
        try:
            con.execute("select 1").fetchone()
        finally:
            con.close()
        return {"status": "ok", "sendgrid": sg_verifier is not None, "line": line_parser is not None}

    @app.post("/webhooks/sendgrid")
    async def sendgrid_events(request: Request) -> JSONResponse:
        if sg_verifier is None:
            return refuse(503, "SendGrid webhook verification key not configured")
        body = await bounded_body(request)
        if body is None:
            return refuse(413, "too large")
        signature = request.headers.get(SENDGRID_SIGNATURE)
        timestamp = request.headers.get(SENDGRID_TIMESTAMP)
        if not signature or not timestamp:
            return refuse(403, "unsigned")
        try:
            ok = sg_verifier.verify_signature(body.decode("utf-8"), signature, timestamp)
        except Exception:  # noqa: BLE001 - undecodable body or signature: not signed by SendGrid
            ok = False
        if not ok:
            log.warning("sendgrid webhook: bad signature refused")
            return refuse(403, "bad signature")
        try:
            age = clock() - int(timestamp)
        except ValueError:
            return refuse(403, "bad timestamp")
        if abs(age) > max_age:
            log.warning("sendgrid webhook: stale request refused (%.0f s old)", age)
            return refuse(403, "stale")
        try:
            events = json.loads(body)
        except ValueError:
            return refuse(400, "not JSON")
        if not isinstance(events, list):
            return refuse(400, "expected a JSON array of events")
        con = store.connect(store_path)
        try:
            added = store.add_sendgrid_events(con, events)
        finally:
            con.close()
        return JSONResponse({"received": len(events), "stored": added})

    @app.post("/webhooks/line")
    async def line_events(request: Request) -> JSONResponse:
        if line_parser is None:
            return refuse(503, "LINE channel secret not configured")
        body = await bounded_body(request)
        if body is None:
            return refuse(413, "too large")
        signature = request.headers.get(LINE_SIGNATURE)
        try:
            text = body.decode("utf-8")
            ok = bool(signature) and line_parser.signature_validator.validate(text, signature)
        except Exception:  # noqa: BLE001
            ok = False
        if not ok:
            log.warning("line webhook: bad signature refused")
            return refuse(403, "bad signature")
        try:
            payload = json.loads(text)
            events = payload.get("events", [])
        except (ValueError, AttributeError):
            return refuse(400, "not a LINE webhook payload")
        con = store.connect(store_path)
        try:
            added = store.add_line_events(con, events)
        finally:
            con.close()
        return JSONResponse({"received": len(events), "stored": added})

    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8787) -> None:
    """Run the service in the foreground (uvicorn) until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)

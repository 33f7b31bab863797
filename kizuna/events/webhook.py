"""The webhook service (`kizuna webhook serve`): provider events in, into the event store.

- `POST /webhooks/sendgrid`: SendGrid Event Webhook. The request is signed (ECDSA P-256
  over `timestamp + raw body`, the key loaded by the official helper
  `sendgrid.helpers.eventwebhook.EventWebhook`); the signature is checked over the raw
  bytes as received, before any parsing. Forged, unsigned or stale (timestamp further than
  `webhook_max_age_seconds` from now: a replay) requests get 403 and nothing is stored.
  Events are deduplicated on `sg_event_id`: a redelivered batch answers 200 and stores
  nothing new.
- `POST /webhooks/line`: LINE Messaging API webhook, `X-Line-Signature` checked over the raw
  bytes (HMAC-SHA256 with the channel secret, base64, as LINE's SDK computes it); follow/
  unfollow are stored, deduplicated on `webhookEventId`. LINE requests carry no signed
  timestamp and LINE redelivers late on purpose, so no age check here.
- `GET /healthz`: 200 when the store can be written.
- `GET`/`POST` at the path of KIZUNA_UNSUBSCRIBE_BASE_URL (default `/unsubscribe`): one-click
  unsubscribe and the preference page (kizuna/events/unsubscribe.py).

Hostile requests (see tests/test_webhook_hardening.py):
- What can be refused without the body is refused before reading it: a declared length
  over MAX_BODY_BYTES (413), missing signature headers, a malformed or stale SendGrid
  timestamp (403). Those answers close the connection, so nothing more is read.
- The body is read as a stream and the read stops as soon as it passes MAX_BODY_BYTES
  (413), with or without Content-Length (chunked): memory stays bounded whatever is sent.
- The signature is checked over the raw bytes (the SDK helpers take text and re-encode it,
  which cannot verify a body that is not UTF-8: that one must get 400, not look forged).
- A signed body that is not the provider's shape (kizuna.events.payloads: strict JSON, no
  NaN/Infinity, bounded nesting, typed fields, timestamps in range) gets 400 with a short
  reason and nothing of it is stored; never a 500.

A provider whose secret is not configured answers 503 (SendGrid and LINE retry), so the
service can run with one provider only. Responses never echo request content.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import time
from pathlib import Path
from typing import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from starlette.requests import ClientDisconnect

from kizuna.config import Settings
from kizuna.events import payloads, store, unsubscribe
from kizuna.events.bodies import BodyTooLarge, declared_too_large, read_bounded
from kizuna.errors import KizunaError
from kizuna.secrets import MissingSecret

log = logging.getLogger("kizuna.webhook")

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
LINE_SIGNATURE = "X-Line-Signature"
#: Largest request body accepted (SendGrid batches are well under 1 MB).
MAX_BODY_BYTES = 5 * 1024 * 1024
#: Digits of a unix-seconds timestamp header (up to the year 5138: anything longer is not one).
_MAX_TIMESTAMP_DIGITS = 11


def _secret(settings: Settings, attribute: str, given: str | SecretStr | None) -> str | None:
    if given is not None:
        return given.get_secret_value() if isinstance(given, SecretStr) else given
    try:
        return getattr(settings, attribute).get_secret_value()
    except MissingSecret:
        return None


def _sendgrid_signed(key: ec.EllipticCurvePublicKey, body: bytes, signature: str, timestamp: str) -> bool:
    """SendGrid's signature check (as its EventWebhook.verify_signature does it), over the raw bytes."""
    try:
        key.verify(base64.b64decode(signature), timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):  # ValueError: not base64 / not ASCII
        return False
    return True


def _line_signed(secret: bytes, body: bytes, signature: str) -> bool:
    """LINE's signature check (as its SignatureValidator does it), over the raw bytes."""
    expected = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest())
    try:
        return hmac.compare_digest(signature.encode("ascii"), expected)
    except UnicodeEncodeError:
        return False


def create_app(settings: Settings, *, sendgrid_public_key: str | SecretStr | None = None,
               line_channel_secret: str | SecretStr | None = None,
               clock: Callable[[], float] = time.time) -> FastAPI:
    """The webhook app. Secrets default to kizuna.secrets (env KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY,
    KIZUNA_LINE_CHANNEL_SECRET); tests pass them in."""
    from sendgrid.helpers.eventwebhook import EventWebhook

    store_path: Path = settings.events_store  # type: ignore[assignment]  (set by Settings' validator)
    max_age = settings.webhook_max_age_seconds
    sg_key = _secret(settings, "sendgrid_webhook_public_key", sendgrid_public_key)
    line_secret = _secret(settings, "line_channel_secret", line_channel_secret)
    try:
        sg_public_key = EventWebhook(sg_key).public_key if sg_key else None
        if sg_public_key is not None and not isinstance(sg_public_key, ec.EllipticCurvePublicKey):
            raise TypeError("not an elliptic-curve key")  # would fail every request, not start-up
    except Exception as exc:  # noqa: BLE001 - a malformed key is a configuration problem for a person
        raise KizunaError(
            f"The SendGrid webhook verification key (KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY) is not a valid "
            f"public key ({type(exc).__name__}): paste the key SendGrid shows under Mail Settings → "
            "Signed Event Webhook, without the BEGIN/END lines."
        ) from None
    line_key = line_secret.encode("utf-8") if line_secret else None

    # One connection per request: sqlite3 connections are not shared across the server's threads.
    store.connect(store_path).close()  # create the file and tables now, fail early

    app = FastAPI(title="kizuna webhooks", docs_url=None, redoc_url=None, openapi_url=None)
    # One-click unsubscribe and the preference page (kizuna/events/unsubscribe.py, docs/unsubscribe.md).
    app.include_router(unsubscribe.router(settings, clock=clock))

    def refuse(status: int, why: str, *, unread: bool = False) -> JSONResponse:
        """An error answer; `unread`: the body was not (all) read, so close the connection rather
        than let the server drain whatever else the client sends."""
        headers = {"Connection": "close"} if unread else None
        return JSONResponse({"error": why}, status_code=status, headers=headers)

    async def body_or_refusal(request: Request) -> bytes | JSONResponse:
        try:
            return await read_bounded(request, MAX_BODY_BYTES)
        except BodyTooLarge:
            return refuse(413, "too large", unread=True)
        except ClientDisconnect:  # the client gave up mid-body: nobody to answer, nothing to store
            return refuse(400, "incomplete body", unread=True)

    def malformed(provider: str, why: payloads.MalformedPayload) -> JSONResponse:
        log.warning("%s webhook: malformed signed body refused (%s)", provider, why)
        return refuse(400, str(why))

    @app.get("/healthz")
    def healthz() -> dict:
        con = store.connect(store_path)
        try:
            con.execute("select 1").fetchone()
        finally:
            con.close()
        return {"status": "ok", "sendgrid": sg_public_key is not None, "line": line_key is not None}

    def store_batch(provider: str, body: bytes, batch, add) -> JSONResponse:
        """Parse a signed body into its events and store them, or answer 400 (nothing stored)."""
        try:
            events = batch(payloads.parse_json(body))
            con = store.connect(store_path)
            try:
                added = add(con, events)  # validates every event before writing
            finally:
                con.close()
        except payloads.MalformedPayload as why:
            return malformed(provider, why)
        return JSONResponse({"received": len(events), "stored": added})

    @app.post("/webhooks/sendgrid")
    async def sendgrid_events(request: Request) -> JSONResponse:
        if sg_public_key is None:
            return refuse(503, "SendGrid webhook verification key not configured", unread=True)
        if declared_too_large(request, MAX_BODY_BYTES):
            return refuse(413, "too large", unread=True)
        signature = request.headers.get(SENDGRID_SIGNATURE)
        timestamp = request.headers.get(SENDGRID_TIMESTAMP)
        # Everything the headers alone decide is decided before reading the body.
        if not signature or not timestamp:
            return refuse(403, "unsigned", unread=True)
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _MAX_TIMESTAMP_DIGITS):
            return refuse(403, "bad timestamp", unread=True)
        age = clock() - int(timestamp)
        if abs(age) > max_age:
            log.warning("sendgrid webhook: stale request refused (%.0f s old)", age)
            return refuse(403, "stale", unread=True)
        body = await body_or_refusal(request)
        if isinstance(body, JSONResponse):
            return body
        if not _sendgrid_signed(sg_public_key, body, signature, timestamp):
            log.warning("sendgrid webhook: bad signature refused")
            return refuse(403, "bad signature")
        # A batch with one malformed event is refused whole (400, nothing stored): a signed body
        # that breaks SendGrid's documented shape means something is wrong upstream or here, and
        # storing the rest would hide it behind a 200. SendGrid retries non-2xx answers for up to
        # 72 hours and events are deduplicated on sg_event_id, so once fixed the whole batch
        # arrives again and is stored exactly once; a half-stored batch could not be told apart.
        return store_batch("sendgrid", body, payloads.sendgrid_batch, store.add_sendgrid_events)

    @app.post("/webhooks/line")
    async def line_events(request: Request) -> JSONResponse:
        if line_key is None:
            return refuse(503, "LINE channel secret not configured", unread=True)
        if declared_too_large(request, MAX_BODY_BYTES):
            return refuse(413, "too large", unread=True)
        signature = request.headers.get(LINE_SIGNATURE)
        if not signature:
            return refuse(403, "unsigned", unread=True)
        body = await body_or_refusal(request)
        if isinstance(body, JSONResponse):
            return body
        if not _line_signed(line_key, body, signature):
            log.warning("line webhook: bad signature refused")
            return refuse(403, "bad signature")
        # One malformed event refuses the whole batch, for the reasons given for SendGrid above
        # (LINE redelivers failed webhooks when redelivery is on; events are deduplicated on
        # webhookEventId).
        return store_batch("line", body, payloads.line_batch, store.add_line_events)

    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8787) -> None:
    """Run the service in the foreground (uvicorn) until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)

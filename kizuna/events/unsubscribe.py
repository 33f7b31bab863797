"""One-click unsubscribe (RFC 8058) and the preference page, on kizuna's web service.

Routes, at the path of KIZUNA_UNSUBSCRIBE_BASE_URL (default `/unsubscribe`), the token in `t`:

- `POST` with the body `List-Unsubscribe=One-Click` (form-urlencoded or multipart, as RFC 8058
  lets mail clients send it): the customer of the send gives up the channel the message came
  by, at once: recorded in the webhook store, answered 200. No cookie, no confirmation: the
  signed token is the authority.
- `GET`: a small Japanese page (server-rendered, no external assets, no script) to give up
  that channel, another one, or every channel; its form POSTs `scope=<channel>|all` back.
  A GET never unsubscribes: link scanners and previews fetch URLs.
- A token that is malformed (400), forged or tampered (403) or expired (410) gets a Japanese
  page saying so and naming the shop's contact, never a traceback; nothing is recorded.

The service never writes the warehouse or the ledger (the nightly run may hold them): requests
go to the SQLite store (`store.unsubscribes`), and the next campaign run folds them into the
ledger's suppressions before it selects anyone (`campaigns.unsubscribe.fold_unsubscribes`).
"""

from __future__ import annotations

import logging
import sqlite3
from email.parser import BytesParser
from email.policy import HTTP
from html import escape
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.requests import ClientDisconnect

from campaigns.unsubscribe import CHANNEL_LABELS, TokenError, mailto_address, read_token, signing_key
from kizuna.config import Settings
from kizuna.events import store
from kizuna.events.bodies import BodyTooLarge, read_bounded

log = logging.getLogger("kizuna.unsubscribe")

#: Largest form body read (a one-click body is 26 bytes; the page's form a few dozen).
MAX_FORM_BYTES = 16 * 1024
#: Channels a customer can give up on the page (a package insert travels in a parcel they ordered).
PAGE_CHANNELS = ("email", "line", "sms", "dm", "phone")
#: Answer status per kind of bad token.
REFUSAL_STATUS = {"malformed": 400, "forged": 403, "expired": 410}

_CSS = ("body{font-family:'Hiragino Sans','Hiragino Kaku Gothic ProN','Noto Sans JP',Meiryo,sans-serif;"
        "line-height:1.8;color:#222;background:#f6f5f2;margin:0;padding:24px 16px}"
        "main{max-width:560px;margin:0 auto;background:#fff;border-radius:8px;padding:24px 28px;"
        "box-shadow:0 1px 3px rgba(0,0,0,.08)}h1{font-size:1.3rem;margin:0 0 12px}"
        "label{display:block;padding:8px 0}button{margin-top:16px;font-size:1rem;padding:10px 24px;"
        "border:0;border-radius:6px;background:#b33a3a;color:#fff;cursor:pointer}"
        ".note{font-size:.85rem;color:#666}.done{color:#2f6b2f}.bad{color:#b33a3a}"
        "footer{margin-top:24px;font-size:.8rem;color:#666;border-top:1px solid #eee;padding-top:12px}")
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never pass it on
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}


def route_path(settings: Settings) -> str:
    """The path the routes answer on: that of KIZUNA_UNSUBSCRIBE_BASE_URL (default `/unsubscribe`)."""
    path = urlsplit(settings.unsubscribe_base_url.strip()).path.rstrip("/")
    return path or "/unsubscribe"


async def _read_form(request: Request) -> dict[str, str]:
    """The request's form fields (form-urlencoded or multipart/form-data), read bounded."""
    body = await read_bounded(request, MAX_FORM_BYTES)
    ctype = request.headers.get("content-type", "")
    fields: dict[str, str] = {}
    if ctype.lower().startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode("latin-1", "replace")
                                                      + b"\r\n\r\n" + bytes(body))
        if message.is_multipart():
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name:
                    payload = part.get_payload(decode=True) or b""
                    fields[str(name)] = payload.decode("utf-8", "replace").strip()
        return fields
    for name, values in parse_qs(bytes(body).decode("utf-8", "replace"), keep_blank_values=True).items():
        fields[name] = values[0].strip()
    return fields


def router(settings: Settings, clock: Callable[[], float] | None = None) -> APIRouter:
    """The unsubscribe routes; `clock` (unix seconds) decides expiry, injectable for tests."""
    from datetime import datetime, timezone

    key = signing_key(settings)
    store_path = Path(settings.events_store)  # type: ignore[arg-type]
    path = route_path(settings)
    sender, contact = settings.sender_name, settings.sender_contact
    mailto = mailto_address(settings)
    api = APIRouter()

    def now() -> datetime | None:
        return datetime.fromtimestamp(clock(), timezone.utc) if clock else None

    def page(title: str, body: str, status: int = 200) -> HTMLResponse:
        html = (
            "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<meta name=\"robots\" content=\"noindex\"><title>{escape(title)}</title><style>{_CSS}</style></head>"
            f"<body><main><h1>{escape(title)}</h1>{body}"
            f"<footer>{escape(sender)}<br>お問い合わせ: {escape(contact)}</footer></main></body></html>")
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    def refusal(error: TokenError) -> HTMLResponse:
        log.info("unsubscribe: %s token refused", error.kind)
        ask = (f"<p>お手数ですが、お問い合わせ先（{escape(contact)}）または "
               f"<a href=\"mailto:{escape(mailto)}\">{escape(mailto)}</a> まで「配信停止希望」とご連絡ください。</p>")
        if error.kind == "expired":
            return page("このリンクの有効期限が切れています", "<p class=\"bad\">このリンクは有効期限を過ぎています。"
                        "最新のご案内に記載の配信停止リンクをご利用ください。</p>" + ask, 410)
        if error.kind == "forged":
            return page("このリンクを確認できませんでした", "<p class=\"bad\">リンクが途中で変わっているか、"
                        "当店が発行したものではありません。配信停止は行っていません。</p>" + ask, 403)
        return page("このリンクは無効です", "<p class=\"bad\">リンクが不完全です。メールに記載のリンクを"
                    "そのまま開いてください。配信停止は行っていません。</p>" + ask, 400)

    def unavailable() -> HTMLResponse:
        return page("ただいま受け付けできません", "<p class=\"bad\">一時的に受付ができませんでした。"
                    "少し時間をおいて、もう一度お試しください。</p>", 503)

    def token_or_refusal(t: str | None):
        try:
            return read_token(key, t or "", now())
        except TokenError as error:
            return refusal(error)

    @api.get(path, response_class=HTMLResponse)
    def preference_page(request: Request) -> HTMLResponse:
        token = token_or_refusal(request.query_params.get("t"))
        if isinstance(token, HTMLResponse):
            return token
        try:
            con = store.connect(store_path)
            try:
                done = store.unsubscribed_channels(con, token.send_id)
            finally:
                con.close()
        except sqlite3.Error:
            log.exception("unsubscribe: store not readable")
            return unavailable()
        t = escape(request.query_params.get("t", ""), quote=True)
        options = []
        for channel in dict.fromkeys((token.channel, *PAGE_CHANNELS)):  # the message's channel first
            checked = " checked" if channel == token.channel else ""
            state = "（停止済み）" if channel in done or "all" in done else ""
            options.append(f"<label><input type=\"radio\" name=\"scope\" value=\"{channel}\"{checked}> "
                           f"{escape(CHANNEL_LABELS[channel])}での配信を停止する{state}</label>")
        all_state = "（停止済み）" if "all" in done else ""
        options.append("<label><input type=\"radio\" name=\"scope\" value=\"all\"> "
                       f"すべての配信（メール・LINE・SMS・郵送・お電話）を停止する{all_state}</label>")
        body = (f"<p>{escape(sender)}からのご案内の配信を停止します。停止する範囲を選んでください。</p>"
                f"<form method=\"post\" action=\"{escape(path, quote=True)}?t={t}\">{''.join(options)}"
                "<button type=\"submit\">配信を停止する</button></form>"
                "<p class=\"note\">ご注文やお届けに関するご連絡は、配信停止後もお送りします。</p>")
        return page("配信停止のお手続き", body)

    @api.post(path, response_class=HTMLResponse)
    async def unsubscribe(request: Request) -> HTMLResponse:
        token = token_or_refusal(request.query_params.get("t"))
        if isinstance(token, HTMLResponse):
            return token
        try:
            form = await _read_form(request)
        except BodyTooLarge:
            return page("このリンクは無効です", "<p class=\"bad\">送信内容が大きすぎます。</p>", 413)
        except ClientDisconnect:
            return page("このリンクは無効です", "<p class=\"bad\">送信が途中で切れました。</p>", 400)
        if form.get("List-Unsubscribe") == "One-Click":  # RFC 8058: the channel the message came by
            channel, method = token.channel, "one_click"
        elif form.get("scope") in (*PAGE_CHANNELS, token.channel, "all"):
            channel, method = form["scope"], "page"
        else:
            return page("このリンクは無効です", "<p class=\"bad\">停止する範囲が選ばれていません。"
                        "前のページに戻って選んでください。</p>", 400)
        try:
            con = store.connect(store_path)
            try:
                store.add_unsubscribe(con, token.send_id, channel, method)
            finally:
                con.close()
        except sqlite3.Error:
            log.exception("unsubscribe: store not writable")
            return unavailable()
        log.info("unsubscribe: %s recorded (%s)", channel, method)
        what = "すべての配信" if channel == "all" else f"{CHANNEL_LABELS[channel]}での配信"
        return page("配信停止を受け付けました",
                    f"<p class=\"done\">{escape(what)}を停止しました。</p>"
                    "<p class=\"note\">次回の配信から停止されます。すでに送信の手続きに入っていたご案内が"
                    "1通届く場合がありますが、ご容赦ください。</p>")

    return api

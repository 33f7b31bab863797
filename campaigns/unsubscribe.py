"""Unsubscribe links: signed, expiring tokens, the URL every message carries, and the nightly fold.

The token (docs/unsubscribe.md) names the *send*, never the customer: a send id is opaque (an
md5 prefix of scenario, step, customer and anchor) and the ledger maps it to the customer, so
nothing in a link can be read back to a person. It carries

    version (1 byte) | channel (1) | send-id form (1) | last valid day (2) | send id | MAC (16)

base64url without padding (44 characters for a 24-hex send id). The MAC is HMAC-SHA256 over a
domain tag and everything before it, with the shop's key (`kizuna.secrets.unsubscribe_secret`),
cut to 128 bits. The last valid day is in UTC days since 1970 (`unsubscribe_token_days` after
the send, default 60). A changed byte anywhere fails the MAC: tampered and forged look the same.

The web service (`kizuna/events/unsubscribe.py`) checks a token and records the request in its
own SQLite store: it never writes the warehouse or the ledger (the nightly run may hold them).
`fold_unsubscribes` brings those requests into the ledger's suppressions at the start of the
campaign stage, before selection, so the next night skips the customer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import sqlite3
import struct
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb

from kizuna.config import Settings
from kizuna.errors import KizunaError

log = logging.getLogger("kizuna.campaigns")

VERSION = 1
#: One byte per channel in the token; "all" is only ever a choice on the page, never in a token.
CHANNEL_CODES: dict[str, int] = {"email": 1, "line": 2, "sms": 3, "dm": 4, "phone": 5, "insert": 6}
_CODE_CHANNELS = {v: k for k, v in CHANNEL_CODES.items()}
#: Japanese names of the channels, for the preference page and messages to customers.
CHANNEL_LABELS: dict[str, str] = {"email": "メール", "line": "LINE", "sms": "SMS（ショートメッセージ）",
                                  "dm": "郵送のダイレクトメール", "phone": "お電話でのご案内",
                                  "insert": "商品への同梱物"}
#: The ledger's suppression reason for a request made through a link.
REASON = "unsubscribe_link"
_MAC_BYTES = 16
_HEX = re.compile(r"^(?:[0-9a-f]{2})+$")
_EPOCH = date(1970, 1, 1)
_TAG = b"kizuna-unsubscribe\x1f"


class TokenError(KizunaError):
    """An unsubscribe token that cannot be honoured; `kind` is `malformed`, `forged` or `expired`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Token:
    send_id: str
    channel: str
    last_day: date  # valid through this day (UTC)


# ---- the key --------------------------------------------------------------------------------

_keys: dict[tuple, bytes] = {}


def signing_key(settings: Settings) -> bytes:
    """The shop's unsubscribe key (resolved by kizuna.secrets), cached per data folder and environment
    so that rendering 100,000 messages reads it once."""
    from kizuna.secrets import unsubscribe_secret

    cache_key = (str(settings.data_dir), os.environ.get("KIZUNA_UNSUBSCRIBE_SECRET"),
                 os.environ.get("KIZUNA_UNSUBSCRIBE_SECRET_BLOCK"))
    if cache_key not in _keys:
        _keys[cache_key] = unsubscribe_secret(settings.data_dir).get_secret_value().encode("utf-8")  # type: ignore[arg-type]
    return _keys[cache_key]


# ---- tokens ---------------------------------------------------------------------------------

def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, _TAG + payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _utc_day(now: datetime | None) -> date:
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is not None:
        now = now.astimezone(timezone.utc)
    return now.date()


def make_token(key: bytes, send_id: str, channel: str, last_day: date) -> str:
    """The token for `send_id` on `channel`, valid through `last_day` (UTC)."""
    if channel not in CHANNEL_CODES:
        raise KizunaError(f"unknown channel {channel!r} for an unsubscribe link; channels: {', '.join(CHANNEL_CODES)}")
    if not send_id:
        raise KizunaError("an unsubscribe link needs the send id")
    if _HEX.match(send_id):
        form, raw = 1, bytes.fromhex(send_id)
    else:
        form, raw = 0, send_id.encode("utf-8")
    day = (last_day - _EPOCH).days
    payload = struct.pack(">BBBH", VERSION, CHANNEL_CODES[channel], form, max(0, min(day, 0xFFFF))) + raw
    return base64.urlsafe_b64encode(payload + _mac(key, payload)).rstrip(b"=").decode("ascii")


def read_token(key: bytes, token: str, now: datetime | None = None) -> Token:
    """The send and channel a token names; raises TokenError (`malformed`, `forged`, `expired`)."""
    text = (token or "").strip()
    if not text or len(text) > 400 or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise TokenError("malformed", "the link is incomplete or not one of ours")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed", "the link is incomplete or not one of ours") from None
    if len(data) < 5 + 1 + _MAC_BYTES:
        raise TokenError("malformed", "the link is incomplete or not one of ours")
    payload, mac = data[:-_MAC_BYTES], data[-_MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(key, payload)):
        raise TokenError("forged", "the link's signature does not match: it was changed or not made by this shop")
    version, code, form, day = struct.unpack(">BBBH", payload[:5])
    raw = payload[5:]
    if version != VERSION or code not in _CODE_CHANNELS or form not in (0, 1):
        raise TokenError("malformed", "the link is of a format this service does not know")
    send_id = raw.hex() if form == 1 else raw.decode("utf-8", "replace")
    last_day = _EPOCH + timedelta(days=day)
    if _utc_day(now) > last_day:
        raise TokenError("expired", f"the link expired on {last_day.isoformat()}")
    return Token(send_id, _CODE_CHANNELS[code], last_day)


def unsubscribe_url(settings: Settings, send_id: str, customer_id: str, channel: str,
                    now: datetime | None = None) -> str:
    """The unsubscribe link of one message: KIZUNA_UNSUBSCRIBE_BASE_URL with `t=<token>`.

    The seam the renderer calls for every message. `customer_id` is deliberately not in the
    token (no customer id in a link): the send id is the reference and the ledger maps it to the
    customer when the request is folded in. It is taken so that callers need not know that."""
    del customer_id  # see the docstring: the ledger, not the link, knows the customer
    last_day = _utc_day(now) + timedelta(days=settings.unsubscribe_token_days)
    token = make_token(signing_key(settings), send_id, channel, last_day)
    base = settings.unsubscribe_base_url.strip()
    return f"{base}{'&' if '?' in base else '?'}t={token}"


def mailto_address(settings: Settings) -> str:
    """The address of the List-Unsubscribe `mailto:` (KIZUNA_UNSUBSCRIBE_MAILTO, else the sender's)."""
    return (settings.unsubscribe_mailto or settings.sender_email).strip()


# ---- the nightly fold -----------------------------------------------------------------------

@dataclass(frozen=True)
class FoldResult:
    """What one fold of the web service's unsubscribe requests into the ledger did."""

    customers: int  # customers newly suppressed (on some channel) tonight: unsubscribed since the last fold
    suppressions: int  # ledger rows added
    unmatched: int  # requests whose send id the ledger does not hold (should not happen: links are signed)

    def summary(self) -> str:
        text = f"{self.customers} customer(s) unsubscribed through the link since the last run"
        if self.unmatched:
            text += f"; {self.unmatched} request(s) name a send the ledger does not hold"
        return text


def fold_unsubscribes(con: duckdb.DuckDBPyConnection, settings: Settings) -> FoldResult:
    """Add the web service's unsubscribe requests (its SQLite store) to `ledger.suppressions`.

    Needs the ledger attached. Every request is read each time and only suppressions the ledger
    does not hold yet are added, so the fold is idempotent and catches up after any gap."""
    from kizuna.events import store

    path = Path(settings.events_store)  # type: ignore[arg-type]
    if not path.exists():
        return FoldResult(0, 0, 0)
    try:
        events = store.connect(path)
        try:
            rows = store.read_unsubscribes(events)
        finally:
            events.close()
    except sqlite3.Error as exc:  # sending on would ignore people who asked to stop: stop instead
        raise KizunaError(
            f"配信停止の受付記録を読めないため配信しません: {path} ({exc}). (The unsubscribe requests in the "
            "webhook store cannot be read, so nothing is sent: check the file and its permissions.)") from None
    if not rows:
        return FoldResult(0, 0, 0)
    con.execute("create or replace temporary table _kizuna_unsubscribes (send_id varchar, channel varchar)")
    con.executemany("insert into _kizuna_unsubscribes values (?, ?)",
                    [(send_id, None if channel == "all" else channel) for send_id, channel in rows])
    try:
        new = f"""
            select distinct s.customer_id, u.channel
            from _kizuna_unsubscribes u join ledger.sends s on s.send_id = u.send_id
            where not exists (select 1 from ledger.suppressions x
                              where x.customer_id = s.customer_id and x.channel is not distinct from u.channel
                                and x.reason = '{REASON}')
        """
        customers = con.execute(f"select count(distinct customer_id) from ({new})").fetchone()[0]
        added = con.execute(f"insert into ledger.suppressions (customer_id, channel, reason) "
                            f"select customer_id, channel, '{REASON}' from ({new})").fetchone()[0]
        unmatched = con.execute("select count(*) from _kizuna_unsubscribes u where not exists "
                                "(select 1 from ledger.sends s where s.send_id = u.send_id)").fetchone()[0]
    finally:
        con.execute("drop table if exists _kizuna_unsubscribes")
    result = FoldResult(customers, added, unmatched)
    if customers or unmatched:
        log.info("%s", result.summary())
    return result

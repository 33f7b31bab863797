"""Transport headers every marketing e-mail carries, built once for the outbox and SendGrid.

- `List-Unsubscribe: <https://...?t=...>, <mailto:...?subject=unsubscribe%20...>` and, when the
  link is HTTPS, `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058: the mail client
  POSTs that body to the link and the customer is unsubscribed without opening a page; RFC 8058
  requires an HTTPS URI for it, hence nothing is claimed for an http:// link).
- `Message-ID: <send id.kizuna@domain of the sender>`: derived from the send id, not random, so
  a message handed over again (reconciliation) carries the same id and receiving systems can
  recognise the repeat.
- `Date` in the shop's time zone.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from email.utils import format_datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_ID_PART = re.compile(r"[^A-Za-z0-9._-]")
_TOKEN = re.compile(r"[?&]t=([A-Za-z0-9_-]+)")
ONE_CLICK = "List-Unsubscribe=One-Click"


def token_of(url: str) -> str | None:
    """The token of an unsubscribe URL (its `t` parameter), or None."""
    match = _TOKEN.search(url or "")
    return match.group(1) if match else None


def mailto_url(address: str, url: str) -> str:
    """`mailto:` with a subject carrying the link's token, so the request names the send it is about."""
    token = token_of(url)
    return f"mailto:{address}?subject={quote(f'unsubscribe {token}' if token else 'unsubscribe')}"


def list_unsubscribe(url: str, mailto_address: str = "") -> dict[str, str]:
    """The List-Unsubscribe headers for a message whose unsubscribe link is `url` (none without one)."""
    targets = []
    if url:
        targets.append(f"<{url}>")
    if mailto_address and "@" in mailto_address:
        targets.append(f"<{mailto_url(mailto_address.strip(), url)}>")
    headers = {"List-Unsubscribe": ", ".join(targets)} if targets else {}
    if url.lower().startswith("https://"):
        headers["List-Unsubscribe-Post"] = ONE_CLICK
    return headers


def mail_domain(sender_email: str) -> str:
    """The domain of the sender's address (for Message-ID), or `kizuna.invalid` when it has none."""
    domain = sender_email.rpartition("@")[2].strip().rstrip(">").lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "kizuna.invalid"
    return domain if _DOMAIN.match(domain) else "kizuna.invalid"


def message_id(send_id: str, sender_email: str) -> str:
    """`<send id.kizuna@sender's domain>`: unique per ledger row, the same on a repeat hand-over."""
    return f"<{_ID_PART.sub('-', send_id)}.kizuna@{mail_domain(sender_email)}>"


def mail_date(when: datetime | None = None, timezone: str = "Asia/Tokyo") -> str:
    """An RFC 5322 Date in the shop's time zone (`when` naive = shop-local; None = now)."""
    if when is None:
        return format_datetime(datetime.now(ZoneInfo(timezone)))
    return _formatted(when, timezone)


@lru_cache(maxsize=256)
def _formatted(when: datetime, timezone: str) -> str:
    """Cached: a batch's messages share one hand-over time (or a few `send_at`s)."""
    tz = ZoneInfo(timezone)
    return format_datetime(when.replace(tzinfo=tz) if when.tzinfo is None else when.astimezone(tz))

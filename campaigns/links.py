"""Tagged links: every link in a message carries the UTM parameters that attribute a click to its step.

Clicks (SendGrid click events carry the URL clicked) and orders (the landing URL the cart
records) are attributed to the scenario step by exactly these four parameters:

    utm_source=kizuna  utm_medium=<channel>  utm_campaign=<scenario id>  utm_content=<step id>

The renderer tags the finished message, not the template, so a link a marketer types by
hand is measured too. Existing query parameters and the fragment are kept; a UTM
parameter already in the link is replaced (attribution must name the step that sent it).
The unsubscribe URL is never tagged: it is a signed link, and nobody should be counted as
having "clicked through" by leaving the list.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: The parameter names, in the order they are appended.
UTM_PARAMS = ("utm_source", "utm_medium", "utm_campaign", "utm_content")
UTM_SOURCE = "kizuna"
#: Channels whose links are tagged: a printed piece (DM, package insert) or a call list
#: carries no clickable link, and a URL with four parameters cannot be typed from paper.
TAGGED_CHANNELS = ("email", "line", "sms")

# A URL in plain text: ASCII only, so it ends at Japanese text, a space or a full-width bracket.
_TEXT_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_TRAILING = ".,;:!?'\""
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.I | re.S)


def utm_values(channel: str, scenario_id: str | None, step_id: str) -> dict[str, str]:
    values = {"utm_source": UTM_SOURCE, "utm_medium": channel, "utm_campaign": scenario_id or "",
              "utm_content": step_id}
    return {k: v for k, v in values.items() if v}


def tag_url(url: str, utm: dict[str, str]) -> str:
    """`url` with the UTM parameters set (others and the fragment kept); not http(s): unchanged."""
    return _tagged(url, tuple(utm.items()))


@lru_cache(maxsize=8192)
def _tagged(url: str, utm_items: tuple[tuple[str, str], ...]) -> str:
    """Cached: a night's messages repeat the same few links for each step (most of the tagging time)."""
    utm = dict(utm_items)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in utm]
    query += list(utm.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(query), parts.fragment))


def _split_trailing(url: str) -> tuple[str, str]:
    """A sentence's punctuation after a URL is not part of it; nor is a `)` that opens nowhere in it."""
    tail = ""
    while url and (url[-1] in _TRAILING or (url[-1] == ")" and url.count("(") < url.count(")"))):
        tail = url[-1] + tail
        url = url[:-1]
    return url, tail


def tag_text(text: str, utm: dict[str, str], keep: Callable[[str], bool]) -> str:
    """Tag every http(s) URL in plain text except those `keep` says to leave as they are."""
    def one(match: re.Match) -> str:
        url, tail = _split_trailing(match.group(0))
        return (url if keep(url) else tag_url(url, utm)) + tail
    return _TEXT_URL.sub(one, text)


def tag_html(document: str, utm: dict[str, str], keep: Callable[[str], bool]) -> str:
    """Tag the href of every <a> in an HTML document except those `keep` says to leave as they are."""
    def one(match: re.Match) -> str:
        url = html.unescape(match.group(3))
        if keep(url):
            return match.group(0)
        quote = match.group(2)
        return f"{match.group(1)}{quote}{html.escape(tag_url(url, utm), quote=True)}{quote}"
    return _HREF.sub(one, document)

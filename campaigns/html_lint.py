"""A small lint for HTML e-mail: what mail clients strip or refuse, found before a send.

Mail clients (Gmail, Outlook, Apple Mail, the Japanese carriers' webmail) drop external
style sheets and scripts, show nothing for an image without alt text when images are
blocked (the default in many), lay out an image without a width attribute at its natural
size in Outlook, and Gmail clips a message over 102 KB behind a "[Message clipped]" link,
hiding the footer with the unsubscribe link. `lint_email_html` returns each problem found.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

GMAIL_CLIP_BYTES = 102 * 1024
_EXTERNAL_CSS = re.compile(r"@import\b|url\(\s*['\"]?(?:https?:)?//", re.I)


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "script":
            self.problems.append("<script>: mail clients remove scripts (and spam filters count them)")
        elif tag == "link" and "stylesheet" in a.get("rel", "").lower():
            self.problems.append(f"<link rel=stylesheet href={a.get('href')!r}>: external CSS is not loaded by "
                                 "mail clients; style inline (MJML does)")
        elif tag == "img":
            src = a.get("src", "")
            if not a.get("alt", "").strip():
                self.problems.append(f"<img src={src!r}> has no alt text: shown as nothing when images are blocked")
            if not a.get("width", "").strip():
                self.problems.append(f"<img src={src!r}> has no width attribute: Outlook shows it at natural size")
        elif tag == "style":
            self._in_style = True
        style = a.get("style", "")
        if style and _EXTERNAL_CSS.search(style):
            self.problems.append(f"<{tag} style=...> loads an external resource: {style[:80]!r}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style and _EXTERNAL_CSS.search(data):
            self.problems.append("<style> imports external CSS (@import or a remote url()): not loaded by mail clients")

    def handle_comment(self, data: str) -> None:
        # Outlook's conditional comments hold markup too (<!--[if mso]><link ...><![endif]-->).
        if re.search(r"<link\b[^>]*stylesheet|@import|<script\b", data, re.I):
            self.problems.append("a conditional comment loads external CSS or a script")


def lint_email_html(document: str) -> list[str]:
    """Every problem found in one HTML e-mail (empty: it passes)."""
    checker = _Checker()
    checker.feed(document)
    checker.close()
    size = len(document.encode("utf-8"))
    if size >= GMAIL_CLIP_BYTES:
        checker.problems.append(f"{size:,} bytes: Gmail clips messages of 102 KB or more (the footer with the "
                                "unsubscribe link is hidden)")
    return checker.problems

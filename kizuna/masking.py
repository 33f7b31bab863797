"""Masking personal data for display: reports, logs and error messages show enough to find a
value, never the value itself.

Small pure functions, one per kind of value, and `mask_value(column, value)`, which picks
the masker from the column's name:

    mask_email("taro@example.com")    -> "t***@example.com"
    mask_phone("090-1234-5678")       -> "090-****-5678"   (separators and width kept)
    mask_postal_code("150-0001")      -> "150-****"
    mask_text("山田")                 -> "山***"            (names, addresses, free text)
    mask_line_user_id("U1234abcd...") -> "U1234***"

What is kept is what tells a person what is wrong with a value (the domain, the number's
layout, full-width digits, a leading `=`), not who it belongs to. Characters that are
invisible or break a line (C0/C1 controls, zero-width and bidi-override characters) are
never passed through: a masked value names them instead (`山*** (contains U+0000)`), and
`escape_unsafe` makes them visible in values that are not personal.
"""

from __future__ import annotations

import re
from typing import Any, Callable

#: C0/C1 control characters (NUL, TAB, LF, CR, DEL, ...), zero-width characters, bidi
#: marks and overrides, invisible operators and the byte-order mark: a regular expression
#: (Python and DuckDB syntax) also used by the quality checks.
UNSAFE_CHARACTERS = "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]"
_UNSAFE = re.compile(UNSAFE_CHARACTERS)

#: What a spreadsheet treats as the start of a formula when a CSV list is opened in it.
FORMULA_PREFIXES = ("=", "+", "-", "@")

_HIDDEN = "***"
_EMAIL = re.compile(r"[^\s@'\"<>(),;:\[\]]+[@＠][^\s@'\"<>(),;:\[\]]+\.[^\s@'\"<>(),;:\[\].]+")
# A Japanese phone number inside a longer text: 0 + area/carrier code, with or without hyphens.
_PHONE_IN_TEXT = re.compile(r"(?<![\d\w])(?:0\d{1,4}-\d{1,4}-\d{3,4}|0[5789]0\d{8}|0\d{9})(?![\d\w])")


def escape_unsafe(text: str) -> str:
    """`text` with each unsafe character written as `<U+XXXX>`, so it is seen, not obeyed."""
    return _UNSAFE.sub(lambda m: f"<U+{ord(m.group(0)):04X}>", text)


def unsafe_characters(text: str) -> list[str]:
    """The distinct unsafe characters of `text`, as `U+XXXX`, in order of appearance."""
    return list(dict.fromkeys(f"U+{ord(c):04X}" for c in _UNSAFE.findall(text)))


def mask_text(value: str) -> str:
    """A name, kana, address or free text: its first character only (`山***`)."""
    return escape_unsafe(value[:1]) + _HIDDEN if value else value


def mask_email(value: str) -> str:
    """The local part's first character and the domain (`t***@example.com`).

    The domain stays: it is what is usually wrong (a typo, a full-width dot) and
    rarely identifies anyone. A value with no `@` (nor `＠`) is masked as text.
    """
    at = max(value.rfind("@"), value.rfind("＠"))
    if at < 0:
        return mask_text(value)
    return escape_unsafe(value[:1]) + _HIDDEN + escape_unsafe(value[at:])


def _mask_digits(value: str, keep_first: int, keep_last: int) -> str:
    """Digits (also full-width ones) starred except the first/last few; everything else kept."""
    positions = [i for i, c in enumerate(value) if c.isdigit()]
    if len(positions) <= keep_first + keep_last:  # too short to show any part of it
        keep_first = keep_last = 0
    hidden = set(positions[keep_first:len(positions) - keep_last])
    return escape_unsafe("".join("*" if i in hidden else c for i, c in enumerate(value)))


def mask_phone(value: str) -> str:
    """The area or carrier code (the leading digits before a separator, at most three) and the
    last four digits, the layout kept (`090-****-5678`, `03-****-5678`, `090 **** 5678`)."""
    leading = len(value) - len(value.lstrip("0123456789０１２３４５６７８９"))
    return _mask_digits(value, min(3, leading), 4)


def mask_postal_code(value: str) -> str:
    """The first three digits (the region), the layout kept (`150-****`)."""
    return _mask_digits(value, 3, 0)


def mask_line_user_id(value: str) -> str:
    """The first five characters of a LINE user id (`U1234***`)."""
    return escape_unsafe(value[:5]) + _HIDDEN if value else value


def masker_for(column: str) -> Callable[[str], str]:
    """The masker for a personal column, chosen by its name (e-mail, phone, postal code, LINE id, text)."""
    name = column.lower()
    if "email" in name or "mail_address" in name:
        return mask_email
    if "phone" in name or "tel" in name.split("_") or "mobile" in name:
        return mask_phone
    if "postal" in name or "zip" in name:
        return mask_postal_code
    if "line_user_id" in name or name == "line_id":
        return mask_line_user_id
    return mask_text


def mask_value(column: str, value: Any) -> Any:
    """`value` of the personal column `column`, masked for display (None stays None).

    Unsafe characters anywhere in the value are named after the mask, so a check that
    finds them still shows what it found: `山*** (contains U+0000)`.
    """
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    masked = masker_for(column)(text)
    found = unsafe_characters(text)
    return masked + (f" (contains {', '.join(found)})" if found else "")


def mask_contacts_in(text: str) -> str:
    """`text` (e.g. a message or a SQL check's example) with every e-mail address and
    Japanese phone number in it masked; unsafe characters made visible."""
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    text = _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), text)
    return escape_unsafe(text)

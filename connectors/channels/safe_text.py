"""Text that leaves kizuna for a person: no control characters, no spreadsheet formulas.

Customer data arrives as the cart system holds it, and shops' data is not clean: a NUL
or a line break in a name, a zero-width space in an address, a name such as
`=HYPERLINK(...)` typed into a web form. The raw-data gate reports them
(`customers.*_no_control_characters`); this module makes them harmless on the way out:

- `one_line`: header values and list fields (e-mail `Subject`, a name on a DM label, an
  address): every control, zero-width and bidi-override character removed, any run of
  line breaks and tabs becomes one space. A header can then never be split in two.
- `clean_body`: message bodies: the same characters removed, but line breaks kept.
- `spreadsheet_cell`: a CSV field a person opens in Excel or LibreOffice: `one_line`, and a
  value starting with `=`, `+`, `-`, `@`, a tab or a CR is prefixed with `'`, as the OWASP
  guidance on CSV injection recommends, so it is shown as text and never evaluated.
"""

from __future__ import annotations

import re

#: Removed everywhere: C0 controls except TAB/LF/CR (handled below), DEL, C1 controls, zero-width
#: characters, bidi embeddings/overrides/isolates, invisible operators, and the byte-order mark.
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064"
                        "\u2066-\u2069\ufeff]")
#: Line and paragraph separators: a line break in a body, a space in a one-line value.
_BREAKS = re.compile("\r\n|[\r\n\u2028\u2029\x85]")
_RUNS_OF_SPACE = re.compile(r"[ \t]*[\r\n\t\u2028\u2029\x85]+[ \t]*")
#: What `clean_body` changes: the invisible characters and every line break other than LF.
_BODY_FIX = re.compile(_INVISIBLE.pattern[:-1] + "\r\u2028\u2029]")
#: First characters that make a spreadsheet treat a cell as a formula (OWASP: CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def one_line(value: object) -> str:
    """`value` as one line of visible text (None becomes "")."""
    if value is None:
        return ""
    text = str(value)
    if not text.isprintable():  # fast path: most values are plain text
        text = _RUNS_OF_SPACE.sub(" ", _INVISIBLE.sub("", text))
    return text.strip()


def clean_body(value: object) -> str:
    """A message body without invisible characters; line breaks kept (as LF)."""
    if value is None:
        return ""
    text = str(value)
    if not _BODY_FIX.search(text):  # fast path: one scan, nothing to change (bodies have line breaks)
        return text
    return _BREAKS.sub("\n", _INVISIBLE.sub("", text))


def spreadsheet_cell(value: object) -> str:
    """A CSV field that a spreadsheet shows as text, never runs as a formula."""
    text = one_line(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text

"""Blanking a person's fields in CSV and JSON-lines files, and their values in pages, keeping the rest as is.

CSV files (archived exports, DM / call / insert lists) are rewritten in their own encoding
(UTF-8 with or without BOM, or CP932) and only the records that change are re-serialised:
every other record keeps its original bytes. This works on bytes because in both
encodings the CSV syntax bytes (`,` `"` CR LF) never occur inside a multi-byte character
(CP932 trail bytes are 0x40 and above, UTF-8 continuation bytes 0x80 and above): the file
is split into records as Latin-1 text (one character per byte), and each field is decoded
with the real encoding only to look at it.

Every rewrite goes to a temporary file in the same folder, is flushed to disk and renamed
over the original: a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

UTF8_BOM = b"\xef\xbb\xbf"
REDACTED = "[erased]"

#: Given the header and one record's decoded values, the indexes of the fields to blank (empty: keep).
RowDecision = Callable[[list[str], list[str]], set[int]]


@dataclass
class CsvScrub:
    """What scrubbing one CSV file did."""

    encoding: str
    rows_blanked: int = 0
    rewritten: bool = False


def detect_encoding(data: bytes) -> str:
    """`utf-8-sig`, `utf-8` or `cp932`, the way the loader reads exports (UTF-8 when all of it is)."""
    if data.startswith(UTF8_BOM):
        return "utf-8-sig"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "cp932"


def _records(text: str) -> Iterator[str]:
    """CSV records of Latin-1 text with their line endings; a quoted line break stays inside its record
    (a record is complete once it holds an even number of quote characters)."""
    pending: list[str] = []
    quotes = 0
    for line in text.splitlines(keepends=True):
        # splitlines also breaks at \x0b, \x0c, \x1c-\x1e and \x85: none is a CSV record end
        pending.append(line)
        quotes += line.count('"')
        if quotes % 2 == 0 and (line.endswith("\n") or line.endswith("\r")):
            yield "".join(pending)
            pending, quotes = [], 0
    if pending:
        yield "".join(pending)


def _ending(record: str) -> str:
    if record.endswith("\r\n"):
        return "\r\n"
    if record.endswith("\n") or record.endswith("\r"):
        return record[-1]
    return ""


def _fields(record: str) -> list[str]:
    body = record[: len(record) - len(_ending(record))]
    return next(csv.reader([body]), [])


def _serialise(fields: list[str], ending: str) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue() + ending


def scrub_csv(path: Path, decide: RowDecision) -> CsvScrub:
    """Blank the fields `decide` names, record by record; rewrite the file only when something changed."""
    data = path.read_bytes()
    encoding = detect_encoding(data)
    real = "utf-8" if encoding == "utf-8-sig" else encoding
    result = CsvScrub(encoding)
    text = data.decode("latin-1")
    out: list[str] = []
    header: list[str] | None = None
    for record in _records(text):
        if header is None:
            bom = UTF8_BOM.decode("latin-1")
            header = [h.encode("latin-1").decode(real, errors="replace").strip()
                      for h in _fields(record[len(bom):] if record.startswith(bom) else record)]
            out.append(record)
            continue
        fields = _fields(record)
        values = [f.encode("latin-1").decode(real, errors="replace") for f in fields]
        blank = {i for i in decide(header, values) if i < len(fields) and fields[i] != ""}
        if not blank:
            out.append(record)
            continue
        result.rows_blanked += 1
        out.append(_serialise(["" if i in blank else f for i, f in enumerate(fields)], _ending(record)))
    if result.rows_blanked:
        write_atomically(path, "".join(out).encode("latin-1"))
        result.rewritten = True
    return result


def redact_jsonl(path: Path, redact: Callable[[dict], dict | None]) -> int:
    """Replace each JSON line for which `redact` returns a new object; returns how many lines changed.
    Lines that are not JSON objects are kept as they are."""
    lines = path.read_bytes().split(b"\n")
    changed = 0
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        new = redact(obj)
        if new is not None:
            lines[i] = json.dumps(new, ensure_ascii=False).encode("utf-8")
            changed += 1
    if changed:
        write_atomically(path, b"\n".join(lines))
    return changed


def literal_forms(value: str) -> set[bytes]:
    """The ways a value can be written in a UTF-8 page: as is, HTML-escaped, JSON-escaped (both ways)."""
    forms = {value, html.escape(value), html.escape(value, quote=False),
             json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    return {f.encode("utf-8") for f in forms if f}


def redact_literals(path: Path, values: set[str]) -> int:
    """Replace every occurrence of the values (in any of their written forms) by `[erased]`;
    returns how many were replaced. Longer values first, so a full name goes before its parts."""
    data = path.read_bytes()
    count = 0
    for value in sorted(values, key=len, reverse=True):
        for form in sorted(literal_forms(value), key=len, reverse=True):
            n = data.count(form)
            if n:
                data = data.replace(form, REDACTED.encode())
                count += n
    if count:
        write_atomically(path, data)
    return count


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` over `path` through a temporary file, flushed to disk, then renamed; keeps the mode."""
    partial = path.with_name(path.name + ".erasure-part")
    mode = path.stat().st_mode & 0o777 if path.exists() else None
    with partial.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if mode is not None:
        os.chmod(partial, mode)
    os.replace(partial, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

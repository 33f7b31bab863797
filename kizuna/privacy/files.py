"""Blanking a person's fields in CSV and JSON-lines files, and their values in pages, keeping the rest as is.

CSV files (archived exports, DM / call / insert lists) are rewritten in their own encoding
(UTF-8 with or without BOM, or CP932) and only the records that change are re-serialised:
every other record keeps its original bytes. This works on bytes because in both
encodings the CSV syntax bytes (`,` `"` CR LF) never occur inside a multi-byte character
(CP932 trail bytes are 0x40 and above, UTF-8 continuation bytes 0x80 and above): records
are split on the bytes, parsed as Latin-1 text (one character per byte), and each field
is decoded with the real encoding only to look at it. Files are streamed: an archived
full export of a million customers is read, not loaded.

Every rewrite goes to a temporary file in the same folder, is flushed to disk and renamed
over the original: a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import codecs
import csv
import html
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

UTF8_BOM = b"\xef\xbb\xbf"
CHUNK_BYTES = 8 << 20
REDACTED = "[erased]"



class Row:
    """One CSV record; a field is decoded only when it is looked at (most never are)."""

    __slots__ = ("fields", "encoding", "_decoded")

    def __init__(self, fields: list[str], encoding: str) -> None:
        self.fields = fields  # Latin-1 text: one character per byte
        self.encoding = encoding
        self._decoded: dict[int, str] = {}

    def has(self, i: int) -> bool:
        """Whether field `i` exists and is not empty."""
        return i < len(self.fields) and self.fields[i] != ""

    def __getitem__(self, i: int) -> str:
        if i not in self._decoded:
            raw = self.fields[i] if i < len(self.fields) else ""
            self._decoded[i] = raw.encode("latin-1").decode(self.encoding, errors="replace")
        return self._decoded[i]


#: Given a file's header, a function of each record that names the fields to blank (an empty set: none),
#: or None when nothing in that file needs looking at (it is then not read further).
RowDecider = Callable[[list[str]], Callable[[Row], set[int]] | None]


@dataclass
class CsvScrub:
    """What scrubbing one CSV file did."""

    encoding: str
    rows_blanked: int = 0
    rewritten: bool = False


def detect_encoding(path: Path) -> str:
    """`utf-8-sig`, `utf-8` or `cp932`, the way the loader reads exports: UTF-8 when all of it is
    (read in chunks: bounded memory)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    with path.open("rb") as fh:
        first = fh.read(CHUNK_BYTES)
        chunk = first
        try:
            while chunk:
                decoder.decode(chunk)
                chunk = fh.read(CHUNK_BYTES)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp932"
    return "utf-8-sig" if first.startswith(UTF8_BOM) else "utf-8"


def _records(fh: BinaryIO) -> Iterator[bytes]:
    """The CSV records of a binary file, each with its line ending. A quoted line break stays inside
    its record: a record is complete once it holds an even number of quote characters."""
    pending: list[bytes] = []
    quotes = 0
    for line in fh:  # lines end at LF (a CRLF ending keeps its CR)
        pending.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            yield b"".join(pending)
            pending, quotes = [], 0
    if pending:
        yield b"".join(pending)


def _ending(record: bytes) -> bytes:
    if record.endswith(b"\r\n"):
        return b"\r\n"
    return b"\n" if record.endswith(b"\n") else b""


def _fields(record: bytes) -> list[str]:
    """The record's fields as Latin-1 text (one character per byte: nothing is lost or merged)."""
    body = record[: len(record) - len(_ending(record))].decode("latin-1")
    return next(csv.reader([body]), [])


def serialise_record(fields: list[str], ending: str = "") -> str:
    """One CSV record (minimal quoting, as the csv module writes it) with the given line ending."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue() + ending


def _header(path: Path) -> list[str]:
    """The column names of the first record (ASCII in any of the encodings: read as UTF-8)."""
    with path.open("rb") as fh:
        record = next(_records(fh), b"")
    record = record[len(UTF8_BOM):] if record.startswith(UTF8_BOM) else record
    return [h.encode("latin-1").decode("utf-8", errors="replace").strip() for h in _fields(record)]


def _scan_csv(path: Path, real: str, decide: Callable[[Row], set[int]]) -> dict[int, set[int]]:
    """{record number: field indexes to blank} (record 0 is the header)."""
    changes: dict[int, set[int]] = {}
    with path.open("rb") as fh:
        records = _records(fh)
        next(records, None)
        for n, record in enumerate(records, start=1):
            row = Row(_fields(record), real)
            blank = {i for i in decide(row) if row.has(i)}
            if blank:
                changes[n] = blank
    return changes


def scrub_csv(path: Path, decider: RowDecider) -> CsvScrub:
    """Blank the fields the decider names, record by record. One reading pass decides; only when
    something changes is the file written again (streamed: memory stays bounded for any size)."""
    decide = decider(_header(path))
    if decide is None:
        return CsvScrub("")
    encoding = detect_encoding(path)
    real = "utf-8" if encoding == "utf-8-sig" else encoding
    result = CsvScrub(encoding)
    changes = _scan_csv(path, real, decide)
    if not changes:
        return result
    partial = path.with_name(path.name + ".erasure-part")
    with path.open("rb") as src, partial.open("wb") as dst:
        for n, record in enumerate(_records(src)):
            blank = changes.get(n)
            if blank is None:
                dst.write(record)
                continue
            fields = _fields(record)
            kept = ["" if i in blank else f for i, f in enumerate(fields)]
            dst.write(serialise_record(kept, _ending(record).decode("latin-1")).encode("latin-1"))
        dst.flush()
        os.fsync(dst.fileno())
    _replace(partial, path)
    result.rows_blanked, result.rewritten = len(changes), True
    return result


def redact_jsonl(path: Path, redact: Callable[[dict], dict | None], candidate: Callable[[bytes], bool]) -> int:
    """Replace each JSON line for which `redact` returns a new object; returns how many lines changed.
    Only lines `candidate` accepts (a cheap test on the bytes) are parsed; lines that are not JSON
    objects are kept as they are. Streamed, written only when a line changes."""
    def changed_lines(fh: BinaryIO) -> Iterator[tuple[bytes, bytes | None]]:
        for line in fh:
            new = None
            if candidate(line):
                try:
                    obj = json.loads(line)
                except ValueError:
                    obj = None
                if isinstance(obj, dict) and (replaced := redact(obj)) is not None:
                    ending = b"\n" if line.endswith(b"\n") else b""
                    new = json.dumps(replaced, ensure_ascii=False).encode("utf-8") + ending
            yield line, new

    with path.open("rb") as fh:
        count = sum(1 for _, new in changed_lines(fh) if new is not None)
    if not count:
        return 0
    partial = path.with_name(path.name + ".erasure-part")
    with path.open("rb") as src, partial.open("wb") as dst:
        for line, new in changed_lines(src):
            dst.write(line if new is None else new)
        dst.flush()
        os.fsync(dst.fileno())
    _replace(partial, path)
    return count


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
    """Write `data` over `path` through a temporary file, flushed to disk, then renamed."""
    partial = path.with_name(path.name + ".erasure-part")
    with partial.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    _replace(partial, path)


def _replace(partial: Path, path: Path) -> None:
    """Put `partial` in place of `path`, with the original's permissions, durably."""
    os.chmod(partial, path.stat().st_mode & 0o777)
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

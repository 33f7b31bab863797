"""Loading nightly exports into the `raw` schema of the DuckDB warehouse.

For every night not yet loaded (oldest first), and for each of its files:

1. **Checksum** the original bytes (SHA-256). A file whose checksum is the one last
   loaded for that night is *skipped*: loading the same night twice changes nothing.
2. **Decode**: UTF-8 (with or without BOM) is read as is; CP932 (Shift_JIS) is
   stream-decoded in chunks into a UTF-8 temporary file (bounded memory). With
   `encoding="auto"` a file is UTF-8 when the whole file decodes as UTF-8, else CP932.
   A file starting with a UTF-8 BOM is UTF-8 in every mode: if its body is not, it is
   refused (a BOM glued onto a CP932 body), never read as something else.
3. **Header check**: a missing required column stops the night with an `ExportError`;
   a missing optional column is not loaded (stored values are kept, new keys get
   null); unknown columns are ignored (warning).
4. **Read** with DuckDB's `read_csv` (all columns as text). Records DuckDB cannot parse
   (wrong number of fields, longer than `MAX_RECORD_BYTES`, ...) go to `raw._quarantine`
   via its rejects table (see `_set_aside_long_records` for the records it cannot keep).
5. **Validate** each row: every value must cast to its column's type, required and
   key columns must not be empty, `updated_at` must not be later than the night's end
   (midnight after it) + `future_slack`. Bad rows go to `raw._quarantine` with the reason.
   Two rows with the same key in one file: the newest `updated_at` (then the later
   row) is kept, the others are quarantined as `duplicate key in file`.
6. **Merge** into `raw.<table>` on the primary key: new keys are inserted; an existing
   key is updated only when the incoming `updated_at` is newer (or the stored one is
   beyond its own night's end + slack: a version from the future never locks a key).
   Only the columns the file has are written.
7. **Log** one row per file in `raw._load_log`.
8. **Gate** (optional hook): `gate(con, night, files_dir)` runs on the night's rows,
   still uncommitted; if it raises, nothing of the night is kept and the files are
   logged as `rejected`.

All files of one night load in one transaction: if any file fails, nothing of that
night is written and the `ExportError` propagates. After the commit each original
file is copied, byte for byte, to `<archive_dir>/<night>/<file>`. `load_pending` goes
oldest first and stops at the first night that fails or is refused.

Line numbers in the quarantine are CSV record numbers counting the header as 1 (the
same as the line number unless a quoted value holds a line break).
"""

from __future__ import annotations

import codecs
import csv
import errno
import hashlib
import io
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time as clock, timedelta, timezone
from pathlib import Path

import duckdb

from connectors.sources.base import ExportFileRef, ExportSource, link_refused
from connectors.sources.export_format import EXPORT_FILES, TYPE_FORMATS, ExportFile
from kizuna.errors import ExportError, NightRejected
from kizuna.i18n import gettext as _

log = logging.getLogger("kizuna.loader")

RAW = "raw"
LOAD_LOG = f"{RAW}._load_log"
QUARANTINE = f"{RAW}._quarantine"
META_COLUMNS = (("_night", "DATE"), ("_source_file", "VARCHAR"), ("_loaded_at", "TIMESTAMP"))
CHUNK_BYTES = 8 << 20
#: What a value must look like before it is cast (TRY_CAST alone is too lenient).
STRICT_PATTERNS = {
    "integer": r"[+-]?[0-9]+",
    "date": r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}",
    "timestamp": r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}[ T][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?",
}
FORMAT_HINT = "see docs/export-format.md"
#: The longest CSV record read, in bytes: DuckDB's `max_line_size`, set explicitly (its
#: default) so that this module and DuckDB agree. Not raised: DuckDB's read buffer must
#: be larger than it (it refuses `buffer_size` <= `max_line_size`), so a 64 MB limit
#: would mean 64 MB+ buffers per reading thread, and no customer, order or survey record
#: comes near 2 MB: a longer one is a broken export (often a quote never closed, which
#: swallows the lines after it) and is quarantined with its length.
MAX_RECORD_BYTES = 2_000_000
#: DuckDB keeps only the first ~10,000 bytes of a record it rejects (`csv_line`), cut
#: through a multi-byte character when that is where the limit falls, and then fails the
#: whole read with "Invalid unicode (byte sequence mismatch)" (DuckDB 1.5; duckdb#18980).
#: Records that DuckDB would reject and that are longer than this are set aside first.
REJECT_LINE_BYTES = 9_000
#: The header line is read on its own (to check the columns); a first line longer than
#: this is not an export's header.
HEADER_MAX_BYTES = 65_536
#: An error message lists at most this many names, each cut to `NAME_WIDTH` characters
#: (a wrong file can have a "header" of any length).
NAMES_SHOWN, NAME_WIDTH = 20, 40
#: What a row's `updated_at` may exceed the night's end by, unless told otherwise.
DEFAULT_FUTURE_SLACK = timedelta(days=1)

#: `gate(con, night, files_dir)`: called inside the night's transaction; raising refuses the night.
Gate = Callable[[duckdb.DuckDBPyConnection, date, "Path | None"], object]


# -- results ------------------------------------------------------------------------------


@dataclass
class LoadedFile:
    """What loading one file did. `status` is `loaded` or `skipped` (already loaded).

    (`raw._load_log` also has `rejected`: a file loaded but not kept, its night refused by the gate.)
    """

    file_name: str
    status: str
    checksum: str
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_quarantined: int = 0
    encoding: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_unchanged(self) -> int:
        """Valid rows that changed nothing (an equal or newer version was already loaded)."""
        return self.rows_read - self.rows_inserted - self.rows_updated - self.rows_quarantined

    def summary(self) -> str:
        if self.status == "skipped":
            return f"{self.file_name}: skipped (already loaded)"
        return (f"{self.file_name}: {self.rows_read:,} read, {self.rows_inserted:,} inserted, "
                f"{self.rows_updated:,} updated, {self.rows_quarantined:,} quarantined")


@dataclass
class NightLoadResult:
    """What loading one night did, file by file.

    `gate` is what the gate returned for the night (None when no gate ran: no gate given,
    or nothing new to check); `ignored` what the source did not load in the night's folder.
    """

    night: date
    files: list[LoadedFile] = field(default_factory=list)
    seconds: float = 0.0
    gate: object = None
    ignored: list[str] = field(default_factory=list)

    @property
    def loaded(self) -> list[LoadedFile]:
        return [f for f in self.files if f.status == "loaded"]

    @property
    def skipped(self) -> list[LoadedFile]:
        return [f for f in self.files if f.status == "skipped"]

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_inserted(self) -> int:
        return sum(f.rows_inserted for f in self.files)

    @property
    def rows_updated(self) -> int:
        return sum(f.rows_updated for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    @property
    def warnings(self) -> list[str]:
        return [w for f in self.files for w in f.warnings]

    def summary(self) -> str:
        if not self.loaded:
            return f"night {self.night}: nothing new ({len(self.files)} file(s) already loaded)"
        text = (f"night {self.night}: {len(self.loaded)} file(s) loaded"
                + (f", {len(self.skipped)} skipped" if self.skipped else "")
                + f", {self.rows_read:,} rows read, {self.rows_inserted:,} inserted, "
                f"{self.rows_updated:,} updated, {self.rows_quarantined:,} quarantined "
                f"({self.seconds:.1f} s)")
        if self.ignored:
            text += f"; {len(self.ignored)} other entr{'y' if len(self.ignored) == 1 else 'ies'} ignored"
        return text


# -- tables -------------------------------------------------------------------------------


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def raw_table(spec: ExportFile) -> str:
    return f"{RAW}.{_q(spec.table)}"


def ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw schema, one table per export file, the load log and the quarantine.

    Columns added to the format later are added to existing tables (as nullable).
    """
    con.execute(f"create schema if not exists {RAW}")
    existing: dict[str, set[str]] = {}
    for table, column in con.execute(
            "select table_name, column_name from duckdb_columns() where schema_name = ?", [RAW]).fetchall():
        existing.setdefault(table, set()).add(column)
    for spec in EXPORT_FILES:
        cols = [(c.name, c.duckdb_type) for c in spec.columns] + list(META_COLUMNS)
        if spec.table not in existing:
            con.execute(f"create table {raw_table(spec)} ("
                        + ", ".join(f"{_q(n)} {t}" for n, t in cols) + ")")
            continue
        for n, t in cols:
            if n not in existing[spec.table]:
                con.execute(f"alter table {raw_table(spec)} add column {_q(n)} {t}")
    con.execute(f"""create table if not exists {LOAD_LOG} (
        night date, file_name varchar, checksum varchar, rows_read bigint, rows_inserted bigint,
        rows_updated bigint, rows_quarantined bigint, status varchar, loaded_at timestamp,
        seconds double, encoding varchar, file_size bigint, file_mtime_ns bigint, reason varchar)""")
    if "_load_log" in existing and "reason" not in existing["_load_log"]:  # a warehouse from before `rejected`
        con.execute(f"alter table {LOAD_LOG} add column reason varchar")
    con.execute(f"""create table if not exists {QUARANTINE} (
        night date, file_name varchar, line bigint, "key" varchar, reason varchar, raw_row varchar,
        checksum varchar, quarantined_at timestamp)""")


# -- bytes: checksum and decoding ---------------------------------------------------------


@dataclass
class _Scan:
    checksum: str
    size: int
    utf8_error: str | None  # where the file stops being UTF-8, None when it all is
    bom: bool = False  # the file starts with a UTF-8 byte-order mark


def _where(offset: int, newlines_before: int) -> str:
    return f"byte offset {offset:,} (line {newlines_before + 1:,})"


def _unreadable(label: str, exc: OSError) -> ExportError:
    return ExportError(f"{label}: cannot be read ({exc.strerror}). Check the file, then run the night again.")


def _refuse_unless_regular(path: Path, label: str) -> os.stat_result:
    """The file's own status; a symbolic link or anything but a regular file is refused.

    The source refuses them too; this keeps any source from making the loader read
    through a link (or block forever on a pipe).
    """
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise _unreadable(label, exc) from None
    if stat.S_ISLNK(st.st_mode):
        raise link_refused(label, "the file itself (a copy)")
    if not stat.S_ISREG(st.st_mode):
        raise ExportError(f"{label} is not a regular file (a folder, a pipe or a device): put the CSV file "
                          "itself there, then run the night again.")
    return st


def _open_no_follow(path: Path, label: str) -> io.BufferedReader:
    """Open for reading, refusing a symbolic link even if one replaced the file since it was checked."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise link_refused(label, "the file itself (a copy)") from None
        raise _unreadable(label, exc) from None
    return os.fdopen(fd, "rb")


def _scan(path: Path, check_utf8: bool, label: str = "") -> _Scan:
    """SHA-256 of the file and, when asked or when it starts with a BOM, whether all of it
    is valid UTF-8 (one pass)."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")("strict") if check_utf8 else None
    size = newlines = 0
    error = None
    bom = False
    with _open_no_follow(path, label or str(path)) as fh:
        while chunk := fh.read(CHUNK_BYTES):
            if size == 0 and chunk.startswith(codecs.BOM_UTF8):
                bom = True
                if decoder is None:  # a BOM declares UTF-8 whatever the setting: check it
                    decoder, check_utf8 = codecs.getincrementaldecoder("utf-8")("strict"), True
            digest.update(chunk)
            if decoder is not None:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    error = _where(size + exc.start, newlines + chunk.count(b"\n", 0, exc.start))
                    decoder = None
            if decoder is not None:
                newlines += chunk.count(b"\n")
            size += len(chunk)
    if decoder is not None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            error = _where(size, newlines) + " (the file ends inside a character)"
    return _Scan(digest.hexdigest(), size, error if check_utf8 else "not checked", bom)


def _decodes_as_cp932(path: Path, skip: int) -> bool:
    """Whether the file, after its first `skip` bytes, is valid CP932 (for an error message)."""
    decoder = codecs.getincrementaldecoder("cp932")("strict")
    with path.open("rb") as fh:
        fh.seek(skip)
        try:
            while chunk := fh.read(CHUNK_BYTES):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _bom_but_not_utf8(label: str, path: Path, scan: _Scan) -> ExportError:
    body = ("the rest of the file is CP932 (Shift_JIS)" if _decodes_as_cp932(path, len(codecs.BOM_UTF8))
            else "the rest is not CP932 (Shift_JIS) either")
    return ExportError(
        f"{label}: starts with a UTF-8 byte-order mark (BOM) but is not UTF-8 after it: the bytes at "
        f"{scan.utf8_error} are not UTF-8, and {body}. A file must be in one encoding throughout: "
        "re-export it as UTF-8 (with or without the BOM) or as CP932 without a BOM, then run the night again.")


def _transcode_cp932(path: Path, out: Path, label: str, utf8_error: str | None) -> None:
    """Stream-decode a CP932 file into UTF-8, chunk by chunk."""
    decoder = codecs.getincrementaldecoder("cp932")("strict")
    offset = newlines = 0
    with path.open("rb") as src, out.open("w", encoding="utf-8", newline="") as dst:
        while True:
            chunk = src.read(CHUNK_BYTES)
            try:
                dst.write(decoder.decode(chunk, final=not chunk))
            except UnicodeDecodeError as exc:
                where = _where(offset + exc.start, newlines + chunk.count(b"\n", 0, exc.start))
                utf8 = f"it is not UTF-8 either ({utf8_error}); " if utf8_error and utf8_error != "not checked" else ""
                raise ExportError(
                    f"{label}: cannot be decoded as CP932 (Shift_JIS) at {where}; {utf8}"
                    "re-export the file as UTF-8 or CP932 (Shift_JIS) and run the night again."
                ) from None
            if not chunk:
                break
            newlines += chunk.count(b"\n")
            offset += len(chunk)


# -- reading and validating one file -------------------------------------------------------


def _read_header(path: Path, label: str) -> list[str] | None:
    """The column names on the first line of a UTF-8 file (None when the file is empty).

    Reads at most `HEADER_MAX_BYTES`: the file may be anything (a 10 MB first line)."""
    with path.open("rb") as fh:
        head = fh.read(HEADER_MAX_BYTES + 1)
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(head)  # a cut character waits, unread
    text = text.removeprefix("\ufeff")
    if len(head) > HEADER_MAX_BYTES and "\n" not in text:
        raise ExportError(
            f"{label}: the first line is longer than {HEADER_MAX_BYTES:,} bytes, so it is not a header line "
            f"naming the columns. Check that this is the export file ({FORMAT_HINT}), then run the night again.")
    try:
        row = next(csv.reader(io.StringIO(text, newline="")))
    except StopIteration:
        return None
    except csv.Error as exc:
        raise ExportError(f"{label}: the header line cannot be read as CSV ({exc}); fix it ({FORMAT_HINT}), "
                          "then run the night again.") from None
    return [name.strip() for name in row]


def _names(names: list[str]) -> str:
    """Names for a message, bounded: at most `NAMES_SHOWN`, each cut to `NAME_WIDTH` characters."""
    def short(name: str) -> str:
        name = "".join(ch if ch.isprintable() else "?" for ch in name[:NAME_WIDTH + 1])
        return name if len(name) <= NAME_WIDTH else name[:NAME_WIDTH - 1] + "…"

    text = ", ".join(short(n) for n in names[:NAMES_SHOWN])
    if len(names) > NAMES_SHOWN:
        text += f" and {len(names) - NAMES_SHOWN:,} more"
    return text or "(nothing)"


def _duration(span: timedelta) -> str:
    """`1 day`, `12 hours`, `1 day 6 hours`, `30 minutes`: how a slack reads in a reason."""
    seconds = int(span.total_seconds())
    parts = []
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts) or "0 seconds"


@dataclass(frozen=True)
class _Bounds:
    """How far in the future a row's `updated_at` may be: the night's end (midnight after
    it, shop time) + the slack. A later version could never be replaced by a real one."""

    night: date
    slack: timedelta

    @property
    def limit(self) -> datetime:
        return datetime.combine(self.night + timedelta(days=1), clock()) + self.slack

    def reason_sql(self, value: str) -> str:
        limit = f"{self.limit:%Y-%m-%d %H:%M:%S}"
        after = (f" is after the night's end + {_duration(self.slack)}: {limit} (night {self.night}); a version "
                 "dated in the future would block every later change of this key, so it is not loaded. Fix "
                 "updated_at in the cart system and send the row again.")
        return (f"case when ({value}) > TIMESTAMP {_sql_str(limit)} then "
                f"'updated_at ' || strftime(({value}), '%Y-%m-%d %H:%M:%S') || {_sql_str(after)} end")


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _format_hint(type_: str) -> str:
    return TYPE_FORMATS[type_].replace("`", "")


def _column_exprs(spec: ExportFile, source_of: dict[str, str], bounds: _Bounds) -> tuple[list[str], list[str]]:
    """Per export column: the typed value, and a reason when the value is bad (else null)."""
    typed, reasons = [], []
    for c in spec.columns:
        src = source_of.get(c.name)
        if src is None:  # optional column absent from the file
            typed.append(f"null::{c.duckdb_type} as {_q(c.name)}")
            continue
        raw = f"s.{_q(src)}"
        present = f"nullif({raw}, '')" if c.type == "string" else f"nullif(trim({raw}), '')"
        if c.type == "string":
            value = present
        elif c.type == "boolean":
            value = (f"case lower(trim({raw})) when 'true' then true when '1' then true "
                     f"when 'false' then false when '0' then false end")
        else:  # the pattern keeps TRY_CAST from rounding '1.5', reading '0x10' or dropping a '+00:00'
            value = (f"case when regexp_full_match(trim({raw}), {_sql_str(STRICT_PATTERNS[c.type])}) "
                     f"then try_cast(trim({raw}) as {c.duckdb_type}) end")
        typed.append(f"{value} as {_q(c.name)}")
        if c.required or c.name in spec.primary_key:
            reasons.append(f"case when {present} is null then {_sql_str(f'{c.name}: required but empty')} end")
        if c.type != "string":
            reasons.append(
                f"case when {present} is not null and ({value}) is null then "
                f"{_sql_str(c.name + ': ')} || '''' || left({raw}, 80) || '''' || "
                f"{_sql_str(f' is not a valid {c.type} (expected {_format_hint(c.type)})')} end")
        if c.name == "updated_at":
            reasons.append(bounds.reason_sql(value))
    return typed, reasons


@dataclass(frozen=True)
class _Reject:
    """A CSV record that is not loaded: its record number (header = 1), its text and why."""

    line: int
    text: str
    reason: str


def _too_long(size: int) -> str:
    return (f"the record is too long: {size:,} bytes, more than the {MAX_RECORD_BYTES:,} a record may have "
            "(often a quote that is never closed, which swallows the lines after it)")


class _Record:
    """One CSV record read piece by piece, as DuckDB splits records (quote and escape `"`):
    a line break ends it only outside quotes, i.e. after an even number of `"`."""

    def __init__(self) -> None:
        self.size = self.commas = 0
        self.in_quotes = self.ends_line = False
        self.head = b""
        self.pieces: list[bytes] | None = []  # None once too long to be kept

    def add(self, piece: bytes) -> None:
        self.size += len(piece)
        self.ends_line = piece.endswith(b"\n")
        if len(self.head) < REJECT_LINE_BYTES:
            self.head += piece[:REJECT_LINE_BYTES - len(self.head)]
        if self.pieces is not None:
            self.pieces.append(piece)
            if self.size > MAX_RECORD_BYTES + 2:  # (+ its line break)
                self.pieces = None
        parts = piece.split(b'"')
        first_outside = 1 if self.in_quotes else 0  # parts alternate outside/inside quotes
        self.commas += sum(part.count(b",") for part in parts[first_outside::2])
        self.in_quotes ^= (len(parts) - 1) % 2 == 1

    @property
    def length(self) -> int:
        """Its bytes without the final line feed (a CR before it counts, as DuckDB counts it)."""
        return self.size - self.ends_line

    def reason(self, columns: int, at_end: bool) -> str | None:
        """Why DuckDB would reject the record (None when it would not)."""
        if self.in_quotes and at_end:
            return (f"cannot be parsed as CSV: a quoted value opened in this record is never closed, so the "
                    f"record runs to the end of the file ({self.length:,} bytes)")
        if self.length > MAX_RECORD_BYTES:
            return _too_long(self.length)
        if self.commas + 1 != columns:
            return (f"cannot be parsed as CSV: {self.commas + 1} fields where the header has {columns} "
                    f"({self.length:,} bytes)")
        return None


def _set_aside_long_records(src: Path, dst: Path, columns: int) -> list[_Reject]:
    """Copy `src` to `dst` without the records DuckDB cannot read or report; return those.

    They are the records longer than `MAX_RECORD_BYTES` and the malformed ones longer than
    `REJECT_LINE_BYTES` (see there: DuckDB fails the whole file on them). Only used when
    DuckDB failed to read the file: the fast path never pays for this Python pass.
    """
    set_aside, number = [], 0
    record = _Record()

    def finish(at_end: bool) -> None:
        nonlocal record, number
        number += 1
        why = None if number == 1 else record.reason(columns, at_end)
        if why is not None and (record.pieces is None or record.size > REJECT_LINE_BYTES):
            if record.pieces is not None:  # the whole record, as for any quarantined row
                text = b"".join(record.pieces).decode("utf-8", "replace").rstrip("\r\n")
            else:  # the original file keeps the rest (the archive copy too)
                text = (record.head.decode("utf-8", "ignore")
                        + f" … (first {len(record.head):,} of {record.length:,} bytes)")
            set_aside.append(_Reject(number, text, why))
        else:
            out.writelines(record.pieces or [])
        record = _Record()

    with src.open("rb") as fh, dst.open("wb") as out:
        while piece := fh.readline(CHUNK_BYTES):
            record.add(piece)
            if piece.endswith(b"\n") and not record.in_quotes:
                finish(at_end=False)
        if record.size:
            finish(at_end=True)
    return set_aside


def _to_original_lines(rejects: list[_Reject], set_aside: list[_Reject]) -> list[_Reject]:
    """DuckDB's rejects of the cleaned copy, renumbered as records of the original file, with
    the records set aside, in order."""
    removed = [r.line for r in set_aside]
    out, j = [], 0
    for r in rejects:  # sorted by line
        while j < len(removed) and removed[j] <= r.line + j:
            j += 1
        out.append(_Reject(r.line + j, r.text, r.reason))
    return sorted(out + set_aside, key=lambda r: r.line)


class _DuckDBCannotRead(Exception):
    """DuckDB failed on a file inside the night's transaction (which it aborts): the night is
    rolled back and loaded again with the file's unreadable records set aside."""

    def __init__(self, prepared: _Prepared, error: duckdb.Error) -> None:
        super().__init__(str(error))
        self.prepared, self.error = prepared, error


def _cannot_read(p: _Prepared, error: BaseException) -> ExportError:
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    return ExportError(f"{p.label}: DuckDB cannot read the file as CSV ({message}). "
                       f"Check that it is a comma-separated file with a header line ({FORMAT_HINT}).")


def _set_aside(p: _Prepared, error: duckdb.Error) -> None:
    """After DuckDB failed on `p`: read a copy without the records it cannot handle next time,
    or give up with the error when there are none (or this was already the copy)."""
    if p.set_aside is not None or p.tmp is None or p.header is None:
        raise _cannot_read(p, error) from None
    cleaned = p.tmp / f"{p.ref.table}.readable.csv"
    set_aside = _set_aside_long_records(p.read_path, cleaned, len(p.header))
    if not set_aside:
        raise _cannot_read(p, error) from None
    log.warning("%s: %d record(s) DuckDB cannot read are quarantined as they are (%s)",
                p.label, len(set_aside), str(error).splitlines()[0])
    p.read_path, p.set_aside = cleaned, set_aside


def _rejects(con: duckdb.DuckDBPyConnection) -> list[_Reject]:
    """Records DuckDB could not parse, one per CSV record (a record can fail several ways:
    DuckDB may report one short record once per missing column; the first message is kept)."""
    rows = con.execute("""select line, trim(any_value(csv_line), chr(10) || chr(13)) as csv_line,
            arg_min(error_message, coalesce(column_idx, 0)) as msg,
            arg_min(error_type::varchar, coalesce(column_idx, 0)) as kind
        from temp._kz_rej group by line order by line""").fetchall()
    rejects = []
    for line, text, message, kind in rows:
        size = re.search(r"Actual Size:\s*([0-9]+)", message or "")
        if kind == "LINE SIZE OVER MAXIMUM" and size:
            rejects.append(_Reject(line, f"{text} … (first {len(text.encode()):,} bytes)", _too_long(int(size[1]))))
        else:
            rejects.append(_Reject(line, text, f"cannot be parsed as CSV: {message}"))
    return rejects


@dataclass
class _Prepared:
    ref: ExportFileRef
    label: str
    checksum: str
    size: int
    mtime_ns: int
    encoding: str = ""
    read_path: Path | None = None
    header: list[str] | None = None
    skip: bool = False
    warnings: list[str] = field(default_factory=list)
    tmp: Path | None = None  # where a cleaned copy may be written
    set_aside: list[_Reject] | None = None  # records kept from DuckDB (read_path is then the cleaned copy)


def _prepare(ref: ExportFileRef, encoding: str, tmp: Path, last_loaded: str | None) -> _Prepared:
    """Checksum, decode and check the header of one file (no database writes)."""
    label = f"{ref.night}/{ref.file_name}"
    st = _refuse_unless_regular(ref.path, label)
    scan = _scan(ref.path, check_utf8=encoding in ("auto", "utf-8"), label=label)
    p = _Prepared(ref, label, scan.checksum, scan.size, st.st_mtime_ns, tmp=tmp)
    if scan.checksum == last_loaded:
        p.skip = True
        return p
    if scan.bom and scan.utf8_error is not None:
        raise _bom_but_not_utf8(label, ref.path, scan)
    if scan.utf8_error is None:
        p.encoding, p.read_path = "utf-8", ref.path
        if encoding == "cp932":
            p.warnings.append(f"{label}: read as UTF-8 although source_encoding is cp932: it starts with a "
                              "UTF-8 byte-order mark (BOM) and all of it is valid UTF-8")
    elif encoding == "utf-8":
        raise ExportError(
            f"{label}: not valid UTF-8 at {scan.utf8_error}. If the shop exports Shift_JIS, set "
            "source_encoding to cp932 (or auto); otherwise re-export the file as UTF-8."
        )
    else:
        p.encoding, p.read_path = "cp932", tmp / f"{ref.table}.utf8.csv"
        _transcode_cp932(ref.path, p.read_path, label, scan.utf8_error)
    p.header = _read_header(p.read_path, label)
    spec = ref.spec
    if p.header is None:
        p.warnings.append(f"{label}: the file is empty (no header line); nothing loaded from it")
        return p
    counts = Counter(p.header)
    dupes = sorted(h for h, n in counts.items() if h and n > 1)
    if dupes:
        raise ExportError(
            f"{label}: the header names column(s) {_names(dupes)} more than once. "
            f"Fix the export's header line ({FORMAT_HINT}) and run the night again.")
    missing = [c for c in spec.required_columns if c not in counts]
    if missing:
        raise ExportError(
            f"{label}: required column(s) {', '.join(missing)} missing from the header. "
            f"Found: {_names(p.header)}. Expected at least: {', '.join(spec.required_columns)}. "
            f"Fix the export so its first line names every required column ({FORMAT_HINT}), "
            "then run the night again; nothing of this night was loaded.")
    extra = [h or f"(unnamed column {i + 1})" for i, h in enumerate(p.header) if h not in spec.column_names]
    if extra:
        p.warnings.append(f"{label}: unknown column(s) ignored: {_names(extra)}")
    return p


def _load_file(con: duckdb.DuckDBPyConnection, p: _Prepared, loaded_at: datetime, bounds: _Bounds) -> LoadedFile:
    started = time.perf_counter()
    spec, night = p.ref.spec, p.ref.night
    result = LoadedFile(p.ref.file_name, "loaded", p.checksum, encoding=p.encoding, warnings=list(p.warnings))
    if p.header is None:
        return result
    source_of = {name: f"c{i}" for i, name in enumerate(p.header)}
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(p.header))) + "}"
    con.execute("drop table if exists temp._kz_rej; drop table if exists temp._kz_rejscan")
    try:
        con.execute(f"""create or replace temp table _kz_stg as select * from read_csv(?, header = true,
            auto_detect = false, delim = ',', quote = '"', escape = '"', columns = {columns},
            max_line_size = {MAX_RECORD_BYTES},
            store_rejects = true, rejects_table = '_kz_rej', rejects_scan = '_kz_rejscan')""",
                    [str(p.read_path)])
    except duckdb.Error as exc:  # the transaction is aborted: the night starts again without those records
        raise _DuckDBCannotRead(p, exc) from None
    rejects = _rejects(con)
    if p.set_aside is not None:
        rejects = _to_original_lines(rejects, p.set_aside)
    staged = con.execute("select count(*), coalesce(min(rowid), 0) from _kz_stg").fetchone()
    result.rows_read = staged[0] + len(rejects)

    # Record number of staged row `_idx` (0-based): header + rows before + rejects before it.
    con.execute("create or replace temp table _kz_rejthr (thr bigint)")
    if rejects:
        con.executemany("insert into _kz_rejthr values (?)",
                        [[r.line - 1 - j] for j, r in enumerate(rejects, start=1)])
        line_of = "(x._idx + 2 + (select count(*) from _kz_rejthr t where t.thr <= x._idx))"
    else:
        line_of = "(x._idx + 2)"

    typed, reasons = _column_exprs(spec, source_of, bounds)
    reason = "concat_ws('; ', " + ", ".join(reasons) + ")" if reasons else "''"
    con.execute(f"""create or replace temp table _kz_chk as
        select s.rowid - {staged[1]} as _idx, {', '.join(typed)}, {reason} as _reason from _kz_stg s""")

    pk = ", ".join(_q(k) for k in spec.primary_key)
    key_expr = "concat_ws('|', " + ", ".join(f"x.{_q(k)}::varchar" for k in spec.primary_key) + ")"
    raw_json = "to_json(struct_pack(" + ", ".join(
        f"{_q(h or f'column {i + 1}')} := s.\"c{i}\"" for i, h in enumerate(p.header)) + "))"  # names are unique
    # Keep the newest version of each key; older versions in the same file are quarantined.
    con.execute(f"""create or replace temp table _kz_rank as
        select _idx, row_number() over w as _rank, first_value(_idx) over w as _kept
        from _kz_chk where _reason = ''
        window w as (partition by {pk} order by updated_at desc, _idx desc)""")
    dup_count = con.execute("select count(*) from _kz_rank where _rank > 1").fetchone()[0]

    quarantine_cols = "(night, file_name, line, \"key\", reason, raw_row, checksum, quarantined_at)"
    params = [night, p.ref.file_name, p.checksum, loaded_at]
    con.execute(f"""insert into {QUARANTINE} {quarantine_cols}
        select $1, $2, {line_of}, {key_expr}, x._reason, {raw_json}, $3, $4
        from _kz_chk x join _kz_stg s on s.rowid - {staged[1]} = x._idx where x._reason <> ''""", params)
    if dup_count:
        kept_line = line_of.replace("x._idx", "r._kept")
        con.execute(f"""insert into {QUARANTINE} {quarantine_cols}
            select $1, $2, {line_of}, {key_expr},
                   'duplicate key in file: ' || {key_expr} || ' also on line ' || {kept_line}
                   || ' (kept: newest updated_at, then the later line)', {raw_json}, $3, $4
            from _kz_rank r join _kz_chk x using (_idx) join _kz_stg s on s.rowid - {staged[1]} = x._idx
            where r._rank > 1""", params)
    if rejects:
        con.executemany(f"insert into {QUARANTINE} {quarantine_cols} values (?, ?, ?, null, ?, ?, ?, ?)",
                        [[night, p.ref.file_name, r.line, r.reason, r.text, p.checksum, loaded_at]
                         for r in rejects])
    result.rows_quarantined = (len(rejects) + dup_count
                               + con.execute("select count(*) from _kz_chk where _reason <> ''").fetchone()[0])
    con.execute("drop table temp._kz_stg")  # the text copy is only needed for the quarantine

    # Merge: newest updated_at wins; equal or older incoming versions change nothing. A stored
    # version dated beyond its own night's end + slack (loaded before such rows were refused)
    # never wins: any valid version replaces it. Only the file's columns are written: an
    # optional column the file leaves out keeps its stored values (new keys get null).
    cols = spec.column_names
    good = ("select x.* exclude (_idx, _reason) from _kz_chk x "
            + ("join _kz_rank r using (_idx) where r._rank = 1" if dup_count else "where x._reason = ''"))
    con.execute(f"create or replace temp view _kz_good as {good}")
    table = raw_table(spec)
    was_empty = con.execute(f"select count(*) = 0 from {table}").fetchone()[0]
    meta = [night, f"{night}/{p.ref.file_name}", loaded_at]
    on = " and ".join(f"t.{_q(k)} = g.{_q(k)}" for k in spec.primary_key)
    present = set(p.header)
    sets = ", ".join(f"{_q(c)} = g.{_q(c)}" for c in cols if c not in spec.primary_key and c in present)
    beyond = f"t._night + to_microseconds({(timedelta(days=1) + bounds.slack) // timedelta(microseconds=1)})"
    if not was_empty:
        result.rows_updated = con.execute(
            f"""update {table} as t set {sets}, _night = $1, _source_file = $2, _loaded_at = $3
            from _kz_good g where {on} and (g.updated_at > t.updated_at or t.updated_at > {beyond})""",
            meta).fetchone()[0]
    col_list = ", ".join(_q(c) for c in cols)
    anti = "" if was_empty else f" anti join {table} t on {on}"
    result.rows_inserted = con.execute(
        f"""insert into {table} ({col_list}, _night, _source_file, _loaded_at)
        select {', '.join('g.' + _q(c) for c in cols)}, $1, $2, $3 from _kz_good g{anti}""", meta).fetchone()[0]
    con.execute("drop view if exists temp._kz_good")
    for t in ("_kz_stg", "_kz_chk", "_kz_rank", "_kz_rejthr", "_kz_rej", "_kz_rejscan"):
        con.execute(f"drop table if exists temp.{t}")
    result.seconds = time.perf_counter() - started
    return result


def _log(con, night: date, p: _Prepared, f: LoadedFile, loaded_at: datetime, status: str | None = None,
         reason: str | None = None) -> None:
    con.execute(f"""insert into {LOAD_LOG} (night, file_name, checksum, rows_read, rows_inserted,
        rows_updated, rows_quarantined, status, loaded_at, seconds, encoding, file_size, file_mtime_ns, reason)
        values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [night, f.file_name, f.checksum, f.rows_read, f.rows_inserted, f.rows_updated,
                 f.rows_quarantined, status or f.status, loaded_at, round(f.seconds, 3), f.encoding or None,
                 p.size, p.mtime_ns, reason])


# -- archive ------------------------------------------------------------------------------


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def archive_file(ref: ExportFileRef, checksum: str, size: int, archive_dir: Path) -> Path:
    """Copy the original file to `<archive_dir>/<night>/<file>` unless an identical copy is there.

    A different earlier copy (the night was re-exported) is kept as `<table>.<sha256[:12]>.csv`.
    """
    dest = archive_dir / ref.night.isoformat() / ref.file_name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if dest.stat().st_size == size and file_checksum(dest) == checksum:
            return dest
        old = file_checksum(dest)
        os.replace(dest, dest.with_name(f"{dest.stem}.{old[:12]}{dest.suffix}"))
    partial = dest.with_name(dest.name + ".partial")
    shutil.copyfile(ref.path, partial)
    os.replace(partial, dest)
    return dest


# -- nights -------------------------------------------------------------------------------


def _last_loaded_checksums(con, night: date) -> dict[str, str]:
    rows = con.execute(f"""select file_name, arg_max(checksum, loaded_at) from {LOAD_LOG}
        where night = ? and status in ('loaded', 'scrubbed') group by file_name""", [night]).fetchall()
    return dict(rows)


def log_scrubbed(con, path: Path, checksum_before: str) -> None:
    """Record that an erasure rewrote `<landing>/<source>/<night>/<file>`: when the file it rewrote was the
    version last loaded, the scrubbed file stands for that version (a later night is not taught to load it
    again, which would also quarantine the blanked rows)."""
    try:
        night = date.fromisoformat(path.parent.name)
    except ValueError:
        return
    ensure_raw_tables(con)
    if _last_loaded_checksums(con, night).get(path.name) != checksum_before:
        return
    st = path.stat()
    con.execute(f"""insert into {LOAD_LOG} (night, file_name, checksum, rows_read, rows_inserted, rows_updated,
        rows_quarantined, status, loaded_at, seconds, encoding, file_size, file_mtime_ns, reason)
        values (?, ?, ?, 0, 0, 0, 0, 'scrubbed', ?, 0, null, ?, ?, 'an erasure blanked personal fields')""",
                [night, path.name, file_checksum(path), datetime.now(timezone.utc).replace(tzinfo=None),
                 st.st_size, st.st_mtime_ns])


@contextmanager
def _night_transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("begin transaction")
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


class _GateRefused(Exception):
    """The gate raised: carries its exception out of the night's transaction (rolled back)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _message(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def _nights_text(nights: list[date], most: int = 5) -> str:
    text = ", ".join(n.isoformat() for n in nights[:most])
    return text + (_(" and {n} more").format(n=len(nights) - most) if len(nights) > most else "")


def _refusal(night: date, cause: BaseException, by_gate: bool, loaded: list[NightLoadResult],
             waiting: list[date], gated: bool) -> str:
    """What a person needs when a night stops the load: which night, why, what was kept, what to do
    (in KIZUNA_LOCALE; the cause's own text as it was raised)."""
    kept = _nights_text([r.night for r in loaded])
    before = ((_("Nights loaded and checked before it (kept): {nights}.") if gated
               else _("Nights loaded before it (kept): {nights}.")).format(nights=kept) if loaded
              else _("No night was loaded before it in this run."))
    later = (" " + _("Later nights not loaded, they wait for it: {nights}.").format(nights=_nights_text(waiting))
             if waiting else "")
    if not by_gate:
        return _("Night {night} could not be loaded: {why}").format(night=night, why=_message(cause)) + \
            f"\n{before}{later}"
    then = (_("then run again: the night is loaded and checked again, then the nights after it.") if waiting
            else _("then run again: the night is loaded and checked again."))
    return (_("Night {night} was refused by its check, so nothing of it was kept:").format(night=night)
            + f"\n{_message(cause)}\n{before}{later}\n"
            + _("What to do: fix night {night}'s files in the exports folder (or the check's threshold, if the "
                "data is right), {then}").format(night=night, then=then))


def _log_rejected(con, night: date, prepared: list[_Prepared], files: list[LoadedFile], loaded_at: datetime,
                  cause: Exception) -> None:
    """Record, after the rollback, which files the gate refused (they count as not loaded)."""
    reason = _message(cause)[:2000]
    try:
        with _night_transaction(con):
            for p, f in zip(prepared, files):
                if f.status == "loaded":
                    _log(con, night, p, f, loaded_at, status="rejected", reason=reason)
    except duckdb.Error as exc:  # the refusal itself must still reach the person
        log.error("night %s: could not record the rejected files in %s: %s", night, LOAD_LOG, exc)


def load_night(con: duckdb.DuckDBPyConnection, source: ExportSource, night: date,
               archive_dir: Path | None = None, refs: list[ExportFileRef] | None = None, *,
               gate: Gate | None = None, future_slack: timedelta = DEFAULT_FUTURE_SLACK) -> NightLoadResult:
    """Load one night's files in one transaction (files already loaded are skipped).

    When `gate` is given and a file was loaded, `gate(con, night, source.files_dir(night))` is
    called inside the transaction, after every file is merged and logged; what it returns is
    `result.gate`. If it raises, the night is rolled back (nothing of it in raw, no quarantine,
    no archive copy), its files are logged `rejected`, and `NightRejected` is raised.
    Raises `ExportError` (and writes nothing of the night) when a file cannot be loaded.
    A row whose `updated_at` is after the night's end + `future_slack` is quarantined.
    """
    started = time.perf_counter()
    ensure_raw_tables(con)
    con.execute("set preserve_insertion_order = true")  # line numbers rely on it (the default)
    refs = source.files(night) if refs is None else refs
    last = _last_loaded_checksums(con, night)
    loaded_at = datetime.now(timezone.utc).replace(tzinfo=None)
    bounds = _Bounds(night, future_slack)
    result = NightLoadResult(night, ignored=source.ignored(night))
    with tempfile.TemporaryDirectory(prefix="kizuna-load-") as tmp:
        prepared = [_prepare(ref, source.encoding, Path(tmp), last.get(ref.file_name)) for ref in refs]
        while True:  # once more per file DuckDB fails on (its unreadable records set aside)
            files: list[LoadedFile] = []
            try:
                with _night_transaction(con):
                    for p in prepared:
                        f = LoadedFile(p.ref.file_name, "skipped", p.checksum) if p.skip else \
                            _load_file(con, p, loaded_at, bounds)
                        _log(con, night, p, f, loaded_at)
                        files.append(f)
                    if gate is not None and any(f.status == "loaded" for f in files):
                        try:
                            result.gate = gate(con, night, source.files_dir(night))
                        except Exception as exc:
                            raise _GateRefused(exc) from exc
                    source.commit(con, night)  # a cursor moves only with the night it belongs to
                break
            except _DuckDBCannotRead as exc:
                _set_aside(exc.prepared, exc.error)
            except _GateRefused as refused:
                _log_rejected(con, night, prepared, files, loaded_at, refused.cause)
                raise NightRejected(_refusal(night, refused.cause, True, [], [], True), night=night,
                                    cause=refused.cause, loaded=[]) from refused.cause
    result.files = files
    for w in result.warnings:
        log.warning("%s", w)
    if archive_dir is not None:
        for p in prepared:
            archive_file(p.ref, p.checksum, p.size, Path(archive_dir))
    result.seconds = time.perf_counter() - started
    return result


def _unchanged_since_logged(con, night: date, refs: list[ExportFileRef], archive_dir: Path | None) -> bool:
    """True when the night was loaded, no file changed size or mtime since (no hashing)
    and every file has its archive copy. `rejected` rows do not count: that night is not loaded."""
    logged = {name: (size, mtime) for name, size, mtime in con.execute(
        f"""select file_name, arg_max(file_size, loaded_at), arg_max(file_mtime_ns, loaded_at)
        from {LOAD_LOG} where night = ? and status <> 'rejected' group by file_name""", [night]).fetchall()}
    if not logged:
        return False
    for ref in refs:
        st = os.lstat(ref.path)
        if logged.get(ref.file_name) != (st.st_size, st.st_mtime_ns):
            return False
        if archive_dir is not None and not (Path(archive_dir) / night.isoformat() / ref.file_name).exists():
            return False
    return True


def load_pending(con: duckdb.DuckDBPyConnection, source: ExportSource, through: date,
                 archive_dir: Path | None = None, *, gate: Gate | None = None,
                 future_slack: timedelta = DEFAULT_FUTURE_SLACK) -> list[NightLoadResult]:
    """Load every night up to and including `through` that is not loaded yet, oldest first.

    A night already loaded is looked at again only when one of its files changed (size
    or modification time); then files with a new checksum are loaded again (the merge
    keeps the newest version of each row) and the others are skipped. With `gate`, every
    night that loads anything is checked before it is committed (see `load_night`): a
    catch-up night, a late folder for an older night, a night refused before.

    Stops at the first night that cannot be loaded or is refused: later nights are not
    loaded (they may depend on it) and `NightRejected` is raised, carrying the night, the
    cause and the nights committed before it. Returns only the nights where at least one
    file was loaded: an empty list means nothing new.
    """
    ensure_raw_tables(con)
    source.begin(con)
    for note in source.ignored():
        log.warning("exports: %s", note)
    results: list[NightLoadResult] = []
    nights = [n for n in source.nights() if n <= through]
    for i, night in enumerate(nights):
        try:
            refs = source.files(night)
            if not refs or _unchanged_since_logged(con, night, refs, archive_dir):
                continue
            result = load_night(con, source, night, archive_dir, refs=refs, gate=gate, future_slack=future_slack)
        except ExportError as exc:
            by_gate = isinstance(exc, NightRejected)
            cause = exc.cause if by_gate and exc.cause is not None else exc
            raise NightRejected(_refusal(night, cause, by_gate, results, nights[i + 1:], gate is not None),
                                night=night, cause=cause, loaded=results) from cause
        if result.loaded:
            results.append(result)
    return results

"""Loading nightly exports into the `raw` schema of the DuckDB warehouse.

For every night not yet loaded (oldest first), and for each of its files:

1. **Checksum** the original bytes (SHA-256). A file whose checksum is the one last
   loaded for that night is *skipped*: loading the same night twice changes nothing.
2. **Decode**: UTF-8 (with or without BOM) is read as is; CP932 (Shift_JIS) is
   stream-decoded in chunks into a UTF-8 temporary file (bounded memory). With
   `encoding="auto"` a file is UTF-8 when the whole file decodes as UTF-8, else CP932.
3. **Header check**: a missing required column stops the night with an `ExportError`;
   a missing optional column loads as null; unknown columns are ignored (warning).
4. **Read** with DuckDB's `read_csv` (all columns as text). Records DuckDB cannot parse
   (wrong number of fields, ...) go to `raw._quarantine` via its rejects table.
5. **Validate** each row: every value must cast to its column's type, required and
   key columns must not be empty. Bad rows go to `raw._quarantine` with the reason.
   Two rows with the same key in one file: the newest `updated_at` (then the later
   row) is kept, the others are quarantined as `duplicate key in file`.
6. **Merge** into `raw.<table>` on the primary key: new keys are inserted; an existing
   key is updated only when the incoming `updated_at` is newer.
7. **Log** one row per file in `raw._load_log`.

All files of one night load in one transaction: if any file fails, nothing of that
night is written and the `ExportError` propagates. After the commit each original
file is copied, byte for byte, to `<archive_dir>/<night>/<file>`.

Line numbers in the quarantine are CSV record numbers counting the header as 1 (the
same as the line number unless a quoted value holds a line break).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb

from connectors.sources.base import ExportFileRef, ExportSource
from connectors.sources.export_format import EXPORT_FILES, TYPE_FORMATS, ExportFile
from kizuna.errors import ExportError

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


# -- results ------------------------------------------------------------------------------


@dataclass
class LoadedFile:
    """What loading one file did. `status` is `loaded` or `skipped` (already loaded)."""

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
    """What loading one night did, file by file."""

    night: date
    files: list[LoadedFile] = field(default_factory=list)
    seconds: float = 0.0

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
        seconds double, encoding varchar, file_size bigint, file_mtime_ns bigint)""")
    con.execute(f"""create table if not exists {QUARANTINE} (
        night date, file_name varchar, line bigint, "key" varchar, reason varchar, raw_row varchar,
        checksum varchar, quarantined_at timestamp)""")


# -- bytes: checksum and decoding ---------------------------------------------------------


@dataclass
class _Scan:
    checksum: str
    size: int
    utf8_error: str | None  # where the file stops being UTF-8, None when it all is


def _where(offset: int, newlines_before: int) -> str:
    return f"byte offset {offset:,} (line {newlines_before + 1:,})"


def _scan(path: Path, check_utf8: bool) -> _Scan:
    """SHA-256 of the file and, when asked, whether all of it is valid UTF-8 (one pass)."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")("strict") if check_utf8 else None
    size = newlines = 0
    error = None
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
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
    return _Scan(digest.hexdigest(), size, error if check_utf8 else "not checked")


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


def _read_header(path: Path) -> list[str] | None:
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        try:
            row = next(csv.reader(fh))
        except StopIteration:
            return None
    return [name.strip() for name in row]


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _format_hint(type_: str) -> str:
    return TYPE_FORMATS[type_].replace("`", "")


def _column_exprs(spec: ExportFile, source_of: dict[str, str]) -> tuple[list[str], list[str]]:
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
    return typed, reasons


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


def _prepare(ref: ExportFileRef, encoding: str, tmp: Path, last_loaded: str | None) -> _Prepared:
    """Checksum, decode and check the header of one file (no database writes)."""
    label = f"{ref.night}/{ref.file_name}"
    stat = ref.path.stat()
    scan = _scan(ref.path, check_utf8=encoding in ("auto", "utf-8"))
    p = _Prepared(ref, label, scan.checksum, scan.size, stat.st_mtime_ns)
    if scan.checksum == last_loaded:
        p.skip = True
        return p
    if scan.utf8_error is None:
        p.encoding, p.read_path = "utf-8", ref.path
    elif encoding == "utf-8":
        raise ExportError(
            f"{label}: not valid UTF-8 at {scan.utf8_error}. If the shop exports Shift_JIS, set "
            "source_encoding to cp932 (or auto); otherwise re-export the file as UTF-8."
        )
    else:
        p.encoding, p.read_path = "cp932", tmp / f"{ref.table}.utf8.csv"
        _transcode_cp932(ref.path, p.read_path, label, scan.utf8_error)
    p.header = _read_header(p.read_path)
    spec = ref.spec
    if p.header is None:
        p.warnings.append(f"{label}: the file is empty (no header line); nothing loaded from it")
        return p
    dupes = sorted({h for h in p.header if h and p.header.count(h) > 1})
    if dupes:
        raise ExportError(
            f"{label}: the header names column(s) {', '.join(dupes)} more than once. "
            f"Fix the export's header line ({FORMAT_HINT}) and run the night again.")
    missing = [c for c in spec.required_columns if c not in p.header]
    if missing:
        raise ExportError(
            f"{label}: required column(s) {', '.join(missing)} missing from the header. "
            f"Found: {', '.join(p.header) or '(nothing)'}. Expected at least: {', '.join(spec.required_columns)}. "
            f"Fix the export so its first line names every required column ({FORMAT_HINT}), "
            "then run the night again; nothing of this night was loaded.")
    extra = [h or f"(unnamed column {i + 1})" for i, h in enumerate(p.header) if h not in spec.column_names]
    if extra:
        p.warnings.append(f"{label}: unknown column(s) ignored: {', '.join(extra)}")
    return p


def _load_file(con: duckdb.DuckDBPyConnection, p: _Prepared, loaded_at: datetime) -> LoadedFile:
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
            store_rejects = true, rejects_table = '_kz_rej', rejects_scan = '_kz_rejscan')""",
                    [str(p.read_path)])
    except duckdb.Error as exc:
        raise ExportError(f"{p.label}: DuckDB cannot read the file as CSV ({exc}). "
                          f"Check that it is a comma-separated file with a header line ({FORMAT_HINT}).") from None
    # Records DuckDB could not parse, one per CSV record (a record can fail several ways).
    # (DuckDB may report one short record once per missing column: keep the first message.)
    rejects = con.execute("""select line, trim(any_value(csv_line), chr(10) || chr(13)) as csv_line,
            arg_min(error_message, coalesce(column_idx, 0)) as msg
        from temp._kz_rej group by line order by line""").fetchall()
    staged = con.execute("select count(*), coalesce(min(rowid), 0) from _kz_stg").fetchone()
    result.rows_read = staged[0] + len(rejects)

    # Record number of staged row `_idx` (0-based): header + rows before + rejects before it.
    con.execute("create or replace temp table _kz_rejthr (thr bigint)")
    if rejects:
        con.executemany("insert into _kz_rejthr values (?)",
                        [[line - 1 - j] for j, (line, _, _) in enumerate(rejects, start=1)])
        line_of = "(x._idx + 2 + (select count(*) from _kz_rejthr t where t.thr <= x._idx))"
    else:
        line_of = "(x._idx + 2)"

    typed, reasons = _column_exprs(spec, source_of)
    reason = "concat_ws('; ', " + ", ".join(reasons) + ")" if reasons else "''"
    con.execute(f"""create or replace temp table _kz_chk as
        select s.rowid - {staged[1]} as _idx, {', '.join(typed)}, {reason} as _reason from _kz_stg s""")

    pk = ", ".join(_q(k) for k in spec.primary_key)
    key_expr = "concat_ws('|', " + ", ".join(f"x.{_q(k)}::varchar" for k in spec.primary_key) + ")"
    raw_json = "to_json(struct_pack(" + ", ".join(
        f"{_q(h or f'column {i + 1}')} := s.\"c{i}\"" for i, h in enumerate(p.header)
        if not h or p.header.index(h) == i) + "))"
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
                        [[night, p.ref.file_name, line, f"cannot be parsed as CSV: {msg}", csv_line,
                          p.checksum, loaded_at] for line, csv_line, msg in rejects])
    result.rows_quarantined = (len(rejects) + dup_count
                               + con.execute("select count(*) from _kz_chk where _reason <> ''").fetchone()[0])
    con.execute("drop table temp._kz_stg")  # the text copy is only needed for the quarantine

    # Merge: newest updated_at wins; equal or older incoming versions change nothing.
    cols = spec.column_names
    good = ("select x.* exclude (_idx, _reason) from _kz_chk x "
            + ("join _kz_rank r using (_idx) where r._rank = 1" if dup_count else "where x._reason = ''"))
    con.execute(f"create or replace temp view _kz_good as {good}")
    table = raw_table(spec)
    was_empty = con.execute(f"select count(*) = 0 from {table}").fetchone()[0]
    meta = [night, f"{night}/{p.ref.file_name}", loaded_at]
    on = " and ".join(f"t.{_q(k)} = g.{_q(k)}" for k in spec.primary_key)
    sets = ", ".join(f"{_q(c)} = g.{_q(c)}" for c in cols if c not in spec.primary_key)
    if not was_empty:
        result.rows_updated = con.execute(
            f"""update {table} as t set {sets}, _night = $1, _source_file = $2, _loaded_at = $3
            from _kz_good g where {on} and g.updated_at > t.updated_at""", meta).fetchone()[0]
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


def _log(con, night: date, p: _Prepared, f: LoadedFile, loaded_at: datetime) -> None:
    con.execute(f"""insert into {LOAD_LOG} (night, file_name, checksum, rows_read, rows_inserted,
        rows_updated, rows_quarantined, status, loaded_at, seconds, encoding, file_size, file_mtime_ns)
        values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [night, f.file_name, f.checksum, f.rows_read, f.rows_inserted, f.rows_updated,
                 f.rows_quarantined, f.status, loaded_at, round(f.seconds, 3), f.encoding or None,
                 p.size, p.mtime_ns])


# -- archive ------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
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
        if dest.stat().st_size == size and _sha256(dest) == checksum:
            return dest
        old = _sha256(dest)
        os.replace(dest, dest.with_name(f"{dest.stem}.{old[:12]}{dest.suffix}"))
    partial = dest.with_name(dest.name + ".partial")
    shutil.copyfile(ref.path, partial)
    os.replace(partial, dest)
    return dest


# -- nights -------------------------------------------------------------------------------


def _last_loaded_checksums(con, night: date) -> dict[str, str]:
    rows = con.execute(f"""select file_name, arg_max(checksum, loaded_at) from {LOAD_LOG}
        where night = ? and status = 'loaded' group by file_name""", [night]).fetchall()
    return dict(rows)


@contextmanager
def _night_transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("begin transaction")
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def load_night(con: duckdb.DuckDBPyConnection, source: ExportSource, night: date,
               archive_dir: Path | None = None, refs: list[ExportFileRef] | None = None) -> NightLoadResult:
    """Load one night's files in one transaction (files already loaded are skipped).

    Raises `ExportError` (and writes nothing of the night) when a file cannot be loaded.
    """
    started = time.perf_counter()
    ensure_raw_tables(con)
    con.execute("set preserve_insertion_order = true")  # line numbers rely on it (the default)
    refs = source.files(night) if refs is None else refs
    last = _last_loaded_checksums(con, night)
    loaded_at = datetime.now(timezone.utc).replace(tzinfo=None)
    result = NightLoadResult(night)
    with tempfile.TemporaryDirectory(prefix="kizuna-load-") as tmp:
        prepared = [_prepare(ref, source.encoding, Path(tmp), last.get(ref.file_name)) for ref in refs]
        with _night_transaction(con):
            for p in prepared:
                if p.skip:
                    f = LoadedFile(p.ref.file_name, "skipped", p.checksum)
                else:
                    f = _load_file(con, p, loaded_at)
                for w in f.warnings:
                    log.warning("%s", w)
                _log(con, night, p, f, loaded_at)
                result.files.append(f)
    if archive_dir is not None:
        for p in prepared:
            archive_file(p.ref, p.checksum, p.size, Path(archive_dir))
    result.seconds = time.perf_counter() - started
    return result


def _unchanged_since_logged(con, night: date, refs: list[ExportFileRef], archive_dir: Path | None) -> bool:
    """True when the night was loaded, no file changed size or mtime since (no hashing)
    and every file has its archive copy."""
    logged = {name: (size, mtime) for name, size, mtime in con.execute(
        f"""select file_name, arg_max(file_size, loaded_at), arg_max(file_mtime_ns, loaded_at)
        from {LOAD_LOG} where night = ? group by file_name""", [night]).fetchall()}
    if not logged:
        return False
    for ref in refs:
        stat = ref.path.stat()
        if logged.get(ref.file_name) != (stat.st_size, stat.st_mtime_ns):
            return False
        if archive_dir is not None and not (Path(archive_dir) / night.isoformat() / ref.file_name).exists():
            return False
    return True


def load_pending(con: duckdb.DuckDBPyConnection, source: ExportSource, through: date,
                 archive_dir: Path | None = None) -> list[NightLoadResult]:
    """Load every night up to and including `through` that is not loaded yet, oldest first.

    A night already loaded is looked at again only when one of its files changed (size
    or modification time); then files with a new checksum are loaded again (the merge
    keeps the newest version of each row) and the others are skipped. Returns only the
    nights where at least one file was loaded: an empty list means nothing new.
    """
    ensure_raw_tables(con)
    results = []
    for night in source.nights():
        if night > through:
            break
        refs = source.files(night)
        if not refs or _unchanged_since_logged(con, night, refs, archive_dir):
            continue
        result = load_night(con, source, night, archive_dir, refs=refs)
        if result.loaded:
            results.append(result)
    return results

"""`docs/export-format.md`, generated from `connectors/sources/export_format.py`.

Run `kizuna docs export-format` after changing the format; a test checks the file is current.
"""

from __future__ import annotations

from connectors.sources.export_format import DUCKDB_TYPES, ENCODINGS, EXPORT_FILES, TYPE_FORMATS
from connectors.sources.loader import MAX_RECORD_BYTES


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _general() -> str:
    files = ", ".join(f"`{f.file_name}`" for f in EXPORT_FILES)
    return f"""\
## Folder layout

One folder per night, named for the night (Japan time) it covers, `YYYY-MM-DD`, in the
exports folder (`KIZUNA_EXPORTS_DIR`, by default `data/exports`):

```
exports/
  shop.json              # optional, not read by the loader
  2025-03-01/
    customers.csv
    orders.csv
    ...
  2025-03-02/
    orders.csv           # only the files with rows created or changed that night
```

* The files are {files}.
* A night's files hold the rows **created or updated** that day. The first export is
  usually a full one: the same files holding the whole history.
* A **missing file** means that table had no new or changed rows that night (the same as
  a file with only the header line, or an empty file).
* Anything else in the exports folder (folders not named like a real date, such as
  `archive` or `2026-13-40`, other files) is not loaded, and neither are files with other
  names inside a night folder. Each run's log names every such entry and why, with the
  name probably meant (`2025-03-01/order.csv: ignored: not an export file name; did you mean
  orders.csv?`); `shop.json` and names starting with a dot are expected and not reported.
* **Symbolic links are not followed.** A night folder or an export file that is a link
  stops the load with an error naming it (its target is not read): put the folder or file
  itself there.
* Nights are loaded oldest first; a run loads every night not loaded yet up to the night
  it processes, and stops at the first night that cannot be loaded or is refused by the
  data-quality check (see "One transaction per night, checked before it is kept").

## Files, encodings and CSV dialect

* Comma-separated, first line = header with the column names below (any order), fields
  quoted with `"` when needed (a `"` inside a quoted field is doubled: `""`), lines ending
  in CRLF or LF. Quoted fields may contain line breaks.
* Encodings: **UTF-8** (with or without a BOM) or **CP932** (Shift_JIS as written by Windows
  and most Japanese cart systems). The setting `source_encoding` (`KIZUNA_SOURCE_ENCODING`) is `auto` (default),
  {" or ".join(f"`{e}`" for e in ENCODINGS)}. With `auto` a file is read as UTF-8 when the
  whole file is valid UTF-8, otherwise as CP932. A file that is neither stops the night
  with an error naming the file, the byte offset and the line. A file that starts with a
  UTF-8 BOM is UTF-8 whatever the setting: a BOM in front of a body that is not UTF-8 (a
  CP932 file with a BOM glued on) stops the night with an error saying exactly that.
* Columns: every **required** column must be in the header, otherwise the night stops with
  an error naming the file and the missing column(s). Optional columns may be left out:
  rows already loaded **keep** their stored values for them, new rows get null (to clear a
  value, send the column with an empty value). Columns not listed here are ignored (the
  load logs a warning).
* An empty value means null.
* A record (one line, or several when a quoted value holds line breaks) may be at most
  {MAX_RECORD_BYTES:,} bytes; a longer one is quarantined with its length (it is usually a quote
  that is never closed).

## Column types

| type | written as | stored in DuckDB as |
|---|---|---|
""" + "".join(f"| {t} | {_cell(TYPE_FORMATS[t])} | `{DUCKDB_TYPES[t]}` |\n" for t in DUCKDB_TYPES) + """
The loader is a little lenient where nothing can be misread: spaces around numbers, dates
and timestamps, one-digit months, days and hours, a `T` instead of the space, timestamps
without seconds or with fractions of a second. Anything else is quarantined, in particular
decimals (`1980.5`), thousands separators (`1,980`), full-width digits, dates with `/`,
impossible dates (`2025-02-30`) and timestamps with a time-zone offset (`+09:00`, `Z`).
"""


def _loading() -> str:
    return """\
## How a night is loaded

### Merge: the newest `updated_at` wins

Each file is merged into the table `raw.<table>` on its primary key: a new key is inserted;
a key already loaded is updated only when the incoming row's `updated_at` is **newer** than
the stored one. An equal or older version changes nothing, so a late or repeated file can
never undo a newer change (an order cancelled on night 2 stays cancelled if night 1 is
re-sent). Every raw row also carries `_night` (the night whose file last changed it),
`_source_file` (`<night>/<file>`) and `_loaded_at` (UTC).

If one file holds the same key more than once, the row with the newest `updated_at` is
kept (on a tie, the later line) and the others are quarantined with the reason
`duplicate key in file`.

A row whose `updated_at` is later than the end of its night (midnight after it, Japan
time) plus one day is quarantined, not merged: a version dated in the future (say
`9999-12-31`) would otherwise win against every later change of that key, an erasure
included. (A stored version that is already beyond its night's end plus one day is
replaced by the next valid version of its key.)

### One transaction per night, checked before it is kept

All files of a night load in one transaction. If any file of the night cannot be loaded
(undecodable, a required column missing from the header), nothing of that night is
written, the raw tables stay exactly as they were, and the run stops with a message naming
the file and what to fix. Fix or re-export the file and run the night again.

The data-quality check of the raw data runs on each night's rows inside that transaction,
before they are committed: every night that loads anything is checked (a catch-up night, a
folder that arrives late for an older night, a re-sent file, a night refused before). If
the check refuses the night, nothing of it is kept (no rows, no quarantine, no archive
copy), its files are logged with status `rejected`, and the run stops there: later nights
are not loaded until the refused night is fixed (its files, or the check's threshold) and
passes. The error names the night, why it was refused and which nights were loaded.

### Quarantine

A row that cannot be loaded does not stop the night: it goes to `raw._quarantine` and the
rest of the file loads. Reasons:

* the line cannot be parsed as CSV (e.g. the wrong number of fields);
* a value does not match its column's type (`birth_date: '1990/13/45' is not a valid date ...`);
* a required or key column is empty;
* `duplicate key in file` (an older version of a key that appears again in the same file);
* `updated_at ... is after the night's end + 1 day` (see above);
* `the record is too long` (more than """ + f"{MAX_RECORD_BYTES:,}" + """ bytes).

`raw._quarantine` has `night`, `file_name`, `line` (the CSV record number, header = 1; the
same as the line number unless a quoted value holds a line break), `key`, `reason`,
`raw_row` (the row as JSON, or the raw line when it could not be parsed), `checksum` and
`quarantined_at`. The data-quality gate stops the run when more than 5% of a file's rows
were quarantined.

### Load log and reloading

`raw._load_log` has one row per file and load: `night`, `file_name`, `checksum` (SHA-256 of
the original file), `rows_read`, `rows_inserted`, `rows_updated`, `rows_quarantined`,
`status` (`loaded`, `skipped`, `rejected`: loaded, then refused by the check and not
kept, or `scrubbed`: a file kizuna landed for a pulling source, rewritten by an erasure,
which stands for the version it replaced), `loaded_at` (UTC), `seconds`, `encoding`, `file_size`, `file_mtime_ns` and `reason`
(why a file was rejected). Rows read but neither inserted, updated nor quarantined were
versions already loaded (equal or older `updated_at`). A night with only `rejected` rows
is not loaded: the next run loads and checks it again.

* Loading a night again whose files are unchanged changes nothing: each file is `skipped`
  (same checksum as last loaded), no rows are added to the raw tables or the quarantine.
  A night already loaded is not even read again unless a file's size or modification time
  changed.
* If a file of a loaded night **changed** (a different checksum: the shop re-sent it), it
  is loaded again; the merge keeps the newest version of each row, so this is safe. Files
  added to a loaded night are loaded too.

### Archive

After a night is loaded, each original file is copied byte for byte to
`<archive_dir>/<night>/<file>` (default `data/archive`); the exports themselves are left
in place. A copy that is already there with the same checksum is not copied again; if a
night's file was re-sent with different content, the earlier copy is kept as
`<table>.<first 12 hex digits of its SHA-256>.csv`. A night whose archive copy is missing
is looked at again on the next run (its files are skipped, the copy is made).
"""


def _file_section(spec) -> str:
    lines = [
        f"### `{spec.file_name}`",
        "",
        spec.description,
        "",
        f"Loaded into `raw.{spec.table}`. Primary key: "
        + ", ".join(f"`{k}`" for k in spec.primary_key) + ".",
        "",
        "| column | type | required | format | meaning |",
        "|---|---|---|---|---|",
    ]
    for c in spec.columns:
        key = " (key)" if c.name in spec.primary_key else ""
        lines.append(f"| `{c.name}` | {c.type}{key} | {'yes' if c.required else 'no'} | "
                     f"{_cell(TYPE_FORMATS[c.type])} | {_cell(c.description)} |")
    return "\n".join(lines) + "\n"


def render_export_format_doc() -> str:
    """The export format reference as Markdown."""
    index = "\n".join(f"* [`{f.file_name}`](#{f.table}csv): {f.description}" for f in EXPORT_FILES)
    parts = [
        "# The nightly export format\n",
        "<!-- Generated from connectors/sources/export_format.py by `kizuna docs export-format`; "
        "do not edit by hand. -->\n",
        "What the shop's cart system sends every night so kizuna can load it: one folder per night "
        "with one CSV file per table. This page is generated from the same definition the loader "
        "validates against, so it is always exact.\n",
        index + "\n",
        _general(),
        "## The files\n",
        "\n".join(_file_section(f) for f in EXPORT_FILES),
        _loading(),
    ]
    return "\n".join(parts)

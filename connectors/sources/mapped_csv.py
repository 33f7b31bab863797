"""A cart's own CSV exports, read through a YAML mapping (`KIZUNA_SOURCE=mapped_csv`).

Japanese carts export CSV files of their own: Japanese headers, CP932, their own status
words (受注 / キャンセル / 返品), dates like `2025/01/05 9:03`, prices like `1,980円`. A
mapping (docs/sources/mapped_csv.md) says, per kizuna table, which of the cart's files
feed it, which header feeds which column, and how a value is converted (value maps,
date formats, money, booleans, arithmetic, lookups in a small sheet the shop keeps). The
mapping for EC-CUBE 4's standard CSV exports ships with kizuna (`mappings/ec_cube4.yaml`)
and is the default.

How it works, and why:

* The cart's exports arrive like kizuna's own: one folder per night in
  `KIZUNA_EXPORTS_DIR`, named `YYYY-MM-DD` (the nights are listed by the CSV source's
  rules). Each night is converted into kizuna's export format in
  `<landing_dir>/mapped_csv/<night>/<table>.csv` (UTF-8) and those files go to the normal
  loader: validation, quarantine, merge, the raw gate, load log and archive are the same
  as for every source. The cart's own files are never changed.
* The mapping is checked when the source is built, before anything loads: an unknown
  table or column, a malformed parser, a header missing from a night's file is one
  `MappingError` naming the mapping file, the field and the header it looked for.
* A value the mapping cannot convert never stops the night: the row is written so that
  the loader quarantines it with a reason that still says what was wrong. A typed column
  (a date, an amount) gets the cart's value with the explanation, e.g. `ordered_at:
  '2025/13/45 9:03 (not a date: the mapping reads 受注日 as %Y/%m/%d %H:%M)' is not a valid
  timestamp`; a text column (a status word missing from the value map) keeps the cart's
  value and the explanation goes into `updated_at`, which every table has and the loader
  checks, so the row is quarantined too.
* One cart file may feed several tables (EC-CUBE's order CSV has one row per order item:
  orders, order lines and shipments come from it). Rows that give the same key and the
  same values are written once; a column may say how to combine the rows of one key
  (`combine: {prefer: [trial, one_off]}`); rows of one key that disagree are all written
  and the loader keeps one and quarantines the others as duplicates.
* A night is converted again only when its inputs changed (the cart files' names, sizes
  and times, the mapping, a lookup sheet); a landed file is rewritten only when its
  content changed, so a second run finds everything loaded and reads nothing again.
* Decoding (UTF-8 or CP932, with the loader's checks and messages) and the refusal of
  symbolic links are the loader's and the CSV source's own code.
"""

from __future__ import annotations

import ast
import csv
import difflib
import fnmatch
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

import yaml

from connectors.sources import loader
from connectors.sources.base import ExportFileRef, ExportSource, link_refused
from connectors.sources.csv_export import CsvExportSource
from connectors.sources.export_format import EXPORT_FILES, EXPORT_FILES_BY_TABLE, Column, ExportFile
from kizuna.errors import ExportError

log = logging.getLogger("kizuna.mapped_csv")

SOURCE_NAME = "mapped_csv"
MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings"
DEFAULT_MAPPING = MAPPINGS_DIR / "ec_cube4.yaml"
#: Changes whenever the same inputs would be converted differently (landed nights are then converted again).
CONVERTER_VERSION = "1"
MANIFEST = ".mapped.json"
#: The loader shows at most this many characters of a bad value in a quarantine reason.
REASON_VALUE_CHARS = 80
RAW_SHOWN = 24

PARSERS = {  # parser -> the export column types it can fill
    "text": {"string", "integer", "date", "timestamp", "boolean"},
    "integer": {"integer"},
    "money": {"integer"},
    "date": {"date", "timestamp"},
    "timestamp": {"timestamp", "date"},
    "boolean": {"boolean"},
}
DEFAULT_PARSER = {"string": "text", "integer": "money", "date": "date", "timestamp": "timestamp",
                  "boolean": "boolean"}
DEFAULT_FORMATS = {
    "timestamp": ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M"),
    "date": ("%Y-%m-%d", "%Y/%m/%d", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M"),
}
DEFAULT_TRUE = ("1", "true", "yes", "y", "on", "はい", "有", "あり", "○", "可")
DEFAULT_FALSE = ("0", "false", "no", "n", "off", "いいえ", "無", "なし", "×", "不可")
SOURCE_KEYS = ("header", "headers", "template", "expr", "value", "night")
COLUMN_KEYS = set(SOURCE_KEYS) | {"when", "lookup", "if_empty", "map", "default", "regex", "to", "parse",
                                  "formats", "true", "false", "combine", "note"}
SOURCE_SPEC_KEYS = {"files", "where", "columns", "note"}
TOP_KEYS = {"name", "format", "encoding", "lookups", "tables", "note"}
CONDITION_OPS = ("in", "not_in", "empty")
COMBINE_RULES = ("first", "max", "min", "prefer")
_REF = re.compile(r"\{([^{}]+)\}")
_OCCURRENCE = re.compile(r"^(.*)#([1-9][0-9]*)$")
_ROUNDING = {"round": ROUND_HALF_UP, "floor": ROUND_FLOOR, "ceil": ROUND_CEILING}


class MappingError(ExportError):
    """The mapping is wrong, or does not fit the cart's files: nothing was loaded."""


# -- the mapping --------------------------------------------------------------------------


@dataclass(frozen=True)
class HeaderRef:
    """A header of a cart file: `name`, or the n-th column of that name (`送料#2`)."""

    text: str

    def index_in(self, header: list[str]) -> int | None:
        if self.text in header:
            return header.index(self.text)
        m = _OCCURRENCE.match(self.text)
        if m:
            seen = [i for i, h in enumerate(header) if h == m[1]]
            n = int(m[2])
            return seen[n - 1] if len(seen) >= n else None
        return None


@dataclass(frozen=True)
class Condition:
    header: HeaderRef
    op: str
    values: frozenset[str]

    def holds(self, value: str) -> bool:
        if self.op == "empty":
            return (value == "") == ("true" in self.values)
        return (value in self.values) == (self.op == "in")


@dataclass
class Lookup:
    """A small sheet the shop keeps beside the nights (e.g. product costs), read by key."""

    name: str
    file: str
    key: HeaderRef
    path: str  # field, for messages
    rows: dict[str, list[str]] | None = None
    header: list[str] = field(default_factory=list)


@dataclass
class ColumnRule:
    """How one kizuna column is made from a cart row."""

    column: Column
    field: str  # e.g. `orders.ordered_at`, for messages
    kind: str  # one of SOURCE_KEYS
    refs: list[HeaderRef]
    constant: str = ""
    template: str = ""
    expr: Callable[[list[Decimal]], Decimal] | None = None
    when: list[Condition] = field(default_factory=list)
    lookup: tuple[str, HeaderRef] | None = None
    if_empty: str | None = None
    fallback: "ColumnRule | None" = None  # if_empty: {template: ...}: read when the value is empty
    value_map: dict[str, str] | None = None
    default: str | None = None
    regex: re.Pattern | None = None
    to: str = ""
    parser: str = "text"
    formats: tuple[str, ...] = ()
    true_words: frozenset[str] = frozenset()
    false_words: frozenset[str] = frozenset()
    combine: str | None = None
    prefer: tuple[str, ...] = ()

    def headers(self) -> list[list[HeaderRef]]:
        """The headers this column reads, in groups of which a file must have at least one: `headers: [A, B]`
        is one group (a file may have either: a column renamed over the years), any other header its own."""
        groups = [self.refs] if self.kind == "headers" else [[r] for r in self.refs]
        groups += [[c.header] for c in self.when]
        return groups + (self.fallback.headers() if self.fallback else [])

    @property
    def source_label(self) -> str:
        """How a message names what the value was read from."""
        if self.kind in ("header", "headers"):
            return " / ".join(r.text for r in self.refs)
        return {"night": "the night", "value": "a constant"}.get(self.kind, f"{self.kind} {self.template!r}")


@dataclass
class SourceRule:
    """One way a kizuna table is filled: which cart files, which rows, which columns."""

    table: ExportFile
    label: str  # e.g. `orders` or `customers[2]`
    patterns: tuple[str, ...]
    where: list[Condition]
    columns: list[ColumnRule]

    def matches(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def headers(self) -> list[tuple[str, list[HeaderRef]]]:
        """(field, headers of which a file must have one) for everything this rule reads."""
        out = [(f"{self.label}.where", [c.header]) for c in self.where]
        for rule in self.columns:
            out += [(rule.field, group) for group in rule.headers()]
        return out

    def missing_in(self, header: list[str]) -> tuple[str, list[HeaderRef]] | None:
        """The first (field, headers) none of which `header` has, or None."""
        return next(((f, group) for f, group in self.headers() if all(r.index_in(header) is None for r in group)),
                    None)


@dataclass
class Mapping:
    path: Path
    name: str
    encoding: str | None
    lookups: dict[str, Lookup]
    tables: dict[str, list[SourceRule]]
    digest: str

    @property
    def label(self) -> str:
        return f"mapping {self.path}"

    def error(self, where: str, problem: str) -> MappingError:
        return MappingError(f"{self.label}: {where}: {problem}")

    def patterns(self) -> list[str]:
        seen: list[str] = []
        for rules in self.tables.values():
            for r in rules:
                seen += [p for p in r.patterns if p not in seen]
        return seen


def _scalar(value: object) -> str:
    """A YAML scalar as the text a CSV cell would hold (YAML reads `1` as 1, `true` as True, ...)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (date, datetime)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


class _Reader:
    """Reads the YAML into rules, naming the field of every problem."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = f"mapping {path}"

    def fail(self, where: str, problem: str) -> MappingError:
        return MappingError(f"{self.label}: {where}: {problem}")

    def read(self) -> Mapping:
        path = self.path
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise MappingError(f"{self.label}: cannot be read ({exc.strerror}); set KIZUNA_SOURCE_MAPPING to the "
                               "mapping file (or leave it unset for the shipped EC-CUBE 4 mapping)") from None
        try:
            doc = yaml.safe_load(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise MappingError(f"{self.label}: is not UTF-8 text; save the mapping as UTF-8") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "the file"
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise MappingError(f"{self.label}: {where}: not valid YAML ({problem})") from None
        if not isinstance(doc, dict):
            raise self.fail("the file", "must be a YAML mapping with `tables:` (see docs/sources/mapped_csv.md)")
        self.unknown_keys(doc, TOP_KEYS, "the top level")
        encoding = doc.get("encoding")
        if encoding is not None and _scalar(encoding) not in ("auto", "utf-8", "cp932"):
            raise self.fail("encoding", f"{encoding!r} is not one of auto, utf-8, cp932")
        lookups = self.lookups(doc.get("lookups") or {})
        tables_doc = doc.get("tables")
        if not isinstance(tables_doc, dict) or not tables_doc:
            raise self.fail("tables", "missing or empty: name at least one kizuna table and the cart files feeding it")
        tables: dict[str, list[SourceRule]] = {}
        for table, spec in tables_doc.items():
            table = _scalar(table)
            export = EXPORT_FILES_BY_TABLE.get(table)
            if export is None:
                raise self.fail(f"tables.{table}", f"not a kizuna table (tables: {', '.join(EXPORT_FILES_BY_TABLE)})")
            specs = spec if isinstance(spec, list) else [spec]
            rules = []
            for i, one in enumerate(specs, start=1):
                label = table if len(specs) == 1 else f"{table}[{i}]"
                rules.append(self.source(export, label, one, lookups))
            tables[table] = rules
        return Mapping(path, _scalar(doc.get("name") or path.stem), _scalar(encoding) if encoding else None,
                       lookups, tables, hashlib.sha256(raw).hexdigest())

    def unknown_keys(self, spec: dict, allowed: set[str], where: str) -> None:
        unknown = sorted(_scalar(k) for k in spec if _scalar(k) not in allowed)
        if unknown:
            raise self.fail(where, f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")

    def lookups(self, spec: object) -> dict[str, Lookup]:
        if not isinstance(spec, dict):
            raise self.fail("lookups", "must map a name to {file: ..., key: ...}")
        out = {}
        for name, one in spec.items():
            where = f"lookups.{name}"
            if not isinstance(one, dict) or not one.get("file") or not one.get("key"):
                raise self.fail(where, "needs `file` (a CSV file in the exports folder) and `key` (its key header)")
            self.unknown_keys(one, {"file", "key", "note"}, where)
            file = _scalar(one["file"])
            if "/" in file or "\\" in file or file.startswith("."):
                raise self.fail(where, f"file {file!r} must be a plain file name in the exports folder")
            out[_scalar(name)] = Lookup(_scalar(name), file, HeaderRef(_scalar(one["key"])), where)
        return out

    def conditions(self, spec: object, where: str) -> list[Condition]:
        items = spec if isinstance(spec, list) else [spec]
        out = []
        for one in items:
            if not isinstance(one, dict) or "header" not in one:
                raise self.fail(where, "a condition is {header: ..., in: [...]} (or not_in: [...], or empty: true)")
            self.unknown_keys(one, {"header", *CONDITION_OPS}, where)
            ops = [op for op in CONDITION_OPS if op in one]
            if len(ops) != 1:
                raise self.fail(where, "a condition needs exactly one of in, not_in, empty")
            op = ops[0]
            values = one[op]
            if op == "empty":
                if not isinstance(values, bool):
                    raise self.fail(where, "empty: must be true or false")
                values = [values]
            elif not isinstance(values, list):
                values = [values]
            out.append(Condition(HeaderRef(_scalar(one["header"])), op, frozenset(_scalar(v) for v in values)))
        return out

    def source(self, export: ExportFile, label: str, spec: object, lookups: dict[str, Lookup]) -> SourceRule:
        where = f"tables.{label}"
        if not isinstance(spec, dict):
            raise self.fail(where, "must be {files: ..., columns: {...}} (or a list of them)")
        self.unknown_keys(spec, SOURCE_SPEC_KEYS, where)
        files = spec.get("files")
        patterns = tuple(_scalar(p) for p in (files if isinstance(files, list) else [files])) if files else ()
        if not patterns or any(not p or "/" in p for p in patterns):
            raise self.fail(f"{where}.files", "name the cart file(s) in a night folder: a name or pattern such as "
                            "order_*.csv (no folders)")
        columns = spec.get("columns")
        if not isinstance(columns, dict) or not columns:
            raise self.fail(f"{where}.columns", "missing: map kizuna columns to the cart's headers")
        rules = []
        for name, one in columns.items():
            name = _scalar(name)
            field_name = f"{label}.{name}"
            reads = _reads(one)
            try:
                column = export.column(name)
            except KeyError:
                raise self.fail(field_name, f"not a column of kizuna's {export.table} table{reads} (its columns: "
                                f"{', '.join(export.column_names)})") from None
            try:
                rules.append(self.column(column, field_name, one, lookups))
            except MappingError as exc:  # name the header the column reads, whatever the problem
                raise MappingError(f"{exc}{reads}") from None
        mapped = {r.column.name for r in rules}
        missing = [c for c in export.required_columns if c not in mapped]
        if missing:
            raise self.fail(f"{label}.{missing[0]}", f"required by kizuna's {export.table} table but not mapped "
                            f"(required: {', '.join(export.required_columns)}); map it to a header, or leave the "
                            f"table out of the mapping if the cart cannot carry it")
        where_spec = spec.get("where")
        return SourceRule(export, label, patterns,
                          self.conditions(where_spec, f"{label}.where") if where_spec is not None else [],
                          sorted(rules, key=lambda r: export.column_names.index(r.column.name)))

    def column(self, column: Column, where: str, spec: object, lookups: dict[str, Lookup]) -> ColumnRule:
        if not isinstance(spec, dict):
            spec = {"header": spec}
        self.unknown_keys(spec, COLUMN_KEYS, where)
        sources = [k for k in SOURCE_KEYS if k in spec]
        if len(sources) != 1:
            raise self.fail(where, f"needs exactly one of {', '.join(SOURCE_KEYS)} (found: "
                            f"{', '.join(sources) or 'none'})")
        kind = sources[0]
        rule = ColumnRule(column, where, kind, [])
        value = spec[kind]
        if kind == "header":
            if not _scalar(value):
                raise self.fail(where, "header: is empty")
            rule.refs = [HeaderRef(_scalar(value))]
        elif kind == "headers":
            if not isinstance(value, list) or not value:
                raise self.fail(where, "headers: must be a list (the first non-empty one is read)")
            rule.refs = [HeaderRef(_scalar(v)) for v in value]
        elif kind == "template":
            rule.template = _scalar(value)
            rule.refs = [HeaderRef(n) for n in _REF.findall(rule.template)]
            if not rule.refs:
                raise self.fail(where, "template: names no header in braces, e.g. guest-{注文番号}")
        elif kind == "expr":
            rule.template = _scalar(value)
            rule.refs, rule.expr = self.expression(rule.template, where)
            if column.type != "integer":
                raise self.fail(where, f"expr: makes a number, but {column.name} is a {column.type}")
        elif kind == "value":
            rule.constant = _scalar(value)
        elif kind == "night" and value is not True:
            raise self.fail(where, "night: must be true (the night's end: <night> 23:59:59)")
        if "when" in spec:
            rule.when = self.conditions(spec["when"], f"{where}.when")
        if "lookup" in spec:
            one = spec["lookup"]
            if not isinstance(one, dict) or set(map(_scalar, one)) != {"table", "column"}:
                raise self.fail(f"{where}.lookup", "must be {table: <a name under lookups>, column: <its header>}")
            if _scalar(one["table"]) not in lookups:
                raise self.fail(f"{where}.lookup", f"no lookup named {_scalar(one['table'])!r} under lookups "
                                f"(named: {', '.join(lookups) or 'none'})")
            if kind not in ("header", "headers", "template"):
                raise self.fail(f"{where}.lookup", "looks up the value of a header (header: ...)")
            rule.lookup = (_scalar(one["table"]), HeaderRef(_scalar(one["column"])))
        if "if_empty" in spec:
            fallback = spec["if_empty"]
            if isinstance(fallback, dict):
                if len(fallback) != 1 or _scalar(next(iter(fallback))) not in SOURCE_KEYS:
                    raise self.fail(f"{where}.if_empty", f"a constant, or one of {', '.join(SOURCE_KEYS)}, e.g. "
                                    "{template: guest-{注文番号}}")
                rule.fallback = self.column(Column(column.name, "string", False, ""), f"{where}.if_empty",
                                            fallback, lookups)
            else:
                rule.if_empty = _scalar(fallback)
        if "map" in spec:
            if not isinstance(spec["map"], dict) or not spec["map"]:
                raise self.fail(f"{where}.map", "must map the cart's words to kizuna's values, e.g. {キャンセル: cancelled}")
            rule.value_map = {_scalar(k): _scalar(v) for k, v in spec["map"].items()}
        if "default" in spec:
            rule.default = _scalar(spec["default"])
        if "regex" in spec:
            try:
                rule.regex = re.compile(_scalar(spec["regex"]))
            except re.error as exc:
                raise self.fail(f"{where}.regex", f"not a valid regular expression ({exc})") from None
            rule.to = _scalar(spec.get("to", r"\g<0>"))
            for group in re.findall(r"\\(\d+)|\\g<([^>]*)>", rule.to):
                number, name = group
                ok = (int(number) <= rule.regex.groups) if number else \
                    (name in rule.regex.groupindex or (name.isdigit() and int(name) <= rule.regex.groups))
                if not ok:
                    raise self.fail(f"{where}.to", f"{rule.to!r} refers to a group the regex does not have")
        elif "to" in spec:
            raise self.fail(f"{where}.to", "to: goes with regex:")
        self.parser(rule, spec, where)
        if "combine" in spec:
            self.combine(rule, spec["combine"], f"{where}.combine")
        return rule

    def parser(self, rule: ColumnRule, spec: dict, where: str) -> None:
        parser = _scalar(spec.get("parse") or DEFAULT_PARSER[rule.column.type])
        if parser not in PARSERS:
            raise self.fail(f"{where}.parse", f"unknown parser {parser!r} (parsers: {', '.join(PARSERS)})")
        if rule.column.type not in PARSERS[parser]:
            raise self.fail(f"{where}.parse", f"{parser} cannot fill {rule.column.name}, a {rule.column.type} "
                            f"(use {DEFAULT_PARSER[rule.column.type]})")
        if rule.kind == "expr" and "parse" in spec:
            raise self.fail(f"{where}.parse", "an expr: is already a number; leave parse out")
        rule.parser = parser
        if "formats" in spec:
            if parser not in ("date", "timestamp"):
                raise self.fail(f"{where}.formats", f"formats go with the date and timestamp parsers, not {parser}")
            formats = spec["formats"] if isinstance(spec["formats"], list) else [spec["formats"]]
            for fmt in formats:
                _check_format(_scalar(fmt), parser, lambda problem: self.fail(f"{where}.formats", problem))
            rule.formats = tuple(_scalar(f) for f in formats)
        elif parser in DEFAULT_FORMATS:
            rule.formats = DEFAULT_FORMATS[parser]
        for key, flag in (("true", True), ("false", False)):  # YAML reads the keys `true:` / `false:` as booleans
            found = [v for k, v in spec.items() if k == key or (isinstance(k, bool) and k is flag)]
            if not found:
                continue
            if parser != "boolean":
                raise self.fail(f"{where}.{key}", f"{key}: words go with the boolean parser, not {parser}")
            words = found[0] if isinstance(found[0], list) else [found[0]]
            setattr(rule, f"{key}_words", frozenset(_scalar(w) for w in words))
        if parser == "boolean":
            rule.true_words = rule.true_words or frozenset(DEFAULT_TRUE)
            rule.false_words = rule.false_words or frozenset(DEFAULT_FALSE)

    def combine(self, rule: ColumnRule, spec: object, where: str) -> None:
        if isinstance(spec, dict) and set(map(_scalar, spec)) == {"prefer"}:
            prefer = spec["prefer"]
            rule.combine, rule.prefer = "prefer", tuple(_scalar(v) for v in (prefer if isinstance(prefer, list)
                                                                                else [prefer]))
        elif _scalar(spec) in COMBINE_RULES and _scalar(spec) != "prefer":
            rule.combine = _scalar(spec)
        else:
            raise self.fail(where, f"how the rows of one key are combined: one of {', '.join(COMBINE_RULES[:-1])} "
                            "or {prefer: [values, best first]}")

    def expression(self, text: str, where: str) -> tuple[list[HeaderRef], Callable[[list[Decimal]], Decimal]]:
        """`{価格} * (100 + {税率}) / 100`, `round(...)`: + - * / on headers and numbers, round/floor/ceil."""
        refs: list[HeaderRef] = []

        def name(m: re.Match) -> str:
            refs.append(HeaderRef(m[1]))
            return f"_h{len(refs) - 1}"

        code = _REF.sub(name, text)
        try:
            tree = ast.parse(code, mode="eval")
        except SyntaxError:
            raise self.fail(f"{where}.expr", f"{text!r} is not an arithmetic expression (headers in braces, "
                            "+ - * / ( ), round() floor() ceil())") from None
        headers = {f"_h{i}" for i in range(len(refs))}
        functions = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for node in ast.walk(tree):
            ok = isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Add, ast.Sub, ast.Mult, ast.Div,
                                   ast.USub, ast.UAdd, ast.Load))
            ok = ok or (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
                        and not isinstance(node.value, bool))
            ok = ok or (isinstance(node, ast.Name) and (node.id in headers
                                                        or (node.id in _ROUNDING and id(node) in functions)))
            ok = ok or (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _ROUNDING
                        and len(node.args) == 1 and not node.keywords)
            if not ok:
                raise self.fail(f"{where}.expr", f"{text!r}: only headers in braces, numbers, + - * / ( ) and "
                                "round() floor() ceil() are allowed")
        if not refs:
            raise self.fail(f"{where}.expr", f"{text!r} names no header in braces")
        return refs, _compiled(tree, len(refs))


def _reads(spec: object) -> str:
    """`; it reads header 受注日` for a message about a column, when the column reads headers."""
    if not isinstance(spec, dict):
        return f"; it reads header {_scalar(spec)!r}" if _scalar(spec) else ""
    names = [_scalar(spec["header"])] if "header" in spec else \
        [_scalar(h) for h in spec.get("headers") or []] if isinstance(spec.get("headers"), list) else \
        _REF.findall(_scalar(spec.get("template") or spec.get("expr") or ""))
    names = [n for n in names if n]
    if not names:
        return ""
    return f"; it reads header{'s' if len(names) > 1 else ''} " + ", ".join(repr(n) for n in names)


def _compiled(tree: ast.Expression, n_refs: int) -> Callable[[list[Decimal]], Decimal]:
    """The checked expression (only arithmetic, `_h<i>` headers, round/floor/ceil) as a function of the
    headers' values. Numbers become Decimals, so `{価格} * 1.1` is exact."""
    constants: dict[str, Decimal] = {}

    class Decimals(ast.NodeTransformer):
        def visit_Constant(self, node: ast.Constant) -> ast.AST:
            name = f"_c{len(constants)}"
            constants[name] = Decimal(str(node.value))
            return ast.copy_location(ast.Name(name, ast.Load()), node)

    tree = ast.fix_missing_locations(Decimals().visit(tree))
    args = ", ".join(f"_h{i}" for i in range(n_refs))
    lam = ast.parse(f"lambda {args}: 0", mode="eval")
    lam.body.body = tree.body  # type: ignore[attr-defined]
    scope = {"__builtins__": {}, **constants, **{name: _rounder(mode) for name, mode in _ROUNDING.items()}}
    fn = eval(compile(ast.fix_missing_locations(lam), "<mapping expr>", "eval"), scope)  # noqa: S307 (checked tree)
    return lambda values: fn(*values)


def _rounder(mode: str) -> Callable[[Decimal], Decimal]:
    return lambda value: value.quantize(Decimal(1), rounding=mode)


def _check_format(fmt: str, parser: str, fail: Callable[[str], MappingError]) -> None:
    """A strptime format must read back what it writes, and hold a year, month and day."""
    if not all(d in fmt for d in ("%Y", "%m", "%d")) and not all(d in fmt for d in ("%y", "%m", "%d")):
        raise fail(f"{fmt!r} lacks a year, month or day (%Y, %m, %d)")
    sample = datetime(2001, 2, 3, 4, 5, 6)
    try:
        back = datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError as exc:
        raise fail(f"{fmt!r} is not a date format ({exc})") from None
    if back.date() != sample.date():
        raise fail(f"{fmt!r} does not read back the date it writes")


def load_mapping(path: Path | str | None = None) -> Mapping:
    """The mapping in `path` (default: the shipped EC-CUBE 4 mapping), checked; raises `MappingError`."""
    return _Reader(Path(path) if path else DEFAULT_MAPPING).read()


# -- converting values --------------------------------------------------------------------


class _Bad(Exception):
    """A cell the mapping cannot convert. `candidates` say why, longest first; `message` is the first that
    fits in the loader's reason (it becomes part of one)."""

    def __init__(self, *candidates: str) -> None:
        self.candidates = candidates
        self.message = _fit(*candidates)
        super().__init__(self.message)


def _shown(raw: str) -> str:
    raw = raw.replace("\n", " ").replace("\r", " ")
    return raw if len(raw) <= RAW_SHOWN else raw[:RAW_SHOWN - 1] + "…"


def _fit(*candidates: str) -> str:
    """The first explanation short enough for the loader's reason (it shows 80 characters of a value)."""
    for text in candidates:
        if len(text) <= REASON_VALUE_CHARS:
            return text
    return min(candidates, key=len)


def _normal(text: str) -> str:
    """Full-width digits, letters and signs as ASCII (１，９８０円 -> 1,980円), spaces trimmed."""
    return unicodedata.normalize("NFKC", text).strip()


_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _number(raw: str, money: bool) -> Decimal:
    if _PLAIN_NUMBER.fullmatch(raw):
        return Decimal(raw)
    text = _normal(raw).replace(",", "").replace(" ", "")
    if money:
        text = text.replace("円", "").replace("¥", "").replace("\\", "").replace("￥", "")
        if text[:1] in ("▲", "△"):  # how Japanese accounts write a negative amount
            text = "-" + text[1:]
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", text):
        raise ValueError(raw)
    return Decimal(text)


def _whole(value: Decimal) -> str:
    if value != value.to_integral_value():
        raise ValueError(str(value))
    return str(int(value))


class _Converter:
    """Converts the rows of one cart file for one `SourceRule` (header positions resolved once)."""

    def __init__(self, rule: SourceRule, header: list[str], night: date, lookups: dict[str, Lookup]) -> None:
        self.rule = rule
        self.night = night
        self.lookups = lookups
        self.where = [(c, c.header.index_in(header)) for c in rule.where]
        self.columns = [(c, self.positions(c, header), [(w, w.header.index_in(header)) for w in c.when])
                        for c in rule.columns]
        self.fallbacks = {c.field: (c.fallback, self.positions(c.fallback, header)) for c in rule.columns
                          if c.fallback is not None}
        self.sheet_columns = {c.field: c.lookup[1].index_in(lookups[c.lookup[0]].header)
                              for c in rule.columns if c.lookup is not None}
        # A plain column (one header, text, nothing else to do) is read directly: most columns are.
        self.plain = [(c.column.name, positions[0]) for c, positions, when in self.columns
                      if c.kind == "header" and len(c.refs) == 1 and c.parser == "text" and not when
                      and c.lookup is None and c.value_map is None and c.regex is None and c.if_empty is None
                      and c.fallback is None and positions[0] is not None]
        plain = {name for name, _ in self.plain}
        self.columns = [c for c in self.columns if c[0].column.name not in plain]
        self.night_end = f"{night} 23:59:59"

    @staticmethod
    def positions(rule: ColumnRule, header: list[str]) -> list[int | None]:
        return [r.index_in(header) for r in rule.refs]

    def wanted(self, row: list[str]) -> bool:
        return all(c.holds(_cell(row, i).strip()) for c, i in self.where)

    def convert(self, row: list[str]) -> dict[str, str]:
        width = len(row)
        out = {name: row[i].strip() if i < width else "" for name, i in self.plain}
        problems: list[tuple[str, _Bad]] = []
        for rule, positions, when in self.columns:
            try:
                out[rule.column.name] = self.value(rule, positions, when, row)
            except _Bad as bad:
                if rule.column.type == "string":  # the loader cannot refuse a text: updated_at carries why
                    out[rule.column.name] = self.raw_text(rule, positions, row)
                    problems.append((rule.column.name, bad))
                else:
                    out[rule.column.name] = bad.message
        if problems:
            name, first = problems[0]
            out["updated_at"] = _fit("not loaded, " + "; ".join(f"{n}: {b.message}" for n, b in problems),
                                     *(f"not loaded, {name}: {c}" for c in first.candidates))
        return out

    def raw_text(self, rule: ColumnRule, positions: list[int | None], row: list[str]) -> str:
        return next((v for v in (_cell(row, i).strip() for i in positions) if v), "")

    def value(self, rule: ColumnRule, positions: list[int | None], when, row: list[str]) -> str:
        if when and not all(c.holds(_cell(row, i).strip()) for c, i in when):
            return ""
        if rule.kind == "night":
            return self.night_end if rule.column.type == "timestamp" else self.night.isoformat()
        if rule.kind == "expr":
            return self.expression(rule, positions, row)
        value = self.source_value(rule, positions, row)
        if rule.lookup is not None and value:
            value = self.look_up(rule, value)
        if not value and rule.fallback is not None:
            fallback, where = self.fallbacks[rule.field]
            value = self.source_value(fallback, where, row)
        if not value:
            if rule.if_empty is None:
                return ""
            value = rule.if_empty
        elif rule.value_map is not None:
            mapped = rule.value_map.get(value)
            if mapped is None:
                if rule.default is None:
                    raise _Bad(f"{rule.source_label} {_shown(value)!r} is not in the mapping's map "
                               f"({', '.join(list(rule.value_map)[:4])}…)",
                               f"{rule.source_label} {_shown(value)!r} is not in the mapping's map")
                mapped = value if rule.default == "keep" else rule.default
            value = mapped
        if rule.regex is not None and (m := rule.regex.fullmatch(value)):
            value = m.expand(rule.to)
        return self.parse(rule, value)

    def source_value(self, rule: ColumnRule, positions: list[int | None], row: list[str]) -> str:
        if rule.kind == "value":
            return rule.constant
        if rule.kind == "night":
            return self.night_end
        if rule.kind == "template":
            cells = [_cell(row, i).strip() for i in positions]
            if not all(cells):
                return ""
            it = iter(cells)
            return _REF.sub(lambda m: next(it), rule.template)
        return self.raw_text(rule, positions, row)

    def look_up(self, rule: ColumnRule, key: str) -> str:
        sheet = self.lookups[rule.lookup[0]]  # type: ignore[index]
        found = sheet.rows.get(key) if sheet.rows is not None else None
        if found is None:
            if rule.default is not None:
                return rule.default if rule.default != "keep" else key
            raise _Bad(f"{_shown(key)} (no row for {rule.source_label} {_shown(key)!r} in {sheet.file})",
                       f"no row for {rule.source_label} {_shown(key)!r} in {sheet.file}",
                       f"{_shown(key)!r} is not in {sheet.file}")
        return _cell(found, self.sheet_columns[rule.field]).strip()  # (the header was checked at build)

    def expression(self, rule: ColumnRule, positions: list[int | None], row: list[str]) -> str:
        cells = [_cell(row, i) for i in positions]
        if not all(c.strip() for c in cells):
            return ""
        values = []
        for ref, cell in zip(rule.refs, cells):
            try:
                values.append(_number(cell, money=True))
            except ValueError:
                raise _Bad(f"{_shown(cell)} ({ref.text}: not a number, the mapping computes "
                           f"{rule.template})", f"{_shown(cell)} ({ref.text}: not a number)") from None
        try:
            return _whole(rule.expr(values))  # type: ignore[misc]
        except (ArithmeticError, InvalidOperation, ValueError, TypeError):
            raise _Bad(f"{rule.template} = not a whole yen amount for "
                       f"{', '.join(_shown(c) for c in cells)}; wrap it in round()",
                       "not a whole number: wrap the expr in round()") from None

    def parse(self, rule: ColumnRule, value: str) -> str:
        parser = rule.parser
        if parser == "text":
            return value
        what = {"integer": "an integer", "money": "an amount", "date": "a date", "timestamp": "a date and time",
                "boolean": "a yes/no value"}[parser]
        if parser in ("integer", "money"):
            try:
                return _whole(_number(value, money=parser == "money"))
            except ValueError:
                raise _Bad(f"{_shown(value)} (not {what}: the mapping reads {rule.source_label} as "
                           f"{'money, e.g. 1,980円' if parser == 'money' else 'an integer'})",
                           f"{_shown(value)} (not {what})") from None
        if parser == "boolean":
            if value in rule.true_words or value.lower() in rule.true_words:
                return "true"
            if value in rule.false_words or value.lower() in rule.false_words:
                return "false"
            raise _Bad(f"{_shown(value)} (not {what}: the mapping's words are "
                       f"{', '.join(sorted(rule.true_words))[:30]} / {', '.join(sorted(rule.false_words))[:30]})",
                       f"{_shown(value)} (not {what})")
        text = value if value.isascii() else _normal(value)
        for fmt in rule.formats:
            parsed = _strptime(text.strip(), fmt)
            if parsed is not None:
                return f"{parsed:%Y-%m-%d %H:%M:%S}" if rule.column.type == "timestamp" else f"{parsed:%Y-%m-%d}"
        formats = " or ".join(rule.formats)
        raise _Bad(f"{_shown(value)} (not a date: the mapping reads {rule.source_label} as {formats})",
                   f"{_shown(value)} (not a date: the mapping reads {rule.source_label} as "
                   f"{rule.formats[0]} or …)",
                   f"{_shown(value)} (not a date in {rule.source_label}'s formats)")


_FIELDS = {"%Y": r"(?P<year>\d{4})", "%m": r"(?P<month>\d{1,2})", "%d": r"(?P<day>\d{1,2})",
           "%H": r"(?P<hour>\d{1,2})", "%M": r"(?P<minute>\d{1,2})", "%S": r"(?P<second>\d{1,2})"}
_FAST: dict[str, re.Pattern | None] = {}


def _fast_pattern(fmt: str) -> re.Pattern | None:
    """A regex reading `fmt` when it holds only %Y %m %d %H %M %S (each once) and plain characters."""
    if fmt not in _FAST:
        parts, seen, pattern = re.split(r"(%.)", fmt), set(), ""
        for part in parts:
            if part.startswith("%"):
                if part not in _FIELDS or part in seen:
                    _FAST[fmt] = None
                    return None
                seen.add(part)
                pattern += _FIELDS[part]
            else:
                pattern += re.escape(part)
        _FAST[fmt] = re.compile(pattern)
    return _FAST[fmt]


def _strptime(text: str, fmt: str) -> datetime | None:
    """`datetime.strptime(text, fmt)`, or None when `text` is not in `fmt` (or no real date)."""
    pattern = _fast_pattern(fmt)
    try:
        if pattern is None:
            return datetime.strptime(text, fmt)
        m = pattern.fullmatch(text)
        if m is None:
            return None
        return datetime(**{k: int(v) for k, v in m.groupdict().items()})
    except ValueError:
        return None


def _cell(row: list[str], index: int | None) -> str:
    return row[index] if index is not None and index < len(row) else ""


# -- combining the rows of one key ---------------------------------------------------------


class _Table:
    """The converted rows of one kizuna table for one night, one per key where the rows agree."""

    def __init__(self, export: ExportFile, rules: list[SourceRule]) -> None:
        self.export = export
        mapped = {c.column.name for r in rules for c in r.columns}
        self.columns = [c for c in export.column_names if c in mapped]
        self.combine = {c.column.name: c for r in rules for c in r.columns if c.combine}
        self.rows: list[dict[str, str]] = []
        self.by_key: dict[tuple[str, ...], int] = {}
        self.conflicts = 0

    def add(self, row: dict[str, str]) -> None:
        key = tuple(row.get(k, "") for k in self.export.primary_key)
        if not all(key):
            self.rows.append(row)  # the loader quarantines it (a key is required)
            return
        at = self.by_key.get(key)
        if at is None:
            self.by_key[key] = len(self.rows)
            self.rows.append(row)
            return
        kept = self.rows[at]
        merged = dict(kept)
        for name, rule in self.combine.items():
            merged[name] = _combined(rule, kept.get(name, ""), row.get(name, ""))
        if all(merged.get(c, "") == row.get(c, "") for c in self.columns if c not in self.combine):
            self.rows[at] = merged
        else:  # two versions of one key in one night: the loader keeps one and quarantines the other
            self.rows.append(row)
            self.conflicts += 1

    def csv_bytes(self) -> bytes:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows([r.get(c, "") for c in self.columns] for r in self.rows)
        return buf.getvalue().encode("utf-8")


def _combined(rule: ColumnRule, a: str, b: str) -> str:
    if not a or not b:
        return a or b
    if rule.combine == "first":
        return a
    if rule.combine == "prefer":
        rank = {v: i for i, v in enumerate(rule.prefer)}
        return b if rank.get(b, len(rank)) < rank.get(a, len(rank)) else a
    key: Callable[[str], object] = str
    if rule.column.type == "integer" and re.fullmatch(r"-?\d+", a) and re.fullmatch(r"-?\d+", b):
        key = int
    pick = max if rule.combine == "max" else min
    return pick(a, b, key=key)


# -- the source -----------------------------------------------------------------------------


def _header_line(path: Path, encoding: str) -> list[str] | None:
    """The header names of a cart file (its first line only; the whole file is decoded by the loader's
    code when it is converted). None when the file is empty or its first line cannot be decoded."""
    with open(path, "rb") as fh:
        head = fh.read(loader.HEADER_MAX_BYTES)
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    if not line:
        return None
    text = None
    if line.startswith(b"\xef\xbb\xbf"):
        text = line[3:].decode("utf-8", "replace")
    for enc in {"auto": ("utf-8", "cp932"), "utf-8": ("utf-8",), "cp932": ("cp932",)}[encoding]:
        if text is not None:
            break
        try:
            text = line.decode(enc)
        except UnicodeDecodeError:
            continue
    if text is None:
        return None
    try:
        return [h.strip() for h in next(csv.reader([text]))]
    except (csv.Error, StopIteration):
        return None


def _names(header: list[str]) -> str:
    shown = ", ".join(header[:12])
    return shown + (f", … ({len(header)} columns)" if len(header) > 12 else "")


def _not_in(refs: list[HeaderRef] | HeaderRef, where: str, header: list[str]) -> str:
    """`header '受注日' is not in <file> (did you mean '受注日時'? its headers: ...)`."""
    refs = refs if isinstance(refs, list) else [refs]
    near = difflib.get_close_matches(refs[0].text, header, n=1, cutoff=0.5)
    hint = f"did you mean {near[0]!r}? " if near else ""
    named = f"header {refs[0].text!r} is not" if len(refs) == 1 else \
        f"none of the headers {', '.join(repr(r.text) for r in refs)} is"
    return f"{named} in {where} ({hint}its headers: {_names(header)})"


class MappedCsvSource(ExportSource):
    """The cart's own nightly CSV exports in `exports_dir`, converted through `mapping` into
    kizuna's format under `landing_dir/mapped_csv/<night>/`."""

    encoding = "utf-8"  # what the loader reads: the landed files

    def __init__(self, exports_dir: Path, landing_dir: Path, mapping: Mapping | Path | str | None = None,
                 encoding: str = "auto") -> None:
        self.mapping = mapping if isinstance(mapping, Mapping) else load_mapping(mapping)
        self.exports_dir = Path(exports_dir)
        self.landing_root = Path(landing_dir) / SOURCE_NAME
        self.cart_encoding = self.mapping.encoding or encoding
        self.nights_of = CsvExportSource(self.exports_dir)  # the night folders: kizuna's own rules
        self.carries = frozenset(self.mapping.tables)
        self._sheets_read = False
        self.check()

    # -- checks when the source is built ------------------------------------------------------

    def check(self) -> None:
        """Every header the mapping reads is in every cart file it reads, and every lookup sheet is there
        (once there is a night to load: before the first export arrives, the run says there is none)."""
        nights = self.nights()
        if nights:
            for sheet in self.mapping.lookups.values():
                self._sheet_header(sheet)
        for night in nights:
            folder = self.nights_of.night_dir(night)
            if folder.is_symlink() or not folder.is_dir():
                continue  # files() refuses it with the loader's message
            for entry in self._entries(folder):
                if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
                    continue
                rules = self._rules_for(entry.name)
                if not rules:
                    continue
                header = _header_line(Path(entry.path), self.cart_encoding)
                if header is None:
                    continue  # an empty file: nothing to map
                for rule in rules:
                    missing = rule.missing_in(header)
                    if missing is not None:
                        raise self.mapping.error(
                            missing[0], f"{_not_in(missing[1], f'{night}/{entry.name}', header)}. Fix the header name "
                            "in the mapping, or add the column to the cart's CSV export; nothing was loaded")

    def _sheet_header(self, sheet: Lookup) -> list[str]:
        path = self.exports_dir / sheet.file
        if path.is_symlink():
            raise link_refused(f"The lookup sheet {sheet.file} ({self.mapping.label}, {sheet.path})",
                               "the file itself (a copy)")
        if not path.is_file():
            raise self.mapping.error(sheet.path, f"the lookup sheet {sheet.file} is not in the exports folder "
                                     f"{self.exports_dir}: put it there (docs/sources/mapped_csv.md)")
        header = _header_line(path, self.cart_encoding) or []
        wanted = [sheet.key] + [c.lookup[1] for rules in self.mapping.tables.values() for r in rules
                                for c in r.columns if c.lookup and c.lookup[0] == sheet.name]
        for ref in wanted:
            if ref.index_in(header) is None:
                fields = [c.field for rules in self.mapping.tables.values() for r in rules for c in r.columns
                          if c.lookup and c.lookup == (sheet.name, ref)] or [sheet.path]
                raise self.mapping.error(fields[0], _not_in(ref, f"the lookup sheet {sheet.file}", header))
        return header

    # -- nights and files ---------------------------------------------------------------------

    def nights(self) -> list[date]:
        return self.nights_of.nights()

    def landing_dir(self, night: date) -> Path:
        return self.landing_root / night.isoformat()

    def files_dir(self, night: date) -> Path | None:
        return self.landing_dir(night)

    def _rules_for(self, name: str) -> list[SourceRule]:
        return [r for rules in self.mapping.tables.values() for r in rules if r.matches(name)]

    @staticmethod
    def _entries(folder: Path) -> list[os.DirEntry]:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)

    def _cart_files(self, night: date) -> list[Path]:
        """The night's cart files that some table reads, in name order; links and odd entries refused."""
        folder = self.nights_of.night_dir(night)
        if folder.is_symlink():
            raise link_refused(f"The night folder {night}", "the folder itself (with the cart's export files)")
        if not folder.is_dir():
            raise ExportError(f"No export folder for night {night}: expected {folder}.")
        files = []
        for entry in self._entries(folder):
            if entry.name.startswith(".") or not self._rules_for(entry.name):
                continue
            label = f"{night}/{entry.name}"
            if entry.is_symlink():
                raise link_refused(label, "the file itself (a copy)")
            if entry.is_dir(follow_symlinks=False):
                continue  # reported by ignored()
            if not entry.is_file(follow_symlinks=False):
                raise ExportError(f"{label} is not a regular file (a pipe or a device), so it cannot be an export: "
                                  "put the CSV file itself there, then run the night again.")
            files.append(Path(entry.path))
        return files

    def files(self, night: date) -> list[ExportFileRef]:
        cart = self._cart_files(night)
        if not cart:
            return []
        landing = self.landing_dir(night)
        fingerprint = self._fingerprint(cart)
        manifest = self._read_manifest(landing)
        if manifest.get("fingerprint") != fingerprint or not self._landed_intact(landing, manifest):
            manifest = self._convert(night, cart, landing, fingerprint)
        refs = []
        for export in EXPORT_FILES:
            if export.table in manifest["tables"]:
                refs.append(ExportFileRef(night, export, landing / export.file_name))
        return refs

    def _fingerprint(self, cart: list[Path]) -> str:
        parts = {"converter": CONVERTER_VERSION, "mapping": self.mapping.digest, "encoding": self.cart_encoding,
                 "files": [], "sheets": []}
        for path in cart:
            st = os.lstat(path)
            parts["files"].append([path.name, st.st_size, st.st_mtime_ns])
        for sheet in self.mapping.lookups.values():
            st = os.lstat(self.exports_dir / sheet.file)
            parts["sheets"].append([sheet.file, st.st_size, st.st_mtime_ns])
        return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()

    @staticmethod
    def _read_manifest(landing: Path) -> dict:
        try:
            return json.loads((landing / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    @staticmethod
    def _landed_intact(landing: Path, manifest: dict) -> bool:
        """Every file the night's conversion wrote is still there. A landed file that changed since (an erasure
        blanking a person in it) is left as it is: converting again would bring the person back."""
        tables = manifest.get("tables")
        return isinstance(tables, dict) and all(
            (landing / f"{table}.csv").is_file() and not (landing / f"{table}.csv").is_symlink() for table in tables)

    # -- converting a night -------------------------------------------------------------------

    def _read_sheets(self) -> None:
        if self._sheets_read:
            return
        for sheet in self.mapping.lookups.values():
            sheet.header = self._sheet_header(sheet)
            key = sheet.key.index_in(sheet.header)
            sheet.rows = {}
            with self._decoded(self.exports_dir / sheet.file, sheet.file) as rows:
                next(rows, None)
                for number, row in enumerate(rows, start=2):
                    value = _cell(row, key).strip()
                    if not value:
                        continue
                    if value in sheet.rows:
                        raise ExportError(f"{sheet.file} (the lookup sheet of {self.mapping.label}): "
                                          f"{sheet.key.text} {value!r} appears twice (line {number}); keep one row "
                                          "per key, then run again.")
                    sheet.rows[value] = row
        self._sheets_read = True

    @contextmanager
    def _decoded(self, path: Path, label: str) -> Iterator[Iterator[list[str]]]:
        """The CSV rows of a cart file, decoded by the loader's own code (UTF-8, or CP932 streamed
        into a UTF-8 copy), refusing a symbolic link."""
        loader._refuse_unless_regular(path, label)
        scan = loader._scan(path, check_utf8=self.cart_encoding in ("auto", "utf-8"), label=label)
        if scan.bom and scan.utf8_error is not None:
            raise loader._bom_but_not_utf8(label, path, scan)
        with tempfile.TemporaryDirectory(prefix="kizuna-mapped-") as tmp:
            if scan.utf8_error is None:
                read = path
            elif self.cart_encoding == "utf-8":
                raise ExportError(f"{label}: not valid UTF-8 at {scan.utf8_error}. The mapping reads the cart's files "
                                  "as UTF-8: set its encoding (or KIZUNA_SOURCE_ENCODING) to cp932 or auto, or "
                                  "re-export the file as UTF-8.")
            else:
                read = Path(tmp) / "utf8.csv"
                loader._transcode_cp932(path, read, label, scan.utf8_error)
            with open(read, encoding="utf-8-sig", newline="") as fh:
                try:
                    yield csv.reader(fh)
                except csv.Error as exc:
                    raise ExportError(f"{label}: cannot be read as CSV ({exc}); check the file, then run the "
                                      "night again.") from None

    def _convert(self, night: date, cart: list[Path], landing: Path, fingerprint: str) -> dict:
        self._read_sheets()
        tables = {t: _Table(EXPORT_FILES_BY_TABLE[t], rules) for t, rules in self.mapping.tables.items()}
        used: set[str] = set()
        for path in cart:
            label = f"{night}/{path.name}"
            with self._decoded(path, label) as rows:
                header = [h.strip() for h in next(rows, [])]
                if not header:
                    continue
                converters = []
                for rule in self._rules_for(path.name):
                    missing = rule.missing_in(header)
                    if missing is not None:  # the file changed since the source was built
                        raise self.mapping.error(missing[0], _not_in(missing[1], label, header))
                    converters.append((rule, _Converter(rule, header, night, self.mapping.lookups)))
                    used.add(rule.table.table)
                skipped = 0
                for row in rows:
                    if not any(cell.strip() for cell in row):
                        continue  # a blank line (e.g. at the end of a file saved by a spreadsheet)
                    for rule, converter in converters:
                        if converter.wanted(row):
                            tables[rule.table.table].add(converter.convert(row))
                        else:
                            skipped += 1
                if skipped:
                    log.info("%s: %d row(s) left out by the mapping's `where` conditions", label, skipped)
        landing.mkdir(parents=True, exist_ok=True)
        written: dict[str, list[int]] = {}
        for table, content in tables.items():
            if table not in used:
                continue
            if content.conflicts:
                log.warning("%s/%s: %d key(s) appear with different values in one night's cart file(s); the loader "
                            "keeps one version of each and quarantines the others", night, table, content.conflicts)
            written[table] = self._write(landing / f"{table}.csv", content.csv_bytes())
        for stale in landing.glob("*.csv"):
            if stale.stem not in written:
                stale.unlink()
        manifest = {"fingerprint": fingerprint, "tables": written, "mapping": str(self.mapping.path)}
        tmp = landing / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, landing / MANIFEST)
        return manifest

    @staticmethod
    def _write(path: Path, data: bytes) -> list[int]:
        """Write `data` unless the file already holds exactly it (its time then stays, so the loader
        sees it unchanged); returns [size, mtime_ns]."""
        try:
            same = not path.is_symlink() and path.is_file() and path.stat().st_size == len(data) \
                and path.read_bytes() == data
        except OSError:
            same = False
        if not same:
            tmp = path.with_name(path.name + ".partial")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        st = os.lstat(path)
        return [st.st_size, st.st_mtime_ns]

    # -- what is not loaded, and why ------------------------------------------------------------

    def ignored(self, night: date | None = None) -> list[str]:
        if night is not None:
            return self._ignored_in(night)
        nights = self.nights()
        sheets = {s.file for s in self.mapping.lookups.values()}
        notes = [n for n in self.nights_of.ignored()
                 if not any(n.startswith(f"{x}/") for x in nights) and n.split(":", 1)[0] not in sheets]
        for n in nights:
            notes += self._ignored_in(n)
        return notes

    def _ignored_in(self, night: date) -> list[str]:
        folder = self.nights_of.night_dir(night)
        if folder.is_symlink() or not folder.is_dir():
            return []
        notes = []
        for entry in self._entries(folder):
            if entry.name.startswith("."):
                continue
            label = f"{night}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                notes.append(f"{label}/: ignored: a folder inside a night folder (the cart's files are read only "
                             "directly from the night folder)")
            elif not self._rules_for(entry.name):
                notes.append(f"{label}: ignored: no table of {self.mapping.label} reads it (it reads "
                             f"{', '.join(self.mapping.patterns())})")
        return notes

    def __repr__(self) -> str:
        return f"MappedCsvSource({str(self.exports_dir)!r}, mapping={str(self.mapping.path)!r})"


def source_from_settings(settings) -> MappedCsvSource:
    """`KIZUNA_SOURCE=mapped_csv`: the cart's own CSV exports in `KIZUNA_EXPORTS_DIR`, one folder per night,
    read through `KIZUNA_SOURCE_MAPPING` (default: the shipped EC-CUBE 4 mapping)."""
    return MappedCsvSource(settings.exports_dir, settings.landing_dir, settings.source_mapping,
                           encoding=settings.source_encoding)

"""Data-quality gates: the checks of `checks.yaml` run on the night's batch and on the marts.

GE 1.x through SQLAlchemy on DuckDB returns wrong results (GE closes the connection before fetching), so each
gate reads only what it must judge (the night's batch of each raw table, or a mart,
and only the columns its checks name) into pandas and validates it with Great
Expectations in an ephemeral context. Checks that span tables or the whole history
(referential integrity, freshness, volume, the quarantine) run as DuckDB SQL that
returns the offending values; both kinds end up in one result model with the check's
name, table, count and example values.

A check of severity `error` stops the run; a `warning` is reported and the run goes on.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb

from kizuna.errors import KizunaError, QualityGateFailed
from kizuna.i18n import LOCALES, N_, current_locale, label, translations
from kizuna.masking import escape_unsafe, mask_contacts_in, mask_value
from kizuna.quality.config import QualityConfig, load_config

log = logging.getLogger("kizuna.quality")

Severity = Literal["error", "warning"]
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
#: A stopped run's message lists at most this many failed checks (the quality page has them all).
MESSAGE_ERRORS = 5
#: Where the shop's opening date is kept once taken from the data (one row), in the warehouse.
OPENING_DATE_TABLE = "raw._opening_date"


@dataclass(frozen=True)
class Check:
    """One check of one table, as configured in checks.yaml (after overrides)."""

    name: str
    table: str
    expectation: str  # a GE expectation class name, or a description for SQL/builtin checks
    columns: tuple[str, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    severity: Severity = "error"
    why: str = ""
    sql: str | None = None
    builtin: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    requires: str | None = None
    #: What to do when the check fails (shown once in the stop message, beside the failed checks).
    fix: str = ""
    #: SQL checks: the column holding how many rows each offending value stands for (default: one).
    count_column: str | None = None
    #: The check's texts as people read them, per locale: {"ja": {"expectation", "why", "fix"}, ...}, each
    #: translated through the message catalogue *before* its `$name`s are filled in (see `_texts`). A text the
    #: catalogue lacks (a shop's own check) is missing here, and shown as written.
    texts: dict[str, dict[str, str]] = field(default_factory=dict, compare=False)

    def text(self, part: str, locale: str | None = None) -> tuple[str, bool]:
        """The check's `part` ("expectation", "why" or "fix") in `locale` (default KIZUNA_LOCALE), and whether
        it is in that language: False for a text the catalogue does not have, shown as written (English)."""
        locale = locale or current_locale()
        english = getattr(self, part) or ""
        shown = self.texts.get(locale, {}).get(part)
        if shown is not None:
            return shown, True
        return english, locale == "en" or not english

    @property
    def frame(self) -> str:  # the name the first version used
        return self.table

    @property
    def column(self) -> str:
        return ", ".join(self.columns)

    @property
    def kind(self) -> str:
        return "sql" if self.sql else "builtin" if self.builtin else "expectation"


@dataclass(frozen=True)
class CheckOutcome:
    check: Check
    success: bool
    unexpected_count: int
    examples: list[Any]
    rows_checked: int | None = None
    error: str | None = None  # the check itself could not run

    def describe(self, why: bool = True, locale: str | None = None) -> str:
        """One line for the console, the log and a stop message, in `locale` (default KIZUNA_LOCALE)."""
        locale = locale or current_locale()
        _ = translations(locale).gettext
        c = self.check
        shown = ", ".join(repr(v) for v in self.examples)
        where = c.table + (f".{c.column}" if c.columns else "")
        if self.error:
            what = _("could not run: %(why)s") % {"why": self.error}
        elif self.rows_checked is not None:
            what = _("failed for {n} of {total} row(s)").format(n=f"{self.unexpected_count:,}",
                                                                 total=f"{self.rows_checked:,}")
        else:
            what = _("failed for {n} row(s)").format(n=f"{self.unexpected_count:,}")
        because = c.text("why", locale)[0]
        return (_("[{severity}] {check} on {where}: {expectation} {what}").format(
                    severity=label("severity", c.severity, locale), check=c.name, where=where,
                    expectation=c.text("expectation", locale)[0], what=what)
                + (_(" (e.g. {examples})").format(examples=shown) if shown else "")
                + (f" - {because}" if because and why else ""))


@dataclass
class GateResult:
    gate: str
    outcomes: list[CheckOutcome]
    rows_checked: dict[str, int]
    night: date | None = None
    seconds: float = 0.0
    #: The tables whose GE checks were not run again: the same frame passed the same checks before (issue 20).
    reused: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.success and o.check.severity == "error"]

    @property
    def warnings(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.success and o.check.severity == "warning"]

    @property
    def passed(self) -> int:
        return sum(o.success for o in self.outcomes)

    def failed(self, name: str) -> CheckOutcome | None:
        """The failed outcome of the check called `name`, if it failed."""
        return next((o for o in self.errors + self.warnings if o.check.name == name), None)

    def summary(self) -> str:
        problems = [o.describe() for o in self.errors + self.warnings]
        return "\n".join([self._head(), *("  " + p for p in problems)])

    def _head(self) -> str:
        _ = translations(current_locale()).gettext
        return _("{gate}: {passed}/{total} checks passed, {errors} error(s), {warnings} warning(s)").format(
            gate=label("gate", self.gate), passed=self.passed, total=len(self.outcomes), errors=len(self.errors),
            warnings=len(self.warnings))

    def raise_on_error(self) -> None:
        """Raise `QualityGateFailed` when a check of severity error failed.

        The message is meant to be read whole at the console: the errors only (the first
        `MESSAGE_ERRORS`, each on one line, without its `why`), what to do (the distinct `fix`
        texts of the failed checks), and where every check is (the night's quality page).
        `summary()` keeps everything for the log.
        """
        if not self.errors:
            return
        _ = translations(current_locale()).gettext
        lines = [self._head(), *("  " + o.describe(why=False) for o in self.errors[:MESSAGE_ERRORS])]
        more = len(self.errors) - MESSAGE_ERRORS
        page = f"quality-{self.night.isoformat()}.html" if self.night else _("the night's quality page")
        if more > 0:
            lines.append(_("  ... and {n} more error(s); every check, with its examples: {page} in the reports "
                           "folder").format(n=more, page=page))
        fixes = list(dict.fromkeys(o.check.text("fix")[0] for o in self.errors if o.check.fix))
        lines += [_("Hint: {fix}").format(fix=f) for f in fixes[:2]]
        if self.gate == "raw data":  # the loader adds what to do with the night (its files, then run again)
            lines.append(_("The run stopped here: nothing was modelled or sent."))
        else:
            lines.append(_("The run stopped here: nothing was sent. Fix the export (or the check's threshold in the "
                           "quality config) and run the night again."))
        raise QualityGateFailed("\n".join(lines), result=self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate, "night": self.night.isoformat() if self.night else None,
            "seconds": round(self.seconds, 3), "rows_checked": self.rows_checked,
            "outcomes": [{
                "name": o.check.name, "table": o.check.table, "columns": list(o.check.columns),
                "expectation": o.check.expectation, "severity": o.check.severity, "why": o.check.why,
                "texts": o.check.texts,
                "success": o.success, "unexpected_count": o.unexpected_count, "rows_checked": o.rows_checked,
                "examples": [_jsonable(v) for v in o.examples], "error": o.error, "description": o.describe(),
            } for o in self.outcomes],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


# -- parameters -------------------------------------------------------------------------


def _as_datetime(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return value


def _runtime_params(config: QualityConfig, night: date | None) -> dict[str, Any]:
    params: dict[str, Any] = {k: _as_datetime(v) for k, v in config.settings.items()}
    if night is not None:
        night_end = datetime(night.year, night.month, night.day) + timedelta(days=1)
        params.update(night=night, night_end=night_end,
                      future_limit=night_end + timedelta(days=int(config.settings.get("future_slack_days", 1))))
    return params


# -- the shop's opening date -----------------------------------------------------------------


@dataclass(frozen=True)
class OpeningDate:
    """The day before which no event of the shop can lie, and where it comes from (for messages)."""

    day: date | None
    origin: str
    #: True when taken from the data on this night (and recorded in the warehouse with it).
    inferred_now: bool = False

    def describe(self) -> str:
        return f"{self.day.isoformat()}, {self.origin}" if self.day else self.origin


def _a_date(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise KizunaError(f"quality config ({where}): shop_opened must be a date as YYYY-MM-DD, not {value!r}; "
                          "or leave it out and kizuna takes the earliest date of the first history loaded") from None


def _opening_date_checks(config: QualityConfig) -> list[tuple[str, str]]:
    """(table, column) of every enabled raw check bounded below by `$shop_opened`: the dates the opening
    date must precede."""
    return [(c["table"], c["column"]) for c in config.raw
            if c.get("enabled", True) and c.get("column")
            and (c.get("kwargs") or {}).get("min_value") == "$shop_opened"]


def _earliest(con: duckdb.DuckDBPyConnection, columns: list[tuple[str, str]], night: date,
              tonight: bool) -> tuple[datetime, str] | None:
    """The earliest value of `columns` in raw, over the rows of other nights (or, `tonight`, every row), and
    the table.column it is in; None when there is none."""
    present = {(t, c) for t, c in con.execute(
        "select table_name, column_name from duckdb_columns() "
        "where database_name = current_database() and schema_name = 'raw'").fetchall()}
    parts = [f"select min(cast({_q(c)} as timestamp)) as v, '{t}.{c}' as src from raw.{_q(t)}"
             + ("" if tonight else " where _night <> $night")
             for t, c in columns if (t, c) in present and (t, "_night") in present]
    if not parts:
        return None
    sql = " union all ".join(parts)
    row = con.execute(f"select v, src from ({sql}) where v is not null order by v, src limit 1",
                      {} if tonight else {"night": night}).fetchone()
    return (row[0], row[1]) if row else None


def opening_date(con: duckdb.DuckDBPyConnection, config: QualityConfig, night: date) -> OpeningDate:
    """The shop's opening date for the raw-data gate of `night`.

    `shop_opened` in the quality config wins when set. Otherwise it is the date kept in the warehouse
    (`raw._opening_date`), and when none is kept yet it is taken from the data: the earliest date of the
    columns the date checks bound with it (orders, customers, shipments, ...), over the nights loaded
    before `night` or, on the first night (the full history), over its rows. It is recorded on the
    gate's connection, inside the night's transaction: kept exactly when the night is. A shop thus
    never has to know about it to load its history, and a later night with an older date is an error
    whose message names the setting.
    """
    explicit = config.settings.get("shop_opened")
    if explicit not in (None, ""):
        where = ", ".join(str(p) for p in config.sources) or "quality config"
        return OpeningDate(_a_date(explicit, where), "set as shop_opened in the quality config")
    kept = con.execute(
        "select count(*) from duckdb_tables() where database_name = current_database() "
        "and schema_name = 'raw' and table_name = '_opening_date'").fetchone()[0]
    if kept:
        row = con.execute(f"select opening_date, origin from {OPENING_DATE_TABLE} "
                          "order by recorded_at desc limit 1").fetchone()
        if row:
            return OpeningDate(row[0], row[1])
    columns = _opening_date_checks(config)
    found = _earliest(con, columns, night, tonight=False) or _earliest(con, columns, night, tonight=True)
    if found is None:
        return OpeningDate(None, "not known yet (no dated row loaded)")
    day, source = found[0].date(), found[1]
    origin = f"taken from the data: the earliest {source}, night {night.isoformat()}"
    remember_opening_date(con, day, origin, night)
    log.info("opening date %s: %s. A later night with an older date stops the run; if such a date is right, "
             "set shop_opened in the quality config (KIZUNA_QUALITY_CONFIG).", day, origin)
    return OpeningDate(day, origin, inferred_now=True)


def remember_opening_date(con: duckdb.DuckDBPyConnection, day: date, origin: str, night: date | None = None) -> None:
    """Keep `day` as the shop's opening date in the warehouse (the latest kept wins), with where it came from."""
    con.execute(f"create table if not exists {OPENING_DATE_TABLE} "
                "(opening_date date not null, origin varchar, night date, recorded_at timestamp)")
    con.execute(f"insert into {OPENING_DATE_TABLE} values (?, ?, ?, now()::timestamp)", [day, origin, night])


def _opening_params(config: QualityConfig, opening: OpeningDate, night: date) -> dict[str, Any]:
    """The parameters checks use for the opening date: `$shop_opened` (the bound, None when unknown) and
    the texts of their messages. A bound after the night is a configuration error, said as such (GE would
    only say "min_value cannot be greater than max_value" for every date check)."""
    night_end = datetime(night.year, night.month, night.day) + timedelta(days=1)
    overrides = [str(p) for p in config.sources[1:]]
    config_file = overrides[-1] if overrides else "the file named by KIZUNA_QUALITY_CONFIG (see kizuna/quality/checks.yaml)"
    if opening.day is not None and _as_datetime(opening.day) >= night_end:
        raise KizunaError(
            f"The shop's opening date {opening.describe()} is after night {night.isoformat()}, so every date of "
            f"that night would be refused. If the night's data is right, set shop_opened to the shop's real "
            f"opening date (on or before the earliest date of the data) under `settings:` in {config_file}, or "
            "remove it so that kizuna takes the earliest date of the first history loaded; then run again.")
    return {"shop_opened": _as_datetime(opening.day) if opening.day else None,
            "opening_date": opening.day.isoformat() if opening.day else "(none yet)",
            "opening_date_origin": opening.origin, "quality_config_file": config_file}


def _resolve(value: Any, params: dict[str, Any]) -> Any:
    """`$name` (the whole value) becomes the parameter; lists and dicts are resolved inside."""
    if isinstance(value, str):
        m = _PARAM.fullmatch(value)
        if m and m.group(1) in params:
            return params[m.group(1)]
        return _PARAM.sub(lambda x: str(params.get(x.group(1), x.group(0))), value)
    if isinstance(value, list):
        return [_resolve(v, params) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, params) for k, v in value.items()}
    return value


def _checks(config: QualityConfig, gate: str, params: dict[str, Any]) -> list[Check]:
    out = []
    for raw in config.checks(gate):
        if not raw.get("enabled", True):
            continue
        columns = raw.get("columns") or ([raw["column"]] if raw.get("column") else [])
        severity = _resolve(raw.get("severity", "error"), params)
        if severity not in ("error", "warning"):
            raise KizunaError(f"quality check {raw['name']}: severity must be error or warning, not {severity!r}")
        kwargs = _resolve(dict(raw.get("kwargs") or {}), params)
        out.append(Check(
            name=raw["name"], table=raw["table"],
            expectation=str(_resolve(raw["expectation"], params)) if raw.get("sql") or raw.get("builtin")
            else raw["expectation"],
            columns=tuple(columns), kwargs=kwargs, severity=severity,
            why=str(_resolve(raw.get("why", ""), params)), sql=raw.get("sql"), builtin=raw.get("builtin"),
            params=_resolve(dict(raw.get("params") or {}), params), requires=raw.get("requires"),
            fix=str(_resolve(raw.get("fix", ""), params)), count_column=raw.get("count"),
            texts=_texts(raw, kwargs, params),
        ))
    return out


# -- the checks' texts in each language --------------------------------------------------------------------

#: Words for a Great Expectations expectation (its class name stays the check's `expectation`, for searching):
#: the msgid, and how its `{placeholders}` are filled from the kwargs.
_EXPECTATION_WORDS: dict[str, str] = {
    "ExpectColumnValuesToBeBetween": N_("values between {min_value} and {max_value}"),
    "ExpectColumnValuesToBeInSet": N_("values one of {value_set}"),
    "ExpectColumnValuesToBeUnique": N_("no value twice"),
    "ExpectCompoundColumnsToBeUnique": N_("no combination twice"),
    "ExpectColumnValuesToNotBeNull": N_("no empty value"),
    "ExpectColumnValuesToMatchRegex": N_("values match {regex}"),
    "ExpectColumnValuesToNotMatchRegex": N_("no value matches {regex}"),
    "ExpectColumnPairValuesToBeEqual": N_("both columns equal"),
}
_ONE_BOUND = {"min_value": N_("values at least {min_value}"), "max_value": N_("values at most {max_value}")}


def _bound(value: Any) -> str:
    if isinstance(value, datetime) and value.time() == datetime.min.time():
        return value.date().isoformat()
    return value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)


def _expectation_words(expectation: str, kwargs: dict[str, Any], gettext) -> str | None:
    """A GE check's expectation in words, or None for a class kizuna has no words for (shown by its name)."""
    words = _EXPECTATION_WORDS.get(expectation)
    if words is None:
        return None
    if expectation == "ExpectColumnValuesToBeBetween":
        given = [k for k in ("min_value", "max_value") if kwargs.get(k) is not None]
        if len(given) == 1:
            words = _ONE_BOUND[given[0]]
        elif not given:
            return None
    # Codes (values, patterns) are quoted in backticks: the quality page shows them as code, never translated.
    fill = {k: _bound(v) for k, v in kwargs.items() if k in ("min_value", "max_value")}
    if "regex" in kwargs:
        fill["regex"] = f"`{kwargs['regex']}`"
    if isinstance(kwargs.get("value_set"), (list, tuple, set)):
        fill["value_set"] = ", ".join(f"`{v}`" for v in kwargs["value_set"])
    try:
        return gettext(words).format(**fill)
    except (KeyError, IndexError, ValueError):  # a check configured wrongly: it says so when it runs
        return None


#: Where the opening date came from, as `OpeningDate.origin` records it in English: the pattern and its msgid.
_ORIGINS = [
    (re.compile(r"taken from the data: the earliest (?P<source>.+), night (?P<night>\S+)"),
     N_("taken from the data: the earliest {source}, night {night}")),
    (re.compile(r"set as shop_opened in the quality config"), N_("set as shop_opened in the quality config")),
    (re.compile(r"not known yet \(no dated row loaded\)"), N_("not known yet (no dated row loaded)")),
]


def _origin_words(origin: Any, gettext) -> Any:
    for pattern, msgid in _ORIGINS:
        m = pattern.fullmatch(str(origin))
        if m:
            return gettext(msgid).format(**m.groupdict())
    return origin


def _texts(raw: dict[str, Any], kwargs: dict[str, Any], params: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The check's expectation, why and fix in every locale the catalogue has them in: the template (`$name`
    and all) is looked up, then filled with the same parameters as the English text. The parameters that are
    words themselves (the opening date's origin) are translated too."""
    out: dict[str, dict[str, str]] = {}
    for locale in LOCALES:
        gettext = translations(locale).gettext
        local = dict(params, opening_date_origin=_origin_words(params.get("opening_date_origin", ""), gettext))
        if params.get("opening_date") == "(none yet)":
            local["opening_date"] = gettext(N_("(none yet)"))
        texts = {}
        for part in ("why", "fix") + (("expectation",) if raw.get("sql") or raw.get("builtin") else ()):
            template = raw.get(part) or ""
            shown = gettext(template) if template else ""
            if template and (shown != template or locale == "en"):
                texts[part] = str(_resolve(shown, local))
        if not (raw.get("sql") or raw.get("builtin")):
            words = _expectation_words(raw["expectation"], kwargs, gettext)
            if words is not None:
                texts["expectation"] = words
        out[locale] = texts
    return out


# -- errors and masking ----------------------------------------------------------------------


def _error_message(exc: BaseException, limit: int = 300) -> str:
    """One line saying what went wrong, for a check that could not run.

    DuckDB's first line names the kind and the cause ("Conversion Error: Overflow in ...");
    other libraries' messages (pydantic's, GE's) are folded onto one line. E-mail addresses
    and phone numbers a message may quote from the data are masked.
    """
    text = str(exc).strip()
    if isinstance(exc, duckdb.Error):
        text = text.splitlines()[0] if text else type(exc).__name__
    else:
        text = f"{type(exc).__name__}: " + " ".join(text.split()) if text else type(exc).__name__
    text = mask_contacts_in(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _could_not_run(checks: list[Check], error: str, rows: int | None = None) -> list[CheckOutcome]:
    return [CheckOutcome(c, False, 0, [], rows, error) for c in checks]


def _shown(check: Check, value: Any, personal: frozenset[str]) -> Any:
    """An example value as it may be shown: masked when it comes from a personal column."""
    if isinstance(value, tuple):  # pair and compound checks: one value per column
        return tuple(_shown_in(check.columns[i] if i < len(check.columns) else "", v, personal)
                     for i, v in enumerate(value))
    if check.kind != "expectation":  # SQL and builtin checks compose their own text
        if check.columns and check.columns[0] in personal and value is not None:
            return mask_value(check.columns[0], value)
        return mask_contacts_in(value) if isinstance(value, str) else _shown_in("", value, personal)
    return _shown_in(check.columns[0] if check.columns else "", value, personal)


def _shown_in(column: str, value: Any, personal: frozenset[str]) -> Any:
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()  # np.int64(5530) -> 5530: read as a number in the summary and the JSON
    if column in personal:
        return mask_value(column, value)
    return escape_unsafe(value) if isinstance(value, str) else value


def _masked(outcome: CheckOutcome, personal_columns: dict[str, frozenset[str]]) -> CheckOutcome:
    """The outcome with its examples and error message safe to print, log and publish."""
    personal = personal_columns.get(outcome.check.table, frozenset())
    return replace(outcome, examples=[_shown(outcome.check, v, personal) for v in outcome.examples],
                   error=mask_contacts_in(outcome.error) if outcome.error else outcome.error)


# -- SQL checks ---------------------------------------------------------------------------


def _run_sql(con: duckdb.DuckDBPyConnection, check: Check, params: dict[str, Any], examples: int) -> CheckOutcome:
    values = {**params, **check.params}
    names = dict.fromkeys(_PARAM.findall(check.sql))
    missing = [n for n in names if n not in values]
    if missing:
        return CheckOutcome(check, False, 0, [], error=f"unknown parameter(s) {', '.join(missing)}")
    weight = f"sum({_q(check.count_column)}) over ()" if check.count_column else "count(*) over ()"
    sql = f"select value, {weight} as n from ({check.sql}) q limit {int(examples)}"
    try:
        rows = con.execute(sql, {n: values[n] for n in names}).fetchall()
    except Exception as exc:  # a failing query is this check's failure, not the gate's
        return CheckOutcome(check, False, 0, [], error=_error_message(exc))
    count = int(rows[0][1] or 0) if rows else 0
    return CheckOutcome(check, count == 0, count, [r[0] for r in rows])


def _export_header(check: Check, files_dir: Path | None, examples: int) -> CheckOutcome | None:
    """The header line of each of the night's original CSV files in `files_dir` (None: not checked).

    The gate runs inside the loader's transaction, before any copy is archived, so it
    reads the files the loader read.
    """
    from connectors.sources.export_format import EXPORT_FILES_BY_TABLE

    if files_dir is None or not Path(files_dir).is_dir():
        return None
    problems = []
    for path in sorted(Path(files_dir).glob("*.csv")):
        spec = EXPORT_FILES_BY_TABLE.get(path.stem)
        if spec is None:
            continue
        header = None
        for encoding in ("utf-8-sig", "cp932"):
            try:
                with path.open(encoding=encoding, newline="") as fh:
                    header = [h.strip() for h in next(csv.reader(fh), [])]
                break
            except UnicodeDecodeError:
                continue
        if header is None or not header:
            continue
        missing = [c for c in spec.column_names if c not in header]
        unknown = [h for h in header if h not in spec.column_names]
        if missing or unknown:
            problems.append(f"{path.name}: " + "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else [])
                + ([f"unknown {', '.join(unknown)}"] if unknown else [])))
    return CheckOutcome(check, not problems, len(problems), problems[:examples])


# -- GE checks ----------------------------------------------------------------------------


_EPOCH = datetime(1970, 1, 1)


def _dates_as_seconds(frame: Any, checks: list[Check]) -> dict[str, str]:
    """Columns that range checks judge, made comparable by GE's vectorised path, in place.

    GE 1.24 compares row by row in Python (seconds per 100k rows) unless the column is
    exactly int64/float64 or datetime64[ns]: date/times become seconds since 1970
    (bounds converted the same way, examples converted back), other numbers float64.
    """
    import pandas as pd

    done: dict[str, str] = {}
    for c in checks:
        col = c.columns[0] if c.columns else None
        if c.expectation != "ExpectColumnValuesToBeBetween" or col in done:
            continue
        dtype = frame[col].dtype
        if pd.api.types.is_datetime64_any_dtype(dtype):
            frame[col] = (frame[col] - pd.Timestamp(_EPOCH)) / pd.Timedelta(seconds=1)
            done[col] = "seconds"
        elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype) \
                and dtype not in (int, float):
            integral = pd.api.types.is_integer_dtype(dtype)
            frame[col] = frame[col].astype("float64")
            done[col] = "int" if integral else "float"
    return done


def _to_seconds(value: Any) -> Any:
    value = _as_datetime(value)
    return (value - _EPOCH).total_seconds() if isinstance(value, datetime) else value


def _from_seconds(value: Any) -> Any:
    try:
        return str(_EPOCH + timedelta(seconds=float(value)))
    except (TypeError, ValueError, OverflowError):
        return value


def _ge_kwargs(check: Check, as_seconds: dict[str, str] | None = None) -> dict[str, Any]:
    kwargs = dict(check.kwargs)
    if check.columns and (as_seconds or {}).get(check.columns[0]) == "seconds":
        kwargs = {k: _to_seconds(v) if k in ("min_value", "max_value") else v for k, v in kwargs.items()}
    if check.expectation.startswith("ExpectColumnPair"):
        kwargs.update(column_A=check.columns[0], column_B=check.columns[1])
    elif check.expectation.startswith(("ExpectCompoundColumns", "ExpectMulticolumn", "ExpectSelectColumn")):
        kwargs["column_list"] = list(check.columns)
    else:
        kwargs["column"] = check.columns[0]
    return kwargs


#: Expectations whose rows with a null value are ignored (GE's column-map semantics).
_NULL_IGNORING = {
    "ExpectColumnValuesToBeBetween", "ExpectColumnValuesToBeInSet", "ExpectColumnValuesToMatchRegex",
    "ExpectColumnValuesToNotMatchRegex", "ExpectColumnValuesToBeUnique", "ExpectColumnPairValuesToBeEqual",
}


_GE: dict[str, Any] = {}  # one ephemeral context per process, its pandas assets reused night after night


def _import_great_expectations() -> None:
    """Import Great Expectations (once), with pyspark hidden from it.

    With pyspark installed (the Spark engine, docs/engines.md) GE imports it, Spark Connect included, and
    Spark Connect's import ends the process (`sys.exit(0)` and a line on stderr) when `__main__` has no file,
    taking that for its own doctests: `python -c`, a multiprocessing worker. GE needs no Spark here and takes a
    failed import for pyspark not installed. A process that already runs Spark (the engine) is left as it is.
    """
    if "great_expectations" in sys.modules:
        return
    hide = "pyspark" not in sys.modules
    if hide:
        sys.modules["pyspark"] = None  # type: ignore[assignment]  # `import pyspark` raises ImportError
    try:
        import great_expectations  # noqa: F401
    finally:
        if hide:
            del sys.modules["pyspark"]


def _batch_definition(gate: str, table: str) -> Any:
    """The GE batch definition of `table`'s whole data frame (created once per process)."""
    _import_great_expectations()  # heavy import: only when a gate runs
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if "context" not in _GE:
        # GE announces the temporary docs folder of every ephemeral context at INFO: noise here.
        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        _GE["context"] = context
    key = f"{gate}/{table}"
    if key not in _GE:
        sources = _GE["context"].data_sources
        source = sources.get(gate) if gate in [d.name for d in sources.all().values()] else sources.add_pandas(gate)
        _GE[key] = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("batch")
    return _GE[key]


def _validate_frame(gate: str, table: str, frame: Any, checks: list[Check], examples: int) -> list[CheckOutcome]:
    """Every expectation check of `checks` on the table's frame; whatever goes wrong becomes an outcome."""
    mine = [c for c in checks if c.table == table and c.kind == "expectation"]
    if not mine:
        return []
    try:
        return _validate_table(gate, table, frame, mine, examples)
    except Exception as exc:  # GE or pandas failing on this frame: its checks could not run
        return _could_not_run(mine, f"Great Expectations failed on {table}: {_error_message(exc)}", len(frame))


def _validate_table(gate: str, table: str, frame: Any, mine: list[Check], examples: int) -> list[CheckOutcome]:
    # GE costs ~20 ms per expectation whatever the rows: skip the ones that cannot fail.
    trivial = [c for c in mine if _cannot_fail(c, frame)]
    outcomes = [CheckOutcome(c, True, 0, [], len(frame)) for c in trivial]
    mine = [c for c in mine if c not in trivial]
    if not mine:
        return outcomes
    as_seconds = _dates_as_seconds(frame, mine)
    expectations, broken = _expectations(mine, as_seconds)
    outcomes += [CheckOutcome(c, False, 0, [], len(frame), error) for c, error in broken]
    if not expectations:
        return outcomes
    batch = _batch_definition(gate, table).get_batch(batch_parameters={"dataframe": frame})
    try:
        return outcomes + _validate_batch(gate, table, batch, frame, mine, as_seconds, expectations, examples)
    finally:
        _release_batch(batch)


def _release_batch(batch: Any) -> None:
    """Let GE's execution engine drop the batch's data. Its batch manager keeps every batch it loaded (one per
    table, for the life of the process), so the gate held every table's frame at once: 3.7 GiB on a first load
    at 1M customers (`python -m bench`), against 1.9 GiB for the largest table alone."""
    manager = batch.data.execution_engine.batch_manager
    manager.batch_data_cache.pop(batch.id, None)
    manager.reset_batch_cache()


def _validate_batch(gate: str, table: str, batch: Any, frame: Any, mine: list[Check], as_seconds: dict[str, str],
                    expectations: dict[int, Any], examples: int) -> list[CheckOutcome]:
    """GE's verdict on `mine` over one table's batch: pass/fail first (cheaper), then the failed ones again
    with counts and examples."""
    _import_great_expectations()
    import great_expectations as gx

    outcomes: list[CheckOutcome] = []
    quick = batch.validate(gx.ExpectationSuite(name=f"{gate}.{table}", expectations=list(expectations.values())),
                           result_format="BOOLEAN_ONLY")
    failed: list[Check] = []
    for c, r in _by_check(mine, quick.results, expectations):
        error = _ge_error(r)
        if error:
            outcomes.append(CheckOutcome(c, False, 0, [], len(frame), error))
        elif r.success:
            outcomes.append(CheckOutcome(c, True, 0, [], len(frame)))
        else:
            failed.append(c)
    if not failed:
        return outcomes
    again, _ = _expectations(failed, as_seconds)
    result = batch.validate(gx.ExpectationSuite(name=f"{gate}.{table}", expectations=list(again.values())),
                            result_format={"result_format": "SUMMARY", "partial_unexpected_count": examples})
    for c, r in _by_check(failed, result.results, again):
        info = r.result or {}
        shown = list(info.get("partial_unexpected_list") or [])[:examples]
        kind = as_seconds.get(c.columns[0]) if c.columns else None
        if kind == "seconds":
            shown = [_from_seconds(v) for v in shown]
        elif kind == "int":
            shown = [int(v) if isinstance(v, float) and v.is_integer() else v for v in shown]
        outcomes.append(CheckOutcome(
            c, bool(r.success), int(info.get("unexpected_count") or 0),
            [tuple(v) if isinstance(v, list) else v for v in shown], len(frame), _ge_error(r)))
    return outcomes


_REGEX_CHECKS = {"ExpectColumnValuesToMatchRegex", "ExpectColumnValuesToNotMatchRegex"}


def _cannot_fail(check: Check, frame: Any) -> bool:
    """Whether `check` passes without asking GE: an empty batch, a column-map expectation (which
    ignores nulls) on an all-null column, or a regex check that pandas (as GE does:
    `column.astype(str).str.contains(regex)` on the non-null values) finds nothing wrong with."""
    if len(frame) == 0:
        return True
    if check.expectation in _NULL_IGNORING and all(frame[col].isna().all() for col in check.columns):
        return True
    if check.expectation in _REGEX_CHECKS and isinstance(check.kwargs.get("regex"), str) and check.columns:
        try:
            with warnings.catch_warnings():  # "has match groups": irrelevant to a yes/no answer
                warnings.simplefilter("ignore", UserWarning)
                hits = frame[check.columns[0]].dropna().astype(str).str.contains(check.kwargs["regex"], regex=True)
        except Exception:  # e.g. a regex that does not compile: GE runs it and reports why
            return False
        return not hits.any() if check.expectation == "ExpectColumnValuesToNotMatchRegex" else bool(hits.all())
    return False


def _expectations(checks: list[Check], as_seconds: dict[str, str]) -> tuple[dict[int, Any], list[tuple[Check, str]]]:
    """The GE expectation of each check (by its index in `checks`), and the checks whose
    expectation cannot be built (an unknown name, a wrong keyword) with the reason."""
    _import_great_expectations()
    import great_expectations.expectations as gxe

    built: dict[int, Any] = {}
    broken: list[tuple[Check, str]] = []
    for index, c in enumerate(checks):
        if not hasattr(gxe, c.expectation):
            broken.append((c, f"{c.expectation!r} is not a Great Expectations expectation "
                              "(e.g. ExpectColumnValuesToBeBetween); fix the quality config"))
            continue
        try:
            built[index] = getattr(gxe, c.expectation)(meta={"check": index}, **_ge_kwargs(c, as_seconds))
        except Exception as exc:  # pydantic rejects the kwargs: say which, and run the others
            broken.append((c, f"invalid {c.expectation} settings: {_error_message(exc)}"))
    return built, broken


def _by_check(checks: list[Check], results: list[Any], expectations: dict[int, Any]) -> list[tuple[Check, Any]]:
    """Each result with its check (by the index in the expectation's meta); a check GE
    returned no result for gets an error result instead of silently passing."""
    pairs, seen = [], set()
    for r in results:
        index = int((r.expectation_config.meta or {})["check"])
        pairs.append((checks[index], r))
        seen.add(index)
    for index in expectations:
        if index not in seen:
            pairs.append((checks[index], _NoResult()))
    return pairs


class _NoResult:
    success = False
    result: dict[str, Any] = {}
    exception_info = {"raised_exception": True, "exception_message": "Great Expectations returned no result"}


def _ge_error(result: Any) -> str | None:
    """The message of the exception GE caught while running an expectation, if it caught one.

    GE 1.x records it as one `ExceptionInfo` (keys `raised_exception`, `exception_message`)
    when the expectation itself fails, but as a dict keyed by metric id of such entries
    when a metric it needs fails (a regex that does not compile, a column pandas cannot
    compare): both shapes are read.
    """
    info = getattr(result, "exception_info", None)
    if not info or not hasattr(info, "get"):
        return None
    entries = [info] if "raised_exception" in info or "exception_message" in info else \
        [v for v in info.values() if hasattr(v, "get")]
    messages = list(dict.fromkeys(" ".join(str(e.get("exception_message") or "exception").split())
                                  for e in entries if e.get("raised_exception")))
    if not messages:
        return None
    text = mask_contacts_in("; ".join(messages))
    return text if len(text) <= 300 else text[:297] + "..."


_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
_WIDE_TYPES = {"HUGEINT", "UHUGEINT"}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _frame_sql(schema: str, table: str, cols: list[str], derived: dict[str, str], types: dict[str, str],
               night: date | None, widen: bool = True) -> str:
    """The query of one table's frame. Derived columns are computed over the table with its
    integer columns widened to HUGEINT, so `subtotal - discount + shipping_fee` of amounts near
    the INT64 limit is computed, not an overflow error; `try()` turns anything that still fails
    into null, which the check comparing it reports as a failed row."""
    source = f"select * from {schema}.{_q(table)}" + (" where _night = $night" if night is not None else "")
    widened = [c for c, t in types.items() if t in _INTEGER_TYPES] if widen and any(c in derived for c in cols) else []
    if widened:
        source = f"select * replace ({', '.join(f'{_q(c)}::hugeint as {_q(c)}' for c in widened)}) from ({source})"
    select = [f"try({derived[c]}) as {_q(c)}" if c in derived
              else f"cast({_q(c)} as {types[c]}) as {_q(c)}" if c in widened else _q(c) for c in cols]
    return f"select {', '.join(select)} from ({source}) t"


def _fetch_frame(con: duckdb.DuckDBPyConnection, sql: str, night: date | None) -> Any:
    """The query's rows as pandas, HUGEINT columns as exact integers.

    pandas would make HUGEINT float64, where 2**63 + 550 == 2**63 and an overflowing total
    would compare equal to its expected value. Values within BIGINT (every real night) come
    as int64; only when some value is beyond it (or null) is the column read again, as Python
    ints and None.
    (Plain `execute`: a parameterised `con.sql()` relation converts to pandas ten times slower.)
    """
    import pandas as pd

    params = {"night": night} if night is not None else {}
    columns = [(d[0], str(d[1])) for d in con.execute(f"select * from ({sql}) limit 0", params).description]
    wide = [c for c, t in columns if t in _WIDE_TYPES]
    if not wide:
        return con.execute(sql, params).df()
    # A null (a derived value try() could not compute) takes the exact path too: as pandas' nullable
    # Int64 it would make GE's `total == expected_total` NA, which GE cannot judge ("boolean value of NA").
    beyond = " or ".join(f"try_cast({_q(c)} as bigint) is null" for c in wide)
    narrow = ", ".join(f"try_cast({_q(c)} as bigint) as {_q(c)}" if c in wide else _q(c) for c, _ in columns)
    frame = con.execute(f"select {narrow}, {beyond} as _kz_beyond from ({sql})", params).df()
    if not frame.pop("_kz_beyond").any():  # bool_or over the rows, in pandas: no second query
        return frame
    exact = ", ".join(f"{_q(c)}::varchar as {_q(c)}" if c in wide else _q(c) for c, _ in columns)
    frame = con.execute(f"select {exact} from ({sql})", params).df()
    for c in wide:
        frame[c] = pd.Series([None if v is None or v != v else int(v) for v in frame[c].tolist()],
                             index=frame.index, dtype=object)
    return frame


#: A raw night with more rows than this in one table (a first load of years of history) is checked a group of
#: columns at a time: the gate then holds one group's frame, not the table's (`_column_groups`). Smaller nights
#: keep one frame per table: each frame costs GE a batch, ~0.1 s.
SPLIT_ROWS = 250_000


def _table_frames(con: duckdb.DuckDBPyConnection, schema: str, checks: list[Check], config: QualityConfig,
                  night: date | None) -> Iterator[tuple[str, Any, list[Check], list[CheckOutcome]]]:
    """(table, frame or None, the checks to run on it, checks that cannot run), one frame at a time: the frame
    holds the columns the GE checks name (plus derived ones), tonight's rows only for raw.

    One frame at a time, so the gate's memory is that of its largest frame, not of all of them: a first load
    of three years at 1M customers held every frame at once and peaked at 3.3 GiB (`python -m bench`). For the
    same reason a raw table with more than `SPLIT_ROWS` rows tonight comes a group of columns at a time.
    A table or column that does not exist, or a frame that cannot be read, is reported on the checks that
    need it (the others run); it never stops the gate.
    """
    by_table: dict[str, list[Check]] = {}
    for c in checks:
        if c.kind == "expectation":
            by_table.setdefault(c.table, []).append(c)
    columns: dict[str, dict[str, str]] = {}  # of every table and view of the schema, in one query
    for table, column, data_type in con.execute(
            "select table_name, column_name, data_type from duckdb_columns() "
            "where database_name = current_database() and schema_name = ?", [schema]).fetchall():
        columns.setdefault(table, {})[column] = data_type
    for table, mine in by_table.items():
        if table not in columns:
            yield table, None, [], _could_not_run(mine, f"table {schema}.{table} does not exist")
            continue
        failed: list[CheckOutcome] = []
        derived = config.derived.get(table, {})
        types = columns[table]
        for c in mine:
            absent = [col for col in c.columns if col not in types and col not in derived]
            if absent:
                failed += _could_not_run([c], f"column(s) {', '.join(absent)} not in {schema}.{table}")
        mine = [c for c in mine if all(col in types or col in derived for col in c.columns)]
        if not mine:
            yield table, None, [], failed
            continue
        groups = [mine]
        if schema == "raw" and night is not None and con.execute(
                f"select count(*) from {schema}.{_q(table)} where _night = ?", [night]).fetchone()[0] > SPLIT_ROWS:
            groups = _column_groups(mine)
        for group in groups:
            cols = list(dict.fromkeys(col for c in group for col in c.columns))
            frame = None
            try:
                try:
                    frame = _fetch_frame(con, _frame_sql(schema, table, cols, derived, types, night), night)
                except duckdb.Error:  # a shop's derived expression may need its columns' own types (e.g. to_days)
                    frame = _fetch_frame(con, _frame_sql(schema, table, cols, derived, types, night, False), night)
            except Exception as exc:  # e.g. a derived expression that does not parse
                failed += _could_not_run(group, f"cannot read {schema}.{table}: {_error_message(exc)}")
            yield table, frame, group if frame is not None else [], failed
            frame, failed = None, []  # let it go before the next frame is read


def _column_groups(checks: list[Check]) -> list[list[Check]]:
    """The checks split so that each group's columns are read together and no column is read twice: checks
    sharing a column (a pair, a compound key) are in one group."""
    groups: list[tuple[set[str], list[Check]]] = []
    for check in (c for c in checks if c.columns):
        touching = [g for g in groups if g[0] & set(check.columns)]
        merged = (set(check.columns), [check])
        for g in touching:
            merged[0].update(g[0])
            merged[1][:0] = g[1]
            groups.remove(g)
        groups.append(merged)
    if not groups:
        return [checks]
    groups[0][1].extend(c for c in checks if not c.columns)  # a table-level check rides with the first group
    return [sorted(g[1], key=checks.index) for g in groups]


def _run(gate: str, con: duckdb.DuckDBPyConnection, schema: str, night: date | None, config: QualityConfig,
         files_dir: Path | None, ledger: Path | None, extra: dict[str, Any] | None = None) -> GateResult:
    started = time.perf_counter()
    try:
        params = {**_runtime_params(config, night), **(extra or {})}
        examples = int(config.settings.get("examples", 5))
    except (TypeError, ValueError) as exc:  # e.g. `examples: five` in an override
        raise KizunaError(f"quality config: a setting has the wrong type ({exc}); "
                          f"see the settings in {', '.join(str(p) for p in config.sources)}") from None
    checks = _checks(config, "raw" if schema == "raw" else "marts", params)
    outcomes: list[CheckOutcome] = []
    rows: dict[str, int] = {}
    keys: dict[str, str | None] = {}
    reused: list[str] = []
    passed = _passed_keys(con, gate) if schema == "marts" else {}
    for table, frame, runnable, unreadable in _table_frames(con, schema, checks, config, night):
        outcomes += unreadable
        if frame is None:
            continue
        rows[table] = len(frame)
        if schema == "marts":  # issue 20: a mart frame already checked as it is now passes again, without GE
            keys[table] = _fingerprint(gate, table, frame, runnable)  # before GE touches the frame
            expectations = [c for c in runnable if c.kind == "expectation"]
            if expectations and keys[table] is not None and passed.get(table) == keys[table]:
                reused.append(table)
                outcomes += [CheckOutcome(c, True, 0, [], len(frame)) for c in expectations]
                del frame
                continue
        outcomes += _validate_frame(gate, table, frame, runnable, examples)
        del frame  # one frame at a time (`_table_frames`)
    if schema == "marts":
        _remember_passed(con, gate, keys, outcomes)
    attached, ledger_error = False, None
    if any(c.requires == "ledger" for c in checks) and ledger is not None and Path(ledger).exists():
        names = {r[0] for r in con.execute("select database_name from duckdb_databases()").fetchall()}
        if "ledger" not in names:
            try:
                con.execute(f"attach '{Path(ledger).as_posix()}' as ledger (read_only)")
                attached = True
            except duckdb.Error as exc:  # e.g. another process holds it: say so rather than skip the check
                ledger_error = f"cannot open the send ledger {ledger}: {str(exc).splitlines()[0]}"
    try:
        names = {r[0] for r in con.execute("select database_name from duckdb_databases()").fetchall()}
        for c in checks:
            if c.kind == "sql":
                if c.requires == "ledger" and ledger_error:
                    outcomes.append(CheckOutcome(c, False, 0, [], error=ledger_error))
                    continue
                if c.requires == "ledger" and "ledger" not in names:
                    continue  # nothing planned yet: the audience invariant covers it
                outcomes.append(_run_sql(con, c, params, examples))
            elif c.builtin == "export_header" and night is not None:
                try:
                    o = _export_header(c, files_dir, examples)
                except Exception as exc:  # e.g. a file the gate may not read
                    o = CheckOutcome(c, False, 0, [], error=f"cannot read the night's files: {_error_message(exc)}")
                if o is not None:
                    outcomes.append(o)
    finally:
        if attached:
            con.execute("detach ledger")
    order = {c.name: i for i, c in enumerate(checks)}
    outcomes.sort(key=lambda o: order.get(o.check.name, 0))
    personal = config.personal_columns
    result = GateResult(gate, [_masked(o, personal) for o in outcomes], rows,
                        night, time.perf_counter() - started, reused=sorted(reused))
    return result


# --- issue 20: the mart gate's GE checks are not run again on a frame they passed as it is ------------------
#: One row per (gate, table): the fingerprint of the frame and checks that last passed every GE check there.
PASSED_TABLE = "_kizuna.quality_passed"


def _fingerprint(gate: str, table: str, frame: Any, checks: list[Check]) -> str | None:
    """What a table's GE outcomes depend on: its checks as configured tonight (kwargs with tonight's
    parameters) and the exact frame they read (columns, types, every row). None: cannot tell."""
    import hashlib

    import numpy as np
    import pandas as pd

    mine = sorted((c.name, c.expectation, c.columns, json.dumps(c.kwargs, sort_keys=True, default=str), c.severity)
                  for c in checks if c.table == table and c.kind == "expectation")
    digest = hashlib.sha256(json.dumps([gate, table, mine, [(str(k), str(v)) for k, v in frame.dtypes.items()],
                                        len(frame)], default=str).encode())
    try:
        # Sorted: the frame's rows come in no set order, and GE's outcomes do not depend on it.
        digest.update(np.sort(pd.util.hash_pandas_object(frame, index=False).to_numpy()).tobytes())
    except (TypeError, ValueError):  # e.g. a value pandas cannot hash: check it again
        return None
    return digest.hexdigest()


def _passed_keys(con: duckdb.DuckDBPyConnection, gate: str) -> dict[str, str]:
    """{table: `_fingerprint` of its frame and checks} when they last passed every GE check: the same checks on
    the same values give the same outcomes, so GE (4-9 s to import) is not asked again."""
    schema, name = PASSED_TABLE.split(".")
    if not con.execute("select count(*) from duckdb_tables() where database_name = current_database() "
                       "and schema_name = ? and table_name = ?", [schema, name]).fetchone()[0]:
        return {}
    return dict(con.execute(f"select table_name, key from {PASSED_TABLE} where gate = ?", [gate]).fetchall())


def _remember_passed(con: duckdb.DuckDBPyConnection, gate: str, keys: dict[str, str | None],
                     outcomes: list[CheckOutcome]) -> None:
    """Record each table whose GE checks all passed tonight (and forget the others)."""
    failed = {o.check.table for o in outcomes if not o.success}
    rows = [(gate, t, k) for t, k in sorted(keys.items()) if k is not None and t not in failed]
    try:
        con.execute(f"create schema if not exists {PASSED_TABLE.split('.')[0]}")
        con.execute(f"create table if not exists {PASSED_TABLE} (gate varchar, table_name varchar, key varchar)")
        con.execute(f"delete from {PASSED_TABLE} where gate = ?", [gate])
        if rows:
            con.executemany(f"insert into {PASSED_TABLE} values (?, ?, ?)", rows)
    except duckdb.Error as exc:  # e.g. a read-only connection: the next gate runs GE again, nothing worse
        log.debug("mart gate: cannot record the checked frames: %s", exc)


def check_raw_night(con: duckdb.DuckDBPyConnection, night: date, config: QualityConfig | None = None,
                    files_dir: Path | None = None, *, archive_dir: Path | None = None) -> GateResult:
    """The raw-data gate: tonight's batch of each table, as loaded, plus cross-table and load-log checks.

    `files_dir` is the folder holding the night's original CSV files, whose header lines
    the `export_header` check reads (None: that check is left out). The date checks are
    bounded below by the shop's opening date (`opening_date`), which the first night's
    gate takes from the data and records in the warehouse unless `shop_opened` is set. `archive_dir` is the
    former parameter, deprecated: its `<night>/` folder is used as `files_dir`.
    """
    if archive_dir is not None and files_dir is None:
        warnings.warn("check_raw_night(archive_dir=...) is deprecated: pass files_dir, the folder of the "
                      "night's CSV files", DeprecationWarning, stacklevel=2)
        files_dir = Path(archive_dir) / night.isoformat()
    config = config or load_config()
    extra = _opening_params(config, opening_date(con, config, night), night)
    return _run("raw data", con, "raw", night, config, files_dir, None, extra)


def check_marts(con: duckdb.DuckDBPyConnection, config: QualityConfig | None = None,
                ledger: Path | None = None, night: date | None = None) -> GateResult:
    """The mart gate, run before anything is sent."""
    result = _run("marts", con, "marts", None, config or load_config(), None, ledger)
    result.night = night
    return result

"""Building the dbt project (`dbt_project/`) in-process, with results a person can read.

dbt runs through `dbtRunner` in this process rather than as a CLI subprocess: the
import is paid once (~2 s) and each build costs little more than its SQL. Two things
follow from running in-process:

- dbt-duckdb (1.11) keeps its connection to the warehouse open for the life of the
  process, which holds DuckDB's file lock against other processes and forbids opening
  the file here with another configuration (`read_only=True`). `_invoke` therefore
  closes that connection after every dbt command (`_release_warehouse`).
- `dbtRunner` is not thread-safe: one build at a time per process.

A failed model, a failed or erroring test (data or unit) raises `ModelBuildFailed`,
a `KizunaError` whose message names every failed node, so the flow stops and says why
instead of showing a traceback (or, worse, green).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from kizuna import engines  # issue 21: the dbt target and the source copy of the configured engine
from kizuna.config import Settings
from kizuna.errors import KizunaError
from kizuna.warehouse import wait_until_free

log = logging.getLogger("kizuna")

#: Node statuses that mean the build did not do what was asked.
FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})
#: How much of a node's message goes into the error summary (DuckDB errors can be long).
_MESSAGE_LIMIT = 400
#: The error summary names at most this many failed nodes (dbt.log has them all).
_FAILED_SHOWN = 8
#: The tag of the data tests the loader's merge and the raw-data gate already guarantee: run in CI and on
#: a full refresh, left out of the nightly incremental build (dbt_project.yml `data_tests:`; docs/modelling.md).
RAW_GUARANTEED_TAG = "raw_guaranteed"
#: What an incremental build leaves out (docs/modelling.md): the tests the loader and the raw gate
#: guarantee; the seeds and the staging views, which change only with the project's files (and a changed
#: project is refreshed in full), with their tests.
INCREMENTAL_EXCLUDE = (f"tag:{RAW_GUARANTEED_TAG}", "resource_type:seed", "path:models/staging")


@dataclass(frozen=True)
class NodeResult:
    """What happened to one node (model, data test, unit test, seed) in a build."""

    name: str
    resource_type: str
    status: str
    seconds: float
    message: str | None
    unique_id: str
    failures: int | None = None
    #: Where the node is defined, relative to the dbt project (e.g. `models/marts/_marts__models.yml`).
    path: str | None = None
    #: What a data test judges: `model.column` or `model` (None for other nodes).
    subject: str | None = None

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


@dataclass(frozen=True)
class BuildResult:
    """The outcome of one `dbt build`: every node in execution order, and the wall time."""

    run_date: date
    nodes: tuple[NodeResult, ...]
    seconds: float
    #: How the incremental models were built: "full" (--full-refresh), "incremental" (only the customers
    #: with something new), or "skipped" (nothing new since the last build, same as-of date: nothing ran).
    mode: str = "full"

    @property
    def failed(self) -> tuple[NodeResult, ...]:
        return tuple(n for n in self.nodes if n.failed)

    @property
    def warned(self) -> tuple[NodeResult, ...]:
        return tuple(n for n in self.nodes if n.status == "warn")

    @property
    def skipped(self) -> tuple[NodeResult, ...]:
        return tuple(n for n in self.nodes if n.status == "skipped")

    @property
    def success(self) -> bool:
        return not self.failed and not self.skipped

    def rebuilt(self, *models: str) -> bool:
        """Whether this build rebuilt any of `models` (a skipped build rebuilt none; a partial one, only what
        the changed raw tables feed)."""
        return any(n.resource_type == "model" and n.name in models and not n.failed for n in self.nodes)

    def node(self, name: str) -> NodeResult:
        """The result of the node called `name` (a model, test or unit test name)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r} in this build")

    def summary(self, locale: str | None = None) -> str:
        """One line for the console and the report, e.g. '12 models built, 140 tests passed in 4.1 s', in
        `locale` (default KIZUNA_LOCALE; kizuna/i18n.py)."""
        from kizuna.i18n import gettext as _

        if self.mode == "skipped":
            return _("nothing new since the last build: the marts as of {date} are kept", locale).format(
                date=self.run_date.isoformat())
        models = sum(1 for n in self.nodes if n.resource_type == "model" and not n.failed)
        tests = [n for n in self.nodes if n.resource_type in ("test", "unit_test")]
        passed = sum(1 for n in tests if n.status == "pass")
        text = _("{models} models built, {passed} of {total} tests passed", locale).format(
            models=models, passed=passed, total=len(tests))
        if self.warned:
            text += _(" ({n} warnings: {names})", locale).format(
                n=len(self.warned), names=", ".join(n.name for n in self.warned))
        return _("{text} in {seconds} s", locale).format(text=text, seconds=f"{self.seconds:.1f}")

    def counts(self) -> dict[str, int]:
        """How many nodes ended in each status, e.g. {'success': 15, 'pass': 104}."""
        out: dict[str, int] = {}
        for n in self.nodes:
            out[n.status] = out.get(n.status, 0) + 1
        return out


class ModelBuildFailed(KizunaError):
    """`dbt build` failed: the message names each failed node; `result` holds them all."""

    def __init__(self, message: str, result: BuildResult | None = None) -> None:
        super().__init__(message)
        self.result = result


def build_models(settings: Settings, run_date: date, select: Sequence[str] | None = None,
                 unit_tests: bool = True, full_refresh: bool = False,
                 changed_after: datetime | None = None) -> BuildResult:
    """Run `dbt build` (models, data tests, unit tests) against `settings.warehouse`.

    `run_date` is the day everything "as of today" is measured against (stage, recency,
    age). `select` takes dbt selectors (e.g. `["stg_shop__customers+"]`); None builds
    everything. `unit_tests=False` leaves out dbt's unit tests: they check the SQL on fixed
    inputs, not the night's data, so the nightly run leaves them to CI (the data tests
    still run). `full_refresh` rebuilds the incremental models from scratch (`--full-refresh`).
    `changed_after` (the newest `_loaded_at` a previous successful build modelled) makes the
    incremental models recompute only the customers with something loaded since, and leaves out
    the tests the loader and the raw gate already guarantee (tag `raw_guaranteed`), the seeds and
    the staging views (`INCREMENTAL_EXCLUDE`); None
    recomputes every customer and runs every test (docs/modelling.md; `build_nightly` chooses).
    Raises `ModelBuildFailed` when any node fails or errors, or when dbt
    cannot run at all (bad project, unreadable warehouse).
    """
    args = ["build"]
    if select:
        args += ["--select", *select]
    if full_refresh:
        args += ["--full-refresh"]
    if not unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    if changed_after is not None and not full_refresh:
        args += ["--exclude", *INCREMENTAL_EXCLUDE]
    # dbt-duckdb opens the file itself and fails at once on a lock: wait for a reader to let go first.
    wait_until_free(settings.warehouse, settings.warehouse_wait_seconds)  # type: ignore[arg-type]
    started = time.perf_counter()
    engines.copy_sources(settings)  # engines (issue 21): the raw tables to PostgreSQL first; nothing on duckdb
    # run_date and the conversion window reach dbt_project.yml's vars through the environment
    # (see there: a changing --vars costs a full re-parse every night).
    outcome = _invoke(settings, args, KIZUNA_RUN_DATE=run_date.isoformat(),
                      KIZUNA_CONVERSION_WINDOW_DAYS=str(settings.conversion_window_days),
                      KIZUNA_CHANGED_AFTER="" if changed_after is None or full_refresh
                      else changed_after.isoformat(sep=" "))
    seconds = time.perf_counter() - started

    execution = outcome.result
    if execution is None or not hasattr(execution, "results"):
        raise ModelBuildFailed(_could_not_run("dbt build", settings, outcome.exception))
    result = BuildResult(
        run_date=run_date,
        nodes=tuple(_node_result(r) for r in execution.results),
        seconds=seconds,
        mode="full" if full_refresh or changed_after is None else "incremental",
    )
    if result.failed or not outcome.success:
        raise ModelBuildFailed(_failure_summary(result, settings), result)
    # Engines (issue 21): what dbt built on another engine back into the warehouse file the rest of the night
    # reads (nothing on duckdb); a failed copy raises, so nothing reads stale marts.
    engines.copy_back(settings)
    return result


def generate_docs(settings: Settings) -> Path:
    """Run `dbt docs generate --static`; return the site as one self-contained page,
    `dbt_project/target/static_index.html` (where the README points).

    `static_index.html` embeds the manifest and catalog, so it opens straight from the
    file system. dbt writes it in the warehouse's own target folder (`_target_dir`, where
    `dbt docs serve --target-path` finds the whole site); it is copied to the project's.
    """
    outcome = _invoke(settings, ["docs", "generate", "--static"])
    if not outcome.success:
        raise ModelBuildFailed(_could_not_run("dbt docs generate", settings, outcome.exception))
    assert settings.dbt_project_dir is not None  # set by Settings' validator
    page = settings.dbt_project_dir / "target" / "static_index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_target_dir(settings) / "static_index.html", page)
    return page


# --- the nightly build: incremental, or nothing at all (docs/modelling.md) --------------

#: The last successful nightly build, one row in the warehouse: what it was built from and as of when.
BUILD_RECORD = "_kizuna.build_record"
#: What reaches the marts besides the raw data: the dbt project's files.
_PROJECT_PARTS = ("dbt_project.yml", "models", "macros", "seeds", "tests")


@dataclass(frozen=True)
class BuildRecord:
    """What the marts in the warehouse were built from (`BUILD_RECORD`)."""

    as_of_date: date
    #: The project's files and the settings that reach dbt (a change means a full refresh).
    project: str
    #: Each raw table's state (row count and newest `_loaded_at`, or content of the tables rewritten nightly).
    inputs: dict[str, str]
    #: The newest `_loaded_at` of the loaded exports at that build: tonight's changes are those after it.
    loaded_through: datetime | None


def build_nightly(settings: Settings, run_date: date) -> BuildResult:
    """The nightly `dbt build` as of `run_date`, doing no more than tonight needs.

    - Nothing loaded since the last successful build and the same as-of date: nothing runs (the
      marts are kept; `BuildResult.mode == "skipped"`).
    - No record of a successful build, or the dbt project (or a setting it reads) changed: a full
      refresh with every data test.
    - Otherwise incremental: the order- and customer-level models recompute the customers with
      something new (int_changed_customers), and the tests the loader and raw gate guarantee are
      left out. With a new as-of date everything else is rebuilt as of it; with the same as-of date
      only what the changed raw tables feed (e.g. tonight's sends: the campaign marts).

    The record is removed before a build and written after it succeeded, so a failed or interrupted
    build is followed by a full refresh. Unit tests are left to CI.
    """
    project = _project_fingerprint(settings)
    with _warehouse(settings) as con:
        record = _read_record(con)
        inputs, loaded_through = _inputs_state(con)
    changed = sorted(t for t in inputs.keys() | (record.inputs.keys() if record else set())
                     if record is None or inputs.get(t) != record.inputs.get(t))
    same_day = record is not None and record.as_of_date == run_date and record.project == project
    if same_day and not changed:
        log.info("dbt build skipped: nothing loaded since the build as of %s", run_date)
        return BuildResult(run_date=run_date, nodes=(), seconds=0.0, mode="skipped")
    full = record is None or record.project != project or record.loaded_through is None
    full = full or not engines.builds_incrementally(settings)  # engines (issue 21): spark rebuilds whole
    select = None
    if same_day:  # only what the changed raw tables feed; their sources as dbt names them
        sources = _source_names(settings)
        select = [f"source:{sources[t]}.{t}+" for t in changed if t in sources] or None
        log.info("dbt build of what changed raw tables feed: %s", ", ".join(changed))
    with _warehouse(settings) as con:
        con.execute(f"drop table if exists {BUILD_RECORD}")
    result = build_models(settings, run_date, select=select, unit_tests=False, full_refresh=full,
                          changed_after=None if full else record.loaded_through)  # type: ignore[union-attr]
    with _warehouse(settings) as con:
        _write_record(con, BuildRecord(run_date, project, inputs, loaded_through))
    return result


def read_build_record(settings: Settings) -> BuildRecord | None:
    """The marts' record: the as-of date and inputs of the last successful nightly build (None: none yet)."""
    with _warehouse(settings) as con:
        return _read_record(con)


@contextmanager
def _warehouse(settings: Settings) -> Iterator[Any]:
    from kizuna.warehouse import connect

    with connect(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds) as con:  # type: ignore[arg-type]
        yield con


def _read_record(con: Any) -> BuildRecord | None:
    schema, table = BUILD_RECORD.split(".")
    if not con.execute("select count(*) from duckdb_tables() where schema_name = ? and table_name = ?",
                       [schema, table]).fetchone()[0]:
        return None
    row = con.execute(f"select as_of_date, project, inputs, loaded_through from {BUILD_RECORD}").fetchone()
    return BuildRecord(row[0], row[1], json.loads(row[2]), row[3]) if row else None


def _write_record(con: Any, record: BuildRecord) -> None:
    schema = BUILD_RECORD.split(".")[0]
    con.execute(f"create schema if not exists {schema}")
    con.execute(f"""create or replace table {BUILD_RECORD} (
        as_of_date date, project varchar, inputs varchar, loaded_through timestamp, built_at timestamp)""")
    con.execute(f"insert into {BUILD_RECORD} values (?, ?, ?, ?, current_timestamp::timestamp)",
                [record.as_of_date, record.project, json.dumps(record.inputs, sort_keys=True),
                 record.loaded_through])


def _source_names(settings: Settings) -> dict[str, str]:
    """Raw table -> the dbt source it belongs to (`shop`, `campaigns`), from the project's sources files."""
    import yaml

    assert settings.dbt_project_dir is not None
    names: dict[str, str] = {}
    for path in sorted((settings.dbt_project_dir / "models").rglob("*.yml")):
        for source in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("sources") or []:
            for table in source.get("tables") or []:
                names[table.get("identifier") or table["name"]] = source["name"]
    return names


def _project_fingerprint(settings: Settings) -> str:
    """A hash of the dbt project's files (models, macros, seeds, tests, dbt_project.yml) and of the
    settings dbt reads, so that a changed model or seed is followed by a full refresh."""
    import hashlib

    project = settings.dbt_project_dir
    assert project is not None
    digest = hashlib.sha256(f"conversion_window_days={settings.conversion_window_days}".encode())
    if settings.engine != "duckdb":  # engines (issue 21): a changed engine builds everything again there
        digest.update(f";engine={settings.engine}".encode())
    for part in _PROJECT_PARTS:
        root = project / part
        for path in sorted([root] if root.is_file() else root.rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _inputs_state(con: Any) -> tuple[dict[str, str], datetime | None]:
    """The state of each table dbt reads in `raw`, and the newest `_loaded_at` of the loaded exports.

    The loader's tables (those with `_night`) change only through its merge, which stamps `_loaded_at`:
    their row count and newest stamp say whether anything arrived. The tables copied whole every night
    (sends, scenarios, coupons, events: kizuna.events.load) are compared by content, without the stamp.
    """
    tables = con.execute("""
        select table_name, list(column_name order by column_index) as columns
        from duckdb_columns() where schema_name = 'raw' and not starts_with(table_name, '_')
        group by table_name order by table_name""").fetchall()
    states: dict[str, str] = {}
    loaded_through: datetime | None = None
    for table, columns in tables:
        if "_night" in columns:
            count, newest = con.execute(f'select count(*), max(_loaded_at) from raw."{table}"').fetchone()
            if newest is not None and (loaded_through is None or newest > loaded_through):
                loaded_through = newest
            state = (count, str(newest))
        else:
            content = ", ".join(f'"{c}"' for c in columns if c != "_loaded_at") or "1"
            state = con.execute(f'select count(*), sum(hash({content})) from raw."{table}"').fetchone()
        states[table] = f"{columns}:{state}"
    return states, loaded_through


# --- invocation -----------------------------------------------------------------------


def target_dir(settings: Settings) -> Path:
    """Where dbt writes for this warehouse (compiled SQL, manifest.json, run_results.json): `_target_dir`."""
    return _target_dir(settings)


def _target_dir(settings: Settings) -> Path:
    """dbt's target folder for this warehouse: `<warehouse dir>/dbt-target/<warehouse name>/`.

    One per warehouse, beside it, so that dbt's partial parse (`partial_parse.msgpack`, valid only
    for the profile it was parsed with: the warehouse path) survives between warehouses: a shared
    `dbt_project/target` was re-parsed in full (12 s and more) whenever another warehouse, a test's or
    the demo's, had built last. The compiled SQL, manifest and run results are there too."""
    assert settings.warehouse is not None  # set by Settings' validator
    return settings.warehouse.parent / "dbt-target" / settings.warehouse.stem


def _invoke(settings: Settings, args: list[str], **environment: str) -> Any:
    """Run one dbt command in-process against the configured project and warehouse
    (`environment`: more variables for dbt_project.yml's env_var())."""
    project = settings.dbt_project_dir
    assert project is not None and settings.warehouse is not None  # set by Settings' validator
    if not (project / "dbt_project.yml").is_file():
        raise KizunaError(f"No dbt project at {project} (dbt_project.yml missing); set KIZUNA_DBT_PROJECT_DIR.")
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)

    from dbt.cli.main import dbtRunner  # imported late: ~2 s, and only flows that build need it

    common = [
        "--project-dir", str(project),
        "--profiles-dir", str(project),
        "--target-path", str(_target_dir(settings)),
        "--log-path", str(project / "logs"),
        "--no-use-colors",
        # Nothing on the console: our summary (or ModelBuildFailed) says what happened, dbt's warnings and
        # errors go to the `kizuna.dbt` logger (`_forward_dbt_event`), dbt.log keeps the detail.
        "--log-level", "none",
        "--log-level-file", "info",
    ]
    try:
        # Engines (issue 21, kizuna/engines.py): the configured engine's profiles.yml target and its variables.
        common += ["--target", engines.dbt_target(settings)]
        with _environment(KIZUNA_WAREHOUSE=str(settings.warehouse),
                          KIZUNA_DUCKDB_MEMORY_LIMIT=settings.duckdb_memory_limit,
                          **engines.dbt_environment(settings), **environment):
            return dbtRunner(callbacks=[_forward_dbt_event]).invoke([*args, *common])
    finally:
        _release_warehouse()


# Not below `kizuna`: dbt logs from its worker threads, outside the flow run's context, where Prefect's API
# log handler on `kizuna` (PREFECT_LOGGING_EXTRA_LOGGERS) can only warn that it cannot send them.
_dbt_log = logging.getLogger("kizuna-dbt")
_DBT_LEVELS = {"warn": logging.WARNING, "error": logging.ERROR}


def _forward_dbt_event(event: Any) -> None:
    """dbt's warnings and errors as log records (the CLI's log file, the flow run's log), not console lines."""
    level = _DBT_LEVELS.get(event.info.level)
    if level is not None:
        _dbt_log.log(level, "dbt: %s", event.info.msg)


def _release_warehouse() -> None:
    """Close the DuckDB connection dbt-duckdb keeps open after a command.

    dbt-duckdb caches one environment (and its connection) per process in a class
    attribute and only replaces it when the credentials change; dropping and closing it
    here releases the file. The next dbt command opens a fresh one.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # another adapter: nothing kept open by us
        return
    with DuckDBConnectionManager._LOCK:
        environment = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
    if environment is not None:
        environment.close()


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of a dbt call, then restore them.

    dbt reads `KIZUNA_WAREHOUSE` in profiles.yml; restoring it keeps this process's
    `Settings()` from silently picking up the value afterwards.
    """
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


# --- results --------------------------------------------------------------------------


def _node_result(run_result: Any) -> NodeResult:
    node = run_result.node
    return NodeResult(
        name=node.name,
        resource_type=str(node.resource_type),
        status=str(run_result.status),
        seconds=round(float(run_result.execution_time or 0.0), 3),
        message=run_result.message,
        unique_id=node.unique_id,
        failures=run_result.failures,
        path=getattr(node, "original_file_path", None),
        subject=_subject(node),
    )


def _subject(node: Any) -> str | None:
    """`model.column` (or `model`) a data test judges, from the node dbt attaches it to; None otherwise."""
    attached = getattr(node, "attached_node", None)
    if not attached:
        return None
    kind, model = str(attached).split(".", 1)[0], str(attached).rsplit(".", 1)[-1]
    column = getattr(node, "column_name", None)
    if kind == "seed":  # the data to correct is the seed's CSV file
        return f"seed file seeds/{model}.csv" + (f", column {column}" if column else "")
    return f"{model}.{column}" if column else model


def _one_line(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= _MESSAGE_LIMIT else flat[: _MESSAGE_LIMIT - 1] + "…"


def _failure_summary(result: BuildResult, settings: Settings) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts().items()))
    assert settings.dbt_project_dir is not None
    project = settings.dbt_project_dir.name
    lines = [f"dbt build for {result.run_date.isoformat()} failed ({counts}):"]
    for n in result.failed[:_FAILED_SHOWN]:
        kind = n.resource_type.replace("_", " ")
        rows = f" ({n.failures:,} failing rows)" if n.failures and n.resource_type == "test" else ""
        where = "; ".join(x for x in (n.subject, f"defined in {project}/{n.path}" if n.path else None) if x)
        lines.append(f"  - {kind} {n.name}" + (f" ({where})" if where else "")
                     + f": {n.status}{rows}: {_one_line(n.message)}")
    if len(result.failed) > _FAILED_SHOWN:
        lines.append(f"  ... and {len(result.failed) - _FAILED_SHOWN} more failed node(s) (see dbt.log).")
    if result.skipped:
        models = [n.name for n in result.skipped if n.resource_type == "model"]
        names = ", ".join(models[:_FAILED_SHOWN]) + (f" and {len(models) - _FAILED_SHOWN} more"
                                                      if len(models) > _FAILED_SHOWN else "")
        lines.append(f"  {len(result.skipped)} nodes skipped because of these" + (f" (models: {names})" if names else "") + ".")
    if not result.failed:
        lines.append("  dbt reported failure without a failed node; see the log.")
    lines.append(
        f"Details: {settings.dbt_project_dir / 'logs' / 'dbt.log'}; re-run one node with "
        f"`dbt build --project-dir {settings.dbt_project_dir} --profiles-dir {settings.dbt_project_dir} --select <name>`."
    )
    return "\n".join(lines)


def _could_not_run(command: str, settings: Settings, exc: BaseException | None) -> str:
    reason = _one_line(str(exc)) if exc is not None else "no result (see the log)"
    return (
        f"{command} could not run on warehouse {settings.warehouse} with project "
        f"{settings.dbt_project_dir}: {reason}"
    )

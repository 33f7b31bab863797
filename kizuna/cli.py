"""The `kizuna` command line."""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NoReturn, Optional
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Column, Table
from rich.text import Text

import kizuna  # noqa: F401  (environment defaults first)
from kizuna import stop
from kizuna.config import Settings, get_settings
from kizuna.errors import KizunaError
from kizuna.i18n import gettext as _
from kizuna.i18n import label

app = typer.Typer(help="kizuna: the nightly CRM pipeline for direct-to-consumer shops.", no_args_is_help=True)
campaigns_app = typer.Typer(help="Scenario files: validate and preview.", no_args_is_help=True)
docs_app = typer.Typer(help="Generated documentation.", no_args_is_help=True)
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(docs_app, name="docs")
sends_app = typer.Typer(help="Messages that need a person: unknown and failed sends in the ledger.",
                         no_args_is_help=True)
app.add_typer(sends_app, name="sends")
webhook_app = typer.Typer(help="Provider webhooks (SendGrid events, LINE follow/unfollow).", no_args_is_help=True)
app.add_typer(webhook_app, name="webhook")
console_app = typer.Typer(help="The marketers' console: a private web application (docs/console.md).",
                          no_args_is_help=True)
app.add_typer(console_app, name="console")
console = Console()
if not console.is_terminal:
    # A pipe, a log file, a scheduler: each line is printed whole and whoever shows it wraps it;
    # nothing is cut or hard-wrapped at 80 columns (a path stays one piece).
    console.soft_wrap = True

# Not below `kizuna`: Prefect's API log handler is attached there (PREFECT_LOGGING_EXTRA_LOGGERS) and
# warns about every record logged outside a flow run, as these are.
log = logging.getLogger("kizuna-cli")

#: The longest stop message printed, in lines (the log file has everything).
STOP_LINES = stop.STOP_LINES
#: The log file of `kizuna run` and `kizuna demo`, below the data folder; rotated at this size, this many kept.
LOG_FILE = Path("logs") / "kizuna.log"
LOG_FILE_BYTES, LOG_FILE_BACKUPS = 10 << 20, 5


def _fail(exc: KizunaError, log_file: Path | None = None) -> NoReturn:
    """Print one stop message (at most STOP_LINES lines, never a traceback) and exit with 1.

    The message is printed as plain text: a check's `[error]` is text, not console markup.
    With `log_file`, the full trace is written there and the message says so."""
    if log_file is not None:
        log.error("stopped: %s", exc, exc_info=(type(exc), exc, exc.__traceback__))
    text = _shortened(str(exc), log_file)
    console.print(Text.assemble((_("Stopped: "), "bold red"), text), highlight=False)
    if log_file is not None:
        console.print(Text(_("Full log and trace: {path}").format(path=log_file)), highlight=False)
    raise typer.Exit(1)


# The stop message's text is shared with the Prefect flow (a worker's failed run logs the same message).
_shortened = stop.shortened
_unexpected = stop.unexpected


def _log_to_console() -> None:
    handler = RichHandler(console=console, show_path=False, show_time=False, markup=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    logging.getLogger("kizuna").setLevel(logging.INFO)


class _MaskingFormatter(logging.Formatter):
    """The log file's lines, tracebacks included, with e-mail addresses and phone numbers masked."""

    def format(self, record: logging.LogRecord) -> str:
        from kizuna.masking import mask_contacts_in

        # Line by line: line breaks (of a summary, of a traceback) stay line breaks.
        return "\n".join(mask_contacts_in(line) for line in super().format(record).split("\n"))


class _Progress(logging.Handler):
    """On a terminal, kizuna's latest log line as a transient status line (gone when the run ends);
    elsewhere nothing: the console gets the summary or the stop message, the log file the rest."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.status = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.status is None or not record.name.startswith("kizuna"):
            return
        try:
            line = (record.getMessage().splitlines() or [""])[0]
            width = max(20, console.width - 4)  # one line: a wrapped status line would stay on the screen
            self.status.update(Text(line if len(line) <= width else line[:width - 1] + "…"))
        except Exception:  # a progress line must never break the run
            pass


_progress = _Progress()


def _log_to_file(settings: Settings) -> Path:
    """Send every log record (kizuna's, Prefect's, dbt's and the libraries' warnings, with tracebacks) to
    `<data_dir>/logs/kizuna.log`; the console shows only a transient progress line on a terminal."""
    assert settings.data_dir is not None
    path = settings.data_dir / LOG_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS,
                                                       encoding="utf-8")
    except OSError as exc:
        _fail(KizunaError(f"Cannot write the log file {path}: {exc.strerror or exc}. Make the data folder writable "
                          "or point KIZUNA_DATA_DIR at one that is."))
    handler.setFormatter(_MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.basicConfig(level=logging.WARNING, handlers=[handler, _progress], force=True)
    logging.getLogger("kizuna").setLevel(logging.INFO)
    log.setLevel(logging.INFO)
    logging.captureWarnings(True)
    log.info("kizuna %s", " ".join(sys.argv[1:]) or "")
    return path


def _quiet_prefect_console() -> None:
    """Prefect's console handlers (set up when it is imported) would print its task failures with their
    tracebacks: its records reach the log file through the root logger instead."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for logger in [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))]:
        for handler in list(getattr(logger, "handlers", [])):
            if isinstance(handler, PrefectConsoleHandler):
                logger.removeHandler(handler)


def _run_flow(settings: Settings, night: date | None, started: float, log_file: Path, as_of: date | None = None):
    """Run the nightly flow in this process (Prefect's temporary local server when none is configured;
    the stages directly with KIZUNA_LOCAL_PREFECT=false: kizuna/night.py).

    The run lock is taken first, so a second run stops at once, before Prefect starts. A failed run
    ends in one stop message (`_fail`); its trace is in `log_file`."""
    import os

    from kizuna.runlock import run_lock
    from kizuna.stages import DeliveryIncomplete

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # our own summary says what happened
    with run_lock(settings.data_dir):
        # Issue 20: a Prefect flow, or with KIZUNA_LOCAL_PREFECT=false and no Prefect API the stages directly.
        try:
            return _run_night(settings, night, as_of).result()  # a failed flow's result raises its error
        except DeliveryIncomplete as exc:  # the night was done, but a channel waits: show it all, then fail
            if exc.outcome is not None:
                _print_summary(exc.outcome, settings, time.perf_counter() - started)
            _fail(exc, log_file)
        except KizunaError as exc:
            _fail(exc, log_file)
        except Exception as exc:  # an unexpected failure: say which stage; the trace goes to the log file
            log.error("unexpected failure", exc_info=(type(exc), exc, exc.__traceback__))
            _fail(_unexpected(exc), log_file)


# --- issue 20: a night without Prefect with KIZUNA_LOCAL_PREFECT=false and no Prefect API (kizuna/night.py)
def _run_night(settings: Settings, night: date | None, as_of: date | None):
    """The night's final state (its `result()` is the outcome, or raises the night's error): as a Prefect flow
    (by default, on the temporary local server when no Prefect API is configured), or with
    KIZUNA_LOCAL_PREFECT=false and no Prefect API run directly, without a temporary server to wait for."""
    from kizuna.night import run_directly, uses_prefect

    if not uses_prefect(settings):
        with _status("Starting the nightly run"):
            return _DirectState(run_directly(night, as_of))
    from flows.nightly import nightly

    _quiet_prefect_console()
    with _status("Starting the nightly run"):
        return nightly(night=night, as_of=as_of, return_state=True)


class _DirectState:
    """The outcome of a night run without Prefect, read like a flow's final state (a failure has raised)."""

    def __init__(self, outcome) -> None:
        self.outcome = outcome

    def result(self):
        return self.outcome
# ----------------------------------------------------------------------------------------------------


class _status:
    """A transient status line on a terminal, fed by `_Progress`; nothing elsewhere."""

    def __init__(self, text: str) -> None:
        self.text, self.live = text, None

    def __enter__(self) -> "_status":
        if console.is_terminal:
            self.live = console.status(self.text)
            _progress.status = self.live.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        _progress.status = None
        if self.live is not None:
            self.live.__exit__(*exc_info)


def _heading(text: str) -> None:
    """A rule with a title on a terminal; elsewhere the title on its own line (a rule is cut to the width)."""
    if console.is_terminal:
        console.rule(text)
    else:
        console.print(Text(f"── {text} ──", style="bold"), highlight=False)


def _table(*headers: str, title: str) -> Table:
    """A table whose cells wrap (fold) rather than end in "…" when the console is narrow."""
    return Table(*(Column(h, overflow="fold") for h in headers), title=title, title_justify="left")


def _print_summary(outcome, settings: Settings, seconds: float) -> None:
    loads = [f for n in outcome.loads for f in n.files]
    read = sum(f.rows_read for f in loads)
    new = sum(f.rows_inserted + f.rows_updated for f in loads)
    quarantined = sum(f.rows_quarantined for f in loads)
    if outcome.sends:
        _heading(_("kizuna nightly run · night of {night} · sends dated {day}").format(
            night=outcome.night, day=outcome.run_date))
    else:
        _heading(_("kizuna nightly run · night of {night} · marts as of {day}").format(
            night=outcome.night, day=outcome.marts_as_of))
    if loads:
        _line(_("Loaded"), _("{nights} night(s), {files} file(s): {read} rows read, {new} inserted or updated, "
                             "{quarantined} quarantined").format(nights=len(outcome.loads), files=len(loads),
                                                                 read=f"{read:,}", new=f"{new:,}",
                                                                 quarantined=f"{quarantined:,}"))
    else:
        _line(_("Loaded"), _("nothing new: every export was already loaded"))
    if outcome.erasure is not None:
        _line(_("Erasure"), outcome.erasure.summary(prefixed=False))
    if outcome.events is not None:
        _line(_("Feedback"), outcome.events.summary())
    for load in outcome.loads:
        if load.gate is not None:
            gate = load.gate
            _line(_("Checks"), _("{gate} of night {night}: {passed}/{total} passed").format(
                gate=label("gate", gate.gate), night=load.night, passed=gate.passed, total=len(gate.outcomes))
                + (_(", {n} warning(s)").format(n=len(gate.warnings)) if gate.warnings else ""))
            _print_warnings(gate)
    if not outcome.raw_gates:
        _line(_("Checks"), _("{gate}: nothing new to check").format(gate=label("gate", "raw data")))
    for note in outcome.ignored:
        _line(_("Ignored"), note)
    gate = outcome.mart_gate
    _line(_("Checks"), _("{gate}: {passed}/{total} passed").format(
        gate=label("gate", gate.gate), passed=gate.passed, total=len(gate.outcomes))
        + (_(", {n} warning(s)").format(n=len(gate.warnings)) if gate.warnings else ""))
    _print_reused(gate)  # issue 20
    _print_warnings(gate)
    _line(_("Models"), _("{summary} (measured as of {day})").format(summary=outcome.build.summary(),
                                                                    day=outcome.marts_as_of))
    if outcome.campaigns is None:
        _line(_("Messages"), _("none planned or sent: the marts are measured as of {day} (--as-of), not the send "
                               "day {send_day}").format(day=outcome.marts_as_of, send_day=outcome.run_date))
    else:
        _print_campaigns(outcome.campaigns)
    quality_page = settings.reports_dir / f"quality-{outcome.night.isoformat()}.html"
    if quality_page.exists():
        _line(_("Quality"), str(quality_page))
    _line(_("Warehouse"), str(settings.warehouse))
    _line(_("Outbox"), str(settings.outbox_dir))
    _line(_("Report"), str(outcome.report_path))
    console.print(_("Done in {seconds} s.").format(seconds=f"{seconds:.1f}"))


def _line(head: str, text: str) -> None:
    """One summary line: its heading padded to one column (wide characters count twice), then the text."""
    from rich.cells import cell_len

    console.print(Text(head + " " * max(1, 11 - cell_len(head)) + text), highlight=False)


def _print_reused(gate, most: int = 5) -> None:
    """Issue 20: the mart tables whose GE checks were not run again (`GateResult.reused`): the same rows
    passed the same checks on an earlier night, so that result stands. One line; nothing when none."""
    reused = list(getattr(gate, "reused", None) or [])
    if not reused:
        return
    tables = ", ".join(reused[:most]) + (", ..." if len(reused) > most else "")
    _line(_("Checks"), _("{gate}: {n} table(s) unchanged since they passed the same checks, not checked again "
                         "({tables})").format(gate=label("gate", gate.gate), n=len(reused), tables=tables))


def _print_warnings(gate, most: int = 5) -> None:
    """A failed warning's name and first example, one line each (the quality page has them all)."""
    for o in gate.warnings[:most]:
        detail = str(o.examples[0]) if o.examples and o.check.kind == "sql" else o.describe(why=False)
        console.print(Text(f"  {label('severity', 'warning')}  {o.check.name}: {detail}"), highlight=False)
    if len(gate.warnings) > most:
        console.print(_("  ... and {n} more warning(s) on the quality page").format(n=len(gate.warnings) - most),
                      highlight=False)


def _print_campaigns(campaigns) -> None:
    table = _table(_("scenario"), _("step"), _("channel"), _("status"), _("messages"), title=_("Campaign messages"))
    for (scenario, step, channel, status), n in sorted(campaigns.delivered.items()):
        table.add_row(scenario, step, label("channel", channel), label("status", status), f"{n:,}")
    if campaigns.delivered:
        console.print(table)
    else:
        _line(_("Messages"), _("none due (or all already sent)"))
    console.print(_("Unsubscribed {n} customer(s) through the link since the last run (suppressed before "
                    "tonight's selection)").format(n=f"{campaigns.unsubscribed:,}"), highlight=False)
    for channel, why in sorted(campaigns.channel_problems.items()):
        console.print(Text.assemble((_("Not sent"), "bold red"), f"   {label('channel', channel)}: {why}"),
                      highlight=False)
    for (channel, state), n in sorted(campaigns.attention.items()):
        hint = (_("retried on the next run") if state == "failed, will retry" else
                _("see `kizuna sends unknown`") if state == "unknown" else _("see `kizuna sends failed`"))
        console.print(Text.assemble((_("Attention"), "bold yellow"), "  " + _(
            "{n} {channel} message(s) {state} ({hint})").format(n=f"{n:,}", channel=label("channel", channel),
                                                                state=label("status", state), hint=hint)),
                      highlight=False)


@app.command()
def demo(
    customers: Optional[int] = typer.Option(None, help="Customers in the demo shop (default: KIZUNA_DEMO_CUSTOMERS)."),
    source: str = typer.Option(
        "csv", help="How the demo shop reaches kizuna (docs/sources.md): csv (kizuna's export format), mapped_csv "
        "(EC-CUBE 4's own CSV exports through the shipped mapping), shopify (a loopback Shopify twin speaking the "
        "Admin GraphQL API), ec_cube (a throwaway PostgreSQL with EC-CUBE's tables; needs Debian's postgresql). "
        "Each source but csv keeps its own data folder, <data_dir>/demo-<source>."),
) -> None:
    """Generate a demo shop if none exists, run the nightly flow for its newest night, summarise."""
    import os

    from connectors.sources.registry import SOURCES

    if source not in SOURCES:
        _fail(KizunaError(f"unknown source {source!r}: use one of {', '.join(SOURCES)}"))
    if source != "csv":  # its own warehouse, ledger and outbox: a shop comes through one source
        os.environ["KIZUNA_DATA_DIR"] = str(get_settings().data_dir / f"demo-{source}")
        os.environ["KIZUNA_SOURCE"] = source
        get_settings.cache_clear()
    settings = get_settings()
    log_file = _log_to_file(settings)
    started = time.perf_counter()
    try:
        with _demo_source(settings, source, customers or settings.demo_customers):
            get_settings.cache_clear()  # the source's address and secret are in the environment now
            settings = get_settings()
            outcome = _run_flow(settings, None, started, log_file)
    except typer.Exit:
        raise
    except KizunaError as exc:
        _fail(exc)
    except Exception as exc:  # e.g. Prefect's temporary server could not start: one message, the trace in the log
        log.error("unexpected failure", exc_info=(type(exc), exc, exc.__traceback__))
        _fail(_unexpected(exc), log_file)
    _print_summary(outcome, settings, time.perf_counter() - started)


@contextmanager
def _demo_source(settings: Settings, source: str, customers: int) -> Iterator[None]:
    """The demo shop, generated once, served through `source` for the length of the run."""
    import os

    if source == "csv":
        if not (settings.exports_dir / "shop.json").exists():
            _generate_demo(settings, settings.exports_dir, customers)
        yield
        return
    if source == "mapped_csv":
        if not (settings.exports_dir / "shop.json").exists():
            from kizuna.demo_shop.ec_cube_csv import write_ec_cube_exports

            shop = settings.data_dir / "shop"
            _generate_demo(settings, shop, customers)
            write_ec_cube_exports(shop, settings.exports_dir)
            console.print(f"EC-CUBE 4 CSV exports of the demo shop: {settings.exports_dir}")
        yield
        return
    shop = settings.data_dir / "shop"  # kizuna's format: what the twin or the database is filled from
    if not (shop / "shop.json").exists():
        _generate_demo(settings, shop, customers)
    if source == "shopify":
        from connectors.channels.loopback.shopify import DEFAULT_TOKEN, ShopifyLoopback

        with ShopifyLoopback.from_exports(shop, night_index=-1) as twin:
            os.environ.update(KIZUNA_SHOPIFY_API_URL=twin.url, KIZUNA_SHOPIFY_SHOP=twin.shop,
                              KIZUNA_SHOPIFY_ACCESS_TOKEN=DEFAULT_TOKEN)
            console.print(f"Shopify twin (loopback) serving the demo shop at {twin.url}")
            yield
        return
    from connectors.sources.ec_cube.demo import start_demo_database

    database = start_demo_database(shop, tz=settings.timezone)
    try:
        os.environ["KIZUNA_EC_CUBE_DATABASE_URL"] = database.reader_url
        console.print("EC-CUBE demo database: a throwaway PostgreSQL holding the demo shop")
        yield
    finally:
        database.close()


def _generate_demo(settings: Settings, folder: Path, customers: int) -> None:
    from rich.progress import Progress

    from kizuna.demo_shop import generate_shop

    # The demo shop's last night is yesterday in the shop's time zone, so tonight's sends are today's.
    end = datetime.now(ZoneInfo(settings.timezone)).date() - timedelta(days=1)
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task(f"Generating a demo shop of {customers:,} customers", total=1.0)
        generate_shop(folder, customers=customers, seed=settings.demo_seed, end_date=end,
                      nights=settings.demo_nights, progress=lambda _msg, done: progress.update(bar, completed=done))
    console.print(f"Demo shop: {customers:,} customers, exports in {folder}")


@app.command()
def run(
    night: Optional[datetime] = typer.Option(None, formats=["%Y-%m-%d"], help="Night to process (default: newest)."),
    as_of: Optional[datetime] = typer.Option(
        None, "--as-of", formats=["%Y-%m-%d"],
        help="The day the marts are measured against: recency, stage, age, which cohorts are old enough "
             "(default: the day after the night, the send day). Another day makes an analysis run: "
             "nothing is planned or sent."),
) -> None:
    """Run the nightly flow on the exports in KIZUNA_EXPORTS_DIR.

    Everything is logged to <data_dir>/logs/kizuna.log; a failed run prints one message saying what
    failed and what to change, and its trace goes to that file."""
    settings = get_settings()
    log_file = _log_to_file(settings)
    started = time.perf_counter()
    try:
        outcome = _run_flow(settings, night.date() if night else None, started, log_file,
                            as_of=as_of.date() if as_of else None)
    except typer.Exit:
        raise
    except KizunaError as exc:
        _fail(exc)
    except Exception as exc:  # e.g. Prefect's temporary server could not start: one message, the trace in the log
        log.error("unexpected failure", exc_info=(type(exc), exc, exc.__traceback__))
        _fail(_unexpected(exc), log_file)
    _print_summary(outcome, settings, time.perf_counter() - started)


@app.command()
def generate(
    out: Path = typer.Option(..., help="Folder to write the exports into (one sub-folder per night)."),
    customers: int = typer.Option(10_000, help="Number of customers."),
    seed: int = typer.Option(1, help="Random seed: the same seed gives the same files."),
    end_date: datetime = typer.Option(..., formats=["%Y-%m-%d"], help="Last night of the export."),
    nights: int = typer.Option(3, help="Nights exported one folder each after the full history."),
    encoding: str = typer.Option("utf-8", help="utf-8 or cp932."),
    start_date: Optional[datetime] = typer.Option(
        None, formats=["%Y-%m-%d"], help="First day of the history, e.g. 1997-01-01 (default: three years before "
        "the end date)."),
) -> None:
    """Generate a synthetic shop's nightly CSV exports."""
    from kizuna.demo_shop import generate_shop

    try:
        summary = generate_shop(out, customers=customers, seed=seed, end_date=end_date.date(), nights=nights,
                                encoding=encoding, start_date=start_date.date() if start_date else None)
    except KizunaError as exc:
        _fail(exc)
    console.print(str(summary), highlight=False)


@campaigns_app.command("validate")
def campaigns_validate() -> None:
    """Validate every scenario file and render each step as a send would, with a complete sample customer.

    Scenarios and templates come from KIZUNA_SCENARIOS_DIR when set (else the shipped ones). Each
    problem is one line naming the file, the line and the variable; HTML e-mails are also linted
    (external CSS, scripts, images without alt text or width, Gmail's 102 KB clipping).
    """
    from campaigns.engine import send_date_for
    from campaigns.html_lint import lint_email_html
    from campaigns.render import Renderer
    from campaigns.schema import load_scenarios, scenario_dir
    from campaigns.template_vars import sample_customer

    settings = get_settings()
    try:
        scenarios = load_scenarios()
    except KizunaError as exc:
        _fail(exc)
    renderer = Renderer(settings)
    send_date = send_date_for(date.today())
    problems: list[str] = []
    for s in scenarios:
        bad = 0
        for step in (m.on_channel(ch) for st in s.steps for m in st.arms() for ch in m.channels):  # A/B, fallback
            try:
                rendered = renderer.render(step, sample_customer(s.id, step.id), "sample-send-id", send_date)
            except KizunaError as exc:
                problems.append(f"{s.id} · {step.id}: {exc}")
                bad += 1
                continue
            if step.channel == "email":
                found = lint_email_html(rendered.html)
                problems += [f"{s.id} · {step.id} ({step.template}, HTML): {p}" for p in found]
                bad += bool(found)
        mark = "[red]error[/]" if bad else "[green]ok[/]"
        console.print(f"{mark} {s.id} (priority {s.priority}, {len(s.steps)} steps)")
    problems += _entry_problems(settings, scenarios)  # issue 17 part 3: anchors' columns, against the warehouse
    for line in problems:
        console.print(Text.assemble(("error: ", "bold red"), line), highlight=False)
    if problems:
        console.print(f"{len(problems)} problem(s) in {scenario_dir(settings)}: a send would fail the same way.")
        raise typer.Exit(1)


def _entry_problems(settings, scenarios) -> list[str]:
    """A date_column entry's column checked against the warehouse, when there is one to read (before the
    first build there is not: the nightly run checks it then). Opened read-only; a warehouse busy with
    the nightly run is skipped with a note."""
    import duckdb

    from campaigns.schema import entry_problems

    if not any(s.entry.event == "date_column" for s in scenarios) or not Path(settings.warehouse).is_file():
        return []
    try:
        con = duckdb.connect(str(settings.warehouse), read_only=True)
    except duckdb.Error as exc:
        console.print(f"note: entry columns not checked, the warehouse could not be opened ({exc})")
        return []
    try:
        return entry_problems(con, scenarios)
    finally:
        con.close()


@campaigns_app.command("preview")
def campaigns_preview(
    run_date: datetime = typer.Option(..., "--date", formats=["%Y-%m-%d"], help="Send date to preview (YYYY-MM-DD)."),
    sample: int = typer.Option(1, help="Rendered sample messages per scenario step."),
    scenario: Optional[str] = typer.Option(None, "--scenario", help="Show this scenario only (its id)."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write the audience with reasons to this CSV file.",
                                            dir_okay=False),
) -> None:
    """Per scenario step: who is due on --date, who would be sent what, and why the others would not be
    (consent, address, suppression, cap, priority, condition, hold-out, ...); writes nothing.

    Opens the warehouse and the ledger read-only: no message is sent, no ledger row written. With --csv, every
    selected customer (id only) with the channel, status and reason is written to that file (UTF-8 with BOM,
    for Excel). With --scenario, the selection still runs over every scenario (priority is decided as in a
    run) and only that one is shown."""
    from campaigns.engine import preview_campaigns
    from campaigns.schema import load_scenarios
    from kizuna.warehouse import connect

    settings = get_settings()
    if not settings.warehouse.exists():
        _fail(KizunaError(f"No warehouse at {settings.warehouse}: run `kizuna demo` or `kizuna run` first."))
    try:
        scenarios = load_scenarios()
        with connect(settings.warehouse, read_only=True) as con:
            result = preview_campaigns(con, settings, scenarios, run_date.date(), sample=sample,
                                       scenario_id=scenario, audience=csv_path is not None)
    except KizunaError as exc:
        _fail(exc)
    _print_preview_steps(result, run_date.date(), scenario)
    for scenario_id, step, channel, rendered in result.samples:
        console.rule(f"{scenario_id} · {step} · {channel}")
        console.print(f"[bold]{rendered.subject}[/]", markup=True)
        console.print(rendered.text, markup=False, highlight=False)
    if csv_path is not None:
        try:
            _write_audience_csv(csv_path, result.audience or [])
        except OSError as exc:
            _fail(KizunaError(f"CSV を書けませんでした (could not write {csv_path}: {exc.strerror or exc}); "
                              "choose a writable path with --csv."))
        console.print(f"対象者と理由 (audience with reasons): {len(result.audience or []):,} rows → {csv_path}",
                      highlight=False)
    console.print(Text(_("Preview only: nothing was sent and the ledger was not written."), style="dim"))


def _print_preview_steps(result, run_date: date, scenario: str | None) -> None:
    """One line per scenario step: due, to send (per channel; fallback channels marked), not sent and why."""
    from campaigns.engine import SKIP_REASONS, reason_of

    labels = {key: label for key, label in SKIP_REASONS.values()}
    steps: dict[tuple[str, str], dict] = {}
    for scenario_id, step, channel, status, detail, n in result.details:
        row = steps.setdefault((scenario_id, step), {"due": 0, "send": {}, "why": {}})
        row["due"] += n
        reason = reason_of(status, detail)
        if status == "planned":
            name = f"{channel} (fallback)" if reason == "fallback" else channel
            row["send"][name] = row["send"].get(name, 0) + n
        else:
            kind = (detail or "").split(":", 1)
            label = labels.get(reason or "", reason or status)
            if reason in ("condition", "priority") and len(kind) == 2:
                label += f" {kind[1]}"
            row["why"][label] = row["why"].get(label, 0) + n
    if not steps:
        console.print("Nothing due on that date (or all already in the ledger)"
                      + (f" for scenario {scenario}." if scenario else "."))
        return
    table = _table("scenario", "step", "対象 (due)", "送信 (send)", "送信しない理由 (not sent: why)",
                   title=f"Campaign preview for {run_date}")
    for (scenario_id, step), row in sorted(steps.items()):
        send = ", ".join(f"{ch} {n:,}" for ch, n in sorted(row["send"].items())) or "0"
        why = ", ".join(f"{label} {n:,}" for label, n in sorted(row["why"].items(), key=lambda kv: -kv[1])) or "-"
        table.add_row(scenario_id, step, f"{row['due']:,}", send, why)
    console.print(table)


def _write_audience_csv(path: Path, rows: list[dict]) -> None:
    """The preview's audience, one row per selected customer and step (UTF-8 with BOM: Excel reads it)."""
    import csv

    from campaigns.engine import AUDIENCE_COLUMNS

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=AUDIENCE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _print_sends(status: str, limit: int) -> None:
    from campaigns import ledger

    settings = get_settings()
    if not settings.ledger.exists():
        console.print(f"No send ledger at {settings.ledger} yet: nothing was sent.")
        return
    try:
        con = ledger.open_file(settings.ledger)  # writable: a dead run's journal is folded in first
    except KizunaError as exc:
        _fail(exc)
    rows = ledger.rows_in(con, status, limit)
    total = con.execute("select count(*) from ledger.sends where status = ?", [status]).fetchone()[0]
    con.close()
    if not rows:
        console.print(f"No {status} messages.")
        return
    table = _table("send id", "channel", "scenario / step", "customer", "run", "handed over (UTC)", "tries", "detail",
                   title=f"{total:,} {status} message(s)" + (f", the first {len(rows):,}" if total > len(rows) else ""))
    for r in rows:
        table.add_row(r["send_id"], r["channel"], f"{r['scenario_id']} / {r['step_id']}", r["customer_id"],
                      str(r["run_date"]), str(r["handed_over_at"] or ""), str(r["attempts"] or 0), r["detail"] or "")
    console.print(table)


@sends_app.command("unknown")
def sends_unknown(limit: int = typer.Option(200, help="Rows to show.")) -> None:
    """List the messages whose fate is unknown (the provider may or may not have them).

    E-mails are reconciled from SendGrid's events each night; what is left here needs a person:
    check the provider's log (SendGrid activity feed, LINE console, Twilio log) for the send id, then
    `kizuna sends resolve SEND_ID --delivered` or `--not-delivered`. Nothing here is ever resent blindly."""
    _print_sends("unknown", limit)


@sends_app.command("failed")
def sends_failed(limit: int = typer.Option(200, help="Rows to show.")) -> None:
    """List the messages a provider refused, with the reason (retried on later runs up to
    KIZUNA_SEND_MAX_FAILURES times, unless a person or the provider barred a retry)."""
    _print_sends("failed", limit)


@sends_app.command("resolve")
def sends_resolve(
    send_ids: list[str] = typer.Argument(..., help="Send ids (from `kizuna sends unknown`)."),
    delivered: bool = typer.Option(..., "--delivered/--not-delivered",
                                   help="What the provider's log says: it was delivered, or it was not."),
    by: str = typer.Option(..., help="Who decides (recorded in the ledger)."),
) -> None:
    """Record a person's verdict on unknown messages: delivered, or not delivered (then never resent)."""
    from campaigns import ledger

    settings = get_settings()
    try:
        con = ledger.open_file(settings.ledger)
    except KizunaError as exc:
        _fail(exc)
    decided = ledger.resolve_by_hand(con, send_ids, delivered, by)
    con.close()
    for send_id in decided:
        console.print(f"[green]recorded[/] {send_id}: {'delivered' if delivered else 'not delivered'}")
    for send_id in sorted(set(send_ids) - set(decided)):
        console.print(f"[yellow]skipped[/] {send_id}: not an unknown message in the ledger")
    if len(decided) < len(set(send_ids)):
        raise typer.Exit(1)


@docs_app.command("export-format")
def docs_export_format(out: Path = typer.Option(Path("docs/export-format.md"), help="Where to write it.")) -> None:
    """Write the export format reference (generated from connectors/sources/export_format.py)."""
    from kizuna.docs_export_format import render_export_format_doc

    out.write_text(render_export_format_doc(), encoding="utf-8")
    console.print(f"wrote {out}")


@docs_app.command("templates")
def docs_templates(out: Path = typer.Option(Path("docs/templates.md"), help="Where to write it.")) -> None:
    """Write the template reference (generated from campaigns/template_vars.py and the brand settings)."""
    from kizuna.docs_templates import render_templates_doc

    out.write_text(render_templates_doc(), encoding="utf-8")
    console.print(f"wrote {out}")


@docs_app.command("email-screenshots")
def docs_email_screenshots(
    out: Path = typer.Option(Path("docs/images"), help="Folder for email-375.png and email-1200.png."),
) -> None:
    """Render the shipped win-back e-mail and save it as seen 375 px and 1,200 px wide (headless Chromium)."""
    import tempfile

    from kizuna.email_preview import email_screenshots

    try:
        with tempfile.TemporaryDirectory(prefix="kizuna-email-") as work:
            shots = email_screenshots(out, Path(work))
    except KizunaError as exc:
        _fail(exc)
    for shot in shots:
        console.print(f"wrote {shot}")


@docs_app.command("dbt")
def docs_dbt() -> None:
    """Generate the dbt docs of the marts as one page that opens in a browser (needs a built warehouse)."""
    from kizuna import modelling

    try:
        page = modelling.generate_docs(get_settings())
    except KizunaError as exc:
        _fail(exc)
    console.print(f"dbt docs: open {page} in a browser")


@webhook_app.command("serve")
def webhook_serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (put a TLS proxy in front when public)."),
    port: int = typer.Option(8787, help="Port to listen on."),
) -> None:
    """Receive SendGrid and LINE webhooks: verify signatures, store events for the nightly run."""
    from kizuna.events.webhook import serve

    _log_to_console()
    try:
        serve(get_settings(), host=host, port=port)
    except KizunaError as exc:
        _fail(exc)


# --- The marketers' console (issue 22, docs/console.md) ------------------------------------------------
@console_app.command("serve")
def console_serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on: loopback; put a TLS proxy in front to share it."),
    port: int = typer.Option(8788, help="Port to listen on."),
) -> None:
    """Serve the console: tonight's plan, holds and approvals, results, messages that need a person, customers."""
    from kizuna.console.app import serve

    _log_to_console()
    try:
        serve(get_settings(), host=host, port=port)
    except KizunaError as exc:
        _fail(exc)


@console_app.command("add-user")
def console_add_user(
    name: str = typer.Argument(..., help="The user name (recorded as who did each action)."),
) -> None:
    """Add a console user, or set a new password for one: asked twice, stored only as a salted scrypt hash."""
    from kizuna.console.auth import add_user

    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    settings = get_settings()
    try:
        new = add_user(settings.console_users, name, password)
    except KizunaError as exc:
        _fail(exc)
    console.print(f"{'added' if new else 'password changed for'} {name} in {settings.console_users}", highlight=False)
# -------------------------------------------------------------------------------------------------------


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())

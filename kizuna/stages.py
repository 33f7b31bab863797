"""The stages of the nightly run, each a plain function of the settings.

The Prefect flow (`flows/nightly.py`) wraps each in a task; tests and benchmarks call
them directly. Each stage opens the warehouse itself and closes it when done, so
stages can run in separate task runs without sharing state.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from campaigns.engine import CampaignResult, run_campaigns, send_date_for
from campaigns.schema import load_scenarios
from connectors.channels import registry
from connectors.sources.base import ExportSource
from connectors.sources.registry import source_for as _source_for
from connectors.sources.loader import NightLoadResult, load_pending
from kizuna import modelling, quality, report
from kizuna.config import Settings
from kizuna.errors import KizunaError, NightRejected, QualityGateFailed
from kizuna.warehouse import Published, publish
from kizuna.warehouse import connect as _connect

if TYPE_CHECKING:
    from kizuna.events.load import EventsLoadResult
    from kizuna.predict.score import PredictionResult
    from kizuna.privacy import ErasureResult

log = logging.getLogger("kizuna")


@dataclass
class NightlyOutcome:
    """What one nightly run did, stage by stage (a stage that did not run stays None)."""

    night: date
    loads: list[NightLoadResult] = field(default_factory=list)  # each night loaded, with its raw-data gate
    ignored: list[str] = field(default_factory=list)  # what the exports folder holds that was not loaded, and why
    build: modelling.BuildResult | None = None
    mart_gate: quality.GateResult | None = None
    #: The warehouse analysts open, once this night's gated marts were published to it (docs/analysts.md).
    published: Published | None = None
    campaigns: CampaignResult | None = None
    events: "EventsLoadResult | None" = None
    erasure: "ErasureResult | None" = None
    predictions: "PredictionResult | None" = None  # issue 19: the prediction stage's fits
    report_path: Path | None = None
    #: The day the marts are measured against when it is not the send day (`kizuna run --as-of`).
    as_of: date | None = None

    @property
    def run_date(self) -> date:
        """The send day: the day after the night."""
        return send_date_for(self.night)

    @property
    def marts_as_of(self) -> date:
        """The day the marts are measured against (recency, stage, cohort maturity): `as_of`, else the send day."""
        return self.as_of or self.run_date

    @property
    def sends(self) -> bool:
        """Whether this run plans and sends: not when the marts are measured against another day than the
        send day (an analysis run), since the audience would be chosen as of that other day."""
        return self.marts_as_of == self.run_date

    @property
    def raw_gates(self) -> list[quality.GateResult]:
        """The raw-data gate of every night this run loaded, oldest first (none: nothing new)."""
        return [r.gate for r in self.loads if r.gate is not None]


class DeliveryIncomplete(KizunaError):
    """The night ran to the end, but a channel could not deliver: its messages wait for the next run."""

    def __init__(self, message: str, outcome: "NightlyOutcome | None" = None) -> None:
        super().__init__(message)
        self.outcome = outcome


def connect(settings: Settings, read_only: bool = False):
    """The warehouse, waiting (up to `warehouse_wait_seconds`) for a reader that holds it to let go."""
    return _connect(settings.warehouse, read_only=read_only, wait_seconds=settings.warehouse_wait_seconds)


def _fraction_of(memory_limit: str, parts: int) -> str:
    """`memory_limit` (DuckDB's spelling: `1500MB`, `2GiB`, `1.5GB`) divided by `parts`, as DuckDB reads it."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", memory_limit)
    if match is None:  # DuckDB's own words for it (e.g. a percentage) are left as they are
        return memory_limit
    return f"{float(match.group(1)) / parts:.3f}{match.group(2) or 'B'}"


def source_for(settings: Settings) -> ExportSource:
    return _source_for(settings)


def ignored_exports(settings: Settings) -> list[str]:
    """Every folder or file of the exports folder that is not loaded, with the reason (for the summary)."""
    return source_for(settings).ignored()


def resolve_night(settings: Settings, night: date | None) -> date:
    """The night to process: the one asked for, or the newest export available."""
    nights = source_for(settings).nights()
    if not nights and settings.source in ("csv", "mapped_csv"):
        raise KizunaError(
            f"No export found in {settings.exports_dir}: expected one folder per night named YYYY-MM-DD "
            "holding the CSV files (see docs/export-format.md and docs/sources.md), or run `kizuna demo` for a "
            "demo shop."
        )
    if not nights:
        raise KizunaError(
            f"The {settings.source} source (KIZUNA_SOURCE) has no finished night to load yet: a night is a day "
            f"in {settings.timezone} that has ended (see docs/sources.md).")
    if night is None:
        return nights[-1]
    if night not in nights:
        raise KizunaError(f"No export for night {night} in {settings.exports_dir} (newest: {nights[-1]}).")
    return night


def ingest(settings: Settings, night: date) -> list[NightLoadResult]:
    """Load every night up to `night` not loaded yet, oldest first, each checked before it is kept.

    The raw-data gate runs on each night's rows inside that night's transaction: a night with
    an error is rolled back (nothing of it stays in raw to mislead a later night), the nights
    after it wait, and the run stops with the gate's findings (`QualityGateFailed`). Every
    night's quality page is written, refused or not.
    """
    config = quality.load_config(settings.quality_config)

    def gate(con, checked: date, files_dir: Path | None) -> quality.GateResult:
        # The header check judges the shop's own files; other sources' files are written by kizuna from
        # what the source carries (a mapping checks the cart's headers itself).
        headers = files_dir if settings.source == "csv" else None
        # The gate's frames and Great Expectations live in Python's memory, beside DuckDB's cache of the night
        # just loaded: DuckDB keeps a quarter of its cap while the gate runs (at 1M customers a first
        # load peaked at 3.3 GiB with both full, `python -m bench`).
        con.execute("set memory_limit = ?", [_fraction_of(settings.duckdb_memory_limit, 4)])
        try:
            result = quality.check_raw_night(con, checked, config=config, files_dir=headers)
        finally:
            con.execute("set memory_limit = ?", [settings.duckdb_memory_limit])
        page = quality.write_quality_page(settings.reports_dir, checked, result, config.sources, settings.locale)
        log.log(logging.WARNING if result.errors or result.warnings else logging.INFO, "night %s: %s",
                checked, result.summary())
        log.info("quality report: %s", page)
        result.raise_on_error()
        return result

    slack = timedelta(days=int(config.settings.get("future_slack_days", 1)))
    rejected: NightRejected | None = None
    with connect(settings) as con:
        # Beyond the cap the loader's temporary tables spill to disk. At 1M customers the first
        # load peaked at 4.2 GiB without it and 1.7 GiB with 1500MB, no slower (`python -m bench`).
        con.execute("set memory_limit = ?", [settings.duckdb_memory_limit])
        try:
            results = load_pending(con, source_for(settings), through=night, archive_dir=settings.archive_dir,
                                   gate=gate, future_slack=slack)
        except NightRejected as exc:
            rejected, results = exc, exc.loaded
    for r in results:
        log.info("ingest %s", r.summary())
    if rejected is not None:
        if results:  # the run stops here: the nights kept before the refused one are purged of erasures now
            erase(settings)
        if isinstance(rejected.cause, QualityGateFailed):  # the gate's verdict, with the nights' story
            raise QualityGateFailed(str(rejected), result=rejected.cause.result) from None
        raise rejected
    return results


def erase(settings: Settings) -> "ErasureResult":
    """Erasure (APPI, docs/privacy.md): customers with `deleted_at` are recorded as salted hashes only,
    purged from the warehouse, archive, outbox, lists, events and reports, and anyone else carrying their
    e-mail, phone or LINE id is blocked. Runs every night after the load, before anything is modelled."""
    from kizuna.console.nightly import fold_erasure_requests
    from kizuna.privacy import apply_erasures

    fold_erasure_requests(settings)  # issue 22: erasure requests recorded in the console
    result = apply_erasures(settings)
    log.info("%s", result.summary())
    return result


def load_events(settings: Settings) -> "EventsLoadResult":
    """Webhook events, the ledger's sends and the scenarios' goals into the warehouse; bounces,
    complaints, unsubscribes and LINE blocks into the ledger's suppressions (kizuna/events/load.py)."""
    from kizuna.events.load import load_events as load

    return load(settings, load_scenarios())


def build_marts(settings: Settings, run_date: date) -> modelling.BuildResult:
    # Incremental modelling (issue 20, docs/modelling.md): nothing when nothing is new, else only the
    # customers with something new, a full refresh after a failed build or a changed project. Unit tests
    # (SQL logic on fixed inputs) run in CI, not every night.
    result = modelling.build_nightly(settings, run_date)
    log.info("%s", result.summary())
    return result


# --- Predictive CLV (issue 19; kizuna/predict/, docs/predictions.md) ------------------------------
#: The dbt models the prediction stage builds again once it has scored (they read predict.customer_scores).
PREDICTION_MODELS = ("customer_predictions+",)
#: The marts the fit reads (kizuna/predict/): a build that rebuilt neither (nothing new, or only the campaign
#: marts over tonight's sends; the same as-of date) leaves the stored predictions standing (issue 20).
PREDICTION_INPUTS = ("dim_customers", "fct_orders")


def predict_customers(settings: Settings, as_of: date,
                      build: modelling.BuildResult | None = None) -> "PredictionResult | None":
    """Fit the purchase, spend and retention models on tonight's marts, score every customer into
    predict.*, then build marts.customer_predictions (and what reads it: ltv_by_media) with their tests.

    Runs after the dbt build and before the mart gate. A shop too small to fit is not an error: the
    fit records `too_small`, the report says so and the historical marts stand. Skipped when the nightly build
    rebuilt none of `PREDICTION_INPUTS` (nothing new, or only the campaign marts, same as-of date): the stored
    predictions are those of these marts."""
    from kizuna.predict.score import fit_and_score

    if build is not None and not build.rebuilt(*PREDICTION_INPUTS):  # issue 20: same inputs, same predictions
        log.info("predictions: nothing new since the last fit as of %s; its predictions stand", as_of)
        return None
    try:
        with connect(settings) as con:
            result = fit_and_score(con, as_of, discount_rate=settings.discount_rate,
                                   min_repeat_buyers=settings.predict_min_repeat_buyers,
                                   holdout_weeks=settings.predict_holdout_weeks)
    except KizunaError:
        raise
    except Exception as exc:  # a fit that fails numerically must not stop the sends: last night's scores stand
        log.error("predictions: the models could not be fitted tonight (%s: %s); last night's predictions "
                  "stand. The full trace is in the log file.", type(exc).__name__, exc, exc_info=True)
        return None
    log.info("%s", result.summary())
    build_prediction_marts(settings, as_of)
    return result


def build_prediction_marts(settings: Settings, as_of: date) -> modelling.BuildResult:
    """The second dbt invocation of the night: the prediction marts over the scores just written."""
    build = modelling.build_models(settings, as_of, select=list(PREDICTION_MODELS), unit_tests=False)
    log.info("%s", build.summary())
    return build
# ----------------------------------------------------------------------------------------------------


def gate_marts(settings: Settings) -> quality.GateResult:
    """The mart gate; an error stops the run before any send (warnings go on). A mart whose checked columns
    passed the same GE checks before, unchanged (a night that rebuilt nothing or only some marts), passes
    again without Great Expectations being imported (issue 20: `GateResult.reused`)."""
    config = quality.load_config(settings.quality_config)
    with connect(settings) as con:
        # The night whose marts these are: the newest loaded (its page gets this gate too).
        night = con.execute("select max(night) from raw._load_log").fetchone()[0] if con.execute(
            "select count(*) from duckdb_tables() where schema_name = 'raw' and table_name = '_load_log'"
        ).fetchone()[0] else None
        result = quality.check_marts(con, config=config, ledger=settings.ledger, night=night)
    if night is not None:
        page = quality.write_quality_page(settings.reports_dir, night, result, config.sources, settings.locale)
        log.info("quality report: %s", page)
    log.log(logging.WARNING if result.errors or result.warnings else logging.INFO, "%s", result.summary())
    result.raise_on_error()
    return result


def publish_warehouse(settings: Settings) -> Published | None:
    """Analysts (docs/analysts.md): publish the night just built and gated to the file they open.

    Called after the mart gate, so a published file always holds one whole night whose marts
    passed; a night that stops earlier leaves the previous one published. A publication that
    fails (a full disk) is logged as an error and the run goes on: the sends do not wait for it.
    """
    try:
        result = publish(settings.warehouse, settings.published_warehouse,  # type: ignore[arg-type]
                         wait_seconds=settings.warehouse_wait_seconds)
    except KizunaError as exc:
        log.error("%s", exc)
        return None
    log.info("%s", result.summary())
    return result


def check_sender_identity(settings: Settings) -> None:
    """Stop a run that would send through a network provider (SendGrid, LINE, Twilio) in the demo
    shop's name or in nobody's, at its start, before anything is loaded or sent: the message names
    each KIZUNA_SENDER_* / KIZUNA_UNSUBSCRIBE_BASE_URL to set. (The campaign stage checks again.)"""
    registry.require_sender_identity(settings)


def send_campaigns(settings: Settings, run_date: date) -> CampaignResult:
    """Plan and deliver tonight's messages. A channel that cannot deliver (a missing secret, a folder
    that cannot be written) is reported and waits; the other channels send."""
    scenarios = load_scenarios()
    with connect(settings) as con:
        result = run_campaigns(con, settings, scenarios, run_date, registry.factory(settings))
    log.info("campaigns: %d planned, %d sent", sum(result.planned.values()), result.total("sent"))
    log.info("campaigns: %d customer(s) unsubscribed through the link since the last run", result.unsubscribed)
    for channel, why in sorted(result.channel_problems.items()):
        log.error("campaigns: nothing more was sent by %s tonight: %s", channel, why)
    for (channel, state), n in sorted(result.attention.items()):
        log.warning("campaigns: %d %s message(s) %s (see `kizuna sends unknown`)", n, channel, state)
    return result


def finish(outcome: NightlyOutcome) -> None:
    """End the run as failed when a channel could not deliver, after the report is written (so a
    deployment's run shows red and the operator is told, while everything else was done)."""
    problems = outcome.campaigns.channel_problems if outcome.campaigns else {}
    if problems:
        raise DeliveryIncomplete(
            "The night ran to the end, but these channels could not deliver; their messages wait for the next "
            "run:\n" + "\n".join(f"  {channel}: {why}" for channel, why in sorted(problems.items())), outcome)


def write_report(settings: Settings, outcome: NightlyOutcome) -> Path:
    with connect(settings) as con:
        path = report.write_nightly_report(con, settings, outcome)
    log.info("report: %s", path)
    return path

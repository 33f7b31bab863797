"""What a night leaves in Prefect: artifacts a person opens from the flow run's page.

Every run publishes, under stable keys (so the Artifacts page keeps each one's history):

* `kizuna-night-summary` (Markdown): what the command line prints at the end of the night,
  or the stop message of a night that stopped;
* `kizuna-sends` (table): messages per scenario, step, channel and status;
* `kizuna-failed-checks` (table): every data-quality check that failed (errors and warnings);
* `kizuna-report` (link): the nightly report (or, when the night stopped, its quality page or
  the log file), through KIZUNA_REPORT_BASE_URL when set, else as a file URI.

Publishing is best effort: a Prefect API problem is logged and never changes the night's outcome.
Outside a flow run (tests calling the stages, benchmarks) nothing is published.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kizuna.config import Settings
from kizuna.notify import link_to

log = logging.getLogger("kizuna.prefect")

SUMMARY_KEY, SENDS_KEY, CHECKS_KEY, REPORT_KEY = ("kizuna-night-summary", "kizuna-sends", "kizuna-failed-checks",
                                                  "kizuna-report")


def summary_text(outcome, settings: Settings, seconds: float) -> str:
    """The command line's end-of-night summary as plain text (the same function prints it)."""
    from rich.text import Text

    from kizuna import cli

    with cli.console.capture() as captured:
        cli._print_summary(outcome, settings, seconds)
    return Text.from_ansi(captured.get()).plain.rstrip()


def sends_table(campaigns) -> list[dict[str, Any]]:
    """Tonight's messages per scenario, step, channel and status (none: an analysis run or nothing due)."""
    if campaigns is None:
        return []
    return [{"scenario": scenario, "step": step, "channel": channel, "status": status, "messages": n}
            for (scenario, step, channel, status), n in sorted(campaigns.delivered.items())]


def failed_checks_table(gates) -> list[dict[str, Any]]:
    """Every failed check of `gates` (errors first, then warnings), one row each."""
    rows = []
    for gate in gates:
        if gate is None:
            continue
        for o in gate.errors + gate.warnings:
            rows.append({"gate": gate.gate, "night": gate.night.isoformat() if gate.night else "",
                         "severity": o.check.severity, "check": o.check.name, "table": o.check.table,
                         "finding": o.describe(why=False)})
    return rows


def _in_flow_run() -> bool:
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


def _publish(kind: str, **kwargs) -> bool:
    """One artifact; a failure is logged, never raised (the night's outcome stands)."""
    from prefect import artifacts

    try:
        getattr(artifacts, f"create_{kind}_artifact")(**kwargs)
        return True
    except Exception:  # noqa: BLE001 - an artifact is a view of the night, never a reason to fail it
        log.warning("could not publish the Prefect %s artifact %s", kind, kwargs.get("key"), exc_info=True)
        return False


def publish_night(outcome, settings: Settings, seconds: float) -> int:
    """The artifacts of a night that ran to the end; returns how many were published."""
    if not _in_flow_run():
        return 0
    night = outcome.night.isoformat()
    published = _publish("markdown", key=SUMMARY_KEY, description=f"kizuna: the night of {night}",
                         markdown=f"# kizuna · {night}\n\n```text\n{summary_text(outcome, settings, seconds)}\n```\n")
    sends = sends_table(outcome.campaigns)
    published += _publish("table", key=SENDS_KEY, table=sends or {"scenario": [], "step": [], "channel": [],
                                                                  "status": [], "messages": []},
                          description=(f"Messages of the night of {night} per scenario, step, channel and status"
                                       if outcome.campaigns is not None else
                                       f"Nothing planned or sent: the marts are measured as of {outcome.marts_as_of}"))
    checks = failed_checks_table([*outcome.raw_gates, outcome.mart_gate])
    published += _publish("table", key=CHECKS_KEY, table=checks or _empty_checks(),
                          description=f"Failed checks of the night of {night}" if checks else
                          f"No check failed on the night of {night}")
    if outcome.report_path is not None:
        published += _publish("link", key=REPORT_KEY, link=link_to(settings, outcome.report_path),
                              link_text=f"kizuna report {night}", description=f"The nightly report of {night}")
    return published


def _empty_checks() -> dict[str, list]:
    return {k: [] for k in ("gate", "night", "severity", "check", "table", "finding")}


def publish_stop(settings: Settings, exc: BaseException, night, message: str, log_file: Path | None) -> int:
    """The artifacts of a night that stopped: the stop message, the failed checks (when a gate stopped
    it), and a link to where to look (the night's quality page, else the log file)."""
    if not _in_flow_run():
        return 0
    title = night.isoformat() if night else "?"
    published = _publish("markdown", key=SUMMARY_KEY, description=f"kizuna: the night of {title} stopped",
                         markdown=f"# kizuna · {title}: stopped\n\n```text\n{message}\n```\n")
    result = getattr(exc, "result", None)
    if result is not None and hasattr(result, "errors"):
        published += _publish("table", key=CHECKS_KEY, table=failed_checks_table([result]) or _empty_checks(),
                              description=f"Failed checks that stopped the night of {title}")
    page = settings.reports_dir / f"quality-{night.isoformat()}.html" if night and settings.reports_dir else None
    target = page if page is not None and page.exists() else log_file
    if target is not None:
        published += _publish("link", key=REPORT_KEY, link=link_to(settings, target), link_text=target.name,
                              description=f"Where to look: the night of {title} stopped")
    return published

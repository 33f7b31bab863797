"""One night, stage after stage: the body of the nightly flow, and the same night run without Prefect.

The Prefect flow (`flows/nightly.py`) runs `run_night` with its tasks (each a stage of `kizuna.stages`
wrapped as a Prefect task). By default `kizuna run` and `kizuna demo` run that flow, on Prefect's
temporary local server when no Prefect API is configured (the project's rule: the demo runs the nightly
job on local Prefect, its flow runs kept in PREFECT_HOME). `KIZUNA_LOCAL_PREFECT=false` is the fast path
for development and a small shop's cron: without a Prefect API, the stages run directly in this process
(`run_directly`), without the temporary server's start (a second Python process importing Prefect's
server, 7-25 s on the shared machine, more than a whole night with nothing new takes). The stages, their
order, the run lock, the log file, the stop message and the report are the same either way; only the
flow run record (and its artifacts) is Prefect's, so that path leaves none.

`uses_prefect()` says which: a Prefect API configured (PREFECT_API_URL in the environment, in the
active Prefect profile, or a `prefect.toml` here) always runs the flow, reporting to that server; else
KIZUNA_LOCAL_PREFECT decides. It reads those files itself: importing Prefect to ask costs 1-2 s.
"""

from __future__ import annotations

import os
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

from kizuna import stages


def run_night(steps: Any, night: date | None = None, as_of: date | None = None) -> stages.NightlyOutcome:
    """Process the export of `night` (default: the newest one) and every earlier one not yet loaded.

    `steps` holds the stage callables by their `kizuna.stages` names: the flow's Prefect tasks, or the
    `kizuna.stages` module itself. `as_of` is the day the marts are measured against (default: the send
    day, the day after the night); when it is another day the run plans and sends nothing. One run at a
    time (`kizuna.runlock`): a second run stops at once, naming the first."""
    from kizuna.config import get_settings
    from kizuna.prefect_run import NightWatch
    from kizuna.runlock import record_prefect_server, run_lock

    settings = get_settings()
    with NightWatch(settings) as watch, run_lock(settings.data_dir):
        record_prefect_server(settings.data_dir)
        watch.night = stages.resolve_night(settings, night)
        outcome = stages.NightlyOutcome(night=watch.night, ignored=stages.ignored_exports(settings), as_of=as_of)
        if outcome.sends:  # a live provider with the demo's sender identity: stop before anything happens
            stages.check_sender_identity(settings)
        outcome.loads = steps.ingest(settings, outcome.night)
        outcome.erasure = steps.erase(settings)
        outcome.events = steps.load_events(settings)
        outcome.build = steps.build_marts(settings, outcome.marts_as_of)
        outcome.predictions = steps.predict_customers(settings, outcome.marts_as_of, outcome.build)  # issue 19
        outcome.mart_gate = steps.gate_marts(settings)
        outcome.published = steps.publish_warehouse(settings)  # analysts see the night once its marts passed
        if outcome.sends:
            outcome.campaigns = steps.send_campaigns(settings, outcome.run_date)
        outcome.report_path = steps.write_report(settings, outcome)
        watch.done(outcome)
        stages.finish(outcome)
    return outcome


def run_directly(night: date | None = None, as_of: date | None = None) -> stages.NightlyOutcome:
    """The night without Prefect (KIZUNA_LOCAL_PREFECT=false): the stages in this process, in the flow's
    order, no flow run record (see the module doc)."""
    return run_night(stages, night, as_of)


def uses_prefect(settings: Any) -> bool:
    """Whether `kizuna run`/`kizuna demo` run the night as a Prefect flow (see the module doc)."""
    return bool(getattr(settings, "local_prefect", True)) or prefect_api_configured()


def prefect_api_configured(cwd: Path | None = None) -> bool:
    """A Prefect API URL set where Prefect reads it: the environment, the active profile of PREFECT_HOME's
    profiles.toml (`prefect config set PREFECT_API_URL=...`), or `prefect.toml` in the working folder."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    profiles = _toml(Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser())
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    if (profiles.get("profiles") or {}).get(active, {}).get("PREFECT_API_URL"):
        return True
    local = _toml((cwd or Path.cwd()) / "prefect.toml")
    return bool((local.get("api") or {}).get("url"))


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}

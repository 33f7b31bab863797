"""The nightly flow: ingest (each night gated) → erasure → load events → dbt build → predictions → mart gate → publish → sends → report.

Orchestration only: each task calls one stage of `kizuna.stages`, where the work is.
A failing stage raises, and Prefect stops everything downstream of it: a raw-data
error (the gate runs on each night inside the ingest, before the night is kept) means
nothing is modelled, a mart error means nothing is sent. `NightWatch` (kizuna/prefect_run.py)
puts kizuna's log lines in the flow run, publishes the night's artifacts, and turns a stop into
one message, a notification (KIZUNA_NOTIFY_URLS) and the stop artifacts, under a worker as from
the command line.
"""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import kizuna  # noqa: F401  (sets Prefect/dbt/GE environment defaults before prefect is imported)
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from kizuna import stages
from kizuna.night import run_night
from kizuna.prefect_run import flow_run_name, task_run_name

# Nothing here is cached or retried: every stage is idempotent by design (merge on keys,
# checksummed loads, the send ledger), and a blind retry of a send is never safe.
ingest = task(stages.ingest, name="ingest and raw-data gate", cache_policy=NO_CACHE,
              task_run_name=task_run_name("ingest and raw-data gate"))
erase = task(stages.erase, name="erasure", cache_policy=NO_CACHE, task_run_name=task_run_name("erasure"))
load_events = task(stages.load_events, name="load events", cache_policy=NO_CACHE,
                   task_run_name=task_run_name("load events"))
build_marts = task(stages.build_marts, name="dbt build", cache_policy=NO_CACHE, task_run_name=task_run_name("dbt build"))
# Issue 19: predictive CLV, a stage after the marts and before their gate (kizuna/predict/).
predict_customers = task(stages.predict_customers, name="predictions", cache_policy=NO_CACHE,
                         task_run_name=task_run_name("predictions"))
gate_marts = task(stages.gate_marts, name="mart gate", cache_policy=NO_CACHE, task_run_name=task_run_name("mart gate"))
publish_warehouse = task(stages.publish_warehouse, name="publish for analysts", cache_policy=NO_CACHE,
                          task_run_name=task_run_name("publish for analysts"))
send_campaigns = task(stages.send_campaigns, name="campaign sends", cache_policy=NO_CACHE,
                      task_run_name=task_run_name("campaign sends"))
write_report = task(stages.write_report, name="report", cache_policy=NO_CACHE, task_run_name=task_run_name("report"))

#: The stages as this flow's tasks, by their kizuna.stages names (what run_night calls).
TASKS = SimpleNamespace(ingest=ingest, erase=erase, load_events=load_events, build_marts=build_marts,
                        predict_customers=predict_customers, gate_marts=gate_marts,
                        publish_warehouse=publish_warehouse, send_campaigns=send_campaigns, write_report=write_report)


@flow(name="kizuna-nightly", flow_run_name=flow_run_name)
def nightly(night: date | None = None, as_of: date | None = None) -> stages.NightlyOutcome:
    """Process the export of `night` (default: the newest one) and every earlier one not yet loaded.

    `as_of` is the day the marts are measured against (default: the send day, the day after the
    night); when it is another day the run plans and sends nothing (see `NightlyOutcome.sends`).
    One run at a time (`kizuna.runlock`): a second run stops at once, naming the first."""
    # The body is kizuna.night.run_night, shared with a run without Prefect (`kizuna run` with no Prefect API).
    return run_night(TASKS, night, as_of)


if __name__ == "__main__":
    nightly()

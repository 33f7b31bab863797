"""A real small warehouse for the page tests: demo exports, ingest, full dbt build, mart gate (which writes
the quality page), and a campaign result with a sent, a skipped, a channel problem and messages to look at."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

from campaigns.engine import CampaignResult
from kizuna import stages
from kizuna.config import Settings
from kizuna.demo_shop import generate_shop


def build_small_shop(folder: Path, customers: int, seed: int, end: date) -> tuple[Settings, stages.NightlyOutcome]:
    settings = Settings(data_dir=folder / "data")
    generate_shop(settings.exports_dir, customers=customers, seed=seed, end_date=end, nights=1)
    night = stages.resolve_night(settings, None)
    outcome = stages.NightlyOutcome(night=night)
    outcome.loads = stages.ingest(settings, night)
    outcome.build = stages.build_marts(settings, outcome.run_date)
    outcome.mart_gate = stages.gate_marts(settings)
    outcome.campaigns = CampaignResult(
        run_date=outcome.run_date,
        delivered=Counter({("f2_followup", "day7", "email", "sent"): 12, ("f2_followup", "day7", "line", "skipped"): 3}),
        channel_problems={"dm": "the dm-list folder cannot be written"},
        attention=Counter({("email", "unknown"): 7, ("line", "failed, will retry"): 2}))
    return settings, outcome

"""Data-quality gates: the raw-data gate on the night's batch and the mart gate before sends.

The checks live in `checks.yaml` beside this package (overrides: setting
`quality_config`, env `KIZUNA_QUALITY_CONFIG`); `gate.py` runs them (Great
Expectations on pandas frames of the batch, DuckDB SQL for cross-table checks);
`page.py` writes the HTML report of a night's gates.

A gate never raises on bad data or a broken check: a check that cannot run is reported
as "could not run: <why>" and counts as a failure of its severity. Example values of
personal columns (setting `personal_columns`) are masked by `kizuna.masking` when the
gate builds its result, so its summary, log lines, page and JSON never carry them.
"""

from kizuna.quality.config import DEFAULT_CHECKS, QualityConfig, load_config, merge_overrides
from kizuna.quality.gate import Check, CheckOutcome, GateResult, Severity, check_marts, check_raw_night
from kizuna.quality.page import write_quality_page

__all__ = [
    "DEFAULT_CHECKS", "QualityConfig", "load_config", "merge_overrides", "Check", "CheckOutcome", "GateResult",
    "Severity", "check_marts", "check_raw_night", "write_quality_page",
]

"""Data-quality gates: the raw-data gate on the night's batch and the mart gate before sends.

The checks live in `checks.yaml` beside this package (overrides: setting
`quality_config`, env `KIZUNA_QUALITY_CONFIG`); `gate.py` runs them (Great
Expectations on pandas frames of the batch, DuckDB SQL for cross-table checks);
`page.py` writes the HTML report of a night's gates.
"""

from kizuna.quality.config import DEFAULT_CHECKS, QualityConfig, load_config, merge_overrides
from kizuna.quality.gate import Check, CheckOutcome, GateResult, Severity, check_marts, check_raw_night
from kizuna.quality.page import write_quality_page

__all__ = [
    "DEFAULT_CHECKS", "QualityConfig", "load_config", "merge_overrides", "Check", "CheckOutcome", "GateResult",
    "Severity", "check_marts", "check_raw_night", "write_quality_page",
]

"""Environment defaults for the embedded tools, set before Prefect, dbt or GE are imported.

They keep everything inside the work tree and stop every tool from calling out
(telemetry, version checks). Only defaults: a value already set wins, so a data
engineer pointing at a real Prefect server (`PREFECT_API_URL`) keeps it.
"""

from __future__ import annotations

import os
from pathlib import Path

from kizuna.config import PROJECT_ROOT


def configure_environment(home: Path | None = None) -> None:
    root = Path(os.environ.get("KIZUNA_HOME") or home or PROJECT_ROOT)
    defaults = {
        "PREFECT_HOME": str(root / ".prefect"),
        # The temporary local server takes 18-30 s to start on a fresh home here.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_VERSION_CHECK": "false",
        "GX_ANALYTICS_ENABLED": "false",
        # The stages log to `kizuna`; this puts those lines in the flow run's log when kizuna is
        # imported before Prefect (the CLI). Under a worker Prefect is set up first:
        # kizuna/prefect_run.py NightWatch attaches the handler itself.
        "PREFECT_LOGGING_EXTRA_LOGGERS": "kizuna",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)

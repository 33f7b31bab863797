"""Child process of the delivery fault tests: one campaign run on a fake warehouse, killed from outside.

    python tests/delivery_child.py <data_dir> <run_date>

Channels come from the registry as the environment configures them (`KIZUNA_*`, e.g. SendGrid at
a loopback URL). `KIZUNA_TEST_FSIZE_LIMIT=N` caps the size of any file this process writes (like a
disk that fills up: a write past N bytes fails with EFBIG).
"""

from __future__ import annotations

import resource
import signal
import sys
from datetime import date
from pathlib import Path
import os

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402

from campaigns.engine import run_campaigns  # noqa: E402
from campaigns.schema import load_scenarios  # noqa: E402
from connectors.channels.registry import factory  # noqa: E402
from kizuna.config import Settings  # noqa: E402


def main() -> None:
    data_dir, run_date = Path(sys.argv[1]), date.fromisoformat(sys.argv[2])
    if limit := os.environ.get("KIZUNA_TEST_FSIZE_LIMIT"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), resource.RLIM_INFINITY))
    settings = Settings(home=data_dir.parent, data_dir=data_dir)
    scenarios = [s.model_copy(update={"holdout_percent": 0}) for s in load_scenarios() if s.id == "f2_standard"]
    con = duckdb.connect(str(settings.warehouse))
    result = run_campaigns(con, settings, scenarios, run_date, factory(settings))
    con.close()
    print(dict(result.delivered), dict(result.channel_problems))


if __name__ == "__main__":
    main()

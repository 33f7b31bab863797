"""Child process of the crash tests: one campaign run against a fake warehouse with a test channel.

    python tests/campaign_crash_child.py <data_dir> <run_date> <plain|idempotent|outbox> <records.jsonl>

Crash switches (environment): KIZUNA_TEST_CRASH_AFTER_MESSAGES=N (SIGKILL right after the N-th
delivery), KIZUNA_TEST_CRASH_AT_CALL=N (SIGKILL on entering the N-th send_batch call),
KIZUNA_TEST_CRASH_AT_FACTORY=1 (SIGKILL when the first channel is asked for: planning is done,
nothing is sending yet).
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb  # noqa: E402

from campaign_fakes import CrashingOutbox, IdempotentRecordingChannel, RecordingChannel  # noqa: E402
from campaigns.engine import run_campaigns  # noqa: E402
from campaigns.schema import load_scenarios  # noqa: E402
from kizuna.config import Settings  # noqa: E402


def main() -> None:
    data_dir, run_date, kind, records = Path(sys.argv[1]), date.fromisoformat(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    settings = Settings(home=data_dir.parent, data_dir=data_dir)
    scenarios = [s.model_copy(update={"holdout_percent": 0}) for s in load_scenarios()]

    def channel_for(name: str):
        if os.environ.get("KIZUNA_TEST_CRASH_AT_FACTORY"):
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "outbox":
            return CrashingOutbox(settings.outbox_dir, name, settings.sender_name, settings.sender_email)
        cls = IdempotentRecordingChannel if kind == "idempotent" else RecordingChannel
        return cls(name, records)

    con = duckdb.connect(str(settings.warehouse))
    result = run_campaigns(con, settings, scenarios, run_date, channel_for)
    con.close()
    print(dict(result.delivered))


if __name__ == "__main__":
    main()

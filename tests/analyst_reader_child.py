"""Child process of tests/test_analysts.py: an analyst's session on the published warehouse.

    python tests/analyst_reader_child.py <published.duckdb> <stop-file> <answers.jsonl>

Holds one read-only connection open for its whole life (a BI tool left connected) and, in a
loop until the stop file appears, asks two questions: through that held connection, and through
a fresh connection each time (a notebook re-running its cell). Each answer is one JSON line in
the answers file: which connection, the newest night loaded and the row counts of two marts. Started
before a nightly run and stopped after it, its lines show whether a reader ever saw a mix of two
nights (or half-built marts), and its presence shows whether a reader blocks the run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import duckdb

QUESTION = """
    select
        (select cast(max(night) as varchar) from raw._load_log) as night,
        (select count(*) from marts.dim_customers) as customers,
        (select count(*) from marts.fct_orders) as orders,
        (select count(*) from marts.ltv_by_media) as ltv_rows
"""


def ask(con: duckdb.DuckDBPyConnection) -> list:
    return list(con.execute(QUESTION).fetchone())


def main() -> None:
    published, stop, answers = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    held = duckdb.connect(str(published), read_only=True)
    out = answers.open("w", buffering=1)
    out.write(json.dumps({"ready": True}) + "\n")
    while not stop.exists():
        out.write(json.dumps({"held": ask(held)}) + "\n")
        # A fresh connection: a new DuckDB attaching the file. (`duckdb.connect(path)` again would hand back the
        # database this process already holds open, the old night, until every connection to it is closed.)
        fresh = duckdb.connect()
        fresh.execute(f"attach '{published}' as w (read_only)")
        fresh.execute("use w")
        out.write(json.dumps({"fresh": ask(fresh)}) + "\n")
        fresh.close()
        time.sleep(0.2)  # a person re-running a query, not a busy loop taking the run's CPU
    held.close()
    out.close()


if __name__ == "__main__":
    main()

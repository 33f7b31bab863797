"""Opening the DuckDB warehouse. One process writes it at a time (DuckDB's file lock)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import duckdb

from kizuna.errors import KizunaError

log = logging.getLogger("kizuna")


def connect(path: Path, read_only: bool = False, wait_seconds: float = 0.0) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file, creating its folder; say plainly when another process holds it.

    DuckDB lets one process hold a file open for writing, and readers only when nobody writes.
    A notebook or BI client left open on the warehouse between two stages of a nightly run
    would make the next stage fail at once; with `wait_seconds` the stage waits (polling)
    for that long for the other process to let go, then stops with a message naming the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    said = False
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                raise KizunaError(
                    f"The warehouse {path} is in use by another process (DuckDB allows one writer)"
                    + (f" and stayed in use for {wait_seconds:.0f} s" if wait_seconds else "")
                    + ". Wait for the running flow to finish, or close the DuckDB session that has it open."
                ) from None
            if not said:
                log.warning("the warehouse %s is in use by another process; waiting up to %.0f s for it",
                            path, wait_seconds)
                said = True
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
    # No progress bar: it floods logs and Prefect's console; each stage logs its own summary.
    con.execute("set enable_progress_bar = false")
    return con


def wait_until_free(path: Path, wait_seconds: float) -> None:
    """Return once the warehouse can be opened for writing (for a tool, such as dbt, that opens it itself)."""
    if path.exists():
        connect(path, wait_seconds=wait_seconds).close()

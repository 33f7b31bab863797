"""Opening the DuckDB warehouse. One process writes it at a time (DuckDB's file lock)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from kizuna.errors import KizunaError


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file, creating its folder; say plainly when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise KizunaError(
                f"The warehouse {path} is in use by another process (DuckDB allows one writer). "
                "Wait for the running flow to finish, or close the DuckDB session that has it open."
            ) from exc
        raise
    # No progress bar: it floods logs and Prefect's console; each stage logs its own summary.
    con.execute("set enable_progress_bar = false")
    return con

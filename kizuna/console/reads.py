"""What the console reads, without ever blocking the night.

- The marts: the published warehouse copy (KIZUNA_PUBLISHED_WAREHOUSE, kizuna/warehouse.py), opened
  read-only per request. It is replaced by an atomic rename, so a reader never holds up the run.
- The ledger: the nightly run writes it, and DuckDB lets no writer in while another process reads.
  So the console never reads the ledger file itself for longer than a copy: when the file is free it
  is opened read-only for a moment and copied whole into the console's own file (at most once every
  `refresh_seconds`); every page reads that copy. When the night holds the ledger, the last copy is
  shown with a note saying so and how old it is.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import duckdb

from campaigns import ledger
from kizuna.config import Settings


@dataclass(frozen=True)
class LedgerState:
    path: Path | None  # the copy to read; None: no ledger yet
    as_of: datetime | None  # when the copy was taken (UTC)
    busy: bool  # the nightly run holds the ledger: the copy is older than the file


class LedgerCopy:
    """A private copy of the send ledger, refreshed when the ledger is free (see the module docstring)."""

    def __init__(self, settings: Settings, refresh_seconds: float = 30.0) -> None:
        self.source = Path(settings.ledger)  # type: ignore[arg-type]
        self.copy = Path(settings.console_store).with_name("console-ledger-copy.duckdb")  # type: ignore[arg-type]
        self.refresh_seconds = refresh_seconds
        self.lock = threading.Lock()
        self.taken: float | None = None
        self.source_mtime: float | None = None
        self.busy = False

    def state(self) -> LedgerState:
        with self.lock:
            if not self.source.exists():
                return LedgerState(None, None, False)
            fresh = (self.taken is not None and self.copy.exists() and time.time() - self.taken < self.refresh_seconds
                     and self.source_mtime == self._mtime())
            if not fresh:
                self._refresh()
            as_of = datetime.fromtimestamp(self.taken, timezone.utc) if self.taken else None
            return LedgerState(self.copy if self.copy.exists() else None, as_of, self.busy)

    def _mtime(self) -> float:
        wal = self.source.with_name(self.source.name + ".wal")
        return max(self.source.stat().st_mtime, wal.stat().st_mtime if wal.exists() else 0.0)

    def _refresh(self) -> None:
        partial = self.copy.with_name(self.copy.name + ".part")
        partial.unlink(missing_ok=True)
        self.copy.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(self.source), read_only=True)
        except duckdb.IOException as exc:  # the nightly run writes it: keep the last copy
            if "lock" not in str(exc).lower():
                raise
            self.busy = True
            return
        try:
            mtime = self._mtime()
            # Consistent by construction: no writer can hold the file while this read-only connection is open.
            # A leftover write-ahead log (a writer that died) is copied through DuckDB, which replays it.
            if self.source.with_name(self.source.name + ".wal").exists():
                con.execute(f"attach '{partial.as_posix()}' as console_copy")
                con.execute(f"copy from database {con.execute('select current_database()').fetchone()[0]} "
                            "to console_copy")
                con.execute("detach console_copy")
            else:
                shutil.copyfile(self.source, partial)
        finally:
            con.close()
        os.replace(partial, self.copy)
        self.taken, self.source_mtime, self.busy = time.time(), mtime, False

    @contextmanager
    def open(self) -> Iterator[tuple[duckdb.DuckDBPyConnection | None, LedgerState]]:
        """(a connection with the ledger copy attached as `ledger`, or None when there is no ledger; its state)."""
        state = self.state()
        if state.path is None:
            yield None, state
            return
        con = duckdb.connect(":memory:")
        try:
            ledger.attach(con, state.path, read_only=True)
            yield con, state
        finally:
            con.close()


@contextmanager
def published(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """The published warehouse, read-only; None before the first night was published."""
    path = Path(settings.published_warehouse)  # type: ignore[arg-type]
    if not path.exists():
        yield None
        return
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("set enable_progress_bar = false")
        yield con
    finally:
        con.close()


def mart_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'marts' "
                                      "union select view_name from duckdb_views() where schema_name = 'marts'"
                                      ).fetchall()}

"""Opening the DuckDB warehouse. One process writes it at a time (DuckDB's file lock)."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import time
from dataclasses import dataclass
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


# --- Analysts: the published warehouse (issue 18 item 5) ---------------------------------
#
# The loader, dbt and the campaigns write the working file (`Settings.warehouse`). Readers (a BI
# tool, a notebook, the DuckDB CLI) open the published file (`Settings.published_warehouse`)
# instead: a byte copy of the working file made after the night's marts passed their gate, put
# in place with one `os.replace`. Nobody ever writes the published file where it lies, so a
# reader never holds a lock the run needs, and a reader sees one whole night: an open
# connection keeps reading the file it opened (on Linux the replaced inode lives on while it is
# open), a new connection gets the newest night.


@dataclass(frozen=True)
class Published:
    """One publication of the warehouse: where, how big, how long the copy took."""

    path: Path
    size_bytes: int
    seconds: float

    def summary(self) -> str:
        return (f"published the warehouse for analysts: {self.path} "
                f"({self.size_bytes / 1e6:,.1f} MB in {self.seconds:.1f} s)")


def publish(working: Path, published: Path, wait_seconds: float = 0.0) -> Published:
    """Copy the working warehouse to `published` atomically; return what was published.

    The working file is held open for writing (DuckDB's exclusive lock: no other process can
    change it during the copy) and checkpointed first, so the file alone holds every change and
    no write-ahead log is left beside it. The copy goes to a temporary file in the same folder,
    is flushed to disk and made read-only (`0444`: a BI tool opening it for writing gets an error
    instead of changes that the next night would silently drop), then renamed over the published
    file. On any failure the temporary file is removed and the previous published file stays.
    """
    if not working.exists():
        raise KizunaError(f"No warehouse at {working} to publish: run `kizuna run` first.")
    published.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    temporary = published.with_name(f".{published.name}.{os.getpid()}.tmp")
    con = connect(working, wait_seconds=wait_seconds)
    try:
        con.execute("checkpoint")
        _copy_whole(working, temporary)
        os.replace(temporary, published)
        _sync_folder(published.parent)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise KizunaError(
            f"Could not publish the warehouse {working} to {published} ({exc.strerror or exc}); analysts keep "
            "the previous night. Free disk space (the copy needs as much as the warehouse) or fix the folder's "
            "permissions (KIZUNA_PUBLISHED_WAREHOUSE)."
        ) from None
    finally:
        con.close()
    stale_log = published.with_name(published.name + ".wal")
    if stale_log.exists():  # left by someone who wrote to an earlier published file: it is not this file's
        stale_log.unlink()
        log.warning("removed %s: someone opened the published warehouse for writing; open it read-only", stale_log)
    return Published(published, published.stat().st_size, time.monotonic() - started)


def _copy_whole(source: Path, target: Path) -> None:
    """`source` to a new `target`, on disk before this returns, read-only."""
    wal = source.with_name(source.name + ".wal")
    if wal.exists() and wal.stat().st_size:  # a checkpoint always empties it; refuse rather than copy half
        raise OSError(0, f"{wal} is not empty after a checkpoint")
    shutil.copyfile(source, target)
    with open(target, "rb+") as handle:
        os.fsync(handle.fileno())
    target.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (a crash right after it keeps the new file, not the old)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

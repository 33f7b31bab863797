"""One nightly run at a time: a lock file taken before anything is loaded.

Two runs at once would race for DuckDB's single-writer lock mid-stage (one of them
failing half-way, whichever came second to that stage) and, worse, could plan the same
night twice. The lock is an exclusive `flock` on `<data_dir>/run.lock`, taken without
waiting: a second run stops at once with one line naming the holder (pid, start time,
command). The kernel releases the lock when its process dies, however it dies, so a
killed run never leaves a stale lock behind.

The file also records the temporary Prefect server a run started (when no Prefect server
is configured, Prefect starts one as a child process, which outlives a run killed with
SIGKILL); the next run stops such an orphan before it starts.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from kizuna.errors import KizunaError

log = logging.getLogger("kizuna")

_held: dict[Path, int] = {}  # lock path -> depth, for this process (the CLI and the flow both take it)
_guard = threading.Lock()


class RunInProgress(KizunaError):
    """Another nightly run holds the lock."""


def lock_path(data_dir: Path) -> Path:
    return Path(data_dir) / "run.lock"


def _describe(info: dict) -> str:
    return (f"pid {info.get('pid', '?')}, started {info.get('started', '?')}"
            + (f", `{info['command']}`" if info.get("command") else ""))


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


@contextmanager
def run_lock(data_dir: Path) -> Iterator[None]:
    """Hold the run lock for the duration of the block (re-entrant within one process)."""
    path = lock_path(data_dir)
    with _guard:
        if path in _held:
            _held[path] += 1
            fd = None
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunInProgress(f"Another kizuna run is in progress ({_describe(_read(path))}); "
                                    "this one did nothing. Wait for it to finish.") from None
            _stop_orphaned_server(_read(path))
            info = {"pid": os.getpid(), "started": datetime.now().astimezone().isoformat(timespec="seconds"),
                    "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200]}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            _held[path] = 1
    try:
        yield
    finally:
        with _guard:
            _held[path] -= 1
            if _held[path] == 0:
                del _held[path]
                if fd is not None:
                    os.close(fd)  # releases the flock


def record_prefect_server(data_dir: Path) -> None:
    """Note in the lock file the temporary Prefect server this process started, if any (see module doc)."""
    path = lock_path(data_dir)
    if path not in _held or "prefect.server.api.server" not in sys.modules:  # no temporary server without it
        return
    try:
        from prefect.server.api.server import SubprocessASGIServer
    except ImportError:  # pragma: no cover
        return
    pids = [s.server_process.pid for s in SubprocessASGIServer._instances.values() if s.server_process]
    if pids:
        info = _read(path)
        info["prefect_server_pids"] = pids
        path.write_text(json.dumps(info), encoding="utf-8")


def _stop_orphaned_server(info: dict) -> None:
    """Stop the temporary Prefect server of an earlier run that died (only if it still is that server)."""
    for pid in info.get("prefect_server_pids") or []:
        try:
            cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError):
            continue  # gone already
        if b"prefect.server.api.server:create_app" in cmdline:
            log.warning("stopping the temporary Prefect server (pid %s) left by a run that died", pid)
            try:
                os.kill(int(pid), signal.SIGTERM)
            except OSError:
                pass

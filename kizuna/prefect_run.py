"""The nightly flow's run under Prefect: kizuna's log lines in the flow run, names that carry the
night, and what happens when a night stops (one message, the notification, the artifacts).

Why not only PREFECT_LOGGING_EXTRA_LOGGERS=kizuna (set in kizuna.runtime)? Prefect reads it
when it configures logging, at its own import. A process worker starts each flow run as
`python -m prefect.engine`, which imports Prefect before it loads flows/nightly.py, so the
setting made by `import kizuna` comes too late and the run's log showed none of kizuna's lines.
And records logged from the threads a stage starts carry no run context, which Prefect's API
handler needs. So the flow binds a handler to its own run (`NightWatch`), however it was started:
the `kizuna` logger's records at INFO and above go to that flow run (the task run's, when logged
inside one), for as long as the flow runs, and to the log file `<data_dir>/logs/kizuna.log`.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from datetime import date
from pathlib import Path
from typing import Callable

from kizuna.config import Settings
from kizuna.stop import stop_message

log = logging.getLogger("kizuna")


def _api_handler_class():
    from prefect.exceptions import MissingContextError
    from prefect.logging.handlers import APILogHandler

    class RunLogHandler(APILogHandler):
        """Prefect's API log handler bound to one flow run: a record logged where no run context is
        (a stage's worker thread) still reaches that run instead of being dropped with a warning."""

        def __init__(self, flow_run_id) -> None:
            super().__init__(logging.INFO)
            self.flow_run_id = flow_run_id

        def prepare(self, record: logging.LogRecord):
            if not getattr(record, "flow_run_id", None):
                from prefect.context import get_run_context

                try:
                    get_run_context()
                except MissingContextError:
                    record.flow_run_id = self.flow_run_id
            return super().prepare(record)

    return RunLogHandler


def flow_run_name() -> str:
    """The flow run's name: the night it processes (`night-2026-11-21`, `...-as-of-2026-12-01`)."""
    from prefect.runtime import flow_run

    from kizuna import stages
    from kizuna.config import get_settings

    params = flow_run.parameters or {}
    night, as_of = params.get("night"), params.get("as_of")
    if night is None:
        try:
            night = stages.resolve_night(get_settings(), None)
        except Exception:  # noqa: BLE001 - the run itself will say what is wrong; the name must not fail
            night = "newest"
    return f"night-{night}" + (f"-as-of-{as_of}" if as_of else "")


def task_run_name(label: str) -> Callable[[], str]:
    """A task run name carrying the night: `<label> · night-2026-11-21`."""

    def name() -> str:
        from prefect.runtime import flow_run

        return f"{label} · {flow_run.name or 'kizuna'}"

    return name


def _file_handler_for(path: Path) -> logging.Handler | None:
    for handler in logging.getLogger().handlers + log.handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == path:
            return handler
    return None


class NightWatch:
    """`with NightWatch(settings) as watch:` around the flow's body.

    While it is open, kizuna's log records reach the flow run and the log file. When the body fails,
    the night ends in one stop message (logged to the run and the file; the trace to the file only),
    the notification (KIZUNA_NOTIFY_URLS) and the stop artifacts; then the error goes on to Prefect,
    which marks the run failed. `done(outcome)` publishes a finished night's artifacts (and summary)."""

    def __init__(self, settings: Settings) -> None:
        from kizuna.cli import LOG_FILE

        assert settings.data_dir is not None
        self.settings = settings
        self.log_file = settings.data_dir / LOG_FILE
        self.night: date | None = None
        self.started = time.perf_counter()
        self._undo: list[Callable[[], None]] = []
        self._file_handler: logging.Handler | None = None

    # -- entering: the log's two destinations -------------------------------------------------------

    def __enter__(self) -> "NightWatch":
        self._log_to_run()
        self._log_to_file()
        return self

    def _log_to_run(self) -> None:
        if not _under_prefect():  # a night run without Prefect (kizuna.night.run_directly): no run to log to
            return
        from prefect.context import FlowRunContext
        from prefect.logging.handlers import APILogHandler

        context = FlowRunContext.get()
        if context is None or context.flow_run is None:
            return
        # PREFECT_LOGGING_EXTRA_LOGGERS may have put Prefect's own handler here (when kizuna was imported
        # before Prefect, as from the command line): ours replaces it for the run, so no line is sent twice.
        theirs = [h for h in log.handlers if isinstance(h, APILogHandler)]
        for handler in theirs:
            log.removeHandler(handler)
        ours = _api_handler_class()(context.flow_run.id)
        log.addHandler(ours)
        level = log.level
        if log.getEffectiveLevel() > logging.INFO:
            log.setLevel(logging.INFO)

        def undo() -> None:
            try:
                ours.flush()  # the run's lines are in the API before the run is marked finished
            except Exception:  # noqa: BLE001 - a log flush must never change the night's outcome
                pass
            log.removeHandler(ours)
            for handler in theirs:
                log.addHandler(handler)
            log.setLevel(level)

        self._undo.append(undo)

    def _log_to_file(self) -> None:
        """Under a worker (no command line), the log file the command line would write; from the command
        line it is there already."""
        from kizuna.cli import LOG_FILE_BACKUPS, LOG_FILE_BYTES, _MaskingFormatter

        self._file_handler: logging.Handler | None = None
        if _file_handler_for(self.log_file) is not None:
            return
        try:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(self.log_file, maxBytes=LOG_FILE_BYTES,
                                                           backupCount=LOG_FILE_BACKUPS, encoding="utf-8")
        except OSError as exc:
            log.warning("cannot write the log file %s: %s", self.log_file, exc.strerror or exc)
            self.log_file = None
            return
        handler.setFormatter(_MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        log.addHandler(handler)
        self._file_handler = handler
        level = log.level
        if log.getEffectiveLevel() > logging.INFO:
            log.setLevel(logging.INFO)

        def undo() -> None:
            log.removeHandler(handler)
            handler.close()
            self._file_handler = None
            log.setLevel(level)

        self._undo.append(undo)

    # -- leaving -------------------------------------------------------------------------------------

    def done(self, outcome) -> None:
        """A night that ran to the end (its report written): its artifacts, and the summary if asked for."""
        from kizuna import notify, prefect_artifacts

        if _under_prefect():
            prefect_artifacts.publish_night(outcome, self.settings, time.perf_counter() - self.started)
        if self.settings.notify_summary:
            notify.send(self.settings, notify.summary_notice(self.settings, outcome, _run_url()))

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc is not None and not isinstance(exc, (KeyboardInterrupt, SystemExit)):
                self._stopped(exc)
        finally:
            for undo in reversed(self._undo):
                undo()
            self._undo.clear()

    def _stopped(self, exc: BaseException) -> None:
        from kizuna import notify, prefect_artifacts

        try:
            message = stop_message(exc, self.log_file)
            if self._file_handler is not None:  # the full trace to the file only (the command line logs its own)
                self._file_handler.handle(log.makeRecord(
                    log.name, logging.ERROR, __file__, 0, "stopped: %s", (exc,),
                    (type(exc), exc, exc.__traceback__)))
            log.error("%s", message)  # the one message, in the flow run's log
            notify.send(self.settings, notify.stop_notice(self.settings, exc, self.night, self.log_file, _run_url()))
            if _under_prefect():
                prefect_artifacts.publish_stop(self.settings, exc, self.night, message, self.log_file)
        except Exception:  # noqa: BLE001 - never hide the night's own failure behind ours
            log.exception("could not report the stopped night")


def _under_prefect() -> bool:
    """Whether Prefect is loaded at all: a night run without it (kizuna.night.run_directly) has no flow run,
    and importing Prefect only to find that out costs 1-2 s."""
    return "prefect.context" in sys.modules


def _run_url() -> str | None:
    if not _under_prefect():
        return None
    try:
        from prefect.runtime import flow_run

        return flow_run.ui_url
    except Exception:  # noqa: BLE001
        return None

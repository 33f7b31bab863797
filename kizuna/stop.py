"""The one stop message of a failed night, shared by the command line and the Prefect flow.

A stage that fails ends the run with one message of at most `STOP_LINES` lines (what failed,
which file, check or model, what to change) and the log file's path; the full trace goes to
the log file only. The CLI prints it (`kizuna.cli._fail`), the flow logs it to the flow run
(what a worker shows in the Prefect UI) and the notifier sends its head (`kizuna.notify`).
"""

from __future__ import annotations

import traceback
from pathlib import Path

from kizuna.errors import KizunaError
from kizuna.i18n import gettext as _

#: The longest stop message printed, in lines (the log file has everything).
STOP_LINES = 13

#: Each function of `kizuna/stages.py` (or the flow) a night can stop in, as a person names it:
#: (Japanese, English). Unknown names are shown as they are.
STAGE_LABELS: dict[str, tuple[str, str]] = {
    "resolve_night": ("対象の夜の特定", "finding the night"),
    "ignored_exports": ("対象の夜の特定", "finding the night"),
    "check_sender_identity": ("送信者情報の確認", "sender identity check"),
    "ingest": ("取り込みと生データ検査", "ingest and raw-data gate"),
    "erase": ("個人情報の消去", "erasure"),
    "load_events": ("反応データの取り込み", "load events"),
    "build_marts": ("集計モデルの構築 (dbt)", "dbt build"),
    "gate_marts": ("集計データの検査", "mart gate"),
    "publish_warehouse": ("分析用データの公開", "publish for analysts"),
    "send_campaigns": ("キャンペーン配信", "campaign sends"),
    "write_report": ("レポート作成", "report"),
    "finish": ("配信の完了確認", "delivery"),
}


def shortened(text: str, log_file: Path | None) -> str:
    """`text` in at most STOP_LINES lines: its head and its tail (what failed, what to do) are kept."""
    lines = [line if len(line) <= 600 else line[:597] + "..." for line in text.strip().splitlines()]
    if len(lines) <= STOP_LINES:
        return "\n".join(lines)
    head, tail = STOP_LINES // 2, STOP_LINES - STOP_LINES // 2 - 1
    more = len(lines) - head - tail
    where = (_("  ... ({n} more lines in {path})").format(n=more, path=log_file) if log_file
             else _("  ... ({n} more lines in the log)").format(n=more))
    return "\n".join([*lines[:head], where, *lines[-tail:]])


def stage_of(exc: BaseException) -> str | None:
    """The function of kizuna/stages.py the error came from (the innermost one), if any."""
    stage = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).name == "stages.py" and Path(frame.filename).parent.name == "kizuna":
            stage = frame.name
    return stage


def stage_label(stage: str | None, locale: str = "ja") -> str:
    """The stage as a person names it: Japanese with the English in parentheses, or English (`en`)."""
    if stage is None:
        return "開始時 (at the start)" if locale != "en" else "at the start"
    ja, en = STAGE_LABELS.get(stage, (stage, stage))
    return en if locale == "en" else f"{ja} ({en})"


def unexpected(exc: BaseException) -> KizunaError:
    """A failure kizuna has no message for, as one: the stage it happened in and the error's first line."""
    stage = stage_of(exc)
    first = (str(exc).strip().splitlines() or [""])[0]
    return KizunaError(
        f"the nightly run failed{f' in stage {stage}' if stage else ''} with an unexpected error: "
        f"{type(exc).__name__}{': ' + first if first else ''}\n"
        + ("Nothing after that stage ran. " if stage else "")
        + "This is not a failure kizuna has a message for: the full trace is in the log file; run again once "
        "the cause is fixed, and report it if it is kizuna's.")


def as_kizuna_error(exc: BaseException) -> KizunaError:
    """`exc` itself when kizuna has a message for it, else `unexpected(exc)`."""
    return exc if isinstance(exc, KizunaError) else unexpected(exc)


def stop_message(exc: BaseException, log_file: Path | None) -> str:
    """The whole stop message as plain text: `Stopped: ...` and where the full log is (<= STOP_LINES + 1 lines)."""
    text = _("Stopped: ") + shortened(str(as_kizuna_error(exc)), log_file)
    return text + (f"\nFull log and trace: {log_file}" if log_file is not None else "")

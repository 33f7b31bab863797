"""A stopped night reaches a person: one short message through apprise (KIZUNA_NOTIFY_URLS).

apprise speaks to Slack, Microsoft Teams, Chatwork, e-mail, LINE Notify successors and any JSON
webhook from one URL each, so the team chooses where it hears about the night by setting URLs,
not code. The message is short and in the team's language (Japanese, the English in parentheses;
English only with KIZUNA_LOCALE=en): which night, which stage, what (the head of the stop message)
and where to look (the log file, the quality page or report, the Prefect run).

Nothing here may hide the night's own failure: every problem of the notifier is logged and
swallowed (`send` returns False), never raised.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from kizuna.config import Settings
from kizuna.stop import as_kizuna_error, shortened, stage_label, stage_of

log = logging.getLogger("kizuna.notify")

#: Lines of the stop message a notification carries (the log file and the pages have the rest).
NOTICE_LINES = 6
#: Where one URL ends and the next begins: a comma or blank before `scheme://` (a comma inside a
#: URL, e.g. `mailtos://...?to=a@x.jp,b@x.jp`, stays in its URL).
_URL_BREAK = re.compile(r"[\s,]+(?=[A-Za-z][A-Za-z0-9+.-]*://)")


@dataclass(frozen=True)
class Notice:
    """One message: a title line and a few lines of body."""

    title: str
    body: str
    failure: bool = True


def notify_urls(settings: Settings) -> list[str]:
    """The configured apprise URLs, in order (none: nobody is told)."""
    raw = settings.notify_urls.get_secret_value().strip().strip(",")
    return [u.strip(" ,") for u in _URL_BREAK.split(raw) if u.strip(" ,")] if raw else []


def _locale(settings: Settings) -> str:
    # KIZUNA_LOCALE belongs to the message catalogue (issue 18, item 1); until it exists, Japanese.
    return "en" if str(getattr(settings, "locale", "ja")).lower().startswith("en") else "ja"


def _label(settings: Settings, ja: str, en: str) -> str:
    return en if _locale(settings) == "en" else f"{ja} ({en})"


def link_to(settings: Settings, path: Path | None) -> str | None:
    """How a person opens `path` (a report, a quality page): `<KIZUNA_REPORT_BASE_URL>/<name>`, else a file URI.

    The base URL serves the reports folder: only files in it are linked through it."""
    if path is None:
        return None
    path = Path(path)
    base = settings.report_base_url.strip().rstrip("/")
    if base and settings.reports_dir is not None and path.parent == settings.reports_dir:
        return f"{base}/{path.name}"
    return path.resolve().as_uri()


def stop_notice(settings: Settings, exc: BaseException, night: date | None, log_file: Path | None,
                run_url: str | None = None) -> Notice:
    """The message of a night that stopped with `exc`."""
    en = _locale(settings) == "en"
    what = shortened(str(as_kizuna_error(exc)), log_file).splitlines()
    if len(what) > NOTICE_LINES:
        what = [*what[:NOTICE_LINES - 1], "  ..." if en else "  …(続きはログ / more in the log)"]
    where = [f"  {_label(settings, 'ログ', 'log')}: {log_file}"] if log_file else []
    page = settings.reports_dir / f"quality-{night.isoformat()}.html" if night and settings.reports_dir else None
    if page is not None and page.exists():
        where.append(f"  {_label(settings, '品質レポート', 'quality page')}: {link_to(settings, page)}")
    if run_url:
        where.append(f"  Prefect: {run_url}")
    night_text = night.isoformat() if night else "?"
    title = (f"kizuna: the night of {night_text} stopped" if en
             else f"kizuna: {night_text} の夜間処理が停止しました (the night of {night_text} stopped)")
    body = [f"{_label(settings, '段階', 'stage')}: {stage_label(stage_of(exc), _locale(settings))}",
            f"{_label(settings, '内容', 'what')}:", *("  " + line for line in what)]
    if where:
        body += [f"{_label(settings, '確認先', 'where to look')}:", *where]
    return Notice(title, "\n".join(body), failure=True)


def summary_notice(settings: Settings, outcome, run_url: str | None = None) -> Notice:
    """A short summary of a night that ran to the end (KIZUNA_NOTIFY_SUMMARY=true)."""
    en = _locale(settings) == "en"
    files = [f for n in outcome.loads for f in n.files]
    loaded = sum(f.rows_inserted + f.rows_updated for f in files)
    sent = outcome.campaigns.total("sent") if outcome.campaigns is not None else 0
    warnings = sum(len(g.warnings) for g in [*outcome.raw_gates, outcome.mart_gate] if g is not None)
    title = (f"kizuna: the night of {outcome.night} is done" if en
             else f"kizuna: {outcome.night} の夜間処理が完了しました (the night of {outcome.night} is done)")
    body = [f"{_label(settings, '取り込み', 'loaded')}: {loaded:,} {_label(settings, '行', 'rows')}",
            f"{_label(settings, '検査の警告', 'check warnings')}: {warnings:,}",
            f"{_label(settings, '送信', 'sent')}: {sent:,}"]
    if outcome.report_path is not None:
        body.append(f"{_label(settings, 'レポート', 'report')}: {link_to(settings, outcome.report_path)}")
    if run_url:
        body.append(f"Prefect: {run_url}")
    return Notice(title, "\n".join(body), failure=False)


def send(settings: Settings, notice: Notice) -> bool:
    """Send `notice` to every configured URL. True when all took it; never raises (a failure is logged)."""
    urls = notify_urls(settings)
    if not urls:
        return False
    try:
        import apprise

        targets = apprise.Apprise()
        for i, url in enumerate(urls, 1):
            if not targets.add(url):  # the URL itself is not logged: it may carry a token
                scheme = url.split("://", 1)[0] if "://" in url else "?"
                log.error("notification URL %d of KIZUNA_NOTIFY_URLS (%s://...) is not one apprise understands; "
                          "docs/operations.md lists the common ones", i, scheme)
        if not len(targets):
            return False
        kind = apprise.NotifyType.FAILURE if notice.failure else apprise.NotifyType.SUCCESS
        ok = bool(targets.notify(body=notice.body, title=notice.title, notify_type=kind,
                                 body_format=apprise.NotifyFormat.TEXT))
        if not ok:
            log.error("the notification could not be delivered to every KIZUNA_NOTIFY_URLS target (see the apprise "
                      "lines above in this log)")
        return ok and len(targets) == len(urls)
    except Exception:  # noqa: BLE001 - the notifier must never hide the night's own outcome
        log.exception("the notification could not be sent")
        return False

"""Japanese by default, English on request: one message catalogue for the report, the quality page and the CLI.

The catalogue tests extract every `_("...")` of the code and templates with Babel and check both
catalogues. The page tests build a real small warehouse (demo exports, ingest, dbt build, mart gate),
render the report, the quality page and the CLI summary in `ja` and in `en`, and read the visible
text of each (an HTML parser for the pages): in Japanese no text a marketer reads may be an English
source string or label, nor contain a known English word; codes, numbers, paths, check and model
names and ids stay as they are. In English the labels are the English words.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from babel.messages.pofile import read_po

from built_shop import build_small_shop
from kizuna import cli, i18n, stages
from kizuna.config import Settings, get_settings
from kizuna.quality.page import write_quality_page
from kizuna.report import write_nightly_report
from kizuna.warehouse import connect

END = date(2026, 11, 20)

#: English words a marketer must not meet on a Japanese page (whole words, outside codes and paths).
ENGLISH_WORDS = {
    "customers", "customer", "revenue", "segment", "cohort", "cohorts", "month", "months", "days", "within",
    "share", "passed", "checks", "check", "errors", "error", "warnings", "warning", "stage", "scenario", "step",
    "channel", "status", "messages", "message", "loaded", "skipped", "sent", "failed", "unknown", "loyal",
    "promising", "dormant", "attention", "prospect", "initial", "continuing", "numbers", "total", "medium",
    "horizon", "profit", "lifetime", "treated", "note", "night", "file", "read", "inserted", "updated",
    "quarantined", "stopped", "done", "models", "tests", "built", "report", "warehouse", "outbox", "quality",
    "generated", "eligible", "converted", "result", "expectation", "examples", "why", "pass", "rows", "new",
    "existing", "retention", "campaigns", "nothing", "unsubscribed", "delivered", "opened", "clicked", "e-mail",
    "email", "retry", "needs", "data", "gate", "gates", "marts", "raw", "spend", "orders", "purchases",
}


def _catalogue(locale: str):
    with i18n.catalogue_path(locale).open("rb") as f:
        return read_po(f, locale=locale, domain=i18n.DOMAIN)


def _placeholders(text: str) -> Counter:
    return Counter(re.findall(r"\{[a-z_]*\}|%\([a-z_]+\)s|%%", text))


def test_every_string_the_code_uses_is_translated() -> None:
    """Every `_("...")` in kizuna/ (Python and templates) and every label key has a Japanese translation with
    the same placeholders; every label key has an English word."""
    used = i18n.used_msgids()
    assert len(used) > 150, "Babel's extraction found too little: is the extraction broken?"
    ja, en = _catalogue("ja"), _catalogue("en")
    untranslated = [f"{m!r} ({', '.join(w)})" for m, w in used.items() if m not in ja or not ja[m].string]
    assert not untranslated, "missing from kizuna/locale/ja (run `python -m kizuna.i18n`, then translate):\n" + \
        "\n".join(untranslated)
    for message in ja:
        if message.id and message.string:
            assert _placeholders(message.id) == _placeholders(message.string), (message.id, message.string)
    labels = [f"{k}.{c}" for k, codes in i18n.LABEL_CODES.items() for c in codes]
    assert [k for k in labels if k not in en or not en[k].string] == []


def test_labels_are_words_in_both_languages_and_codes_when_unknown() -> None:
    assert i18n.label("segment", "needs_attention", "ja") == "要注意"
    assert i18n.label("segment", "needs_attention", "en") == "Needs attention"
    assert i18n.label("channel", "carrier_pigeon", "ja") == "carrier_pigeon"  # a shop's own channel: its code
    assert i18n.gettext("Data quality", "ja") == "データ品質"
    assert i18n.gettext("Data quality", "en") == "Data quality"


def test_the_locale_is_a_setting_and_japanese_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIZUNA_LOCALE", raising=False)
    assert Settings().locale == "ja"
    monkeypatch.setenv("KIZUNA_LOCALE", "en")
    assert Settings().locale == "en"
    monkeypatch.setenv("KIZUNA_LOCALE", "fr")
    with pytest.raises(ValueError, match="locale"):
        Settings()


def test_the_catalogue_is_read_from_the_po_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A translation is a file: a changed `.po` changes the words, with no build step and no code."""
    folder = tmp_path / "ja" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    po = i18n.catalogue_path("ja").read_text(encoding="utf-8")
    (folder / "kizuna.po").write_text(po.replace('msgstr "要注意"', 'msgstr "要フォロー"'), encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.translations.cache_clear()
    try:
        assert i18n.label("segment", "needs_attention", "ja") == "要フォロー"
    finally:
        monkeypatch.undo()
        i18n.translations.cache_clear()
    assert i18n.label("segment", "needs_attention", "ja") == "要注意"


def test_the_update_adds_new_msgids_and_keeps_translations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m kizuna.i18n`: a msgid the code uses but the catalogue lacks is added untranslated and listed."""
    import shutil

    shutil.copytree(i18n.LOCALE_DIR, tmp_path, dirs_exist_ok=True)
    po = tmp_path / "ja" / "LC_MESSAGES" / "kizuna.po"
    text = po.read_text(encoding="utf-8")
    dropped = '#: kizuna/templates/report.html.j2\nmsgid "Cohort retention"\nmsgstr "コホート別継続率"\n'
    assert dropped in text
    po.write_text(text.replace(dropped, ""), encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    try:
        missing = i18n.update_catalogues()
    finally:
        monkeypatch.undo()
        i18n.translations.cache_clear()
    assert missing == {"ja": ["Cohort retention"], "en": []}
    updated = po.read_text(encoding="utf-8")
    assert 'msgid "Cohort retention"\nmsgstr ""' in updated and 'msgstr "要注意"' in updated


# -- the rendered pages ------------------------------------------------------------------------------------------


class _VisibleText(HTMLParser):
    """Text nodes a reader sees (SVG labels and tooltips included), without style, script, `<code>` (commands,
    paths) and any element in another language than the page's (a check's own English text, declared so)."""

    SKIP = {"style", "script", "code"}
    VOID = {"meta", "br", "img", "input", "link", "hr", "rect", "line", "circle", "path"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []
        self.lang: str | None = None
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag in self.VOID:
            return
        lang = dict(attrs).get("lang")
        if tag == "html":
            self.lang = lang
        skipped = (self.stack and self.stack[-1]) or tag in self.SKIP or (lang is not None and lang != self.lang)
        self.stack.append(bool(skipped))

    def handle_startendtag(self, tag, attrs) -> None:
        pass

    def handle_endtag(self, tag) -> None:
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data) -> None:
        if data.strip() and not (self.stack and self.stack[-1]):
            self.texts.append(data.strip())


def visible_text(html: str) -> list[str]:
    parser = _VisibleText()
    parser.feed(html)
    return parser.texts


def english_in(texts: list[str]) -> list[str]:
    """Texts that are English a marketer reads: a catalogue source string or English label as a whole text,
    or a known English word outside codes (`f2_followup`), paths, file names and numbers."""
    ja, en = _catalogue("ja"), _catalogue("en")
    sources = {m.id.strip() for m in ja if m.id and m.string and m.string != m.id and "{" not in m.id
               and "%(" not in m.id}
    sources |= {m.string.strip() for m in en if m.id and m.string}
    sources = {s for s in sources if s and not s.isupper() and s not in ("LINE", "SMS")}
    found = []
    for text in texts:
        text = re.sub(r"`[^`]*`", "", text)  # a command to run (`kizuna sends unknown`) is not a label
        if text.rstrip(":") in sources:
            found.append(text)
            continue
        for token in text.split():
            if re.search(r"[_./@\d\\]|::", token):
                continue
            word = token.strip("()[]{},.:;!?·—–'\"`").lower()
            if word in ENGLISH_WORDS:
                found.append(f"{word!r} in {text!r}")
    return found


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    """A real small warehouse: demo exports, ingest, full dbt build, mart gate."""
    tmp = tmp_path_factory.mktemp("locale")
    settings, outcome = build_small_shop(tmp, customers=600, seed=3, end=END)
    return settings, outcome


def _render(shop, locale: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, str]:
    """The report, the quality page and the CLI summary of the same night, in `locale`."""
    settings, outcome = shop
    monkeypatch.setenv("KIZUNA_LOCALE", locale)
    monkeypatch.setenv("KIZUNA_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    settings = Settings(data_dir=settings.data_dir)
    assert settings.locale == locale
    quality = write_quality_page(settings.reports_dir, outcome.night, outcome.mart_gate, locale=locale)
    with connect(settings.warehouse) as con:
        outcome.report_path = write_nightly_report(con, settings, outcome)
    with cli.console.capture() as captured:
        cli._print_summary(outcome, settings, 12.3)
    get_settings.cache_clear()
    return (outcome.report_path.read_text(encoding="utf-8"), quality.read_text(encoding="utf-8"),
            captured.get())


def test_japanese_pages_have_no_english_labels(shop, monkeypatch: pytest.MonkeyPatch) -> None:
    report, quality, summary = _render(shop, "ja", monkeypatch)
    for name, texts in (("report", visible_text(report)), ("quality page", visible_text(quality)),
                        ("CLI summary", [line for line in summary.splitlines() if line.strip()])):
        assert len(texts) > 10, name
        found = english_in(texts)
        assert found == [], f"English in the Japanese {name}:\n" + "\n".join(found)
    assert '<html lang="ja">' in report
    assert 'lang="en"' not in quality, "a check of kizuna's own is shown in English on the Japanese quality page"
    # segments, stages, channels and statuses are words; the codes stay only in data attributes
    for word in ("要注意", "休眠", "メール", "結果不明", "失敗（再送予定）", "データ品質", "取込データ"):
        assert word in report, word
    assert "配信停止" in report and "配信停止" in summary
    assert "取込" in summary and "完了（12.3 秒）" in summary and "メール" in summary
    assert "合格" in quality


def test_media_are_shown_by_name(shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table showing a medium shows its name from the shop's media table; the code stays in data-media."""
    report, _, _ = _render(shop, "ja", monkeypatch)
    settings, _ = shop
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        names = dict(con.execute("select media_code, media_name from staging.stg_shop__media").fetchall())
        shown = {r[0] for r in con.execute("select distinct acquisition_media_code from marts.ltv_by_media").fetchall()}
    assert shown and names
    cells = dict(re.findall(r'<td data-media="([^"]*)">([^<]*)</td>', report))
    assert set(cells) >= shown
    for code in shown:
        assert cells[code] == (names.get(code) or code), code
    assert any(cells[c] != c for c in shown), "no medium was shown by name"


def test_english_on_request(shop, monkeypatch: pytest.MonkeyPatch) -> None:
    report, quality, summary = _render(shop, "en", monkeypatch)
    assert '<html lang="en">' in report and '<html lang="en">' in quality
    texts = visible_text(report)
    for word in ("Needs attention", "Data quality", "Dormant", "E-mail", "unknown", "Customers by stage"):
        assert any(word in t for t in texts), word
    ja = {m.string for m in _catalogue("ja") if m.id and m.string and "{" not in m.id and "%(" not in m.id
          and re.search(r"[^\x00-\x7f]", m.string)}
    shown = visible_text(report) + visible_text(quality)
    assert [t for t in shown if t.rstrip(":") in ja] == [], "Japanese labels on the English pages"
    assert "checks passed" in "".join(visible_text(quality)) and "expectation" in visible_text(quality)
    assert "Loaded" in summary and "Done in 12.3 s." in summary and "E-mail" in summary
    assert "要注意" not in report and "データ品質" not in report


def _every_check_failed(locale: str):
    """Every check of kizuna's checks.yaml (both gates) as a failed outcome with examples, resolved for a night
    whose opening date was taken from the data: the texts a stopped night shows."""
    from kizuna.quality import gate as quality_gate
    from kizuna.quality.config import load_config

    night = date(2026, 11, 20)
    config = load_config()
    opening = quality_gate.OpeningDate(date(2020, 4, 1), "taken from the data: the earliest orders.ordered_at, "
                                                          "night 2026-11-20")
    params = {**quality_gate._runtime_params(config, night), **quality_gate._opening_params(config, opening, night)}
    results = []
    for which, name in (("raw", "raw data"), ("marts", "marts")):
        checks = quality_gate._checks(config, which, params)
        outcomes = [quality_gate.CheckOutcome(replace(c, severity="error"), False, 3, ["x-1", "x-2"], 120)
                    for c in checks]
        results.append(quality_gate.GateResult(name, outcomes, {}, night=night))
    return results


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_every_check_reads_in_the_teams_language(locale: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """All of kizuna's own checks failing at once: the quality page, each check's line (console, log, stop
    message) and the stop message itself are in the page's language — no check is left in English on a
    Japanese page, and the English page says them in English words."""
    monkeypatch.setenv("KIZUNA_LOCALE", locale)
    get_settings.cache_clear()
    try:
        results = _every_check_failed(locale)
        assert sum(len(r.outcomes) for r in results) >= 70
        for result in results:
            page = write_quality_page(tmp_path, result.night, result, locale=locale)
            lines = [o.describe(locale=locale) for o in result.outcomes]
            with pytest.raises(Exception) as stopped:
                result.raise_on_error()
        html = page.read_text(encoding="utf-8")
        stop_lines = str(stopped.value).splitlines()
    finally:
        get_settings.cache_clear()
    shown = visible_text(html)
    if locale == "ja":
        assert 'lang="en"' not in html
        assert english_in(shown) == []
        assert english_in(lines) == [], "\n".join(english_in(lines))
        assert english_in(stop_lines) == []
        assert "店舗のどの出来事も開店日 2020-04-01（データから取得: 最も古い orders.ordered_at（夜 2026-11-20））" in html
        assert any("値が 0 以上" in t for t in shown)
    else:
        ja_text = re.compile(r"[\u3040-\u30fb\u4e00-\u9fff]")  # kana and kanji (not ー: an example of bad input)
        assert [t for t in shown + lines + stop_lines if ja_text.search(t)] == []
        assert any(t.startswith("values at least 0") for t in shown)
        assert "no event of the shop can be older than its opening date, 2020-04-01" in html
    # the codes stay: check names for searching, the expectation's class in a data attribute
    assert "orders.total_adds_up" in html and 'data-expectation="ExpectColumnValuesToBeBetween"' in html

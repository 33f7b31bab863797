"""The gate's report page: one self-contained HTML file per night, `<reports_dir>/quality-<night>.html`.

Each gate stores its result as JSON beside the page (`quality-<night>.json`, one entry
per gate) and re-renders the page from it, so the raw-data gate and the mart gate of
the same night end up on one page, failed checks first, every check listed.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from kizuna.i18n import current_locale, jinja_install
from kizuna.quality.gate import GateResult

#: The page's template, beside the report's (kizuna/templates/quality.html.j2); its words go through the
#: message catalogue (kizuna/i18n.py), in the language of KIZUNA_LOCALE.
_env = Environment(loader=FileSystemLoader(Path(__file__).parent.parent / "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True),
                   extensions=["jinja2.ext.i18n"])


def _code_spans(text: str) -> Markup:
    """Escape `text` and show its `backticked` parts (values, patterns, column names) as code."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


_env.filters["code_spans"] = _code_spans


def _check_text(locale: str):
    """A check's own text (expectation, why) in `locale`, from the texts the gate stored with its outcome
    (translated through the catalogue before the check's `$name`s were filled in; see Check.texts).

    Returns `{"text", "lang"}`: `lang` is "en" for a text left in English on a non-English page, so the
    page says which of its words are English (a shop's own checks are written in its own words)."""

    def check_text(outcome: dict, part: str) -> dict:
        english = outcome.get(part) or ""
        shown = (outcome.get("texts") or {}).get(locale, {}).get(part)
        if shown is not None:
            return {"text": shown, "lang": None}
        return {"text": english, "lang": "en" if english and locale != "en" else None}
    return check_text


def write_quality_page(reports_dir: Path, night: date, result: GateResult, sources: list[Path] | None = None,
                       locale: str | None = None) -> Path:
    """Record `result` for `night` and (re)write the night's page, in `locale` (default KIZUNA_LOCALE);
    returns the page's path."""
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    store = reports_dir / f"quality-{night.isoformat()}.json"
    gates = json.loads(store.read_text(encoding="utf-8")) if store.exists() else {}
    gates[result.gate] = result.to_dict()
    store.write_text(json.dumps(gates, ensure_ascii=False, indent=1), encoding="utf-8")
    shown = []
    for name in ("raw data", "marts"):
        if name in gates:
            g = dict(gates[name])
            for o in g["outcomes"]:
                o["rank"] = (0 if not o["success"] and o["severity"] == "error"
                             else 1 if not o["success"] else 2)
            g["errors"] = sum(1 for o in g["outcomes"] if not o["success"] and o["severity"] == "error")
            g["warnings"] = sum(1 for o in g["outcomes"] if not o["success"] and o["severity"] == "warning")
            g["passed"] = sum(1 for o in g["outcomes"] if o["success"])
            shown.append(g)
    locale = locale or current_locale()
    jinja_install(_env, locale)
    html = _env.get_template("quality.html.j2").render(
        night=night.isoformat(), gates=shown, generated_at=datetime.now().strftime("%Y-%m-%d %H:%M"),
        sources=[str(s) for s in (sources or [])], check_text=_check_text(locale))
    page = reports_dir / f"quality-{night.isoformat()}.html"
    page.write_text(html, encoding="utf-8")
    return page

"""One message catalogue for every page and line a person reads: gettext through Babel.

Source strings (msgids) are English and written in the code and templates as `_("...")`;
translations live in `kizuna/locale/<lang>/LC_MESSAGES/kizuna.po`. The `.po` files are read
at first use with Babel (`read_po`) and compiled in memory (`write_mo`), so a fresh clone,
an editable install and a wheel all work without a build step and a `.mo` can never be stale.

Codes a person reads as words (RFM segments, customer stages, channels, send statuses, data-
quality severities) are translated through keys, `<kind>.<code>` (`segment.needs_attention`
→ 要注意 / "Needs attention"): both catalogues carry them, so English readers get words, not
codes. `label("segment", "needs_attention")` returns the code itself for a code the catalogue
does not know (a shop's own channel, a new segment), never an empty string.

The language is the setting KIZUNA_LOCALE (`ja`, the default, or `en`). See docs/locale.md.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "kizuna"
LOCALES = ("ja", "en")
DEFAULT_LOCALE = "ja"

#: Kinds of labels translated through `<kind>.<code>` keys, with the codes kizuna itself produces
#: (the catalogue test checks that both catalogues have every one of them).
LABEL_CODES: dict[str, tuple[str, ...]] = {
    "segment": ("loyal", "promising", "new", "at_risk", "needs_attention", "dormant"),
    "stage": ("prospect", "initial", "continuing", "dormant"),
    "channel": ("email", "line", "sms", "dm"),
    "status": ("planned", "sending", "sent", "failed", "unknown", "skipped", "capped", "held_out",
               "failed, will retry", "failed, gave up", "delivered", "opened", "clicked", "converted",
               "held", "awaiting_approval"),  # the last two: the console's holds and approvals (issue 22)
    "severity": ("error", "warning"),
    "gate": ("raw data", "marts"),
    "horizon": ("3m", "6m", "12m", "lifetime"),
    "load": ("loaded", "skipped", "rejected", "scrubbed"),
    "lift": ("too few to tell", "not significant"),
}


def catalogue_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=None)
def translations(locale: str) -> NullTranslations:
    """The compiled catalogue of `locale` (read once per process); English source strings when it has none."""
    path = catalogue_path(locale)
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as f:
        catalog = read_po(f, locale=locale, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def current_locale() -> str:
    """KIZUNA_LOCALE of this process (through the settings)."""
    from kizuna.config import get_settings

    return get_settings().locale


def gettext(message: str, locale: str | None = None) -> str:
    """`message` (an English msgid) in `locale` (default: the setting); the msgid itself when untranslated."""
    return translations(locale or current_locale()).gettext(message)


_ = gettext


def N_(message: str) -> str:
    """Mark a msgid kept in data (a table of texts) for the extraction; translate it later with `gettext`."""
    return message


def label(kind: str, code: str | None, locale: str | None = None) -> str:
    """A code's word for people (`label("segment", "at_risk")` → 離反予備軍 / "At risk"); the code when unknown."""
    if code is None:
        return "–"
    key = f"{kind}.{code}"
    text = translations(locale or current_locale()).gettext(key)
    return code if text == key else text


def jinja_install(env, locale: str) -> None:
    """Give a Jinja environment (with `jinja2.ext.i18n`) this locale's `_()` and the `label` filter."""
    env.install_gettext_translations(translations(locale), newstyle=True)
    env.filters["label"] = lambda code, kind: label(kind, code, locale)
    env.globals["locale"] = locale


# -- the catalogue's upkeep: what the code asks for, and the catalogue file itself ----------------------------

#: Where `_("...")` calls are looked for (Babel's extractors: Python, and Jinja with its i18n extension).
EXTRACT_METHODS = [
    ("kizuna/**.py", "python"),
    ("campaigns/**.py", "python"),
    ("connectors/**.py", "python"),
    ("kizuna/templates/**.j2", "jinja2.ext:babel_extract"),
    ("kizuna/console/templates/**.j2", "jinja2.ext:babel_extract"),  # the marketers' console (issue 22)
]


def used_msgids() -> dict[str, list[str]]:
    """Every msgid the code and templates use (`_("...")`), and every label key: msgid → where it is used."""
    from babel.messages.extract import extract_from_dir

    root = Path(__file__).resolve().parent.parent
    found: dict[str, list[str]] = {}
    options = {"kizuna/templates/**.j2": {"extensions": "jinja2.ext.i18n"},
               "kizuna/console/templates/**.j2": {"extensions": "jinja2.ext.i18n"}}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            root, method_map=EXTRACT_METHODS, options_map=options):
        if isinstance(message, tuple):  # `_("...", locale)`: the msgid is the first argument
            message = message[0]
        if not isinstance(message, str) or not message:
            continue
        found.setdefault(message, []).append(f"{filename}:{lineno}")
    for kind, codes in LABEL_CODES.items():
        for code in codes:
            found.setdefault(f"{kind}.{code}", []).append("kizuna/i18n.py LABEL_CODES")
    for message, where in check_texts().items():
        found.setdefault(message, []).extend(where)
    return found


def check_texts() -> dict[str, list[str]]:
    """The texts of kizuna's own data-quality checks (kizuna/quality/checks.yaml): each check's `why`, `fix`
    and, for SQL checks, `expectation`, as written (with their `$name`s: the gate translates, then fills in)."""
    import yaml

    path = Path(__file__).parent / "quality" / "checks.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    found: dict[str, list[str]] = {}
    for gate in ("raw", "marts"):
        for check in config.get(gate) or []:
            parts = ("why", "fix") + (("expectation",) if check.get("sql") or check.get("builtin") else ())
            for part in parts:
                if check.get(part):
                    found.setdefault(str(check[part]), []).append(f"kizuna/quality/checks.yaml {check['name']}")
    return found


def update_catalogues() -> dict[str, list[str]]:
    """Add every used msgid missing from each catalogue (untranslated), drop the ones no longer used, keep every
    other translation; returns what
    each catalogue still lacks a translation for. `python -m kizuna.i18n` runs it (docs/locale.md)."""
    from babel.messages.pofile import write_po

    used = used_msgids()
    missing: dict[str, list[str]] = {}
    for locale in LOCALES:
        path = catalogue_path(locale)
        with path.open("rb") as f:
            catalog = read_po(f, locale=locale, domain=DOMAIN)
        for msgid, where in used.items():
            if msgid not in catalog:
                catalog.add(msgid, "", locations=[(w, None) for w in where[:3]])
        for message in list(catalog):  # a text the code no longer uses goes (git keeps its translation)
            if message.id and message.id not in used:
                catalog.delete(message.id)
        with path.open("wb") as f:
            write_po(f, catalog, width=120, omit_header=False, sort_output=False, include_lineno=False)
        # English needs a text only for the label keys: its source strings are English already.
        missing[locale] = [m for m in used if not catalog[m].string and (locale != "en" or m.split(".")[0]
                                                                          in LABEL_CODES and "." in m)]
    translations.cache_clear()
    return missing


if __name__ == "__main__":  # pragma: no cover
    for lang, lacking in update_catalogues().items():
        print(f"{catalogue_path(lang).relative_to(LOCALE_DIR.parent.parent)}: {len(lacking)} untranslated")
        for m in lacking:
            print(f"  {m}")

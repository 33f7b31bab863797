"""Rendering messages from templates, and the legal check every marketing e-mail must pass.

Japan's Act on Regulation of Transmission of Specified Electronic Mail requires the
sender's name, postal address, contact and a working unsubscribe route in every
marketing e-mail. The footer carrying them is added by the renderer, not left to
each template, and `check_legal_footer` refuses a message without them.

A message template `<name>` is a set of files in one folder: `<name>.subject.j2`,
`<name>.txt.j2` (the text part, and the body of LINE, SMS and printed pieces) and, for
e-mail, optionally `<name>.mjml.j2` (the HTML body in MJML). Every HTML e-mail is the
base layout `_layout.mjml.j2` (logo, body, legal footer) compiled by MRML (the Rust
MJML, no Node); without a `.mjml.j2` the layout sets the text's paragraphs. Links are
tagged with UTM parameters after rendering (campaigns/links.py). The variables a
template may use are defined once in campaigns/template_vars.py (docs/templates.md).
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import mrml
from jinja2 import (ChoiceLoader, Environment, FileSystemLoader, PrefixLoader, StrictUndefined, Template,
                    TemplateNotFound, TemplateSyntaxError, UndefinedError, select_autoescape)
from markupsafe import Markup, escape

from campaigns import unsubscribe as unsub
from campaigns.links import TAGGED_CHANNELS, tag_html, tag_text, utm_values
from campaigns.schema import TEMPLATE_DIR, Step, find_template, scenario_dir, template_dirs
from campaigns.template_vars import CUSTOMER_FIELDS, FILTER_FUNCTIONS
from kizuna.config import Settings
from kizuna.errors import KizunaError, ScenarioError

LAYOUT = "_layout.mjml.j2"
FOOTER = "_footer.txt.j2"
_URL_IN_TEXT = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


class TemplateError(KizunaError):
    """A template could not be rendered: one line naming the file, the line and the variable."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    unsubscribe_url: str


@dataclass(frozen=True)
class _Files:
    """One message template's compiled files (loaded once per renderer)."""
    subject: Template
    text: Template
    mjml: str | None  # the loader name of its MJML body, included by the layout


def _nl2br(value: Any) -> Markup:
    """Text with line breaks as <br>, URLs as links (escaped first: customer data is never markup)."""
    escaped = str(escape(value))
    linked = _URL_IN_TEXT.sub(lambda m: f'<a href="{m.group(0)}" style="color:inherit;word-break:break-all">'
                                        f'{m.group(0)}</a>', escaped)
    return Markup(linked.replace("\n", "<br>"))


def _finalize(value: Any) -> Any:
    """A missing value (None) prints as nothing, never as the word "None" in a customer's mail."""
    return "" if value is None else value


class Renderer:
    """Renders every step's messages. Compiled templates are cached for the renderer's life (one
    nightly run), so thousands of messages cost one compile per template, not one per message."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dirs = template_dirs(scenario_dir(settings))
        self.env = Environment(
            loader=ChoiceLoader([
                FileSystemLoader([str(d) for d in self.dirs]),  # partials: a shop's own first
                # a step's own files, from the one folder that holds them: "<folder index>|<file>"
                PrefixLoader({str(i): FileSystemLoader(str(d)) for i, d in enumerate(self.dirs)}, delimiter="|"),
            ]),
            autoescape=select_autoescape(enabled_extensions=("html.j2", "mjml.j2"), default_for_string=False),
            undefined=StrictUndefined,  # a misspelt field fails loudly instead of printing nothing
            keep_trailing_newline=True,
            finalize=_finalize,
            auto_reload=False,  # one run renders with the templates it started with; no stat() per message
        )
        self.env.filters.update(FILTER_FUNCTIONS)
        self.env.filters["nl2br"] = _nl2br
        self.sender = {
            "name": settings.sender_name,
            "address": settings.sender_address,
            "contact": settings.sender_contact,
            "email": settings.sender_email,
        }
        shop_url = settings.brand_shop_url.rstrip("/")
        self.brand = {
            "shop_name": settings.brand_shop_name, "shop_url": settings.brand_shop_url,
            "logo_url": settings.brand_logo_url, "product_image_url": settings.brand_product_image_url,
            "product_name": settings.brand_product_name, "primary_color": settings.brand_primary_color,
            "accent_color": settings.brand_accent_color,
        }
        self._product_url = settings.brand_product_url.replace("{shop_url}", shop_url)
        self._cart_url = settings.brand_cart_url.replace("{shop_url}", shop_url)
        self._files: dict[str, _Files] = {}
        self._compiled: dict[str, Template] = {}
        self._mjml_options = mrml.RenderOptions(fonts={})  # no web-font <link>: mail clients block them

    # ------------------------------------------------------------ templates

    def files(self, name: str) -> _Files:
        """The compiled files of template `name`, all from the first folder that has its .txt.j2."""
        if name not in self._files:
            folder = find_template(name, self.dirs)
            if folder is None:
                raise TemplateError(f"テンプレート {name} がありません (no template {name}.txt.j2 in "
                                    f"{', '.join(str(d) for d in self.dirs)})")
            prefix = f"{self.dirs.index(folder)}|"
            mjml = f"{prefix}{name}.mjml.j2" if (folder / f"{name}.mjml.j2").is_file() else None
            self._files[name] = _Files(
                subject=self._load(f"{prefix}{name}.subject.j2"),
                text=self._load(f"{prefix}{name}.txt.j2"),
                mjml=mjml,
            )
            if mjml:
                self._load(mjml)  # a syntax error is found now, named, not halfway through a send
        return self._files[name]

    def _load(self, name: str) -> Template:
        if name in self._compiled:
            return self._compiled[name]
        try:
            self._compiled[name] = self.env.get_template(name)
            return self._compiled[name]
        except TemplateSyntaxError as exc:
            raise template_error(exc) from None
        except TemplateNotFound as exc:
            raise TemplateError(f"テンプレート {exc.name} がありません (template not found: {exc.name})") from None

    def _run(self, template: Template, context: dict[str, Any], **extra: Any) -> str:
        try:
            return template.render(context, **extra)
        except TemplateError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure inside a template is reported at its line
            raise template_error(exc) from None

    # ------------------------------------------------------------ context

    def context(self, step: Step, customer: dict[str, Any], send_date: date, scenario_id: str | None,
                unsubscribe_url: str) -> dict[str, Any]:
        """What a template sees (campaigns/template_vars.py defines each name)."""
        offer = None
        if step.offer:
            offer = step.offer.model_dump()
            offer["expires_on"] = (send_date + timedelta(days=step.offer.expires_in_days)
                                   if step.offer.expires_in_days else None)
            if customer.get("coupon_code"):  # a code issued for this send wins over the step's fixed one
                offer["code"] = customer["coupon_code"]
                offer["expires_on"] = customer.get("coupon_expires_on") or offer["expires_on"]
            offer["headline"] = offer_headline(offer)
        customer_id = str(customer.get("customer_id") or "")
        return {
            "customer": {f: customer.get(f) for f in CUSTOMER_FIELDS},
            "offer": offer,
            "brand": self.brand,
            "sender": self.sender,
            "links": {"shop": self.settings.brand_shop_url, "product": self._product_url,
                      "cart": self._cart_url.replace("{customer_id}", quote(customer_id, safe=""))},
            "unsubscribe_url": unsubscribe_url,
            "step": {"id": step.id, "day": step.day, "channel": step.channel, "scenario_id": scenario_id},
            "send_date": send_date,
        }

    # ------------------------------------------------------------ rendering

    def render(self, step: Step, customer: dict[str, Any], send_id: str, send_date: date,
               scenario_id: str | None = None) -> Rendered:
        """One message. `customer` is the engine's row (customer fields, `scenario_id`, and when a coupon
        was issued for this send `coupon_code` / `coupon_expires_on`). A template problem raises
        TemplateError (one line: file, line, variable); a missing legal field, ScenarioError."""
        files = self.files(step.template)
        scenario_id = scenario_id or customer.get("scenario_id")
        customer_id = str(customer.get("customer_id") or "")  # for the per-recipient unsubscribe link below
        unsubscribe_url = unsub.unsubscribe_url(self.settings, send_id, customer_id, step.channel)
        context = self.context(step, customer, send_date, scenario_id, unsubscribe_url)
        subject = self._run(files.subject, context).strip()
        body = self._run(files.text, context).rstrip() + "\n"  # blank lines a template leaves at its end: one
        text = body + self._run(self._load(FOOTER), context)
        html = self._html(files, context, subject, body) if step.channel == "email" else ""
        if step.channel in TAGGED_CHANNELS:
            utm = utm_values(step.channel, scenario_id, step.id)

            def keep(url: str) -> bool:  # the unsubscribe link is signed and is no click-through
                return unsubscribe_url == url or (unsubscribe_url.startswith(url)  # (ends in punctuation)
                                                  and not unsubscribe_url[len(url):].strip(".,;:!?'\")"))

            text, html = tag_text(text, utm, keep), tag_html(html, utm, keep)
        rendered = Rendered(subject, text, html, unsubscribe_url)
        if step.channel == "email":
            check_legal_footer(rendered, self.sender, where=step.template)
        return rendered

    def _html(self, files: _Files, context: dict[str, Any], subject: str, body: str) -> str:
        paragraphs = [p.strip("\n") for p in body.split("\n\n") if p.strip()]
        preview = paragraphs[1] if len(paragraphs) > 1 else (paragraphs[0] if paragraphs else subject)
        source = self._run(self._load(LAYOUT), context, subject=subject, paragraphs=paragraphs,
                           body_template=files.mjml, preview=" ".join(preview.split())[:90])
        try:
            return mrml.to_html(source, render_options=self._mjml_options).content
        except Exception as exc:  # noqa: BLE001 - MRML's parse errors: one line, naming the template
            where = files.mjml.split("|", 1)[1] if files.mjml else LAYOUT
            raise TemplateError(f"{where}: MJML として読めません (invalid MJML: {exc})") from None


def offer_headline(offer: dict[str, Any]) -> str:
    """How an offer reads when the scenario gives no label: 20%OFF, 300円OFF, 送料無料, ..."""
    if offer.get("label"):
        return offer["label"]
    value = int(offer["value"]) if offer.get("value") is not None else 0
    return {"percent_off": f"{value}%OFF", "yen_off": f"{value:,}円OFF", "points": f"{value:,}ポイント",
            "free_shipping": "送料無料"}.get(offer["type"], "プレゼント")


# ---------------------------------------------------------------- errors for people

def _template_frame(exc: BaseException) -> tuple[str | None, int | None]:
    """The innermost template file and line of a failure inside a template (Jinja maps its frames
    to the template's own file and line)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    if not frames:
        return None, None
    return frames[-1].filename, frames[-1].lineno


def _shown(filename: str | None) -> str:
    if not filename:
        return "(template)"
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(TEMPLATE_DIR.parent.parent))
    except ValueError:
        return str(path)


def _source_line(filename: str | None, lineno: int | None) -> str:
    if not filename or not lineno:
        return ""
    try:
        lines = Path(filename).read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    return lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""


def _variable(message: str, line: str) -> str | None:
    """The variable an UndefinedError is about, as written in the template line."""
    found = re.match(r"'([^']+)' is undefined", message)
    if found:
        return found.group(1)
    found = re.match(r"'([^']+)' has no attribute '([^']+)'", message)
    if found:
        attribute = found.group(2)
        written = re.search(rf"([A-Za-z_][\w.]*)\.{re.escape(attribute)}\b", line)
        return f"{written.group(1)}.{attribute}" if written else attribute
    return None


def template_error(exc: BaseException) -> TemplateError:
    """One line for a person: `file:line: what (variable)`, never a traceback."""
    if isinstance(exc, TemplateSyntaxError):
        filename, lineno, message = exc.filename or exc.name, exc.lineno, exc.message or str(exc)
        return TemplateError(f"{_shown(filename)}:{lineno}: テンプレートの書き方に誤りがあります "
                             f"(syntax error: {message})")
    filename, lineno = _template_frame(exc)
    where = f"{_shown(filename)}:{lineno}" if lineno else _shown(filename)
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, UndefinedError):
        line = _source_line(filename, lineno)
        variable = _variable(message, line)
        hint = " (this step has no offer: guard with {% if offer %})" if "'None' has no attribute" in message else ""
        what = f"変数 {variable} は使えません" if variable else "使えない変数があります"
        return TemplateError(f"{where}: {what} (undefined variable: {message}){hint}; "
                             "使える変数は docs/templates.md")
    return TemplateError(f"{where}: {type(exc).__name__}: {message}")


def check_legal_footer(message: Rendered, sender: dict[str, str], where: str) -> None:
    """Refuse a marketing e-mail that lacks the sender's identity or the unsubscribe route."""
    missing = [
        label
        for label, value in (
            ("sender name (KIZUNA_SENDER_NAME)", sender["name"]),
            ("sender postal address (KIZUNA_SENDER_ADDRESS)", sender["address"]),
            ("sender contact (KIZUNA_SENDER_CONTACT)", sender["contact"]),
            ("unsubscribe link (KIZUNA_UNSUBSCRIBE_BASE_URL)", message.unsubscribe_url),
        )
        if not value or not value.strip() or value not in message.text or str(escape(value)) not in message.html
    ]
    if missing:
        raise ScenarioError(
            f"template {where}: a marketing e-mail must carry {', '.join(missing)} "
            "(Act on Regulation of Transmission of Specified Electronic Mail); set them and render again."
        )

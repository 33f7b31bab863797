"""Rendering messages from templates, and the legal check every marketing e-mail must pass.

Japan's Act on Regulation of Transmission of Specified Electronic Mail requires the
sender's name, postal address, contact and a working unsubscribe route in every
marketing e-mail. The footer carrying them is added by the renderer, not left to
each template, and `check_legal_footer` refuses a message without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import escape

from campaigns import unsubscribe as unsub
from campaigns.schema import TEMPLATE_DIR, Step
from kizuna.config import Settings
from kizuna.errors import ScenarioError


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    unsubscribe_url: str


class Renderer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATE_DIR),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
            undefined=StrictUndefined,  # a misspelt field fails loudly instead of printing nothing
            keep_trailing_newline=True,
        )
        self.sender = {
            "name": settings.sender_name,
            "address": settings.sender_address,
            "contact": settings.sender_contact,
        }

    def render(self, step: Step, customer: dict[str, Any], send_id: str, send_date: date) -> Rendered:
        offer = None
        if step.offer:
            offer = step.offer.model_dump()
            offer["expires_on"] = None
            if step.offer.expires_in_days:
                offer["expires_on"] = (send_date + timedelta(days=step.offer.expires_in_days)).isoformat()
        unsubscribe_url = unsub.unsubscribe_url(self.settings, send_id, str(customer.get("customer_id", "")), step.channel)
        context = {
            "customer": customer,
            "offer": offer,
            "shop": {"name": self.settings.sender_name},
            "sender": self.sender,
            "unsubscribe_url": unsubscribe_url,
            "step": {"id": step.id, "day": step.day, "channel": step.channel},
        }
        subject = self.env.get_template(f"{step.template}.subject.j2").render(context).strip()
        body = self.env.get_template(f"{step.template}.txt.j2").render(context)
        text = body + self.env.get_template("_footer.txt.j2").render(context)
        paragraphs = [p.strip("\n") for p in body.split("\n\n") if p.strip()]
        html = self.env.get_template("_layout.html.j2").render(context, subject=subject, paragraphs=paragraphs)
        rendered = Rendered(subject, text, html, unsubscribe_url)
        if step.channel == "email":
            check_legal_footer(rendered, self.sender, where=step.template)
        return rendered


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

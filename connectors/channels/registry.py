"""Which connector serves which channel, chosen by settings.

Every default is the local outbox (the demo's contract: `outbox/index.jsonl` lists every
message sent), so the demo and the tests need no secrets. `KIZUNA_DM_PROVIDER=list`,
`KIZUNA_PHONE_PROVIDER=list`, `KIZUNA_INSERT_PROVIDER=list` write the CSV lists for the
print vendor, the call centre and the warehouse instead. `KIZUNA_EMAIL_PROVIDER=sendgrid`,
`KIZUNA_LINE_PROVIDER=line`, `KIZUNA_SMS_PROVIDER=twilio` switch to the providers;
their secrets come from `kizuna.secrets` and a missing one stops here, before any
send, with a message naming the variable to set.
"""

from __future__ import annotations

from pathlib import Path

from connectors.channels.base import Channel
from connectors.channels.lists import ListChannel
from connectors.channels.outbox import OutboxChannel
from connectors.channels.policy import DeliveryPolicy
from kizuna.config import Settings
from kizuna.errors import KizunaError
from kizuna.secrets import get_secret

#: Every channel a scenario step may name, with the providers each can use (first = default).
CHANNELS: dict[str, tuple[str, ...]] = {
    "email": ("outbox", "sendgrid"),
    "line": ("outbox", "line"),
    "sms": ("outbox", "twilio"),
    "dm": ("outbox", "list"),
    "phone": ("outbox", "list"),
    "insert": ("outbox", "list"),
}


def channel_names() -> list[str]:
    return list(CHANNELS)


def lists_dir(settings: Settings) -> Path:
    return Path(settings.lists_dir or Path(settings.data_dir) / "lists")


def provider_for(settings: Settings, name: str) -> str:
    if name not in CHANNELS:
        raise KizunaError(f"unknown channel {name!r}; channels are: {', '.join(CHANNELS)}")
    return getattr(settings, f"{name}_provider")


def channel_for(settings: Settings, name: str) -> Channel:
    """The connector for channel `name` as configured in `settings`."""
    provider = provider_for(settings, name)
    policy = DeliveryPolicy(timeout=settings.channel_timeout_seconds, max_attempts=settings.channel_max_attempts,
                            max_wait=settings.channel_max_wait_seconds, concurrency=settings.channel_concurrency,
                            requests_per_second=settings.channel_requests_per_second,
                            max_in_flight=settings.channel_max_in_flight)
    if provider == "outbox":
        return OutboxChannel(settings.outbox_dir, name, settings.sender_name, settings.sender_email)
    if provider == "list":
        encoding = settings.dm_encoding if name == "dm" else "utf-8-sig"
        return ListChannel(lists_dir(settings), name, encoding=encoding, timezone=settings.timezone)
    if provider == "sendgrid":
        from connectors.channels.sendgrid import SendGridChannel

        return SendGridChannel(
            get_secret("SENDGRID_API_KEY"), sender_name=settings.sender_name, sender_email=settings.sender_email,
            host=settings.sendgrid_host, unsubscribe_group_id=settings.sendgrid_unsubscribe_group_id,
            sandbox_mode=settings.sendgrid_sandbox_mode, timezone=settings.timezone, policy=policy)
    if provider == "line":
        from connectors.channels.line import LineChannel

        return LineChannel(get_secret("LINE_CHANNEL_ACCESS_TOKEN"), host=settings.line_api_host,
                           state_dir=Path(settings.data_dir) / "channels", policy=policy)
    if provider == "twilio":
        from connectors.channels.sms import TwilioSmsChannel

        return TwilioSmsChannel(
            get_secret("TWILIO_ACCOUNT_SID"), get_secret("TWILIO_AUTH_TOKEN"),
            from_number=settings.twilio_from_number, messaging_service_sid=settings.twilio_messaging_service_sid,
            base_url=settings.twilio_base_url, policy=policy)
    raise KizunaError(f"channel {name!r}: unknown provider {provider!r}")  # pragma: no cover - Literal guards it


def check_configuration(settings: Settings, names: list[str] | None = None) -> dict[str, str]:
    """Build every channel in `names` (default: all) once, before anything is sent, so that a missing
    secret or sender stops the run up front; raises one KizunaError listing every problem.
    Returns {channel: provider}."""
    problems, chosen = [], {}
    for name in names or channel_names():
        try:
            chosen[name] = provider_for(settings, name)
            channel_for(settings, name)
        except KizunaError as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise KizunaError("channel configuration incomplete:\n  " + "\n  ".join(problems))
    return chosen


def factory(settings: Settings):
    """`channel_for` bound to `settings`, in the shape `campaigns.engine.run_campaigns` takes; one instance
    per channel name, made on first use (so an unused provider needs no secret)."""
    made: dict[str, Channel] = {}

    def get(name: str) -> Channel:
        if name not in made:
            made[name] = channel_for(settings, name)
        return made[name]

    return get

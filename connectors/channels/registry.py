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

from campaigns.unsubscribe import mailto_address
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


#: Providers that hand messages to people over the network, in the shop's name: with any of them
#: configured the sender identity must be the shop's own (`require_sender_identity`). The outbox
#: writes local files; `list` writes CSV files for the shop's own print vendor, call centre and
#: warehouse, which carry none of kizuna's sender settings (the printed piece and the call script
#: are the shop's own), so neither counts.
LIVE_PROVIDERS = frozenset({"sendgrid", "line", "twilio"})

#: The settings that make up the sender identity every marketing message carries (特定電子メール法:
#: sender, postal address, contact, how to opt out), with what each is, for the message.
SENDER_SETTINGS: dict[str, str] = {
    "sender_name": "送信者の氏名・名称 (sender name)",
    "sender_address": "送信者の住所 (postal address)",
    "sender_contact": "苦情・問い合わせ先 (contact: phone / e-mail / URL)",
    "sender_email": "送信元メールアドレス (From address)",
    "unsubscribe_base_url": "配信停止ページのURL、https:// で公開 (public unsubscribe URL, https://)",
    "brand_shop_url": "ショップのURL、メール内のリンク先 (the shop's home page, every e-mail links to it)",
}
#: Brand images: they may be left empty, but never the demo shop's (its images do not exist).
BRAND_IMAGES: dict[str, str] = {
    "brand_logo_url": "ロゴ画像のURL (logo image URL)",
    "brand_product_image_url": "商品画像のURL (product image URL)",
}


class SenderIdentityMissing(KizunaError):
    """A network provider is configured while the sender identity is missing or still the demo shop's."""


def live_providers(settings: Settings) -> dict[str, str]:
    """{channel: provider} of every channel whose provider reaches people over the network."""
    return {name: p for name in CHANNELS if (p := provider_for(settings, name)) in LIVE_PROVIDERS}


def sender_identity_problems(settings: Settings) -> dict[str, str]:
    """{env variable: why} for each sender setting that is empty or still the demo default."""
    problems = {}
    for field, what in SENDER_SETTINGS.items():
        value = str(getattr(settings, field) or "").strip()
        var = f"KIZUNA_{field.upper()}"
        if not value:
            problems[var] = f"{what}: 未設定 (not set)"
        elif value == Settings.model_fields[field].default:
            problems[var] = f"{what}: デモ用の値のまま (still the demo shop's: {value})"
        elif field == "unsubscribe_base_url" and not value.lower().startswith("https://"):
            problems[var] = f"{what}: https:// で始まっていません (must be an https:// URL, RFC 8058)"
        elif field == "sender_email" and "@" not in value:
            problems[var] = f"{what}: メールアドレスではありません (not an e-mail address)"
    for field, what in BRAND_IMAGES.items():
        value = str(getattr(settings, field) or "").strip()
        if value and value == Settings.model_fields[field].default:
            problems[f"KIZUNA_{field.upper()}"] = f"{what}: デモ用の値のまま (still the demo shop's: {value})"
    return problems


def require_sender_identity(settings: Settings) -> None:
    """Refuse, before anything is sent on any channel, to send through a network provider in the
    demo shop's name or in nobody's: raises SenderIdentityMissing naming each setting to give."""
    live = live_providers(settings)
    if not live:
        return
    problems = sender_identity_problems(settings)
    if not problems:
        return
    using = ", ".join(f"{channel}={provider}" for channel, provider in live.items())
    raise SenderIdentityMissing(
        f"送信者情報が設定されていないため、どのチャネルからも配信しません（{using} で実際に送信する設定です）。"
        "次の環境変数を自社の情報に設定してください (.env.example, docs/unsubscribe.md):\n"
        + "\n".join(f"  {var}: {why}" for var, why in problems.items())
        + "\n(Nothing was sent on any channel: a live provider is configured but the sender identity the "
        "law requires in every message is missing or still the demo's. Set the variables above.)")


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
        return OutboxChannel(settings.outbox_dir, name, settings.sender_name, settings.sender_email,
                             unsubscribe_mailto=mailto_address(settings), timezone=settings.timezone)
    if provider == "list":
        encoding = settings.dm_encoding if name == "dm" else "utf-8-sig"
        return ListChannel(lists_dir(settings), name, encoding=encoding, timezone=settings.timezone)
    if provider == "sendgrid":
        from connectors.channels.sendgrid import SendGridChannel

        return SendGridChannel(
            get_secret("SENDGRID_API_KEY"), sender_name=settings.sender_name, sender_email=settings.sender_email,
            host=settings.sendgrid_host, unsubscribe_group_id=settings.sendgrid_unsubscribe_group_id,
            sandbox_mode=settings.sendgrid_sandbox_mode, timezone=settings.timezone, policy=policy,
            unsubscribe_mailto=mailto_address(settings))
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
    try:
        require_sender_identity(settings)
    except SenderIdentityMissing as exc:
        problems.append(f"sender: {exc}")
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

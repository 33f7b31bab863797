"""The one place that resolves secrets (provider API keys and tokens).

A secret named `SENDGRID_API_KEY` is read from the environment variable
`KIZUNA_SENDGRID_API_KEY`; when that is unset and `KIZUNA_SENDGRID_API_KEY_BLOCK`
names a Prefect Secret block, the block is loaded instead (only then is Prefect
imported, so tests and the demo never need a Prefect server). Values come back
wrapped in pydantic's `SecretStr`: `repr`, `str` and log lines show `**********`;
only `.get_secret_value()` at the point of use reveals them. Nothing here is ever
written to settings dumps, reports or the ledger.
"""

from __future__ import annotations

import os
from typing import Mapping

from pydantic import SecretStr

from kizuna.errors import KizunaError

#: Every secret Kizuna knows, with what it is for (used in error messages and .env.example).
KNOWN_SECRETS: dict[str, str] = {
    "SENDGRID_API_KEY": "SendGrid API key (Mail Send permission), for KIZUNA_EMAIL_PROVIDER=sendgrid",
    "LINE_CHANNEL_ACCESS_TOKEN": "LINE Messaging API channel access token, for KIZUNA_LINE_PROVIDER=line",
    "TWILIO_ACCOUNT_SID": "Twilio account SID (AC...), for KIZUNA_SMS_PROVIDER=twilio",
    "TWILIO_AUTH_TOKEN": "Twilio auth token, for KIZUNA_SMS_PROVIDER=twilio",
    "SENDGRID_WEBHOOK_PUBLIC_KEY": "SendGrid Event Webhook verification key (base64), for `kizuna webhook serve`",
    "LINE_CHANNEL_SECRET": "LINE channel secret (webhook signatures), for `kizuna webhook serve`",
    "SHOPIFY_ACCESS_TOKEN": "Shopify Admin API access token (read scopes), for KIZUNA_SOURCE=shopify",
    "EC_CUBE_DATABASE_URL": "EC-CUBE database URL for a read-only user (postgresql://... or mysql://...), "
                            "for KIZUNA_SOURCE=ec_cube",
    "ERASURE_SALT": "salt of the erasure register's hashes (optional: else generated into <data_dir>/erasure.salt)",
}


class MissingSecret(KizunaError):
    """A provider was chosen but its secret is not configured."""


def env_var(name: str) -> str:
    return f"KIZUNA_{name.upper()}"


def get_secret(name: str, environ: Mapping[str, str] | None = None) -> SecretStr:
    """Resolve secret `name` (e.g. "SENDGRID_API_KEY"): environment first, then a Prefect Secret block.

    Raises `MissingSecret` naming the variable to set when neither is configured.
    """
    env = os.environ if environ is None else environ
    var = env_var(name)
    value = env.get(var, "").strip()
    if value:
        return SecretStr(value)
    block = env.get(f"{var}_BLOCK", "").strip()
    if block:
        return SecretStr(_load_prefect_secret(block, var))
    purpose = KNOWN_SECRETS.get(name.upper(), name)
    raise MissingSecret(
        f"{purpose}: not configured. Set the environment variable {var} "
        f"(see .env.example), or set {var}_BLOCK to the name of a Prefect Secret block that holds it."
    )


def _load_prefect_secret(block: str, var: str) -> str:
    try:
        from prefect.blocks.system import Secret

        value = Secret.load(block).get()
    except Exception as exc:  # noqa: BLE001 - any failure here is a configuration problem for a person
        raise MissingSecret(
            f"{var}_BLOCK names the Prefect Secret block {block!r}, which could not be loaded "
            f"({type(exc).__name__}); create it (`prefect block create secret`) or set {var} instead."
        ) from None
    if not str(value).strip():
        raise MissingSecret(f"the Prefect Secret block {block!r} ({var}_BLOCK) is empty; store the value in it.")
    return str(value)


def mask(value: str | SecretStr | None) -> str:
    """A loggable stand-in for a secret: says whether one is set, never any of its characters."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else (value or "")
    return "**********" if raw else "(not set)"

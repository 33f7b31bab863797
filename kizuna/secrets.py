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
import secrets
import stat
from pathlib import Path
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
    "UNSUBSCRIBE_SECRET": "key that signs unsubscribe links (optional: else generated into <data_dir>/unsubscribe.key); "
                          "the nightly run and `kizuna webhook serve` must share it",
}

#: Where a generated unsubscribe key is kept when UNSUBSCRIBE_SECRET is not configured (under the data folder).
UNSUBSCRIBE_KEY_FILE = "unsubscribe.key"


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


def unsubscribe_secret(data_dir: Path, environ: Mapping[str, str] | None = None) -> SecretStr:
    """The key that signs unsubscribe links: the secret UNSUBSCRIBE_SECRET when configured, else
    `<data_dir>/unsubscribe.key`, generated once (mode 0600) and kept.

    The nightly run signs with it and the web service (`kizuna webhook serve`) checks with it, so
    both must see the same one: the same data folder, or the same KIZUNA_UNSUBSCRIBE_SECRET. A changed
    key makes every link sent so far invalid (its page then names the contact to ask instead)."""
    try:
        return get_secret("UNSUBSCRIBE_SECRET", environ)
    except MissingSecret:
        pass
    path = Path(data_dir) / UNSUBSCRIBE_KEY_FILE
    return SecretStr(generated_secret_file(
        path, min_length=32, if_unreadable=f"Restore it from the backup, or set {env_var('UNSUBSCRIBE_SECRET')} "
        "(links already sent stay valid only with the key that signed them).", error=MissingSecret))


def generated_secret_file(path: Path, *, min_length: int, if_unreadable: str,
                          error: type[Exception] = MissingSecret) -> str:
    """The secret kept in `path` (64 hex digits), generated once with mode 0600 when the file is absent.

    Written whole to a private file, then linked into place: a reader never sees half a secret, and of
    two processes generating at once the first link wins and both use its secret. A file too short
    to be one raises `error` with `if_unreadable` (what to do)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(partial, path)
            except FileExistsError:
                pass
        finally:
            partial.unlink(missing_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, 0o600)  # only the owner may read it
    value = path.read_text(encoding="ascii", errors="replace").strip()
    if len(value) < min_length:
        raise error(f"The file {path} is empty or too short. {if_unreadable}")
    return value

"""Who a person is, as kizuna may remember it after erasure: salted hashes of normalised identities.

An erased customer (APPI) leaves behind only SHA-256 hashes, salted with a secret of the
shop, of their customer id, e-mail address, phone number and LINE user id. The hashes
let the nightly run recognise the person again (an older export re-imported, a new
account with the same address) without keeping anything that can be read back.

Normalisation decides what counts as "the same" identity, and it is defined once, here:
- e-mail: NFKC (folds full-width ｅｒａｓｅ＠… to ASCII), trim, lower-case;
- phone: NFKC, digits only, a leading country code 81 (`+81 90-…`, `81-90…`, also with the
  trunk zero `+81 (0)90…`) becomes the domestic `0`;
- LINE user id: NFKC, trim (ids are case-sensitive);
- customer id: exactly as the loader stores it (keys are not trimmed there either).

`erasure_hash(kind, value, salt)` is the Python form; `register_sql_hash(con, salt)` makes
the same function callable in DuckDB SQL as `kizuna_erasure_hash(kind, value)` (it calls
the Python form, so the two cannot disagree).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import duckdb
import pyarrow as pa

from kizuna.config import Settings
from kizuna.errors import KizunaError
from kizuna.secrets import MissingSecret, generated_secret_file, get_secret

#: The identities the register keeps, one hash each.
KINDS = ("customer_id", "email", "phone", "line_user_id")
#: The secret that salts the hashes (env KIZUNA_ERASURE_SALT or a Prefect Secret block).
SALT_SECRET = "ERASURE_SALT"
#: Where a generated salt is kept when the secret is not configured (under the data folder).
SALT_FILE = "erasure.salt"
#: The name of the SQL form in DuckDB.
SQL_FUNCTION = "kizuna_erasure_hash"

_NOT_DIGIT = re.compile(r"[^0-9]")

#: Columns that hold a person's data wherever they appear with a `customer_id` (raw tables,
#: dbt models, export files, quarantined rows): blanked when that customer is erased.
PERSONAL_COLUMNS = frozenset({
    "last_name", "first_name", "last_name_kana", "first_name_kana", "full_name", "name", "name_kana",
    "gender", "birth_date", "age", "age_band", "email", "phone", "postal_code", "prefecture", "city",
    "address", "address_line", "line_user_id", "comment",
})
#: Name parts that mark a column personal too (a model that renames `email` to `contact_email`).
_PERSONAL_PARTS = re.compile(r"(^|_)(e?mail|phone|tel|address|postal|kana|birth|line_user_id|comment)(_|$)")


@lru_cache(maxsize=4096)
def column_kind(name: str, duckdb_type: str | None = None) -> str | None:
    """What a column holds: one of KINDS, `personal` (other personal data), or None.

    A boolean column is never personal (`has_email_consent` says nothing about who).
    """
    n = name.strip().lower()
    if duckdb_type is not None and duckdb_type.upper() == "BOOLEAN":
        return None
    if n == "customer_id":
        return "customer_id"
    if n == "line_user_id" or n.endswith("_line_user_id"):
        return "line_user_id"
    if n.endswith("sha256"):  # a hash, handled with the events (kizuna/privacy/erasure.py)
        return None
    if re.search(r"(^|_)e?mail(_|$)", n):
        return "email"
    if re.search(r"(^|_)(phone|tel)(_|$)", n):
        return "phone"
    if n in PERSONAL_COLUMNS or _PERSONAL_PARTS.search(n):
        return "personal"
    return None


def normalise(kind: str, value: object) -> str | None:
    """The normalised form of an identity (see the module docstring); None when there is none."""
    if value is None:
        return None
    text = str(value)
    if kind == "customer_id":
        return text or None
    text = unicodedata.normalize("NFKC", text).strip()
    if kind == "email":
        text = text.lower()
    elif kind == "phone":
        text = _NOT_DIGIT.sub("", text)
        if text.startswith("81") and len(text) > 2:  # domestic numbers start with 0: 81 is the country code
            rest = text[2:]
            text = "0" + (rest[1:] if rest.startswith("0") else rest)
    elif kind != "line_user_id":
        raise ValueError(f"unknown identity kind {kind!r}; kinds are {', '.join(KINDS)}")
    return text or None


def erasure_hash(kind: str, value: object, salt: str) -> str | None:
    """Salted SHA-256 (hex) of the normalised identity; None for an empty value."""
    normal = normalise(kind, value)
    if normal is None:
        return None
    return hashlib.sha256(f"kizuna-erasure\x1f{salt}\x1f{kind}\x1f{normal}".encode("utf-8")).hexdigest()


def salt_check(salt: str) -> str:
    """A fingerprint of the salt kept in the ledger: a changed salt is noticed, never silently used."""
    return hashlib.sha256(f"kizuna-erasure-salt-check\x1f{salt}".encode("utf-8")).hexdigest()[:16]


def register_sql_hash(con: duckdb.DuckDBPyConnection, salt: str) -> str:
    """Make `kizuna_erasure_hash(kind, value)` callable in SQL on `con` (the Python form, vectorised
    through Arrow); returns the function's name. Calling it again on the same connection is harmless."""
    def hashes(kinds: pa.Array, values: pa.Array) -> pa.Array:
        return pa.array([erasure_hash(k, v, salt) if v is not None and k is not None else None
                         for k, v in zip(kinds.to_pylist(), values.to_pylist())], pa.string())

    try:
        con.remove_function(SQL_FUNCTION)
    except (duckdb.InvalidInputException, duckdb.CatalogException):
        pass
    con.create_function(SQL_FUNCTION, hashes, [duckdb.sqltype("VARCHAR"), duckdb.sqltype("VARCHAR")],
                        duckdb.sqltype("VARCHAR"), type="arrow", null_handling="special", side_effects=False)
    return SQL_FUNCTION


def erasure_salt(settings: Settings) -> str:
    """The salt: the secret ERASURE_SALT when configured, else `<data_dir>/erasure.salt`, generated once
    (mode 0600). Either must be backed up with the ledger: without it no recorded erasure can be matched."""
    try:
        return get_secret(SALT_SECRET).get_secret_value()
    except MissingSecret:
        pass
    return generated_secret_file(
        Path(settings.data_dir) / SALT_FILE, min_length=16, error=KizunaError,  # type: ignore[arg-type]
        if_unreadable="It is the erasure salt: restore it from the backup of the ledger (the register of erased "
        f"customers cannot be matched without it), or set KIZUNA_{SALT_SECRET}.")

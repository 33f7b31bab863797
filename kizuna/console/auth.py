"""Console users: a file of salted password hashes, and the CSRF tokens of the forms.

Passwords are hashed with scrypt from Python's standard library (`hashlib.scrypt`, OpenSSL's): a
memory-hard function that OWASP's password storage guidance lists, with its recommended cost
(N=2^17, r=8, p=1: 128 MiB and about a third of a second per check), a random 16-byte salt per user,
and no new dependency to keep up (argon2-cffi would be the other choice; scrypt needs nothing).

The users file (KIZUNA_CONSOLE_USERS, written by `kizuna console add-user`) has one line per user:

    name:scrypt$<log2 N>$<r>$<p>$<salt, base64>$<hash, base64>

Parameters travel with each hash, so a later cost raise keeps old hashes readable. The file is
written whole and renamed into place with mode 0600. A password is never stored, logged or shown.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from kizuna.errors import KizunaError

LOG2_N, R, P = 17, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32
#: User names: what is written in the ledger as "who"; no colon (the file's separator), no spaces.
NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
MIN_PASSWORD = 10


class UserError(KizunaError):
    """A user name or password that cannot be used, or a users file that cannot be read."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=HASH_BYTES,
                          maxmem=128 * n * r * p + (1 << 20))


def hash_password(password: str) -> str:
    salt = os.urandom(SALT_BYTES)
    return f"scrypt${LOG2_N}${R}${P}${_b64(salt)}${_b64(_scrypt(password, salt, LOG2_N, R, P))}"


def check_password(password: str, encoded: str) -> bool:
    """Whether `password` matches the stored hash (constant-time comparison)."""
    try:
        scheme, log2_n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(log2_n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


#: A hash of nothing anybody knows: checked for unknown user names, so that a wrong name takes as long as a
#: wrong password (no telling which names exist from the time of an answer).
_DUMMY = None


def _dummy() -> str:
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = hash_password(secrets.token_hex(16))
    return _DUMMY


def load_users(path: Path) -> dict[str, str]:
    """name -> encoded hash. A missing file has no users (nobody can log in: the page says how to add one)."""
    if not path.exists():
        return {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"コンソールのユーザーファイルを読めません: {path} ({exc.strerror}). (The console's users file "
                        "cannot be read: check its permissions.)") from None
    users = {}
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        name, _, encoded = line.partition(":")
        users[name.strip()] = encoded.strip()
    return users


def authenticate(path: Path, name: str, password: str) -> bool:
    users = load_users(path)
    encoded = users.get(name)
    ok = check_password(password, encoded or _dummy())
    return ok and encoded is not None


def add_user(path: Path, name: str, password: str) -> bool:
    """Add a user or replace their password; True when the user is new. Written whole, mode 0600."""
    if not NAME.match(name):
        raise UserError(f"ユーザー名 {name!r} は使えません (user names are 1-64 letters, digits, '.', '_', '@' or '-').")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"パスワードが短すぎます (the password needs at least {MIN_PASSWORD} characters).")
    users = load_users(path)
    new = name not in users
    users[name] = hash_password(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# kizuna console users: name:scrypt$log2N$r$p$salt$hash (`kizuna console add-user`)\n")
        fh.writelines(f"{n}:{h}\n" for n, h in sorted(users.items()))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)
    return new


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))

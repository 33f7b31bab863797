"""Personal data and its erasure (APPI): see docs/privacy.md.

- `apply_erasures(settings) -> ErasureResult`: the nightly erasure, run right after the loader commits;
- `erasure_hash(kind, value, salt)`, `normalise(kind, value)`: how an identity is recognised
  without being kept; `register_sql_hash(con, salt)` makes the same callable in DuckDB SQL;
- `erasure_salt(settings)`: the shop's salt (secret `ERASURE_SALT`, else `<data_dir>/erasure.salt`).
"""

from kizuna.privacy.erasure import ErasureResult, apply_erasures, rewrite_warehouse
from kizuna.privacy.identity import (
    KINDS,
    SQL_FUNCTION,
    column_kind,
    erasure_hash,
    erasure_salt,
    normalise,
    register_sql_hash,
)

__all__ = [
    "KINDS", "SQL_FUNCTION", "ErasureResult", "apply_erasures", "column_kind", "erasure_hash", "erasure_salt",
    "normalise", "register_sql_hash", "rewrite_warehouse",
]

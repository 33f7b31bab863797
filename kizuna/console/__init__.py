"""The marketers' console (issue 22, docs/console.md): a private web application on loopback.

`kizuna console serve` runs it (kizuna/console/app.py); what people do there is kept in the
console's own SQLite store (store.py) and folded into the ledger by the nightly run (nightly.py).
This package's `__init__` imports nothing heavy: the nightly run imports `nightly` without FastAPI.
"""

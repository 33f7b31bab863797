"""Which source feeds the warehouse, chosen by `KIZUNA_SOURCE` (docs/sources.md).

Each source module exposes `source_from_settings(settings) -> ExportSource`; it is imported
only when chosen, so a shop on CSV exports never imports a database driver or an API client.
"""

from __future__ import annotations

import importlib

from connectors.sources.base import ExportSource
from kizuna.config import Settings
from kizuna.errors import KizunaError

#: KIZUNA_SOURCE -> the module that builds it.
SOURCES = {
    "csv": "connectors.sources.csv_export",
    "mapped_csv": "connectors.sources.mapped_csv",
    "shopify": "connectors.sources.shopify",
    "ec_cube": "connectors.sources.ec_cube",
}


def source_for(settings: Settings) -> ExportSource:
    """The source `settings.source` names, configured from the settings (and its secret, if any)."""
    module = SOURCES.get(settings.source)
    if module is None:
        raise KizunaError(f"unknown source {settings.source!r} (KIZUNA_SOURCE): use one of {', '.join(SOURCES)}")
    return importlib.import_module(module).source_from_settings(settings)

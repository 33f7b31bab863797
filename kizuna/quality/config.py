"""The quality checks' configuration: `checks.yaml` beside this module, with a shop's overrides merged over it.

An override file (setting `quality_config`, env `KIZUNA_QUALITY_CONFIG`) has two
optional sections: `settings` (thresholds, merged key by key; `personal_columns` adds
columns per table, so no override can unmask personal data) and `checks` (by check
name: any field of the check, e.g. `severity`, `kwargs`, `enabled: false`; `kwargs`
merged key by key). It may also add whole checks under `raw`/`marts` and derived
columns under `derived`. A name that matches no check is an error, so a typo cannot
silently leave a check unchanged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kizuna.errors import KizunaError

DEFAULT_CHECKS = Path(__file__).with_name("checks.yaml")


@dataclass
class QualityConfig:
    settings: dict[str, Any]
    raw: list[dict[str, Any]]
    marts: list[dict[str, Any]]
    derived: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)

    def checks(self, gate: str) -> list[dict[str, Any]]:
        return self.raw if gate == "raw" else self.marts

    @property
    def personal_columns(self) -> dict[str, frozenset[str]]:
        """Per table, the columns holding personal data (their example values are masked)."""
        return {table: frozenset(columns or []) for table, columns in
                (self.settings.get("personal_columns") or {}).items()}

    def check(self, name: str) -> dict[str, Any]:
        for c in self.raw + self.marts:
            if c["name"] == name:
                return c
        raise KeyError(name)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise KizunaError(f"Quality config {path} not found (setting quality_config / KIZUNA_QUALITY_CONFIG).") from None
    except yaml.YAMLError as exc:
        raise KizunaError(f"Quality config {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise KizunaError(f"Quality config {path}: expected a mapping with settings/checks, got {type(data).__name__}")
    return data


def merge_overrides(config: QualityConfig, overrides: dict[str, Any], source: str = "overrides") -> QualityConfig:
    config = copy.deepcopy(config)
    unknown = set(overrides) - {"settings", "checks", "raw", "marts", "derived"}
    if unknown:
        raise KizunaError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}; "
                          "expected settings, checks, raw, marts, derived")
    for key, value in (overrides.get("settings") or {}).items():
        if key not in config.settings:
            raise KizunaError(f"{source}: unknown setting {key!r}; known: {', '.join(sorted(config.settings))}")
        if key == "personal_columns":
            value = _more_personal_columns(config.settings.get(key) or {}, _personal_columns(value, source))
        config.settings[key] = value
    for name, change in (overrides.get("checks") or {}).items():
        try:
            check = config.check(name)
        except KeyError:
            raise KizunaError(f"{source}: no quality check named {name!r} (see kizuna/quality/checks.yaml)") from None
        for key, value in (change or {}).items():
            if key == "kwargs":
                check.setdefault("kwargs", {}).update(value or {})
            else:
                check[key] = value
    for gate in ("raw", "marts"):
        for check in overrides.get(gate) or []:
            names = {c["name"] for c in config.raw + config.marts}
            if check.get("name") in names:
                raise KizunaError(f"{source}: check {check.get('name')!r} exists; change it under `checks:`")
            config.checks(gate).append(check)
    for table, columns in (overrides.get("derived") or {}).items():
        config.derived.setdefault(table, {}).update(columns)
    return config


def _personal_columns(value: Any, source: str) -> dict[str, list[str]]:
    """`personal_columns` as written: a mapping of table to a list of column names."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(cols, list) and all(isinstance(c, str) for c in cols) for cols in value.values()):
        raise KizunaError(f"{source}: personal_columns must map each table to a list of column names, "
                          "e.g. personal_columns: {customers: [nickname]}")
    return {str(table): list(cols) for table, cols in value.items()}


def _more_personal_columns(base: dict[str, list[str]], extra: dict[str, list[str]]) -> dict[str, list[str]]:
    """The union per table (new lists: the defaults share theirs through a YAML alias)."""
    merged = {table: list(cols) for table, cols in base.items()}
    for table, cols in extra.items():
        merged[table] = list(dict.fromkeys([*merged.get(table, []), *cols]))
    return merged


def load_config(override: Path | None = None) -> QualityConfig:
    """The default checks with the overrides in `override` (if any) merged over them."""
    data = _read(DEFAULT_CHECKS)
    settings = dict(data.get("settings") or {})
    settings["personal_columns"] = _personal_columns(settings.get("personal_columns"), str(DEFAULT_CHECKS))
    config = QualityConfig(settings, list(data.get("raw") or []),
                           list(data.get("marts") or []), dict(data.get("derived") or {}), [DEFAULT_CHECKS])
    if override:
        config = merge_overrides(config, _read(Path(override)), str(override))
        config.sources.append(Path(override))
    return config

"""Scenario files: the schema marketers write against, with errors that name file, field and fix."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kizuna.errors import ScenarioError

SCENARIO_DIR = Path(__file__).parent / "scenarios"
TEMPLATE_DIR = Path(__file__).parent / "templates"

Channel = Literal["email", "line", "sms", "dm", "phone", "insert"]

#: Columns of `marts.dim_customers` a segment may filter on (names are checked, values bound as parameters).
SEGMENT_COLUMNS = ("stage", "age_band", "acquisition_media_code", "subscription_status", "gender")

#: Anchor events and the `marts.dim_customers` column that dates them.
ANCHOR_COLUMNS = {
    "first_order": "first_order_date",
    "first_shipment": "cast(first_shipped_at as date)",
    "first_delivery": "cast(first_delivered_at as date)",
}

#: Goals: a customer who reached one leaves the scenario before its next step.
GOAL_CONDITIONS = {
    "second_order": "order_count >= 2",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Offer(_Strict):
    type: Literal["percent_off", "yen_off", "free_shipping", "gift", "points"]
    value: float | None = None
    code: str | None = None
    expires_in_days: int | None = Field(None, ge=1)


class Step(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    day: int = Field(ge=0, description="Days after the anchor event.")
    channel: Channel
    template: str
    offer: Offer | None = None
    send_time: time = time(10, 0)

    @field_validator("template")
    @classmethod
    def _template_exists(cls, name: str) -> str:
        if not (TEMPLATE_DIR / f"{name}.txt.j2").exists():
            raise ValueError(
                f"no template {name!r}: add campaigns/templates/{name}.txt.j2 (and .subject.j2, optional .html.j2)"
            )
        return name


class Entry(_Strict):
    event: Literal["first_order", "first_shipment", "first_delivery"]


class Exit(_Strict):
    goal: Literal["second_order"] | None = None


class Scenario(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str
    priority: int = Field(ge=1, description="Higher wins when scenarios conflict.")
    stage: Literal["initial", "continuing", "dormant", "any"]
    entry: Entry
    segment: dict[str, str | list[str]] = Field(default_factory=dict)
    exit: Exit = Exit()
    steps: list[Step] = Field(min_length=1)

    @field_validator("segment")
    @classmethod
    def _known_columns(cls, segment: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        unknown = sorted(set(segment) - set(SEGMENT_COLUMNS))
        if unknown:
            raise ValueError(f"unknown segment column(s) {unknown}; use one of {list(SEGMENT_COLUMNS)}")
        return segment

    @model_validator(mode="after")
    def _unique_step_ids(self) -> "Scenario":
        ids = [s.id for s in self.steps]
        if len(ids) != len(set(ids)):
            raise ValueError(f"step ids must be unique within a scenario, got {ids}")
        return self


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    return f"  - {where}: {error['msg']}"


def load_scenario(path: Path) -> Scenario:
    """Read and validate one scenario file; a ScenarioError names the file, each bad field and the fix."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path.name}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path.name}: a scenario file holds one mapping (id, name, priority, ...)")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = "\n".join(_describe(e) for e in exc.errors())
        raise ScenarioError(f"{path.name}: invalid scenario:\n{lines}") from None


def load_scenarios(folder: Path = SCENARIO_DIR) -> list[Scenario]:
    """All scenarios of a folder, highest priority first; ids must be unique across files."""
    scenarios = [load_scenario(p) for p in sorted(folder.glob("*.yaml"))]
    seen: dict[str, int] = {}
    for s in scenarios:
        seen[s.id] = seen.get(s.id, 0) + 1
    duplicated = [i for i, n in seen.items() if n > 1]
    if duplicated:
        raise ScenarioError(f"scenario ids used by more than one file in {folder}: {duplicated}")
    return sorted(scenarios, key=lambda s: -s.priority)


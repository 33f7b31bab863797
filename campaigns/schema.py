"""Scenario files: the schema marketers write against, with errors that name file, field and fix.

A scenario is designed on the five axes of docs/domain.md: segment (who), channel, content
(template), offer and timing (days after an anchor event). It also states its goal
(reaching it ends the scenario for that customer), its priority (the higher wins when
two scenarios would reach the same customer through the same channel on the same
night) and its hold-out share (a stable control group that is recorded, never sent).
"""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from kizuna.errors import ScenarioError

#: The scenarios and templates shipped with kizuna (the demo shop's). A shop keeps its own in the
#: folder KIZUNA_SCENARIOS_DIR: scenario files there, templates in its `templates/` folder.
SCENARIO_DIR = Path(__file__).parent / "scenarios"
TEMPLATE_DIR = Path(__file__).parent / "templates"
#: The files of one message template `<name>`: text body and subject required, MJML optional.
TEMPLATE_SUFFIXES = (".txt.j2", ".subject.j2", ".mjml.j2")

Channel = Literal["email", "line", "sms", "dm", "phone", "insert"]

#: Columns a segment may filter on: name in the scenario file -> SQL over the customer row `c`
#: (marts.dim_customers) or `a` (marts.campaign_audience). Values are bound as parameters.
SEGMENT_COLUMNS = {
    "stage": "c.stage",
    "rfm_segment": "a.rfm_segment",
    "age_band": "c.age_band",
    "media": "c.acquisition_media_code",
    "acquisition_media_code": "c.acquisition_media_code",
    "subscription_status": "c.subscription_status",
    "gender": "c.gender",
    "first_order_kind": "c.first_order_kind",
    "product": None,  # customers who ever ordered one of the products (raw.order_lines × marts.fct_orders)
}

#: Anchor events the shop's exports support. Each yields (customer_id, anchor_date) rows;
#: `{n}` is the scenario's `entry.n`. Page views are not exported, see UNSUPPORTED_EVENTS.
ANCHOR_SQL = {
    "first_order": "select customer_id, first_order_date as anchor_date from marts.dim_customers",
    "first_shipment": "select customer_id, cast(first_shipped_at as date) as anchor_date from marts.dim_customers",
    "first_delivery": "select customer_id, cast(first_delivered_at as date) as anchor_date from marts.dim_customers",
    "last_order": "select customer_id, last_order_date as anchor_date from marts.dim_customers",
    "nth_order": "select customer_id, ordered_date as anchor_date from marts.fct_orders "
                 "where purchase_sequence_number = {n}",
    "subscription_start": "select customer_id, ordered_date as anchor_date from marts.fct_orders "
                          "where order_kind = 'subscription' and delivery_number = 1",
    "subscription_delivery": "select customer_id, ordered_date as anchor_date from marts.fct_orders "
                             "where order_kind = 'subscription' and delivery_number = {n}",
    "cart_abandoned": "select cast(customer_id as varchar) as customer_id, cast(cast(updated_at as timestamp) as date) "
                      "as anchor_date from raw.carts where status = 'abandoned' and customer_id is not null",
}
EVENTS_WITH_N = ("nth_order", "subscription_delivery")
UNSUPPORTED_EVENTS = {
    "page_viewed": "page views are not in the shop's exports (orders, shipments, subscriptions and carts are): "
                   "there is nothing to anchor on. Use cart_abandoned for a purchase-intent trigger, "
                   "or add a page-view export first.",
}

#: Goals and stop conditions, SQL over the customer row `c` and the candidate `x` (x.anchor_date).
#: A customer for whom one holds leaves the scenario before its next step.
EXIT_CONDITIONS = {
    "second_order": "c.order_count >= 2",
    "subscription_start": "c.subscription_status <> 'none'",
    "new_order": "c.last_order_date > x.anchor_date",
    "subscription_cancelled": "c.subscription_status = 'cancelled'",
}
ExitCondition = Literal["second_order", "subscription_start", "new_order", "subscription_cancelled"]
#: A goal is an order the scenario works for; campaign_performance and campaign_lift count a send
#: as converted when its customer places such an order within the conversion window (dbt macro
#: order_meets_goal). A cancellation can end a scenario (stop_if) but is nobody's goal.
Goal = Literal["second_order", "subscription_start", "new_order"]


def scenario_dir(settings=None) -> Path:
    """The scenario folder in use: KIZUNA_SCENARIOS_DIR when set, else the shipped one."""
    if settings is None:
        from kizuna.config import get_settings

        settings = get_settings()
    folder = getattr(settings, "scenarios_dir", None)
    return Path(folder).expanduser().resolve() if folder else SCENARIO_DIR


def template_dirs(folder: Path | None = None) -> list[Path]:
    """Where templates are looked up, first match wins: the scenario folder's `templates/`, then the
    shipped ones (a shop's template of the same name replaces the shipped one; the rest stay usable)."""
    folder = scenario_dir() if folder is None else Path(folder).resolve()
    if folder == SCENARIO_DIR.resolve():
        return [TEMPLATE_DIR]
    return [folder / "templates", TEMPLATE_DIR]


def find_template(name: str, dirs: list[Path]) -> Path | None:
    """The folder that holds template `name` (its .txt.j2). All of one template's files come from that
    folder, so a shop's own text is never paired with the shipped MJML of the same name."""
    return next((d for d in dirs if (d / f"{name}.txt.j2").is_file()), None)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Offer(_Strict):
    type: Literal["percent_off", "yen_off", "free_shipping", "gift", "points"]
    value: float | None = None
    code: str | None = None
    label: str | None = Field(None, description="How the offer reads in the message, e.g. 定期初回半額＋7日分無料.")
    expires_in_days: int | None = Field(None, ge=1)
    unique: bool = Field(False, description="Each customer gets a code of their own, single use (docs/coupons.md); "
                         "`code`, if set, is its prefix.")

    @model_validator(mode="after")
    def _value_for_amounts(self) -> "Offer":
        if self.type in ("percent_off", "yen_off", "points") and self.value is None:
            raise ValueError(f"an offer of type {self.type} needs a value (e.g. value: 10)")
        if self.type == "percent_off" and self.value is not None and not 0 < self.value <= 100:
            raise ValueError("percent_off value must be between 0 and 100")
        if self.unique and self.type not in ("percent_off", "yen_off"):
            raise ValueError(f"unique codes are cart discounts: percent_off or yen_off, not {self.type}")
        if self.unique and self.code is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,19}", self.code):
            raise ValueError("with unique: true, code is the codes' prefix: up to 20 letters, digits and '-'")
        return self


# --- A/B variants (issue 17, part 2) ---------------------------------------------------------
#: At most this many variants per step: each is compared with the first (the control), and more
#: comparisons need a stricter threshold (Bonferroni, see docs/ab-tests.md) and more sends.
MAX_VARIANTS = 5
#: Variant buckets: the customer's hash modulo this, split by the weights (the hold-out uses the same scale).
VARIANT_BUCKETS = 10000


class Variant(_Strict):
    """One arm of a step's A/B test. Fields left out inherit the step's (template, offer, channel);
    `offer: null` sends this arm with no offer. The first variant of a step is the control."""
    id: str = Field(pattern=r"^[a-z0-9_]{1,20}$", description="Short id (a, b, no_coupon, ...); shown in the verdict.")
    weight: float = Field(gt=0, description="Relative share of the step's customers (50/50, 1/1, 80/20, ...).")
    template: str | None = None
    offer: Offer | None = None
    channel: Channel | None = None

    @field_validator("template")
    @classmethod
    def _variant_template_exists(cls, name: str | None, info: ValidationInfo) -> str | None:
        return None if name is None else _check_template(name, info)


class Step(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    day: int = Field(ge=0, description="Days after the anchor event.")
    channel: Channel
    template: str
    offer: Offer | None = None
    send_time: time = time(10, 0)
    variants: list[Variant] | None = Field(
        None, description="A/B test: two or more variants with weights (docs/ab-tests.md); the first is the control.")

    @field_validator("template")
    @classmethod
    def _template_exists(cls, name: str, info: ValidationInfo) -> str:
        return _check_template(name, info)

    # --- A/B variants (issue 17, part 2) ---
    @model_validator(mode="after")
    def _valid_variants(self) -> "Step":
        if self.variants is None:
            return self
        where = f"step {self.id}"
        if len(self.variants) < 2:
            raise ValueError(f"{where}: an A/B test needs at least two variants (e.g. [{{id: a, weight: 50}}, "
                             f"{{id: b, weight: 50, template: {self.template}_b}}]); to promote a winner, "
                             "remove `variants` and put the winner's template/offer/channel on the step")
        if len(self.variants) > MAX_VARIANTS:
            raise ValueError(f"{where}: at most {MAX_VARIANTS} variants (got {len(self.variants)}); "
                             "each needs its own sends: test fewer at a time")
        ids = [v.id for v in self.variants]
        if len(ids) != len(set(ids)):
            raise ValueError(f"{where}: variant ids must be unique, got {ids}")
        if any(self.arm(v.id).offer and self.arm(v.id).offer.unique for v in self.variants):
            raise ValueError(f"{where}: single-use codes (offer unique: true) are not supported in an A/B test yet: "
                             "give each variant a shared code of its own (offer: {code: F2-B20, ...})")
        same = [v.id for v in self.variants[1:] if self.arm(v.id) == self.arm(self.variants[0].id)]
        if same:
            raise ValueError(f"{where}: variant(s) {same} send exactly what {self.variants[0].id} sends: give each "
                             "its own template, offer or channel")
        return self

    def arm(self, variant: str | None) -> "Step":
        """The step as variant `variant` sends it: its template, offer and channel where it sets them, the
        step's otherwise (same id, day and send time). None, or a variant the step no longer has (a
        promoted winner), is the step itself."""
        chosen = next((v for v in self.variants or () if v.id == variant), None)
        if chosen is None:
            return self
        changes = {k: getattr(chosen, k) for k in ("template", "offer", "channel") if k in chosen.model_fields_set}
        return self.model_copy(update={**changes, "variants": None})

    def arms(self) -> list["Step"]:
        """What the step may send: each variant's message (the control first), or the step alone."""
        return [self.arm(v.id) for v in self.variants] if self.variants else [self]

    def variant_bounds(self) -> list[tuple[str, str, int, int]]:
        """(variant id, channel, first bucket, bucket after the last) per variant: the weights as
        consecutive ranges of 0..VARIANT_BUCKETS, the last ending exactly there (no customer left out)."""
        total = sum(v.weight for v in self.variants or ())
        out, lo, running = [], 0, 0.0
        for i, v in enumerate(self.variants or ()):
            running += v.weight
            hi = VARIANT_BUCKETS if i == len(self.variants) - 1 else round(running / total * VARIANT_BUCKETS)
            out.append((v.id, self.arm(v.id).channel, lo, hi))
            lo = hi
        return out


def _check_template(name: str, info: ValidationInfo) -> str:
    """A template name exists with its subject, in the scenario folder's templates or the shipped ones."""
    dirs = (info.context or {}).get("template_dirs") or template_dirs()
    found = find_template(name, dirs)
    if found is None:
        raise ValueError(
            f"no template {name!r}: add {_shown(dirs[0])}/{name}.txt.j2 (and {name}.subject.j2, "
            f"optional {name}.mjml.j2 for the HTML e-mail)"
        )
    if not (found / f"{name}.subject.j2").is_file():
        raise ValueError(f"template {name!r} has no subject: add {_shown(found)}/{name}.subject.j2")
    return name


class Entry(_Strict):
    event: str = Field(description=f"One of {sorted(ANCHOR_SQL)}.")
    n: int | None = Field(None, ge=1, description="For nth_order and subscription_delivery: which one (1, 2, 3, ...).")

    @field_validator("event")
    @classmethod
    def _known_event(cls, event: str) -> str:
        if event in UNSUPPORTED_EVENTS:
            raise ValueError(f"{event!r} is not supported: {UNSUPPORTED_EVENTS[event]}")
        if event not in ANCHOR_SQL:
            raise ValueError(f"unknown anchor event {event!r}; use one of {sorted(ANCHOR_SQL)}")
        return event

    @model_validator(mode="after")
    def _n_when_needed(self) -> "Entry":
        if self.event in EVENTS_WITH_N and self.n is None:
            raise ValueError(f"event {self.event} needs n (e.g. n: 3 for the third)")
        if self.event not in EVENTS_WITH_N and self.n is not None:
            raise ValueError(f"n applies only to {list(EVENTS_WITH_N)}; remove it for {self.event}")
        return self

    @property
    def key(self) -> str:
        return self.event if self.n is None else f"{self.event}:{self.n}"

    def sql(self) -> str:
        return ANCHOR_SQL[self.event].format(n=self.n)


class Exit(_Strict):
    goal: Goal | None = Field(None, description="Reaching it ends the scenario; it is the conversion measured "
                              "(no goal: any new order counts).")
    stop_if: list[ExitCondition] = Field(default_factory=list, description="Other conditions that end it.")

    @property
    def conditions(self) -> list[str]:
        return ([self.goal] if self.goal else []) + list(self.stop_if)


class Scenario(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str
    priority: int = Field(ge=1, description="Higher wins when scenarios conflict.")
    stage: Literal["prospect", "initial", "continuing", "dormant", "any"]
    entry: Entry
    segment: dict[str, str | None | list[str | None]] = Field(default_factory=dict)
    exit: Exit = Exit()
    holdout_percent: float | None = Field(
        None, ge=0, le=50, description="Share held out as control group (default: KIZUNA_CAMPAIGN_HOLDOUT_PERCENT)."
    )
    steps: list[Step] = Field(min_length=1)

    @field_validator("segment")
    @classmethod
    def _known_columns(cls, segment: dict) -> dict:
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


def _shown(folder: Path) -> str:
    """A template folder as a person finds it: the shipped one relative to the work tree."""
    try:
        return str(folder.resolve().relative_to(TEMPLATE_DIR.parent.parent))
    except ValueError:
        return str(folder)


def _describe(error: dict, data: dict | None = None) -> str:
    where = (".".join(str(p) for p in error["loc"]) or "(top level)") + _step_named(error["loc"], data)
    return f"  - {where}: {error['msg']}"


def _step_named(loc: tuple, data: dict | None) -> str:
    """` (step <id>)` after an error's location inside a step, so a marketer finds it without counting."""
    steps = (data or {}).get("steps")
    if len(loc) > 1 and loc[0] == "steps" and isinstance(loc[1], int) and isinstance(steps, list) \
            and loc[1] < len(steps) and isinstance(steps[loc[1]], dict) and steps[loc[1]].get("id"):
        return f" (step {steps[loc[1]]['id']})"
    return ""


def load_scenario(path: Path, dirs: list[Path] | None = None) -> Scenario:
    """Read and validate one scenario file; a ScenarioError names the file, each bad field and the fix.

    Its templates are looked up in `dirs` (default: those of the scenario folder in use, `template_dirs()`)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path.name}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path.name}: a scenario file holds one mapping (id, name, priority, ...)")
    try:
        return Scenario.model_validate(data, context={"template_dirs": dirs or template_dirs()})
    except ValidationError as exc:
        lines = "\n".join(_describe(e, data) for e in exc.errors())
        raise ScenarioError(f"{path.name}: invalid scenario:\n{lines}") from None


def load_scenarios(folder: Path | None = None) -> list[Scenario]:
    """All scenarios of a folder (default: KIZUNA_SCENARIOS_DIR, else the shipped ones), highest
    priority first; ids must be unique across files."""
    folder = scenario_dir() if folder is None else Path(folder)
    if not folder.is_dir():
        raise ScenarioError(f"no scenario folder {folder}: create it with scenario files (*.yaml) and a templates/ "
                            "folder beside them, or unset KIZUNA_SCENARIOS_DIR to use the shipped scenarios.")
    dirs = template_dirs(folder)
    scenarios = [load_scenario(p, dirs) for p in sorted(folder.glob("*.yaml"))]
    seen: dict[str, int] = {}
    for s in scenarios:
        seen[s.id] = seen.get(s.id, 0) + 1
    duplicated = [i for i, n in seen.items() if n > 1]
    if duplicated:
        raise ScenarioError(f"scenario ids used by more than one file in {folder}: {duplicated}")
    return sorted(scenarios, key=lambda s: (-s.priority, s.id))

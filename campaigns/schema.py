"""Scenario files: the schema marketers write against, with errors that name file, field and fix.

A scenario is designed on the five axes of docs/domain.md: segment (who), channel, content
(template), offer and timing (days after an anchor event). It also states its goal
(reaching it ends the scenario for that customer), its priority (the higher wins when
two scenarios would reach the same customer through the same channel on the same
night) and its hold-out share (a stable control group that is recorded, never sent).
"""

from __future__ import annotations

import re
from datetime import date, time
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

# --- Predictions (issue 19, docs/predictions.md): segments on marts.customer_predictions (alias `p`). -----
#: The churn-risk band (low / medium / high), like the other named columns.
SEGMENT_COLUMNS["churn_risk_band"] = "p.churn_risk_band"
#: Numeric thresholds: name in the scenario file -> (SQL over `p`, comparison). A customer without a
#: prediction (no fitted model: a shop too small) matches none of them.
SEGMENT_RANGES = {
    "p_alive_below": ("p.p_alive", "<"),
    "p_alive_at_least": ("p.p_alive", ">="),
    "predicted_clv_12m_at_least": ("p.predicted_clv_12m", ">="),
    "predicted_clv_12m_below": ("p.predicted_clv_12m", "<"),
}
#: Segment names that read marts.customer_predictions.
PREDICTION_SEGMENTS = ("churn_risk_band", *SEGMENT_RANGES)
# ----------------------------------------------------------------------------------------------------

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

# --- More anchors (issue 17, part 3): birthday, a named date column, the run-out date. ------------
#: Anchors that can lie ahead of the run date, so steps may come before them (negative `day`, e.g.
#: `day: -7` is a week before the birthday). Anchors of past events only take day >= 0.
FUTURE_ANCHORS = ("birthday", "date_column", "run_out")
#: This year's birthday (and the neighbouring years' the window needs: `{years}`), 29 Feb on
#: 28 Feb in a year without it. Each year's birthday is its own anchor, so once a year.
ANCHOR_SQL["birthday"] = (
    "select customer_id, case when month(birth_date) = 2 and day(birth_date) = 29 "
    "and not (y % 4 = 0 and (y % 100 <> 0 or y % 400 = 0)) then make_date(y, 2, 28) "
    "else make_date(y, month(birth_date), day(birth_date)) end as anchor_date "
    "from marts.dim_customers, (values {years}) years(y) where birth_date is not null"
)
#: Any date or timestamp column of dim_customers or another mart with a customer_id, named in the
#: scenario (validated against the warehouse: check_entry_columns).
ANCHOR_SQL["date_column"] = ('select cast(customer_id as varchar) as customer_id, cast("{column}" as date) '
                             'as anchor_date from {table} where "{column}" is not null')
#: The day the product of the customer's last order of it runs out (marts.customer_run_out: units
#: × the product's days_per_unit after that order); `{products}` narrows it to some products.
ANCHOR_SQL["run_out"] = ("select customer_id, run_out_date as anchor_date from marts.customer_run_out "
                         "where run_out_date is not null{products}")
#: Issue 19: the day the customer is expected to order next (marts.customer_predictions: the last order +
#: the expected time between orders); steps before it (day: -5) remind ahead of the reorder.
FUTURE_ANCHORS = (*FUTURE_ANCHORS, "expected_next_order")
ANCHOR_SQL["expected_next_order"] = ("select customer_id, expected_next_order_date as anchor_date "
                                     "from marts.customer_predictions where expected_next_order_date is not null")
#: Marts a date_column anchor may read (dim_customers by default); each needs a customer_id column.
DATE_COLUMN_DEFAULT_TABLE = "marts.dim_customers"
_NAME = r"^[a-z_][a-z0-9_]*$"
_PRODUCT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def anchor_years(anchor_from: date, anchor_to: date) -> str:
    """The years whose birthdays can fall in [anchor_from, anchor_to], as SQL VALUES rows: the
    window of one night spans at most a few, and crosses New Year when a lead time reaches back."""
    return ", ".join(f"({y})" for y in range(anchor_from.year, anchor_to.year + 1))
# ----------------------------------------------------------------------------------------------------
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


def _check_template(name: str, info: ValidationInfo) -> str:
    """A template named in a scenario exists (text and subject) in the folders in use."""
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


# ---- journeys: conditions on earlier steps and same-day fallback (docs/journeys.md) ----------------

#: What a condition can ask of an earlier step of the same scenario (same customer, same anchor date).
#: The engine's SQL for each is `campaigns.engine._conditions_sql`.
CONDITION_KINDS = ("delivered", "not_delivered", "opened", "not_opened", "clicked", "not_clicked",
                   "ordered", "not_ordered")
#: Kinds known only from SendGrid's events: the step they name must be an e-mail step.
EMAIL_EVENT_KINDS = ("opened", "not_opened", "clicked", "not_clicked")


class OnlyIf(_Strict):
    """`only_if`: the step goes out only if the customer did (not) react to an earlier step.

    Exactly one of the kinds names the earlier step; `within_days` is counted from that step's send
    date (default: the days between the two steps, the longest window the step can see on its day)."""

    delivered: str | None = None
    not_delivered: str | None = None
    opened: str | None = None
    not_opened: str | None = None
    clicked: str | None = None
    not_clicked: str | None = None
    ordered: str | None = None
    not_ordered: str | None = None
    within_days: int | None = Field(None, ge=1, description="Days after the earlier step's send date that count.")

    @model_validator(mode="after")
    def _one_kind(self) -> "OnlyIf":
        named = [k for k in CONDITION_KINDS if getattr(self, k) is not None]
        if len(named) != 1:
            raise ValueError(f"only_if takes exactly one of {list(CONDITION_KINDS)} (naming an earlier step), "
                             f"got {named or 'none'}; e.g. only_if: {{not_opened: d06_mail, within_days: 2}}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in CONDITION_KINDS if getattr(self, k) is not None)

    @property
    def step(self) -> str:
        """The earlier step's id."""
        return getattr(self, self.kind)


class Fallback(_Strict):
    """The same step through another channel, the same day, for a customer the step's own channel cannot
    reach (no consent, no address, suppressed on that channel). The step's offer and send time apply."""

    channel: Channel
    template: str

    @field_validator("template")
    @classmethod
    def _template_exists(cls, name: str, info: ValidationInfo) -> str:
        return _check_template(name, info)


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
    day: int = Field(ge=-366, le=3660, description="Days after the anchor event (negative: before an anchor "
                     f"that lies ahead, {list(FUTURE_ANCHORS)}).")
    channel: Channel
    template: str
    offer: Offer | None = None
    send_time: time | Literal["best"] = time(10, 0)
    send_time_fallback: time | None = Field(None, description="With send_time: best, the time for a customer "
                                            "with no opens yet (default 10:00).")
    # journeys (docs/journeys.md): a condition on an earlier step; channels to try when `channel` cannot reach
    only_if: OnlyIf | None = None
    fallback: list[Fallback] = Field(default_factory=list, description="Tried in order (one mapping or a list).")
    variants: list[Variant] | None = Field(
        None, description="A/B test: two or more variants with weights (docs/ab-tests.md); the first is the control.")

    @field_validator("template")
    @classmethod
    def _template_exists(cls, name: str, info: ValidationInfo) -> str:
        return _check_template(name, info)

    @field_validator("fallback", mode="before")
    @classmethod
    def _fallback_list(cls, value: object) -> object:
        return [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _fallback_channels_differ(self) -> "Step":
        channels = [self.channel, *(f.channel for f in self.fallback)]
        if len(channels) != len(set(channels)):
            raise ValueError(f"step {self.id}: a fallback must use another channel than the step and the other "
                             f"fallbacks, got {channels}; remove the repeated one")
        return self

    @property
    def channels(self) -> tuple[str, ...]:
        """The step's channel, then its fallback channels, in the order they are tried."""
        return (self.channel, *(f.channel for f in self.fallback))

    def on_channel(self, channel: str) -> "Step":
        """The step as sent through `channel`: itself, or its fallback for that channel (its template)."""
        if channel == self.channel:
            return self
        for f in self.fallback:
            if f.channel == channel:
                return self.model_copy(update={"channel": f.channel, "template": f.template, "fallback": []})
        raise ScenarioError(f"step {self.id} has no {channel} variant (channels: {list(self.channels)})")

    @model_validator(mode="after")
    def _fallback_only_with_best(self) -> "Step":
        if self.send_time_fallback is not None and self.send_time != "best":
            raise ValueError("send_time_fallback applies only with send_time: best; remove it or set send_time: best")
        return self

    # --- Send time (issue 17, part 4) ---------------------------------------------------------------
    @property
    def fixed_send_time(self) -> time:
        """The step's own time: send_time, or with `best` its fallback (10:00 unless set)."""
        if self.send_time == "best":
            return self.send_time_fallback or time(10, 0)
        return self.send_time

    @property
    def uses_best_time(self) -> bool:
        """`send_time: best` on a channel that delivers at a time (a printed list ignores it)."""
        return self.send_time == "best" and self.channel in TIMED_CHANNELS

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
        if self.fallback:
            raise ValueError(f"{where}: a step with an A/B test cannot have a fallback channel yet (each variant "
                             "may send on a channel of its own): remove `fallback` or `variants`")
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


#: Channels a message reaches at a chosen time; DM, phone and package-insert lists ignore send_time.
TIMED_CHANNELS = ("email", "line", "sms")


class Entry(_Strict):
    event: str = Field(description=f"One of {sorted(ANCHOR_SQL)}.")
    n: int | None = Field(None, ge=1, description="For nth_order and subscription_delivery: which one (1, 2, 3, ...).")
    column: str | None = Field(None, pattern=_NAME, description="For date_column: the date (or timestamp) column.")
    table: str | None = Field(None, pattern=r"^marts\.[a-z_][a-z0-9_]*$",
                              description=f"For date_column: the mart holding it (default {DATE_COLUMN_DEFAULT_TABLE}).")
    product: list[str] | None = Field(None, min_length=1, description="For run_out: only these products' run-out "
                                      "(product ids); default every product with days_per_unit.")

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

    @model_validator(mode="after")
    def _anchor_options(self) -> "Entry":
        """column/table belong to date_column, product to run_out (issue 17, part 3)."""
        if self.event == "date_column" and self.column is None:
            raise ValueError("event date_column needs column (e.g. column: last_order_date), a date or timestamp "
                             f"column of {DATE_COLUMN_DEFAULT_TABLE} (or of the mart named in table)")
        if self.event != "date_column" and (self.column is not None or self.table is not None):
            raise ValueError(f"column and table apply only to event date_column; remove them for {self.event}")
        if self.event != "run_out" and self.product is not None:
            raise ValueError(f"product applies only to event run_out; remove it for {self.event} "
                             "(to pick customers by product, use segment: product)")
        for product in self.product or []:
            if not re.fullmatch(_PRODUCT_ID, product):
                raise ValueError(f"product id {product!r}: letters, digits, '_', '.', '-' only")
        return self

    @property
    def key(self) -> str:
        if self.event == "date_column":
            return f"date_column:{self.table or DATE_COLUMN_DEFAULT_TABLE}.{self.column}"
        if self.event == "run_out" and self.product:
            return f"run_out:{','.join(sorted(self.product))}"
        return self.event if self.n is None else f"{self.event}:{self.n}"

    def sql(self, anchor_from: date | None = None, anchor_to: date | None = None) -> str:
        """The anchors' SELECT (customer_id, anchor_date). A birthday needs the window of anchor dates the
        night looks at, [anchor_from, anchor_to], to know which years' birthdays to produce."""
        products = (" and list_contains([" + ", ".join(f"'{p}'" for p in sorted(self.product)) + "], product_id)"
                    if self.product else "")
        years = anchor_years(anchor_from, anchor_to) if anchor_from and anchor_to else ""
        if self.event == "birthday" and not years:
            raise ValueError("a birthday anchor needs the window of anchor dates (anchor_from, anchor_to)")
        return ANCHOR_SQL[self.event].format(n=self.n, years=years, column=self.column,
                                             table=self.table or DATE_COLUMN_DEFAULT_TABLE, products=products)

    @property
    def table_read(self) -> str:
        """The warehouse table the anchor reads first, for a clear error when it is missing."""
        if self.event == "date_column":
            return self.table or DATE_COLUMN_DEFAULT_TABLE
        return {"run_out": "marts.customer_run_out",
                "expected_next_order": "marts.customer_predictions"}.get(self.event, "")


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
    segment: dict[str, str | float | None | list[str | None]] = Field(default_factory=dict)
    exit: Exit = Exit()
    holdout_percent: float | None = Field(
        None, ge=0, le=50, description="Share held out as control group (default: KIZUNA_CAMPAIGN_HOLDOUT_PERCENT)."
    )
    steps: list[Step] = Field(min_length=1)

    @field_validator("segment")
    @classmethod
    def _known_columns(cls, segment: dict) -> dict:
        unknown = sorted(set(segment) - set(SEGMENT_COLUMNS) - set(SEGMENT_RANGES))
        if unknown:
            raise ValueError(f"unknown segment column(s) {unknown}; use one of "
                             f"{list(SEGMENT_COLUMNS) + list(SEGMENT_RANGES)}")
        _check_segment_values(segment)
        return segment

    @model_validator(mode="after")
    def _days_before_only_future_anchors(self) -> "Scenario":
        """A step before its anchor (negative day) needs an anchor that lies ahead (issue 17, part 3)."""
        early = [f"steps.{i}.day ({st.id}: {st.day})" for i, st in enumerate(self.steps) if st.day < 0]
        if early and self.entry.event not in FUTURE_ANCHORS:
            raise ValueError(f"{', '.join(early)}: a negative day (before the anchor) needs an anchor that lies "
                             f"ahead ({', '.join(FUTURE_ANCHORS)}); {self.entry.event} is in the past once known: "
                             "use day >= 0")
        return self

    @model_validator(mode="after")
    def _unique_step_ids(self) -> "Scenario":
        ids = [s.id for s in self.steps]
        if len(ids) != len(set(ids)):
            raise ValueError(f"step ids must be unique within a scenario, got {ids}")
        return self

    @model_validator(mode="after")
    def _conditions_name_earlier_steps(self) -> "Scenario":
        for st in self.steps:
            if st.only_if is not None:
                _check_condition(self, st)
        return self

    def condition_step(self, step: Step) -> Step | None:
        """The earlier step `step`'s condition names; None in a scenario trimmed in code (model_copy does not
        validate) that left it out: then no row of it is planned, as if it was never sent."""
        assert step.only_if is not None
        return next((s for s in self.steps if s.id == step.only_if.step), None)

    def condition_days(self, step: Step) -> int:
        """The window of `step`'s condition in days after the earlier step's send date (default: the days
        between the two steps)."""
        assert step.only_if is not None
        earlier = self.condition_step(step)
        return step.only_if.within_days or max(step.day - (earlier.day if earlier else step.day), 1)


def _check_segment_values(segment: dict) -> None:
    """Thresholds (issue 19) take a number, the named columns a name or a list of names."""
    for name, value in segment.items():
        if name in SEGMENT_RANGES:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"segment {name} takes a number (e.g. {name}: 0.3), got {value!r}")
            if name.startswith("p_alive") and not 0 <= value <= 1:
                raise ValueError(f"segment {name} is a probability between 0 and 1, got {value}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError(f"segment {name} takes a name or a list of names, not the number {value!r} "
                             f"(write it in quotes: {name}: \"{value}\")")


def _check_condition(scenario: "Scenario", step: Step) -> None:
    """`only_if` names an earlier step of the same scenario, of a channel that reports what is asked,
    with a window the step can see whole on its day. Errors name the step and the fix."""
    cond = step.only_if
    assert cond is not None
    where = f"step {step.id} (only_if: {{{cond.kind}: {cond.step}}})"
    earlier = {s.id: s for s in scenario.steps if s.day < step.day}
    if cond.step not in earlier:
        same = [s.id for s in scenario.steps if s.id == cond.step]
        why = (f"{cond.step} is not before it (day {next(s.day for s in scenario.steps if s.id == cond.step)} "
               f"vs {step.day})" if same else f"this scenario has no step {cond.step}")
        raise ValueError(f"{where}: {why}; name an earlier step of this scenario: {sorted(earlier) or 'none'}")
    ref = earlier[cond.step]
    if cond.kind in EMAIL_EVENT_KINDS and ref.channel != "email":
        raise ValueError(f"{where}: opens and clicks are known only for e-mail (SendGrid events), and "
                         f"{ref.id} is a {ref.channel} step; name an e-mail step, or use delivered/not_delivered")
    gap = step.day - ref.day
    if cond.within_days is not None and cond.within_days > gap:
        raise ValueError(f"{where}: within_days {cond.within_days} is longer than the {gap} day(s) between "
                         f"{ref.id} (day {ref.day}) and {step.id} (day {step.day}); the step is decided on its "
                         f"day, so use within_days <= {gap} or move the step to day {ref.day + cond.within_days}")


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


# --- More anchors (issue 17, part 3): checks against the warehouse ------------------------------------
_DATE_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S")


def entry_problems(con, scenarios: list[Scenario]) -> list[str]:
    """What an entry names that the warehouse (a DuckDB connection) does not have: a date_column's mart,
    its customer_id, the column itself (with the date columns it does have) or a non-date column.
    One line per problem, naming scenario, column and fix; empty when all is there."""
    problems = []
    for s in scenarios:
        if s.entry.event != "date_column":
            continue
        table = s.entry.table or DATE_COLUMN_DEFAULT_TABLE
        schema, name = table.split(".", 1)
        columns = dict(con.execute(
            "select column_name, data_type from duckdb_columns() where database_name = current_database() "
            "and schema_name = ? and table_name = ?", [schema, name]).fetchall())
        dates = sorted(c for c, t in columns.items() if t.upper() in _DATE_TYPES)
        where = f"scenario {s.id}: entry.column {s.entry.column!r}"
        if not columns:
            problems.append(f"{where}: the warehouse has no table {table}: name an existing mart in entry.table "
                            "(or run the nightly build first)")
        elif "customer_id" not in columns:
            problems.append(f"{where}: {table} has no customer_id column, so its dates cannot anchor a customer")
        elif s.entry.column not in columns:
            problems.append(f"{where}: {table} has no such column (列がありません); date columns there: "
                            f"{', '.join(dates) or '(none)'}")
        elif s.entry.column not in dates:
            problems.append(f"{where}: {table}.{s.entry.column} is {columns[s.entry.column]}, not a date or "
                            f"timestamp (日付の列ではありません); date columns there: {', '.join(dates) or '(none)'}")
    return problems

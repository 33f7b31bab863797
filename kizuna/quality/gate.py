"""Data-quality gates with Great Expectations, run on pandas frames read from DuckDB.

GE 1.x through SQLAlchemy on DuckDB returns wrong results (see STACK.md), so each
gate reads only what it must judge (the night's batch, or a mart) into pandas and
validates it with an ephemeral context. Derived facts that span tables (referential
integrity, amounts that must add up, the quarantined share) are computed in SQL as
helper columns and then checked like any other column, so every finding shows up in
one GE result with its table, column, count and example values.

A check of severity `error` stops the run; a `warning` is reported and the run goes on.
"""

from __future__ import annotations

import logging

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import duckdb

from kizuna.errors import QualityGateFailed

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Check:
    """One expectation on one column of one frame."""

    frame: str
    expectation: str  # a GE expectation class name, e.g. "ExpectColumnValuesToNotBeNull"
    column: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    severity: Severity = "error"
    why: str = ""


@dataclass(frozen=True)
class CheckOutcome:
    check: Check
    success: bool
    unexpected_count: int
    examples: list[Any]

    def describe(self) -> str:
        c = self.check
        shown = ", ".join(repr(v) for v in self.examples[:5])
        return (
            f"[{c.severity}] {c.frame}.{c.column}: {c.expectation} failed for {self.unexpected_count} row(s)"
            + (f" (e.g. {shown})" if shown else "")
            + (f" - {c.why}" if c.why else "")
        )


@dataclass
class GateResult:
    gate: str
    outcomes: list[CheckOutcome]
    rows_checked: dict[str, int]

    @property
    def errors(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.success and o.check.severity == "error"]

    @property
    def warnings(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.success and o.check.severity == "warning"]

    @property
    def passed(self) -> int:
        return sum(o.success for o in self.outcomes)

    def summary(self) -> str:
        head = f"{self.gate}: {self.passed}/{len(self.outcomes)} checks passed"
        problems = [o.describe() for o in self.errors + self.warnings]
        return "\n".join([head, *("  " + p for p in problems)])

    def raise_on_error(self) -> None:
        if self.errors:
            raise QualityGateFailed(
                self.summary() + "\nThe run stopped here: nothing was modelled or sent. "
                "Fix the export (or the check's threshold) and run the night again."
            )


# -- the checks -------------------------------------------------------------------------

EMAIL_PATTERN = r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$"

RAW_NIGHT_QUERIES = {
    "orders": """
        select o.order_id, o.status, o.total,
               (o.subtotal - o.discount + o.shipping_fee = o.total) as total_adds_up,
               (c.customer_id is not null) as customer_known
        from raw.orders o left join raw.customers c using (customer_id)
        where o._night = $night
    """,
    "customers": "select customer_id, email from raw.customers where _night = $night",
    "load_log": """
        select file_name,
               case when rows_read = 0 then 0.0 else rows_quarantined / rows_read end as quarantined_share
        from raw._load_log where night = $night and status = 'loaded'
    """,
}

RAW_NIGHT_CHECKS = (
    Check("orders", "ExpectColumnValuesToNotBeNull", "order_id"),
    Check("orders", "ExpectColumnValuesToBeUnique", "order_id"),
    Check("orders", "ExpectColumnValuesToBeInSet", "status",
          {"value_set": ["confirmed", "cancelled", "returned"]}),
    Check("orders", "ExpectColumnValuesToBeBetween", "total", {"min_value": 0}, why="amounts cannot be negative"),
    Check("orders", "ExpectColumnValuesToBeInSet", "total_adds_up", {"value_set": [True]},
          why="total must equal subtotal - discount + shipping_fee"),
    Check("orders", "ExpectColumnValuesToBeInSet", "customer_known", {"value_set": [True]},
          why="every order needs its customer in the customers export"),
    Check("customers", "ExpectColumnValuesToBeUnique", "customer_id"),
    Check("customers", "ExpectColumnValuesToMatchRegex", "email", {"regex": EMAIL_PATTERN}, severity="warning",
          why="full-width characters or stray spaces make an address undeliverable"),
    Check("load_log", "ExpectColumnValuesToBeBetween", "quarantined_share", {"max_value": 0.05},
          why="more than 5% of a file's rows were quarantined: the export is probably broken"),
)

MART_QUERIES = {
    "dim_customers": "select customer_id, stage from marts.dim_customers",
}

MART_CHECKS = (
    Check("dim_customers", "ExpectColumnValuesToNotBeNull", "customer_id"),
    Check("dim_customers", "ExpectColumnValuesToBeUnique", "customer_id", why="one row per customer"),
    Check("dim_customers", "ExpectColumnValuesToBeInSet", "stage",
          {"value_set": ["prospect", "initial", "continuing", "dormant"]}),
)


def _validate(gate: str, frames: dict[str, Any], checks: tuple[Check, ...]) -> GateResult:
    import great_expectations as gx  # heavy import: only when a gate runs
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GE announces the temporary docs folder of every ephemeral context at INFO: noise here.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas(gate)
    outcomes: list[CheckOutcome] = []
    for name, frame in frames.items():
        mine = [c for c in checks if c.frame == name]
        if not mine:
            continue
        suite = gx.ExpectationSuite(name=f"{gate}.{name}")
        for index, c in enumerate(mine):
            suite.add_expectation(getattr(gxe, c.expectation)(column=c.column, meta={"check": index}, **c.kwargs))
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("batch").get_batch(
            batch_parameters={"dataframe": frame}
        )
        result = batch.validate(suite, result_format="SUMMARY")
        for r in result.results:
            c = mine[r.expectation_config.meta["check"]]
            outcomes.append(CheckOutcome(
                c, bool(r.success), int(r.result.get("unexpected_count") or 0),
                list(r.result.get("partial_unexpected_list") or []),
            ))
    return GateResult(gate, outcomes, {name: len(frame) for name, frame in frames.items()})


def check_raw_night(con: duckdb.DuckDBPyConnection, night: date) -> GateResult:
    """The raw-data gate: tonight's batch of each table, as loaded."""
    frames = {name: con.execute(sql, {"night": night}).df() for name, sql in RAW_NIGHT_QUERIES.items()}
    return _validate("raw data", frames, RAW_NIGHT_CHECKS)


def check_marts(con: duckdb.DuckDBPyConnection) -> GateResult:
    """The mart gate, run before anything is sent."""
    frames = {name: con.execute(sql).df() for name, sql in MART_QUERIES.items()}
    return _validate("marts", frames, MART_CHECKS)

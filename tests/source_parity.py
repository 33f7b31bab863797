"""Test helper: the same generated shop through two sources must give the same marts.

A source that cannot carry something (EC-CUBE's core tables have no subscription and no
acquisition medium; Shopify keeps subscriptions elsewhere) is compared with a reference
built from kizuna's own CSV export of the same shop *restricted to what that source
carries* (`restrict`): tables it does not deliver are left out, columns it does not
deliver are left empty. Ids a source spells differently are translated in the reference
(`translate`), never in the candidate.

    reference = restrict(shop_exports, tmp / "ref", keep={"orders": None, ...}, empty={"orders": ["media_code"]})
    build(Settings(..., exports_dir=reference))            # KIZUNA_SOURCE=csv
    build(Settings(..., source="shopify", ...))            # the candidate
    assert_same_marts(ref_settings, candidate_settings)

Nothing here fakes a source: both sides run the real loader, gate, erasure and dbt build.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb

from kizuna import stages
from kizuna.config import Settings

#: Every mart analysts read, except the campaign results (no sends in these comparisons).
MARTS = ("dim_customers", "fct_orders", "customer_rfm", "cohort_retention_monthly", "cohort_purchase_counts",
         "revenue_new_vs_existing_monthly", "ltv_by_media", "ltv_by_media_cohort", "f2_conversion",
         "f2_days_to_second_purchase", "subscription_retention", "subscription_retention_by_delivery",
         "customer_value_deciles", "survey_quadrants", "campaign_audience")


def restrict(exports: Path, dest: Path, keep: dict[str, Iterable[str] | None],
             empty: dict[str, Iterable[str]] | None = None,
             translate: Callable[[str, str, str], str] | None = None) -> Path:
    """Copy a folder of nightly exports (kizuna's format) keeping only the tables in `keep` (None: every
    column; a list: those columns), with the columns in `empty` emptied, and every value passed through
    `translate(table, column, value)` when given. `shop.json` is copied. Returns `dest`."""
    empty = {t: set(c) for t, c in (empty or {}).items()}
    for night in sorted(p for p in exports.iterdir() if p.is_dir()):
        for table, columns in keep.items():
            src = night / f"{table}.csv"
            if not src.exists():
                continue
            with src.open(encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh)
                header = [c for c in reader.fieldnames or [] if columns is None or c in set(columns)]
                rows = []
                for row in reader:
                    out = {}
                    for c in header:
                        value = "" if c in empty.get(table, ()) else row[c]
                        out[c] = translate(table, c, value) if translate and value else value
                    rows.append(out)
            buf = io.StringIO()
            writer = csv.DictWriter(buf, header, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            (dest / night.name).mkdir(parents=True, exist_ok=True)
            (dest / night.name / src.name).write_text(buf.getvalue(), encoding="utf-8")
    if (exports / "shop.json").exists():
        shutil.copy2(exports / "shop.json", dest / "shop.json")
    return dest


def build(settings: Settings, night: date | None = None, run_date: date | None = None) -> stages.NightlyOutcome:
    """Load every night of the source through `night` (default: its newest), erase, build the marts."""
    outcome = stages.NightlyOutcome(night=stages.resolve_night(settings, night))
    outcome.loads = stages.ingest(settings, outcome.night)
    outcome.erasure = stages.erase(settings)
    outcome.build = stages.build_marts(settings, run_date or outcome.run_date)
    return outcome


def _normal(value):
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, Decimal):
        return round(float(value), 9)
    return value


def mart_rows(settings: Settings, table: str, drop_columns: Iterable[str] = ()) -> tuple[list[str], list[tuple]]:
    """(columns, rows sorted) of `marts.<table>`, floats rounded to 1e-9, `drop_columns` left out."""
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        columns = [r[0] for r in con.execute(
            "select column_name from duckdb_columns() where schema_name = 'marts' and table_name = ? "
            "order by column_index", [table]).fetchall() if r[0] not in set(drop_columns)]
        if not columns:
            return [], []
        rows = con.execute(f"select {', '.join(columns)} from marts.{table}").fetchall()
    return columns, sorted((tuple(_normal(v) for v in r) for r in rows), key=repr)


def assert_same_marts(reference: Settings, candidate: Settings, tables: Iterable[str] = MARTS,
                      drop_columns: dict[str, Iterable[str]] | None = None) -> None:
    """Every row of every mart equal (money exact, rates within 1e-9); the first differences are shown."""
    problems = []
    for table in tables:
        dropped = (drop_columns or {}).get(table, ())
        ref_cols, ref = mart_rows(reference, table, dropped)
        cand_cols, cand = mart_rows(candidate, table, dropped)
        if ref_cols != cand_cols:
            problems.append(f"{table}: columns differ: {ref_cols} vs {cand_cols}")
            continue
        if ref != cand:
            problems.append(f"{table}: {row_differences(ref, cand)} (columns {ref_cols})")
    assert not problems, "marts differ:\n" + "\n".join(problems)


def row_differences(ref: list[tuple], cand: list[tuple]) -> str:
    """The counts and the first rows only one side has."""
    only_ref = [r for r in ref if r not in set(cand)][:3]
    only_cand = [r for r in cand if r not in set(ref)][:3]
    return f"{len(ref)} vs {len(cand)} rows; only in the reference: {only_ref}; only from the source: {only_cand}"

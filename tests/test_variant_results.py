"""campaign_variant_results: built once for real by dbt, then its compiled SQL run on synthetic A/B tests.

dbt builds the mart (and its data tests) on a small warehouse; the SQL dbt compiled for it is then
executed as is, in DuckDB, against synthetic sends and orders written into the same raw tables and
marts.fct_orders (the mart's inputs): so the statistics tested are the mart's, not a copy. Many
experiments run in one execution: each simulated run is a scenario of its own.

- A true effect: variant b converts 30 % better (10 % → 13 %). With 200 sends per arm the mart says
  "no difference yet"; with 6,000 per arm, "b wins".
- A/A: 200 runs of two identical arms (10 %), 1,500 sends each, looked at after every 300 sends per
  arm (5 peeks, as a marketer reading the nightly report would): a winner is declared in at most
  5 % of the runs at any peek (the stated error rate).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from kizuna.events.load import create_raw_tables
from kizuna.modelling import build_models, target_dir
from test_dbt_models import RUN_DATE, _settings

LOADED = datetime(2025, 6, 30, 3)
SEND_DATE = date(2025, 5, 1)  # windows (30 days) complete by RUN_DATE
MART = "campaign_variant_results"


def _fct_orders(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists marts")
    con.execute("create or replace table marts.fct_orders (customer_id varchar, ordered_date date, revenue bigint, "
                "purchase_sequence_number bigint, order_kind varchar, delivery_number bigint, order_id varchar, "
                "ordered_at timestamp, media_code varchar, coupon_code varchar)")


def _experiments(con: duckdb.DuckDBPyConnection, arms: dict[str, float], runs: int, per_arm: int,
                 seed: int) -> None:
    """`runs` scenarios `run<k>` (goal: new order), one step `s1` with the variants `arms` (id -> true
    conversion rate) in file order, `per_arm` sends each; a converting customer orders 3 days after.

    Written in SQL (hundreds of thousands of rows in a moment). Whether a send converts depends on its
    key and the seed only, so a run seen with more sends keeps its first sends' outcomes (peeking)."""
    # Emptied by re-creating them with the same columns but no key: deleting and re-inserting hundreds of
    # thousands of keyed rows each peek costs minutes in DuckDB (the mart reads them all the same).
    for table in ("raw.campaign_sends", "raw.campaign_send_variants", "raw.campaign_step_variants",
                  "raw.campaign_scenarios", "raw.message_events", "marts.fct_orders"):
        con.execute(f"create or replace table {table} as select * from {table} where false")
    con.execute("create or replace temp table arms (variant varchar, position integer, rate double)")
    con.executemany("insert into arms values (?, ?, ?)", [(v, n, r) for n, (v, r) in enumerate(arms.items(), 1)])
    con.execute("""
        create or replace temp table synthetic as
        select 'run' || k as scenario_id, a.variant, a.position,
               'run' || k || '-' || a.variant || '-' || i as send_id,
               'run' || k || '-' || a.variant || '-c' || i as customer_id,
               (hash($seed, k, a.variant, i) % 1000000) / 1000000.0 < a.rate as converts
        from range($runs) r(k) cross join range($per_arm) n(i) cross join arms a
    """, {"seed": seed, "runs": runs, "per_arm": per_arm})
    con.execute("insert into raw.campaign_scenarios select distinct scenario_id, scenario_id, 'new_order', null, "
                "$1 from synthetic", [LOADED])
    con.execute("insert into raw.campaign_step_variants select distinct scenario_id, 's1', variant, position, 50, "
                "$1 from synthetic", [LOADED])
    con.execute("insert into raw.campaign_sends select send_id, scenario_id, 's1', customer_id, $1, 'email', $1, $1, "
                "'sent', null, null, $2, $2, $2 from synthetic", [SEND_DATE, LOADED])
    con.execute("insert into raw.campaign_send_variants select send_id, scenario_id, 's1', variant, $1 "
                "from synthetic", [LOADED])
    con.execute("insert into marts.fct_orders select customer_id, $1, 5000, 2, 'one_off', null, 'O-' || send_id, "
                "$1, null, null from synthetic where converts", [SEND_DATE + timedelta(days=3)])


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The warehouse and the mart's SQL as dbt compiled it (after building it and running its data tests
    on a small true-effect case)."""
    settings = _settings(tmp_path_factory.mktemp("variant_results"))
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.warehouse))
    try:
        _fct_orders(con)
        create_raw_tables(con, settings.dbt_project_dir)
        _experiments(con, {"a": 0.10, "b": 0.13}, runs=1, per_arm=300, seed=1)
    finally:
        con.close()
    result = build_models(settings, RUN_DATE, select=[MART])
    assert result.success
    tests = [n for n in result.nodes if n.resource_type == "test"]
    assert tests and all(n.status == "pass" for n in tests)
    path = next((target_dir(settings) / "compiled").rglob(f"{MART}.sql"))
    return settings.warehouse, path.read_text(encoding="utf-8")


def _results(warehouse: Path, sql: str, arms: dict[str, float], runs: int, per_arm: int, seed: int) -> list[dict]:
    con = duckdb.connect(str(warehouse))
    try:
        _experiments(con, arms, runs, per_arm, seed)
        cursor = con.execute(f"select * from ({sql}) r where not is_control order by scenario_id, variant")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
    finally:
        con.close()


def test_a_true_30_percent_better_variant_wins_only_after_enough_sends(compiled):
    warehouse, sql = compiled
    arms = {"a": 0.10, "b": 0.13}
    (early,) = _results(warehouse, sql, arms, runs=1, per_arm=200, seed=7)
    assert early["verdict"] == "no difference yet"
    assert early["still_needed_per_variant"] > 0
    (late,) = _results(warehouse, sql, arms, runs=1, per_arm=6000, seed=7)
    assert late["verdict"] == "b wins", late
    assert late["difference_ci_low"] > 0 and late["still_needed_per_variant"] == 0
    # The control better: named as the winner.
    (reverse,) = _results(warehouse, sql, {"a": 0.13, "b": 0.10}, runs=1, per_arm=6000, seed=7)
    assert reverse["verdict"] == "a wins"


def test_the_figures_follow_the_stated_formulas(compiled):
    warehouse, sql = compiled
    (row,) = _results(warehouse, sql, {"a": 0.10, "b": 0.13}, runs=1, per_arm=1000, seed=3)
    con = duckdb.connect(str(warehouse))
    try:
        n = dict(con.execute("select v.variant, count(o.customer_id) from raw.campaign_send_variants v "
                             "join raw.campaign_sends s using (send_id) left join marts.fct_orders o "
                             "on o.customer_id = s.customer_id group by 1").fetchall())
    finally:
        con.close()
    pa, pb = n["a"] / 1000, n["b"] / 1000
    se = ((pa * (1 - pa) + pb * (1 - pb)) / 1000) ** 0.5
    assert row["sent_count"] == 1000 and row["converted_count"] == n["b"]
    assert row["rate_difference"] == pytest.approx(pb - pa)
    assert row["difference_standard_error"] == pytest.approx(se)
    assert row["difference_ci_low"] == pytest.approx(pb - pa - 1.959964 * se)
    required = (1.959964 + 0.841621) ** 2 * (pa * (1 - pa) + pb * (1 - pb)) / (pb - pa) ** 2
    assert row["required_per_variant"] == pytest.approx(-(-required // 1))
    assert row["conversion_revenue"] == 5000 * n["b"]


def test_an_aa_split_declares_a_winner_no_more_often_than_the_stated_rate(compiled):
    warehouse, sql = compiled
    runs, peeks, step = 200, 5, 300
    declared: set[str] = set()
    single_look = 0
    for peek in range(1, peeks + 1):
        # The same runs seen with more sends each time (same seed: the first sends stay the same).
        rows = _results(warehouse, sql, {"a": 0.10, "b": 0.10}, runs=runs, per_arm=peek * step, seed=11)
        assert len(rows) == runs
        winners = {r["scenario_id"] for r in rows if r["verdict"] != "no difference yet"}
        declared |= winners
        if peek == peeks:
            single_look = len(winners)
    assert single_look <= 0.05 * runs
    assert len(declared) <= 0.05 * runs, f"{len(declared)} of {runs} A/A runs declared a winner at some peek"


def test_the_nightly_report_shows_the_variants_and_the_verdict(compiled, tmp_path):
    from kizuna import stages
    from kizuna.config import Settings
    from kizuna.report import write_nightly_report

    warehouse, sql = compiled
    _results(warehouse, sql, {"a": 0.10, "b": 0.13}, runs=1, per_arm=6000, seed=7)
    con = duckdb.connect(str(warehouse))
    try:
        con.execute(f"create or replace table marts.{MART} as {sql}")
        settings = Settings(home=tmp_path, data_dir=tmp_path / "data")
        page = write_nightly_report(con, settings, stages.NightlyOutcome(night=RUN_DATE))
    finally:
        con.execute(f"drop table marts.{MART}")
        con.close()
    text = page.read_text(encoding="utf-8")
    table = text[text.index('data-table="campaign-variants"'):]
    table = table[:table.index("</table>")]
    assert "run0" in table and "b の勝ち (b wins)" in table and "対照 (control)" in table

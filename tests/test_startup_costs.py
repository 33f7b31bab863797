"""Issue 20, start-up costs: what a night with nothing new no longer pays (docs/modelling.md).

- The mart gate does not ask Great Expectations again about a mart frame that passed the same checks
  unchanged (`GateResult.reused`); a changed value is checked again and caught.
- The prediction stage stands when the build rebuilt none of the marts it reads.
- `kizuna run`/`kizuna demo` run the night as the Prefect flow by default (local Prefect); without Prefect
  only with KIZUNA_LOCAL_PREFECT=false and no Prefect API configured where Prefect reads it (the
  environment, the active profile, prefect.toml).
"""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from kizuna import modelling, quality
from kizuna.night import prefect_api_configured, uses_prefect


def _rfm(con, rows):
    con.execute("create schema if not exists marts")
    con.execute("create or replace table marts.customer_rfm (customer_id varchar, recency_score int, "
                "frequency_score int, monetary_score int)")
    con.executemany("insert into marts.customer_rfm values (?, ?, ?, ?)", rows)


def _outcomes(result: quality.GateResult, table: str) -> dict[str, bool]:
    return {o.check.name: o.success for o in result.outcomes if o.check.table == table and o.error is None}


def test_mart_gate_reuses_a_frame_that_passed_unchanged_and_checks_a_changed_one_again(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    _rfm(con, [("C1", 5, 1, 3), ("C2", 1, 2, 4), ("C3", 3, 3, 3)])
    first = quality.check_marts(con)
    assert first.reused == []
    assert _outcomes(first, "customer_rfm") and all(_outcomes(first, "customer_rfm").values())

    again = quality.check_marts(con)
    assert again.reused == ["customer_rfm"]  # same rows (in whatever order), same checks: not asked again
    assert _outcomes(again, "customer_rfm") == _outcomes(first, "customer_rfm")
    assert again.passed == first.passed and len(again.outcomes) == len(first.outcomes)

    _rfm(con, [("C3", 3, 3, 3), ("C1", 5, 1, 3), ("C2", 1, 2, 4)])  # rebuilt, same rows in another order
    assert quality.check_marts(con).reused == ["customer_rfm"]

    con.execute("update marts.customer_rfm set recency_score = 9 where customer_id = 'C2'")
    changed = quality.check_marts(con)
    assert changed.reused == []
    assert changed.failed("customer_rfm.recency_score_1_to_5") is not None
    # A failed table is not remembered: it is checked again (and fails again) the next time.
    assert quality.check_marts(con).failed("customer_rfm.recency_score_1_to_5") is not None


def _build(*models: str) -> modelling.BuildResult:
    nodes = tuple(modelling.NodeResult(name=m, resource_type="model", status="success", seconds=0.1, message=None,
                                       unique_id=f"model.kizuna.{m}") for m in models)
    return modelling.BuildResult(run_date=date(2026, 12, 1), nodes=nodes, seconds=1.0,
                                 mode="incremental" if models else "skipped")


def test_predictions_stand_when_the_build_rebuilt_none_of_their_inputs(tmp_path):
    from kizuna import stages
    from kizuna.config import Settings

    settings = Settings(data_dir=tmp_path)  # no warehouse at all: a stage that tried to fit would fail
    assert stages.predict_customers(settings, date(2026, 12, 1), _build()) is None
    assert stages.predict_customers(settings, date(2026, 12, 1), _build("campaign_performance")) is None
    assert _build("dim_customers").rebuilt(*stages.PREDICTION_INPUTS)
    assert not _build("campaign_lift").rebuilt(*stages.PREDICTION_INPUTS)


@pytest.fixture
def no_prefect_api(monkeypatch, tmp_path):
    for name in ("PREFECT_API_URL", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_night_runs_on_local_prefect_by_default_and_directly_only_when_asked(no_prefect_api, monkeypatch):
    from kizuna.config import Settings

    monkeypatch.delenv("KIZUNA_LOCAL_PREFECT", raising=False)
    assert not prefect_api_configured()
    assert Settings(data_dir=no_prefect_api).local_prefect is True
    assert uses_prefect(Settings(data_dir=no_prefect_api))  # the default: the flow, on the temporary server
    assert not uses_prefect(Settings(data_dir=no_prefect_api, local_prefect=False))
    monkeypatch.setenv("KIZUNA_LOCAL_PREFECT", "false")  # as a shop's cron or a developer sets it
    assert not uses_prefect(Settings(data_dir=no_prefect_api))
    # A configured Prefect API wins over the fast path: the runs report to that server.
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert uses_prefect(Settings(data_dir=no_prefect_api))


def test_a_prefect_api_anywhere_prefect_reads_it_runs_the_night_as_a_flow(no_prefect_api, monkeypatch):
    from kizuna.config import Settings

    home = no_prefect_api / "prefect-home"
    home.mkdir()
    (home / "profiles.toml").write_text('active = "local"\n[profiles.local]\n'
                                        'PREFECT_API_URL = "http://127.0.0.1:4200/api"\n', encoding="utf-8")
    assert prefect_api_configured()
    monkeypatch.setenv("PREFECT_PROFILE", "ephemeral")  # another profile active: not that one's URL
    assert not prefect_api_configured()
    (no_prefect_api / "prefect.toml").write_text('[api]\nurl = "http://127.0.0.1:4200/api"\n', encoding="utf-8")
    assert prefect_api_configured()
    (no_prefect_api / "prefect.toml").unlink()
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert prefect_api_configured()
    assert uses_prefect(Settings(data_dir=no_prefect_api, local_prefect=False))


def test_each_warehouse_has_its_own_dbt_target_folder_beside_it(tmp_path):
    """dbt's partial parse holds for one profile (the warehouse path): a shared target folder was parsed
    again in full whenever another warehouse had built last."""
    from kizuna.config import Settings

    first = Settings(data_dir=tmp_path / "a")
    other = Settings(data_dir=tmp_path / "b")
    beside = Settings(data_dir=tmp_path / "a", warehouse=tmp_path / "a" / "other.duckdb")
    folders = {modelling.target_dir(s) for s in (first, other, beside)}
    assert len(folders) == 3
    for settings in (first, other, beside):
        assert modelling.target_dir(settings).is_relative_to(settings.warehouse.parent)
        assert not modelling.target_dir(settings).is_relative_to(settings.dbt_project_dir)


def test_the_summary_says_which_mart_tables_were_not_checked_again(tmp_path):
    """One line of `kizuna run`'s summary, in the shop's language, names the reused tables; none: no line."""
    from kizuna import cli

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    _rfm(con, [("C1", 5, 1, 3), ("C2", 1, 2, 4)])
    quality.check_marts(con)
    again = quality.check_marts(con)
    assert again.reused == ["customer_rfm"]
    with cli.console.capture() as captured:
        cli._print_reused(again)
    lines = captured.get().strip().splitlines()
    assert len(lines) == 1 and "customer_rfm" in lines[0] and "1 テーブル" in lines[0], lines
    with cli.console.capture() as captured:
        cli._print_reused(quality.GateResult("marts", [], {}))
    assert captured.get() == ""  # nothing reused: no line

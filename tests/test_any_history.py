"""Any history loads with documented settings only (issue 15, item 4).

A shop of the 1990s (the generator's `start_date`), with a fulfilment-cost table that starts
in 2000, runs end to end through the real command (`kizuna run --as-of 2000-01-01` in a
subprocess: Prefect, the loader, both gates, dbt) with no setting but where its data is:
the opening date is taken from the data, every order's cost is the earliest row's and
flagged, the quality report names what was estimated, the marts are measured as of the
day asked for. A broken later night stops the run with one short message, its trace in the
log file. The opening date's rules are checked on small warehouses, and the SQL of the cost
fallback by dbt unit tests (declared in the project, run here on the built warehouse).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
import yaml

from connectors.sources.loader import ensure_raw_tables
from kizuna import modelling, quality, stages
from kizuna.config import Settings
from kizuna.errors import KizunaError, QualityGateFailed

ROOT = Path(__file__).resolve().parent.parent
KIZUNA = Path(sys.executable).parent / "kizuna"
START, END, NIGHTS = date(1997, 1, 1), date(1999, 12, 20), 2
HISTORY_NIGHT, SECOND_NIGHT = date(1999, 12, 18), date(1999, 12, 19)
AS_OF = date(2000, 1, 1)
CUSTOMERS = 400


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory) -> Path:
    """One Prefect home for the module's runs: its temporary server's database is set up once."""
    return tmp_path_factory.mktemp("prefect-home")


def _kizuna(prefect_home: Path, data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """`kizuna ...` in a subprocess, not on a terminal, with only documented settings: where the data is."""
    env = {**os.environ, "KIZUNA_DATA_DIR": str(data_dir), "PREFECT_HOME": str(prefect_home)}
    for name in ("PREFECT_API_URL", "COLUMNS", "LINES", "KIZUNA_QUALITY_CONFIG", "KIZUNA_EXPORTS_DIR"):
        env.pop(name, None)
    return subprocess.run([str(KIZUNA), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def shop_1997(tmp_path_factory) -> Path:
    """The exports of a shop whose history starts on 1997-01-01 (generated once)."""
    from kizuna.demo_shop import generate_shop

    exports = tmp_path_factory.mktemp("shop1997") / "exports"
    summary = generate_shop(exports, customers=CUSTOMERS, seed=1997, end_date=END, nights=NIGHTS, start_date=START)
    assert summary.folders[0] == HISTORY_NIGHT.isoformat()
    return exports


@pytest.fixture(scope="module")
def ran(shop_1997, prefect_home, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    data_dir = tmp_path_factory.mktemp("run1997") / "data"
    shutil.copytree(shop_1997, data_dir / "exports")
    done = _kizuna(prefect_home, data_dir, "run", "--as-of", AS_OF.isoformat())
    assert done.returncode == 0, done.stdout + done.stderr
    return data_dir, done


def _one(data_dir: Path, sql: str):
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


# -- the generator's option --------------------------------------------------------------------


def test_the_generator_starts_the_history_on_the_day_asked(shop_1997):
    with (shop_1997 / HISTORY_NIGHT.isoformat() / "orders.csv").open(encoding="utf-8") as fh:
        ordered = sorted(r["ordered_at"] for r in csv.DictReader(fh))
    assert "1997-01-01" <= ordered[0] < "1997-02-01" and ordered[-1] < "1999-12-19"
    assert json.loads((shop_1997 / "shop.json").read_text(encoding="utf-8"))["start_date"] == START.isoformat()


def test_a_start_after_the_history_night_is_refused(tmp_path):
    from kizuna.demo_shop import generate_shop

    with pytest.raises(KizunaError, match="start_date"):
        generate_shop(tmp_path, customers=10, seed=1, end_date=END, nights=NIGHTS, start_date=date(1999, 12, 18))


# -- the 1990s shop end to end --------------------------------------------------------------------


def test_a_1990s_history_runs_end_to_end_with_documented_settings_only(ran):
    data_dir, done = ran
    out = done.stdout
    assert "Traceback" not in out + done.stderr
    for night in ("1999-12-18", "1999-12-19", "1999-12-20"):
        assert f"品質チェック 取込データ（{night} 分）: 98/98 件合格" in out, out  # KIZUNA_LOCALE=ja, the default
    # The opening date came from the data (its earliest date) and is kept in the warehouse.
    [(opened, origin)] = _one(data_dir, "select opening_date, origin from raw._opening_date")
    earliest = _one(data_dir, "select min(registered_at)::date from raw.customers")[0][0]
    assert opened == earliest and date(1996, 12, 31) <= opened < date(1997, 2, 1)
    assert origin == "taken from the data: the earliest customers.registered_at, night 1999-12-18"
    # Every order is older than the cost table (which starts in 2000): the earliest row's costs, flagged.
    rows = _one(data_dir, "select count(*), count(*) filter (where cost_is_estimated), min(fulfilment_cost), "
                          "max(fulfilment_cost) from marts.fct_orders")
    with (ROOT / "dbt_project" / "seeds" / "fulfilment_costs.csv").open(encoding="utf-8") as fh:
        first = min(csv.DictReader(fh), key=lambda r: r["valid_from"])
    assert first["valid_from"] > "1999-12-20"  # the premise: no row for the history's dates
    cost = int(first["order_handling_cost"]) + int(first["shipping_cost"]) + int(first["payment_fee"])
    orders = rows[0][0]
    assert orders > CUSTOMERS and rows[0] == (orders, orders, cost, cost)
    # The LTV marts say how many orders' costs are estimates: all of them, here.
    [(purchases, estimated)] = _one(data_dir, "select sum(purchases), sum(estimated_cost_orders) "
                                              "from marts.ltv_by_media where horizon = 'lifetime'")
    assert purchases == estimated == orders


def test_the_quality_report_names_what_was_estimated(ran):
    data_dir, done = ran
    (first_day, last_day), = _one(data_dir, "select min(ordered_date), max(ordered_date) from marts.fct_orders")
    orders = _one(data_dir, "select count(*) from marts.fct_orders")[0][0]
    gates = json.loads((data_dir / "reports" / "quality-1999-12-20.json").read_text(encoding="utf-8"))
    [warning] = [o for o in gates["marts"]["outcomes"] if not o["success"]]
    assert warning["name"] == "fct_orders.cost_is_estimated" and warning["severity"] == "warning"
    assert warning["unexpected_count"] == orders
    [example] = warning["examples"]
    assert f"{orders:,} order(s) placed {first_day} .. {last_day}" in example
    assert "dbt_project/seeds/fulfilment_costs.csv" in example and "valid from 2000-01-01" in example
    page = (data_dir / "reports" / "quality-1999-12-20.html").read_text(encoding="utf-8")
    assert "fct_orders.cost_is_estimated" in page and f"{orders:,} order(s) placed {first_day}" in page
    # ... and so does the console, on one line: not cut, not hard-wrapped at 80 columns.
    line = next(ln for ln in done.stdout.splitlines() if "fct_orders.cost_is_estimated" in ln)
    assert len(line) > 120 and f"{orders:,} order(s) placed {first_day} .. {last_day}" in line
    assert "…" not in done.stdout


def test_the_marts_are_measured_as_of_the_day_asked_and_nothing_is_sent(ran):
    data_dir, done = ran
    assert _one(data_dir, "select distinct as_of_date from marts.customer_rfm") == [(AS_OF,)]
    assert not _one(data_dir, "select customer_id from marts.customer_rfm "
                              "where recency_days <> date_diff('day', last_order_date, date '2000-01-01')")
    assert "集計基準日 2000-01-01" in done.stdout and "計画・配信なし" in done.stdout  # KIZUNA_LOCALE=ja, the default
    ledger = data_dir / "ledger.duckdb"
    if ledger.exists():
        with duckdb.connect(str(ledger), read_only=True) as con:
            assert con.execute("select count(*) from sends").fetchone()[0] == 0
    assert not any(p.is_file() for p in (data_dir / "outbox").rglob("*")) if (data_dir / "outbox").exists() else True


def test_the_cost_fallback_and_flag_hold_in_dbt_unit_tests(ran):
    """The project's unit tests of the fallback, run on the 1990s warehouse (their parents are built there)."""
    data_dir, _ = ran
    settings = Settings(home=ROOT, data_dir=data_dir)
    names = ["int_orders_costed_fallback_to_the_earliest_cost_row",
             "int_orders_costed_empty_cost_table_costs_zero_as_estimate",
             "fct_orders_keeps_the_cost_estimate_flag", "ltv_counts_estimated_cost_orders_within_the_horizon"]
    # dbt runs a model's unit tests when the model is built (`build` selects no unit test on its own).
    result = modelling.build_models(settings, AS_OF, select=["int_orders_costed", "fct_orders",
                                                             "int_media_cohort_horizon_totals"])
    ran_tests = {n.name: n.status for n in result.nodes if n.resource_type == "unit_test"}
    assert {name: ran_tests.get(name) for name in names} == dict.fromkeys(names, "pass")


# -- a stopped run: one message, the trace in the log file ---------------------------------------


def _break_second_night(exports: Path) -> None:
    """Night 1999-12-19 brings an order dated before the shop's history: 1990."""
    path = exports / SECOND_NIGHT.isoformat() / "orders.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header, rows = list(reader.fieldnames or []), list(reader)
    assert rows
    rows[0]["ordered_at"] = "1990-04-01 09:00:00"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def test_a_broken_night_stops_with_one_short_message_and_the_trace_in_the_log(shop_1997, prefect_home, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(shop_1997, data_dir / "exports")
    _break_second_night(data_dir / "exports")
    done = _kizuna(prefect_home, data_dir, "run")
    assert done.returncode == 1
    output = (done.stdout + done.stderr).strip().splitlines()
    assert 3 <= len(output) <= 15, "\n".join(output)
    text = "\n".join(output)
    assert output[0].startswith("停止: 夜 1999-12-19 はチェックで拒否された")  # KIZUNA_LOCALE=ja, the default
    assert "Traceback" not in text and 'File "' not in text
    # What failed (the check, with its table, count and examples, shown as text: not eaten as markup) ...
    assert "[エラー] orders.ordered_at_in_range（orders.ordered_at）" in text and "'1990-04-01 09:00:00'" in text
    # ... and what to change: the setting, the opening date kizuna took from the data, the file to put it in.
    assert "shop_opened: YYYY-MM-DD" in text and "KIZUNA_QUALITY_CONFIG" in text
    opened = _one(data_dir, "select opening_date from raw._opening_date")[0][0]
    assert f"{opened.isoformat()} より前の日付が正しいなら" in text and "データから取得" in text  # ja, the default
    log_file = data_dir / "logs" / "kizuna.log"
    assert output[-1] == f"ログとトレースの全文: {log_file}"  # KIZUNA_LOCALE=ja, the default
    logged = log_file.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in logged and "QualityGateFailed" in logged
    # Following the message's advice loads the night: shop_opened set once, in the quality config.
    override = tmp_path / "quality.yaml"
    override.write_text(yaml.safe_dump({"settings": {"shop_opened": date(1990, 4, 1)}}), encoding="utf-8")
    settings = Settings(home=ROOT, data_dir=data_dir, quality_config=override)
    loads = stages.ingest(settings, SECOND_NIGHT)
    assert [(r.night, not r.gate.errors) for r in loads] == [(SECOND_NIGHT, True)]


def test_a_refused_first_night_keeps_no_opening_date(shop_1997, tmp_path):
    """The opening date is recorded inside the night's transaction: a refused history leaves none behind,
    and the next run takes it from the history as loaded then."""
    data_dir = tmp_path / "data"
    shutil.copytree(shop_1997, data_dir / "exports")
    path = data_dir / "exports" / HISTORY_NIGHT.isoformat() / "orders.csv"
    original = path.read_bytes()
    lines = original.decode("utf-8").split("\n")
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index("customer_id")] = "C9999999"  # an order whose customer was never exported: an error
    path.write_bytes("\n".join([lines[0], ",".join(cells), *lines[2:]]).encode("utf-8"))
    settings = Settings(home=ROOT, data_dir=data_dir)
    with pytest.raises(QualityGateFailed, match="orders.customer_exists"):
        stages.ingest(settings, HISTORY_NIGHT)
    assert _one(data_dir, "select count(*) from duckdb_tables() where table_name = '_opening_date'") == [(0,)]
    path.write_bytes(original)
    stages.ingest(settings, HISTORY_NIGHT)
    assert _one(data_dir, "select count(*) from raw._opening_date") == [(1,)]


# -- the opening date's rules, on small warehouses ----------------------------------------------------


NIGHT_1, NIGHT_2 = date(2001, 3, 1), date(2001, 3, 2)


def _customer(con, customer_id: str, registered_at: datetime, night: date) -> None:
    con.execute("insert into raw.customers (customer_id, last_name, first_name, registered_at, updated_at, _night) "
                "values (?, '山田', '花子', ?, ?, ?)", [customer_id, registered_at, registered_at, night])


def _loaded(con, night: date) -> None:
    con.execute("insert into raw._load_log (night, file_name, checksum, rows_read, rows_quarantined, status, "
                "loaded_at) values (?, 'customers.csv', ?, 1, 0, 'loaded', now())", [night, str(night)])


def _date_errors(result: quality.GateResult) -> list[str]:
    """The date checks that failed (these small warehouses have no order: freshness fails, and is not judged here)."""
    return [o.check.name for o in result.errors if o.check.name.endswith("_in_range")]


@pytest.fixture
def con():
    con = duckdb.connect()
    ensure_raw_tables(con)
    yield con
    con.close()


def _config(tmp_path: Path, **settings) -> quality.QualityConfig:
    if not settings:
        return quality.load_config()
    path = tmp_path / "quality.yaml"
    path.write_text(yaml.safe_dump({"settings": settings}), encoding="utf-8")
    return quality.load_config(path)


def test_the_first_history_sets_the_opening_date_and_a_later_older_date_is_an_error(con, tmp_path):
    _customer(con, "C1", datetime(1996, 5, 1, 10), NIGHT_1)
    _customer(con, "C2", datetime(2001, 2, 28, 10), NIGHT_1)
    _loaded(con, NIGHT_1)
    first = quality.check_raw_night(con, NIGHT_1)
    assert not _date_errors(first), first.summary()
    assert con.execute("select opening_date, night from raw._opening_date").fetchall() == [(date(1996, 5, 1), NIGHT_1)]
    check = next(o.check for o in first.outcomes if o.check.name == "customers.registered_at_in_range")
    assert "1996-05-01" in check.why and "customers.registered_at" in check.why
    _customer(con, "C3", datetime(1995, 1, 1, 10), NIGHT_2)  # older than the first history
    _loaded(con, NIGHT_2)
    second = quality.check_raw_night(con, NIGHT_2)
    assert second.failed("customers.registered_at_in_range") in second.errors
    with pytest.raises(QualityGateFailed) as stopped:
        second.raise_on_error()
    message = str(stopped.value)
    assert "'1995-01-01 10:00:00'" in message and "対処: 1996-05-01 より前の日付が正しいなら" in message  # ja
    assert "shop_opened: YYYY-MM-DD" in message and "KIZUNA_QUALITY_CONFIG" in message
    # The setting, once set, wins over the date taken from the data.
    config = _config(tmp_path, shop_opened=date(1990, 1, 1))
    assert not _date_errors(quality.check_raw_night(con, NIGHT_2, config=config))
    with pytest.raises(QualityGateFailed) as stopped:
        quality.check_raw_night(con, NIGHT_2, config=_config(tmp_path, shop_opened=date(1995, 6, 1))).raise_on_error()
    assert str(tmp_path / "quality.yaml") in str(stopped.value)  # the file that set it is the one to change


def test_a_warehouse_loaded_before_takes_the_opening_date_from_its_earlier_nights(con):
    """Rows loaded before the opening date was kept (an older kizuna): they set it, tonight's are checked."""
    _customer(con, "C1", datetime(2000, 6, 1, 10), NIGHT_1)
    _loaded(con, NIGHT_1)
    _customer(con, "C2", datetime(1999, 1, 1, 10), NIGHT_2)
    _loaded(con, NIGHT_2)
    result = quality.check_raw_night(con, NIGHT_2)
    assert result.failed("customers.registered_at_in_range") in result.errors
    assert con.execute("select opening_date from raw._opening_date").fetchall() == [(date(2000, 6, 1),)]


def test_an_opening_date_after_the_night_says_which_setting_instead_of_failing_every_date_check(con, tmp_path):
    """What the issue saw: shop_opened 2000-01-01 and a 1999 night gave 13 checks that 'could not run'."""
    _customer(con, "C1", datetime(1999, 12, 1, 10), date(1999, 12, 18))
    _loaded(con, date(1999, 12, 18))
    with pytest.raises(KizunaError) as stopped:
        quality.check_raw_night(con, date(1999, 12, 18), config=_config(tmp_path, shop_opened=date(2000, 1, 1)))
    message = str(stopped.value)
    assert "opening date 2000-01-01" in message and "after night 1999-12-18" in message
    assert "set shop_opened" in message and str(tmp_path / "quality.yaml") in message
    assert "min_value cannot be greater" not in message


def test_a_shop_with_no_dated_row_yet_has_no_opening_date_and_passes(con):
    con.execute("insert into raw.products (product_id, sku, product_name, product_type, list_price, unit_cost, "
                "_night) values ('P1', 'S1', 'お試し', 'trial', 1980, 300, ?)", [NIGHT_1])
    _loaded(con, NIGHT_1)
    result = quality.check_raw_night(con, NIGHT_1)
    assert not _date_errors(result), result.summary()
    assert not con.execute("select count(*) from duckdb_tables() where table_name = '_opening_date'").fetchone()[0]


# -- the stop message's parts ------------------------------------------------------------------------


def test_an_unexpected_failure_is_one_message_naming_its_stage(tmp_path):
    """A failure kizuna has no message for (here a wrong memory setting DuckDB refuses) still names the stage."""
    from kizuna.cli import _unexpected

    settings = Settings(home=ROOT, data_dir=tmp_path, duckdb_memory_limit="lots")
    (tmp_path / "exports" / "2001-03-01").mkdir(parents=True)
    with pytest.raises(Exception) as raised:
        stages.ingest(settings, date(2001, 3, 1))
    assert not isinstance(raised.value, KizunaError)
    message = str(_unexpected(raised.value))
    assert message.startswith(f"the nightly run failed in stage ingest with an unexpected error: "
                              f"{type(raised.value).__name__}: ")
    assert "Memory must have a number" in message and "log file" in message and len(message.splitlines()) == 2


def test_a_long_stop_message_keeps_its_head_and_tail():
    from kizuna.cli import STOP_LINES, _shortened

    text = "\n".join(["what failed"] + [f"  check {i}" for i in range(40)] + ["What to do: this"])
    short = _shortened(text, Path("/data/logs/kizuna.log")).splitlines()
    assert len(short) == STOP_LINES <= 15
    assert short[0] == "what failed" and short[-1] == "What to do: this"
    assert "行は /data/logs/kizuna.log" in short[STOP_LINES // 2]  # KIZUNA_LOCALE=ja, the default
    assert _shortened("one\ntwo", None) == "one\ntwo"


def test_a_failed_dbt_test_names_the_file_to_change(tmp_path):
    """A negative cost in the cost table: the message names the seed file and column, and the test's YAML."""
    project = tmp_path / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "seeds" / "fulfilment_costs.csv").write_text(
        "valid_from,order_handling_cost,shipping_cost,payment_fee\n2000-01-01,-200,380,70\n", encoding="utf-8")
    settings = Settings(home=ROOT, data_dir=tmp_path / "data", dbt_project_dir=project)
    with pytest.raises(modelling.ModelBuildFailed) as failed:
        modelling.build_models(settings, AS_OF, select=["fulfilment_costs"])
    message = str(failed.value)
    line = next(ln for ln in message.splitlines() if "order_handling_cost" in ln and "fail" in ln)
    assert "seed file seeds/fulfilment_costs.csv, column order_handling_cost" in line
    assert "defined in dbt_project/seeds/_seeds.yml" in line and "(1 failing rows)" in line

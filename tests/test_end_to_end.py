"""The README's promise: `kizuna demo` runs the whole nightly job, and a second run changes nothing.

Runs the real command in a subprocess (Prefect's temporary local server, dbt, GE,
DuckDB files, the outbox) against a small demo shop in a temporary data folder.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
KIZUNA = Path(sys.executable).parent / "kizuna"


def _demo_env(data_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "KIZUNA_DATA_DIR": str(data_dir),
        "KIZUNA_DEMO_CUSTOMERS": "1500",
        "PREFECT_HOME": str(data_dir.parent / "prefect-home"),
        "COLUMNS": "200",
    }
    env.pop("PREFECT_API_URL", None)
    env.pop("KIZUNA_LOCAL_PREFECT", None)  # the default path: the nightly flow on Prefect's temporary server
    return env


def run_demo(data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(KIZUNA), "demo"], cwd=ROOT, env=_demo_env(data_dir), capture_output=True, text=True,
                          timeout=600)


def _wait_until_it_holds_the_lock(data_dir: Path, run: subprocess.Popen, seconds: float = 120) -> None:
    """Until the run lock names `run` (its start-up takes seconds on a loaded machine: a fixed sleep raced it)."""
    from kizuna.runlock import lock_path

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and run.poll() is None:
        try:
            if json.loads(lock_path(data_dir).read_text(encoding="utf-8") or "{}").get("pid") == run.pid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"the second run never took the run lock (exit code {run.poll()})")


@pytest.fixture(scope="module")
def demo_twice(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    first = run_demo(data_dir)
    assert first.returncode == 0, first.stdout + first.stderr
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        raw_before = {t: con.execute(f"select count(*), sum(hash(x)) from raw.{t} x").fetchone()
                      for t in ("customers", "orders", "order_lines", "shipments", "consents")}
    outbox_before = sorted(p.name for p in (data_dir / "outbox").rglob("*") if p.is_file())
    # The second run, and once it holds the run lock a third that must stop at once: one run at a time.
    second = subprocess.Popen([str(KIZUNA), "demo"], cwd=ROOT, env=_demo_env(data_dir), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    _wait_until_it_holds_the_lock(data_dir, second)
    started = time.monotonic()
    third = run_demo(data_dir)
    third_seconds = time.monotonic() - started
    out, err = second.communicate(timeout=600)
    holder = second.pid
    second = subprocess.CompletedProcess(second.args, second.returncode, out, err)
    assert second.returncode == 0, second.stdout + second.stderr
    assert third.returncode == 1 and third_seconds < 15, (third_seconds, third.stdout + third.stderr)
    lines = third.stdout.strip().splitlines()
    assert len(lines) == 1 and f"Another kizuna run is in progress (pid {holder}" in lines[0], third.stdout
    assert not third.stderr.strip(), third.stderr
    return data_dir, first, second, raw_before, outbox_before


def test_the_demo_runs_every_stage_for_real(demo_twice):
    data_dir, first, _, _, _ = demo_twice
    out = first.stdout
    for line in ("取込", "品質チェック", "モデル", "データベース", "送信フォルダ", "レポート"):  # KIZUNA_LOCALE=ja
        assert line in out, out
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        customers = con.execute("select count(*) from raw.customers").fetchone()[0]
        assert customers == 1500
        assert con.execute("select count(*) from marts.dim_customers").fetchone()[0] == customers
        assert con.execute("select count(*) from marts.fct_orders").fetchone()[0] > customers
    with duckdb.connect(str(data_dir / "ledger.duckdb"), read_only=True) as con:
        sent = con.execute("select count(*) from sends where status = 'sent'").fetchone()[0]
    assert sent > 0
    index = [json.loads(line) for line in (data_dir / "outbox" / "index.jsonl").read_text().splitlines()]
    assert len(index) == sent
    _every_email_carries_the_legal_footer(data_dir / "outbox")
    assert (data_dir / "reports" / "latest.html").read_text(encoding="utf-8").count("<table") >= 3
    assert any((data_dir / "archive").rglob("orders.csv"))
    _the_night_ran_as_a_prefect_flow(data_dir.parent / "prefect-home")


def _the_night_ran_as_a_prefect_flow(prefect_home: Path) -> None:
    """The default path (KIZUNA_LOCAL_PREFECT unset): the nightly flow on Prefect's temporary local server,
    its completed flow runs recorded in PREFECT_HOME's database."""
    import sqlite3

    with sqlite3.connect(prefect_home / "prefect.db") as db:
        runs = db.execute("select r.state_type from flow_run r join flow f on f.id = r.flow_id "
                          "where f.name = 'kizuna-nightly'").fetchall()
    assert runs and all(state == "COMPLETED" for (state,) in runs), runs


def _every_email_carries_the_legal_footer(outbox: Path) -> None:
    """特定電子メール法: sender identity, postal address, contact and an unsubscribe route."""
    from kizuna.config import Settings

    settings = Settings()
    emails = sorted((outbox / "email").glob("*.eml"))
    assert emails, "the demo sent no e-mail"
    for path in emails:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",)).get_content()
        for required in (settings.sender_name, settings.sender_address, settings.sender_contact,
                         settings.unsubscribe_base_url):
            assert required in text, f"{path.name} lacks {required!r}"
        assert message["List-Unsubscribe"].strip().startswith("<" + settings.unsubscribe_base_url), path.name


def test_a_second_run_loads_nothing_new_and_sends_nothing_twice(demo_twice):
    data_dir, _, second, raw_before, outbox_before = demo_twice
    assert "新しいデータなし" in second.stdout  # KIZUNA_LOCALE=ja, the default
    assert "配信予定なし（または配信済み）" in second.stdout
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        raw_after = {t: con.execute(f"select count(*), sum(hash(x)) from raw.{t} x").fetchone() for t in raw_before}
    assert raw_after == raw_before
    assert sorted(p.name for p in (data_dir / "outbox").rglob("*") if p.is_file()) == outbox_before
    with duckdb.connect(str(data_dir / "ledger.duckdb"), read_only=True) as con:
        keys = con.execute("select count(*), count(distinct (scenario_id, step_id, customer_id, anchor_date)) "
                           "from sends").fetchone()
    assert keys[0] == keys[1]


def test_every_prefect_deployment_entrypoint_imports():
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for deployment in config["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        code = f"import runpy; ns = runpy.run_path({str(ROOT / path)!r}, run_name='probe'); assert callable(ns[{name!r}])"
        probe = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert probe.returncode == 0, probe.stderr
        cron = deployment["schedules"][0]
        assert (cron["cron"], cron["timezone"]) == ("0 2 * * *", "Asia/Tokyo")


def test_the_demo_runs_through_the_shopify_twin_in_its_own_data_folder(tmp_path):
    """`kizuna demo --source shopify`: the shop served by a loopback Shopify speaking the Admin GraphQL API."""
    data_dir = tmp_path / "data"
    env = {**_demo_env(data_dir), "KIZUNA_DEMO_CUSTOMERS": "300"}
    run = subprocess.run([str(KIZUNA), "demo", "--source", "shopify"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Shopify twin (loopback) serving the demo shop at http://127.0.0.1:" in run.stdout
    own = data_dir / "demo-shopify"
    assert not (data_dir / "warehouse.duckdb").exists()  # the csv demo's warehouse is not touched
    with duckdb.connect(str(own / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from raw.customers").fetchone()[0] == 300
        assert con.execute("select count(*) from raw._shopify_sync").fetchone()[0] >= 1
        assert con.execute("select count(*) from marts.customer_rfm").fetchone()[0] > 0


def test_an_unknown_demo_source_is_one_clear_line(tmp_path):
    run = subprocess.run([str(KIZUNA), "demo", "--source", "magento"], cwd=ROOT, env=_demo_env(tmp_path / "d"),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and not run.stderr.strip(), run.stdout + run.stderr
    assert "unknown source 'magento': use one of csv, mapped_csv, shopify, ec_cube" in run.stdout

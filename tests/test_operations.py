"""Operations (issue 18, items 2-4): Prefect shows the night, a stopped night reaches a person, one clear stop.

A real Prefect server on loopback (its own home, a free port), the project's prefect.yaml deployed
with `prefect deploy`, a process worker (`--run-once`) running the deployment as in production; then
the flow run's logs and artifacts are read back through the Prefect client. A night broken on
purpose sends one notification (apprise `json://`) to a webhook receiver on 127.0.0.1 and prints one
stop message of at most 15 lines. The notifier's own failures never hide the night's.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from uuid import UUID

import pytest

from kizuna import notify
from kizuna.config import Settings
from kizuna.errors import KizunaError
from kizuna.i18n import gettext
from kizuna.stop import STOP_LINES, stop_message

STOPPED = gettext("Stopped: ")  # the stop message's first words in the default language (ja)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NIGHT = date.today() - timedelta(days=1)


# -- loopback helpers ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A webhook receiver on 127.0.0.1: keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((self.path, json.loads(body or b"{}")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """`prefect server start` on a free loopback port with its own home; its scheduler off (no cron run)."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url, "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"}
    log = (home / "server.log").open("w")
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the Prefect server did not start: " + (home / "server.log").read_text())
                time.sleep(1)
        yield env
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """A small shop's exports: its history and one night, the newest yesterday (generated once)."""
    from kizuna.demo_shop import generate_shop

    exports = tmp_path_factory.mktemp("ops-shop") / "exports"
    generate_shop(exports, customers=300, seed=18, end_date=NIGHT, nights=1)
    return exports


def _data_dir(shop: Path, where: Path, broken: bool = False) -> Path:
    data_dir = where / "data"
    shutil.copytree(shop, data_dir / "exports")
    if broken:  # the newest night gets an order of a customer who was never exported: the raw-data gate's error
        night = data_dir / "exports" / NIGHT.isoformat() / "orders.csv"
        history = sorted(p for p in (data_dir / "exports").iterdir() if p.is_dir())[0] / "orders.csv"
        with history.open(encoding="utf-8", newline="") as fh:
            row = next(csv.DictReader(fh))
        row.update(order_id="O999999999", customer_id="C9999999", ordered_at=f"{NIGHT} 10:00:00",
                   updated_at=f"{NIGHT} 10:00:00")
        text = night.read_text(encoding="utf-8")
        buf = io.StringIO()
        csv.DictWriter(buf, list(row), lineterminator="\n").writerow(row)
        night.write_text(text + ("" if text.endswith("\n") else "\n") + buf.getvalue(), encoding="utf-8")
    return data_dir


def _run(env: dict, *args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _client(env: dict):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class Session:
        def __enter__(self):
            self.settings = temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]})
            self.settings.__enter__()
            self.client = get_client(sync_client=True).__enter__()
            return self.client

        def __exit__(self, *exc):
            self.client.__exit__(*exc)
            self.settings.__exit__(*exc)

    return Session()


def _run_under_worker(env: dict, data_dir: Path, notify_url: str, cwd: Path) -> tuple[UUID, subprocess.CompletedProcess]:
    """One run of the deployment `kizuna-nightly/nightly`, executed by a process worker (`--run-once`)."""
    with _client(env) as client:
        deployment = client.read_deployment_by_name("kizuna-nightly/nightly")
        flow_run = client.create_flow_run_from_deployment(deployment.id)
    worker_env = {**env, "KIZUNA_DATA_DIR": str(data_dir), "KIZUNA_NOTIFY_URLS": notify_url}
    for name in ("KIZUNA_EXPORTS_DIR", "KIZUNA_QUALITY_CONFIG", "PREFECT_LOGGING_EXTRA_LOGGERS"):
        worker_env.pop(name, None)
    worker = subprocess.run([str(BIN / "prefect"), "worker", "start", "--pool", "kizuna-local", "--run-once"],
                            cwd=cwd, env=worker_env, capture_output=True, text=True, timeout=500)
    return flow_run.id, worker


def _logs_and_artifacts(env: dict, flow_run_id: UUID):
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, LogFilter,
                                                LogFilterFlowRunId)

    with _client(env) as client:
        run = client.read_flow_run(flow_run_id)
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
        task_runs = client.read_task_runs()
    return run, logs, {a.key: a for a in artifacts}, [t for t in task_runs if t.flow_run_id == flow_run_id]


@pytest.fixture(scope="module")
def deployed(prefect_server):
    """The project's prefect.yaml deployed as the README says: a process work pool, `prefect deploy --all`."""
    _run(prefect_server, BIN / "prefect", "work-pool", "create", "kizuna-local", "--type", "process")
    _run(prefect_server, BIN / "prefect", "--no-prompt", "deploy", "--all")
    return prefect_server


# -- a deployment run under a worker ---------------------------------------------------------------


def test_a_worker_run_shows_kizunas_log_lines_and_the_nights_artifacts(deployed, shop, tmp_path, receiver):
    data_dir = _data_dir(shop, tmp_path)
    flow_run_id, worker = _run_under_worker(deployed, data_dir, receiver.url, tmp_path)
    run, logs, artifacts, task_runs = _logs_and_artifacts(deployed, flow_run_id)
    assert run.state.is_completed(), worker.stdout + worker.stderr
    # The run and its tasks carry the night.
    assert run.name == f"night-{NIGHT.isoformat()}"
    assert {t.name for t in task_runs} >= {f"{label} · night-{NIGHT.isoformat()}" for label in
                                           ("ingest and raw-data gate", "dbt build", "mart gate", "report")}
    # kizuna's own lines are in the flow run's log, most of them on the task run that logged them.
    ours = [entry for entry in logs if entry.name == "kizuna" or entry.name.startswith("kizuna.")]
    messages = "\n".join(entry.message for entry in ours)
    assert f"report: {data_dir / 'reports' / f'nightly-{NIGHT.isoformat()}.html'}" in messages, messages
    assert "件を作成" in messages  # the dbt build's line, in Japanese (KIZUNA_LOCALE=ja, the default)
    assert "campaigns:" in messages and "ingest " in messages, messages
    assert sum(entry.task_run_id is not None for entry in ours) >= 5
    # The night's artifacts: the summary the command line prints, the sends, the failed checks, the report.
    assert set(artifacts) >= {"kizuna-night-summary", "kizuna-sends", "kizuna-failed-checks", "kizuna-report"}
    summary = artifacts["kizuna-night-summary"].data
    heading = gettext("kizuna nightly run · night of {night} · sends dated {day}").split("{day}")[0]
    assert heading.format(night=NIGHT.isoformat()) in summary  # the console's own words (ja by default)
    assert gettext("Loaded") in summary and gettext("Models") in summary
    sends = json.loads(artifacts["kizuna-sends"].data)
    rows = sends if isinstance(sends, list) else []
    assert rows and {"scenario", "step", "channel", "status", "messages"} <= set(rows[0]), sends
    assert artifacts["kizuna-report"].data.endswith(
        f"({(data_dir / 'reports' / f'nightly-{NIGHT.isoformat()}.html').as_uri()})")
    assert json.loads(artifacts["kizuna-failed-checks"].data) is not None
    assert receiver.received == []  # a night that ran to the end: nobody is paged (no summary asked for)
    # The worker process kept the log file too.
    assert "件を作成" in (data_dir / "logs" / "kizuna.log").read_text(encoding="utf-8")


def test_a_night_broken_under_a_worker_stops_with_one_message_a_notification_and_artifacts(
        deployed, shop, tmp_path, receiver):
    data_dir = _data_dir(shop, tmp_path, broken=True)
    flow_run_id, worker = _run_under_worker(deployed, data_dir, receiver.url, tmp_path)
    run, logs, artifacts, _ = _logs_and_artifacts(deployed, flow_run_id)
    assert run.state.is_failed(), worker.stdout + worker.stderr
    stops = [entry for entry in logs if entry.name == "kizuna" and entry.message.startswith(STOPPED)]
    assert len(stops) == 1, [e.message for e in logs]
    lines = stops[0].message.splitlines()
    assert len(lines) <= 15 and "orders.customer_exists" in stops[0].message and "Traceback" not in stops[0].message
    log_file = data_dir / "logs" / "kizuna.log"
    assert lines[-1] == f"Full log and trace: {log_file}"
    assert "Traceback (most recent call last)" in log_file.read_text(encoding="utf-8")
    # One notification, with the stage, what and where to look.
    assert len(receiver.received) == 1, receiver.received
    path, sent = receiver.received[0]
    assert path == "/hook" and sent["type"] == "failure"
    assert f"{NIGHT.isoformat()} の夜間処理が停止しました" in sent["title"]
    assert "取り込みと生データ検査 (ingest and raw-data gate)" in sent["message"]
    assert "orders.customer_exists" in sent["message"] and str(log_file) in sent["message"]
    assert f"Prefect: http://127.0.0.1:" in sent["message"] and str(flow_run_id) in sent["message"]
    assert "kizuna-night-summary" in artifacts and "orders.customer_exists" in artifacts["kizuna-night-summary"].data
    checks = json.loads(artifacts["kizuna-failed-checks"].data)
    assert any(row["check"] == "orders.customer_exists" for row in checks)


# -- the command line ---------------------------------------------------------------------------------


def test_a_night_broken_on_purpose_notifies_once_and_prints_one_short_stop(deployed, shop, tmp_path, receiver):
    data_dir = _data_dir(shop, tmp_path, broken=True)
    env = {**deployed, "KIZUNA_DATA_DIR": str(data_dir), "KIZUNA_NOTIFY_URLS": receiver.url}
    for name in ("COLUMNS", "LINES", "KIZUNA_EXPORTS_DIR", "KIZUNA_QUALITY_CONFIG"):
        env.pop(name, None)
    started = time.monotonic()
    done = subprocess.run([str(BIN / "kizuna"), "run"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    output = (done.stdout + done.stderr).strip().splitlines()
    assert 3 <= len(output) <= 15 and output[0].startswith(
        STOPPED + gettext("Night {night} was refused by its check, so nothing of it was kept:").format(night=NIGHT)), output
    assert "Traceback" not in "\n".join(output)
    assert len(receiver.received) == 1, receiver.received  # sent within the run, once (not by both CLI and flow)
    assert "orders.customer_exists" in receiver.received[0][1]["message"]
    assert time.monotonic() - started < 300


# -- the notifier itself (fast) --------------------------------------------------------------------


def _settings(tmp_path: Path, **update) -> Settings:
    return Settings(home=ROOT, data_dir=tmp_path / "data", **update)


def test_notification_urls_split_on_commas_and_blanks_but_not_inside_a_url(tmp_path):
    settings = _settings(tmp_path, notify_urls="slack://a/b/c/#crm,  json://127.0.0.1:9/x mailtos://u:p@m.example?to=a@x.jp,b@x.jp")
    assert notify.notify_urls(settings) == ["slack://a/b/c/#crm", "json://127.0.0.1:9/x",
                                            "mailtos://u:p@m.example?to=a@x.jp,b@x.jp"]
    assert notify.notify_urls(_settings(tmp_path)) == []
    assert "127.0.0.1" not in repr(settings)  # a webhook URL carries a token: masked like a secret


def test_the_stop_notice_says_which_stage_what_and_where_to_look(tmp_path, receiver):
    settings = _settings(tmp_path, notify_urls=receiver.url)

    def stage_that_fails():
        raise KizunaError("dbt model fct_orders failed: division by zero\nFix the seed fulfilment_costs.csv")

    try:
        stage_that_fails()
    except KizunaError as exc:
        notice = notify.stop_notice(settings, exc, date(2026, 11, 21), tmp_path / "kizuna.log", "http://p/run")
    assert notify.send(settings, notice) is True
    [(_, sent)] = receiver.received
    assert sent["title"] == "kizuna: 2026-11-21 の夜間処理が停止しました (the night of 2026-11-21 stopped)"
    assert "fct_orders" in sent["message"] and "fulfilment_costs.csv" in sent["message"]
    assert f"ログ (log): {tmp_path / 'kizuna.log'}" in sent["message"] and "Prefect: http://p/run" in sent["message"]
    assert len(sent["message"].splitlines()) <= 12


def test_a_notifier_that_fails_is_logged_and_never_raises(tmp_path, caplog):
    dead = _free_port()  # nothing listens there
    settings = _settings(tmp_path, notify_urls=f"json://127.0.0.1:{dead}/hook, nonsense-without-scheme")
    with caplog.at_level(logging.ERROR, logger="kizuna"):
        ok = notify.send(settings, notify.Notice("t", "b"))
    assert ok is False
    assert "could not be delivered" in caplog.text


def test_a_long_failure_is_one_message_of_at_most_15_lines(tmp_path):
    exc = KizunaError("\n".join(f"line {i}" for i in range(200)))
    message = stop_message(exc, tmp_path / "kizuna.log").splitlines()
    assert len(message) == STOP_LINES + 1 <= 15
    assert message[0] == f"{STOPPED}line 0" and message[-2] == "line 199"
    unexpected = stop_message(ZeroDivisionError("division by zero"), None)
    assert unexpected.startswith(f"{STOPPED}the nightly run failed with an unexpected error: ZeroDivisionError")

"""Analysts (issue 18 item 5): the published warehouse, the descriptions in it, the notebook.

The two-process test is the promise of docs/analysts.md: an analyst's read-only connection held
open on the published file during a nightly run neither blocks the run nor ever sees a mix of two
nights. On a small generated shop, one night is built and published by the stages, then a reader
process holds the published file open and loops on it while the real `kizuna run` (Prefect's
temporary server, dbt, the sends, DuckDB files) processes the next night.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from kizuna import stages
from kizuna.config import Settings
from kizuna.demo_shop import generate_shop
from kizuna.errors import KizunaError
from kizuna.warehouse import publish

ROOT = Path(__file__).resolve().parent.parent
KIZUNA = Path(sys.executable).parent / "kizuna"
READER = Path(__file__).with_name("analyst_reader_child.py")
END = date(2026, 11, 20)


def _env(data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "KIZUNA_DATA_DIR": str(data_dir), "PREFECT_HOME": str(data_dir.parent / "prefect-home"),
           "COLUMNS": "200",
           # A reader that blocked the run would make it fail at once instead of waiting.
           "KIZUNA_WAREHOUSE_WAIT_SECONDS": "0"}
    env.pop("PREFECT_API_URL", None)
    return env


def _run(data_dir: Path, night: date) -> subprocess.CompletedProcess:
    return subprocess.run([str(KIZUNA), "run", "--night", night.isoformat()], cwd=ROOT, env=_env(data_dir),
                          capture_output=True, text=True, timeout=600)


def _state(path: Path) -> list:
    """What the reader asks, asked of a file directly."""
    sys.path.insert(0, str(READER.parent))
    from analyst_reader_child import QUESTION

    with duckdb.connect(str(path), read_only=True) as con:
        return list(con.execute(QUESTION).fetchone())


def _first_night(data_dir: Path, night: date):
    """The night before, built and published by the stages themselves in this process: what the reader
    holds open when the real run starts (cheaper than a second `kizuna run`: no sends, no report)."""
    settings = Settings(data_dir=data_dir)
    stages.ingest(settings, night)
    stages.erase(settings)
    stages.load_events(settings)
    stages.build_marts(settings, stages.send_date_for(night))
    stages.gate_marts(settings)
    published = stages.publish_warehouse(settings)
    assert published is not None and published.path == settings.published_warehouse
    return published


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory):
    """A shop whose newest night is run first, then the night after it, with a reader held open on the
    published file during the second run. Returns the data folder, both states and the reader's lines."""
    data_dir = tmp_path_factory.mktemp("analysts") / "data"
    generate_shop(data_dir / "exports", customers=300, seed=7, end_date=END, nights=2)
    first = _first_night(data_dir, END - timedelta(days=1))
    published = data_dir / "warehouse.published.duckdb"
    night_one = _state(published)

    stop, answers = data_dir.parent / "stop-reader", data_dir.parent / "answers.jsonl"
    reader = subprocess.Popen([sys.executable, str(READER), str(published), str(stop), str(answers)],
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (answers.exists() and answers.read_text().count("\n") >= 3) and time.monotonic() < deadline:
        time.sleep(0.05)  # connected and answering before the run starts
    second = _run(data_dir, END)
    night_two = _state(data_dir / "warehouse.duckdb")  # the working file the run built
    # Let the reader ask once more on fresh connections after the publish, then stop it.
    deadline = time.monotonic() + 30
    while json.dumps({"fresh": night_two}) not in answers.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.touch()
    _, err = reader.communicate(timeout=30)
    assert reader.returncode == 0, err
    lines = [json.loads(x) for x in answers.read_text().splitlines()[1:]]
    return data_dir, first, second, night_one, night_two, lines


def test_a_reader_held_open_neither_blocks_the_run_nor_sees_half_a_night(two_nights):
    data_dir, _, second, night_one, night_two, lines = two_nights
    # The run went through with the reader connected (and KIZUNA_WAREHOUSE_WAIT_SECONDS=0).
    assert second.returncode == 0, second.stdout + second.stderr
    assert night_one[0] == (END - timedelta(days=1)).isoformat() and night_two[0] == END.isoformat()
    assert night_one != night_two
    # The held connection saw the first night throughout; fresh ones saw one whole night or the other.
    held = [x["held"] for x in lines if "held" in x]
    fresh = [x["fresh"] for x in lines if "fresh" in x]
    assert held and all(x == night_one for x in held), {tuple(x) for x in held}
    assert all(x in (night_one, night_two) for x in fresh), {tuple(x) for x in fresh}
    assert fresh[0] == night_one and fresh[-1] == night_two  # the swap happened while the reader was there
    # Once the new night shows, the old one never comes back.
    assert night_one not in fresh[fresh.index(night_two):]
    # The published file is the working file as of the publish: same marts, same descriptions.
    assert _state(data_dir / "warehouse.published.duckdb") == night_two


def test_the_published_file_is_read_only_and_alone(two_nights):
    data_dir = two_nights[0]
    published = data_dir / "warehouse.published.duckdb"
    assert published.stat().st_mode & 0o777 == 0o444
    # No temporary copy or write-ahead log left beside it.
    assert sorted(p.name for p in data_dir.glob("*published*")) == [published.name]


def test_a_failed_publish_keeps_the_previous_file(tmp_path):
    """A disk that fills up during the copy (a file-size limit in a child process): the run is told what
    to do, the previous night stays published, no partial copy is left."""
    working, published = tmp_path / "w.duckdb", tmp_path / "p.duckdb"
    with duckdb.connect(str(working)) as con:
        con.execute("create table t as select 1 as night, range as i from range(200000)")
    publish(working, published)
    with duckdb.connect(str(working)) as con:
        con.execute("update t set night = 2")
    child = ("import resource, signal, sys\n"
             "from pathlib import Path\n"
             "from kizuna.warehouse import publish\n"
             "from kizuna.errors import KizunaError\n"
             "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
             "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), resource.RLIM_INFINITY))\n"
             "try:\n"
             "    publish(Path(sys.argv[1]), Path(sys.argv[2]))\n"
             "except KizunaError as exc:\n"
             "    print(exc)\n"
             "    sys.exit(3)\n")
    limit = working.stat().st_size // 2
    full = subprocess.run([sys.executable, "-c", child, str(working), str(published), str(limit)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert full.returncode == 3, full.stdout + full.stderr
    assert "analysts keep the previous night" in full.stdout and "Free disk space" in full.stdout, full.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.duckdb", "w.duckdb"]  # no temporary copy left
    with duckdb.connect(str(published), read_only=True) as con:
        assert con.execute("select distinct night from t").fetchall() == [(1,)]
    publish(working, published)
    with duckdb.connect(str(published), read_only=True) as con:
        assert con.execute("select distinct night from t").fetchall() == [(2,)]


def test_the_notebook_answers_the_seed_questions_from_the_published_marts(two_nights):
    """notebooks/marts.py, headless: as a script (every cell once), and through marimo's `App.run` for its
    answers, compared with the marts it reads."""
    data_dir, *_ = two_nights
    published = data_dir / "warehouse.published.duckdb"
    env = {**os.environ, "KIZUNA_DATA_DIR": str(data_dir)}
    script = subprocess.run([sys.executable, str(ROOT / "notebooks" / "marts.py")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert script.returncode == 0, script.stderr

    code = ("import importlib.util, json, sys\n"
            "spec = importlib.util.spec_from_file_location('marts_notebook', sys.argv[1])\n"
            "notebook = importlib.util.module_from_spec(spec); spec.loader.exec_module(notebook)\n"
            "_, defs = notebook.app.run()\n"
            "print(json.dumps({'night': str(defs['night']), **{k: defs[k].to_dict('records') "
            "for k in ('ltv', 'revenue', 'rfm', 'f2')}}, default=str))\n")
    run = subprocess.run([sys.executable, "-c", code, str(ROOT / "notebooks" / "marts.py")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    answers = json.loads(run.stdout.strip().splitlines()[-1])
    with duckdb.connect(str(published), read_only=True) as con:
        assert answers["night"] == str(con.execute("select max(night) from raw._load_log").fetchone()[0])
        assert len(answers["ltv"]) == con.execute("select count(*) from marts.ltv_by_media").fetchone()[0]
        names = {n for (n,) in con.execute("select distinct media_name from marts.ltv_by_media "
                                           "where media_name is not null").fetchall()}
        assert names and names == {r["medium"] for r in answers["ltv"]} & names  # media by name, not by code
        assert {r["rfm_segment"]: r["customers"] for r in answers["rfm"]} == dict(
            con.execute("select rfm_segment, count(*) from marts.customer_rfm group by all").fetchall())
        assert sum(r["converted_buyers"] for r in answers["f2"]) == con.execute(
            "select sum(converted_buyers) from marts.f2_conversion").fetchone()[0]
        months = con.execute("select count(*) from marts.revenue_new_vs_existing_monthly").fetchone()[0]
        assert len(answers["revenue"]) == min(12, months)

"""The nightly report page, rendered in a real browser (headless Chromium).

A small demo shop goes through the real stages (ingest, dbt build, mart gate); the report
is written from its warehouse and opened in Debian's `chromium` (`--headless --dump-dom`
after layout): every chart must have drawn marks of non-zero size, the numbers in the
page's tables must equal the marts', and a screenshot is kept as a test artifact
(`tests/artifacts/report.png`; `make report-screenshot` also refreshes `docs/report.png`).

Chromium is a system package: `.ci/run` installs it; elsewhere `apt-get install chromium`
(or point KIZUNA_CHROMIUM at a Chrome/Chromium binary). Without it these tests fail and
say so; `pytest -m "not browser"` leaves them out.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import duckdb
import pytest

from built_shop import build_small_shop
from kizuna import stages
from kizuna.config import Settings
from kizuna.report import write_nightly_report
from kizuna.report_charts import pct, yen
from kizuna.warehouse import connect

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
END = date(2026, 11, 20)

PROBE = """<script>
(function () {
  const out = {charts: {}, cells: {}};
  document.querySelectorAll('figure.chart').forEach(f => {
    const svg = f.querySelector('svg');
    const marks = [...f.querySelectorAll('svg .mark')].filter(e => {
      const b = e.getBoundingClientRect(); return b.width > 0 || b.height > 0; });
    out.charts[f.id] = {marks: marks.length, titled: f.querySelectorAll('svg .mark > title').length,
                        width: svg ? svg.getBoundingClientRect().width : 0};
  });
  document.querySelectorAll('[data-revenue],[data-ltv],[data-segment],[data-f2],[data-gate]').forEach(e => {
    for (const a of e.getAttributeNames()) if (a.startsWith('data-')) out.cells[a + ':' + e.getAttribute(a)] = e.textContent.trim();
  });
  out.height = document.documentElement.scrollHeight;
  out.noCampaignResults = !!document.getElementById('no-campaign-results');
  out.external = [...document.querySelectorAll('script[src],link[href],img[src]')].map(e => e.src || e.href);
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def chromium() -> str:
    found = os.environ.get("KIZUNA_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if not found:
        pytest.fail("The report tests need a headless Chromium and none was found: install Debian's package "
                    "(`sudo apt-get install -y chromium`; `.ci/run` does it) or set KIZUNA_CHROMIUM to a "
                    "Chrome/Chromium binary. To leave these tests out: pytest -m 'not browser'.", pytrace=False)
    return found


def run_chromium(*args: str, url: str, tmp: Path) -> str:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-extensions", "--disable-background-networking", f"--user-data-dir={tmp / 'chromium-profile'}",
           "--virtual-time-budget=5000", *args, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def probe(page: Path, tmp: Path) -> dict:
    """Open a copy of `page` with a probe script appended; return what it measured in the laid-out DOM."""
    probed = page.with_name("probe-" + page.name)
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = run_chromium("--window-size=1100,900", "--dump-dom", url=probed.as_uri(), tmp=tmp)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe script did not run:\n" + dom[-2000:]
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    """A real small warehouse: demo exports, ingest, full dbt build, mart gate (writes the quality page)."""
    tmp = tmp_path_factory.mktemp("report")
    settings, outcome = build_small_shop(tmp, customers=1500, seed=1, end=END)
    return settings, outcome, tmp


def _campaign_rows(settings: Settings) -> int:
    """Rows in the campaign marts (0 when they are not built, or built on a night without sends)."""
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        present = [r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'marts' "
                                             "and table_name in ('campaign_performance', 'campaign_lift')").fetchall()]
        return sum(con.execute(f"select count(*) from marts.{t}").fetchone()[0] for t in present)


def _add_campaign_results(settings: Settings) -> None:
    """Campaign marts shaped as their dbt models (dbt_project/models/marts/_campaign__models.yml), with results."""
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute("""
            create or replace table marts.campaign_performance as select * from (values
              ('f2_followup', 'day7', 'email', date '2026-11-10', 400, 390, 160, 40, 22, 0.055, 88000.0, 400.0, 18.18, 219.0, true),
              ('f2_followup', 'day7', 'email', date '2026-11-11', 300, 296, 120, 31, 15, 0.05, 60000.0, 300.0, 20.0, 199.0, true),
              ('dormant_winback', 'day0', 'line', date '2026-11-10', 250, null, null, null, 6, 0.024, 30000.0, 750.0, 125.0, 39.0, true)
            ) t(scenario_id, step_id, channel, send_date, sent_count, delivered_count, opened_count, clicked_count,
                converted_count, conversion_rate, conversion_revenue, channel_cost, cost_per_conversion, return_on_cost,
                is_window_complete)
        """)
        con.execute("""
            create or replace table marts.campaign_lift as select * from (values
              ('f2_followup', 700, 37, 0.0529, 78, 2, 0.0256, 0.0273, 1.07, 0.0196, -0.0111, 0.0657, 0, 'not significant'),
              ('dormant_winback', 250, 6, 0.024, 28, 0, 0.0, 0.024, null, 0.0097, 0.005, 0.043, 0, 'too few to tell')
            ) t(scenario_id, treated_customers, treated_converted, treated_conversion_rate, holdout_customers,
                holdout_converted, holdout_conversion_rate, absolute_lift, relative_lift, lift_standard_error,
                lift_ci_low, lift_ci_high, customers_in_open_window, lift_warning)
        """)


@pytest.fixture(scope="module")
def pages(shop):
    """The report before and after the campaign marts exist, each probed in Chromium."""
    settings, outcome, tmp = shop
    had_campaign_results = bool(_campaign_rows(settings))
    with connect(settings.warehouse) as con:
        before = write_nightly_report(con, settings, outcome)
    first = probe(before, tmp)
    if not had_campaign_results:
        _add_campaign_results(settings)
    with connect(settings.warehouse) as con:
        page = write_nightly_report(con, settings, outcome)
    return settings, page, first, probe(page, tmp), had_campaign_results


def test_the_page_is_self_contained(pages) -> None:
    _, page, _, seen, _ = pages
    text = page.read_text(encoding="utf-8")
    assert seen["external"] == []
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    assert (page.parent / "latest.html").read_text(encoding="utf-8") == text
    assert page.stat().st_size < 1_000_000


def test_every_chart_is_drawn(pages) -> None:
    _, _, _, seen, _ = pages
    charts = seen["charts"]
    expected = {"chart-retention": 100, "chart-rfm": 10, "chart-ltv": 8, "chart-profit": 8, "chart-revenue": 20,
                "chart-f2-media": 8, "chart-f2-trend": 10, "chart-f2-days": 5, "chart-stages": 2,
                "chart-funnel": 5, "chart-lift": 2}
    for chart, at_least in expected.items():
        assert chart in charts, f"{chart} missing; drawn: {sorted(charts)}"
        assert charts[chart]["width"] > 300, (chart, charts[chart])
        assert charts[chart]["marks"] >= at_least, (chart, charts[chart])
        assert charts[chart]["titled"] >= at_least, f"{chart}: marks without a tooltip"


def test_campaign_sections_wait_for_their_marts(pages) -> None:
    _, page, first, seen, had_campaign_results = pages
    if not had_campaign_results:
        assert first["noCampaignResults"]
        assert "chart-funnel" not in first["charts"] and "chart-lift" not in first["charts"]
    assert not seen["noCampaignResults"]
    text = page.read_text(encoding="utf-8")
    assert "f2_followup" in text and "今夜の配信</h3>" in text and "対象が少なく判断不可" in text  # KIZUNA_LOCALE=ja


def test_the_report_tells_what_needs_a_person(pages) -> None:
    """Unknown and failed messages of every night, and a channel that could not deliver, are on the page."""
    _, page, _, _, _ = pages
    text = page.read_text(encoding="utf-8")
    assert 'id="needs-attention"' in text
    assert "メール 7 通: 結果不明" in text and "kizuna sends unknown" in text  # KIZUNA_LOCALE=ja, the default
    assert "LINE 2 通: 失敗（再送予定）" in text
    assert "DM（郵送）: 今夜はこれ以上配信していません" in text and "cannot be written" in text


def test_the_numbers_shown_are_the_marts(pages) -> None:
    settings, page, _, seen, _ = pages
    cells = seen["cells"]
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        month, revenue = con.execute("select strftime(order_month, '%Y-%m'), total_revenue from "
                                     "marts.revenue_new_vs_existing_monthly order by order_month desc limit 1").fetchone()
        ltv = con.execute("select acquisition_media_code, horizon, ltv from marts.ltv_by_media "
                          "order by new_customers desc, acquisition_media_code, horizon").fetchall()
        segments = con.execute("select rfm_segment, count(*) from marts.customer_rfm group by 1").fetchall()
        f2 = con.execute("select window_days, sum(converted_buyers) / sum(eligible_buyers) from marts.f2_conversion "
                         "group by 1").fetchall()
    assert cells[f"data-revenue:{month}"] == yen(revenue)
    for medium, horizon, value in ltv:
        assert cells[f"data-ltv:{medium}|{horizon}"] == yen(value)
    assert {k.split(":", 1)[1]: v for k, v in cells.items() if k.startswith("data-segment:")} == {
        s: f"{n:,}" for s, n in segments}
    for window, rate in f2:
        assert cells[f"data-f2:{window}"] == pct(rate)
    assert cells["data-gate:marts"].endswith("件合格")
    assert f'href="quality-{END.isoformat()}.html"' in page.read_text(encoding="utf-8")
    assert (page.parent / f"quality-{END.isoformat()}.html").exists()


def test_screenshot(pages, tmp_path: Path) -> None:
    _, page, _, seen, _ = pages
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    run_chromium(f"--window-size=1100,{min(seen['height'], 12000)}", f"--screenshot={shot}",
                 url=page.as_uri(), tmp=tmp_path)
    assert shot.stat().st_size > 20_000
    if os.environ.get("KIZUNA_UPDATE_DOCS_SCREENSHOT"):  # `make report-screenshot`: the README's picture
        docs = ROOT / "docs" / "report.png"
        run_chromium("--window-size=1100,2400", f"--screenshot={docs}", url=page.as_uri(), tmp=tmp_path)
        assert docs.stat().st_size < 500_000


def test_long_category_names_are_cut_to_their_bar_and_kept_whole_in_the_tooltip() -> None:
    """A medium's name under its bar (LTV and F2 charts) fits the bar's width: long Japanese names ran into their
    neighbours. The whole name stays in the label's tooltip."""
    from kizuna.report_charts import Series, _text_width, bar_chart

    names = ["アフィリエイト（A8.net）経由の新規顧客", "リスティング広告（Google 検索・指名キーワード）", "DM", "Instagram 広告"]
    chart = str(bar_chart(names, [Series("LTV", [12000, 9000, 3000, 5000])],
                          tooltip=lambda cat, s, v: f"{cat}: {v}", width=420))
    labels = re.findall(r'<text x="[^"]*" y="[^"]*" text-anchor="middle" fill="#444">([^<]*)(<title>([^<]*)</title>)?',
                        chart)
    band = (420 - 56 - 10) / len(names)
    assert len(labels) == len(names)
    for (shown, _, title), name in zip(labels, names):
        shown = html.unescape(shown)
        assert _text_width(shown) <= band
        assert shown == name if not title else (shown.endswith("…") and html.unescape(title) == name)
    assert html.unescape(labels[2][0]) == "DM"

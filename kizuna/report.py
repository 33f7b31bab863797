"""The nightly report: one self-contained HTML page of what the night did and where the shop stands."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
from jinja2 import Environment, FileSystemLoader, select_autoescape

from kizuna.config import Settings

if TYPE_CHECKING:
    from kizuna.stages import NightlyOutcome

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",)),
)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def write_nightly_report(con: duckdb.DuckDBPyConnection, settings: Settings, outcome: "NightlyOutcome") -> Path:
    stages = _rows(con, """
        select stage, count(*) as customers, sum(total_revenue) as revenue
        from marts.dim_customers group by stage order by customers desc
    """)
    monthly = _rows(con, """
        select strftime(ordered_date, '%Y-%m') as month, count(*) as orders, sum(revenue) as revenue
        from marts.fct_orders group by 1 order by 1 desc limit 12
    """)
    html = _env.get_template("report.html.j2").render(
        outcome=outcome, stages=stages, monthly=monthly, generated_at=datetime.now().strftime("%Y-%m-%d %H:%M"),
        warehouse=settings.warehouse, outbox=settings.outbox_dir,
    )
    path = settings.reports_dir / f"nightly-{outcome.night.isoformat()}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    (settings.reports_dir / "latest.html").write_text(html, encoding="utf-8")
    return path

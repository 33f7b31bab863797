"""The gate's report page: one self-contained HTML file per night, `<reports_dir>/quality-<night>.html`.

Each gate stores its result as JSON beside the page (`quality-<night>.json`, one entry
per gate) and re-renders the page from it, so the raw-data gate and the mart gate of
the same night end up on one page, failed checks first, every check listed.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

from jinja2 import Environment, select_autoescape

from kizuna.quality.gate import GateResult

_TEMPLATE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>kizuna quality gate · night of {{ night }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:80rem}
table{border-collapse:collapse;width:100%;margin-bottom:2rem;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4} .error{background:#fde8e8} .warning{background:#fff6dd} .ok{color:#2a7a2a}
code{font-size:.85rem} .bad{color:#b00;font-weight:bold} .warn{color:#a60;font-weight:bold}
</style></head><body>
<h1>Data-quality gates · night of {{ night }}</h1>
<p>Generated {{ generated_at }}. Checks: <code>kizuna/quality/checks.yaml</code>{% if sources|length > 1 %}
 with overrides from <code>{{ sources[1:]|join(', ') }}</code>{% endif %}.
An <b>error</b> stops the run (no dbt build after a raw-data error, no sends after a mart error);
a <b>warning</b> is reported and the run goes on. Examples from personal columns are masked
(<code>t***@example.com</code>, <code>090-****-5678</code>, <code>山***</code>): look the row up in the warehouse.</p>
{% for g in gates %}
<h2>{{ g.gate }}: {% if g.errors %}<span class="bad">stopped the run: {{ g.errors }} error(s)</span>
{%- else %}<span class="ok">passed</span>{% endif %}{% if g.warnings %}, <span class="warn">{{ g.warnings }} warning(s)</span>{% endif %}</h2>
<p>{{ g.passed }}/{{ g.outcomes|length }} checks passed in {{ '%.2f'|format(g.seconds) }} s.
Rows checked: {% for t, n in g.rows_checked.items() %}{{ t }} {{ '{:,}'.format(n) }}{{ ', ' if not loop.last }}{% endfor %}.</p>
<table><tr><th>result</th><th>check</th><th>table.column</th><th>expectation</th><th>failed rows</th><th>examples</th><th>why</th></tr>
{% for o in g.outcomes|sort(attribute='rank') %}
<tr class="{{ o.severity if not o.success else '' }}">
<td>{% if o.success %}<span class="ok">pass</span>{% else %}{{ o.severity }}{% endif %}</td>
<td><code>{{ o.name }}</code></td><td>{{ o.table }}{% if o.columns %}.{{ o.columns|join(', ') }}{% endif %}</td>
<td>{{ o.expectation }}</td>
<td>{% if o.error %}could not run: {{ o.error }}{% else %}{{ '{:,}'.format(o.unexpected_count) }}{% if o.rows_checked is not none %} / {{ '{:,}'.format(o.rows_checked) }}{% endif %}{% endif %}</td>
<td>{% for e in o.examples %}<code>{{ e }}</code>{{ '<br>'|safe if not loop.last }}{% endfor %}</td>
<td>{{ o.why }}</td></tr>
{% endfor %}</table>
{% endfor %}
</body></html>
"""

_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))


def write_quality_page(reports_dir: Path, night: date, result: GateResult, sources: list[Path] | None = None) -> Path:
    """Record `result` for `night` and (re)write the night's page; returns the page's path."""
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    store = reports_dir / f"quality-{night.isoformat()}.json"
    gates = json.loads(store.read_text(encoding="utf-8")) if store.exists() else {}
    gates[result.gate] = result.to_dict()
    store.write_text(json.dumps(gates, ensure_ascii=False, indent=1), encoding="utf-8")
    shown = []
    for name in ("raw data", "marts"):
        if name in gates:
            g = dict(gates[name])
            for o in g["outcomes"]:
                o["rank"] = (0 if not o["success"] and o["severity"] == "error"
                             else 1 if not o["success"] else 2)
            g["errors"] = sum(1 for o in g["outcomes"] if not o["success"] and o["severity"] == "error")
            g["warnings"] = sum(1 for o in g["outcomes"] if not o["success"] and o["severity"] == "warning")
            g["passed"] = sum(1 for o in g["outcomes"] if o["success"])
            shown.append(g)
    html = _env.from_string(_TEMPLATE).render(
        night=night.isoformat(), gates=shown, generated_at=datetime.now().strftime("%Y-%m-%d %H:%M"),
        sources=[str(s) for s in (sources or [])])
    page = reports_dir / f"quality-{night.isoformat()}.html"
    page.write_text(html, encoding="utf-8")
    return page

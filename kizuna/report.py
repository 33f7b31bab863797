"""The nightly report: one self-contained HTML page of what the night did and where the shop stands.

`write_nightly_report` writes `<reports_dir>/nightly-<night>.html` (and a copy as
`latest.html`). The page has no external resource at all: the charts are inline SVG drawn
in Python (`kizuna/report_charts.py`), every mark carries a `<title>` tooltip, and each
chart has its numbers in a table under it. The queries read the marts, which are small
aggregates, except `customer_rfm` (one row per customer), which is aggregated in SQL.
A mart that is not in the warehouse (not built yet, or a model added later, such as the
campaign results) leaves its section with a line saying so.
"""

from __future__ import annotations

import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from jinja2 import Environment, FileSystemLoader, select_autoescape

from kizuna import report_charts as charts
from kizuna.config import Settings
from kizuna.i18n import jinja_install, label
from kizuna.i18n import translations as _translations
from kizuna.report_charts import Series, count, pct, yen

if TYPE_CHECKING:
    from kizuna.stages import NightlyOutcome

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",)),
    extensions=["jinja2.ext.i18n"],
)
_env.filters.update(yen=yen, pct=pct, count=count)

#: The language of the report being built (set by `build_context`); the section builders' `_()` reads it.
_locale = "ja"


def _(message: str) -> str:
    """`message` (an English msgid) in the report's language: the charts' labels and tooltips."""
    return _translations(_locale).gettext(message)


def _label(kind: str, code: str | None) -> str:
    return label(kind, code, _locale)


def _media_names(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Media code → the medium's name from the shop's media table (people read names, not `AF_A8`)."""
    if "stg_shop__media" not in _relations(con, "staging"):
        return {}
    rows = con.execute("select media_code, any_value(media_name) from staging.stg_shop__media "
                       "where media_name is not null and trim(media_name) <> '' group by 1").fetchall()
    return {code: name for code, name in rows}


_names: dict[str, str] = {}


def _medium(code: str | None) -> str:
    """A medium's name when the media table has one, else its code."""
    return "–" if code is None else _names.get(code, code)

RETENTION_COHORTS = 24  # newest acquisition cohorts in the heatmap
RETENTION_MONTHS = 24  # months since acquisition shown
TREND_MONTHS = 24
SEGMENT_COLORS = {
    "loyal": "#2f855a", "promising": "#68d391", "new": "#90cdf4", "at_risk": "#ed8936",
    "needs_attention": "#f6e05e", "dormant": "#cbd5e0",
}
FUNNEL = ("sent", "delivered", "opened", "clicked", "converted")


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [{n: float(v) if isinstance(v, Decimal) else v for n, v in zip(names, row)} for row in cursor.fetchall()]


def _relations(con: duckdb.DuckDBPyConnection, schema: str) -> set[str]:
    rows = con.execute(
        "select table_name from duckdb_tables() where schema_name = ? and database_name = current_database() "
        "union all select view_name from duckdb_views() where schema_name = ? and database_name = current_database()",
        [schema, schema],
    ).fetchall()
    return {r[0] for r in rows}


def _month(d: Any) -> str:
    return d.strftime("%Y-%m") if d is not None else "–"


# -- sections: each returns a dict for the template, or None when its mart is missing ----------------------------


def _retention(con: duckdb.DuckDBPyConnection) -> dict | None:
    rows = _rows(con, f"""
        with cohorts as (
            select distinct cohort_month from marts.cohort_retention_monthly
            order by cohort_month desc limit {RETENTION_COHORTS}
        )
        select r.cohort_month, r.months_since_acquisition as m, r.cohort_size, r.customers_bought,
               r.retention_rate, r.is_partial_month
        from marts.cohort_retention_monthly r join cohorts using (cohort_month)
        where r.months_since_acquisition <= {RETENTION_MONTHS}
        order by r.cohort_month, r.months_since_acquisition
    """)
    if not rows:
        return {"empty": True}
    cohorts = sorted({r["cohort_month"] for r in rows})
    months = list(range(1, max(max(r["m"] for r in rows), 1) + 1))  # month 0 is 100% by definition
    grid = {(r["cohort_month"], r["m"]): r for r in rows}
    sizes = {r["cohort_month"]: r["cohort_size"] for r in rows}
    values = [[(grid[(c, m)]["retention_rate"] if (c, m) in grid else None) for m in months] for c in cohorts]

    def tip(i: int, j: int, v: float) -> str:
        r = grid[(cohorts[i], months[j])]
        partial = _(" (month not over)") if r["is_partial_month"] else ""
        return _("cohort {cohort}, month {m}{partial}: {rate} ({bought} of {size} bought)").format(
            cohort=_month(cohorts[i]), m=months[j], partial=partial, rate=pct(v),
            bought=f"{r['customers_bought']:,}", size=f"{r['cohort_size']:,}")

    peak = max((v for row in values for v in row if v is not None), default=0) or 1
    svg = charts.heatmap(
        [f"{_month(c)} ({sizes[c]:,})" for c in cohorts], [str(m) for m in months], values,
        tooltip=tip, cell_text=lambda v: f"{v * 100:.0f}", scale_max=peak, label=_("cohort retention heatmap"),
        cell_w=26, row_label_w=92,
    )
    picks = [m for m in (1, 2, 3, 6, 12, 24) if m in months]
    table = [
        {"cohort": _month(c), "size": sizes[c],
         "rates": [grid[(c, m)]["retention_rate"] if (c, m) in grid else None for m in picks]}
        for c in reversed(cohorts)
    ]
    return {"svg": svg, "picks": picks, "table": table}


def _rfm(con: duckdb.DuckDBPyConnection) -> dict | None:
    cells = _rows(con, """
        select recency_score, frequency_score, any_value(rfm_segment) as segment, count(*) as customers,
               sum(monetary) as monetary
        from marts.customer_rfm group by 1, 2
    """)
    segments = _rows(con, """
        select rfm_segment as segment, count(*) as customers, count(*) / sum(count(*)) over () as share,
               avg(monetary) as avg_monetary, avg(frequency) as avg_frequency, median(recency_days) as median_recency
        from marts.customer_rfm group by 1 order by customers desc
    """)
    if not cells:
        return {"empty": True}
    by = {(c["recency_score"], c["frequency_score"]): c for c in cells}
    total = sum(c["customers"] for c in cells)
    size, left, top = 92, 70, 26
    body = []
    for j in range(1, 6):
        body.append(f'<text x="{left + size * (j - 1) + size / 2}" y="{top - 8}" text-anchor="middle" fill="#555">'
                    f'F{j}</text>')
    for i, r in enumerate(range(5, 0, -1)):
        y = top + size * 0.62 * i
        h = size * 0.62
        body.append(f'<text x="{left - 8}" y="{y + h / 2 + 4:.1f}" text-anchor="end" fill="#555">R{r}</text>')
        for f in range(1, 6):
            c = by.get((r, f))
            x = left + size * (f - 1)
            if c is None:
                body.append(f'<rect x="{x}" y="{y:.1f}" width="{size - 2}" height="{h - 2:.1f}" fill="#f7f7f7"/>')
                continue
            color = SEGMENT_COLORS.get(c["segment"], "#a0aec0")
            tip = _("R{r} × F{f} · {segment}: {n} customers ({share}), {spent} spent").format(
                r=r, f=f, segment=_label("segment", c["segment"]), n=f"{c['customers']:,}",
                share=f"{c['customers'] / total:.1%}", spent=yen(c["monetary"]))
            body.append(f'<rect class="mark" x="{x}" y="{y:.1f}" width="{size - 2}" height="{h - 2:.1f}" '
                        f'fill="{color}"><title>{charts.escape(tip)}</title></rect>'
                        f'<text x="{x + size / 2 - 1}" y="{y + h / 2 - 1:.1f}" text-anchor="middle" font-weight="600" '
                        f'pointer-events="none" fill="#1a202c">{c["customers"]:,}</text>'
                        f'<text x="{x + size / 2 - 1}" y="{y + h / 2 + 12:.1f}" text-anchor="middle" font-size="9" '
                        f'pointer-events="none" fill="#2d3748">{charts.escape(_label("segment", c["segment"]))}</text>')
    width, height = left + size * 5 + 10, top + size * 0.62 * 5 + 24
    axis = _("frequency score → (5 = most orders)")
    body.append(f'<text x="{left + size * 2.5}" y="{height - 4}" text-anchor="middle" fill="#555">'
                f'{charts.escape(axis)}</text>')
    svg = charts.Markup(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height:.0f}" role="img" '
                        f'aria-label="RFM grid" font-size="{charts.FONT}" style="max-width:{width}px">'
                        + "".join(body) + "</svg>")
    grid = [{"r": r, "cells": [by.get((r, f), {}).get("customers", 0) for f in range(1, 6)]} for r in range(5, 0, -1)]
    return {"svg": svg, "segments": segments, "grid": grid, "total": total, "colors": SEGMENT_COLORS}


def _ltv(con: duckdb.DuckDBPyConnection) -> dict | None:
    rows = _rows(con, """
        select acquisition_media_code as media, horizon, horizon_months, cohorts, new_customers, ltv, cpo,
               profit_per_customer, average_purchases
        from marts.ltv_by_media order by media, horizon_months nulls last
    """)
    if not rows:
        return {"empty": True}
    media = sorted({r["media"] for r in rows})
    names = [_medium(m) for m in media]
    by_name = dict(zip(names, media))
    horizons = [h for h in ("3m", "6m", "12m", "lifetime") if any(r["horizon"] == h for r in rows)]
    horizons += sorted({r["horizon"] for r in rows} - set(horizons))
    by = {(r["media"], r["horizon"]): r for r in rows}
    colors = ("#bee3f8", "#63b3ed", "#2b6cb0", "#1a365d", "#718096")

    hname = {h: _label("horizon", h) for h in horizons}
    hcode = {v: k for k, v in hname.items()}

    def series(column: str) -> list[Series]:
        return [Series(hname[h], [by[(m, h)][column] if (m, h) in by else None for m in media],
                       colors[k % len(colors)])
                for k, h in enumerate(horizons)]

    def tip(column: str, what: str):
        def f(name: str, s: Series, v: float) -> str:
            r = by[(by_name[name], hcode[s.name])]
            return _("{medium}, {horizon}: {what} {value} · LTV {ltv} − CPO {cpo} · {n} customers, "
                     "{cohorts} cohorts").format(medium=name, horizon=s.name, what=what, value=yen(v),
                                                 ltv=yen(r["ltv"]), cpo=yen(r["cpo"]),
                                                 n=f"{r['new_customers']:,}", cohorts=r["cohorts"])
        return f

    return {
        "ltv_svg": charts.bar_chart(names, series("ltv"), tooltip=tip("ltv", "LTV"), label=_("LTV by medium"),
                                    axis_format=lambda v: "¥" + charts.compact(v)),
        "profit_svg": charts.bar_chart(names, series("profit_per_customer"),
                                       tooltip=tip("profit_per_customer", _("profit per customer")),
                                       label=_("profit per customer by medium"), height=240,
                                       axis_format=lambda v: "¥" + charts.compact(v)),
        "rows": rows, "horizons": horizons,
    }


def _revenue(con: duckdb.DuckDBPyConnection) -> dict | None:
    rows = _rows(con, f"""
        select * from (
            select order_month, new_customers, new_customer_revenue, existing_customers, existing_customer_revenue,
                   customers, total_revenue, existing_revenue_share
            from marts.revenue_new_vs_existing_monthly order by order_month desc limit {TREND_MONTHS}
        ) order by order_month
    """)
    if not rows:
        return {"empty": True}
    months = [_month(r["order_month"]) for r in rows]
    by = dict(zip(months, rows))

    new_name = _("new customers")

    def tip(month: str, s: Series, v: float) -> str:
        r = by[month]
        who = r["new_customers"] if s.name == new_name else r["existing_customers"]
        return _("{month} · {series}: {value} from {n} customers (total {total}, existing share {share})").format(
            month=month, series=s.name, value=yen(v), n=f"{who:,}", total=yen(r["total_revenue"]),
            share=pct(r["existing_revenue_share"]))

    svg = charts.bar_chart(
        months,
        [Series(new_name, [r["new_customer_revenue"] for r in rows], "#ed8936"),
         Series(_("existing customers"), [r["existing_customer_revenue"] for r in rows], "#2b6cb0")],
        tooltip=tip, stacked=True, label=_("revenue new vs existing"), axis_format=lambda v: "¥" + charts.compact(v),
    )
    return {"svg": svg, "rows": list(reversed(rows))}


def _f2(con: duckdb.DuckDBPyConnection) -> dict | None:
    by_media = _rows(con, """
        select acquisition_media_code as media, window_days, sum(eligible_buyers) as eligible,
               sum(converted_buyers) as converted, sum(converted_buyers) / nullif(sum(eligible_buyers), 0) as rate
        from marts.f2_conversion group by 1, 2 order by 1, 2
    """)
    overall = _rows(con, """
        select window_days, sum(first_time_buyers) as buyers, sum(eligible_buyers) as eligible,
               sum(converted_buyers) as converted, sum(converted_buyers) / nullif(sum(eligible_buyers), 0) as rate
        from marts.f2_conversion group by 1 order by 1
    """)
    trend = _rows(con, f"""
        select cohort_month, window_days, sum(converted_buyers) / nullif(sum(eligible_buyers), 0) as rate,
               sum(eligible_buyers) as eligible, sum(converted_buyers) as converted
        from marts.f2_conversion
        where cohort_month > (select max(cohort_month) from marts.f2_conversion) - interval {TREND_MONTHS} month
        group by 1, 2 order by 1, 2
    """)
    if not by_media:
        return {"empty": True}
    windows = sorted({r["window_days"] for r in by_media})
    media = sorted({r["media"] for r in by_media})
    names = [_medium(m) for m in media]
    by_name = dict(zip(names, media))
    bm = {(r["media"], r["window_days"]): r for r in by_media}
    wname = {w: _("{n} days").format(n=w) for w in windows}
    inverse = {v: k for k, v in wname.items()}

    def tip_media(name: str, s: Series, v: float) -> str:
        r = bm[(by_name[name], inverse[s.name])]
        return _("{medium}, within {window}: {rate} ({converted} of {eligible} eligible buyers)").format(
            medium=name, window=s.name, rate=pct(v), converted=f"{r['converted']:,}", eligible=f"{r['eligible']:,}")

    media_svg = charts.bar_chart(
        names, [Series(wname[w], [bm[(m, w)]["rate"] if (m, w) in bm else None for m in media]) for w in windows],
        tooltip=tip_media, label=_("F2 conversion by medium"), height=240, axis_format=lambda v: f"{v * 100:.0f}%",
    )
    cohorts = sorted({r["cohort_month"] for r in trend})
    tm = {(r["cohort_month"], r["window_days"]): r for r in trend}
    labels = [_month(c) for c in cohorts]
    lab_to_c = dict(zip(labels, cohorts))

    def tip_trend(label: str, s: Series, v: float) -> str:
        r = tm[(lab_to_c[label], inverse[s.name])]
        return _("cohort {cohort}, within {window}: {rate} ({converted} of {eligible})").format(
            cohort=label, window=s.name, rate=pct(v), converted=f"{r['converted']:,}", eligible=f"{r['eligible']:,}")

    trend_svg = charts.line_chart(
        labels, [Series(wname[w], [tm.get((c, w), {}).get("rate") for c in cohorts]) for w in windows],
        tooltip=tip_trend, label=_("F2 conversion by cohort"), axis_format=lambda v: f"{v * 100:.0f}%",
    )
    days = _rows(con, """
        select bucket_number, days_bucket, customers, share_of_second_purchasers as share, cumulative_share
        from marts.f2_days_to_second_purchase order by bucket_number
    """) if _has(con, "f2_days_to_second_purchase") else []
    days_svg = charts.bar_chart(
        [d["days_bucket"] for d in days],
        [Series(_("second purchasers"), [d["customers"] for d in days], "#319795")],
        tooltip=lambda b, s, v: next(_("{bucket} days: {n} customers ({share}; cumulative {cumulative})").format(
            bucket=b, n=f"{v:,}", share=pct(d["share"]), cumulative=pct(d["cumulative_share"]))
            for d in days if d["days_bucket"] == b),
        label=_("days to second purchase"), height=200, width=560,
    ) if days else None
    return {"media_svg": media_svg, "trend_svg": trend_svg, "days_svg": days_svg, "overall": overall,
            "by_media": by_media, "days": days, "windows": windows}


def _campaign_results(con: duckdb.DuckDBPyConnection, marts: set[str]) -> dict:
    out: dict[str, Any] = {}
    if "campaign_performance" in marts:
        sums = ", ".join(f"sum({k}_count) as {k}" for k in FUNNEL)
        perf = _rows(con, f"""
            select *, channel_cost / nullif(converted, 0) as cost_per_conversion,
                   (revenue - channel_cost) / nullif(channel_cost, 0) as return_on_cost
            from (
                select scenario_id, step_id, channel, {sums}, sum(conversion_revenue) as revenue,
                       sum(channel_cost) as channel_cost,
                       min(send_date) as first_send, max(send_date) as last_send
                from marts.campaign_performance group by 1, 2, 3
            ) order by 1, 2, 3
        """)
        scen = {}
        for r in perf:
            s = scen.setdefault(r["scenario_id"], dict.fromkeys(FUNNEL, 0))
            for k in FUNNEL:
                s[k] += r[k] or 0
        names = list(scen)
        out["perf"] = perf
        if names:
            shades = ("#bee3f8", "#90cdf4", "#4299e1", "#2b6cb0", "#2f855a")
            out["funnel_svg"] = charts.bar_chart(
                names, [Series(_label("status", k), [scen[n][k] for n in names], shades[i])
                        for i, k in enumerate(FUNNEL)],
                tooltip=lambda n, s, v: (f"{n} · {s.name}: {v:,.0f}"
                                         + (_(" ({share} of sent)").format(share=f"{v / scen[n]['sent']:.1%}")
                                            if scen[n]["sent"] else "")),
                label=_("campaign funnel"), height=240,
            )
    if "campaign_lift" in marts:
        lift = _rows(con, """
            select scenario_id, treated_customers, holdout_customers, treated_conversion_rate,
                   holdout_conversion_rate, absolute_lift as lift, lift_ci_low, lift_ci_high, lift_warning
            from marts.campaign_lift order by scenario_id
        """)
        out["lift"] = lift
        if lift:
            out["lift_svg"] = charts.interval_chart(
                [r["scenario_id"] for r in lift], [(r["lift"], r["lift_ci_low"], r["lift_ci_high"]) for r in lift],
                warn=[bool(r["lift_warning"]) for r in lift], label=_("campaign lift"),
                value_format=lambda v: f"{v * 100:+.1f}".replace("+0.0", "0"),
                tooltip=lambda i: (_("{scenario}: lift {lift} (95% CI {low} to {high}); treated {treated_rate} of "
                                     "{treated}, hold-out {holdout_rate} of {holdout}").format(
                    scenario=lift[i]["scenario_id"], lift=_signed_pt(lift[i]["lift"]),
                    low=_signed_pt(lift[i]["lift_ci_low"]), high=_signed_pt(lift[i]["lift_ci_high"]),
                    treated_rate=pct(lift[i]["treated_conversion_rate"]), treated=f"{lift[i]['treated_customers']:,}",
                    holdout_rate=pct(lift[i]["holdout_conversion_rate"]), holdout=f"{lift[i]['holdout_customers']:,}")
                    + (f" · {_label('lift', lift[i]['lift_warning'])}" if lift[i]["lift_warning"] else "")),
            )
    out["variants"] = _variant_results(con, marts)
    return out


# --- A/B variants (issue 17, part 2) ---------------------------------------------------------------------
def variant_verdict_label(verdict: str | None) -> str:
    """The verdict as a marketer reads it: Japanese first, the mart's value in parentheses."""
    if verdict is None:
        return "対照 (control)"
    if verdict.endswith(" wins"):
        return f"{verdict[:-len(' wins')]} の勝ち ({verdict})"
    return f"まだ差は言えません ({verdict})"


def _variant_results(con: duckdb.DuckDBPyConnection, marts: set[str]) -> list[dict]:
    """Each A/B-tested step's variants (marts.campaign_variant_results), the control first."""
    if "campaign_variant_results" not in marts:
        return []
    rows = _rows(con, """
        select scenario_id, step_id, variant, is_control, channel, sent_count, opened_count, clicked_count,
               converted_count, conversion_rate, conversion_revenue, rate_difference, difference_ci_low,
               difference_ci_high, still_needed_per_variant, verdict
        from marts.campaign_variant_results
        order by scenario_id, step_id, is_control desc, variant
    """)
    for r in rows:
        r["verdict_label"] = variant_verdict_label(r["verdict"])
    return rows




def _signed_pt(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:+.1f} pt"


_env.filters["pt"] = _signed_pt


def _stages(con: duckdb.DuckDBPyConnection) -> tuple[list[dict], Any]:
    rows = _rows(con, """
        select stage, count(*) as customers, sum(total_revenue) as revenue
        from marts.dim_customers group by stage order by customers desc
    """)
    svg = charts.bar_chart(
        [_label("stage", r["stage"]) for r in rows], [Series(_("customers"), [r["customers"] for r in rows], "#805ad5")],
        tooltip=lambda st, s, v: _("{stage}: {n} customers").format(stage=st, n=f"{v:,}"),
        label=_("customers by stage"), height=200, width=560,
    ) if rows else None
    return rows, svg


# --- Predictions (issue 19, docs/predictions.md): the hold-out check and the models' status -------------


def _predictions(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict | None:
    """The prediction stage's last fits (predict.fit_runs), its hold-out check as two charts (cumulative
    repeat purchases predicted vs actual per week; mean per customer by purchases before the cut-off) and
    the churn-risk bands. None when predictions never ran."""
    from kizuna.predict.score import read_latest

    latest = read_latest(con)
    if latest is None:
        return None
    fits, weekly = latest
    out: dict[str, Any] = {"fits": [], "warnings": [], "weekly_svg": None, "frequency_svg": None, "bands": []}
    for f in fits:
        error = f.holdout_error
        out["fits"].append({"model": f.model, "status": f.status, "customers": f.customers,
                            "repeat_buyers": f.repeat_buyers, "message": f.message, "params": f.params
                            if f.model != "sbg" else {}, "cohorts": len(f.params) if f.model == "sbg" else None,
                            "holdout_weeks": f.holdout_weeks, "holdout_predicted": f.holdout_predicted,
                            "holdout_actual": f.holdout_actual, "holdout_error": error,
                            "holdout_customer_mae": f.holdout_customer_mae})
        if f.status == "too_small" and f.model == "sbg":
            out["warnings"].append(_("Subscriptions (sBG): too few subscribers or cohorts to fit ({n} subscribers, "
                                     "at least {min} needed); the historical marts stand.").format(
                                         n=f"{f.customers:,}", min=f"{settings.predict_min_repeat_buyers:,}"))
        elif f.status == "too_small":
            out["warnings"].append(_("Purchases (BG/NBD): {n} repeat buyers, fewer than {min}: too few to fit "
                                     "reliably; the historical marts (LTV, F2, retention) stand.").format(
                                         n=f"{f.repeat_buyers:,}", min=f"{settings.predict_min_repeat_buyers:,}"))
        if error is not None and abs(error) > settings.predict_max_holdout_error:
            out["warnings"].append(_("Poor fit: the repeat purchases of the hold-out weeks were predicted {error} "
                                     "off the actual ones (more than {limit}); use the predictions with care.").format(
                                         error=pct(error), limit=pct(settings.predict_max_holdout_error)))
        if f.by_frequency is not None and len(f.by_frequency):
            groups = f.by_frequency.to_dict("records")
            names = [f"{int(g['frequency'])}+" if int(g["frequency"]) >= 7 else str(int(g["frequency"]))
                     for g in groups]
            sizes = {n: int(g["customers"]) for n, g in zip(names, groups)}
            out["frequency_svg"] = charts.bar_chart(
                names, [Series(_("predicted"), [g["predicted_mean"] for g in groups], "#3182ce"),
                        Series(_("actual"), [g["actual_mean"] for g in groups], "#dd6b20")],
                tooltip=lambda n, s, v: _("{n} repeat purchase(s) before the hold-out ({c} customers): {what} "
                                          "{v} per customer").format(n=n, c=f"{sizes[n]:,}", what=s.name,
                                                                     v=f"{v:.3f}"),
                label=_("hold-out purchases per customer"), height=220, width=560,
                axis_format=lambda v: f"{v:.2f}")
    if len(weekly):
        weeks = [str(int(w)) for w in weekly["week"]]
        out["weekly_svg"] = charts.line_chart(
            weeks, [Series(_("predicted"), [float(v) for v in weekly["predicted_cumulative"]], "#3182ce"),
                    Series(_("actual"), [float(v) for v in weekly["actual_cumulative"]], "#dd6b20")],
            tooltip=lambda w, s, v: _("week {week} of the hold-out: {what} {v} cumulative repeat purchases").format(
                week=w, what=s.name, v=f"{v:,.0f}"),
            label=_("cumulative repeat purchases in the hold-out weeks"), height=220)
    if _has(con, "customer_predictions"):
        out["bands"] = _rows(con, """
            select coalesce(churn_risk_band, '-') as band, count(*) as customers, avg(p_alive) as p_alive,
                   sum(predicted_clv_12m) as clv
            from marts.customer_predictions group by 1
            order by case band when 'low' then 1 when 'medium' then 2 when 'high' then 3 else 4 end""")
    return out
# ----------------------------------------------------------------------------------------------------


def _has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return table in _relations(con, "marts")


def _section(name: str, marts: set[str], build):
    if name not in marts:
        return None
    return build()


def build_context(con: duckdb.DuckDBPyConnection, settings: Settings, outcome: "NightlyOutcome") -> dict[str, Any]:
    """Everything the template shows (also used by the tests to compare the page with the marts).

    Words are in `settings.locale` (KIZUNA_LOCALE); media are shown by name (the shop's media table)."""
    global _locale, _names
    _locale = settings.locale
    _names = _media_names(con)
    marts = _relations(con, "marts")
    stages, stages_svg = _stages(con) if "dim_customers" in marts else ([], None)
    night = outcome.night.isoformat()
    quality_page = settings.reports_dir / f"quality-{night}.html"
    return {
        "outcome": outcome,
        "generated_at": datetime.now().strftime("%Y-%m-%d %H:%M"),
        # relative to the page, so the link works and the page names no machine path
        "outbox": Path(os.path.relpath(settings.outbox_dir, settings.reports_dir)).as_posix(),
        "quality_link": quality_page.name if quality_page.exists() else None,
        "gates": [*outcome.raw_gates, *([outcome.mart_gate] if outcome.mart_gate else [])],
        "stages": stages, "stages_svg": stages_svg,
        "retention": _section("cohort_retention_monthly", marts, lambda: _retention(con)),
        "rfm": _section("customer_rfm", marts, lambda: _rfm(con)),
        "ltv": _section("ltv_by_media", marts, lambda: _ltv(con)),
        "revenue": _section("revenue_new_vs_existing_monthly", marts, lambda: _revenue(con)),
        "f2": _section("f2_conversion", marts, lambda: _f2(con)),
        "campaign_results": _campaign_results(con, marts),
        "predictions": _predictions(con, settings),  # issue 19
        "segment_colors": SEGMENT_COLORS,
        "media_name": _medium,
    }


def write_nightly_report(con: duckdb.DuckDBPyConnection, settings: Settings, outcome: "NightlyOutcome") -> Path:
    context = build_context(con, settings, outcome)
    jinja_install(_env, settings.locale)
    html = _env.get_template("report.html.j2").render(**context)
    path = settings.reports_dir / f"nightly-{outcome.night.isoformat()}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    (settings.reports_dir / "latest.html").write_text(html, encoding="utf-8")
    return path

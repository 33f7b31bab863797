"""The seed questions, answered from the marts: a marimo notebook (docs/analysts.md).

    .venv/bin/marimo edit notebooks/marts.py    # in the browser, cells you can change
    .venv/bin/marimo run notebooks/marts.py     # as a read-only app
    .venv/bin/python notebooks/marts.py         # headless: every cell once (what the test does)

It reads the published warehouse (KIZUNA_PUBLISHED_WAREHOUSE, default
data/warehouse.published.duckdb), never the file the nightly run writes, so it can stay open
during the night; re-run the first cell to see the newest night.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import duckdb
    import marimo as mo

    from kizuna.config import Settings

    published = Settings().published_warehouse
    # A new in-memory DuckDB attaching the file read-only, each time this cell runs: it sees the night
    # published last. (`duckdb.connect(path)` again would hand back the database this process already has
    # open, the night it first saw.)
    con = duckdb.connect()
    con.execute(f"attach '{published}' as warehouse (read_only)")
    con.execute("use warehouse")
    night = con.execute("select max(night) from raw._load_log").fetchone()[0]
    mo.md(f"# 絆 marts — {night} の夜 (night {night})\n\n`{published}`")
    return con, mo, night


@app.cell
def _(con, mo):
    # LTV と媒体別利益 (LTV and profit by medium): 限界CPO is what a new customer may cost and still break even.
    ltv = con.execute("""
        select coalesce(media_name, acquisition_media_code) as medium, media_type, horizon, new_customers,
               ltv, cpo, break_even_cpo, profit_per_customer, payback_months
        from marts.ltv_by_media
        order by horizon_months nulls last, profit_per_customer desc nulls last
    """).df()
    mo.vstack([mo.md("## LTV・媒体別利益 (LTV and profit by medium)"), ltv])
    return (ltv,)


@app.cell
def _(con, mo):
    # 新規・既存売上 (new vs existing revenue), the last twelve months.
    revenue = con.execute("""
        select order_month, new_customer_revenue, existing_customer_revenue, total_revenue, existing_revenue_share
        from marts.revenue_new_vs_existing_monthly
        order by order_month desc
        limit 12
    """).df()
    mo.vstack([mo.md("## 新規・既存売上 (new vs existing revenue)"), revenue])
    return (revenue,)


@app.cell
def _(con, mo):
    # RFM: customers per segment, with what they are worth.
    rfm = con.execute("""
        select rfm_segment, count(*) as customers, round(avg(recency_days)) as average_recency_days,
               round(avg(frequency), 1) as average_orders, round(avg(monetary)) as average_revenue
        from marts.customer_rfm
        group by rfm_segment
        order by customers desc
    """).df()
    mo.vstack([mo.md("## RFM"), rfm])
    return (rfm,)


@app.cell
def _(con, mo):
    # F2 転換率 (conversion to a second order) per medium and window, over every eligible cohort.
    f2 = con.execute("""
        select coalesce(media_name, acquisition_media_code) as medium, window_days,
               sum(eligible_buyers) as eligible_buyers, sum(converted_buyers) as converted_buyers,
               round(sum(converted_buyers) / nullif(sum(eligible_buyers), 0), 4) as f2_conversion_rate
        from marts.f2_conversion
        group by all
        order by window_days, f2_conversion_rate desc nulls last
    """).df()
    mo.vstack([mo.md("## F2 転換率 (F2 conversion)"), f2])
    return (f2,)


if __name__ == "__main__":
    app.run()

"""The `kizuna` command line."""

from __future__ import annotations

import logging
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Optional
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

import kizuna  # noqa: F401  (environment defaults first)
from kizuna.config import Settings, get_settings
from kizuna.errors import KizunaError

app = typer.Typer(help="kizuna: the nightly CRM pipeline for direct-to-consumer shops.", no_args_is_help=True)
campaigns_app = typer.Typer(help="Scenario files: validate and preview.", no_args_is_help=True)
docs_app = typer.Typer(help="Generated documentation.", no_args_is_help=True)
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(docs_app, name="docs")
sends_app = typer.Typer(help="Messages that need a person: unknown and failed sends in the ledger.",
                         no_args_is_help=True)
app.add_typer(sends_app, name="sends")
webhook_app = typer.Typer(help="Provider webhooks (SendGrid events, LINE follow/unfollow).", no_args_is_help=True)
app.add_typer(webhook_app, name="webhook")
console = Console()


def _fail(exc: KizunaError) -> None:
    console.print(f"[bold red]Stopped:[/] {exc}")
    raise typer.Exit(1)


def _log_to_console() -> None:
    handler = RichHandler(console=console, show_path=False, show_time=False, markup=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    logging.getLogger("kizuna").setLevel(logging.INFO)


def _run_flow(settings: Settings, night: date | None, started: float):
    """Run the nightly flow in this process (Prefect's temporary local server when none is configured).

    The run lock is taken first, so a second run stops at once, before Prefect starts."""
    import os

    from kizuna.runlock import run_lock
    from kizuna.stages import DeliveryIncomplete

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # our own summary says what happened
    with run_lock(settings.data_dir):
        from flows.nightly import nightly

        state = nightly(night=night, return_state=True)
    if state.is_failed():
        try:
            state.result()
        except DeliveryIncomplete as exc:  # the night was done, but a channel waits: show it all, then fail
            if exc.outcome is not None:
                _print_summary(exc.outcome, settings, time.perf_counter() - started)
            _fail(exc)
        except KizunaError as exc:
            _fail(exc)
        except Exception as exc:  # an unexpected failure: say which stage, keep the detail
            console.print(f"[bold red]The nightly run failed:[/] {type(exc).__name__}: {exc}")
            raise typer.Exit(1) from None
    return state.result()


def _print_summary(outcome, settings: Settings, seconds: float) -> None:
    loads = [f for n in outcome.loads for f in n.files]
    read = sum(f.rows_read for f in loads)
    new = sum(f.rows_inserted + f.rows_updated for f in loads)
    quarantined = sum(f.rows_quarantined for f in loads)
    console.rule(f"kizuna nightly run · night of {outcome.night} · sends dated {outcome.run_date}")
    if loads:
        console.print(f"Loaded     {len(outcome.loads)} night(s), {len(loads)} file(s): {read:,} rows read, "
                      f"{new:,} inserted or updated, {quarantined:,} quarantined")
    else:
        console.print("Loaded     nothing new: every export was already loaded")
    if outcome.erasure is not None:
        console.print(f"Erasure    {outcome.erasure.summary().removeprefix('erasure: ')}", highlight=False)
    if outcome.events is not None:
        console.print(f"Feedback   {outcome.events.summary()}")
    for load in outcome.loads:
        if load.gate is not None:
            gate = load.gate
            console.print(f"Checks     {gate.gate} of night {load.night}: {gate.passed}/{len(gate.outcomes)} passed"
                          + (f", {len(gate.warnings)} warning(s)" if gate.warnings else ""))
    if not outcome.raw_gates:
        console.print("Checks     raw data: nothing new to check")
    for note in outcome.ignored:
        console.print(f"Ignored    {note}", highlight=False)
    gate = outcome.mart_gate
    console.print(f"Checks     {gate.gate}: {gate.passed}/{len(gate.outcomes)} passed"
                  + (f", {len(gate.warnings)} warning(s)" if gate.warnings else ""))
    console.print(f"Models     {outcome.build.summary()}")
    table = Table("scenario", "step", "channel", "status", "messages", title="Campaign messages", title_justify="left")
    for (scenario, step, channel, status), n in sorted(outcome.campaigns.delivered.items()):
        table.add_row(scenario, step, channel, status, f"{n:,}")
    if outcome.campaigns.delivered:
        console.print(table)
    else:
        console.print("Messages   none due (or all already sent)")
    for channel, why in sorted(outcome.campaigns.channel_problems.items()):
        console.print(f"[bold red]Not sent[/]   {channel}: {why}", markup=True, highlight=False)
    for (channel, state), n in sorted(outcome.campaigns.attention.items()):
        hint = ("retried on the next run" if state == "failed, will retry" else
                "see `kizuna sends unknown`" if state == "unknown" else "see `kizuna sends failed`")
        console.print(f"[bold yellow]Attention[/]  {n:,} {channel} message(s) {state} ({hint})", markup=True,
                      highlight=False)
    console.print(f"Warehouse  {settings.warehouse}")
    console.print(f"Outbox     {settings.outbox_dir}")
    console.print(f"Report     {outcome.report_path}")
    console.print(f"Done in {seconds:.1f} s.")


@app.command()
def demo(
    customers: Optional[int] = typer.Option(None, help="Customers in the demo shop (default: KIZUNA_DEMO_CUSTOMERS)."),
) -> None:
    """Generate a demo shop if none exists, run the nightly flow for its newest night, summarise."""
    _log_to_console()
    settings = get_settings()
    started = time.perf_counter()
    try:
        if not (settings.exports_dir / "shop.json").exists():
            _generate_demo(settings, customers or settings.demo_customers)
        outcome = _run_flow(settings, None, started)
    except KizunaError as exc:
        _fail(exc)
    _print_summary(outcome, settings, time.perf_counter() - started)


def _generate_demo(settings: Settings, customers: int) -> None:
    from rich.progress import Progress

    from kizuna.demo_shop import generate_shop

    # The demo shop's last night is yesterday in the shop's time zone, so tonight's sends are today's.
    end = datetime.now(ZoneInfo(settings.timezone)).date() - timedelta(days=1)
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task(f"Generating a demo shop of {customers:,} customers", total=1.0)
        generate_shop(settings.exports_dir, customers=customers, seed=settings.demo_seed, end_date=end,
                      nights=settings.demo_nights, progress=lambda _msg, done: progress.update(bar, completed=done))
    console.print(f"Demo shop: {customers:,} customers, exports in {settings.exports_dir}")


@app.command()
def run(night: Optional[datetime] = typer.Option(None, formats=["%Y-%m-%d"], help="Night to process (default: newest).")) -> None:
    """Run the nightly flow on the exports in KIZUNA_EXPORTS_DIR."""
    _log_to_console()
    settings = get_settings()
    started = time.perf_counter()
    try:
        outcome = _run_flow(settings, night.date() if night else None, started)
    except KizunaError as exc:
        _fail(exc)
    _print_summary(outcome, settings, time.perf_counter() - started)


@app.command()
def generate(
    out: Path = typer.Option(..., help="Folder to write the exports into (one sub-folder per night)."),
    customers: int = typer.Option(10_000, help="Number of customers."),
    seed: int = typer.Option(1, help="Random seed: the same seed gives the same files."),
    end_date: datetime = typer.Option(..., formats=["%Y-%m-%d"], help="Last night of the export."),
    nights: int = typer.Option(3, help="Nights exported one folder each after the full history."),
    encoding: str = typer.Option("utf-8", help="utf-8 or cp932."),
) -> None:
    """Generate a synthetic shop's nightly CSV exports."""
    from kizuna.demo_shop import generate_shop

    summary = generate_shop(out, customers=customers, seed=seed, end_date=end_date.date(), nights=nights, encoding=encoding)
    console.print(summary)


@campaigns_app.command("validate")
def campaigns_validate() -> None:
    """Validate every scenario file and render each step once with sample data."""
    from campaigns.render import Renderer
    from campaigns.schema import load_scenarios

    settings = get_settings()
    try:
        scenarios = load_scenarios()
        renderer = Renderer(settings)
        sample = {"customer_id": "C0000000", "last_name": "山田", "first_name": "花子"}
        for s in scenarios:
            for step in s.steps:
                renderer.render(step, sample, "sample-send-id", date.today())
    except KizunaError as exc:
        _fail(exc)
    for s in scenarios:
        console.print(f"[green]ok[/] {s.id} (priority {s.priority}, {len(s.steps)} steps)")


@campaigns_app.command("preview")
def campaigns_preview(
    run_date: datetime = typer.Option(..., "--date", formats=["%Y-%m-%d"], help="Send date to preview (YYYY-MM-DD)."),
    sample: int = typer.Option(1, help="Rendered sample messages per scenario step."),
) -> None:
    """What a run for --date would record and send, per scenario, step and channel; writes nothing.

    Opens the warehouse and the ledger read-only: no message is sent, no ledger row written.
    """
    from campaigns.engine import preview_campaigns
    from campaigns.schema import load_scenarios
    from kizuna.warehouse import connect

    settings = get_settings()
    if not settings.warehouse.exists():
        _fail(KizunaError(f"No warehouse at {settings.warehouse}: run `kizuna demo` or `kizuna run` first."))
    try:
        scenarios = load_scenarios()
        with connect(settings.warehouse, read_only=True) as con:
            result = preview_campaigns(con, settings, scenarios, run_date.date(), sample=sample)
    except KizunaError as exc:
        _fail(exc)
    table = Table("scenario", "step", "channel", "status", "rows", title=f"Campaign preview for {run_date.date()}",
                  title_justify="left")
    for scenario, step, channel, status, n in result.counts:
        table.add_row(scenario, step, channel, status, f"{n:,}")
    if result.counts:
        console.print(table)
    else:
        console.print("Nothing due on that date (or all already in the ledger).")
    for scenario, step, channel, rendered in result.samples:
        console.rule(f"{scenario} · {step} · {channel}")
        console.print(f"[bold]{rendered.subject}[/]", markup=True)
        console.print(rendered.text, markup=False, highlight=False)
    console.print("[dim]Preview only: nothing was sent and the ledger was not written.[/]")


def _print_sends(status: str, limit: int) -> None:
    from campaigns import ledger

    settings = get_settings()
    if not settings.ledger.exists():
        console.print(f"No send ledger at {settings.ledger} yet: nothing was sent.")
        return
    try:
        con = ledger.open_file(settings.ledger)  # writable: a dead run's journal is folded in first
    except KizunaError as exc:
        _fail(exc)
    rows = ledger.rows_in(con, status, limit)
    total = con.execute("select count(*) from ledger.sends where status = ?", [status]).fetchone()[0]
    con.close()
    if not rows:
        console.print(f"No {status} messages.")
        return
    table = Table("send id", "channel", "scenario / step", "customer", "run", "handed over (UTC)", "tries", "detail",
                  title=f"{total:,} {status} message(s)" + (f", the first {len(rows):,}" if total > len(rows) else ""),
                  title_justify="left")
    for r in rows:
        table.add_row(r["send_id"], r["channel"], f"{r['scenario_id']} / {r['step_id']}", r["customer_id"],
                      str(r["run_date"]), str(r["handed_over_at"] or ""), str(r["attempts"] or 0), r["detail"] or "")
    console.print(table)


@sends_app.command("unknown")
def sends_unknown(limit: int = typer.Option(200, help="Rows to show.")) -> None:
    """List the messages whose fate is unknown (the provider may or may not have them).

    E-mails are reconciled from SendGrid's events each night; what is left here needs a person:
    check the provider's log (SendGrid activity feed, LINE console, Twilio log) for the send id, then
    `kizuna sends resolve SEND_ID --delivered` or `--not-delivered`. Nothing here is ever resent blindly."""
    _print_sends("unknown", limit)


@sends_app.command("failed")
def sends_failed(limit: int = typer.Option(200, help="Rows to show.")) -> None:
    """List the messages a provider refused, with the reason (retried on later runs up to
    KIZUNA_SEND_MAX_FAILURES times, unless a person or the provider barred a retry)."""
    _print_sends("failed", limit)


@sends_app.command("resolve")
def sends_resolve(
    send_ids: list[str] = typer.Argument(..., help="Send ids (from `kizuna sends unknown`)."),
    delivered: bool = typer.Option(..., "--delivered/--not-delivered",
                                   help="What the provider's log says: it was delivered, or it was not."),
    by: str = typer.Option(..., help="Who decides (recorded in the ledger)."),
) -> None:
    """Record a person's verdict on unknown messages: delivered, or not delivered (then never resent)."""
    from campaigns import ledger

    settings = get_settings()
    try:
        con = ledger.open_file(settings.ledger)
    except KizunaError as exc:
        _fail(exc)
    decided = ledger.resolve_by_hand(con, send_ids, delivered, by)
    con.close()
    for send_id in decided:
        console.print(f"[green]recorded[/] {send_id}: {'delivered' if delivered else 'not delivered'}")
    for send_id in sorted(set(send_ids) - set(decided)):
        console.print(f"[yellow]skipped[/] {send_id}: not an unknown message in the ledger")
    if len(decided) < len(set(send_ids)):
        raise typer.Exit(1)


@docs_app.command("export-format")
def docs_export_format(out: Path = typer.Option(Path("docs/export-format.md"), help="Where to write it.")) -> None:
    """Write the export format reference (generated from connectors/sources/export_format.py)."""
    from kizuna.docs_export_format import render_export_format_doc

    out.write_text(render_export_format_doc(), encoding="utf-8")
    console.print(f"wrote {out}")


@docs_app.command("dbt")
def docs_dbt() -> None:
    """Generate the dbt docs of the marts as one page that opens in a browser (needs a built warehouse)."""
    from kizuna import modelling

    try:
        page = modelling.generate_docs(get_settings())
    except KizunaError as exc:
        _fail(exc)
    console.print(f"dbt docs: open {page} in a browser")


@webhook_app.command("serve")
def webhook_serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (put a TLS proxy in front when public)."),
    port: int = typer.Option(8787, help="Port to listen on."),
) -> None:
    """Receive SendGrid and LINE webhooks: verify signatures, store events for the nightly run."""
    from kizuna.events.webhook import serve

    _log_to_console()
    try:
        serve(get_settings(), host=host, port=port)
    except KizunaError as exc:
        _fail(exc)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())

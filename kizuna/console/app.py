"""The console's web application: FastAPI, server-rendered Jinja pages, htmx (vendored, no build step).

Private: never mounted in the public webhook service (kizuna/events), listening on 127.0.0.1 unless
told otherwise (docs/console.md shows it behind a TLS proxy). Every page needs a login; every form
carries the session's CSRF token and a request without it, or without a session, changes nothing.
Every action is written to the audit table of the console's store, and every change a person makes
goes to that store only: the nightly run folds it into the ledger (kizuna/console/nightly.py).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.middleware.sessions import SessionMiddleware

from campaigns.engine import SKIP_REASONS
from kizuna.config import Settings
from kizuna.console import auth, reads, store, views
from kizuna.errors import KizunaError
from kizuna.i18n import gettext, jinja_install, label
from kizuna.secrets import generated_secret_file

log = logging.getLogger("kizuna.console")

HERE = Path(__file__).parent
SESSION_KEY_FILE = "console-session.key"
SESSION_COOKIE = "kizuna_console"
CSRF_FIELD, CSRF_HEADER = "csrf_token", "x-csrf-token"
#: Pages and their titles' msgids, for the navigation.
NAV = (("tonight", "Tonight"), ("results", "Results"), ("attention", "Messages that need a person"),
       ("customers", "Customers"), ("audit", "Audit trail"))
#: The console's own page styles and scripts only; e-mail previews keep their inline styles; images of the
#: shop's site are not fetched (the console works offline and shows no remote content).
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
       "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


class Refused(Exception):
    """A request that may not change anything (no session, wrong CSRF token, bad input)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def session_secret(settings: Settings) -> str:
    """The key that signs the console's session cookies: generated once into <data_dir>/console-session.key."""
    return generated_secret_file(Path(settings.data_dir) / SESSION_KEY_FILE, min_length=32,  # type: ignore[arg-type]
                                 if_unreadable="Delete it: a new one is generated (everybody logs in again).",
                                 error=KizunaError)


#: The nightly run starts at 02:00 shop time (prefect.yaml); until a little after, "tonight" is today's run.
NIGHTLY_RUN_HOUR = 3


def coming_night(settings: Settings, now: datetime | None = None) -> date:
    """The run date of the coming nightly run: today's before the 02:00 run is over, else tomorrow's."""
    local = (now or datetime.now(ZoneInfo(settings.timezone))).astimezone(ZoneInfo(settings.timezone))
    return local.date() if local.hour < NIGHTLY_RUN_HOUR else local.date() + timedelta(days=1)


def _templates(settings: Settings) -> Jinja2Templates:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["j2", "html"]),
                      extensions=["jinja2.ext.i18n"])
    jinja_install(env, settings.locale)
    reason_labels = {key: text for key, text in SKIP_REASONS.values()}
    env.filters["reason"] = lambda key: reason_labels.get(key or "", key or "")
    from kizuna import report_charts
    from kizuna.report import _signed_pt

    env.filters.update(count=report_charts.count, pct=report_charts.pct, yen=report_charts.yen, pt=_signed_pt)
    env.globals["nav"] = NAV
    env.globals["approval_channels"] = settings.approval_channels
    return Jinja2Templates(env=env)


def create_app(settings: Settings, ledger_refresh_seconds: float = 30.0) -> FastAPI:
    """The console for `settings`' shop. `ledger_refresh_seconds`: how often the ledger copy may be taken."""
    app = FastAPI(title="kizuna console", docs_url=None, redoc_url=None, openapi_url=None)
    templates = _templates(settings)
    copy = reads.LedgerCopy(settings, ledger_refresh_seconds)
    cache = views.PlanCache()
    users_file = Path(settings.console_users)  # type: ignore[arg-type]
    store_path = Path(settings.console_store)  # type: ignore[arg-type]
    store.connect(store_path).close()  # created (and its schema) before the first request
    _ = lambda text: gettext(text, settings.locale)  # noqa: E731

    app.add_middleware(SessionMiddleware, secret_key=session_secret(settings), session_cookie=SESSION_COOKIE,
                       max_age=int(settings.console_session_hours * 3600), same_site="strict",
                       https_only=settings.console_https_only)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    # ---- helpers --------------------------------------------------------------------------------------
    def user_of(request: Request) -> str | None:
        name = request.session.get("user")
        return name if name and name in auth.load_users(users_file) else None  # a removed user is out at once

    def csrf_of(request: Request) -> str:
        token = request.session.get("csrf")
        if not token:
            token = request.session["csrf"] = auth.new_csrf_token()
        return token

    def remote(request: Request) -> str:
        return request.client.host if request.client else "-"

    def audit(request: Request, user: str, action: str, target: str | None = None, detail: str | None = None) -> None:
        with store.opened(store_path) as sq:
            store.audit(sq, user, action, target, detail, remote(request))

    async def action(request: Request) -> tuple[str, dict[str, str]]:
        """The user and form of a state-changing request; Refused (nothing changes) without a session or with a
        wrong CSRF token, and the refusal is audited."""
        form = {k: str(v) for k, v in (await request.form()).items()}
        user = user_of(request)
        if user is None:
            audit(request, "-", "refused_no_session", request.url.path)
            raise Refused(401, _("Log in first: nothing was changed."))
        given = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
        if not auth.csrf_ok(request.session.get("csrf"), given):
            audit(request, user, "refused_csrf", request.url.path)
            raise Refused(403, _("The form's security token did not match (an old page, or a request from "
                                 "another site): nothing was changed. Reload the page and try again."))
        return user, form

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"user": user_of(request), "csrf": csrf_of(request),
                                                          "active": name.split(".")[0], **context},
                                          status_code=status)

    def night_of(value: str | None) -> date:
        if not value:
            return coming_night(settings)
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise Refused(400, _("The date must be YYYY-MM-DD.")) from None

    def back(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return page(request, "refused.html.j2", status=exc.status, message=exc.message)

    @app.exception_handler(KizunaError)
    async def kizuna_error(request: Request, exc: KizunaError) -> Response:
        return page(request, "refused.html.j2", status=500, message=str(exc))

    def login_required(request: Request) -> str:
        user = user_of(request)
        if user is None:
            raise HTTPException(status_code=303, headers={"Location": "/login"})
        return user

    # ---- login ----------------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        return page(request, "login.html.j2", no_users=not auth.load_users(users_file))

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        if not auth.csrf_ok(request.session.get("csrf"), form.get(CSRF_FIELD)):
            audit(request, "-", "refused_csrf", "/login")
            raise Refused(403, _("The form's security token did not match (an old page, or a request from another "
                                 "site): nothing was changed. Reload the page and try again."))
        name = form.get("username", "").strip()
        if not auth.authenticate(users_file, name, form.get("password", "")):
            audit(request, "-", "login_failed", name[:64])
            return page(request, "login.html.j2", status=401, error=_("Wrong user name or password."),
                        no_users=not auth.load_users(users_file))
        request.session.clear()  # a new session at login: nothing from before carries over
        request.session.update({"user": name, "csrf": auth.new_csrf_token()})
        audit(request, name, "login")
        return back("/tonight")

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        user, _form = await action(request)
        audit(request, user, "logout")
        request.session.clear()
        return back("/login")

    @app.get("/")
    async def home(request: Request) -> Response:
        login_required(request)
        return back("/tonight")

    # ---- tonight --------------------------------------------------------------------------------------
    @app.get("/tonight", response_class=HTMLResponse)
    async def tonight(request: Request, date: str | None = None) -> Response:
        login_required(request)
        night = night_of(date)
        plan = views.plan(settings, copy, cache, night)
        state = views.store_state(settings)
        approved = {(a["channel"], a["night"]): a for a in state["approvals"]}
        return page(request, "tonight.html.j2", night=night, plan=plan, holds=state["holds"],
                    active_holds=[h for h in state["holds"] if h.applies(night)],
                    approved=approved, awaiting=views.awaiting_lists(copy), ledger=plan.ledger if plan else copy.state())

    @app.get("/tonight/{scenario_id}/{step_id}", response_class=HTMLResponse)
    async def step_customers(request: Request, scenario_id: str, step_id: str, date: str | None = None,
                             p: int = 1) -> Response:
        login_required(request)
        night = night_of(date)
        plan = views.plan(settings, copy, cache, night)
        rows = [r for r in (plan.audience if plan else []) if r["scenario_id"] == scenario_id and r["step_id"] == step_id]
        shown, pages = views.page(rows, p)
        return page(request, "step.html.j2", night=night, scenario_id=scenario_id, step_id=step_id, rows=shown,
                    total=len(rows), page_no=min(max(1, p), pages), pages=pages)

    @app.get("/tonight/{scenario_id}/{step_id}/{customer_id}", response_class=HTMLResponse)
    async def message(request: Request, scenario_id: str, step_id: str, customer_id: str,
                      date: str | None = None) -> Response:
        login_required(request)
        night = night_of(date)
        plan = views.plan(settings, copy, cache, night)
        row = next((r for r in (plan.audience if plan else []) if r["scenario_id"] == scenario_id
                    and r["step_id"] == step_id and r["customer_id"] == customer_id), None)
        if row is None:
            raise Refused(404, _("That customer is not due for that step on that night."))
        preview = views.message_preview(settings, night, row)
        return page(request, "message.html.j2", night=night, row=row, preview=preview)

    # ---- hold and approve -----------------------------------------------------------------------------
    @app.post("/holds")
    async def add_hold(request: Request) -> Response:
        user, form = await action(request)
        scenario_id, step_id = form.get("scenario_id", ""), form.get("step_id") or None
        known = {s.id: {st.id for st in s.steps} for s in views.scenarios(settings)}
        if scenario_id not in known or (step_id is not None and step_id not in known[scenario_id]):
            raise Refused(400, _("No such scenario or step: nothing was held."))
        night = night_of(form.get("night"))
        one_night = form.get("scope") == "night"
        with store.opened(store_path) as sq:
            hold = store.add_hold(sq, scenario_id, step_id, night if one_night else None, user)
            store.audit(sq, user, "hold", f"{scenario_id}/{step_id or '*'}",
                        f"night {night}" if one_night else "until released", remote(request))
        log.info("console: %s held %s/%s (hold %s)", user, scenario_id, step_id or "*", hold.id)
        return back(f"/tonight?date={night}")

    @app.post("/holds/{hold_id}/release")
    async def release(request: Request, hold_id: int) -> Response:
        user, form = await action(request)
        with store.opened(store_path) as sq:
            if not store.release_hold(sq, hold_id, user):
                raise Refused(400, _("That hold does not exist or was released already."))
            store.audit(sq, user, "release", str(hold_id), None, remote(request))
        return back(f"/tonight?date={night_of(form.get('night'))}")

    @app.post("/approvals")
    async def approve(request: Request) -> Response:
        user, form = await action(request)
        channel = form.get("channel", "")
        if channel not in settings.approval_channels:
            raise Refused(400, _("That list does not need approval (KIZUNA_REQUIRE_APPROVAL)."))
        night = night_of(form.get("night"))
        try:
            rows_seen = int(form.get("rows_seen", ""))
        except ValueError:
            rows_seen = None
        with store.opened(store_path) as sq:
            new = store.approve(sq, channel, night, rows_seen, user)
            store.audit(sq, user, "approve", f"{channel}/{night}", f"{rows_seen} row(s) seen" if new else
                        "already approved", remote(request))
        return back(f"/tonight?date={night_of(form.get('back')) if form.get('back') else night}")

    # ---- results --------------------------------------------------------------------------------------
    @app.get("/results", response_class=HTMLResponse)
    async def results(request: Request) -> Response:
        login_required(request)
        return page(request, "results.html.j2", cr=views.results(settings))

    # ---- messages that need a person -----------------------------------------------------------------
    @app.get("/attention", response_class=HTMLResponse)
    async def attention(request: Request) -> Response:
        login_required(request)
        rows, state = views.unknown_sends(copy, views.store_state(settings)["decisions"])
        return page(request, "attention.html.j2", rows=rows, ledger=state)

    @app.post("/attention/{send_id}")
    async def resolve(request: Request, send_id: str) -> Response:
        user, form = await action(request)
        verdict = form.get("verdict")
        if verdict not in ("delivered", "not_delivered"):
            raise Refused(400, _("Choose delivered or not delivered."))
        rows, _state = views.unknown_sends(copy, {})
        if send_id not in {r["send_id"] for r in rows}:
            raise Refused(400, _("That message is not an unknown send in the ledger: nothing was recorded."))
        with store.opened(store_path) as sq:
            new = store.decide(sq, send_id, verdict == "delivered", user)
            store.audit(sq, user, "resolve", send_id, verdict if new else "already decided", remote(request))
        return back("/attention")

    # ---- customers ------------------------------------------------------------------------------------
    @app.get("/customers", response_class=HTMLResponse)
    async def customers(request: Request, q: str = "") -> Response:
        user = login_required(request)
        found = views.find_customer(settings, q) if q.strip() else None
        suppressions, messages, state = (views.customer_history(copy, found["customer_id"]) if found
                                         else ([], [], None))
        if q.strip():  # the search itself is not logged (it may be an e-mail address): only whom it found
            audit(request, user, "lookup", found["customer_id"] if found else "(not found)")
        erasure = views.store_state(settings)["erasures"].get(found["customer_id"]) if found else None
        return page(request, "customers.html.j2", q=q, found=found, suppressions=suppressions, messages=messages,
                    ledger=state, erasure=erasure)

    @app.post("/customers/{customer_id}/erasure")
    async def erasure(request: Request, customer_id: str) -> Response:
        user, form = await action(request)
        if views.find_customer(settings, customer_id) is None or form.get("confirm") != customer_id:
            raise Refused(400, _("Type the customer id to confirm the erasure request: nothing was recorded."))
        with store.opened(store_path) as sq:
            new = store.request_erasure(sq, customer_id, user)
            store.audit(sq, user, "erasure_request", customer_id, None if new else "already requested",
                        remote(request))
        return back(f"/customers?q={customer_id}")

    # ---- audit ----------------------------------------------------------------------------------------
    @app.get("/audit", response_class=HTMLResponse)
    async def audit_page(request: Request) -> Response:
        login_required(request)
        with store.opened(store_path) as sq:
            rows = store.audit_rows(sq)
        return page(request, "audit.html.j2", rows=rows)

    app.state.settings = settings
    app.state.ledger_copy = copy
    app.state.label = label
    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8788) -> None:
    """Run the console until stopped (uvicorn). Say plainly when nobody can log in yet."""
    import uvicorn

    if not auth.load_users(Path(settings.console_users)):  # type: ignore[arg-type]
        log.warning("no console users yet: add one with `kizuna console add-user NAME` (file %s)",
                    settings.console_users)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", proxy_headers=True,
                forwarded_allow_ips="127.0.0.1", server_header=False)

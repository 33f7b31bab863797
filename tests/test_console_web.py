"""The console over HTTP (Starlette's test client against the real application, store and ledger files):
a request without a session or with a wrong CSRF token changes nothing; passwords are never stored or
logged in clear; pages show tonight's plan, results, unknown sends and customers in Japanese."""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import console_shop as shop
from kizuna.console import auth, store
from kizuna.console.app import SESSION_COOKIE, create_app
from kizuna.i18n import gettext as _

NIGHT = shop.NEXT_NIGHT.isoformat()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple:
    return shop.build(tmp_path_factory.mktemp("console-web"))


@pytest.fixture
def settings(built):
    """A fresh console store per test (the shop's warehouse and ledger are shared, read-only here)."""
    settings, _unknown = built
    for suffix in ("", "-wal", "-shm"):
        Path(str(settings.console_store) + suffix).unlink(missing_ok=True)
    return settings


@pytest.fixture
def client(settings) -> TestClient:
    return TestClient(create_app(settings, ledger_refresh_seconds=0), base_url="http://127.0.0.1")


def csrf(page_text: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page_text).group(1)


def log_in(client: TestClient, user: str = shop.USER, password: str = shop.PASSWORD):
    token = csrf(client.get("/login").text)
    return client.post("/login", data={"csrf_token": token, "username": user, "password": password},
                       follow_redirects=False)


def holds_and_audit(settings) -> tuple[list, list[dict]]:
    with store.opened(settings.console_store) as sq:
        return store.holds(sq), store.audit_rows(sq)


def test_pages_need_a_login(client):
    for path in ("/", "/tonight", f"/tonight/care/thanks?date={NIGHT}", "/results", "/attention", "/customers?q=C0",
                 "/audit"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login", path


def test_a_request_without_a_session_changes_nothing(client, settings, built):
    _settings, unknown = built
    token = csrf(client.get("/login").text)  # even with the anonymous page's own token
    posts = [("/holds", {"scenario_id": "care", "scope": "release", "night": NIGHT}),
             ("/approvals", {"channel": "dm", "night": NIGHT, "rows_seen": "3"}),
             (f"/attention/{unknown[0]}", {"verdict": "delivered"}),
             ("/customers/C0/erasure", {"confirm": "C0"})]
    for path, data in posts:
        response = client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)
        assert response.status_code == 401, path
        assert _("Log in first: nothing was changed.") in response.text
    with store.opened(settings.console_store) as sq:
        assert (store.holds(sq), store.approvals(sq), store.decisions(sq), store.erasure_requests(sq)) == ([], [], [], [])
        assert [r["action"] for r in store.audit_rows(sq)] == ["refused_no_session"] * 4


def test_a_wrong_or_missing_csrf_token_changes_nothing(client, settings):
    assert log_in(client).status_code == 303
    good = csrf(client.get(f"/tonight?date={NIGHT}").text)
    data = {"scenario_id": "care", "scope": "release", "night": NIGHT}
    for extra, headers in (({}, {}), ({"csrf_token": "forged"}, {}), ({}, {"X-CSRF-Token": "forged"}),
                           ({"csrf_token": good[:-1] + ("A" if good[-1] != "A" else "B")}, {})):
        response = client.post("/holds", data={**data, **extra}, headers=headers, follow_redirects=False)
        assert response.status_code == 403
        assert _("The form's security token did not match (an old page, or a request from another site): nothing "
                 "was changed. Reload the page and try again.") in response.text
    holds, audit = holds_and_audit(settings)
    assert holds == [] and [r["action"] for r in audit[:4]] == ["refused_csrf"] * 4
    # the same request with the session's token (as the form sends it, or as htmx sends it in the header) works
    assert client.post("/holds", data={**data, "csrf_token": good}, follow_redirects=False).status_code == 303
    assert client.post("/holds", data={**data, "step_id": "thanks"}, headers={"X-CSRF-Token": good},
                       follow_redirects=False).status_code == 303
    holds, audit = holds_and_audit(settings)
    assert [(h.scenario_id, h.step_id, h.night, h.created_by) for h in holds] == [
        ("care", None, None, shop.USER), ("care", "thanks", None, shop.USER)]
    assert audit[0]["action"] == "hold" and audit[0]["user"] == shop.USER


def test_a_tampered_session_cookie_is_no_session(client, settings):
    log_in(client)
    cookie = client.cookies.get(SESSION_COOKIE)
    client.cookies.set(SESSION_COOKIE, cookie[:-2] + ("xx" if not cookie.endswith("xx") else "yy"))
    assert client.get("/tonight", follow_redirects=False).status_code == 303


def test_a_removed_user_is_logged_out_at_once(client, settings, built, tmp_path):
    auth.add_user(settings.console_users, "temp-user", "temporary-password")
    assert log_in(client, "temp-user", "temporary-password").status_code == 303
    assert client.get("/tonight", follow_redirects=False).status_code == 200
    lines = [l for l in settings.console_users.read_text().splitlines() if not l.startswith("temp-user:")]
    settings.console_users.write_text("\n".join(lines) + "\n")
    assert client.get("/tonight", follow_redirects=False).status_code == 303


def test_passwords_are_never_stored_or_logged_in_clear(client, settings, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "a-wrong-password-for-the-log"
    response = log_in(client, shop.USER, secret)
    assert response.status_code == 401 and _("Wrong user name or password.") in response.text
    assert log_in(client).status_code == 303
    text = settings.console_users.read_text(encoding="utf-8")
    assert shop.PASSWORD not in text and re.search(rf"^{shop.USER}:scrypt\$17\$8\$1\$\S+\$\S+$", text, re.M)
    assert stat.S_IMODE(settings.console_users.stat().st_mode) == 0o600
    store_bytes = b"".join(Path(str(settings.console_store) + s).read_bytes()
                           for s in ("", "-wal") if Path(str(settings.console_store) + s).exists())
    for clear in (shop.PASSWORD, secret):
        assert clear.encode() not in store_bytes
        assert clear not in caplog.text
    _holds, audit = holds_and_audit(settings)
    assert [(r["action"], r["user"], r["target"]) for r in reversed(audit)] == [
        ("login_failed", "-", shop.USER), ("login", shop.USER, None)]


def test_each_user_gets_a_salt_of_their_own(tmp_path):
    users = tmp_path / "users.txt"
    auth.add_user(users, "a", "same-password-1")
    auth.add_user(users, "b", "same-password-1")
    hashes = auth.load_users(users)
    assert hashes["a"] != hashes["b"]
    assert auth.authenticate(users, "a", "same-password-1") and not auth.authenticate(users, "a", "same-password-2")
    assert not auth.authenticate(users, "nobody", "same-password-1")
    with pytest.raises(auth.UserError, match="at least"):
        auth.add_user(users, "c", "short")
    with pytest.raises(auth.UserError, match="user names"):
        auth.add_user(users, "bad:name", "long-enough-password")


def test_tonight_shows_per_step_who_is_due_and_why_not(client):
    log_in(client)
    page = client.get(f"/tonight?date={NIGHT}").text
    assert _("Tonight's plan") in page and 'lang="ja"' in page
    care = re.search(r'<tr data-step="care/thanks">(.*?)</tr>', page, re.S).group(1)
    numbers = re.findall(r'<td class="n">(\d+)</td>', care)
    assert numbers == ["61", "60", "0", "0"]  # due, to send, capped, held out
    assert "同意なし (no consent) 1" in care  # X0 gave no e-mail consent
    assert 'data-channel="dm"' in page and _("%(n)s row(s) to write") % {"n": 61} in page


def test_customers_are_paged_and_each_message_is_shown_as_it_would_go(client):
    log_in(client)
    first = client.get(f"/tonight/care/thanks?date={NIGHT}").text
    second = client.get(f"/tonight/care/thanks?date={NIGHT}&p=2").text
    ids = lambda text: re.findall(r'<tr data-customer="([^"]+)">', text)  # noqa: E731
    assert len(ids(first)) == 50 and len(ids(second)) == 11 and not set(ids(first)) & set(ids(second))
    mail = client.get(f"/tonight/care/thanks/N07?date={NIGHT}").text
    assert '<iframe class="mail" id="mail" sandbox=""' in mail and "srcdoc=" in mail
    assert "&lt;html" in mail.lower() or "&lt;!doctype" in mail.lower()  # the e-mail's HTML, escaped into srcdoc
    letter = client.get(f"/tonight/letter/dm/N07?date={NIGHT}").text
    row = re.search(r'<table id="list-row">(.*?)</table>', letter, re.S).group(1)
    assert "150-0001" in row and "dormant_dm" in row and "山田 花子" in row
    assert client.get(f"/tonight/care/thanks/C0?date={NIGHT}").status_code == 404  # not due that night


def test_results_show_the_reports_charts(client):
    log_in(client)
    page = client.get("/results").text
    assert 'id="chart-funnel"' in page and "<svg" in page and 'id="chart-lift"' in page
    assert 'data-table="campaign-performance"' in page and "letter" in page


def test_resolving_needs_an_unknown_send_and_is_recorded_once(client, settings, built):
    _settings, unknown = built
    log_in(client)
    page = client.get("/attention").text
    assert all(f'data-send="{s}"' in page for s in unknown)
    token = csrf(page)
    assert client.post("/attention/not-a-send", data={"csrf_token": token, "verdict": "delivered"},
                       follow_redirects=False).status_code == 400
    assert client.post(f"/attention/{unknown[0]}", data={"csrf_token": token, "verdict": "maybe"},
                       follow_redirects=False).status_code == 400
    for verdict in ("not_delivered", "delivered"):  # the first verdict stands
        client.post(f"/attention/{unknown[0]}", data={"csrf_token": token, "verdict": verdict})
    with store.opened(settings.console_store) as sq:
        assert [(d["send_id"], d["delivered"], d["decided_by"]) for d in store.decisions(sq)] == [
            (unknown[0], False, shop.USER)]
    assert f'id="decided-{unknown[0]}"' in client.get("/attention").text


def test_customer_lookup_and_erasure_request(client, settings):
    log_in(client)
    page = client.get("/customers", params={"q": "N03@Example.jp"}).text
    assert 'id="customer">N03' in page and 'id="consents"' in page
    page = client.get("/customers", params={"q": "C0"}).text
    assert 'id="messages"' in page and "care / thanks" in page
    token = csrf(page)
    assert client.post("/customers/C0/erasure", data={"csrf_token": token, "confirm": "C1"},
                       follow_redirects=False).status_code == 400
    assert client.post("/customers/C0/erasure", data={"csrf_token": token, "confirm": "C0"},
                       follow_redirects=False).status_code == 303
    with store.opened(settings.console_store) as sq:
        assert [(e["customer_id"], e["requested_by"]) for e in store.erasure_requests(sq)] == [("C0", shop.USER)]
        lookups = [r["target"] for r in store.audit_rows(sq) if r["action"] == "lookup"]
    assert "N03" in lookups and not any("@" in (t or "") for t in lookups)  # the searched address is not logged


def test_a_ledger_held_by_the_night_shows_the_last_copy_with_a_note(client, settings, built):
    _settings, unknown = built
    log_in(client)
    assert 'id="ledger-busy"' not in client.get("/attention").text  # a copy taken now
    holder = subprocess.Popen(  # another process holds the ledger for writing, as the nightly run does
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
         "time.sleep(60)", str(settings.ledger)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        os.utime(settings.ledger)  # the file changed since the copy
        page = client.get("/attention").text
        assert 'id="ledger-busy"' in page and all(f'data-send="{s}"' in page for s in unknown)
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert 'id="ledger-busy"' not in client.get("/attention").text


def test_the_console_listens_on_loopback_by_default():
    import inspect

    from kizuna.cli import console_serve
    from kizuna.console.app import serve

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(console_serve).parameters["host"].default.default == "127.0.0.1"


def test_tonight_is_the_coming_run(settings):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from kizuna.console.app import coming_night

    tokyo = ZoneInfo("Asia/Tokyo")
    assert coming_night(settings, datetime(2026, 11, 24, 1, 30, tzinfo=tokyo)).isoformat() == "2026-11-24"
    assert coming_night(settings, datetime(2026, 11, 24, 15, 0, tzinfo=tokyo)).isoformat() == "2026-11-25"
    assert coming_night(settings, datetime(2026, 11, 24, 16, 0, tzinfo=ZoneInfo("UTC"))).isoformat() == "2026-11-25"  # 01:00 in Tokyo


def test_add_user_asks_twice_and_keeps_only_a_hash(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from kizuna import config
    from kizuna.cli import app

    users = tmp_path / "users.txt"
    monkeypatch.setenv("KIZUNA_CONSOLE_USERS", str(users))
    monkeypatch.setenv("KIZUNA_DATA_DIR", str(tmp_path / "data"))
    config.get_settings.cache_clear()
    try:
        done = CliRunner().invoke(app, ["console", "add-user", "taro"], input="kizuna-password-1\nkizuna-password-1\n")
        mismatch = CliRunner().invoke(app, ["console", "add-user", "jiro"], input="kizuna-password-1\nother-one-22\n"
                                      "kizuna-password-2\nkizuna-password-2\n")
        short = CliRunner().invoke(app, ["console", "add-user", "saburo"], input="short\nshort\n")
    finally:
        config.get_settings.cache_clear()
    assert done.exit_code == 0 and "added taro" in done.output and "kizuna-password-1" not in done.output
    assert mismatch.exit_code == 0 and auth.authenticate(users, "jiro", "kizuna-password-2")
    assert short.exit_code == 1 and "at least" in short.output
    assert auth.authenticate(users, "taro", "kizuna-password-1") and "kizuna-password" not in users.read_text()

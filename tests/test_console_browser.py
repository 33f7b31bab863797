"""The console driven in a real browser: Selenium with Debian's headless `chromium` and `chromium-driver`,
against the console served by uvicorn on 127.0.0.1. A marketer logs in, opens tonight's plan, holds a
scenario, approves the DM list and resolves the unknown sends; then the next nightly run honours each action
(checked in the ledger). Each page is photographed: into the test's folder, and into docs/console/ with
KIZUNA_UPDATE_DOCS_SCREENSHOT=1 (the pictures docs/console.md shows).

Chromium and its driver are system packages (`.ci/run` installs them; elsewhere
`apt-get install chromium chromium-driver`, or set KIZUNA_CHROMIUM / KIZUNA_CHROMEDRIVER);
`pytest -m "not browser"` leaves these tests out.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pytest

import console_shop as shop
from campaigns import ledger
from kizuna.i18n import gettext as _

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
NIGHT = shop.NEXT_NIGHT.isoformat()
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--window-size=1280,900")


def _binary(env: str, names: tuple[str, ...], package: str) -> str:
    found = os.environ.get(env) or next((p for p in map(shutil.which, names) if p), None)
    if not found:
        pytest.fail(f"The console's browser tests need {package} and it was not found: install Debian's package "
                    f"(`sudo apt-get install -y {package}`; `.ci/run` does it) or set {env}. To leave these tests "
                    "out: pytest -m 'not browser'.", pytrace=False)
    return found


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager never downloads a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = _binary("KIZUNA_CHROMIUM", ("chromium", "chromium-browser"), "chromium")
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    service = Service(executable_path=_binary("KIZUNA_CHROMEDRIVER", ("chromedriver",), "chromium-driver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


class Pages:
    """The browser on the console, with the few moves the tests make."""

    def __init__(self, driver, base: str, shots: list[Path]) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.base, self.shots = driver, base, shots
        self.wait = WebDriverWait(driver, 30)

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def find(self, css: str):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))

    def click(self, css: str, then: str) -> None:
        """Click (htmx submits the form and swaps the page in), then wait for what the new page shows."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        self.wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, css))).click()
        self.find(then)

    def shoot(self, name: str) -> None:
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1280, min(max(int(height) + 40, 700), 2400))
        for folder in self.shots:
            folder.mkdir(parents=True, exist_ok=True)
            assert self.driver.save_screenshot(str(folder / f"{name}.png"))
        self.driver.set_window_size(1280, 900)


def ledger_rows(settings, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(":memory:") as con:
        ledger.attach(con, settings.ledger, read_only=True)
        return con.execute(sql, params or []).fetchall()


def test_a_marketer_holds_approves_and_resolves_and_the_next_night_honours_it(browser, tmp_path):
    settings, unknown = shop.build(tmp_path / "shop")
    shots = [tmp_path / "shots"] + ([ROOT / "docs" / "console"] if os.environ.get("KIZUNA_UPDATE_DOCS_SCREENSHOT")
                                    else [])
    with shop.served(settings) as base:
        p = Pages(browser, base, shots)
        p.open(f"/tonight?date={NIGHT}")  # no session: the login page
        p.find("#username").send_keys(shop.USER)
        p.find("#password").send_keys(shop.PASSWORD)
        p.shoot("login")
        p.click("#login", "#plan")
        p.open(f"/tonight?date={NIGHT}")
        assert p.find("#night").text == NIGHT
        assert p.find('tr[data-step="care/thanks"]').text.split()[1:4] == [_("channel.email"), "61", "60"]
        p.shoot("tonight")

        p.click("#hold-care", 'tr.hold')  # hold the whole scenario until released
        assert "care" in p.find("#holds").text and shop.USER in p.find("#holds").text
        p.click("#approve-dm", "#approved-dm")
        assert shop.USER in p.find("#approved-dm").text
        p.shoot("tonight-held-approved")

        p.open(f"/tonight/care/thanks?date={NIGHT}")
        p.find("#customers")
        p.shoot("customers")
        p.open(f"/tonight/care/thanks/N07?date={NIGHT}")
        frame = p.find("iframe#mail")
        assert frame.size["height"] > 500
        p.shoot("message-email")
        p.open(f"/tonight/letter/dm/N07?date={NIGHT}")
        assert "150-0001" in p.find("#list-row").text
        p.shoot("message-dm")

        p.open("/attention")
        p.click(f"#delivered-{unknown[0]}", f"#decided-{unknown[0]}")
        p.click(f"#not-delivered-{unknown[1]}", f"#decided-{unknown[1]}")
        p.shoot("attention")

        p.open("/results")
        p.find("#chart-funnel svg")
        p.shoot("results")
        p.open("/customers?q=C0")
        p.find("#messages")
        p.shoot("customer")
        p.open("/audit")
        assert [a for a in ("login", "hold", "approve", "resolve") if a not in p.find("#audit").text] == []
        p.shoot("audit")

    # the next nightly run honours each action, recorded in the ledger with who and when
    result = shop.run_night(settings, shop.NEXT_NIGHT)
    night = shop.NEXT_NIGHT
    statuses = dict(((s, c, st), n) for s, c, st, n in ledger_rows(
        settings, "select scenario_id, channel, status, count(*) from ledger.sends where run_date = ? group by all",
        [night]))
    assert statuses[("care", "email", "held")] == 60  # held: not sent
    assert ("care", "email", "sent") not in statuses
    assert statuses[("letter", "dm", "sent")] == 61  # the approved DM list was written
    assert statuses[("trial", "email", "sent")] == 2  # everything else went
    assert result.delivered[("care", "thanks", "email", "held")] == 60 and not result.console.awaiting
    decided = dict(ledger_rows(settings, "select send_id, status || '|' || coalesce(retry, true) from ledger.sends "
                                         "where send_id in (select unnest(?::varchar[]))", [unknown]))
    assert decided == {unknown[0]: "sent|true", unknown[1]: "failed|false"}
    actions = ledger_rows(settings, "select kind, by_user, acted_at is not null from ledger.console_actions "
                                    "order by kind")
    assert actions == [("approval", shop.USER, True), ("decision", shop.USER, True), ("decision", shop.USER, True),
                       ("hold", shop.USER, True)]
    dm_list = list((settings.outbox_dir / "dm").glob("*")) if (settings.outbox_dir / "dm").exists() else []
    assert dm_list, "the DM list's messages are in the outbox"
    for name in ("login", "tonight", "tonight-held-approved", "customers", "message-email", "message-dm",
                 "attention", "results", "customer", "audit"):
        assert (tmp_path / "shots" / f"{name}.png").stat().st_size > 10_000, name

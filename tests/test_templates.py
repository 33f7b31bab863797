"""Templates marketers write: the one variable definition, validate, errors in one line, the shop's
own folder, Japanese dates and amounts, tagged links, the coupon seam, and the HTML mail lint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from campaigns import engine
from campaigns.engine import run_campaigns
from campaigns.html_lint import lint_email_html
from campaigns.links import tag_text, tag_url, utm_values
from campaigns.render import Renderer, TemplateError
from campaigns.schema import SCENARIO_DIR, TEMPLATE_DIR, Step, load_scenarios
from campaigns.template_vars import CUSTOMER_FIELDS, jdate, sample_customer, yen
from kizuna.config import Settings
from kizuna.docs_templates import render_templates_doc
from test_campaigns import RUN_DATE, add_customers, customer, outbox, warehouse  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
KIZUNA = Path(sys.executable).parent / "kizuna"
SEND_DATE = date(2026, 11, 24)
UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_content")


def step_of(scenario_id: str, step_id: str) -> Step:
    scenario = next(s for s in load_scenarios(SCENARIO_DIR) if s.id == scenario_id)
    return next(st for st in scenario.steps if st.id == step_id)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(Settings(scenarios_dir=None))


def shop_folder(tmp_path: Path, scenarios: tuple[str, ...] = ("dormant_reactivation",)) -> Path:
    shop = tmp_path / "my-shop"
    (shop / "templates").mkdir(parents=True)
    for name in scenarios:
        shutil.copy(SCENARIO_DIR / f"{name}.yaml", shop)
    return shop


# ---------------------------------------------------------------- the one definition

def test_the_committed_templates_doc_is_the_generated_one():
    written = (ROOT / "docs" / "templates.md").read_text(encoding="utf-8")
    assert written == render_templates_doc(), "run `kizuna docs templates`"


def test_every_customer_variable_is_in_the_row_the_engine_sends_with():
    # The engine selects these for every message; a variable it does not select would pass
    # `validate` (the sample has it) and fail at send time.
    assert set(CUSTOMER_FIELDS) <= {"customer_id", *engine._CUSTOMER_FIELDS}


def test_a_template_sees_only_the_defined_customer_fields(renderer):
    row = {**sample_customer("dormant_reactivation", "d180_winback_mail"), "status": "planned", "is_erased": False}
    context = renderer.context(step_of("dormant_reactivation", "d180_winback_mail"), row, SEND_DATE,
                               "dormant_reactivation", "https://u.example/x")
    assert set(context["customer"]) == set(CUSTOMER_FIELDS)


def test_japanese_dates_and_amounts():
    assert jdate(date(2026, 12, 30)) == "2026年12月30日(水)"
    assert jdate("2027-01-03") == "2027年1月3日(日)"
    assert jdate(date(2026, 12, 30), False) == "2026年12月30日"
    assert yen(1980) == "1,980円" and yen(1234567.4) == "1,234,567円" and yen("300") == "300円"
    assert jdate(None) == "" and yen(None) == ""


def test_the_offer_expiry_reads_in_japanese(renderer):
    rendered = renderer.render(step_of("dormant_reactivation", "d180_winback_mail"),
                               sample_customer("dormant_reactivation", "d180_winback_mail"), "S1", SEND_DATE)
    expires = jdate(SEND_DATE + timedelta(days=30))
    assert f"有効期限：{expires}" in rendered.text and expires in rendered.html


# ---------------------------------------------------------------- validate and errors in one line

def validate(env_dir: Path | None) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if k != "KIZUNA_SCENARIOS_DIR"}
    if env_dir:
        env["KIZUNA_SCENARIOS_DIR"] = str(env_dir)
    return subprocess.run([str(KIZUNA), "campaigns", "validate"], capture_output=True, text=True, timeout=120,
                          env={**env, "COLUMNS": "400"})


def test_validate_passes_the_shipped_scenarios():
    done = validate(None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok dormant_reactivation" in done.stdout


def test_validate_names_file_line_and_variable_never_a_traceback(tmp_path):
    shop = shop_folder(tmp_path)
    (shop / "templates" / "dormant_winback.subject.j2").write_text("{{ brand.shop_name }}より\n", encoding="utf-8")
    (shop / "templates" / "dormant_winback.txt.j2").write_text(
        "{{ customer.last_name }} 様\n\n{{ customer.lst_name }} さん\n", encoding="utf-8")
    done = validate(shop)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert errors and all("dormant_winback.txt.j2:3:" in e and "customer.lst_name" in e for e in errors)
    # both win-back e-mails use the template; the DM step (dormant_dm, shipped) renders fine
    assert len(errors) == 2 and all("d195_winback_dm" not in e for e in errors)


def test_validate_uses_the_steps_offer_like_a_send(tmp_path):
    """`offer.x` in a step without an offer fails in validate exactly as it would when sent."""
    shop = shop_folder(tmp_path, scenarios=())
    (shop / "s.yaml").write_text(
        "id: s\nname: S\npriority: 1\nstage: any\nentry: {event: first_order}\nsteps:\n"
        "  - {id: a, day: 1, channel: email, template: t, offer: {type: yen_off, value: 500, code: X}}\n"
        "  - {id: b, day: 2, channel: email, template: t}\n", encoding="utf-8")
    (shop / "templates" / "t.subject.j2").write_text("件名", encoding="utf-8")
    (shop / "templates" / "t.txt.j2").write_text("{{ customer.last_name }} 様\n\n{{ offer.headline }}\n",
                                                  encoding="utf-8")
    done = validate(shop)
    errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(errors) == 1
    assert "s · b:" in errors[0] and "t.txt.j2:3:" in errors[0] and "offer.headline" in errors[0]


def test_a_syntax_error_is_one_line_with_file_and_line(tmp_path):
    shop = shop_folder(tmp_path, scenarios=())
    (shop / "templates" / "t.subject.j2").write_text("件名", encoding="utf-8")
    (shop / "templates" / "t.txt.j2").write_text("a\n\n{% if offer %}\nno end\n", encoding="utf-8")
    step = Step.model_validate({"id": "a", "day": 1, "channel": "email", "template": "t"},
                               context={"template_dirs": [shop / "templates", TEMPLATE_DIR]})
    with pytest.raises(TemplateError) as error:
        Renderer(Settings(scenarios_dir=shop)).render(step, sample_customer(), "S1", SEND_DATE)
    message = str(error.value)
    assert "\n" not in message and "t.txt.j2:" in message and "syntax error" in message


def test_a_send_records_the_template_error_line_in_the_ledger(tmp_path, settings, warehouse):  # noqa: F811
    shop = shop_folder(tmp_path, scenarios=("f2_standard",))
    (shop / "templates" / "f2_thank_you.subject.j2").write_text("ありがとうございます\n", encoding="utf-8")
    (shop / "templates" / "f2_thank_you.txt.j2").write_text(
        "{{ customer.last_name }} 様\n\n{{ brand.shop_nme }}をお選びいただき\n", encoding="utf-8")
    shop_settings = settings.model_copy(update={"scenarios_dir": shop})
    scenarios = [s.model_copy(update={"holdout_percent": 0}) for s in load_scenarios(shop)]
    add_customers(warehouse, [customer("C1", RUN_DATE - timedelta(days=1))])
    result = run_campaigns(warehouse, shop_settings, scenarios, RUN_DATE, outbox(shop_settings))
    (status, detail), = warehouse.execute(
        "select status, detail from ledger.sends where step_id = 'thank_you'").fetchall()
    assert status == "failed" and result.total("failed") == 1
    assert "f2_thank_you.txt.j2:3:" in detail and "brand.shop_nme" in detail and "\n" not in detail


# ---------------------------------------------------------------- the shop's own folder

def test_a_shop_template_replaces_the_shipped_one_and_the_others_stay_usable(tmp_path):
    shop = shop_folder(tmp_path)
    (shop / "templates" / "dormant_winback.subject.j2").write_text("{{ brand.shop_name }}から特別なご案内\n",
                                                                    encoding="utf-8")
    (shop / "templates" / "dormant_winback.txt.j2").write_text(
        "{{ customer.last_name }} 様\n\nお久しぶりです。\n\n{% include '_offer.txt.j2' %}", encoding="utf-8")
    scenario = next(s for s in load_scenarios(shop) if s.id == "dormant_reactivation")
    renderer = Renderer(Settings(scenarios_dir=shop))
    winback, dm = scenario.steps[0], scenario.steps[1]
    mail = renderer.render(winback, sample_customer(scenario.id, winback.id), "S1", SEND_DATE)
    assert mail.subject == "絆オーガニクスから特別なご案内" and "お久しぶりです。" in mail.text
    # the shop's text is laid out by the base layout, not paired with the shipped MJML body
    assert "お久しぶりです。" in mail.html and "しばらくお見かけしておりませんが" not in mail.html
    shipped = renderer.render(dm, sample_customer(scenario.id, dm.id), "S2", SEND_DATE)  # dormant_dm: shipped
    assert shipped.text.startswith("山田 花子 様") and "以前ご利用いただいたお客様だけへのご案内です。" in shipped.text


def test_the_scenario_folder_setting_drives_the_scenarios_too(tmp_path, monkeypatch):
    from kizuna.config import get_settings

    shop = shop_folder(tmp_path)
    monkeypatch.setenv("KIZUNA_SCENARIOS_DIR", str(shop))
    get_settings.cache_clear()
    try:
        assert [s.id for s in load_scenarios()] == ["dormant_reactivation"]
    finally:
        get_settings.cache_clear()


def test_a_missing_template_names_the_shops_folder(tmp_path):
    shop = shop_folder(tmp_path, scenarios=())
    (shop / "s.yaml").write_text("id: s\nname: S\npriority: 1\nstage: any\nentry: {event: first_order}\n"
                                 "steps: [{id: a, day: 1, channel: email, template: nope}]\n", encoding="utf-8")
    from kizuna.errors import ScenarioError

    with pytest.raises(ScenarioError) as error:
        load_scenarios(shop)
    assert str(shop / "templates" / "nope.txt.j2") in str(error.value)


# ---------------------------------------------------------------- tagged links

def test_tag_url_keeps_query_and_fragment_and_replaces_utm():
    utm = utm_values("email", "cart_abandonment", "d01_reminder_mail")
    url = tag_url("https://shop.example/cart?item=12&utm_source=old#summary", utm)
    parts = urlsplit(url)
    assert parts.fragment == "summary" and parts.path == "/cart"
    assert query(url) == {"item": "12", "utm_source": "kizuna", "utm_medium": "email",
                          "utm_campaign": "cart_abandonment", "utm_content": "d01_reminder_mail"}
    assert tag_url("mailto:a@example.jp", utm) == "mailto:a@example.jp"


def test_urls_in_japanese_text_end_where_the_url_ends():
    utm = utm_values("line", "s", "t")
    text = tag_text("こちら：https://shop.example/a?x=1。詳しくは(https://shop.example/b)へ", utm, lambda u: False)
    assert "https://shop.example/a?x=1&utm_source=kizuna&utm_medium=line&utm_campaign=s&utm_content=t。" in text
    assert "(https://shop.example/b?utm_source=kizuna" in text and "utm_content=t)へ" in text


def test_every_link_of_the_cart_reminder_email_is_tagged_except_unsubscribe(renderer):
    import re

    step = step_of("cart_abandonment", "d01_reminder_mail")
    mail = renderer.render(step, sample_customer("cart_abandonment", step.id), "S1", SEND_DATE)
    hrefs = [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', mail.html)]
    links = [h for h in hrefs if h != mail.unsubscribe_url]
    assert mail.unsubscribe_url in hrefs and len(links) >= 3
    for link in links:
        assert {k: query(link)[k] for k in UTM} == {"utm_source": "kizuna", "utm_medium": "email",
                                                    "utm_campaign": "cart_abandonment",
                                                    "utm_content": "d01_reminder_mail"}
    # the button back to the cart, in both parts
    cart = [h for h in links if urlsplit(h).path == "/cart"]
    assert cart and any(c in mail.text for c in cart)
    assert f"配信停止はこちら: {mail.unsubscribe_url}\n" in mail.text  # untagged


@pytest.mark.parametrize("scenario_id, step_id, medium", [
    ("cart_abandonment", "d03_reminder_line", "line"),
    ("dormant_reactivation", "d180_winback_mail", "email"),
    ("dormant_reactivation", "d220_last_chance_mail", "email"),
])
def test_cart_and_offer_messages_carry_a_tagged_link_back(renderer, scenario_id, step_id, medium):
    import re

    step = step_of(scenario_id, step_id)
    message = renderer.render(step, sample_customer(scenario_id, step_id), "S1", SEND_DATE)
    urls = [u for u in re.findall(r"https?://[!-~]+", message.text) if not u.startswith(message.unsubscribe_url)]
    assert urls, message.text
    for url in urls:
        assert query(url)["utm_medium"] == medium and query(url)["utm_content"] == step_id


def test_printed_pieces_are_not_tagged(renderer):
    step = step_of("dormant_reactivation", "d195_winback_dm")
    dm = renderer.render(step, sample_customer("dormant_reactivation", step.id), "S1", SEND_DATE)
    assert "utm_" not in dm.text and dm.html == ""


# ---------------------------------------------------------------- the coupon seam

def test_a_coupon_issued_for_the_send_is_the_offer_code(renderer):
    step = step_of("dormant_reactivation", "d180_winback_mail")
    row = {**sample_customer("dormant_reactivation", step.id), "coupon_code": "K7QX-M2PA",
           "coupon_expires_on": date(2027, 1, 15)}
    mail = renderer.render(step, row, "S1", SEND_DATE)
    assert "クーポンコード：K7QX-M2PA" in mail.text and "K7QX-M2PA" in mail.html and "WINBACK20" not in mail.text
    assert "2027年1月15日(金)" in mail.text
    plain = renderer.render(step, sample_customer("dormant_reactivation", step.id), "S2", SEND_DATE)
    assert "クーポンコード：WINBACK20" in plain.text


def test_an_empty_value_prints_as_nothing_not_none(tmp_path):
    shop = shop_folder(tmp_path, scenarios=())
    (shop / "templates" / "t.subject.j2").write_text("件名", encoding="utf-8")
    (shop / "templates" / "t.txt.j2").write_text("電話：[{{ customer.phone }}]\n", encoding="utf-8")
    step = Step.model_validate({"id": "a", "day": 1, "channel": "sms", "template": "t"},
                               context={"template_dirs": [shop / "templates", TEMPLATE_DIR]})
    text = Renderer(Settings(scenarios_dir=shop)).render(step, {**sample_customer(), "phone": None}, "S", SEND_DATE).text
    assert "電話：[]" in text and "None" not in text


# ---------------------------------------------------------------- the HTML mail lint

def test_every_shipped_email_step_passes_the_lint(renderer):
    checked = 0
    for scenario in load_scenarios(SCENARIO_DIR):
        for step in scenario.steps:
            if step.channel != "email":
                continue
            html = renderer.render(step, sample_customer(scenario.id, step.id), "S1", SEND_DATE).html
            assert lint_email_html(html) == [], (scenario.id, step.id)
            assert 'lang="ja"' in html and "Hiragino" in html
            checked += 1
    assert checked >= 20


def test_the_lint_finds_what_mail_clients_refuse():
    bad = ('<html><head><link rel="stylesheet" href="https://x.example/a.css"><style>@import url(b.css);</style>'
           '</head><body><script>alert(1)</script><img src="a.png"><img src="b.png" alt="b" width="10">'
           '<div style="background:url(https://x.example/bg.png)">x</div></body></html>')
    problems = lint_email_html(bad)
    for expected in ("<link rel=stylesheet", "@import", "<script>", "no alt text", "no width", "external resource"):
        assert any(expected in p for p in problems), (expected, problems)
    assert any("102 KB" in p for p in lint_email_html("<p>" + "あ" * 40_000 + "</p>"))
    assert lint_email_html('<img src="b.png" alt="b" width="10">') == []

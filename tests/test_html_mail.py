"""A rendered HTML e-mail opened in headless Chromium at a phone's and a desktop's width.

The e-mail is the shipped win-back step for a sample customer, rendered by the renderer the
nightly send uses (MJML compiled by MRML), with the brand's images swapped for local files.
It is shown in a frame exactly 375 px / 1,200 px wide (kizuna/email_preview.py, the same code
as `kizuna docs email-screenshots`). Chromium is the system's, as in tests/test_report.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from campaigns.html_lint import lint_email_html
from kizuna.config import Settings
from kizuna.email_preview import WIDTHS, probe, render_sample, screenshot

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, dict]]:
    work = tmp_path_factory.mktemp("email")
    sample = render_sample(work, Settings(scenarios_dir=None))
    assert lint_email_html(sample.html) == []
    return sample.page, {w: probe(sample.page, w, work / "profile") for w in WIDTHS}


@pytest.mark.parametrize("width", WIDTHS)
def test_the_layout_fits_the_width(seen, width):
    _, measured = seen
    m = measured[width]
    assert m["innerWidth"] == width
    assert m["scrollWidth"] <= width, f"horizontal overflow at {width} px: {m['scrollWidth']} px wide"


@pytest.mark.parametrize("width", WIDTHS)
def test_logo_product_image_and_button_are_visible(seen, width):
    _, measured = seen
    m = measured[width]
    alts = {i["alt"] for i in m["images"]}
    assert {Settings().brand_shop_name, Settings().brand_product_name} <= alts
    for image in m["images"]:
        assert image["complete"] and image["naturalWidth"] > 0, image
        box = image["box"]
        assert box["width"] > 0 and box["height"] > 0 and box["left"] >= 0 and box["right"] <= width, image
    (button,) = [b for b in m["buttons"] if "お買い物" in b["text"]]
    box = button["box"]
    assert box["width"] > 100 and box["height"] >= 40 and box["left"] >= 0 and box["right"] <= width
    assert "utm_content=d180_winback_mail" in button["href"]


def test_the_product_image_fills_a_phone_and_stays_a_picture_on_a_desktop(seen):
    _, measured = seen
    product = {w: next(i for i in measured[w]["images"] if i["alt"] == Settings().brand_product_name)["box"]
               for w in WIDTHS}
    assert product[375]["width"] < 375 and product[375]["width"] > 300  # scaled down to the phone
    assert product[1200]["width"] == 480  # the width the template asks for, centred in the 600 px card


def test_japanese_typography(seen):
    _, measured = seen
    m = measured[375]
    assert "Hiragino" in m["fontFamily"] and "Noto Sans JP" in m["fontFamily"]
    assert m["lineHeight"] == pytest.approx(1.8, abs=0.05)


def test_screenshots(seen, tmp_path):
    page, _ = seen
    for width in WIDTHS:
        shot = screenshot(page, width, tmp_path / f"email-{width}.png", tmp_path / "profile")
        assert shot.stat().st_size > 10_000

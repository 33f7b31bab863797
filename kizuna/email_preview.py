"""A rendered e-mail opened in headless Chromium: screenshots for the docs, layout checks for the tests.

`kizuna docs email-screenshots` renders a shipped step with a sample customer and saves it
as seen 375 px wide (a phone) and 1,200 px wide (a desktop client) in docs/images/. The
brand's images are swapped for two small local pictures (nothing is fetched: the
screenshots and tests run offline). Chromium is the system's (`chromium`, or
KIZUNA_CHROMIUM), as in the report tests.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from kizuna.config import Settings
from kizuna.errors import KizunaError

WIDTHS = (375, 1200)
SAMPLE_SEND_DATE = date(2026, 12, 1)

LOGO_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="320" height="80" viewBox="0 0 320 80">
<rect width="320" height="80" rx="10" fill="{primary}"/><circle cx="44" cy="40" r="22" fill="#fff" opacity=".9"/>
<path d="M34 40c6-12 14-14 20-12-2 8-8 16-20 12z" fill="{primary}"/>
<text x="80" y="50" font-family="sans-serif" font-size="28" font-weight="700" fill="#fff">KIZUNA</text></svg>"""
PRODUCT_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="1100" height="620" viewBox="0 0 1100 620">
<rect width="1100" height="620" fill="#efe7dc"/><ellipse cx="550" cy="560" rx="260" ry="26" fill="#d9cbb8"/>
<rect x="430" y="150" width="240" height="410" rx="36" fill="{primary}"/><rect x="470" y="90" width="160" height="80"
rx="14" fill="#3b3b3b"/><rect x="455" y="280" width="190" height="150" rx="10" fill="#fff"/>
<circle cx="550" cy="355" r="48" fill="{accent}"/></svg>"""

#: The e-mail is shown in an iframe exactly `width` px wide (headless Chromium's window is at least
#: 500 px wide, wider than a phone), on a grey page. The probe runs in the page, measures inside the frame.
FRAME = """<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; background: #d8d8d8; }} iframe {{ display: block; margin: 0 auto; border: 0; background: #fff; }}
</style></head><body><iframe id="mail" width="{width}" height="{height}" style="width:{width}px;height:{height}px"
srcdoc="{srcdoc}"></iframe>{probe}</body></html>"""
PROBE = """<script>
document.getElementById('mail').addEventListener('load', () => {
  const frame = document.getElementById('mail'), win = frame.contentWindow, doc = frame.contentDocument;
  const seen = el => { const r = el.getBoundingClientRect();
    return {left: r.left, right: r.right, width: r.width, height: r.height, top: r.top}; };
  const out = {innerWidth: win.innerWidth, scrollWidth: doc.documentElement.scrollWidth,
               pageHeight: Math.ceil(doc.body.getBoundingClientRect().bottom)};
  out.images = [...doc.images].map(i => ({alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth,
                                          box: seen(i)}));
  out.buttons = [...doc.querySelectorAll('a')].filter(a => win.getComputedStyle(a).display === 'inline-block')
      .map(a => ({text: a.textContent.trim(), href: a.href, box: seen(a)}));
  const text = doc.querySelector('div[style*=font-family]');
  out.fontFamily = text ? win.getComputedStyle(text).fontFamily : '';
  out.lineHeight = text ? parseFloat(win.getComputedStyle(text).lineHeight) / parseFloat(win.getComputedStyle(text).fontSize) : 0;
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def framed(page: Path, width: int, height: int, with_probe: bool) -> Path:
    """A page showing the e-mail `page` in a frame `width` x `height` px (with the probe, or not)."""
    out = page.with_name(f"{'probe' if with_probe else 'frame'}-{width}-{page.name}")
    out.write_text(FRAME.format(width=width, height=height, probe=PROBE if with_probe else "",
                                srcdoc=html.escape(page.read_text(encoding="utf-8"), quote=True)), encoding="utf-8")
    return out


def chromium() -> str:
    found = os.environ.get("KIZUNA_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if not found:
        raise KizunaError("No headless Chromium found: install Debian's package (`apt-get install -y chromium`) "
                          "or set KIZUNA_CHROMIUM to a Chrome/Chromium binary.")
    return found


def run_chromium(*args: str, url: str, profile: Path) -> str:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-extensions", "--disable-background-networking", f"--user-data-dir={profile}",
           "--force-device-scale-factor=1", "--virtual-time-budget=3000", *args, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise KizunaError(f"Chromium failed ({done.returncode}): {done.stderr[-1500:]}")
    return done.stdout


@dataclass(frozen=True)
class Sample:
    scenario_id: str
    step_id: str
    subject: str
    text: str
    html: str
    page: Path  # the e-mail's HTML as a file (its images beside it)


def render_sample(folder: Path, settings: Settings | None = None, scenario_id: str = "dormant_reactivation",
                  step_id: str = "d180_winback_mail") -> Sample:
    """Render one shipped step for a sample customer into `folder`/email.html, with local images."""
    from campaigns.render import Renderer
    from campaigns.schema import load_scenarios
    from campaigns.template_vars import sample_customer

    settings = settings or Settings()
    folder.mkdir(parents=True, exist_ok=True)
    colours = {"primary": settings.brand_primary_color, "accent": settings.brand_accent_color}
    (folder / "logo.svg").write_text(LOGO_SVG.format(**colours), encoding="utf-8")
    (folder / "product.svg").write_text(PRODUCT_SVG.format(**colours), encoding="utf-8")
    local = settings.model_copy(update={"brand_logo_url": (folder / "logo.svg").as_uri(),
                                        "brand_product_image_url": (folder / "product.svg").as_uri()})
    scenario = next((s for s in load_scenarios() if s.id == scenario_id), None)
    step = next((st for st in scenario.steps if st.id == step_id), None) if scenario else None
    if step is None:
        raise KizunaError(f"no step {scenario_id}.{step_id} in the scenarios in use")
    rendered = Renderer(local).render(step, sample_customer(scenario_id, step_id), "sample-send-id", SAMPLE_SEND_DATE)
    page = folder / "email.html"
    page.write_text(rendered.html, encoding="utf-8")
    return Sample(scenario_id, step_id, rendered.subject, rendered.text, rendered.html, page)


def probe(page: Path, width: int, profile: Path) -> dict:
    """Open the e-mail `page` in a frame `width` px wide; what its laid-out page measured."""
    probed = framed(page, width, 1200, with_probe=True)
    dom = run_chromium(f"--window-size={max(width, 500)},1300", "--dump-dom", url=probed.as_uri(), profile=profile)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    if not found:
        raise KizunaError("the probe script did not run in Chromium")
    return json.loads(html.unescape(found.group(1)))


def screenshot(page: Path, width: int, out: Path, profile: Path) -> Path:
    """The e-mail `page` as seen `width` px wide, its whole height."""
    height = max(600, min(int(probe(page, width, profile)["pageHeight"]), 6000))
    shown = framed(page, width, height, with_probe=False)
    run_chromium(f"--window-size={max(width, 500)},{height}", f"--screenshot={out}", url=shown.as_uri(),
                 profile=profile)
    return out


def email_screenshots(out_dir: Path, work: Path, settings: Settings | None = None) -> list[Path]:
    """Render the sample e-mail and save it at each width in WIDTHS as `out_dir`/email-<width>.png."""
    sample = render_sample(work, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [screenshot(sample.page, w, out_dir / f"email-{w}.png", work / "chromium-profile") for w in WIDTHS]

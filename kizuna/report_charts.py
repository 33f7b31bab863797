"""Inline SVG charts for the nightly report, drawn in Python: no JavaScript, no library, no network.

Each function returns one `<svg>` element as markup. Every mark (bar, cell, dot) carries a
`<title>`, which browsers show as a tooltip on hover; the report puts the same numbers in a
table under each chart. Charts scale to their container (`viewBox`, `width: 100%`).
"""

from __future__ import annotations

import math
import unicodedata

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#319795", "#b7791f", "#718096")
FONT = 11


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str | None = None


def yen(value: float | None) -> str:
    return "–" if value is None else f"¥{value:,.0f}"


def pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def count(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def compact(value: float) -> str:
    """Axis labels: 1.2M, 350k, 12."""
    a = abs(value)
    if a >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if a >= 10_000:
        return f"{value / 1000:.0f}k"
    if a >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:.2f}".rstrip("0").rstrip(".") if a < 10 and value != int(value) else f"{value:.0f}"


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = (lo // step) * step
    ticks, t = [], start
    while t < hi + step * 0.999:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _svg(width: int, height: int, body: list[str], label: str) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" font-size="{FONT}">' + "".join(body) + "</svg>"
    )


def _text_width(text: str) -> float:
    """Roughly how wide `text` is drawn at FONT px: a wide (CJK) character is about one em, others about 0.6."""
    return sum(FONT if unicodedata.east_asian_width(c) in "WF" else FONT * 0.6 for c in text)


def _fit(text: str, width: float) -> str:
    """`text` cut with "…" to fit `width` px (a long medium name under a bar would run into its neighbours)."""
    if _text_width(text) <= width:
        return text
    while text and _text_width(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def blend(value: float, lo: str = "#eef4fa", hi: str = "#08306b") -> str:
    """A colour between `lo` (value 0) and `hi` (value 1)."""
    v = min(max(value, 0.0), 1.0)
    a = [int(lo[i:i + 2], 16) for i in (1, 3, 5)]
    b = [int(hi[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * v):02x}" for x, y in zip(a, b))


def heatmap(
    row_labels: Sequence[str], col_labels: Sequence[str], values: Sequence[Sequence[float | None]],
    *, tooltip: Callable[[int, int, float], str], cell_text: Callable[[float], str] | None = None,
    scale_max: float | None = None, label: str = "heatmap", cell_w: int = 30, cell_h: int = 18,
    row_label_w: int = 70,
) -> Markup:
    """Rows × columns of cells shaded by value (None leaves the cell empty)."""
    top = 22
    width = row_label_w + cell_w * len(col_labels) + 4
    height = top + cell_h * len(row_labels) + 4
    peak = scale_max or max((v for row in values for v in row if v is not None), default=1) or 1
    body = []
    for j, c in enumerate(col_labels):
        body.append(f'<text x="{row_label_w + cell_w * j + cell_w / 2}" y="{top - 7}" text-anchor="middle" '
                    f'fill="#555">{escape(c)}</text>')
    for i, r in enumerate(row_labels):
        y = top + cell_h * i
        body.append(f'<text x="{row_label_w - 6}" y="{y + cell_h / 2 + 4}" text-anchor="end" fill="#333">'
                    f'{escape(r)}</text>')
        for j, v in enumerate(values[i]):
            if v is None:
                continue
            shade = v / peak
            x = row_label_w + cell_w * j
            body.append(f'<rect class="mark" x="{x}" y="{y}" width="{cell_w - 1}" height="{cell_h - 1}" '
                        f'fill="{blend(shade)}">{_title(tooltip(i, j, v))}</rect>')
            if cell_text:
                body.append(f'<text x="{x + cell_w / 2}" y="{y + cell_h / 2 + 4}" text-anchor="middle" '
                            f'font-size="9" pointer-events="none" fill="{"#fff" if shade > 0.5 else "#222"}">'
                            f'{escape(cell_text(v))}</text>')
    return _svg(width, height, body, label)


def bar_chart(
    categories: Sequence[str], series: Sequence[Series], *, tooltip: Callable[[str, Series, float], str],
    stacked: bool = False, label: str = "bar chart", width: int = 760, height: int = 260,
    axis_format: Callable[[float], str] = compact,
) -> Markup:
    """Vertical bars per category, one per series side by side (or stacked); negatives go below zero."""
    left, right, top, bottom = 56, 10, 26, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    vals = [[(v or 0) for v in s.values] for s in series]
    if stacked:
        hi = max((sum(max(col, 0) for col in cols) for cols in zip(*vals)), default=0)
        lo = min((sum(min(col, 0) for col in cols) for cols in zip(*vals)), default=0)
    else:
        hi = max((v for row in vals for v in row), default=0)
        lo = min((v for row in vals for v in row), default=0)
    lo, hi = min(lo, 0), max(hi, 0)
    ticks = _nice_ticks(lo, hi)
    lo, hi = min(ticks[0], lo), max(ticks[-1], hi)
    span = (hi - lo) or 1

    def y(v: float) -> float:
        return top + plot_h * (hi - v) / span

    body = []
    for t in ticks:
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                    f'stroke="{"#999" if t == 0 else "#e5e5e5"}"/>'
                    f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end" fill="#666">{escape(axis_format(t))}</text>')
    band = plot_w / max(len(categories), 1)
    inner = band * 0.8
    bar_w = inner if stacked else inner / max(len(series), 1)
    label_every = max(1, round(len(categories) / (plot_w / 48)))
    for i, cat in enumerate(categories):
        x0 = left + band * i + band * 0.1
        pos = neg = 0.0
        for k, s in enumerate(series):
            v = vals[k][i]
            if s.values[i] is None:
                continue
            if stacked:
                base = pos if v >= 0 else neg
                y1, y2 = y(base), y(base + v)
                if v >= 0:
                    pos += v
                else:
                    neg += v
                x = x0
            else:
                y1, y2 = y(0), y(v)
                x = x0 + bar_w * k
            color = s.color or PALETTE[k % len(PALETTE)]
            body.append(f'<rect class="mark" x="{x:.1f}" y="{min(y1, y2):.1f}" width="{max(bar_w - 1, 1):.1f}" '
                        f'height="{max(abs(y2 - y1), 0.5):.1f}" fill="{color}">{_title(tooltip(cat, s, s.values[i]))}</rect>')
        if i % label_every == 0:
            shown = _fit(cat, band * label_every * 0.95)
            body.append(f'<text x="{x0 + inner / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle" '
                        f'fill="#444">{escape(shown)}{_title(cat) if shown != cat else ""}</text>')
    body.append(_legend(series, left, 12) if len(series) > 1 else "")
    return _svg(width, height, body, label)


def line_chart(
    categories: Sequence[str], series: Sequence[Series], *, tooltip: Callable[[str, Series, float], str],
    label: str = "line chart", width: int = 760, height: int = 240, axis_format: Callable[[float], str] = compact,
) -> Markup:
    """One line per series over the categories; points carry the tooltips; gaps where a value is None."""
    left, right, top, bottom = 56, 10, 26, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    present = [v for s in series for v in s.values if v is not None]
    ticks = _nice_ticks(min(min(present, default=0), 0), max(present, default=1))
    lo, hi = ticks[0], ticks[-1]
    span = (hi - lo) or 1
    step = plot_w / max(len(categories) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + step * i, top + plot_h * (hi - v) / span

    body = []
    for t in ticks:
        _, ty = xy(0, t)
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#e5e5e5"/>'
                    f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" fill="#666">{escape(axis_format(t))}</text>')
    label_every = max(1, round(len(categories) / (plot_w / 48)))
    for i, cat in enumerate(categories):
        if i % label_every == 0:
            body.append(f'<text x="{left + step * i:.1f}" y="{height - bottom + 14}" text-anchor="middle" '
                        f'fill="#444">{escape(cat)}</text>')
    for k, s in enumerate(series):
        color = s.color or PALETTE[k % len(PALETTE)]
        path, pen = [], "M"
        for i, v in enumerate(s.values):
            if v is None:
                pen = "M"
                continue
            px, py = xy(i, v)
            path.append(f"{pen}{px:.1f},{py:.1f}")
            pen = "L"
        body.append(f'<path class="mark" d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, v in enumerate(s.values):
            if v is not None:
                px, py = xy(i, v)
                body.append(f'<circle class="mark" cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{color}">'
                            f'{_title(tooltip(categories[i], s, v))}</circle>')
    body.append(_legend(series, left, 12) if len(series) > 1 else "")
    return _svg(width, height, body, label)


def interval_chart(
    labels: Sequence[str], points: Sequence[tuple[float | None, float | None, float | None]], *,
    tooltip: Callable[[int], str], warn: Sequence[bool] = (), label: str = "interval chart", width: int = 760,
    value_format: Callable[[float], str] = compact,
) -> Markup:
    """One row per label: a dot at the estimate and a whisker from low to high, around a zero line."""
    left, right, top, row_h = 170, 20, 24, 26
    height = top + row_h * len(labels) + 10
    vals = [v for p in points for v in p if v is not None]
    ticks = _nice_ticks(min(min(vals, default=0), 0), max(max(vals, default=0), 0) or 0.01, 4)
    lo, hi = ticks[0], ticks[-1]
    span = (hi - lo) or 1

    def x(v: float) -> float:
        return left + (width - left - right) * (v - lo) / span

    body = []
    for t in ticks:
        body.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top - 4}" y2="{height - 6}" '
                    f'stroke="{"#999" if t == 0 else "#e5e5e5"}"/>'
                    f'<text x="{x(t):.1f}" y="{top - 8}" text-anchor="middle" fill="#666">{escape(value_format(t))}</text>')
    for i, (name, (est, low, high)) in enumerate(zip(labels, points)):
        cy = top + row_h * i + row_h / 2
        body.append(f'<text x="{left - 8}" y="{cy + 4:.1f}" text-anchor="end" fill="#333">{escape(name)}</text>')
        color = "#a65e00" if (warn[i] if i < len(warn) else False) else "#2b6cb0"
        if low is not None and high is not None:
            body.append(f'<line class="mark" x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{cy:.1f}" y2="{cy:.1f}" '
                        f'stroke="{color}" stroke-width="3" stroke-linecap="round">{_title(tooltip(i))}</line>')
        if est is not None:
            body.append(f'<circle class="mark" cx="{x(est):.1f}" cy="{cy:.1f}" r="5" fill="{color}">'
                        f'{_title(tooltip(i))}</circle>')
    return _svg(width, height, body, label)


def _legend(series: Sequence[Series], x: float, y: float) -> str:
    out = []
    for k, s in enumerate(series):
        color = s.color or PALETTE[k % len(PALETTE)]
        out.append(f'<rect x="{x:.0f}" y="{y - 8}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{x + 14:.0f}" y="{y + 1}" fill="#333">{escape(s.name)}</text>')
        x += 24 + 6.5 * len(s.name)
    return "".join(out)

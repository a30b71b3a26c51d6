"""Charts as inline SVG, drawn on the server: no script, nothing from elsewhere (the CSP allows
neither). Each is an image with a title and its numbers written beside the bars, so a screen reader
and a printout get the same figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH = 640
BAR = 22
GAP = 8
LABEL_WIDTH = 200
VALUE_WIDTH = 110
COLOURS = ("#0b5394", "#1e5e2b", "#8a1c1c", "#6a3d9a", "#7a5200", "#2f4f4f")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    # What is written beside the bar ("12", "34 %", "kr 1 200,00").
    text: str = ""


def bar_chart(title: str, bars: Sequence[Bar], *, colour: int = 0, empty: str = "No data yet") -> Markup:
    """Horizontal bars, longest = full width; an empty chart says so."""
    height = max(1, len(bars)) * (BAR + GAP) + GAP
    top = max((b.value for b in bars), default=0) or 1
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    parts = [
        f'<svg class="chart" role="img" aria-labelledby="{_id(title)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{_id(title)}">{escape(title)}</title>',
    ]
    if not bars:
        parts.append(f'<text x="0" y="{BAR}" fill="#4a4a4a">{escape(empty)}</text>')
    for index, bar in enumerate(bars):
        y = GAP + index * (BAR + GAP)
        length = max(0.0, bar.value) / top * span
        fill = COLOURS[(colour + (index if colour < 0 else 0)) % len(COLOURS)]
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + BAR * 0.72:.1f}" text-anchor="end" fill="#1a1a1a" '
            f'font-size="14">{escape(bar.label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{BAR}" fill="{fill}" rx="2"/>'
            f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{y + BAR * 0.72:.1f}" fill="#1a1a1a" '
            f'font-size="14">{escape(bar.text or _number(bar.value))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped


def share(part: float, whole: float) -> str:
    return f"{round(100 * part / whole)} %" if whole else "n/a"


def _number(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ") if value == int(value) else f"{value:.1f}"


def _id(title: str) -> str:
    return "chart-" + "".join(c if c.isalnum() else "-" for c in title.lower())[:60]

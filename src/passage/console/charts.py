"""Charts as SVG, drawn on the server: no charting library, no script needed to see one.

Two series at most (bytes to peers, bytes from peers), told apart by more
than colour: one line is solid and one dashed (one bar filled, one hatched),
and the legend says which is which in words. Each chart carries its figures
for a screen reader in ``<title>``/``<desc>`` and for scripts and tests in
``data-`` attributes. Colours come from the page's CSS (``currentColor`` and
two custom properties), so light and dark themes both read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from passage.console.html import bytes_text, esc

__all__ = ["Series", "bar_chart", "line_chart"]

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 84, 16, 12, 28


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    values: Sequence[int]


def _axis_top(value: int) -> int:
    top = 1000
    while True:
        for factor in (1, 2, 5):
            if top * factor >= value:
                return top * factor
        top *= 10


def _frame(kind: str, chart_id: str, title: str, summary: str, total: int, points: int, inner: str,
           labels: Sequence[str], series: Sequence[Series], top: int) -> str:  # fmt: skip
    plot_h = HEIGHT - TOP - BOTTOM
    grid = ""
    for step in range(5):
        y = TOP + plot_h - plot_h * step / 4
        grid += (
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{esc(bytes_text(top * step // 4).replace('.0 ', ' '))}</text>"
        )
    plot_w = WIDTH - LEFT - RIGHT
    for index, label in enumerate(labels):
        if not label:
            continue
        x = (
            LEFT + plot_w * index / max(1, len(labels) - 1)
            if kind == "line"
            else (LEFT + plot_w * (index + 0.5) / len(labels))
        )
        grid += (
            f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
            f"{esc(label)}</text>"
        )
    legend = " ".join(
        f'<span class="legend s{index}"><span class="swatch" aria-hidden="true"></span>'
        f"{esc(item.label)}</span>"
        for index, item in enumerate(series)
    )
    return (
        f'<figure class="chart {kind}"><svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'id="{chart_id}" aria-labelledby="{chart_id}-t {chart_id}-d" data-total-bytes="{total}" '
        f'data-points="{points}">'
        f'<title id="{chart_id}-t">{esc(title)}</title>'
        f'<desc id="{chart_id}-d">{esc(summary)}</desc>'
        f'<defs><pattern id="{chart_id}-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" class="hatch"/>'
        "</pattern></defs>"
        f"{grid}{inner}</svg><figcaption>{legend}</figcaption></figure>"
    )


def line_chart(chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    """A line per series over evenly spaced steps; ``labels`` name some steps ("" for none)."""
    steps = max((len(item.values) for item in series), default=0)
    total = sum(sum(item.values) for item in series)
    busy = sum(1 for index in range(steps) if any(item.values[index] for item in series))
    top = _axis_top(max((max(item.values, default=0) for item in series), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    inner = ""
    for index, item in enumerate(series):
        coordinates = " ".join(
            f"{LEFT + plot_w * step / max(1, steps - 1):.1f},"
            f"{TOP + plot_h - plot_h * value / top:.1f}"
            for step, value in enumerate(item.values)
        )
        inner += f'<polyline class="line s{index}" points="{coordinates}"/>'
    summary = "; ".join(f"{item.label}: {bytes_text(sum(item.values))}" for item in series)
    return _frame("line", chart_id, title, summary, total, busy, inner, labels, series, top)


def bar_chart(chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    """Grouped bars, one group per label (an hour, a day), one bar per series."""
    groups = len(labels)
    total = sum(sum(item.values) for item in series)
    busy = sum(1 for index in range(groups) if any(item.values[index] for item in series))
    top = _axis_top(max((max(item.values, default=0) for item in series), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, groups)
    width = slot * 0.8 / max(1, len(series))
    inner = ""
    for index, item in enumerate(series):
        for group, value in enumerate(item.values):
            height = plot_h * value / top
            x = LEFT + slot * group + slot * 0.1 + width * index
            fill = f' fill="url(#{chart_id}-hatch)"' if index else ""
            inner += (
                f'<rect class="bar s{index}"{fill} x="{x:.1f}" y="{TOP + plot_h - height:.1f}" '
                f'width="{width:.1f}" height="{height:.1f}"><title>{esc(labels[group] or "")} '
                f"{esc(item.label)}: {esc(bytes_text(value))}</title></rect>"
            )
    summary = "; ".join(f"{item.label}: {bytes_text(sum(item.values))}" for item in series)
    return _frame("bar", chart_id, title, summary, total, busy, inner, labels, series, top)

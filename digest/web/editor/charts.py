"""Chart geometry for server-rendered SVG (the CSP allows no chart scripts).

Functions here turn figures into rectangles, points and axis ticks inside a fixed
viewBox; templates/editor/_charts.html draws them. Colours come from CSS classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WIDTH, HEIGHT = 720, 260
# RIGHT leaves room for half the newest label under the last slot at a phone's enlarged text.
LEFT, RIGHT, TOP, BOTTOM = 48, 28, 14, 44
MAX_BAR = 36


@dataclass(frozen=True)
class Bar:
    """One rectangle, with the series it belongs to and what it means in words."""

    x: float
    y: float
    width: float
    height: float
    series: str
    title: str


@dataclass(frozen=True)
class Tick:
    """A horizontal grid line and its label."""

    y: float
    label: str


@dataclass(frozen=True)
class Label:
    """A label under the x axis."""

    x: float
    text: str


@dataclass(frozen=True)
class Chart:
    """Everything a template needs to draw one chart."""

    bars: list[Bar]
    line: str  # SVG polyline points, "" for bar charts
    dots: list[Bar]
    ticks: list[Tick]
    labels: list[Label]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: float = HEIGHT - BOTTOM


def nice_max(value: float) -> int:
    """Return a round axis maximum at or above value (1, 2, 5 × 10ⁿ steps)."""
    if value <= 0:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return int(step * magnitude) if step * magnitude >= 1 else 1
    return int(10 * magnitude)


def _axis(top_value: float) -> tuple[int, list[Tick]]:
    top = nice_max(top_value)
    plot = HEIGHT - BOTTOM - TOP
    steps = next(n for n in (5, 4, 2, 1) if top % n == 0 and top // n >= 1)
    ticks = [
        Tick(y=round(HEIGHT - BOTTOM - plot * i / steps, 1), label=f"{top * i // steps:,}")
        for i in range(steps + 1)
    ]
    return top, ticks


def _labels(names: list[str], slot: float, max_labels: int) -> list[Label]:
    # Count from the newest so it is always labelled and the spacing stays even.
    every = max(1, math.ceil(len(names) / max_labels))
    last = len(names) - 1
    return [
        Label(x=round(LEFT + slot * (i + 0.5), 1), text=name)
        for i, name in enumerate(names)
        if (last - i) % every == 0
    ]


def bars(names: list[str], series: dict[str, list[int]], titles: dict[str, str],
         stacked: bool = False, max_labels: int = 13, axis: list[str] | None = None) -> Chart:
    """Return grouped (or stacked) bars: one slot per name, one bar per series (axis: shorter
    names under the slots; the marks' titles keep the full ones)."""
    count = max(len(names), 1)
    totals = [sum(values[i] for values in series.values()) for i in range(len(names))]
    peak = max(totals if stacked else [v for values in series.values() for v in values] or [0], default=0)
    top, ticks = _axis(peak)
    plot = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT - RIGHT) / count
    inner = min(slot * 0.75, MAX_BAR * (1 if stacked else len(series)))
    width = inner if stacked else inner / max(len(series), 1)
    result = []
    for i, name in enumerate(names):
        base: float = HEIGHT - BOTTOM
        for j, (key, values) in enumerate(series.items()):
            height = plot * values[i] / top
            x = LEFT + slot * i + (slot - inner) / 2 + (0 if stacked else j * width)
            y = base - height
            result.append(Bar(round(x, 1), round(y, 1), round(width, 1), round(height, 1), key,
                              f"{name}: {values[i]:,} {titles[key]}"))
            if stacked:
                base = y
    return Chart(bars=result, line="", dots=[], ticks=ticks,
                 labels=_labels(axis or names, slot, max_labels))


def line(names: list[str], values: list[int], title: str, max_labels: int = 13,
         axis: list[str] | None = None) -> Chart:
    """Return a line through values, one point per name, with a dot on each (axis as in bars)."""
    count = max(len(names), 1)
    top, ticks = _axis(max(values, default=0))
    plot = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT - RIGHT) / count
    dots = []
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        x = LEFT + slot * (i + 0.5)
        y = HEIGHT - BOTTOM - plot * value / top
        dots.append(Bar(round(x, 1), round(y, 1), 0, 0, "line", f"{name}: {value:,} {title}"))
    points = " ".join(f"{d.x},{d.y}" for d in dots)
    return Chart(bars=[], line=points, dots=dots, ticks=ticks,
                 labels=_labels(axis or names, slot, max_labels))

"""The usage chart as geometry: one bar per minute, the 429s inside it, the plan limit as a
line. The template draws it as inline SVG (no script, no image request); no I/O here."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.console.activity import Usage

WIDTH = 720
HEIGHT = 160
TOP = 12  # room for the limit's label


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    y: float
    height: float
    throttled_y: float
    throttled_height: float
    unusual: bool
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    limit_y: float
    ticks: list[tuple[float, str]]  # x and "HH:MM" under the axis
    summary: str  # what a screen reader hears instead of the picture


def draw(usage: Usage) -> Chart:
    """Scale the minutes to the chart: the plan limit (or a busier minute) is the top."""
    count = max(1, len(usage.minutes))
    step = WIDTH / count
    peak = max((m.requests for m in usage.minutes), default=0)
    top = max(usage.limit, peak, 1)
    plot = HEIGHT - TOP

    def y_of(value: int) -> float:
        return round(HEIGHT - plot * value / top, 2)

    bars = []
    for index, minute in enumerate(usage.minutes):
        if not minute.requests:
            continue
        label = f"{minute.start:%H:%M} UTC: {minute.requests} requests"
        if minute.throttled:
            label += f", {minute.throttled} answered 429"
        bars.append(Bar(
            x=round(index * step, 2), width=round(max(step - 1, 1), 2),
            y=y_of(minute.requests), height=round(HEIGHT - y_of(minute.requests), 2),
            throttled_y=y_of(minute.throttled),
            throttled_height=round(HEIGHT - y_of(minute.throttled), 2),
            unusual=minute.unusual, label=label,
        ))  # fmt: skip
    ticks = [
        (round(index * step, 2), f"{usage.minutes[index].start:%H:%M}")
        for index in range(0, count, max(1, count // 6))
        if usage.minutes
    ]
    return Chart(WIDTH, HEIGHT, bars, y_of(usage.limit), ticks, summary(usage))


def summary(usage: Usage) -> str:
    hours = len(usage.minutes) // 60
    if not usage.total:
        return f"No requests in the last {hours} hours (plan limit {usage.limit} per minute)."
    peak = usage.peak
    assert peak is not None
    text = (
        f"{usage.total} requests in the last {hours} hours; busiest minute {peak.requests} "
        f"at {peak.start:%H:%M} UTC against a plan limit of {usage.limit} per minute; "
        f"{usage.throttled} answered 429."
    )
    if usage.unusual:
        text += f" {len(usage.unusual)} minutes of unusual volume."
    return text

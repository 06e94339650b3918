"""The last hour as stacked SVG bars, one per minute: geometry only, drawn by the template."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from application.ports import MinuteActivity

WIDTH, HEIGHT, BAR = 600, 120, 10


@attrs.frozen(kw_only=True)
class Bar:
    x: int
    label: str
    segments: tuple[tuple[str, float, float], ...]  # (outcome, y, height)


def bars(activity: Sequence[MinuteActivity]) -> dict[str, object]:
    peak = max((a.sent + a.retried + a.dead for a in activity), default=0)
    scale = HEIGHT / peak if peak else 0.0
    drawn = []
    for index, minute in enumerate(activity):
        y = float(HEIGHT)
        segments = []
        for outcome, count in (
            ("sent", minute.sent),
            ("retried", minute.retried),
            ("dead", minute.dead),
        ):
            height = count * scale
            y -= height
            if count:
                segments.append((outcome, round(y, 1), round(height, 1)))
        counts = f"{minute.sent} sent, {minute.retried} retried, {minute.dead} dead"
        label = f"{minute.start:%H:%M}Z: {counts}"
        drawn.append(Bar(x=index * BAR, label=label, segments=tuple(segments)))
    return {"bars": drawn, "peak": peak, "width": WIDTH, "height": HEIGHT, "bar": BAR - 2}

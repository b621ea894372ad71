"""Operations and faults on one time axis, as an SVG: one lane per IDE, a bar per operation
(coloured by outcome, red where the checker found an anomaly), faults as bands across all lanes.
Pure: the result's dictionaries in, SVG text out; every string is escaped."""

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

WIDTH = 960
LEFT = 56
LANE = 9
TOP = 44
COLOURS = {"ok": "#3c9a5f", "fail": "#e0a030", "unknown": "#9aa3ad", "anomaly": "#d0312d"}
FAULT_COLOURS = {
    "kill": "#d0312d",
    "restart": "#8e44ad",
    "pause": "#2e86c1",
    "gateway_restart": "#ca6f1e",
}


def timeline_svg(
    operations: Sequence[Mapping[str, Any]],
    faults: Sequence[Mapping[str, Any]],
    anomalous: set[int],
) -> str:
    ides = 1 + max((int(op["ide"]) for op in operations), default=0)
    span = max(
        [float(op["end"]) for op in operations] + [float(f["ended"]) for f in faults] + [1.0]
    )
    scale = (WIDTH - LEFT - 10) / span
    height = TOP + ides * LANE + 24

    def x(seconds: float) -> float:
        return round(LEFT + seconds * scale, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="operations and faults on one time axis">',
        f'<text x="4" y="14" font-size="11">{len(operations)} operations of {ides} IDEs, '
        f"{len(faults)} faults, {span:.1f} s</text>",
    ]
    for number, fault in enumerate(faults):
        name = str(fault["name"])
        colour = FAULT_COLOURS.get(name.split("@")[0], "#7f8c8d")
        began, ended = float(fault["began"]), max(float(fault["ended"]), float(fault["began"]))
        width = max(x(ended) - x(began), 1.5)
        label = escape(f"{name} {began:.2f}s-{ended:.2f}s {fault.get('error') or ''}".strip())
        parts.append(
            f'<rect x="{x(began)}" y="{TOP - 8}" width="{width:.1f}" '
            f'height="{ides * LANE + 8}" fill="{colour}" fill-opacity="0.18">'
            f"<title>{label}</title></rect>"
        )
        parts.append(
            # Two rows of labels, alternating: faults close together stay readable.
            f'<text x="{x(began)}" y="{TOP - 10 - 9 * (number % 2)}" font-size="8" '
            f'fill="{colour}">'
            f"{escape(name)}</text>"
        )
    for lane in range(ides):
        parts.append(
            f'<text x="4" y="{TOP + lane * LANE + 7}" font-size="7" fill="#555">IDE {lane}</text>'
        )
    for op in operations:
        index = int(op["index"])
        colour = COLOURS["anomaly" if index in anomalous else str(op["outcome"])]
        start, end = float(op["start"]), float(op["end"])
        y = TOP + int(op["ide"]) * LANE + 1
        title = escape(
            f"op {index} {op['kind']} {op.get('text') or op.get('session_id') or ''}: "
            f"{op['outcome']} {start:.2f}s-{end:.2f}s"
        )
        parts.append(
            f'<rect x="{x(start)}" y="{y}" width="{max(x(end) - x(start), 1.0):.1f}" '
            f'height="{LANE - 2}" fill="{colour}"><title>{title}</title></rect>'
        )
    axis_y = TOP + ides * LANE + 14
    for tick in range(int(span) + 1):
        if span > 60 and tick % 10:
            continue
        parts.append(f'<text x="{x(tick)}" y="{axis_y}" font-size="8" fill="#555">{tick}s</text>')
    parts.append("</svg>")
    return "".join(parts)

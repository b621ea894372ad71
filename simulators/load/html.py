"""The HTML page of a load run: the tables, then latency and throughput over time as inline SVG.

One self-contained file (inline CSS and SVG, no script, nothing fetched), like the verify report:
it opens offline and archives as a CI artifact. Every string from the run is escaped.
"""

import html
import math
from typing import Any

from simulators.load.flows import FLOWS

COLOURS = {"create": "#1f77b4", "chat": "#2ca02c", "switch": "#d62728", "restore": "#9467bd"}
# The second target of a comparison is drawn dashed: the colour stays the flow's.
DASHES = ("", "6 4")
WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 36

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 62em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.bad { color: #a00; font-weight: bold; }
.good { color: #060; font-weight: bold; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; font-size: 12px; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: object) -> str:
    return "-" if value is None else _e(value)


def _flow_table(target: dict[str, Any]) -> str:
    head = "".join(
        f"<th>{name}</th>"
        for name in ("flow", "ops", "errors", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms")
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{_cell(flow[key])}</td>"
            for key in (
                "flow",
                "count",
                "errors",
                "throughput_per_s",
                "p50_ms",
                "p90_ms",
                "p99_ms",
                "max_ms",
            )
        )
        + "</tr>"
        for flow in target["flows"]
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def _comparison(report: dict[str, Any]) -> str:
    if "comparison" not in report:
        return ""
    a, b = (target["label"] for target in report["targets"])
    head = "<tr><th>flow</th><th>throughput B/A</th><th>p50 B/A</th><th>p99 B/A</th></tr>"
    rows = "".join(
        f"<tr><td>{_e(row['flow'])}</td><td>{_cell(row['throughput_ratio'])}</td>"
        f"<td>{_cell(row['p50_ratio'])}</td><td>{_cell(row['p99_ratio'])}</td></tr>"
        for row in report["comparison"]
    )
    return f"<h2>{_e(b)} (B) against {_e(a)} (A)</h2><table>{head}{rows}</table>"


def _cpu(cpu: dict[str, Any]) -> str:
    line = (
        f"CPU: load generator {_cell(cpu['generator_cpu_s'])} s, "
        f"{_cell(cpu['generator_cpu_ms_per_operation'])} ms per operation"
    )
    if cpu["target_cpu_s"] is not None:
        line += (
            f"; target {_cell(cpu['target_cpu_s'])} s, "
            f"{_cell(cpu['target_cpu_ms_per_operation'])} ms per operation "
            f"({_cell(cpu['target_operations_per_core_s'])} operations/s per core)"
        )
    return f"<p>{line}</p>"


def _errors(target: dict[str, Any]) -> str:
    groups = target["errors_by_cause"]
    if not groups:
        return '<p class="good">No errors.</p>'
    parts = [f'<p class="bad">{target["errors"]} errors, by cause:</p>']
    for group in groups:
        trace = "\n".join(group["trace"])
        parts.append(
            f"<details><summary>{group['count']} x {_e(group['cause'])}</summary>"
            f"<p>Example: {_e(group['example'])}</p>"
            + (f"<pre>{_e(trace)}</pre>" if trace else "")
            + "</details>"
        )
    return "".join(parts)


def chart(
    title: str, unit: str, lines: list[tuple[str, str, list[float], list[float | None]]]
) -> str:
    """An SVG line chart; each line is (label, dash, x values, y values with gaps as None)."""
    xs = [x for _, _, line_x, _ in lines for x in line_x]
    ys = [y for _, _, _, line_y in lines for y in line_y if y is not None]
    if not xs or not ys:
        return f"<h3>{_e(title)}</h3><p>Nothing measured.</p>"
    x_max = max(xs) or 1.0
    y_max = _nice(max(ys))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + plot_w * x / x_max

    def sy(y: float) -> float:
        return TOP + plot_h * (1 - y / y_max)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{_e(title)}">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#bbb"/>',
    ]
    for step in range(5):
        value = y_max * step / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{sy(value):.1f}" y2="{sy(value):.1f}" '
            'stroke="#eee"/>'
            f'<text x="{LEFT - 6}" y="{sy(value) + 4:.1f}" text-anchor="end">{value:g}</text>'
        )
    for step in range(6):
        value = x_max * step / 5
        parts.append(
            f'<text x="{sx(value):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
            f"{value:.0f}</text>"
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" text-anchor="middle">seconds</text>'
        f'<text x="12" y="{TOP + plot_h / 2}" transform="rotate(-90 12 {TOP + plot_h / 2})" '
        f'text-anchor="middle">{_e(unit)}</text>'
    )
    for label, dash, line_x, line_y in lines:
        colour = COLOURS.get(label.split(" ")[0], "#555")
        for segment in _segments(line_x, line_y):
            points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in segment)
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                f'stroke-dasharray="{dash}" points="{points}"><title>{_e(label)}</title>'
                "</polyline>"
            )
    parts.append("</svg>")
    legend = " ".join(
        f'<span style="color:{COLOURS.get(label.split(" ")[0], "#555")}">'
        f"{'- -' if dash else '—'} {_e(label)}</span>"
        for label, dash, _, _ in lines
    )
    return f"<h3>{_e(title)}</h3>{''.join(parts)}<p>{legend}</p>"


def _segments(xs: list[float], ys: list[float | None]) -> list[list[tuple[float, float]]]:
    segments: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(xs, ys, strict=True):
        if y is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append((x, y))
    return [segment for segment in segments if segment]


def _nice(value: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten at or above `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(step * power for step in (1, 2, 5, 10) if step * power >= value))


def _lines(report: dict[str, Any], metric: str) -> list[tuple[str, str, list[float], list[Any]]]:
    lines = []
    several = len(report["targets"]) > 1
    for index, target in enumerate(report["targets"]):
        series = target["series"]
        for flow in FLOWS:
            values = series[flow][metric]
            if not any(values):
                continue
            label = f"{flow} ({target['label']})" if several else flow
            lines.append((label, DASHES[index % 2], series["t"], values))
    return lines


def render(report: dict[str, Any], plan: str) -> str:
    targets = "".join(
        f"<h2>{_e(target['label'])}</h2><p>{_e(target['gateway_url'])}, "
        f"{target['measured_s']} s measured, {target['operations']} operations</p>"
        + _flow_table(target)
        + _cpu(target["cpu"])
        + _errors(target)
        for target in report["targets"]
    )
    bucket = report["targets"][0]["series"]["bucket_s"] if report["targets"] else 0
    plots = (
        chart(f"p99 latency per {bucket:g} s", "ms", _lines(report, "p99_ms"))
        + chart(f"p50 latency per {bucket:g} s", "ms", _lines(report, "p50_ms"))
        + chart("throughput", "operations per second", _lines(report, "per_s"))
    )
    verdict = (
        '<p class="good">No errors.</p>'
        if not report["errors"]
        else f'<p class="bad">{report["errors"]} errors.</p>'
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>sessionlab load</title><style>{STYLE}</style></head><body>"
        f"<h1>sessionlab load</h1><p>{_e(plan)}; started {_e(report['started_at'])}, "
        f"{report['wall_s']} s in all.</p>{verdict}{_comparison(report)}{targets}"
        f"<h2>Over time</h2>{plots}</body></html>\n"
    )

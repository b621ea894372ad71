"""The HTML report: one self-contained page of a verify report.

Inline CSS and SVG, no script and nothing fetched, so the file can be archived as a CI artifact and
opened anywhere, offline. Every string from the report is escaped: transcripts hold whatever the
target sent, markup included. What went wrong leads: shared causes under the verdict, then the
failures, open, each failing check with its sequence diagram, then the tables of the rest.
"""

import html
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from conformance.reports.model import STATUSES
from conformance.verdicts import exit_status, judged_in
from contract.exit_codes import ExitCode

STATUS_ORDER: dict[str, int] = {status: rank for rank, status in enumerate(STATUSES)}
LEVELS = ("MUST", "SHOULD", "MAY")
# The symbol is decoration; the word next to it carries the meaning (colour is never alone).
SYMBOLS = {
    "passed": "✓",
    "partial": "◐",
    "failed": "✗",
    "warning": "!",
    "blocked": "⊘",
    "skipped": "○",
    "error": "⚠",
}
PLURALS = {"warning": "warnings", "error": "errors"}
# Statuses a reader has to act on; their rows carry the failing checks' transcripts.
EXPANDED = ("failed", "error", "warning", "blocked", "partial")
# Statuses whose rows lead the page, open, above the tables of everything else.
LEADING = ("failed", "error", "warning")
WIRE = ("http-request", "http-response", "ws-open", "ws-send", "ws-recv", "ws-close")
# The sequence diagram: lanes, and how many arrows one diagram draws at most (the transcript
# table under it holds them all).
LANES = {"IDE": 150, "gateway": 470, "runtime": 790}
DIAGRAM_WIDTH = 880
ROW = 30
TOP = 48
MAX_ARROWS = 200
LABEL_LIMIT = 84
# How the transcript records an event stream's answer: `STATUS text/event-stream[; params] BODY`.
EVENT_STREAM = re.compile(r"(?P<status>\d{3}) text/event-stream(?:;\s*[\w-]+=[^\s;]+)* ?")
ONLY_PREFIX = "not selected by --only"

# C0 and C1 controls (tab, newline and carriage return aside) and lone surrogates cannot be
# written as UTF-8 or shown; they become visible escapes so that a body's bytes stay readable.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(value: object) -> str:
    text = _UNPRINTABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", str(value))
    return html.escape(text, quote=True)


def _known(requirement: dict[str, Any]) -> bool:
    """A failure the team listed in its baseline: shown, but it does not fail the run."""
    return requirement.get("status") == "failed" and bool(requirement.get("known_failure"))


def exit_code(report: dict[str, Any]) -> tuple[ExitCode, str]:
    """The exit status `sessionlab verify` gives for this report, and what it means."""
    code = exit_status(judged_in(report))
    counts = report["summary"]
    known = sum(_known(r) for r in report["requirements"])
    aside = f", apart from {known} known failure(s) listed in the baseline" if known else ""
    if code is ExitCode.HARNESS_FAILED and report.get("stopped"):
        return code, f"the run stopped before anything was judged: {report['stopped']}"
    if code is ExitCode.HARNESS_FAILED:
        return code, (
            f"the run is incomplete: {counts['error']} requirement(s) could not be judged "
            "(no check covers them, or sessionlab's own code failed: please report it)"
        )
    if code is ExitCode.OK:
        return code, f"no MUST requirement of the checked profiles failed{aside}, and checks passed"
    reasons = []
    if counts["failed"] > known:
        reasons.append(
            f"{counts['failed'] - known} MUST requirement(s) of the checked profiles failed"
        )
    if counts["error"]:
        reasons.append(f"{counts['error']} requirement(s) could not be judged")
    besides = f" (besides {known} known failure(s) listed in the baseline)" if known else ""
    return code, ", ".join(reasons or ["no check passed"]) + besides


# Package data (pyproject.toml), so that it is edited, linted and diffed as the CSS it is.
CSS = files("conformance.reports").joinpath("report.css").read_text(encoding="utf-8")


def _word(n: int, status: str) -> str:
    return status if n == 1 else PLURALS.get(status, status)


def _count(n: int, status: str) -> str:
    return f"{n} {_word(n, status)}"


def _badge(status: str, known: bool = False) -> str:
    return (
        f'<span class="badge status-{_escape(status)}{" known" if known else ""}">'
        f'<span aria-hidden="true">{SYMBOLS.get(status, "?")}</span> '
        f"{_escape(status)}{' (known)' if known else ''}</span>"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _anchor(requirement_id: str) -> str:
    return f"req-{_slug(requirement_id)}"


def _when(epoch: object) -> str:
    if not isinstance(epoch, int | float):
        return "unknown"
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"unknown ({epoch})"


def _seconds(value: object) -> str:
    return f"{value:.3f} s" if isinstance(value, int | float) else _escape(value)


def _checked(report: dict[str, Any], requirement: dict[str, Any]) -> bool:
    """In a profile this run checked, and not left out by --only."""
    return requirement["profile"] in report["profiles"] and not str(
        requirement["message"]
    ).startswith(ONLY_PREFIX)


def _header(report: dict[str, Any]) -> str:
    code, meaning = exit_code(report)
    word = "CONFORMS" if report["conforms"] else "DOES NOT CONFORM"
    target = report.get("target") or {}
    claimed = target.get("claimed_profiles")
    facts = [
        ("Target", target.get("name") or "unknown (it did not start)"),
        ("Gateway", target.get("gateway_url") or "not known"),
        ("Runtime", target.get("runtime_url") or "not given"),
        ("Profiles claimed", ", ".join(claimed) if claimed else "none stated"),
        ("Profiles checked", ", ".join(report["profiles"])),
        ("Started", _when(report.get("started_at"))),
        ("Duration", _seconds(report.get("duration"))),
    ]
    rows = "".join(f"<dt>{_escape(name)}</dt><dd>{_escape(value)}</dd>" for name, value in facts)
    counts = report["summary"]
    # Statuses this page does not know yet are still counted, after the known ones.
    statuses = [*STATUS_ORDER, *(status for status in counts if status not in STATUS_ORDER)]
    total = sum(int(counts.get(status, 0)) for status in statuses)
    known = sum(_known(r) for r in report["requirements"])
    summary = "".join(
        _summary_item(status, int(counts.get(status, 0)), known if status == "failed" else 0)
        for status in statuses
    )
    return (
        f"<header>"
        f"<h1>sessionlab {_escape(report.get('sessionlab', ''))} conformance report</h1>"
        f'<section class="verdict verdict-{code:d}" aria-label="Verdict">'
        f'<p class="word">{word}</p>'
        f'<p class="exit">exit code {code:d}: {_escape(meaning)}</p>'
        f"</section>"
        f"{_causes(report)}"
        f'<dl class="facts">{rows}</dl>'
        f'<section aria-label="Summary"><h2 class="visually-hidden">Summary</h2>'
        f'<ul class="summary" aria-label="{total} requirements">{summary}</ul></section>'
        f"</header>"
    )


def _causes(report: dict[str, Any]) -> str:
    """Failures that share one cause, told once before anything else: fix that first."""
    causes: list[dict[str, Any]] = report.get("causes") or []
    if not causes:
        return ""
    items = "".join(
        f"<li><strong>{len(cause['requirements'])} requirements</strong> fail for one cause: "
        f"<code>{_escape(cause['cause'])}</code> ("
        + ", ".join(
            f'<a href="#{_anchor(i)}"><code>{_escape(i)}</code></a>' for i in cause["requirements"]
        )
        + ")</li>"
        for cause in causes
    )
    return (
        f'<section class="causes" aria-labelledby="causes-h">'
        f'<h2 id="causes-h">Shared causes</h2><ul>{items}</ul></section>'
    )


def _summary_item(status: str, n: int, known: int = 0) -> str:
    # A zero stays neutral: colour should point at what is there, not at what is not.
    kind = f"status-{_escape(status)}" if n else "zero"
    return (
        f'<li class="{kind}"><span aria-hidden="true">{SYMBOLS.get(status, "?")}</span> '
        f'<span class="n">{n}</span> {_escape(_word(n, status))}'
        f"{f' ({known} known)' if known else ''}</li>"
    )


def _attention(requirements: list[dict[str, Any]]) -> str:
    """Links to what went wrong, MUST failures first, so a long page needs no scrolling to act."""
    groups = [
        (_badge(status), [r for r in requirements if r["status"] == status and not _known(r)])
        for status in EXPANDED
    ]
    groups.append((_badge("failed", known=True), [r for r in requirements if _known(r)]))
    lines = []
    for badge, wrong in groups:
        if not wrong:
            continue
        links = ", ".join(
            f'<a href="#{_anchor(r["id"])}"><code>{_escape(r["id"])}</code></a>'
            + ("" if r["level"] == "MUST" else f" ({_escape(r['level'])})")
            for r in sorted(wrong, key=lambda r: (_level_rank(r["level"]), r["id"]))
        )
        lines.append(f"<li>{badge} {len(wrong)}: {links}</li>")
    if not lines:
        return ""
    return (
        f'<nav class="attention" aria-labelledby="attention-h">'
        f'<h2 id="attention-h">Needs attention</h2><ul>{"".join(lines)}</ul></nav>'
    )


def _level_rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)


def _timeline(entry: dict[str, Any]) -> str:
    """A durability run's operations and faults on one time axis (X-DUR-1), drawn as an SVG."""
    from simulators.durability.timeline import timeline_svg

    try:
        data = json.loads(entry.get("text", ""))
        operations, faults = data["operations"], data["faults"]
        anomalous = {int(op["index"]) for op in operations if op.get("anomaly")}
        drawn = timeline_svg(operations, faults, anomalous)
    except (ValueError, KeyError, TypeError):
        return ""
    return f'<figure class="timeline">{drawn}<figcaption>Timeline</figcaption></figure>'


def _transcript(check: dict[str, Any]) -> str:
    recorded: list[dict[str, Any]] = check.get("transcript") or []
    timelines = "".join(_timeline(e) for e in recorded if e.get("kind") == "timeline")
    entries = [entry for entry in recorded if entry.get("kind") != "timeline"]
    if not entries:
        return timelines + (
            '<p class="empty">No wire exchange was recorded.</p>'
            if check["outcome"] in ("failed", "error")
            else ""
        )
    rows = "".join(
        f'<tr class="entry kind-{_escape(entry.get("kind", ""))}">'
        f'<td class="at mono">+{_seconds(entry.get("at"))}</td>'
        f'<td class="kind mono">{_escape(entry.get("kind", ""))}</td>'
        f'<td class="text"><pre>{_escape(entry.get("text", ""))}</pre></td></tr>'
        for entry in entries
    )
    return timelines + (
        f'<table class="transcript">'
        f"<caption>Wire transcript ({len(entries)} entries, keys redacted)</caption>"
        f'<colgroup><col class="c-at"><col class="c-kind"><col></colgroup>'
        f'<thead><tr><th scope="col">time</th><th scope="col">kind</th>'
        f'<th scope="col">text</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _parties(entries: list[dict[str, Any]], runtime_url: str | None) -> list[str]:
    """The lane each wire entry goes to or comes from: a request to the runtime URL and its
    answer are the runtime's, sockets and everything else the gateway's."""
    waiting: list[str] = []
    parties = []
    for entry in entries:
        kind = entry.get("kind")
        party = "gateway"
        if kind == "http-request":
            url = str(entry.get("text", "")).split(" ", 2)[1:2]
            party = "runtime" if url and _under(url[0], runtime_url) else "gateway"
            waiting.append(party)
        elif kind == "http-response" and waiting:
            party = waiting.pop(0)
        parties.append(party)
    return parties


def _under(url: str, base: str | None) -> bool:
    if not base:
        return False
    base = base.rstrip("/")
    return url == base or url.startswith((base + "/", base + "?"))


def _towards_target(entry: dict[str, Any]) -> bool:
    kind = entry.get("kind")
    if kind == "ws-close":
        # Recorded as "closed by sessionlab, code N" when the check closed it.
        return str(entry.get("text", "")).startswith("closed by sessionlab")
    return kind in ("http-request", "ws-open", "ws-send")


def _label(entry: dict[str, Any]) -> str:
    """What the arrow says: requests and sockets by path, the rest as recorded."""
    kind, text = str(entry.get("kind")), str(entry.get("text", ""))
    if kind == "http-request":
        method, _, rest = text.partition(" ")
        url, _, body = rest.partition(" ")
        split = urlsplit(url)
        path = split.path + (f"?{split.query}" if split.query else "")
        body = re.sub(r"^\{'x-internal-auth': [^}]*\} ?", "", body)
        text = f"{method} {path or url} {body}".rstrip()
    elif kind == "http-response" and (stream := EVENT_STREAM.match(text)):
        # An event stream is told by its events, in order: the one that ends it matters most.
        blocks = [b for b in re.split(r"\n\n+", text[stream.end() :]) if b.strip()]
        names = [(re.findall(r"^event: ?(.*)$", b, re.M) or ["message"])[-1] for b in blocks]
        text = f"{stream['status']} event stream, {len(names)} event(s): {', '.join(names)}"
    elif kind == "ws-open":
        text = f"open {urlsplit(text).path or text}"
    elif kind == "ws-send":
        text = f"send {text}" if text else "send (an empty frame)"
    text = " ".join(text.split())
    return text if len(text) <= LABEL_LIMIT else text[: LABEL_LIMIT - 1] + "…"


def _sequence(check: dict[str, Any], runtime_url: str | None) -> str:
    """The check's wire exchange as a sequence diagram: one arrow per request, answer, socket
    open, frame and close, between sessionlab (the IDE's lane), the gateway and the runtime."""
    entries = [e for e in check.get("transcript") or [] if e.get("kind") in WIRE]
    if not entries:
        return ""
    drawn = entries[:MAX_ARROWS]
    parties = _parties(drawn, runtime_url)
    height = TOP + ROW * len(drawn) + (ROW if len(entries) > len(drawn) else 0) + 12
    parts = []
    for name, x in LANES.items():
        parts.append(
            f'<rect class="lane-box" x="{x - 60}" y="6" width="120" height="26" rx="4"></rect>'
            f'<text class="lane-name" x="{x}" y="24">{name}</text>'
            f'<line class="lifeline" x1="{x}" y1="32" x2="{x}" y2="{height - 4}"></line>'
        )
    for number, (entry, party) in enumerate(zip(drawn, parties, strict=True)):
        y = TOP + ROW * number + 16
        toward = _towards_target(entry)
        start, end = (LANES["IDE"], LANES[party]) if toward else (LANES[party], LANES["IDE"])
        tip = -8 if end > start else 8
        label = _label(entry)
        at = entry.get("at")
        parts.append(
            f'<g class="arrow {"to-target" if toward else "to-ide"}" '
            f'data-kind="{_escape(entry.get("kind", ""))}" data-lane="{party}">'
            f"<title>{_escape(entry.get('kind', ''))}: {_escape(entry.get('text', ''))}</title>"
            f'<text class="at" x="6" y="{y + 4}">'
            f"{f'+{at:.3f}' if isinstance(at, int | float) else ''}</text>"
            f'<text class="label" x="{min(start, end) + 8}" y="{y - 5}">{_escape(label)}</text>'
            f'<line x1="{start}" y1="{y}" x2="{end + tip}" y2="{y}"></line>'
            f'<polygon points="{end},{y} {end + tip},{y - 4} {end + tip},{y + 4}"></polygon>'
            f"</g>"
        )
    if len(entries) > len(drawn):
        parts.append(
            f'<text class="more" x="{LANES["IDE"]}" y="{height - 16}">'
            f"… {len(entries) - len(drawn)} more exchange(s): in the transcript below</text>"
        )
    reached = "gateway and runtime" if "runtime" in parties else "gateway"
    summary = (
        f"Sequence diagram of {len(entries)} exchange(s) between sessionlab as the IDE and the "
        f"{reached}"
    )
    return (
        f'<figure class="sequence">'
        f'<svg class="sequence" role="img" '
        f'viewBox="0 0 {DIAGRAM_WIDTH} {height}" width="{DIAGRAM_WIDTH}" height="{height}" '
        f'aria-label="{_escape(summary)}">{"".join(parts)}</svg>'
        f"<figcaption>{_escape(summary)}; sessionlab plays the IDE, keys redacted.</figcaption>"
        f"</figure>"
    )


def _parts(check: dict[str, Any]) -> str:
    """Expected, received and how to see it again: what a failing check's reader acts on."""
    rows = []
    if check.get("expected") is not None:
        rows.append(("expected", f"<dd>{_escape(check['expected'])}</dd>"))
    if check.get("received") is not None:
        rows.append(("received", f"<dd>{_escape(check['received'])}</dd>"))
    for name in ("reproduce", "replay"):
        if check.get(name):
            rows.append((name, f'<dd><pre class="{name}">{_escape(check[name])}</pre></dd>'))
    if not rows:
        return ""
    return '<dl class="parts">' + "".join(f"<dt>{n}</dt>{d}" for n, d in rows) + "</dl>"


def _checks(
    requirement: dict[str, Any], runtime_url: str | None = None, open_: bool = False
) -> str:
    checks: list[dict[str, Any]] = requirement["checks"]
    if not checks or requirement["status"] == "skipped":
        return ""
    # The checks that decided the verdict come first.
    ordered = sorted(checks, key=lambda c: STATUS_ORDER.get(c["outcome"], len(STATUS_ORDER)))
    tally: dict[str, int] = {}
    for check in checks:
        tally[check["outcome"]] = tally.get(check["outcome"], 0) + 1
    told = ", ".join(
        _count(n, outcome)
        for outcome, n in sorted(tally.items(), key=lambda i: STATUS_ORDER.get(i[0], 9))
    )
    noun = "check" if len(checks) == 1 else "checks"
    wire = "; wire transcript" if any(c.get("transcript") for c in checks) else ""
    # A passing row's message only counts its checks: the summary says it once.
    label = (
        requirement["message"]
        if requirement["status"] == "passed" and requirement["message"]
        else f"{len(checks)} {noun}: {told}{wire}"
    )
    items = "".join(
        f'<li class="check" data-outcome="{_escape(check["outcome"])}">'
        f'<p class="check-head">{_badge(check["outcome"])} <code>{_escape(check["nodeid"])}</code>'
        f' <span class="duration">{_seconds(check.get("duration"))}</span></p>'
        + (
            f'<p class="check-message">{_escape(check["message"])}</p>'
            if check.get("message")
            else ""
        )
        + (
            _parts(check) + _sequence(check, runtime_url)
            if check["outcome"] in ("failed", "error")
            else ""
        )
        + _transcript(check)
        + "</li>"
        for check in ordered
    )
    return (
        f'<details class="checks"{" open" if open_ else ""}><summary>{_escape(label)}</summary>'
        f'<ol class="check-list">{items}</ol></details>'
    )


def _row(requirement: dict[str, Any], runtime_url: str | None = None, lead: bool = False) -> str:
    status = str(requirement["status"])
    level = str(requirement["level"])
    checks = _checks(requirement, runtime_url, open_=lead)
    # Among the failures of every profile, a row says which profile it is of.
    profile = f' <span class="profile">({_escape(requirement["profile"])})</span>' if lead else ""
    message = (
        ""
        if status == "passed" and checks
        else f'<p class="message">{_escape(requirement["message"])}</p>'
    )
    return (
        f'<tr class="req" id="{_anchor(requirement["id"])}" data-status="{_escape(status)}"'
        f' data-level="{_escape(level)}"{" data-known" if _known(requirement) else ""}>'
        f'<th scope="row">{_escape(requirement["id"])}</th>'
        f'<td class="level {_escape(level)}">{_escape(level)}</td>'
        f'<td class="status">{_badge(status, _known(requirement))}</td>'
        f'<td><p class="title">{_escape(requirement["title"])}{profile}</p>'
        f"{message}{checks}</td></tr>"
    )


def _moved(requirement: dict[str, Any]) -> str:
    """A failure's place in its profile's table: it is shown in full under Failures."""
    status = str(requirement["status"])
    level = str(requirement["level"])
    return (
        f'<tr class="moved" data-status="{_escape(status)}" data-level="{_escape(level)}">'
        f'<th scope="row">{_escape(requirement["id"])}</th>'
        f'<td class="level {_escape(level)}">{_escape(level)}</td>'
        f'<td class="status">{_badge(status, _known(requirement))}</td>'
        f'<td><p class="title">{_escape(requirement["title"])} — '
        f'<a href="#{_anchor(requirement["id"])}">shown under Failures, above</a></p></td></tr>'
    )


def _leads(requirement: dict[str, Any]) -> bool:
    return requirement["status"] in LEADING


def _failures(report: dict[str, Any], checked: list[dict[str, Any]]) -> str:
    """Every failed, errored and warning requirement of the run, open, before any passing row:
    new failures first, then errors, warnings, and the baseline's known failures last."""
    leading = sorted(
        (r for r in checked if _leads(r)),
        key=lambda r: (
            _known(r),
            STATUS_ORDER.get(r["status"], 9),
            _level_rank(r["level"]),
            r["id"],
        ),
    )
    if not leading:
        return ""
    runtime_url = (report.get("target") or {}).get("runtime_url")
    rows = "".join(_row(r, runtime_url, lead=True) for r in leading)
    return (
        f'<section class="failures" aria-labelledby="failures-h"><h2 id="failures-h">Failures '
        f'<span class="counts">— {_escape(_counts(leading))}, each with its failing checks'
        f"</span></h2>"
        f'<table class="requirements failures"><caption class="visually-hidden">Failed, errored '
        f"and warning requirements</caption>"
        f'<colgroup><col class="c-id"><col class="c-level"><col class="c-status"><col>'
        f"</colgroup>"
        f'<thead><tr><th scope="col">ID</th><th scope="col">Level</th>'
        f'<th scope="col">Status</th><th scope="col">Requirement</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )


def _table(caption: str, requirements: Iterable[dict[str, Any]]) -> str:
    by_level: dict[str, list[dict[str, Any]]] = {}
    for requirement in requirements:
        by_level.setdefault(requirement["level"], []).append(requirement)
    groups = []
    for level in sorted(by_level, key=_level_rank):
        rows = sorted(
            by_level[level],
            key=lambda r: (STATUS_ORDER.get(r["status"], 9), _known(r), r["id"]),
        )
        groups.append(
            f'<tbody><tr class="level"><th colspan="4" scope="rowgroup">{_escape(level)}'
            f" ({len(rows)})</th></tr>"
            f"{''.join(_moved(r) if _leads(r) else _row(r) for r in rows)}</tbody>"
        )
    return (
        f'<table class="requirements"><caption class="visually-hidden">{_escape(caption)}'
        f"</caption>"
        f'<colgroup><col class="c-id"><col class="c-level"><col class="c-status"><col>'
        f"</colgroup>"
        f'<thead><tr><th scope="col">ID</th><th scope="col">Level</th>'
        f'<th scope="col">Status</th><th scope="col">Requirement</th></tr></thead>'
        f"{''.join(groups)}</table>"
    )


def _counts(requirements: list[dict[str, Any]]) -> str:
    tally = {status: 0 for status in STATUS_ORDER}
    for requirement in requirements:
        tally[requirement["status"]] = tally.get(requirement["status"], 0) + 1
    return ", ".join(_count(n, status) for status, n in tally.items() if n)


def _profiles(report: dict[str, Any]) -> str:
    requirements: list[dict[str, Any]] = report["requirements"]
    checked = [r for r in requirements if _checked(report, r)]
    sections = []
    for profile in dict.fromkeys(r["profile"] for r in checked):
        in_profile = [r for r in checked if r["profile"] == profile]
        heading = f"profile-{_slug(profile)}"
        sections.append(
            f'<section aria-labelledby="{heading}"><h2 id="{heading}">Profile '
            f'{_escape(profile)} <span class="counts">— {_escape(_counts(in_profile))}</span>'
            f"</h2>{_table(f'Requirements of profile {profile}', in_profile)}</section>"
        )
    left = [r for r in requirements if not _checked(report, r)]
    if left:
        # Kept in the page, folded: the reader sees what was not checked and why.
        unselected = [r for r in left if r["profile"] not in report["profiles"]]
        names = ", ".join(dict.fromkeys(r["profile"] for r in unselected))
        why = []
        if unselected:
            why.append(f"{len(unselected)} in profiles not selected ({names})")
        if len(left) > len(unselected):
            why.append(f"{len(left) - len(unselected)} left out by --only")
        sections.append(
            f'<section aria-labelledby="not-checked-h"><h2 id="not-checked-h">Not checked in '
            f"this run</h2>"
            f'<details class="not-checked"><summary>{len(left)} requirement(s): '
            f"{_escape('; '.join(why))}</summary>"
            f"{_table('Requirements not checked in this run', left)}</details></section>"
        )
    return "".join(sections)


def render_html(report: dict[str, Any]) -> str:
    target = (report.get("target") or {}).get("name") or "unknown target"
    word = "CONFORMS" if report["conforms"] else "DOES NOT CONFORM"
    checked = [r for r in report["requirements"] if _checked(report, r)]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing may be fetched, whatever a transcript holds.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>{_escape(word)} — {_escape(target)} — sessionlab report</title>"
        f"<style>\n{CSS}</style></head><body>"
        f"{_header(report)}<main>{_attention(checked)}{_failures(report, checked)}"
        f"{_profiles(report)}</main>"
        f"<footer>Generated by sessionlab {_escape(report.get('sessionlab', ''))}. "
        "Keys are redacted in transcripts. Exit codes of <code>sessionlab verify</code>: "
        f"{ExitCode.OK:d} conforms, {ExitCode.FAILED:d} does not conform, "
        f"{ExitCode.HARNESS_FAILED:d} the run could not judge the target.</footer>"
        "</body></html>\n"
    )

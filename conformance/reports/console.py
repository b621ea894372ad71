"""The console report: a shared cause first, then the table grouped by profile and level, then each
failure with what was expected, what came and how to see it again, then the skips by reason."""

from collections.abc import Mapping
from typing import Any

from conformance.causes import cause_of
from conformance.reports.model import STATUSES
from conformance.reproduce import CLIENT_KEY_VARIABLE, INTERNAL_KEY_VARIABLE, USER_TOKEN_VARIABLE
from conformance.verdicts import NOT_SELECTED_BY

MARKS = {
    "passed": "ok  ",
    "partial": "part",
    "failed": "FAIL",
    "warning": "warn",
    "blocked": "blkd",
    "skipped": "skip",
    "error": "ERR ",
}
ORDER: dict[str, int] = {status: rank for rank, status in enumerate(STATUSES)}
LEVELS = ("MUST", "SHOULD", "MAY")
VARIABLES = (CLIENT_KEY_VARIABLE, INTERNAL_KEY_VARIABLE, USER_TOKEN_VARIABLE)
# Where a failure's details come: failures of a MUST first, errors last.
DETAILED = ("failed", "warning", "error")
# Failing checks shown per requirement; the rest are in the JSON, JUnit and HTML reports.
SHOWN_CHECKS = 2
SHOWN_IDS = 8
INDENT = " " * 4
# Rows whose message is not repeated under them: failures have their own section below the
# table, skips are grouped by reason.
QUIET = ("passed", "failed", "warning", "error", "skipped")


def render_console(
    report: dict[str, Any], verbose: bool = False, tracebacks: Mapping[str, str] | None = None
) -> str:
    """`tracebacks`: pytest's traceback of each failed check by node id, shown when given."""
    target = report.get("target") or {}
    runtime = target.get("runtime_url") or "not given"
    lines = [
        f"sessionlab {report['sessionlab']} — target {target.get('name', '?')}"
        f" (gateway {target.get('gateway_url')}, runtime {runtime})",
        f"profiles checked: {', '.join(report['profiles'])}",
    ]
    if report.get("stopped"):
        # Nothing was judged: a row per requirement would repeat the reason forty times.
        lines += ["", f"the run stopped: {report['stopped']}"]
        return "\n".join([*lines, "", _totals(report), "NOT VERIFIED"])
    every: list[dict[str, Any]] = report["requirements"]
    requirements = [r for r in every if not r["message"].startswith(NOT_SELECTED_BY)]
    causes: list[dict[str, Any]] = report.get("causes") or []
    for cause in causes:
        ids = cause["requirements"]
        lines += ["", f"{len(ids)} requirements fail for one cause: {cause['cause']} ({_ids(ids)})"]
    checked = [
        r for r in requirements if r["profile"] in report["profiles"] or r["status"] != "skipped"
    ]
    lines += _table(checked, report["profiles"], verbose)
    lines += _failures(checked, causes, verbose, tracebacks or {})
    lines += _skips(checked)
    not_selected = sorted(
        {r["profile"] for r in requirements if r["profile"] not in report["profiles"]}
    )
    tail: list[str] = []
    if not_selected:
        tail.append(f"not selected: {', '.join(not_selected)}")
    left_out: dict[str, int] = {}
    for requirement in every:
        if requirement["message"].startswith(NOT_SELECTED_BY):
            left_out[requirement["message"]] = left_out.get(requirement["message"], 0) + 1
    for message, count in left_out.items():
        how = message.removeprefix(NOT_SELECTED_BY)
        tail.append(f"left out by {how}: {count} requirements")
    if tail:
        lines += ["", *tail]
    paced = report.get("rate_limited")
    if paced:
        lines.append("")
        lines.append(
            f"the target rate-limited the run: {paced['responses_429']} answer(s) 429, "
            f"{paced['waited']:.1f} s waited as asked, requests then paced at "
            f"{paced['final_rate']:g}/s; --rate N sets a pace from the start"
        )
    if any(r["status"] == "error" for r in requirements):
        lines.append("")
        lines.append(
            "ERR marks sessionlab's own errors, not the target's: please report them with the "
            "JSON report (--json)"
        )
    lines.append("")
    lines.append(_totals(report))
    lines.append("CONFORMS" if report["conforms"] else "DOES NOT CONFORM")
    return "\n".join(lines)


def _mark(row: dict[str, Any]) -> str:
    return "known" if row.get("known_failure") else MARKS[row["status"]]


def _table(requirements: list[dict[str, Any]], profiles: list[str], verbose: bool) -> list[str]:
    lines: list[str] = []
    for profile in dict.fromkeys(r["profile"] for r in requirements):
        lines += ["", f"[{profile}]"]
        in_profile = [r for r in requirements if r["profile"] == profile]
        for level in LEVELS:
            rows = sorted(
                (r for r in in_profile if r["level"] == level),
                key=lambda r: (ORDER[r["status"]], r["id"]),
            )
            for row in rows:
                lines.append(f"  {_mark(row):<4} {level:<6} {row['id']:<11} {row['title']}")
                if row["status"] == "blocked" and row.get("blocked_by"):
                    # The prerequisite's failure is told in full under Failures.
                    lines.append(f"{'':18}blocked by {', '.join(row['blocked_by'])}")
                elif row["status"] not in QUIET or (verbose and row["status"] == "passed"):
                    lines.append(f"{'':18}{row['message']}")
    return lines


def _failures(
    requirements: list[dict[str, Any]],
    causes: list[dict[str, Any]],
    verbose: bool,
    tracebacks: Mapping[str, str],
) -> list[str]:
    failing = sorted(
        (r for r in requirements if r["status"] in DETAILED),
        key=lambda r: (ORDER[r["status"]], bool(r.get("known_failure")), LEVELS.index(r["level"])),
    )
    if not failing:
        return []
    # A shared cause is told once, above; its first requirement shows what it looks like, the
    # others only when they failed for more than it.
    shared = {cause["cause"] for cause in causes}
    by_id = {r["id"]: r for r in failing}
    told = {
        i
        for cause in causes
        for i in cause["requirements"][1:]
        if i in by_id and _causes(by_id[i]) <= shared
    }
    lines = ["", "Failures"]
    named: set[str] = set()
    for requirement in failing:
        head = (
            f"  {_mark(requirement).strip()} {requirement['id']} ({requirement['level']}, "
            f"{requirement['profile']}) {requirement['title']}"
        )
        lines += ["", head]
        if requirement["id"] in told:
            lines.append(f"{INDENT}failed for the cause shared above (in full in the JSON report)")
            continue
        checks = [c for c in requirement["checks"] if c["outcome"] in ("failed", "error")]
        if not checks:
            lines.append(f"{INDENT}{requirement['message']}")
        for check in checks[:SHOWN_CHECKS]:
            lines += _check_lines(check, verbose, tracebacks)
            named |= _variables(check)
        if len(checks) > SHOWN_CHECKS:
            lines.append(
                f"{INDENT}… and {len(checks) - SHOWN_CHECKS} more failing check(s): in the JSON, "
                "JUnit and HTML reports"
            )
    if named:
        listed = " and ".join(f"${name}" for name in VARIABLES if name in named)
        lines += ["", f"Reproduce lines name the keys as {listed}: export them before pasting."]
    return lines


def _causes(requirement: dict[str, Any]) -> set[str]:
    checks = [c for c in requirement["checks"] if c["outcome"] in ("failed", "error")]
    return {cause_of(c["message"]) for c in checks} or {cause_of(requirement["message"])}


def _check_lines(check: dict[str, Any], verbose: bool, tracebacks: Mapping[str, str]) -> list[str]:
    lines = [f"{INDENT}check      {check['nodeid']}"]
    if check["outcome"] == "error" or "received" not in check:
        lines.append(f"{INDENT}said       {check['message']}")
    else:
        if check.get("expected") is not None:
            lines.append(f"{INDENT}expected   {check['expected']}")
        lines.append(f"{INDENT}received   {check['received']}")
    if check.get("reproduce"):
        first, *more = check["reproduce"].splitlines()
        lines.append(f"{INDENT}reproduce  {first}")
        lines += [f"{INDENT}           {line}" for line in more]
    if check.get("replay"):
        lines.append(f"{INDENT}replay     {check['replay']}")
    trace = tracebacks.get(check["nodeid"])
    if verbose and trace:
        lines += [f"{INDENT}  {line}" for line in trace.rstrip().splitlines()]
    return lines


def _variables(check: dict[str, Any]) -> set[str]:
    said = f"{check.get('reproduce') or ''} {check.get('replay') or ''}"
    return {name for name in VARIABLES if f"${name}" in said or f"${{{name}}}" in said}


def _skips(requirements: list[dict[str, Any]]) -> list[str]:
    by_reason: dict[str, list[str]] = {}
    for requirement in requirements:
        if requirement["status"] == "skipped":
            by_reason.setdefault(requirement["message"], []).append(requirement["id"])
    if not by_reason:
        return []
    lines = ["", "Skipped"]
    for reason, ids in sorted(by_reason.items(), key=lambda item: -len(item[1])):
        lines.append(f"  {reason}: {_ids(ids)}")
    return lines


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:SHOWN_IDS])
    return shown if len(ids) <= SHOWN_IDS else f"{shown} and {len(ids) - SHOWN_IDS} more"


def _totals(report: dict[str, Any]) -> str:
    counts = report["summary"]
    return (
        f"requirements: {counts['passed']} passed, {counts.get('partial', 0)} partial, "
        f"{counts['failed']} failed, {counts['warning']} warnings, "
        f"{counts.get('blocked', 0)} blocked, {counts['skipped']} skipped, "
        f"{counts['error']} errors in {report['duration']:.1f} s"
    )

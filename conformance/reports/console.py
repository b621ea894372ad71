"""The console report: grouped by profile and level, failures first, skips with their reasons."""

from typing import Any

from conformance.verdicts import STATUSES

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


def render_console(report: dict[str, Any], verbose: bool = False) -> str:
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
    requirements = [r for r in every if not r["message"].startswith("not selected by --only")]
    left_out = len(every) - len(requirements)
    for profile in dict.fromkeys(r["profile"] for r in requirements):
        in_profile = [r for r in requirements if r["profile"] == profile]
        if all(r["status"] == "skipped" for r in in_profile) and profile not in report["profiles"]:
            continue
        lines.append("")
        lines.append(f"[{profile}]")
        for level in LEVELS:
            rows = sorted(
                (r for r in in_profile if r["level"] == level),
                key=lambda r: (ORDER[r["status"]], r["id"]),
            )
            for row in rows:
                mark = "known" if row.get("known_failure") else MARKS[row["status"]]
                lines.append(f"  {mark:<4} {level:<6} {row['id']:<11} {row['title']}")
                if row["status"] != "passed" or verbose:
                    lines.append(f"{'':18}{row['message']}")
    skipped_profiles = sorted(
        {r["profile"] for r in requirements if r["profile"] not in report["profiles"]}
    )
    if skipped_profiles:
        lines.append("")
        lines.append(f"not selected: {', '.join(skipped_profiles)}")
    if left_out:
        lines.append(f"left out by --only: {left_out} requirements")
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


def _totals(report: dict[str, Any]) -> str:
    counts = report["summary"]
    return (
        f"requirements: {counts['passed']} passed, {counts.get('partial', 0)} partial, "
        f"{counts['failed']} failed, {counts['warning']} warnings, "
        f"{counts.get('blocked', 0)} blocked, {counts['skipped']} skipped, "
        f"{counts['error']} errors in {report['duration']:.1f} s"
    )

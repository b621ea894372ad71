"""Failures that share one cause: the report leads with the cause instead of repeating it.

When a service goes away in the middle of a run, or one URL refuses everything, a dozen
requirements fail with the same words. The cause is read from each failing check's message: a
connection that failed or timed out counts by the base URL it went to, anything else by its text
(the requirement's own id and session ids aside).
"""

import re
from typing import Any

# From this many requirements on, a shared cause leads the report.
SHARED = 3
# The target's failures; sessionlab's own errors have their own line in the report.
FAILING = ("failed", "warning")
PREFIX = re.compile(r"^[RGWCX]-[A-Z]+-\d+ failed: ")
SESSION_ID = re.compile(r"session_[0-9A-Za-z]+")
# Words of conformance.outcomes.describe_target_fault: `GET http://host:port/path: no connection
# (why)`, `...: no answer within 10 s`, `...: the connection broke (why)`.
CONNECTION = re.compile(
    r"[A-Z]+ (?P<base>https?://[^/\s]+)\S*: (?P<what>no connection|no answer|the connection broke)"
    r"(?: \((?P<why>[^)]*)\))?"
)
REFUSED = re.compile(r"(?P<what>the WebSocket was refused: HTTP \d+|no connection to \S+)")


def cause_of(message: str) -> str:
    text = PREFIX.sub("", message.strip())
    found = CONNECTION.search(text)
    if found:
        why = f" ({found['why']})" if found["why"] else ""
        base = found["base"]
        if found["what"] == "no answer":
            return f"no answer from {base}"
        if found["what"] == "no connection":
            return f"no connection to {base}{why}"
        return f"the connection to {base} broke{why}"
    found = REFUSED.search(text)
    if found:
        return found["what"]
    return SESSION_ID.sub("session_…", text)


def shared_causes(requirements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Causes shared by at least SHARED failing requirements, the most shared first."""
    by_cause: dict[str, list[str]] = {}
    for requirement in requirements:
        if requirement["status"] not in FAILING:
            continue
        failing = [c for c in requirement.get("checks", []) if c["outcome"] == "failed"]
        messages = [c["message"] for c in failing] or [requirement["message"]]
        for cause in dict.fromkeys(cause_of(m) for m in messages if m):
            by_cause.setdefault(cause, []).append(requirement["id"])
    shared = [
        {"cause": cause, "requirements": ids}
        for cause, ids in by_cause.items()
        if len(ids) >= SHARED
    ]
    return sorted(shared, key=lambda entry: -len(entry["requirements"]))

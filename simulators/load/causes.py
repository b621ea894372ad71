"""Errors grouped by cause: the message with what differs between two instances taken out."""

import re
from collections.abc import Callable

# Most specific first: a URL's session id, then ports, ids and numbers anywhere.
_VARIABLE: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"session_[A-Za-z0-9_-]+"), "session_…"),
    (re.compile(r"(?<=[:\[])\d{2,5}(?=[/\]]|$)"), "PORT"),
    (re.compile(r"\b(?:IDE|turn) \d+\b"), lambda m: m.group().split()[0] + " N"),
    (re.compile(r"\bcall_[A-Za-z0-9]+"), "call_…"),
    (re.compile(r"\b[0-9a-f]{12,}\b"), "…"),
    (re.compile(r"\b\d+(?:\.\d+)? ?(?:ms|s)\b"), "N s"),
]
CAUSE_LENGTH = 200


def cause_of(flow: str, message: str) -> str:
    """`switch: WebSocket ws://127.0.0.1:PORT/ws/session_… did not open: TimeoutError: …`."""
    text = message
    for pattern, replacement in _VARIABLE:
        text = pattern.sub(replacement, text)
    text = " ".join(text.split())
    if len(text) > CAUSE_LENGTH:
        text = text[:CAUSE_LENGTH] + "…"
    return f"{flow}: {text}"

"""The wire exchange of one check: HTTP requests and responses, SSE and WebSocket frames."""

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from conformance import secrecy
from conformance.secrecy import REDACTED

BODY_LIMIT = 2000


@dataclass
class Entry:
    at: float
    kind: str  # http-request, http-response, ws-open, ws-send, ws-recv, ws-close, note
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"at": round(self.at, 4), "kind": self.kind, "text": self.text}


@dataclass
class Transcript:
    """Entries in order, with every configured key replaced by <redacted>."""

    # Never in the repr: a transcript shows up in tracebacks as a check's argument.
    secrets: list[str] = field(default_factory=list, repr=False)
    entries: list[Entry] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def add_secrets(self, values: Iterable[str | None]) -> None:
        given = [value for value in values if value]
        self.secrets.extend(given)
        secrecy.remember(given)

    def redact(self, text: str) -> str:
        text = secrecy.redact(text, self.secrets)
        # Keys too short for the process-wide pass are still hidden on the wire.
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def record(self, kind: str, text: str) -> None:
        # Lone surrogates (a target may send "\ud800") become visible escapes, never an error.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        if len(text) > BODY_LIMIT:
            text = text[:BODY_LIMIT] + f"… ({len(text)} characters)"
        self.entries.append(Entry(time.monotonic() - self.started, kind, self.redact(text)))

    def note(self, text: str) -> None:
        self.record("note", text)

    def render(self) -> str:
        return "\n".join(f"[{e.at:8.3f}s] {e.kind:<13} {e.text}" for e in self.entries)

    def as_list(self) -> list[dict[str, Any]]:
        return [entry.as_dict() for entry in self.entries]


def body_text(content: bytes) -> str:
    try:
        return json.dumps(json.loads(content), ensure_ascii=False)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # A body too deep to parse (a robustness check sends one on purpose) is shown as sent.
        return content.decode("utf-8", errors="replace")

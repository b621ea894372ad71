"""The keys and user tokens of a run, and the one place they are taken out of text.

Every key sessionlab learns (from the command line, a target file, a target's endpoints) is
remembered here for the life of the process; whatever sessionlab prints or writes passes through
`redact` last, so a key that slipped into an exception message, a repr or a log line still never
leaves the process.
"""

import html
import json
from collections.abc import Iterable
from typing import Any, TypeVar
from urllib.parse import quote

REDACTED = "<redacted>"
# Shorter values are no secret worth the name, and replacing them would shred every message
# ("k" in "key"); the transcript still hides them in the wire exchange it records.
MIN_LENGTH = 4
# From this length a key with one character cut is still most of the key.
NEAR_LENGTH = 8

_known: set[str] = set()

T = TypeVar("T")


def _forms(secret: str) -> set[str]:
    """How a key reads where it may surface: as is, in a URL, in JSON text, in HTML, and with its
    first or last character changed (the timing check of R-AUTH-2 sends such near keys)."""
    near = {secret[1:], secret[:-1]} if len(secret) >= NEAR_LENGTH else set()
    forms: set[str] = set()
    for value in {secret, *near}:
        forms |= {value, quote(value, safe=""), json.dumps(value)[1:-1], html.escape(value)}
    return {form for form in forms if len(form) >= MIN_LENGTH}


def remember(values: Iterable[str | None]) -> None:
    for value in values:
        if value and len(value) >= MIN_LENGTH:
            _known.update(_forms(value))


def known() -> frozenset[str]:
    return frozenset(_known)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    # Longest first: a key that contains another is replaced whole.
    forms = set(_known)
    for value in extra:
        if value and len(value) >= MIN_LENGTH:
            forms |= _forms(value)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text


def redact_data(value: T) -> T:
    """The same structure with every string redacted: JSON stays valid whatever the key holds."""
    redacted: Any
    if isinstance(value, str):
        redacted = redact(value)
    elif isinstance(value, dict):
        redacted = {redact(str(k)): redact_data(v) for k, v in value.items()}
    elif isinstance(value, list | tuple):
        redacted = [redact_data(item) for item in value]
    else:
        redacted = value
    return redacted  # type: ignore[no-any-return]


def forget() -> None:
    """For tests that run several verifications in one process."""
    _known.clear()

"""Text columns that hold any JSON string on every store, NUL included.

PostgreSQL's text type refuses NUL, which a JSON string may carry and a client may send. On
PostgreSQL, NUL is stored as ESCAPE + "0" and ESCAPE itself doubled, so every string round-trips
and a search needle escaped the same way still matches where it matched before (and, rarely, across
an escape: search rechecks its hits). SQLite stores the string as it is, with no per-value work.
"""

import re
from typing import Any

from sqlalchemy import Dialect, Text
from sqlalchemy.types import TypeDecorator

# A private-use character: rarely typed, and doubled where it is, so the user's own stays intact.
ESCAPE = "\ue000"
_ESCAPED = re.compile(ESCAPE + "(.)", re.DOTALL)


def escape(value: str) -> str:
    return value.replace(ESCAPE, ESCAPE * 2).replace("\x00", ESCAPE + "0")


def unescape(value: str) -> str:
    return _ESCAPED.sub(lambda match: "\x00" if match[1] == "0" else match[1], value)


class _NulEscapedText(TypeDecorator[str]):
    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return escape(value) if value is not None else None

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return unescape(value) if value is not None else None


PORTABLE_TEXT = Text().with_variant(_NulEscapedText(), "postgresql")

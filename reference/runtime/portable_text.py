"""Text columns that hold any JSON string on every store, NUL included.

PostgreSQL's text type refuses NUL, which a JSON string may carry and a client may send. On
PostgreSQL, NUL is stored as ESCAPE + "0" and ESCAPE itself doubled, so every string round-trips
and a search needle escaped the same way still matches where it matched before (and, rarely, across
an escape: search rechecks its hits). SQLite stores the string as it is.
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


def needs_escape(dialect: Dialect) -> bool:
    return dialect.name == "postgresql"


class PortableText(TypeDecorator[str]):
    """Text (or VARCHAR(length)) that PostgreSQL can hold whatever characters it carries."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return escape(value) if value is not None and needs_escape(dialect) else value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return unescape(value) if value is not None and needs_escape(dialect) else value

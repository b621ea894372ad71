"""How deep a JSON text may nest before the reference refuses it, checked before it is parsed.

Python's JSON parser recurses once per level: a body or frame of a few kilobytes of `[` ends in a
RecursionError, which no handler expects. Both services refuse such texts first, by one limit.
"""

import asyncio
import re

# Deeper than any body or frame of the contract (they nest 4 levels) by a wide margin, shallow
# enough for every parser on the way (the standard library's, pydantic's).
MAX_DEPTH = 64
TOO_DEEP = f"JSON nested deeper than {MAX_DEPTH} levels"
# Brackets outside strings; a string is skipped whole, escapes included.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")


def nests_too_deep(text: str | bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text opens more than `limit` arrays or objects inside one another.

    Text that is not JSON at all may be answered either way: the parser refuses it next.
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    # Fewer openers than the limit cannot nest deeper than it: the usual body stops here.
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for token in _TOKENS.finditer(raw):
        first = token.group()[0]
        if first in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif first != ord('"'):
            depth -= 1
    return False


# Above this size a text with many brackets is scanned off the event loop: a wide, shallow
# document of a few MiB takes a good part of a second.
_INLINE_BYTES = 64 * 1024


async def nests_too_deep_async(text: str | bytes, limit: int = MAX_DEPTH) -> bool:
    """nests_too_deep, in a worker thread when the scan could hold up other clients."""
    if len(text) <= _INLINE_BYTES:
        return nests_too_deep(text, limit)
    return await asyncio.to_thread(nests_too_deep, text, limit)

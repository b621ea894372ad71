"""Log lines of a service, read the same way whatever runs it (in process, process, container)."""

import asyncio
import re
import threading
from typing import Protocol


class LogSource(Protocol):
    def lines(self) -> list[str]:
        """Every line seen so far, oldest first."""
        ...

    async def wait_for(self, pattern: str, since: int = 0) -> str:
        """The first line at index >= since matching the regular expression.

        It waits as long as it takes: bound it with `asyncio.timeout`.
        """
        ...


class LogBuffer:
    """Lines appended by any thread (a log handler, a pipe reader), awaited from asyncio."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def append(self, line: str) -> None:
        with self._lock:
            self._lines.append(line.rstrip("\n"))

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def mark(self) -> int:
        """An index to pass as `since`, so a wait only sees lines written after this call."""
        with self._lock:
            return len(self._lines)

    async def wait_for(self, pattern: str, since: int = 0) -> str:
        compiled = re.compile(pattern)
        while True:
            for line in self.lines()[since:]:
                if compiled.search(line):
                    return line
            # Lines come from other threads or pipes; polling keeps this free of cross-loop wakeups.
            await asyncio.sleep(0.02)

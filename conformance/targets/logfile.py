"""Log lines read from a file a service writes itself, for targets whose output sessionlab does
not capture (a running target's log file, a service that logs to a file rather than stdout)."""

import asyncio
import contextlib
from pathlib import Path

from conformance.targets.logs import LogBuffer


class FileTail:
    """Follows `path` from its end at start into `buffer`, like `tail -F`: the file may appear
    later, and one that shrinks (truncated or rotated) is read again from its beginning."""

    def __init__(self, path: Path, buffer: LogBuffer, interval: float = 0.05) -> None:
        self.path = path
        self.buffer = buffer
        self._interval = interval
        self._offset = 0
        self._partial = b""
        self._task: asyncio.Task[None] | None = None

    def start(self, from_start: bool = False) -> None:
        if self._task is not None:
            return
        # A file that is already there holds earlier runs: only lines written from now on count,
        # unless this file belongs to services started just now.
        self._offset = 0 if from_start else self._size()
        self._task = asyncio.create_task(self._follow(), name=f"tail {self.path}")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self._read()  # what was written before the stop still counts
        if self._partial:
            self.buffer.append(self._partial.decode("utf-8", "replace"))
            self._partial = b""

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    async def _follow(self) -> None:
        while True:
            self._read()
            await asyncio.sleep(self._interval)

    def _read(self) -> None:
        size = self._size()
        if size < self._offset:
            self._offset, self._partial = 0, b""
        if size == self._offset:
            return
        try:
            with self.path.open("rb") as stream:
                stream.seek(self._offset)
                data = stream.read(size - self._offset)
        except OSError:
            return
        self._offset += len(data)
        *complete, self._partial = (self._partial + data).split(b"\n")
        for line in complete:
            self.buffer.append(line.decode("utf-8", "replace").rstrip("\r"))

"""What `sessionlab verify` shows while the checks run: requirement n/N and the one being checked.

On a terminal a `rich` progress display that goes away when the run ends; otherwise (a CI log, a
pipe) one plain line per requirement as its first check starts. It is a pytest plugin object the
verify command hands to pytest; it also keeps pytest's traceback of each failed check, which the
console shows under `-v`.
"""

import io
from typing import Any, TextIO, cast

import pytest
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from conformance import secrecy
from conformance.plugin import checked_profiles, requirement_ids
from contract.requirements import CLIENT_PROFILE, catalogue

TITLE_WIDTH = 60
BAR_WIDTH = 20
# "requirement 12/44", the bar, the elapsed time, and the spaces between them.
BAR_AND_COUNTS = 17 + BAR_WIDTH + 7 + 6


class RedactingStream(io.TextIOBase):
    """A text stream that takes every key out of what passes through it."""

    @classmethod
    def around(cls, inner: TextIO) -> TextIO:
        # A TextIOBase is what rich and print need of a stream, though not a typing.TextIO.
        return cast(TextIO, cls(inner))

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(secrecy.redact(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()


class RunProgress:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tracebacks: dict[str, str] = {}
        self._ids_of: dict[str, tuple[str, ...]] = {}
        self._left: dict[str, int] = {}
        self._started: list[str] = []
        self._done: set[str] = set()
        self._filtered = False
        self._bar: Progress | None = None
        self._task: Any = None

    # pytest hooks

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        known = catalogue()
        only = session.config.getoption("sessionlab_only") or [""]

        def counted(requirement_id: str) -> bool:
            # A check of several requirements also runs for those --only left out.
            chosen = any(requirement_id.startswith(prefix) for prefix in only)
            return chosen and known[requirement_id].profile != CLIENT_PROFILE

        for item in session.items:
            ids = tuple(i for i in requirement_ids(item) if i in known and counted(i))
            self._ids_of[item.nodeid] = ids
            for requirement_id in ids:
                self._left[requirement_id] = self._left.get(requirement_id, 0) + 1
        if self.stream.isatty():
            self._bar = Progress(
                TextColumn("requirement {task.completed}/{task.total}"),
                BarColumn(bar_width=BAR_WIDTH),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._task = self._bar.add_task("starting the target", total=len(self._left))
            self._bar.start()

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        ids = [i for i in self._ids_of.get(nodeid, ()) if i in self._left]
        if self._bar is not None and ids:
            # What the counter, bar and clock leave of the line, so that nothing wraps.
            room = self._bar.console.width - len(ids[0]) - 2 - BAR_AND_COUNTS
            title = _cut(catalogue()[ids[0]].title, max(room, 0))
            self._bar.update(self._task, description=f"{ids[0]}  {title}".rstrip())

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "setup":
            # After the first set-up the target has started and said which profiles it claims.
            self._drop_unchecked()
            fresh = [
                i
                for i in self._ids_of.get(report.nodeid, ())
                if i in self._left and i not in self._started
            ]
            for requirement_id in fresh:
                self._started.append(requirement_id)
                if self._bar is None:
                    title = catalogue()[requirement_id].title
                    self._line(
                        f"[{len(self._started):>2}/{self._total()}] {requirement_id}  "
                        f"{_cut(title, TITLE_WIDTH)}"
                    )
        if report.failed and report.longrepr is not None:
            text = secrecy.redact(report.longreprtext)
            before = self.tracebacks.get(report.nodeid)
            self.tracebacks[report.nodeid] = f"{before}\n{text}" if before else text

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        for requirement_id in self._ids_of.get(nodeid, ()):
            if requirement_id not in self._left:
                continue
            self._left[requirement_id] -= 1
            if self._left[requirement_id] <= 0:
                self._done.add(requirement_id)
        if self._bar is not None:
            self._bar.update(self._task, completed=len(self._done), total=self._total())

    def pytest_sessionfinish(self) -> None:
        self.close()

    # the display

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _total(self) -> int:
        return len(self._left)

    def _drop_unchecked(self) -> None:
        """Once the target has said which profiles it claims, requirements of the others are not
        counted: they are not checked, only named as not selected."""
        if self._filtered:
            return
        profiles = checked_profiles(self._config) if self._config is not None else None
        if profiles is None:
            return
        self._filtered = True
        known = catalogue()
        for requirement_id in list(self._left):
            if known[requirement_id].effective(profiles)[1] not in profiles:
                del self._left[requirement_id]
                self._done.discard(requirement_id)

    _config: pytest.Config | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        self._config = config

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def _cut(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: width - 1] + "…" if width > 0 else ""

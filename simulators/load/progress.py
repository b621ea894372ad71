"""What `sessionlab load` shows while it runs: per target, operations done, the current rate,
errors and the p99 so far.

On a terminal a `rich` live line that is redrawn four times a second; otherwise (a CI log, a
pipe) one plain line every few seconds.
"""

import math
import time
from collections import deque
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from simulators.load.samples import Tally, percentile

# The current rate is counted over this many seconds.
RATE_WINDOW = 5.0
PLAIN_EVERY = 5.0


class LiveProgress:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._console = Console(file=stream, highlight=False)
        self._live: Live | None = None
        self._last_plain = 0.0
        self._done: dict[str, deque[tuple[float, int]]] = {}
        self.title = ""

    def __enter__(self) -> "LiveProgress":
        if self.stream.isatty():
            self._live = Live(Text(""), console=self._console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def show(self, tally: Tally, elapsed: float, ides: int) -> None:
        now = time.monotonic()
        history = self._done.setdefault(tally.label, deque())
        history.append((now, tally.operations))
        while history and now - history[0][0] > RATE_WINDOW:
            history.popleft()
        first_at, first_count = history[0]
        rate = (tally.operations - first_count) / (now - first_at) if now > first_at else 0.0
        p99 = percentile([latency for _, _, latency in tally.points[-5000:]], 0.99)
        p99_text = "-" if math.isnan(p99) else f"{p99 * 1000:.0f} ms"
        line = (
            f"{self.title}{tally.label}: {elapsed:5.0f} s, {ides} IDEs, "
            f"{tally.operations} operations, {rate:.1f}/s now, "
            f"{tally.error_count} errors, p99 {p99_text} (last 5000)"
        )
        if self._live is not None:
            self._live.update(Text(line))
        elif now - self._last_plain >= PLAIN_EVERY:
            self._last_plain = now
            print(line, file=self.stream, flush=True)

"""What the IDEs did, one operation at a time, and how each ended.

`ok`: acknowledged (a create answered with a server-made id; a turn's final frame arrived).
`fail`: refused (an error answer, a create that fell back to a local id after a refusal).
`unknown`: no telling whether it happened (a timeout, a connection that dropped mid-operation).
"""

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Outcome = Literal["ok", "fail", "unknown"]
Kind = Literal["create", "turn", "switch", "restart_ide"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "fail", "unknown")


@dataclass
class Operation:
    index: int
    ide: int
    kind: Kind
    # Seconds since the run began (one clock for operations and faults).
    start: float
    end: float
    outcome: Outcome
    session_id: str | None = None
    # A turn's user message, and the reply its final frame completed (ok turns).
    text: str | None = None
    reply: str | None = None
    detail: str = ""
    # The IDE simulator's trace around the operation: the transcript of an anomaly.
    trace: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        what = f"turn {self.text!r}" if self.kind == "turn" else self.kind
        where = f" in {self.session_id}" if self.session_id else ""
        return (
            f"op {self.index} (IDE {self.ide}) {what}{where}: {self.outcome} "
            f"[{self.start:.2f}s-{self.end:.2f}s]"
        )


class Record:
    """Every IDE appends here; all run on one event loop, so appends need no lock."""

    def __init__(self, began: float | None = None) -> None:
        self.began = time.monotonic() if began is None else began
        self.operations: list[Operation] = []

    def now(self) -> float:
        return time.monotonic() - self.began

    def add(
        self,
        ide: int,
        kind: Kind,
        start: float,
        outcome: Outcome,
        **details: Any,
    ) -> Operation:
        operation = Operation(
            len(self.operations), ide, kind, start, self.now(), outcome, **details
        )
        self.operations.append(operation)
        return operation

    def counts(self) -> dict[str, dict[str, int]]:
        """Per kind, how many ended each way."""
        table: dict[str, dict[str, int]] = {}
        for operation in self.operations:
            row = table.setdefault(operation.kind, dict.fromkeys(OUTCOMES, 0))
            row[operation.outcome] += 1
        return table

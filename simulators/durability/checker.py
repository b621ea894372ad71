"""The history checker: the record of what the IDEs were told, against the histories read back
through the gateway after healing. Pure: data in, anomalies out.

Anomalies (each fails durability):
- `lost`: an acknowledged create whose session is gone (not listed, or its history not 200); an
  acknowledged turn whose user message or reply is not in its session's history.
- `duplicated`: a user message stored more than once.
- `out_of_order`: two acknowledged turns of a session, the first acknowledged before the second
  was sent, stored the other way round.
- `phantom`: a user message in one of the run's sessions that no IDE sent to it.
Reported, never failed: `unknown` operations that did or did not happen, and refused (`fail`)
turns whose message was stored all the same (a turn the runtime stored before the connection
behind the refusal broke).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from simulators.durability.record import Operation

AnomalyKind = Literal["lost", "duplicated", "out_of_order", "phantom"]
ANOMALY_KINDS: tuple[AnomalyKind, ...] = ("lost", "duplicated", "out_of_order", "phantom")
# A history as read: its messages, or None when it did not read (404, an error status).
Histories = Mapping[str, Sequence[Mapping[str, Any]] | None]


@dataclass(frozen=True)
class Anomaly:
    kind: AnomalyKind
    session_id: str
    what: str
    # The operation it concerns (None for a phantom), and the one it is out of order with.
    operation: int | None = None
    other: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckedHistory:
    anomalies: list[Anomaly] = field(default_factory=list)
    # Operations that ended `unknown`, by whether they took effect: "happened", "did not
    # happen", or "cannot tell" (a create that made no id the IDE heard of).
    unknown: dict[int, str] = field(default_factory=dict)
    # Refused turns whose user message was stored all the same.
    refused_but_stored: list[int] = field(default_factory=list)
    sessions_read: int = 0

    @property
    def passed(self) -> bool:
        return not self.anomalies

    def counts(self) -> dict[str, int]:
        table: dict[str, int] = dict.fromkeys(ANOMALY_KINDS, 0)
        for anomaly in self.anomalies:
            table[anomaly.kind] += 1
        return table

    def unknown_counts(self) -> dict[str, int]:
        table: dict[str, int] = {}
        for verdict in self.unknown.values():
            table[verdict] = table.get(verdict, 0) + 1
        return table

    def summary(self) -> str:
        counts = ", ".join(f"{count} {kind}" for kind, count in self.counts().items() if count)
        return counts or "no anomaly"


def normal(text: object) -> str:
    """Text as compared: whitespace aside (R-STREAM-2: how chunks join is the server's)."""
    return "".join(str(text or "").split())


def _positions(messages: Sequence[Mapping[str, Any]], role: str) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for position, message in enumerate(messages):
        if message.get("role") == role:
            found.setdefault(normal(message.get("content")), []).append(position)
    return found


def _reply_position(
    messages: Sequence[Mapping[str, Any]], after: int, reply: str, claimed: set[int]
) -> int | None:
    wanted = normal(reply)
    for position in range(after + 1, len(messages)):
        message = messages[position]
        if (
            position not in claimed
            and message.get("role") == "assistant"
            and normal(message.get("content")) == wanted
        ):
            return position
    return None


def check_history(
    operations: Iterable[Operation], histories: Histories, listed: set[str]
) -> CheckedHistory:
    """`histories`: every session the operations name, read after healing; `listed`: the ids
    `GET /sessions` named then."""
    result = CheckedHistory()
    ops = list(operations)
    turns_by_session: dict[str, list[Operation]] = {}
    for op in ops:
        if op.kind == "turn" and op.session_id is not None and op.text is not None:
            turns_by_session.setdefault(op.session_id, []).append(op)
    for op in ops:
        if op.kind != "create":
            continue
        if op.outcome == "ok" and op.session_id is not None:
            gone = []
            if op.session_id not in listed:
                gone.append("not listed")
            if histories.get(op.session_id) is None:
                gone.append("its history does not read")
            if gone:
                result.anomalies.append(
                    Anomaly(
                        "lost",
                        op.session_id,
                        f"the acknowledged create of {op.session_id}: {' and '.join(gone)}",
                        op.index,
                    )
                )
        elif op.outcome == "unknown":
            result.unknown[op.index] = "cannot tell"
    for session_id, messages in histories.items():
        if messages is None:
            for op in turns_by_session.get(session_id, []):
                if op.outcome == "ok":
                    result.anomalies.append(
                        Anomaly(
                            "lost",
                            session_id,
                            f"turn {op.text!r}: the history does not read",
                            op.index,
                        )
                    )
            continue
        result.sessions_read += 1
        _check_session(session_id, messages, turns_by_session.get(session_id, []), result)
    return result


def _check_session(
    session_id: str,
    messages: Sequence[Mapping[str, Any]],
    turns: list[Operation],
    result: CheckedHistory,
) -> None:
    # An entry that is not an object holds no message of ours (R-HIST-1 judges its shape).
    messages = [message if isinstance(message, Mapping) else {} for message in messages]
    users = _positions(messages, "user")
    sent = {normal(op.text) for op in turns}
    for text, positions in users.items():
        if text not in sent:
            result.anomalies.append(
                Anomaly(
                    "phantom",
                    session_id,
                    f"a user message no IDE sent to this session, at position {positions[0]}: "
                    f"{messages[positions[0]].get('content')!r}",
                )
            )
    claimed: set[int] = set()
    # Where each acknowledged turn is stored: (its user message, its reply).
    stored: dict[int, tuple[int, int]] = {}
    for op in turns:
        positions = users.get(normal(op.text), [])
        if len(positions) > 1:
            result.anomalies.append(
                Anomaly(
                    "duplicated",
                    session_id,
                    f"turn {op.text!r} ({op.outcome}) stored {len(positions)} times, at positions "
                    f"{positions}",
                    op.index,
                )
            )
        if op.outcome == "unknown":
            result.unknown[op.index] = "happened" if positions else "did not happen"
            continue
        if op.outcome == "fail":
            if positions:
                result.refused_but_stored.append(op.index)
            continue
        if not positions:
            result.anomalies.append(
                Anomaly(
                    "lost",
                    session_id,
                    f"acknowledged turn {op.text!r}: its user message is missing",
                    op.index,
                )
            )
            continue
        reply_at = _reply_position(messages, positions[0], op.reply or "", claimed)
        if reply_at is None:
            result.anomalies.append(
                Anomaly(
                    "lost",
                    session_id,
                    f"acknowledged turn {op.text!r}: its reply {op.reply!r} is missing after its "
                    f"user message (position {positions[0]})",
                    op.index,
                )
            )
            continue
        claimed.add(reply_at)
        stored[op.index] = (positions[0], reply_at)
    _check_order(session_id, [op for op in turns if op.index in stored], stored, result)


def _check_order(
    session_id: str,
    acknowledged: list[Operation],
    stored: dict[int, tuple[int, int]],
    result: CheckedHistory,
) -> None:
    """An acknowledged turn that ended before another began is stored before it: its user
    message and its reply both come before the later turn's user message."""
    reported: set[int] = set()
    for later in acknowledged:
        for earlier in acknowledged:
            if earlier.end >= later.start or later.index in reported:
                continue
            if max(stored[earlier.index]) > stored[later.index][0]:
                reported.add(later.index)
                result.anomalies.append(
                    Anomaly(
                        "out_of_order",
                        session_id,
                        f"turn {later.text!r} (acknowledged at {later.end:.2f}s) is stored at "
                        f"position {stored[later.index][0]}, before turn {earlier.text!r} "
                        f"(acknowledged at {earlier.end:.2f}s, before it was sent) at "
                        f"positions {list(stored[earlier.index])}",
                        later.index,
                        earlier.index,
                    )
                )

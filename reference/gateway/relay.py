"""Runtime SSE events -> WebSocket frames, as pure functions over data (no I/O)."""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from contract.frames import ErrorFrame, FrameError, frame_json, validate_server_frame
from contract.sse import DONE, ERROR, MESSAGE, SSEEvent

STREAM_CUT = "runtime stream ended before the turn finished"


@dataclass(frozen=True)
class Step:
    """What one SSE event means for the socket: a frame to send, if any; whether the turn ends."""

    frame: str | None
    final: bool = False


def ends_turn(frame: str) -> bool:
    """Whether the IDE reads this frame as the end of its turn (W-TURN-1)."""
    data = json.loads(frame)
    kind = data.get("type")
    return (kind == "assistant_message" and data.get("is_final") is True) or kind in (
        "tool_call",
        "error",
    )


def error_frame(content: str) -> str:
    return frame_json(ErrorFrame(content=content))


def _event_data(event: SSEEvent) -> Any:
    try:
        return event.json()
    except ValueError:
        return None


def translate(event: SSEEvent) -> Step:
    """One runtime event as a gateway -> IDE step.

    A `message` whose data is not a valid frame becomes an error frame but does not end the turn:
    the runtime may still finish it properly. Unknown event names are skipped, for compatibility
    with runtimes that add their own.
    """
    if event.event == MESSAGE:
        try:
            return Step(frame_json(validate_server_frame(_event_data(event))))
        except FrameError as exc:
            return Step(error_frame(f"runtime sent an invalid frame: {exc}"))
    if event.event == DONE:
        return Step(None, final=True)
    if event.event == ERROR:
        data = _event_data(event)
        message = data.get("error") if isinstance(data, dict) else None
        return Step(error_frame(message if isinstance(message, str) else "runtime error"), True)
    return Step(None)


def relay(events: Iterable[SSEEvent]) -> tuple[list[str], bool]:
    """Frames for a batch of events and whether the turn ended; events after the end are dropped."""
    frames: list[str] = []
    for event in events:
        step = translate(event)
        if step.frame is not None:
            frames.append(step.frame)
        if step.final:
            return frames, True
    return frames, False

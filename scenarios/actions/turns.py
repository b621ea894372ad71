"""Waiting for what a turn brings (a reply, a tool call, an error), and saying at once when it can
no longer come rather than waiting out the step's time."""

import asyncio
import time
from collections.abc import Callable
from typing import Any, Literal

from scenarios.actions.context import Run, StepFailed
from scenarios.ide_protocol import TurnEnd
from scenarios.model import Args

# How often a wait on the IDE looks again: frames arrive on the IDE's reader task.
POLL_SECONDS = 0.02
TurnWanted = Literal["reply", "tool call", "error"]
AWAITED: dict[TurnWanted, str] = {
    "reply": "a final reply",
    "tool call": "a tool call",
    "error": "an error",
}


def _ended(end: TurnEnd) -> str:
    if end.kind == "reply":
        return f"with the final reply {end.text!r}"
    return f"in an error: {end.text}"


async def _turn_event(run: Run, wanted: TurnWanted, bound: float) -> dict[str, Any] | TurnEnd:
    """The next tool call (when one is wanted) or turn end; fails at once when what is wanted can
    no longer come, rather than waiting out the step's time."""
    ide = run.ide
    began = time.monotonic()
    while True:
        if wanted == "tool call":
            call = ide.take_tool_call()
            if call is not None:
                return call
        end = ide.take_turn_end()
        if end is not None:
            return end
        expected = f"expected {AWAITED[wanted]} within {bound:g} s"
        waiting = ide.awaiting_approval
        if waiting:
            raise StepFailed(
                f"{expected}; after {time.monotonic() - began:.1f} s the agent is waiting for "
                f"the plan to approve, edit or reject {', '.join(waiting)}, so nothing else can "
                "come first"
            )
        if ide.open_turns == 0:
            raise StepFailed(
                f"{expected}; no turn is open: the plan sent nothing since the last turn ended"
            )
        if ide.connected_session_id is None:
            # An IDE that does not reopen a dropped socket leaves its turn open for ever: nothing
            # can reach it. One that does reopen has ended the turn in an error, read above.
            raise StepFailed(
                f"{expected}; after {time.monotonic() - began:.1f} s no WebSocket is open to "
                f"bring it: the IDE's socket to {ide.current_session_id} is gone and was not "
                "reopened"
            )
        await asyncio.sleep(POLL_SECONDS)


async def _expect_turn(run: Run, wanted: TurnWanted, bound: float) -> dict[str, Any] | TurnEnd:
    began = time.monotonic()
    event = await _turn_event(run, wanted, bound)
    if isinstance(event, TurnEnd) and not (
        (wanted == "reply" and event.kind == "reply")
        or (wanted == "error" and event.kind == "error")
    ):
        after = time.monotonic() - began
        without = " and no tool call" if wanted == "tool call" else ""
        raise StepFailed(
            f"expected {AWAITED[wanted]} within {bound:g} s; after {after:.1f} s the turn ended "
            f"{_ended(event)}{without}"
        )
    return event


async def turn_end(run: Run, wanted: Literal["reply", "error"], bound: float) -> TurnEnd:
    event = await _expect_turn(run, wanted, bound)
    assert isinstance(event, TurnEnd)
    return event


async def tool_call(run: Run, bound: float) -> dict[str, Any]:
    call = await _expect_turn(run, "tool call", bound)
    assert isinstance(call, dict)
    return call


def timed_out_waiting(wanted: TurnWanted) -> Callable[[Run, Args, float, float], str]:
    """What a step awaiting `wanted` says when its time ran out: what came instead."""

    def explain(run: Run, args: Args, bound: float, began: float) -> str:
        frames = run.ide.frames_since(began)
        if not frames:
            came = "no frame came from the gateway"
        else:
            last = frames[-1].text
            shown = last if len(last) <= 200 else last[:200] + "…"
            came = f"{len(frames)} frame(s) came, none ending the turn; the last: {shown}"
        return f"waited {bound:g} s for {AWAITED[wanted]}; {came}"

    return explain

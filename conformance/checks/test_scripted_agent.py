"""W-TOOL, W-HITL, W-AGENT: tool calls, approvals and agent switches, driven by the script agent's
directives (profile `scripted`: the target runs the deterministic agent of the contract)."""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from conformance.contract.frames import AgentSwitchedFrame, ServerFrame, ToolCallFrame
from conformance.failures import Expect
from conformance.probes import Socket

from .support import create_session, history_messages, json_object, socket_turn, user_message

pytestmark = pytest.mark.asyncio

Opener = Callable[[str], AbstractAsyncContextManager[Socket]]


async def _send(socket: Socket, frame: dict[str, Any], expect: Expect) -> list[ServerFrame]:
    return await socket_turn(socket, frame, expect)


def _tool_call(frames: list[ServerFrame], expect: Expect, approval: bool) -> ToolCallFrame:
    last = frames[-1]
    expect.that(
        isinstance(last, ToolCallFrame) and last.requires_approval is approval,
        f"a tool_call with requires_approval {str(approval).lower()}",
        frames,
    )
    assert isinstance(last, ToolCallFrame)
    return last


def _final_text(frames: list[ServerFrame]) -> str:
    last = frames[-1]
    return last.text if last.type == "assistant_message" else ""


@pytest.mark.req("W-TOOL-1")
async def test_tool_result_continues_the_turn_and_is_stored(
    gateway: httpx.AsyncClient, open_ws: Opener, run_id: str
) -> None:
    """W-TOOL-1: "A tool_result answering a tool_call continues the turn; it is appended to history
    as role tool."

    The call comes from section 7's directive: "/tool <name> <json args> -> a tool_call
    (requires_approval: false); its tool_result continues the turn with a final assistant chunk that
    quotes the result". The history holds one tool message, with that call's tool_call_id.
    """
    expect = Expect("W-TOOL-1")
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        call = _tool_call(
            await _send(socket, user_message('/tool read_file {"path": "a.txt"}'), expect),
            expect,
            False,
        )
        expect.that(call.tool_name == "read_file", "the tool named in the directive", call)
        result = {
            "type": "tool_result",
            "call_id": call.call_id,
            "tool_name": "read_file",
            "result": f"contents {run_id}",
        }
        frames = await _send(socket, result, expect)
        expect.that(
            frames[-1].type == "assistant_message" and run_id in _final_text(frames),
            "the turn to continue with a final reply quoting the result",
            frames,
        )
    messages = await history_messages(gateway, session_id)
    tools = [m for m in messages if m.get("role") == "tool"]
    expect.that(
        len(tools) == 1 and tools[0].get("tool_call_id") == call.call_id,
        f"one tool message with tool_call_id {call.call_id}",
        tools,
    )


@pytest.mark.req("W-HITL-1")
@pytest.mark.parametrize("decision", ["approve", "edit", "reject"])
async def test_each_decision_continues_an_approval_turn(
    gateway: httpx.AsyncClient, open_ws: Opener, decision: str
) -> None:
    """W-HITL-1: "A tool_call with requires_approval: true waits for hitl_decision; approve, edit
    (with modified_arguments) and reject each continue the turn".

    The call comes from section 7's "/approve <name> <json args> -> a tool_call with
    requires_approval: true". How each decision continues is the reference script agent's
    (docs/decisions.md, Script agent): approve and edit bring the same call_id again without
    approval (edit with the modified arguments) and its tool_result a final reply; reject, a final
    reply.
    """
    expect = Expect("W-HITL-1")
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        call = _tool_call(
            await _send(socket, user_message('/approve write_file {"path": "a.txt"}'), expect),
            expect,
            True,
        )
        frame: dict[str, Any] = {
            "type": "hitl_decision",
            "call_id": call.call_id,
            "decision": decision,
        }
        if decision == "edit":
            frame["modified_arguments"] = {"path": "edited.txt"}
        if decision == "reject":
            frame["feedback"] = "not now"
        frames = await _send(socket, frame, expect)
        expect.that(frames[-1].type != "error", f"the turn to continue after {decision}", frames)
        if decision == "reject":
            expect.that(
                frames[-1].type == "assistant_message", "a final reply after reject", frames
            )
            return
        again = _tool_call(frames, expect, False)
        expect.that(again.call_id == call.call_id, "the approved call, same call_id", again)
        if decision == "edit":
            expect.that(
                again.arguments == {"path": "edited.txt"}, "the edited arguments", again.arguments
            )
        done = await _send(
            socket, {"type": "tool_result", "call_id": call.call_id, "result": "written"}, expect
        )
        expect.that(done[-1].type == "assistant_message", "a final reply after the tool", done)


@pytest.mark.req("W-HITL-1")
async def test_a_decision_for_an_unknown_call_gets_an_error_frame(
    gateway: httpx.AsyncClient, open_ws: Opener
) -> None:
    """W-HITL-1: "... a decision for an unknown call_id gets an error frame." A plain message on the
    same socket must then be answered without an error."""
    expect = Expect("W-HITL-1")
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        frames = await _send(
            socket,
            {"type": "hitl_decision", "call_id": "call_unknown", "decision": "approve"},
            expect,
        )
        expect.that(frames[-1].type == "error", "an error frame for an unknown call_id", frames)
        after = await _send(socket, user_message("still fine"), expect)
        expect.that(after[-1].type != "error", "the socket to stay usable", after)


@pytest.mark.req("W-AGENT-1")
async def test_switch_agent_is_announced_and_reported(
    gateway: httpx.AsyncClient, open_ws: Opener
) -> None:
    """W-AGENT-1: "switch_agent to a known agent type yields agent_switched and GET
    /agents/{id}/current then reports it; an unknown type gets an error frame."

    Known, by section 7: "Agents known to the reference: orchestrator, coder, architect, debug,
    ask"; the switch is to coder. One agent_switched frame is asked; "reports it" is the current
    agent the answer names.
    """
    expect = Expect("W-AGENT-1")
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        frames = await _send(
            socket, {"type": "switch_agent", "agent_type": "coder", "content": "write it"}, expect
        )
        switched = [f for f in frames if isinstance(f, AgentSwitchedFrame)]
        expect.that(
            len(switched) == 1 and switched[0].switched_to == "coder",
            "one agent_switched frame to coder",
            frames,
        )
        current = json_object(
            await gateway.get(f"/agents/{session_id}/current"), expect, "current agent"
        )
        expect.that(current.get("current_agent") == "coder", "current_agent coder", current)
        unknown = await _send(
            socket, {"type": "switch_agent", "agent_type": "no_such_agent", "content": "x"}, expect
        )
        expect.that(unknown[-1].type == "error", "an error frame for an unknown agent", unknown)

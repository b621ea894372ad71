"""W-TOOL, W-HITL, W-AGENT: tool calls, approvals and agent switches, driven by the script agent's
directives (profile `scripted`: the target runs the deterministic agent of the contract)."""

from typing import Any

import httpx
import pytest

from conformance.failures import Expect
from conformance.plugin import SocketOpener
from conformance.probes import NoFrame, Socket, SocketClosed, TurnDidNotEnd
from contract.frames import (
    AgentSwitchedFrame,
    AssistantMessageFrame,
    FrameError,
    ServerFrame,
    ToolCallFrame,
)
from contract.routes import CURRENT_AGENT

from .support import create_session, history_messages, json_object, turn, user_message

pytestmark = pytest.mark.asyncio


async def _tool_call(
    socket: Socket, directive: str, expect: Expect, approval: bool
) -> ToolCallFrame:
    """The tool_call a directive of the script agent asks for, with `approval` as asked."""
    frames = await turn(socket, user_message(directive), expect)
    last = frames[-1]
    expect.that(
        isinstance(last, ToolCallFrame) and last.requires_approval is approval,
        f"a tool_call with requires_approval {str(approval).lower()}",
        frames,
    )
    assert isinstance(last, ToolCallFrame)
    return last


def _reply_text(frames: list[ServerFrame]) -> str:
    """The turn's reply: its assistant chunks joined, wherever the quote stands among them."""
    return "".join(f.text for f in frames if isinstance(f, AssistantMessageFrame))


@pytest.mark.req("W-TOOL-1")
async def test_tool_result_continues_the_turn_and_is_stored(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, run_id: str
) -> None:
    """W-TOOL-1: "A tool_result answering a tool_call continues the turn; it is appended to history
    as role tool."

    The call comes from section 7's directive: "/tool <name> <json args> -> a tool_call
    (requires_approval: false); its tool_result continues the turn with a final assistant chunk that
    quotes the result". The quote is looked for in the reply the turn's chunks make together: where
    a chunk ends is the agent's. The history holds one tool message, with that call's tool_call_id.
    """
    expect = Expect("W-TOOL-1")
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        call = await _tool_call(socket, '/tool read_file {"path": "a.txt"}', expect, False)
        expect.that(call.tool_name == "read_file", "the tool named in the directive", call)
        result = {
            "type": "tool_result",
            "call_id": call.call_id,
            "tool_name": "read_file",
            "result": f"contents {run_id}",
        }
        frames = await turn(socket, result, expect)
        expect.that(
            frames[-1].type == "assistant_message" and run_id in _reply_text(frames),
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


# What the IDE sends after its decision, every field written out as it writes them (protocol.md
# section 5: "the IDE sends a result object {success, content, lines_read, bytes_written,
# backup_path, error}").
_TOOL_RAN = {
    "success": True,
    "content": None,
    "lines_read": None,
    "bytes_written": 3,
    "backup_path": None,
    "error": None,
}
_REFUSAL = (
    "[Operation rejected by user] User rejected operation: write_file\n"
    "Details: operation=write_file"
)
# How long the socket must stay quiet after the turn went on, for a late error frame or a repeated
# tool_call to show: both come, if at all, as the answer to the frames just sent.
_QUIET = 1.5


def _ide_frames(call_id: str, decision: str) -> list[dict[str, Any]]:
    """The decision and the tool_result after it, as the IDE sends them (C-TOOL-1)."""
    frame: dict[str, Any] = {
        "type": "hitl_decision",
        "call_id": call_id,
        "decision": decision,
        "modified_arguments": {"path": "edited.txt"} if decision == "edit" else None,
        "feedback": "not now" if decision == "reject" else None,
    }
    rejected = decision == "reject"
    result = {
        "type": "tool_result",
        "call_id": call_id,
        "tool_name": "write_file",
        "result": None if rejected else _TOOL_RAN,
        "error": _REFUSAL if rejected else None,
    }
    return [frame, result]


def _judge_after_decision(frames: list[ServerFrame], call_id: str, expect: Expect) -> None:
    for frame in frames:
        expect.that(
            not (isinstance(frame, ToolCallFrame) and frame.call_id == call_id),
            f"no second tool_call for the decided call {call_id}",
            frame,
        )
        expect.that(
            frame.type != "error", "no error frame for the decision or its tool_result", frame
        )


async def _after_decision(
    socket: Socket, call_id: str, decision: str, expect: Expect
) -> list[ServerFrame]:
    """The frames after the IDE's decision and tool_result: up to a final assistant_message, then
    whatever comes before the socket has been quiet for a moment."""
    for frame in _ide_frames(call_id, decision):
        await socket.send_json(frame)
    what = f"the turn to go on after {decision} and the IDE's tool_result"
    try:
        frames = await socket.turn()
    except TurnDidNotEnd as exc:
        expect.fail(f"{what}, with a final assistant_message", str(exc))
    except FrameError as exc:
        expect.fail(f"{what}, in valid frames", f"an invalid frame: {exc}")
    except SocketClosed as closed:
        expect.fail(f"{what}, on a socket that stays open", str(closed))
    _judge_after_decision(frames, call_id, expect)
    expect.that(
        isinstance(frames[-1], AssistantMessageFrame),
        f"{what}, with a final assistant_message",
        frames,
    )
    later: list[ServerFrame] = []
    try:
        while True:
            later.append(await socket.recv_frame(timeout=_QUIET))
    except NoFrame:
        pass
    except FrameError as exc:
        expect.fail(f"{what}, in valid frames", f"an invalid frame: {exc}")
    except SocketClosed as closed:
        expect.fail(f"{what}, on a socket that stays open", str(closed))
    _judge_after_decision(later, call_id, expect)
    return frames + later


@pytest.mark.req("W-HITL-1")
@pytest.mark.parametrize("decision", ["approve", "edit", "reject"])
async def test_each_decision_continues_an_approval_turn(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, decision: str
) -> None:
    """W-HITL-1: "A tool_call with requires_approval: true waits for hitl_decision. After approve or
    edit (with modified_arguments) the IDE runs the tool itself and sends a tool_result for that
    call_id; after reject it sends a tool_result with an error. The turn continues after each
    decision with a final assistant_message (at once, or once that tool_result comes); no second
    tool_call comes for that call_id; neither the decision nor that tool_result gets an error
    frame, and the socket stays usable."

    The call comes from section 7's "/approve <name> <json args> -> a tool_call with
    requires_approval: true". Both frames are sent back to back, as the IDE sends them; the frames
    that follow are read up to a final assistant_message and then until the socket has been quiet
    for 1.5 s; a plain message must then get a turn that does not end in an error
    (docs/decisions.md, "The approval exchange").
    """
    expect = Expect("W-HITL-1")
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        call = await _tool_call(socket, '/approve write_file {"path": "a.txt"}', expect, True)
        await _after_decision(socket, call.call_id, decision, expect)
        usable = f"the socket to stay usable after {decision}"
        await turn(socket, user_message("still there"), expect, answered=usable)


@pytest.mark.req("W-HITL-1")
async def test_a_decision_for_an_unknown_call_gets_an_error_frame(
    gateway: httpx.AsyncClient, open_ws: SocketOpener
) -> None:
    """W-HITL-1: "A decision for an unknown call_id gets an error frame." A plain message on the
    same socket must then be answered without an error."""
    expect = Expect("W-HITL-1")
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        frames = await turn(
            socket,
            {"type": "hitl_decision", "call_id": "call_unknown", "decision": "approve"},
            expect,
        )
        expect.that(frames[-1].type == "error", "an error frame for an unknown call_id", frames)
        await turn(socket, user_message("still fine"), expect, answered="the socket to stay usable")


@pytest.mark.req("W-AGENT-1")
async def test_switch_agent_is_announced_and_reported(
    gateway: httpx.AsyncClient, open_ws: SocketOpener
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
        frames = await turn(
            socket, {"type": "switch_agent", "agent_type": "coder", "content": "write it"}, expect
        )
        switched = [f for f in frames if isinstance(f, AgentSwitchedFrame)]
        expect.that(
            len(switched) == 1 and switched[0].switched_to == "coder",
            "one agent_switched frame to coder",
            frames,
        )
        current = json_object(
            await gateway.get(CURRENT_AGENT.path(session_id=session_id)), expect, "current agent"
        )
        expect.that(current.get("current_agent") == "coder", "current_agent coder", current)
        unknown = await turn(
            socket, {"type": "switch_agent", "agent_type": "no_such_agent", "content": "x"}, expect
        )
        expect.that(unknown[-1].type == "error", "an error frame for an unknown agent", unknown)

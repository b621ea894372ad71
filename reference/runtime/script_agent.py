"""The deterministic script agent: one incoming frame in, one decided turn out. No I/O here.

Decisions where PROTOCOL.md is silent (see docs/decisions.md):
- approve and edit send nothing more: the IDE runs the tool itself after its decision (W-HITL-1)
  and its `tool_result` continues the turn; edit stores the modified arguments on the call;
- reject records a `tool` message `rejected: <feedback>` and ends with a final assistant message;
  the IDE's `tool_result` for the rejected call that follows is accepted with no frame at all;
- any other `tool_result` or decision for a call that is not waiting for one is an error event.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from contract.bodies import Message
from contract.frames import (
    AgentSwitchedFrame,
    AssistantMessageFrame,
    ClientFrame,
    HitlDecisionFrame,
    ServerFrame,
    SwitchAgentFrame,
    ToolCallFrame,
    ToolResultFrame,
    UserMessageFrame,
)
from reference.runtime.agents import AGENTS

AWAITING_APPROVAL = "awaiting_approval"
AWAITING_RESULT = "awaiting_result"
DONE = "done"


@dataclass(frozen=True)
class PendingCall:
    call_id: str
    tool_name: str
    arguments: dict[str, Any]
    requires_approval: bool
    state: str
    decision: str | None = None
    feedback: str | None = None


@dataclass(frozen=True)
class AgentSwitch:
    from_agent: str
    to_agent: str
    reason: str | None


@dataclass(frozen=True)
class Basis:
    """What a turn was decided on: the session's agent, and the state of the call the frame
    named (None: no such call). The store writes the turn only if both still hold under the
    session's lock; else another turn of the session, on this process or another, came first
    and this one is decided again on what that one left (docs/scale-out.md)."""

    agent: str
    call_id: str | None = None
    call_state: str | None = None


@dataclass
class Turn:
    """Everything one turn changes, applied to the store in one transaction before streaming."""

    messages: list[Message] = field(default_factory=list)
    frames: list[ServerFrame] = field(default_factory=list)
    calls: list[PendingCall] = field(default_factory=list)
    switch: AgentSwitch | None = None
    error: str | None = None
    basis: Basis | None = None


def words_as_chunks(text: str) -> list[AssistantMessageFrame]:
    words = text.split()
    if not words:
        return [AssistantMessageFrame(content="", is_final=True)]
    last = len(words) - 1
    return [
        AssistantMessageFrame(content=word if i == last else word + " ", is_final=i == last)
        for i, word in enumerate(words)
    ]


def _reply(turn: Turn, text: str) -> Turn:
    chunks = words_as_chunks(text)
    turn.frames.extend(chunks)
    turn.messages.append(Message(role="assistant", content="".join(chunk.text for chunk in chunks)))
    return turn


def _parse_directive_call(rest: str) -> tuple[str, dict[str, Any]]:
    name, _, raw_args = rest.strip().partition(" ")
    if not name:
        raise ValueError("a tool name is required")
    try:
        arguments = json.loads(raw_args) if raw_args.strip() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"tool arguments are not JSON: {exc}") from None
    if not isinstance(arguments, dict):
        raise ValueError("tool arguments must be a JSON object")
    return name, arguments


def _tool_call(
    turn: Turn, call_id: str, name: str, arguments: dict[str, Any], approval: bool
) -> Turn:
    turn.frames.append(
        ToolCallFrame(
            call_id=call_id, tool_name=name, arguments=arguments, requires_approval=approval
        )
    )
    return turn


def _request_tool(turn: Turn, rest: str, approval: bool, new_call_id: Callable[[], str]) -> Turn:
    try:
        name, arguments = _parse_directive_call(rest)
    except ValueError as exc:
        turn.error = str(exc)
        return turn
    call_id = new_call_id()
    turn.messages.append(
        Message(
            role="assistant",
            content=None,
            tool_calls=[
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
            ],
        )
    )
    turn.calls.append(
        PendingCall(
            call_id=call_id,
            tool_name=name,
            arguments=arguments,
            requires_approval=approval,
            state=AWAITING_APPROVAL if approval else AWAITING_RESULT,
        )
    )
    return _tool_call(turn, call_id, name, arguments, approval)


def _switch(turn: Turn, current: str, target: str, reason: str | None) -> Turn:
    if target not in AGENTS:
        turn.error = f"Unknown agent type: {target}"
        return turn
    turn.switch = AgentSwitch(from_agent=current, to_agent=target, reason=reason)
    turn.frames.append(
        AgentSwitchedFrame(
            content=f"Switched from {current} to {target}",
            from_agent=current,
            to_agent=target,
            reason=reason,
        )
    )
    return turn


def _user_message(
    frame: UserMessageFrame, current_agent: str, new_call_id: Callable[[], str]
) -> Turn:
    turn = Turn(messages=[Message(role=frame.role, content=frame.content)])
    directive, _, rest = frame.content.partition(" ")
    if directive == "/tool":
        return _request_tool(turn, rest, approval=False, new_call_id=new_call_id)
    if directive == "/approve":
        return _request_tool(turn, rest, approval=True, new_call_id=new_call_id)
    if directive == "/switch":
        _switch(turn, current_agent, rest.strip(), reason="requested in chat")
        return turn if turn.error else _reply(turn, f"Now talking to {rest.strip()}.")
    if directive == "/fail":
        turn.error = rest.strip() or "failed on request"
        return turn
    return _reply(turn, frame.content)


def _tool_result(frame: ToolResultFrame, call: PendingCall | None) -> Turn:
    turn = Turn()
    if call is not None and call.state == DONE and call.decision == "reject":
        # The IDE reports the rejection it decided as a failed tool run: already recorded.
        return turn
    if call is None or call.state != AWAITING_RESULT:
        turn.error = f"No tool call is waiting for a result with call_id {frame.call_id}"
        return turn
    if frame.error is not None:
        content, outcome = frame.error, "failed"
    else:
        content = frame.result if isinstance(frame.result, str) else json.dumps(frame.result)
        outcome = "returned"
    turn.messages.append(
        Message(role="tool", content=content, tool_call_id=call.call_id, name=call.tool_name)
    )
    turn.calls.append(replace(call, state=DONE))
    return _reply(turn, f"Tool {call.tool_name} {outcome}: {content}")


def _decision(frame: HitlDecisionFrame, call: PendingCall | None) -> Turn:
    turn = Turn()
    if call is None or call.state != AWAITING_APPROVAL:
        turn.error = f"No tool call is waiting for approval with call_id {frame.call_id}"
        return turn
    decided = replace(call, decision=frame.decision, feedback=frame.feedback)
    if frame.decision == "reject":
        text = f"rejected: {frame.feedback}" if frame.feedback else "rejected"
        turn.messages.append(
            Message(role="tool", content=text, tool_call_id=call.call_id, name=call.tool_name)
        )
        turn.calls.append(replace(decided, state=DONE))
        return _reply(turn, f"Tool call {call.tool_name} was rejected.")
    arguments = call.arguments
    if frame.decision == "edit":
        if frame.modified_arguments is None:
            turn.error = "An edit decision needs modified_arguments"
            return turn
        arguments = frame.modified_arguments
    # The IDE runs the approved tool and sends its tool_result: a second tool_call would make it
    # run the tool twice.
    turn.calls.append(replace(decided, arguments=arguments, state=AWAITING_RESULT))
    return turn


def _switch_agent(frame: SwitchAgentFrame, current_agent: str) -> Turn:
    turn = Turn()
    if frame.content:
        turn.messages.append(Message(role="user", content=frame.content))
    _switch(turn, current_agent, frame.agent_type, frame.reason)
    if turn.error:
        return turn
    return _reply(turn, frame.content or f"Now talking to {frame.agent_type}.")


def respond(
    frame: ClientFrame,
    current_agent: str,
    call: PendingCall | None,
    new_call_id: Callable[[], str],
) -> Turn:
    """Decide one turn. `call` is the stored call the frame's call_id names, if any."""
    match frame:
        case UserMessageFrame():
            turn = _user_message(frame, current_agent, new_call_id)
        case ToolResultFrame():
            turn = _tool_result(frame, call)
        case HitlDecisionFrame():
            turn = _decision(frame, call)
        case SwitchAgentFrame():
            turn = _switch_agent(frame, current_agent)
    call_id = getattr(frame, "call_id", None)
    turn.basis = Basis(current_agent, call_id, None if call is None else call.state)
    return turn

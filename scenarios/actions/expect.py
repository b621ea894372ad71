"""Expectations on what the IDE shows and holds, and on what the gateway answers; each fails
with what it found, in the plan's words. (Log lines: scenarios.actions.logs.)"""

import re
from typing import Any

from contract.routes import HISTORY, LIST_SESSIONS
from scenarios.actions.context import Run, StepFailed
from scenarios.actions.turns import tool_call, turn_end
from scenarios.ide_protocol import ChatEntry
from scenarios.model import (
    ChatExpect,
    ChatItemExpect,
    CreatedExpect,
    ErrorExpect,
    HistoryExpect,
    MessageExpect,
    ReplyExpect,
    SessionArg,
    SessionExpect,
    StateExpect,
    StoredExpect,
    ToolCallExpect,
)


async def expect_state(run: Run, args: StateExpect, bound: float) -> None:
    expected = args.for_client(run.client)
    if run.ide.state != expected:
        raise StepFailed(
            f"the session manager is {run.ide.state!r}, expected {expected!r} "
            f"(the {run.client} client)"
        )


async def expect_session(run: Run, args: SessionExpect, bound: float) -> str:
    current = run.ide.current_session_id
    if current is None:
        raise StepFailed("the IDE has no current session")
    if args.equals is not None and current != args.equals:
        raise StepFailed(f"the current session is {current}, expected {args.equals}")
    if args.matches is not None and not re.search(args.matches, current):
        raise StepFailed(f"the current session {current} does not match /{args.matches}/")
    return current


async def expect_reply(run: Run, args: ReplyExpect, bound: float) -> str:
    text = (await turn_end(run, "reply", bound)).text
    if args.equals is None and args.contains is None and args.matches is None and not text:
        raise StepFailed("the final reply came with empty text; expected a reply with text")
    if args.equals is not None and text != args.equals:
        raise StepFailed(f"the reply was {text!r}, expected {args.equals!r}")
    if args.contains is not None and args.contains not in text:
        raise StepFailed(f"the reply {text!r} does not contain {args.contains!r}")
    if args.matches is not None and not re.search(args.matches, text):
        raise StepFailed(f"the reply {text!r} does not match /{args.matches}/")
    return text


async def expect_tool_call(run: Run, args: ToolCallExpect, bound: float) -> str:
    call = await tool_call(run, bound)
    if args.tool is not None and call.get("tool_name") != args.tool:
        raise StepFailed(f"a tool call for {call.get('tool_name')!r}, expected {args.tool!r}")
    if args.requires_approval is not None and (
        call.get("requires_approval") != args.requires_approval
    ):
        raise StepFailed(f"requires_approval is {call.get('requires_approval')}")
    return str(call.get("call_id"))


async def expect_error(run: Run, args: ErrorExpect, bound: float) -> str:
    text = (await turn_end(run, "error", bound)).text
    if args.contains is not None and args.contains not in text:
        raise StepFailed(f"the error {text!r} does not contain {args.contains!r}")
    return text


async def _history(run: Run, session_id: str) -> dict[str, Any]:
    response = await run.http.get(HISTORY.path(session_id=session_id))
    if response.status_code != 200:
        raise StepFailed(
            f"history of {session_id} answered {response.status_code}: {response.text}"
        )
    body: dict[str, Any] = response.json()
    return body


def _matches(actual: dict[str, Any], expected: MessageExpect) -> bool:
    content = actual.get("content") or ""
    return (
        actual.get("role") == expected.role
        and (expected.content is None or content == expected.content)
        and (expected.contains is None or expected.contains in content)
    )


async def expect_history(run: Run, args: HistoryExpect, bound: float) -> None:
    session_id = args.session or run.ide.current_session_id
    if session_id is None:
        raise StepFailed("no session to read the history of: the IDE has none")
    messages: list[dict[str, Any]] = (await _history(run, session_id))["messages"]
    if args.count is not None and len(messages) != args.count:
        raise StepFailed(
            f"history of {session_id} has {len(messages)} messages, expected {args.count}"
        )
    if args.contains is not None and not any(
        args.contains in (m.get("content") or "") for m in messages
    ):
        raise StepFailed(f"no message of {session_id} contains {args.contains!r}")
    # In order, with anything between: a turn may hold tool calls and results besides the reply.
    position = 0
    for number, expected in enumerate(args.messages or [], start=1):
        found = next(
            (i for i in range(position, len(messages)) if _matches(messages[i], expected)), None
        )
        if found is None:
            after = f" after message {position}" if position else ""
            shown = [{key: m.get(key) for key in ("role", "content")} for m in messages[:8]]
            holds = f"its {len(messages)} messages: {shown}" if messages else "it holds none"
            raise StepFailed(
                f"history of {session_id} has no message {expected.model_dump(exclude_none=True)!r}"
                f"{after} (expected message {number} of {len(args.messages or [])}); {holds}"
            )
        position = found + 1


async def expect_connected(run: Run, args: SessionArg, bound: float) -> None:
    if run.ide.connected_session_id != args.session:
        raise StepFailed(
            f"the WebSocket is connected to {run.ide.connected_session_id}, expected {args.session}"
        )


async def expect_closed(run: Run, args: SessionArg, bound: float) -> None:
    if args.session not in run.ide.closed_session_ids:
        raise StepFailed(
            f"the WebSocket to {args.session} was not closed "
            f"(closed: {run.ide.closed_session_ids or 'none'})"
        )


async def expect_listed(run: Run, args: SessionArg, bound: float) -> None:
    response = await run.http.get(LIST_SESSIONS.path())
    if response.status_code != 200:
        # A failed list is not an empty one: say what the gateway answered.
        raise StepFailed(f"the session list answered {response.status_code}: {response.text[:200]}")
    ids = [info.get("session_id") for info in response.json().get("sessions", [])]
    if args.session not in ids:
        raise StepFailed(f"{args.session} is not in the session list ({len(ids)} listed)")


async def expect_stored(run: Run, args: StoredExpect, bound: float) -> None:
    ide = run.ide
    if args.session is not None and ide.stored_session_id != args.session:
        raise StepFailed(
            f"the IDE's preferences hold session {ide.stored_session_id}, expected {args.session}"
        )
    if args.agent is not None and ide.stored_agent_type != args.agent:
        raise StepFailed(
            f"the IDE's preferences hold agent {ide.stored_agent_type}, expected {args.agent}"
        )


async def expect_created(run: Run, args: CreatedExpect, bound: float) -> None:
    body = run.ide.last_create_body
    if body is None:
        raise StepFailed(
            "the IDE got no successful POST /sessions answer (no create yet, or each one fell "
            "back to a local id)"
        )
    wanted: dict[str, object] = {
        "session_id": args.session_id,
        "current_agent": args.current_agent,
        "message_count": args.message_count,
    }
    for name, value in wanted.items():
        if value is None:
            continue
        if name not in body:
            raise StepFailed(f"the create answer has no {name} (it has {sorted(body)})")
        if body[name] != value:
            raise StepFailed(f"the create answer's {name} is {body[name]!r}, expected {value!r}")
    for name in args.present:
        if body.get(name) is None:
            has = "it is null" if name in body else f"it has {sorted(body)}"
            raise StepFailed(f"the create answer has no {name} ({has})")


def chat_as_read(items: list[ChatEntry]) -> list[ChatEntry]:
    """Consecutive assistant bubbles as one reply, their texts joined."""
    joined: list[ChatEntry] = []
    for item in items:
        if item.kind == "assistant" and joined and joined[-1].kind == "assistant":
            joined[-1] = ChatEntry("assistant", joined[-1].text + item.text)
        else:
            joined.append(item)
    return joined


def _chat_matches(item: ChatEntry, expected: ChatItemExpect) -> bool:
    return (
        item.kind == expected.kind
        and (expected.text is None or item.text == expected.text)
        and (expected.contains is None or expected.contains in item.text)
    )


async def expect_chat(run: Run, args: ChatExpect, bound: float) -> None:
    items = chat_as_read(run.ide.chat_items)
    position = 0
    for number, expected in enumerate(args.items, start=1):
        found = next(
            (i for i in range(position, len(items)) if _chat_matches(items[i], expected)), None
        )
        if found is None:
            after = f" after item {position}" if position else ""
            shown = [f"{item.kind}: {item.text[:60]!r}" for item in items[:10]]
            holds = (
                f"it shows {len(items)} item(s), consecutive assistant bubbles read as one: {shown}"
                if items
                else "it is empty"
            )
            raise StepFailed(
                f"the chat has no item {expected.model_dump(exclude_none=True)!r}{after} "
                f"(expected item {number} of {len(args.items)}); {holds}"
            )
        position = found + 1

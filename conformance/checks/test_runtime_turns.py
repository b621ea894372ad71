"""R-HIST, R-AGENTS, R-STREAM: histories, agents, and the runtime's agent stream."""

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from conformance.failures import Expect
from conformance.run_state import state
from conformance.target_runner import TargetRunner
from conformance.targets import Capability
from contract import sse
from contract.frames import FrameError, validate_server_frame
from contract.requirements import Level, catalogue
from contract.routes import CURRENT_AGENT, HISTORY, LIST_AGENTS

from .support import (
    ODD_IDS,
    create_session,
    history_messages,
    json_object,
    message_data,
    stream_events,
    stream_turn,
    user_message,
)

pytestmark = pytest.mark.asyncio
UNKNOWN = "session_0000000000000000"


@pytest.mark.req("R-HIST-1")
async def test_history_of_a_known_session_is_consistent(
    sessions_api: httpx.AsyncClient,
) -> None:
    """R-HIST-1: "GET /sessions/{id}/history for a known id -> 200 {"session_id", "messages":
    [Message], "message_count": int, "last_activity": timestamp or null, "current_agent": str or
    null, "agent_history": list} with message_count == len(messages)." For a new session; its
    session_id is the id asked about (docs/decisions.md)."""
    expect = Expect("R-HIST-1")
    session_id = await create_session(sessions_api)
    response = await sessions_api.get(HISTORY.path(session_id=session_id))
    expect.that(response.status_code == 200, "200", f"{response.status_code} {response.text}")
    body = json_object(response, expect, "history")
    expect.that(body.get("session_id") == session_id, f"session_id {session_id}", body)
    messages = body.get("messages")
    expect.that(isinstance(messages, list), "a messages list", body)
    assert isinstance(messages, list)
    expect.that(body.get("message_count") == len(messages), "message_count == len(messages)", body)
    expect.that(isinstance(body.get("agent_history"), list), "an agent_history list", body)
    expect.that(
        "last_activity" in body and "current_agent" in body, "last_activity, current_agent", body
    )


@pytest.mark.req("R-HIST-2")
async def test_unknown_and_odd_ids_answer_404_or_422(sessions_api: httpx.AsyncClient) -> None:
    """R-HIST-2: "For an unknown id -> 404 with a JSON object carrying a string error (or detail).
    Odd ids (unicode, 1,000 characters, ..%2F.., quotes) give 404 or 422, never 5xx." The odd ids
    are asked of /sessions/{id}/history and /agents/{id}/current."""
    expect = Expect("R-HIST-2")
    response = await sessions_api.get(HISTORY.path(session_id=UNKNOWN))
    expect.that(
        response.status_code == 404,
        "404 for an unknown id",
        f"{response.status_code} {response.text}",
    )
    body = json_object(response, expect, "the 404")
    expect.that(
        isinstance(body.get("error"), str) or isinstance(body.get("detail"), str),
        "a string error or detail",
        body,
    )
    for odd in ODD_IDS:
        # `%` left as it is: `..%2F..` goes out as written, an encoded slash in one segment.
        for path in (
            HISTORY.raw_path(session_id=quote(odd, safe="%")),
            CURRENT_AGENT.raw_path(session_id=quote(odd, safe="%")),
        ):
            answer = await sessions_api.get(path)
            expect.that(
                answer.status_code in (404, 422),
                f"404 or 422 for {path[:60]}",
                f"{answer.status_code} {answer.text}",
            )


def _tool_call(events: list[sse.SSEEvent]) -> dict[str, Any] | None:
    calls = (data for data in message_data(events) if data.get("type") == "tool_call")
    return next((call for call in calls if call.get("call_id")), None)


async def _tool_message(
    runtime: httpx.AsyncClient,
    session_id: str,
    profiles: frozenset[str],
    run_id: str,
    partial: Callable[[str], None],
) -> str | None:
    """Put a tool message into the history, the way the target allows; its call id, or None.

    Under `scripted` the `/tool` directive asks for a tool_call, answered by a tool_result; a
    directive that brings none fails W-TOOL-1 (the profile's requirement), never this one.
    Otherwise a tool_result is offered without a tool_call: the contract does not require a
    runtime to take one, so a refusal leaves the tool fields unchecked, and says so.
    """
    if "scripted" in profiles:
        events = await stream_turn(
            runtime, session_id, user_message('/tool list_files {"dir": "."}')
        )
        call = _tool_call(events)
        if call is None:
            state().found(
                "W-TOOL-1",
                "W-TOOL-1 failed: expected a tool_call for the /tool directive of the scripted "
                f"agent, received the events {[e.data for e in events]}",
            )
            partial("the tool message's fields were not checked: the /tool directive gave no call")
            return None
        call_id = str(call["call_id"])
    else:
        call_id = f"call_{run_id}_history"
    message = {"type": "tool_result", "call_id": call_id, "tool_name": "list_files", "result": "a"}
    response, events = await stream_events(runtime, session_id, message)
    accepted = response.status_code == 200 and bool(events) and events[-1].event == "done"
    if not accepted and "scripted" not in profiles:
        partial(
            "the tool message's fields (tool_call_id) were not checked: the target did not take a "
            "tool_result without a tool_call, and does not claim the scripted profile"
        )
        return None
    return call_id


@pytest.mark.req("R-HIST-3")
async def test_history_keeps_order_and_fields_also_across_a_restart(
    runtime: httpx.AsyncClient,
    profiles: frozenset[str],
    sessionlab_target: TargetRunner,
    run_id: str,
    partial: Callable[[str], None],
) -> None:
    """R-HIST-3: "Messages come back in the order they were appended; nothing acknowledged is lost,
    field by field (tool_call_id, name, tool_calls included), also across a runtime restart"."""
    expect = Expect("R-HIST-3")
    session_id = await create_session(runtime)
    texts = [f"order {index} {run_id}" for index in range(6)]
    for text in texts:
        await stream_turn(runtime, session_id, user_message(text))
    call_id = await _tool_message(runtime, session_id, profiles, run_id, partial)
    before = await history_messages(runtime, session_id)
    users = [m.get("content") for m in before if m.get("role") == "user"]
    expect.that(users[: len(texts)] == texts, "user messages in the order sent", users)
    if call_id is not None:
        tools = [m for m in before if m.get("role") == "tool"]
        expect.that(
            [m.get("tool_call_id") for m in tools] == [call_id],
            f"one tool message with tool_call_id {call_id}",
            tools,
        )
    if not sessionlab_target.supports("runtime", Capability.STOP):
        partial(
            "not checked across a runtime restart: the target offers no control of its runtime "
            "(use a process or container target)"
        )
        return
    await sessionlab_target.restart_service("runtime")
    after = await history_messages(runtime, session_id)
    expect.that(
        after == before,
        "the same history, field by field, after a restart",
        _first_change(before, after),
    )


def _first_change(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    if len(before) != len(after):
        return f"{len(after)} messages instead of {len(before)}: {after}"
    for index, (was, now) in enumerate(zip(before, after, strict=True)):
        if was != now:
            fields = sorted(k for k in {*was, *now} if was.get(k) != now.get(k))
            return f"message {index} differs in {', '.join(fields)}: {was} became {now}"
    return "the same"


@pytest.mark.req("R-AGENTS-1")
async def test_agents_are_listed_with_the_orchestrator(sessions_api: httpx.AsyncClient) -> None:
    """R-AGENTS-1: "GET /agents -> 200 list of {"type", "name", "description", "allowed_tools":
    [str], "has_file_restrictions": bool}, including type orchestrator." The type, name and
    description are strings (docs/decisions.md)."""
    expect = Expect("R-AGENTS-1")
    response = await sessions_api.get(LIST_AGENTS.path())
    expect.that(response.status_code == 200, "200", f"{response.status_code} {response.text}")
    try:
        agents = response.json()
    except (ValueError, UnicodeDecodeError):
        agents = response.text
    expect.that(isinstance(agents, list), "a JSON list", agents)
    for agent in agents:
        ok = (
            isinstance(agent, dict)
            and all(isinstance(agent.get(key), str) for key in ("type", "name", "description"))
            and isinstance(agent.get("allowed_tools"), list)
            and isinstance(agent.get("has_file_restrictions"), bool)
        )
        expect.that(
            ok,
            "each agent with type, name, description, allowed_tools, has_file_restrictions",
            agent,
        )
    expect.that(
        any(a.get("type") == "orchestrator" for a in agents), "the orchestrator listed", agents
    )


@pytest.mark.req("R-AGENTS-2")
async def test_current_agent_answers_for_a_new_session(sessions_api: httpx.AsyncClient) -> None:
    """R-AGENTS-2: "GET /agents/{id}/current -> 200 {"session_id", "current_agent", "agent_history":
    list, "switch_count": int} for every known session, including one just made by POST /sessions
    (current_agent orchestrator ...); unknown id -> 404." Asked before any message; its session_id
    is the id asked about (docs/decisions.md)."""
    expect = Expect("R-AGENTS-2")
    session_id = await create_session(sessions_api)
    response = await sessions_api.get(CURRENT_AGENT.path(session_id=session_id))
    expect.that(
        response.status_code == 200,
        "200 for a session with no message yet",
        f"{response.status_code} {response.text}",
    )
    body = json_object(response, expect, "current agent")
    expect.that(body.get("current_agent") == "orchestrator", "current_agent orchestrator", body)
    expect.that(body.get("session_id") == session_id, f"session_id {session_id}", body)
    expect.that(isinstance(body.get("switch_count"), int), "an int switch_count", body)
    expect.that(isinstance(body.get("agent_history"), list), "an agent_history list", body)
    unknown = await sessions_api.get(CURRENT_AGENT.path(session_id=UNKNOWN))
    expect.that(unknown.status_code == 404, "404 for an unknown id", unknown.status_code)


@pytest.mark.req("R-STREAM-1")
async def test_stream_is_event_stream_ending_in_done_or_error(
    runtime: httpx.AsyncClient, run_id: str
) -> None:
    """R-STREAM-1: "POST /agent/message/stream with {"session_id": str, "message": {"type": ...}}
    answers text/event-stream: zero or more event: message (data = one frame of section 5), then
    event: done (data {"status": "completed"}) or event: error (data {"type": "error", "error": str,
    "is_final": true})." A plain user_message to a new session."""
    expect = Expect("R-STREAM-1")
    session_id = await create_session(runtime)
    response, events = await stream_events(runtime, session_id, user_message(f"stream {run_id}"))
    expect.that(response.status_code == 200, "200", f"{response.status_code} {response.text}")
    kind = response.headers.get("content-type", "")
    expect.that(kind.startswith("text/event-stream"), "content type text/event-stream", kind)
    expect.that(bool(events), "at least the closing event", response.text)
    *body, last = events
    for event in body:
        expect.that(event.event == "message", "only message events before the last", event)
        try:
            validate_server_frame(event.json())
        except (FrameError, ValueError) as exc:
            expect.fail("each message's data a valid frame", f"{event.data}: {exc}")
    expect.that(last.event in ("done", "error"), "a closing done or error event", last)
    try:
        data = last.json()
    except ValueError:
        expect.fail(f"JSON data in the closing {last.event} event", last.data)
    if last.event == "done":
        expect.that(
            isinstance(data, dict) and data.get("status") == "completed",
            'done data {"status": "completed"}',
            data,
        )
    else:
        expect.that(
            data.get("type") == "error"
            and isinstance(data.get("error"), str)
            and data.get("is_final") is True,
            "error data {type: error, error: str, is_final: true}",
            data,
        )


@pytest.mark.req("R-STREAM-2")
async def test_a_turn_is_appended_to_the_history(
    runtime: httpx.AsyncClient,
    profiles: frozenset[str],
    run_id: str,
    partial: Callable[[str], None],
) -> None:
    """R-STREAM-2: "A user_message is appended to history as {"role": "user", "content": ...}
    before the stream ends; the agent's text is appended as role assistant; a tool_result is
    appended as role tool with tool_call_id"."""
    expect = Expect("R-STREAM-2")
    session_id = await create_session(runtime)
    text = f"append {run_id}"
    await stream_turn(runtime, session_id, user_message(text))
    messages = await history_messages(runtime, session_id)
    # Where each message stands is R-HIST-3's: here only that both were appended.
    expect.that(
        any(m.get("role") == "user" and m.get("content") == text for m in messages),
        f"the user message {text!r} as role user",
        messages,
    )
    expect.that(
        any(m.get("role") == "assistant" for m in messages),
        "the reply as role assistant",
        messages,
    )
    if "scripted" not in profiles:
        return
    events = await stream_turn(runtime, session_id, user_message('/tool read_file {"path": "x"}'))
    call = _tool_call(events)
    if call is None:
        state().found(
            "W-TOOL-1",
            "W-TOOL-1 failed: expected a tool_call for the /tool directive of the scripted agent, "
            f"received the events {[e.data for e in events]}",
        )
        partial("the tool_result's storage was not checked: the /tool directive gave no call")
        return
    await stream_turn(
        runtime, session_id, {"type": "tool_result", "call_id": call["call_id"], "result": "x"}
    )
    stored = await history_messages(runtime, session_id)
    expect.that(
        any(m.get("role") == "tool" and m.get("tool_call_id") == call["call_id"] for m in stored),
        "the tool_result as role tool with its tool_call_id",
        stored,
    )


@pytest.mark.req("R-STREAM-3")
async def test_a_message_for_an_unknown_session_per_profile(
    runtime: httpx.AsyncClient, profiles: frozenset[str], run_id: str
) -> None:
    """R-STREAM-3 (MAY; in strict a MUST NOT): "A message for an unknown session id creates that
    session (the described system does this). In profile strict this is a MUST NOT: the stream
    answers 404 or a single error event." Whether a session was made is read from its history."""
    level, profile = catalogue()["R-STREAM-3"].effective(profiles)
    expect = Expect("R-STREAM-3")
    unknown = f"session_{run_id}{'f' * 8}"
    response, events = await stream_events(runtime, unknown, user_message("who is there"))
    history = await runtime.get(HISTORY.path(session_id=unknown))
    if level is Level.MUST:
        refused = response.status_code == 404 or (
            response.status_code == 200 and [e.event for e in events] == ["error"]
        )
        expect.that(
            refused,
            f"404 or a single error event (profile {profile})",
            f"{response.status_code} {[e.event for e in events]}",
        )
        expect.that(
            history.status_code == 404, "no session made for the unknown id", history.status_code
        )
    else:
        expect.that(
            history.status_code == 200, "the session created by the message", history.status_code
        )

"""The reference gateway's WebSocket `/ws/{session_id}` against a real runtime (and a stand-in).

Every receive has a deadline; a turn is read until its last frame (final assistant chunk,
tool_call or error).
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import AnyHttpUrl, SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError

from contract.frames import parse_client_frame
from contract.sse import encode_event
from reference.gateway.app import create_app
from reference.gateway.relay import STREAM_CUT
from reference.gateway.websocket import BINARY_FRAME, stream_body
from reference.server import ThreadedServer
from reference.settings import GatewaySettings
from tests.fixtures.stack import INTERNAL_KEY, ReferenceStack, deadline

Frame = dict[str, Any]


def user(content: str) -> str:
    return json.dumps({"type": "user_message", "content": content, "role": "user"})


def echo(*words: str) -> list[Frame]:
    """The script agent's reply to plain text: one chunk per word, the last one final."""
    last = len(words) - 1
    return [
        {
            "type": "assistant_message",
            "content": word if i == last else word + " ",
            "is_final": i == last,
        }
        for i, word in enumerate(words)
    ]


async def recv_frame(ws: ClientConnection, seconds: float = 5) -> Frame:
    async with asyncio.timeout(deadline(seconds)):
        message = await ws.recv()
    frame: Frame = json.loads(message)
    return frame


def ends_turn(frame: Frame) -> bool:
    return frame["type"] in ("tool_call", "error") or bool(frame.get("is_final"))


async def turn(ws: ClientConnection, message: str | bytes) -> list[Frame]:
    """Send one message and read the frames of its turn, up to and including the last one."""
    await ws.send(message)
    frames = [await recv_frame(ws)]
    while not ends_turn(frames[-1]):
        frames.append(await recv_frame(ws))
    return frames


async def assert_nothing_more(ws: ClientConnection, seconds: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(deadline(seconds)):
            await ws.recv()


@pytest.fixture
async def gateway(reference_stack: ReferenceStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=reference_stack.gateway_url, timeout=deadline(10), trust_env=False
    ) as client:
        yield client


async def new_session(gateway: httpx.AsyncClient) -> str:
    response = await gateway.post("/sessions")
    assert response.status_code == 200
    session_id: str = response.json()["session_id"]
    return session_id


@pytest.fixture
async def session_id(gateway: httpx.AsyncClient) -> str:
    return await new_session(gateway)


@pytest.fixture
async def ws(reference_stack: ReferenceStack, session_id: str) -> AsyncIterator[ClientConnection]:
    async with connect(f"{reference_stack.ws_url}/ws/{session_id}", open_timeout=deadline(5)) as c:
        yield c


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param({"type": "tool_result", "call_id": "c", "result": None}, id="explicit-null"),
        pytest.param({"type": "user_message", "content": "x", "role": "user"}, id="no-extras"),
        pytest.param(
            {"type": "user_message", "content": "x", "role": "user", "client": "ide"},
            id="extra-field",
        ),
    ],
)
def test_stream_body_forwards_the_frame_as_the_client_sent_it(frame: Frame) -> None:
    assert stream_body("s1", parse_client_frame(json.dumps(frame))) == {
        "session_id": "s1",
        "message": frame,
    }


# Turns (W-CONN-1, W-TURN-1/2)


async def test_user_message_is_echoed_word_by_word_ending_final(ws: ClientConnection) -> None:
    assert await turn(ws, user("hello big world")) == echo("hello", "big", "world")


async def test_turn_is_in_the_history_seen_through_the_gateway(
    ws: ClientConnection, gateway: httpx.AsyncClient, session_id: str
) -> None:
    await turn(ws, user("hello world"))
    history = await gateway.get(f"/sessions/{session_id}/history")
    assert history.status_code == 200
    assert history.json()["messages"] == [
        {"role": "user", "content": "hello world"},
        {"role": "assistant", "content": "hello world"},
    ]
    assert history.json()["message_count"] == 2


async def test_fail_directive_gives_an_error_frame(ws: ClientConnection) -> None:
    assert await turn(ws, user("/fail on purpose")) == [{"type": "error", "content": "on purpose"}]
    assert await turn(ws, user("still here")) == echo("still", "here")


# Bad frames (W-BAD-1/2)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        pytest.param(
            "not json", "Invalid JSON: Expecting value: line 1 column 1 (char 0)", id="text"
        ),
        pytest.param("[1, 2]", "Invalid message: a frame must be a JSON object", id="array"),
        pytest.param(
            '{"type": "user_message", "content": "\\udc00", "role": "user"}',
            "Invalid JSON: a \\u escape names a lone surrogate, which is not a character",
            id="lone-surrogate",
        ),
        pytest.param(
            '"user_message"', "Invalid message: a frame must be a JSON object", id="string"
        ),
        pytest.param('{"content": "hi"}', "Invalid message: missing message type", id="no-type"),
        pytest.param('{"type": 7}', "Invalid message: type must be a string", id="int-type"),
        pytest.param('{"type": "foo"}', "Unknown message type: foo", id="unknown-type"),
        pytest.param(
            '{"type": "user_message", "role": "user"}',
            "Invalid user_message frame: content: Field required",
            id="missing-content",
        ),
        pytest.param(
            '{"type": "user_message", "content": 5, "role": "user"}',
            "Invalid user_message frame: content: Input should be a valid string",
            id="wrong-type",
        ),
        pytest.param(
            '{"type": "user_message", "content": "hi", "role": "robot"}',
            "Invalid user_message frame: role: Input should be 'user', 'assistant', 'system' or "
            "'tool'",
            id="bad-role",
        ),
        pytest.param(
            '{"type": "tool_result"}',
            "Invalid tool_result frame: call_id: Field required",
            id="tool-result-no-call-id",
        ),
        pytest.param(
            '{"type": "hitl_decision", "call_id": "c", "decision": "maybe"}',
            "Invalid hitl_decision frame: decision: Input should be 'approve', 'edit' or 'reject'",
            id="bad-decision",
        ),
        pytest.param(b'{"type": "user_message"}', BINARY_FRAME, id="binary"),
    ],
)
async def test_bad_frame_gets_an_error_frame_and_the_socket_keeps_working(
    ws: ClientConnection, message: str | bytes, error: str
) -> None:
    assert await turn(ws, message) == [{"type": "error", "content": error}]
    assert await turn(ws, user("next one")) == echo("next", "one")


# Tools, approvals, agents (W-TOOL-1, W-HITL-1, W-AGENT-1; profile scripted)


async def request_tool(ws: ClientConnection, directive: str, approval: bool) -> str:
    frames = await turn(ws, user(f'{directive} read_file {{"path": "a.txt"}}'))
    assert len(frames) == 1
    call_id: str = frames[0]["call_id"]
    assert frames == [
        {
            "type": "tool_call",
            "call_id": call_id,
            "tool_name": "read_file",
            "arguments": {"path": "a.txt"},
            "requires_approval": approval,
        }
    ]
    return call_id


async def test_tool_result_continues_the_turn_and_is_stored_as_tool_message(
    ws: ClientConnection, gateway: httpx.AsyncClient, session_id: str
) -> None:
    call_id = await request_tool(ws, "/tool", approval=False)
    result = {"type": "tool_result", "call_id": call_id, "tool_name": "read_file", "result": "xyz"}
    assert await turn(ws, json.dumps(result)) == echo("Tool", "read_file", "returned:", "xyz")
    history = (await gateway.get(f"/sessions/{session_id}/history")).json()
    assert history["messages"][2] == {
        "role": "tool",
        "content": "xyz",
        "name": "read_file",
        "tool_call_id": call_id,
    }


async def test_tool_result_for_an_unknown_call_gets_an_error_frame(ws: ClientConnection) -> None:
    frames = await turn(ws, json.dumps({"type": "tool_result", "call_id": "nope", "result": 1}))
    assert frames == [
        {"type": "error", "content": "No tool call is waiting for a result with call_id nope"}
    ]


@pytest.mark.parametrize(
    ("decision", "arguments"),
    [
        pytest.param({"decision": "approve"}, {"path": "a.txt"}, id="approve"),
        pytest.param(
            {"decision": "edit", "modified_arguments": {"path": "b.txt"}},
            {"path": "b.txt"},
            id="edit",
        ),
    ],
)
async def test_after_approve_or_edit_the_ides_tool_result_continues_the_turn(
    ws: ClientConnection, decision: Frame, arguments: Frame
) -> None:
    """W-HITL-1 as the IDE speaks it: its decision, then at once the result of the tool it ran;
    no second tool_call comes for the call."""
    call_id = await request_tool(ws, "/approve", approval=True)
    nulls = {"modified_arguments": None, "feedback": None}
    await ws.send(json.dumps({"type": "hitl_decision", "call_id": call_id, **nulls, **decision}))
    result = {
        "type": "tool_result",
        "call_id": call_id,
        "tool_name": "read_file",
        "result": {"success": True, "content": "ok"},
        "error": None,
    }
    frames = await turn(ws, json.dumps(result))
    assert frames == echo(
        "Tool", "read_file", "returned:", '{"success":', "true,", '"content":', '"ok"}'
    )
    await assert_nothing_more(ws)


async def test_reject_ends_the_turn_and_the_ides_refusal_gets_no_frame(
    ws: ClientConnection, gateway: httpx.AsyncClient, session_id: str
) -> None:
    call_id = await request_tool(ws, "/approve", approval=True)
    decision = {"type": "hitl_decision", "call_id": call_id, "decision": "reject", "feedback": "no"}
    frames = await turn(ws, json.dumps(decision))
    assert frames == echo("Tool", "call", "read_file", "was", "rejected.")
    refusal = "[Operation rejected by user] User rejected operation: read_file"
    await ws.send(json.dumps({"type": "tool_result", "call_id": call_id, "error": refusal}))
    await assert_nothing_more(ws)
    assert await turn(ws, user("still here")) == echo("still", "here")
    history = (await gateway.get(f"/sessions/{session_id}/history")).json()
    tools = [m for m in history["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tools] == ["rejected: no"]


async def test_decision_for_an_unknown_call_gets_an_error_frame(ws: ClientConnection) -> None:
    decision = {"type": "hitl_decision", "call_id": "nope", "decision": "approve"}
    assert await turn(ws, json.dumps(decision)) == [
        {"type": "error", "content": "No tool call is waiting for approval with call_id nope"}
    ]


async def test_switch_agent_is_announced_and_reported_by_current_agent(
    ws: ClientConnection, gateway: httpx.AsyncClient, session_id: str
) -> None:
    switch = {"type": "switch_agent", "agent_type": "coder", "content": "write code", "reason": "r"}
    frames = await turn(ws, json.dumps(switch))
    assert frames == [
        {
            "type": "agent_switched",
            "content": "Switched from orchestrator to coder",
            "from_agent": "orchestrator",
            "to_agent": "coder",
            "reason": "r",
        },
        *echo("write", "code"),
    ]
    current = await gateway.get(f"/agents/{session_id}/current")
    assert current.status_code == 200
    assert (current.json()["current_agent"], current.json()["switch_count"]) == ("coder", 1)


async def test_switch_to_an_unknown_agent_gets_an_error_frame(ws: ClientConnection) -> None:
    switch = {"type": "switch_agent", "agent_type": "wizard", "content": "x"}
    assert await turn(ws, json.dumps(switch)) == [
        {"type": "error", "content": "Unknown agent type: wizard"}
    ]


# Sessions and isolation (W-CONN-2 strict, W-ISO-1)


async def test_strict_gateway_closes_an_unknown_session_with_4404(
    reference_stack: ReferenceStack,
) -> None:
    async with connect(f"{reference_stack.ws_url}/ws/session_0000000000000000") as client:
        with pytest.raises(ConnectionClosedError) as closed:
            await recv_frame(client)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4404, "unknown session")


async def test_two_sessions_never_see_each_others_frames(
    reference_stack: ReferenceStack, gateway: httpx.AsyncClient
) -> None:
    first, second = await new_session(gateway), await new_session(gateway)
    async with (
        connect(f"{reference_stack.ws_url}/ws/{first}") as a,
        connect(f"{reference_stack.ws_url}/ws/{second}") as b,
    ):
        for _ in range(3):
            frames_a, frames_b = await asyncio.gather(
                turn(a, user("alpha one two")), turn(b, user("beta three four"))
            )
            assert frames_a == echo("alpha", "one", "two")
            assert frames_b == echo("beta", "three", "four")
        await assert_nothing_more(a)
        await assert_nothing_more(b)
    history = (await gateway.get(f"/sessions/{first}/history")).json()
    assert {message["content"] for message in history["messages"]} == {"alpha one two"}


async def test_connected_socket_is_logged_with_its_session_id(
    ws: ClientConnection, session_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sessionlab.gateway")
    async with connect(f"{ws_base(ws)}/ws/{session_id}") as second:
        # The reply proves the server got past accepting, and so past logging.
        await turn(second, user("hi"))
    assert f"WebSocket connected: {session_id}" in caplog.messages


def ws_base(ws: ClientConnection) -> str:
    host, port = ws.remote_address[:2]
    return f"ws://{host}:{port}"


# Runtime outages (W-DOWN-1)


async def test_runtime_down_gives_an_error_frame_and_the_same_socket_recovers(
    reference_stack: ReferenceStack, ws: ClientConnection
) -> None:
    assert await turn(ws, user("before")) == echo("before")
    reference_stack.runtime.stop()
    frames = await turn(ws, user("during"))
    assert len(frames) == 1
    assert frames[0]["type"] == "error"
    assert frames[0]["content"].startswith("runtime unavailable: ")
    reference_stack.runtime.start()
    assert await turn(ws, user("after")) == echo("after")


async def test_strict_gateway_accepts_sockets_while_the_runtime_is_down(
    reference_stack: ReferenceStack, session_id: str
) -> None:
    reference_stack.runtime.stop()
    async with connect(f"{reference_stack.ws_url}/ws/{session_id}") as client:
        frames = await turn(client, user("anyone?"))
        assert frames[0]["content"].startswith("runtime unavailable: ")
        reference_stack.runtime.start()
        assert await turn(client, user("back")) == echo("back")


@pytest.fixture
def lenient_gateway(runtime_server: ThreadedServer) -> Iterator[ThreadedServer]:
    settings = GatewaySettings(
        runtime_url=AnyHttpUrl(runtime_server.url),
        internal_key=SecretStr(INTERNAL_KEY),
        strict=False,
    )
    with ThreadedServer(create_app(settings)) as server:
        yield server


async def test_lenient_gateway_accepts_unknown_ids_and_reports_the_runtimes_refusal(
    lenient_gateway: ThreadedServer,
) -> None:
    url = lenient_gateway.url.replace("http://", "ws://", 1)
    async with connect(f"{url}/ws/session_0000000000000000") as client:
        assert await turn(client, user("hi")) == [
            {
                "type": "error",
                "content": "runtime answered 404: session not found: session_0000000000000000",
            }
        ]


# Runtime misbehaviour, with a stand-in runtime


def stand_in_runtime(pause: float) -> FastAPI:
    """A runtime whose answer is chosen by the user message's content."""
    app = FastAPI()
    frame = {"type": "assistant_message", "content": "part", "is_final": False}

    @app.get("/sessions/{session_id}/history")
    async def history(session_id: str) -> dict[str, object]:
        return {"session_id": session_id}

    @app.post("/agent/message/stream", response_model=None)
    async def stream(request: Request) -> StreamingResponse | PlainTextResponse | JSONResponse:
        content = (await request.json())["message"]["content"]
        if content == "status":
            return PlainTextResponse("overloaded", status_code=503)
        if content == "unauthorized":
            return JSONResponse({"detail": "unauthorized"}, status_code=401)

        async def events() -> AsyncIterator[bytes]:
            if content == "invalid":
                yield encode_event("message", {"type": "tool_call", "call_id": "c"})
                yield encode_event("done", {"status": "completed"})
            elif content == "cut":
                yield encode_event("message", frame)
            elif content == "slow":
                yield encode_event("message", frame)
                await asyncio.sleep(pause)
                yield encode_event("done", {"status": "completed"})

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


TURN_TIMEOUT = 0.5


@pytest.fixture
def stand_in_gateway() -> Iterator[str]:
    with ThreadedServer(stand_in_runtime(pause=deadline(3))) as runtime:
        settings = GatewaySettings(
            runtime_url=AnyHttpUrl(runtime.url),
            internal_key=SecretStr(INTERNAL_KEY),
            turn_timeout=TURN_TIMEOUT,
        )
        with ThreadedServer(create_app(settings)) as gateway:
            yield gateway.url.replace("http://", "ws://", 1)


@pytest.mark.parametrize(
    ("content", "frames"),
    [
        pytest.param(
            "invalid",
            [
                {
                    "type": "error",
                    "content": "runtime sent an invalid frame: Invalid tool_call frame: "
                    "tool_name: Field required; arguments: Field required; "
                    "requires_approval: Field required",
                }
            ],
            id="invalid-frame",
        ),
        pytest.param(
            "cut",
            [
                {"type": "assistant_message", "content": "part", "is_final": False},
                {"type": "error", "content": STREAM_CUT},
            ],
            id="stream-cut",
        ),
        pytest.param(
            "slow",
            [
                {"type": "assistant_message", "content": "part", "is_final": False},
                {"type": "error", "content": "turn timed out after 0.5 s"},
            ],
            id="turn-timeout",
        ),
        pytest.param(
            "status",
            [{"type": "error", "content": "runtime answered 503: overloaded"}],
            id="error-status",
        ),
        pytest.param(
            "unauthorized",
            [
                {
                    "type": "error",
                    "content": "runtime answered 401: runtime refused the gateway's credentials",
                }
            ],
            id="key-refused",
        ),
    ],
)
async def test_runtime_misbehaviour_ends_the_turn_with_an_error_frame(
    stand_in_gateway: str, content: str, frames: list[Frame]
) -> None:
    async with connect(f"{stand_in_gateway}/ws/s1") as client:
        received = await turn(client, user(content))
        # The invalid frame is reported, and the turn then ends with no final frame.
        if content == "invalid":
            await assert_nothing_more(client)
        assert received == frames


async def test_client_leaving_mid_turn_logs_no_error(
    stand_in_gateway: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    uvicorn_errors = logging.getLogger("uvicorn.error")
    uvicorn_errors.addHandler(caplog.handler)
    try:
        async with connect(f"{stand_in_gateway}/ws/s1") as client:
            await client.send(user("slow"))
            assert (await recv_frame(client))["content"] == "part"
        # Past the turn timeout, the gateway has tried to send on the closed socket.
        await asyncio.sleep(deadline(TURN_TIMEOUT * 2))
        async with connect(f"{stand_in_gateway}/ws/s2") as client:
            assert (await turn(client, user("status")))[0]["type"] == "error"
    finally:
        uvicorn_errors.removeHandler(caplog.handler)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "WebSocket disconnected: s1" in caplog.messages

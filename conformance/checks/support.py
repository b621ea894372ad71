"""What the checks share: creating sessions, reading bodies, talking SSE and WebSocket."""

import json
from typing import Any

import httpx

from conformance.contract import sse
from conformance.failures import Expect

ODD_IDS = (
    "session_0000000000000000",
    "сессия-😀",
    "x" * 1000,
    "..%2F..",
    "a'b\"c",
    "%00",
    " ",
)


def json_object(response: httpx.Response, expect: Expect, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    expect.that(
        isinstance(body, dict),
        f"{what} with a JSON object body",
        f"{response.status_code} {response.text}",
    )
    assert isinstance(body, dict)
    return body


async def create_session(client: httpx.AsyncClient, expect: Expect) -> str:
    response = await client.post("/sessions")
    expect.that(
        response.status_code in (200, 201),
        "POST /sessions to answer 200 or 201",
        f"{response.status_code} {response.text}",
    )
    body = json_object(response, expect, "POST /sessions")
    session_id = body.get("session_id")
    expect.that(isinstance(session_id, str), "a string session_id", body)
    assert isinstance(session_id, str)
    return session_id


def user_message(text: str) -> dict[str, Any]:
    return {"type": "user_message", "content": text, "role": "user"}


async def stream_events(
    runtime: httpx.AsyncClient, session_id: str, message: dict[str, Any]
) -> tuple[httpx.Response, list[sse.SSEEvent]]:
    response = await runtime.post(
        "/agent/message/stream", json={"session_id": session_id, "message": message}
    )
    return response, sse.decode_events(response.text)


async def history_messages(
    client: httpx.AsyncClient, session_id: str, expect: Expect
) -> list[dict[str, Any]]:
    response = await client.get(f"/sessions/{session_id}/history")
    expect.that(
        response.status_code == 200, "history 200", f"{response.status_code} {response.text}"
    )
    body = json_object(response, expect, "history")
    messages = body.get("messages")
    expect.that(isinstance(messages, list), "a messages list", body)
    assert isinstance(messages, list)
    return messages


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)

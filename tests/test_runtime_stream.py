"""The runtime's agent stream (R-STREAM) and durability across restarts (R-CREATE-4, R-HIST-3)."""

from pathlib import Path

import httpx
import pytest

from contract import sse
from reference.runtime.app import create_app
from reference.server import ThreadedServer
from tests.fixtures.stack import INTERNAL_KEY, runtime_settings


def stream(client: httpx.Client, session_id: str, message: dict[str, object]) -> list[sse.SSEEvent]:
    response = client.post(
        "/agent/message/stream", json={"session_id": session_id, "message": message}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return sse.decode_events(response.text)


def user(text: str) -> dict[str, object]:
    return {"type": "user_message", "content": text, "role": "user"}


def new_session(client: httpx.Client) -> str:
    return str(client.post("/sessions").json()["session_id"])


def messages(client: httpx.Client, session_id: str) -> list[dict[str, object]]:
    history = client.get(f"/sessions/{session_id}/history").json()
    assert history["message_count"] == len(history["messages"])
    return list(history["messages"])


def test_plain_text_streams_one_chunk_per_word_then_done(client: httpx.Client) -> None:
    session_id = new_session(client)
    events = stream(client, session_id, user("hello big world"))
    assert [(e.event, e.json()) for e in events] == [
        ("message", {"type": "assistant_message", "content": "hello ", "is_final": False}),
        ("message", {"type": "assistant_message", "content": "big ", "is_final": False}),
        ("message", {"type": "assistant_message", "content": "world", "is_final": True}),
        ("done", {"status": "completed"}),
    ]
    assert messages(client, session_id) == [
        {"role": "user", "content": "hello big world"},
        {"role": "assistant", "content": "hello big world"},
    ]


def test_fail_directive_ends_with_an_error_event(client: httpx.Client) -> None:
    session_id = new_session(client)
    events = stream(client, session_id, user("/fail out of coffee"))
    assert [(e.event, e.json()) for e in events] == [
        ("error", {"type": "error", "error": "out of coffee", "is_final": True}),
    ]
    assert messages(client, session_id) == [{"role": "user", "content": "/fail out of coffee"}]


def test_tool_result_continues_the_turn_and_is_stored_as_a_tool_message(
    client: httpx.Client,
) -> None:
    session_id = new_session(client)
    first = stream(client, session_id, user('/tool read_file {"path": "a.txt"}'))
    call = first[0].json()
    assert call["type"] == "tool_call"
    assert (call["tool_name"], call["arguments"], call["requires_approval"]) == (
        "read_file",
        {"path": "a.txt"},
        False,
    )
    assert first[-1].event == "done"
    result = {"type": "tool_result", "call_id": call["call_id"], "result": "print(1)"}
    second = stream(client, session_id, result)
    assert second[-2].json() == {
        "type": "assistant_message",
        "content": "print(1)",
        "is_final": True,
    }
    stored = messages(client, session_id)
    assert stored[2] == {
        "role": "tool",
        "content": "print(1)",
        "name": "read_file",
        "tool_call_id": call["call_id"],
    }
    assert stored[1]["tool_calls"][0]["id"] == call["call_id"]  # type: ignore[index]


def test_result_for_an_unknown_call_is_an_error_event(client: httpx.Client) -> None:
    session_id = new_session(client)
    events = stream(client, session_id, {"type": "tool_result", "call_id": "call_nope"})
    assert [e.event for e in events] == ["error"]


def test_stream_for_an_unknown_session_is_refused_in_strict_mode(client: httpx.Client) -> None:
    response = client.post(
        "/agent/message/stream",
        json={"session_id": "session_0123456789abcdef", "message": user("hi")},
    )
    assert response.status_code == 404
    assert client.get("/sessions").json()["total"] == 0


def test_tolerant_runtime_creates_the_session_a_message_names(tmp_path: Path) -> None:
    app = create_app(runtime_settings(tmp_path, strict=False))
    with (
        ThreadedServer(app) as server,
        httpx.Client(base_url=server.url, headers={"X-Internal-Auth": INTERNAL_KEY}) as client,
    ):
        events = stream(client, "session_1700000000000", user("hi"))
        assert events[-1].event == "done"
        assert client.get("/sessions/session_1700000000000/history").status_code == 200


def test_sessions_and_histories_survive_a_restart_field_by_field(
    runtime_server: ThreadedServer, client: httpx.Client
) -> None:
    sessions = [new_session(client) for _ in range(3)]
    for index, session_id in enumerate(sessions):
        stream(client, session_id, user(f"message {index}"))
    call = stream(client, sessions[0], user("/tool list_files {}"))[0].json()
    stream(client, sessions[0], {"type": "tool_result", "call_id": call["call_id"], "result": [1]})
    before = {session_id: messages(client, session_id) for session_id in sessions}
    listed_before = client.get("/sessions").json()

    runtime_server.restart()

    with httpx.Client(
        base_url=runtime_server.url, headers={"X-Internal-Auth": INTERNAL_KEY}
    ) as again:
        after = {session_id: messages(again, session_id) for session_id in sessions}
        assert again.get("/sessions").json() == listed_before
    assert after == before
    assert after[sessions[0]][4]["tool_call_id"] == call["call_id"]


def test_a_waiting_tool_call_can_be_answered_after_a_restart(
    runtime_server: ThreadedServer, client: httpx.Client
) -> None:
    session_id = new_session(client)
    call = stream(client, session_id, user('/approve write_file {"path": "x"}'))[0].json()
    runtime_server.restart()
    with httpx.Client(
        base_url=runtime_server.url, headers={"X-Internal-Auth": INTERNAL_KEY}
    ) as again:
        decision = {"type": "hitl_decision", "call_id": call["call_id"], "decision": "approve"}
        assert [e.event for e in stream(again, session_id, decision)] == ["done"]
        runtime_server.restart()
        result = {"type": "tool_result", "call_id": call["call_id"], "result": "written"}
        events = stream(again, session_id, result)
    # The approval outlived both restarts: the IDE's tool_result after it continues the turn.
    assert events[-2].json()["is_final"] is True
    assert events[-1].event == "done"


def test_append_order_is_kept_over_many_turns(client: httpx.Client) -> None:
    session_id = new_session(client)
    for index in range(40):
        stream(client, session_id, user(f"m{index}"))
    stored = messages(client, session_id)
    assert [m["content"] for m in stored] == [f"m{i}" for i in range(40) for _ in range(2)]


@pytest.mark.parametrize("session_id", ["a\x00b", "s" * 65], ids=["nul", "too-long"])
def test_tolerant_runtime_refuses_an_id_no_store_can_hold(tmp_path: Path, session_id: str) -> None:
    app = create_app(runtime_settings(tmp_path, strict=False))
    with (
        ThreadedServer(app) as server,
        httpx.Client(base_url=server.url, headers={"X-Internal-Auth": INTERNAL_KEY}) as client,
    ):
        response = client.post(
            "/agent/message/stream", json={"session_id": session_id, "message": user("hi")}
        )
    assert response.status_code == 422
    assert response.json()["error"] == "a session id of at most 64 characters, without NUL"

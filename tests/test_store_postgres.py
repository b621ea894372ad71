"""The runtime's store on a real PostgreSQL server: the URL is the only change from SQLite."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from contract import sse
from reference.runtime.app import create_app
from reference.server import ThreadedServer
from tests.fixtures.postgres import URL_VARIABLE, server_url
from tests.fixtures.stack import INTERNAL_KEY, deadline, runtime_settings

HEADERS = {"X-Internal-Auth": INTERNAL_KEY}


def runtime_on(url: str, tmp_path: Path) -> ThreadedServer:
    return ThreadedServer(create_app(runtime_settings(tmp_path, database_url=url))).start()


def say(client: httpx.Client, session_id: str, text: str) -> list[sse.SSEEvent]:
    message = {"type": "user_message", "content": text, "role": "user"}
    response = client.post(
        "/agent/message/stream", json={"session_id": session_id, "message": message}
    )
    assert response.status_code == 200, response.text
    return sse.decode_events(response.text)


def test_sessions_and_turns_persist_across_a_restart(postgres_url: str, tmp_path: Path) -> None:
    server = runtime_on(postgres_url, tmp_path)
    try:
        with httpx.Client(base_url=server.url, headers=HEADERS, timeout=deadline(10)) as client:
            session_id = client.post("/sessions").json()["session_id"]
            call = say(client, session_id, '/tool read_file {"path": "a"}')[0].json()
            result = {"type": "tool_result", "call_id": call["call_id"], "result": {"ok": 1}}
            client.post("/agent/message/stream", json={"session_id": session_id, "message": result})
            before = client.get(f"/sessions/{session_id}/history").json()
        server.restart()
        with httpx.Client(base_url=server.url, headers=HEADERS, timeout=deadline(10)) as client:
            after = client.get(f"/sessions/{session_id}/history").json()
            listed = client.get("/sessions").json()
    finally:
        server.stop()
    assert after == before
    assert after["messages"][2]["tool_call_id"] == call["call_id"]
    assert [s["session_id"] for s in listed["sessions"]] == [session_id]


async def test_two_runtimes_on_one_database_append_without_losing_or_reordering(
    postgres_url: str, tmp_path: Path
) -> None:
    first = runtime_on(postgres_url, tmp_path / "a")
    second = runtime_on(postgres_url, tmp_path / "b")
    try:
        async with (
            httpx.AsyncClient(base_url=first.url, headers=HEADERS, timeout=deadline(30)) as one,
            httpx.AsyncClient(base_url=second.url, headers=HEADERS, timeout=deadline(30)) as two,
        ):
            session_id = (await one.post("/sessions")).json()["session_id"]

            async def turn(client: httpx.AsyncClient, text: str) -> None:
                message = {"type": "user_message", "content": text, "role": "user"}
                response = await client.post(
                    "/agent/message/stream", json={"session_id": session_id, "message": message}
                )
                assert response.status_code == 200, response.text

            texts = [f"m{i}" for i in range(60)]
            async with asyncio.timeout(deadline(60)):
                await asyncio.gather(
                    *(turn(one if i % 2 else two, text) for i, text in enumerate(texts))
                )
            history = (await two.get(f"/sessions/{session_id}/history")).json()
    finally:
        first.stop()
        second.stop()
    contents = [m["content"] for m in history["messages"]]
    assert history["message_count"] == 120
    # Each turn's user message is directly followed by its reply: no turn interleaved another.
    assert contents[0::2] == contents[1::2]
    assert sorted(contents[0::2]) == sorted(texts)


def test_reference_on_postgres_conforms(tmp_path: Path) -> None:
    server = server_url()
    report_path = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sessionlab.cli",
            "verify",
            "--target-factory",
            "tests.fixtures.postgres:reference_on_postgres",
            "--json",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=deadline(300),
        check=False,
        env={**os.environ, URL_VARIABLE: server},
    )
    report = json.loads(report_path.read_text())
    failing = {
        r["id"]: r["message"]
        for r in report["requirements"]
        if r["status"] != "passed" and r["status"] != "skipped"
    }
    assert failing == {}
    assert result.returncode == 0, result.stdout[-3000:]


# PostgreSQL's text type refuses NUL, which a JSON string may carry; the escape the store uses for
# it must not be mistaken for the user's own text either.
ODD_TEXTS = ["a\x00b", "\ue000", "\ue0000", "\x00\ue000\x00", "plain"]
TOOL = "t\x00" * 200


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_text_with_nul_travels_intact_and_is_found(store_url: str, tmp_path: Path) -> None:
    server = runtime_on(store_url, tmp_path)
    try:
        with httpx.Client(base_url=server.url, headers=HEADERS, timeout=deadline(10)) as client:
            session_id = client.post("/sessions").json()["session_id"]
            for text in ODD_TEXTS:
                say(client, session_id, text)
            call = say(client, session_id, f'/tool {TOOL} {{"path": "\\u0000"}}')[0].json()
            result = {"type": "tool_result", "call_id": call["call_id"], "result": "\x00"}
            answer = client.post(
                "/agent/message/stream", json={"session_id": session_id, "message": result}
            )
            assert answer.status_code == 200, answer.text
            switch = {
                "type": "switch_agent",
                "agent_type": "coder",
                "content": "",
                "reason": "\x00",
            }
            answer = client.post(
                "/agent/message/stream", json={"session_id": session_id, "message": switch}
            )
            assert answer.status_code == 200, answer.text
            renamed = client.patch(f"/sessions/{session_id}", json={"title": "t\x00"})
            assert renamed.status_code == 200, renamed.text
            history = client.get(f"/sessions/{session_id}/history").json()
            listed = client.get("/sessions").json()["sessions"]
            current = client.get(f"/agents/{session_id}/current").json()
            found = client.get("/sessions/search", params={"q": "\x00\ue000"}).json()
            # Escaped for PostgreSQL, "\x00\ue000\x00" holds this needle escaped; no text holds it.
            unfound = client.get("/sessions/search", params={"q": "0\ue000"}).json()
    finally:
        server.stop()
    users = [m["content"] for m in history["messages"] if m["role"] == "user"]
    assert users[: len(ODD_TEXTS)] == ODD_TEXTS
    assert call["tool_name"] == TOOL
    assert call["arguments"] == {"path": "\x00"}
    tool = next(m for m in history["messages"] if m["role"] == "tool")
    assert tool["name"] == TOOL
    assert [info["title"] for info in listed] == ["t\x00"]
    assert [record["reason"] for record in current["agent_history"]] == ["\x00"]
    assert [hit["session_id"] for hit in found["results"]] == [session_id]
    assert unfound["results"] == []

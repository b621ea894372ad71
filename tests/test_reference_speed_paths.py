"""The reference's fast paths say exactly what the slow ones said (docs/performance.md).

The history is built from plain rows instead of models, the gateway checks a socket's session with
HEAD instead of reading its history, and a socket that finds no runtime connection free is
answered with a close code. What is checked here is behaviour, never speed: `sessionlab bench`
measures that.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pydantic import AnyHttpUrl, SecretStr
from sqlalchemy import text
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from contract.bodies import AgentSwitchRecord, History, Message
from reference.gateway import upstream
from reference.gateway.app import create_app as create_gateway_app
from reference.gateway.websocket import BUSY, TRY_AGAIN_LATER, UNKNOWN_SESSION
from reference.runtime.app import create_app as create_runtime_app
from reference.runtime.script_agent import AgentSwitch, Turn
from reference.runtime.store import Store
from reference.server import ThreadedServer
from reference.settings import GatewaySettings
from tests.fixtures.stack import INTERNAL_KEY, ReferenceStack, deadline, runtime_settings

UNKNOWN_ID = "session_0000000000000000"

# Everything a stored message may hold that JSON writers treat differently: NUL and other control
# characters, quotes and backslashes, non-ASCII, astral characters, the private-use character
# the PostgreSQL store escapes NUL with, a null content, and tool calls nested as JSON.
EXOTIC_MESSAGES = [
    Message(role="user", content="plain"),
    Message(role="user", content='nul \x00 bell \x07 tab \t newline \n quote " backslash \\ /'),
    Message(role="user", content="äöü 中文 😀 \u2028 \u2029 \x7f \ue000 \ue0000"),
    Message(
        role="assistant",
        content=None,
        tool_calls=[
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "read\x00file", "arguments": '{"path": "/tmp/ä"}'},
                "extra": [1, 2.5, True, None, {"deep": ["x"]}],
            }
        ],
    ),
    Message(role="tool", content="result", name="read_file", tool_call_id="call_1"),
    Message(role="assistant", content=""),
]


async def _expected_history(store: Store, session_id: str, messages: list[Message]) -> bytes:
    """The body as the route gave it before the fast path: a History model of the messages
    stored, serialised by pydantic for FastAPI."""
    state = await store.get_session(session_id)
    switches = await store.agent_history(session_id)
    model = History(
        session_id=session_id,
        messages=messages,
        message_count=len(messages),
        last_activity=state.last_activity,
        current_agent=state.current_agent,
        agent_history=[record.model_dump() for record in switches],
    )
    return model.model_dump_json().encode()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """The store's URL: SQLite in the data folder (None), or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


async def test_history_body_is_byte_identical_to_the_history_models(
    tmp_path: Path, database_url: str | None
) -> None:
    app = create_runtime_app(runtime_settings(tmp_path, database_url=database_url))
    async with app.router.lifespan_context(app):
        store: Store = app.state.store
        session_id = (await store.create_session()).session_id
        await store.apply_turn(session_id, Turn(messages=EXOTIC_MESSAGES))
        await store.apply_turn(
            session_id,
            Turn(
                messages=[Message(role="user", content="switch")],
                switch=AgentSwitch(from_agent="orchestrator", to_agent="coder", reason=None),
            ),
        )
        await store.apply_turn(
            session_id,
            Turn(switch=AgentSwitch(from_agent="coder", to_agent="orchestrator", reason="back ✓")),
        )
        empty = (await store.create_session()).session_id
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://runtime",
            headers={"X-Internal-Auth": INTERNAL_KEY},
        ) as client:
            stored = [*EXOTIC_MESSAGES, Message(role="user", content="switch")]
            bodies = {}
            for known, messages in ((session_id, stored), (empty, [])):
                response = await client.get(f"/sessions/{known}/history")
                assert response.status_code == 200
                assert response.headers["content-type"] == "application/json"
                assert response.content == await _expected_history(store, known, messages)
                bodies[known] = response.content
            # Rows a process older than their stored text wrote: built from their fields.
            async with store.engine.begin() as connection:
                await connection.execute(text("UPDATE messages SET body = NULL WHERE seq = 1"))
            unstored = await client.get(f"/sessions/{session_id}/history")
            assert unstored.content == bodies[session_id]
        assert await store.messages(session_id) == stored
        history = History.model_validate_json(bodies[session_id])
        assert [AgentSwitchRecord(**record).reason for record in history.agent_history] == [
            None,
            "back ✓",
        ]


async def test_head_of_a_history_answers_whether_it_exists_without_a_body(tmp_path: Path) -> None:
    app = create_runtime_app(runtime_settings(tmp_path))
    async with app.router.lifespan_context(app):
        session_id = (await app.state.store.create_session()).session_id
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app),
            base_url="http://runtime",
            headers={"X-Internal-Auth": INTERNAL_KEY},
        ) as client:
            known = await client.head(f"/sessions/{session_id}/history")
            unknown = await client.head(f"/sessions/{UNKNOWN_ID}/history")
            unkeyed = await client.head(
                f"/sessions/{session_id}/history", headers={"X-Internal-Auth": "wrong"}
            )
    assert (known.status_code, known.content) == (200, b"")
    assert unknown.status_code == 404
    assert unkeyed.status_code == 401


class Recorder:
    """An ASGI app passed through, with the method and path of every HTTP request it got."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


@pytest.fixture
def recorded_stack(tmp_path: Path) -> Iterator[tuple[ReferenceStack, Recorder]]:
    recorder = Recorder(create_runtime_app(runtime_settings(tmp_path)))
    with ThreadedServer(recorder) as runtime:
        settings = GatewaySettings(
            runtime_url=AnyHttpUrl(runtime.url), internal_key=SecretStr(INTERNAL_KEY)
        )
        with ThreadedServer(create_gateway_app(settings)) as gateway:
            yield ReferenceStack(runtime, gateway, tmp_path, INTERNAL_KEY, None), recorder


async def test_a_socket_checks_its_session_with_head_and_refuses_an_unknown_one_with_4404(
    recorded_stack: tuple[ReferenceStack, Recorder],
) -> None:
    stack, recorder = recorded_stack
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=deadline(10)) as gateway:
        session_id = (await gateway.post("/sessions")).json()["session_id"]
    recorder.requests.clear()
    async with connect(f"{stack.ws_url}/ws/{session_id}", open_timeout=deadline(10)):
        pass
    async with connect(f"{stack.ws_url}/ws/{UNKNOWN_ID}", open_timeout=deadline(10)) as refused:
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(deadline(5)):
                await refused.recv()
    assert refused.close_code == UNKNOWN_SESSION
    assert recorder.requests == [
        ("HEAD", f"/sessions/{session_id}/history"),
        ("HEAD", f"/sessions/{UNKNOWN_ID}/history"),
    ]


def runtime_without_head(slow_id: str, release: asyncio.Event | None = None) -> FastAPI:
    """A runtime offering only GET on the history (HEAD is a 405); `slow_id`'s answer waits."""
    app = FastAPI()

    @app.get("/sessions/{session_id}/history")
    async def history(session_id: str, request: Request) -> Response:
        if session_id == UNKNOWN_ID:
            return Response('{"error": "session not found"}', status_code=404)
        if session_id == slow_id:
            await asyncio.sleep(deadline(3))
        return Response(f'{{"session_id": "{session_id}"}}', media_type="application/json")

    return app


@pytest.fixture
def gateway_before_runtime_without_head(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    # One connection to the runtime, and a short wait for it: one slow check holds the pool.
    monkeypatch.setattr(upstream, "POOL_CONNECTIONS", 1)
    monkeypatch.setattr(upstream, "POOL_WAIT", 0.3)
    with ThreadedServer(runtime_without_head(slow_id="session_slow")) as runtime:
        settings = GatewaySettings(
            runtime_url=AnyHttpUrl(runtime.url), internal_key=SecretStr(INTERNAL_KEY)
        )
        with ThreadedServer(create_gateway_app(settings)) as gateway:
            yield gateway.url.replace("http://", "ws://", 1)


async def test_a_runtime_without_head_is_asked_with_get(
    gateway_before_runtime_without_head: str,
) -> None:
    url = gateway_before_runtime_without_head
    async with connect(f"{url}/ws/session_known", open_timeout=deadline(10)) as accepted:
        assert accepted.close_code is None
    async with connect(f"{url}/ws/{UNKNOWN_ID}", open_timeout=deadline(10)) as refused:
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(deadline(5)):
                await refused.recv()
    assert refused.close_code == UNKNOWN_SESSION


@pytest.fixture
async def slow_check(gateway_before_runtime_without_head: str) -> AsyncIterator[str]:
    """A socket being opened whose check holds the gateway's only runtime connection."""
    url = gateway_before_runtime_without_head

    async def open_slow() -> None:
        async with connect(f"{url}/ws/session_slow", open_timeout=deadline(10)):
            pass

    holder = asyncio.ensure_future(open_slow())
    # Long enough for its check to take the connection, well before the check is answered.
    await asyncio.sleep(0.5)
    yield url
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder


async def test_a_socket_finding_no_runtime_connection_free_is_closed_with_1013(
    slow_check: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with connect(f"{slow_check}/ws/session_other", open_timeout=deadline(10)) as busy:
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(deadline(5)):
                await busy.recv()
    assert (busy.close_code, busy.close_reason) == (TRY_AGAIN_LATER, BUSY)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


async def test_a_client_leaving_during_the_check_leaves_no_traceback(
    slow_check: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    async def give_up() -> None:
        async with connect(f"{slow_check}/ws/session_other", open_timeout=0.1):
            pass

    with pytest.raises(TimeoutError):
        await give_up()
    # The gateway's check ends (pool wait over) after the client has gone.
    await asyncio.sleep(deadline(1))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []

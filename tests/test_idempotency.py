"""Named user messages (X-IDEM-1) in the reference and in the IDE simulator.

The runtime answers a resend from its store, in SQLite and in PostgreSQL, across a restart and
across two runtimes on one database; the designed IDE names its messages when the target is
idempotent and sends an unanswered one again after its socket dropped mid-turn. Real servers on
loopback ports, real sockets, real databases.
"""

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import AnyHttpUrl, SecretStr

from contract import sse
from reference.gateway.app import create_app as create_gateway_app
from reference.runtime.app import create_app as create_runtime_app
from reference.server import ThreadedServer
from reference.settings import GatewaySettings
from simulators.ide import Ide, IdeError, IdeSettings
from tests.fixtures.postgres import postgres_url
from tests.fixtures.stack import INTERNAL_KEY, deadline, runtime_settings

__all__ = ["postgres_url"]

HEADERS = {"X-Internal-Auth": INTERNAL_KEY}


def _named(text: str, name: str) -> dict[str, Any]:
    return {"type": "user_message", "content": text, "role": "user", "client_message_id": name}


async def _send(
    client: httpx.AsyncClient, session_id: str, message: dict[str, Any]
) -> list[tuple[str, str]]:
    response = await client.post(
        "/agent/message/stream", json={"session_id": session_id, "message": message}
    )
    assert response.status_code == 200, response.text
    return [(event.event, event.data) for event in sse.decode_events(response.text)]


async def _history(client: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (await client.get(f"/sessions/{session_id}/history")).json()[
        "messages"
    ]
    return messages


def _runtime(url: str, data_dir: Path, **overrides: Any) -> ThreadedServer:
    settings = runtime_settings(data_dir, database_url=url, **overrides)
    return ThreadedServer(create_runtime_app(settings)).start()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


# --- the runtime --------------------------------------------------------------------------------


def test_a_resend_is_answered_from_the_store_also_after_a_restart(
    store_url: str, tmp_path: Path
) -> None:
    server = _runtime(store_url, tmp_path)

    async def scenario() -> None:
        async with httpx.AsyncClient(
            base_url=server.url, headers=HEADERS, timeout=deadline(15)
        ) as client:
            session_id = (await client.post("/sessions")).json()["session_id"]
            # NUL and the store's own escape character: a name is any JSON string.
            name = "m-\x00-\ue000-1"
            first = await _send(client, session_id, _named("hello there", name))
            assert first[-1][0] == "done"
            assert await _send(client, session_id, _named("hello there", name)) == first
            await asyncio.to_thread(server.restart)
            assert await _send(client, session_id, _named("hello there", name)) == first
            # The same name for other words is the IDE's mistake: refused, nothing stored.
            other = await _send(client, session_id, _named("something else", name))
            assert other[-1][0] == "error"
            assert "already names another message" in other[-1][1]
            assert [m["content"] for m in await _history(client, session_id)] == [
                "hello there",
                "hello there",
            ]

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_a_stored_error_is_replayed_as_the_same_error(tmp_path: Path) -> None:
    server = _runtime(f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}", tmp_path)

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.url, headers=HEADERS) as client:
            session_id = (await client.post("/sessions")).json()["session_id"]
            failed = await _send(client, session_id, _named("/fail on purpose", "f1"))
            assert [event for event, _ in failed] == ["error"]
            assert json.loads(failed[0][1])["error"] == "on purpose"
            assert await _send(client, session_id, _named("/fail on purpose", "f1")) == failed
            assert len(await _history(client, session_id)) == 1

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_deleting_a_session_forgets_its_names(tmp_path: Path) -> None:
    server = _runtime(f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}", tmp_path, strict=False)

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.url, headers=HEADERS) as client:
            session_id = "session_0123456789abcdef"
            await _send(client, session_id, _named("before", "n1"))
            assert (await client.delete(f"/sessions/{session_id}")).status_code == 204
            # Tolerant: the message makes the session anew, and the name is free again.
            answer = await _send(client, session_id, _named("after", "n1"))
            assert answer[-1][0] == "done"
            assert [m["content"] for m in await _history(client, session_id)] == [
                "after",
                "after",
            ]

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_two_runtimes_on_one_database_store_concurrent_resends_once(
    postgres_url: str, tmp_path: Path
) -> None:
    """Each runtime checks for the name under the session's row lock, and the primary key
    refuses what slips past: 40 sends of 10 names, half on each runtime, all at once."""
    first = _runtime(postgres_url, tmp_path / "a")
    second = _runtime(postgres_url, tmp_path / "b")

    async def scenario() -> None:
        async with (
            httpx.AsyncClient(base_url=first.url, headers=HEADERS, timeout=deadline(30)) as one,
            httpx.AsyncClient(base_url=second.url, headers=HEADERS, timeout=deadline(30)) as two,
        ):
            session_id = (await one.post("/sessions")).json()["session_id"]
            sends = [
                _send(one if copy % 2 else two, session_id, _named(f"m{n}", f"id-{n}"))
                for n in range(10)
                for copy in range(4)
            ]
            async with asyncio.timeout(deadline(60)):
                answers = await asyncio.gather(*sends)
            for n in range(10):
                assert len({json.dumps(a) for a in answers[n * 4 : n * 4 + 4]}) == 1
            contents = [m["content"] for m in await _history(two, session_id)]
            assert sorted(contents) == sorted(f"m{n}" for n in range(10) for _ in range(2))

    try:
        asyncio.run(scenario())
    finally:
        first.stop()
        second.stop()


# --- the IDE simulator --------------------------------------------------------------------------


class Stack:
    """A runtime whose replies take a while (SESSIONLAB_FRAME_DELAY's setting) and a gateway that
    can be restarted on its port."""

    def __init__(self, data_dir: Path, frame_delay: float) -> None:
        self.runtime = ThreadedServer(
            create_runtime_app(runtime_settings(data_dir, frame_delay=frame_delay))
        ).start()
        settings = GatewaySettings(
            runtime_url=AnyHttpUrl(self.runtime.url), internal_key=SecretStr(INTERNAL_KEY)
        )
        self.gateway = ThreadedServer(create_gateway_app(settings)).start()

    def stop(self) -> None:
        self.gateway.stop()
        self.runtime.stop()


@pytest.fixture
def slow_stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path / "data", frame_delay=0.3)
    yield stack
    stack.stop()


def _ide(stack: Stack, tmp_path: Path, **options: Any) -> Ide:
    settings = IdeSettings(
        gateway_url=stack.gateway.url,
        turn_timeout=deadline(20),
        connect_timeout=deadline(10),
        **options,
    )
    return Ide(settings, tmp_path / "prefs.json")


def _sent_frames(ide: Ide) -> list[dict[str, Any]]:
    return [
        json.loads(line.removeprefix("WS send "))
        for line in ide.trace.traffic_lines()
        if line.startswith("WS send ")
    ]


async def _first_chunk(ide: Ide) -> None:
    """Wait until the turn's first frame came: the runtime has stored the turn by then."""
    end = asyncio.get_running_loop().time() + deadline(10)
    while not any(line.startswith("WS recv ") for line in ide.trace.traffic_lines()):
        assert asyncio.get_running_loop().time() < end, "no frame of the turn came"
        # The trace is a list the reader appends to; there is no event to wait on.
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("client", ["designed", "shipped"])
def test_the_ide_names_its_messages_only_as_the_designed_client_and_only_when_asked(
    slow_stack: Stack, tmp_path: Path, client: str
) -> None:
    async def scenario(idempotent: bool) -> list[dict[str, Any]]:
        ide = _ide(slow_stack, tmp_path, client=client, idempotent=idempotent)
        try:
            await ide.new_session()
            for text in ("one", "two"):
                await ide.send(text)
                assert await ide.final_reply() == text
            return [f for f in _sent_frames(ide) if f["type"] == "user_message"]
        finally:
            await ide.close()

    for idempotent in (False, True):
        sent = asyncio.run(scenario(idempotent))
        names = [frame.get("client_message_id") for frame in sent]
        if idempotent and client == "designed":
            assert all(isinstance(name, str) and name for name in names)
            assert len(set(names)) == 2
        else:
            # The shipped IDE has no ids: faithful to it, whatever the target claims.
            assert names == [None, None]


def test_the_designed_ide_resends_an_unanswered_message_after_a_drop_and_gets_the_stored_reply(
    slow_stack: Stack, tmp_path: Path
) -> None:
    text = "a reply that takes its time to stream"

    async def scenario() -> None:
        ide = _ide(slow_stack, tmp_path, idempotent=True)
        try:
            session_id = await ide.new_session()
            await ide.send(text)
            await _first_chunk(ide)
            # The gateway goes down mid-turn, cutting the socket, and comes back on its port.
            await asyncio.to_thread(slow_stack.gateway.restart)
            assert await ide.final_reply() == text
            sent = [f for f in _sent_frames(ide) if f["type"] == "user_message"]
            assert len(sent) == 2
            assert sent[0] == sent[1]
            async with httpx.AsyncClient(base_url=slow_stack.gateway.url) as client:
                history = await _history(client, session_id)
            assert [m["content"] for m in history] == [text, text]
            assert any("sending message" in line for line in ide.trace_tail(50))
        finally:
            await ide.close()

    asyncio.run(scenario())


def test_without_ids_the_designed_ide_reports_the_drop_and_sends_nothing_again(
    slow_stack: Stack, tmp_path: Path
) -> None:
    async def scenario() -> None:
        ide = _ide(slow_stack, tmp_path)
        try:
            await ide.new_session()
            await ide.send("cut off in the middle of it")
            await _first_chunk(ide)
            await asyncio.to_thread(slow_stack.gateway.restart)
            with pytest.raises(IdeError, match="the WebSocket closed"):
                await ide.final_reply()
            sent = [f for f in _sent_frames(ide) if f["type"] == "user_message"]
            assert len(sent) == 1
        finally:
            await ide.close()

    asyncio.run(scenario())

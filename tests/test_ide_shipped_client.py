"""The shipped client model on the wire: what a gateway really receives from it, and how it reads
what a gateway sends. Every test here is named by a row of docs/client-fidelity.md.

A tiny gateway on 127.0.0.1 (plain asyncio, HTTP/1.1 and just enough WebSocket) records every
request, socket and frame as it reaches the server, and answers as each test scripts it.
"""

import asyncio
import base64
import contextlib
import hashlib
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from contract.ids import is_local_session_id
from simulators.ide import Ide, IdeError, IdeSettings
from simulators.ide.chat import ChatItem
from simulators.ide.tools import FakeWorkspace
from tests.fixtures.stack import deadline

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CREATED_AT = "2025-01-01T00:00:00"


@dataclass
class Seen:
    """One thing that reached the server: an HTTP request, a socket opened, a frame, a close."""

    kind: str  # "http" | "open" | "frame" | "close"
    path: str = ""
    method: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    socket: int = 0
    frame: Any = None


class Peer:
    """The server's end of one WebSocket."""

    def __init__(self, number: int, path: str, writer: asyncio.StreamWriter) -> None:
        self.number, self.path, self.writer = number, path, writer
        self.open = True

    async def send(self, frame: dict[str, Any] | str) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        self.writer.write(_ws_frame(0x1, text.encode()))
        await self.writer.drain()

    async def close(self) -> None:
        if self.open:
            self.open = False
            self.writer.write(_ws_frame(0x8, struct.pack("!H", 1000)))
            await self.writer.drain()


FrameScript = Callable[[Peer, Any], Awaitable[None]]


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        return head + bytes([len(payload)]) + payload
    if len(payload) < 1 << 16:
        return head + bytes([126]) + struct.pack("!H", len(payload)) + payload
    return head + bytes([127]) + struct.pack("!Q", len(payload)) + payload


async def _read_ws_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if second & 0x80 else b"\0\0\0\0"
    data = await reader.readexactly(length)
    return first & 0x0F, bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))


async def _echo(peer: Peer, frame: Any) -> None:
    if isinstance(frame, dict) and frame.get("type") == "user_message":
        await peer.send(
            {"type": "assistant_message", "content": frame["content"], "is_final": True}
        )


class RecordingGateway:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.histories: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.on_frame: FrameScript = _echo
        self.list_fails = False
        # Set: the close reply to an old socket waits until the next socket has opened (or a
        # few seconds), so a client that waits for its close is seen waiting.
        self.hold_close_until_next_open = False
        self.peers: list[Peer] = []
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _record(self, seen: Seen) -> None:
        async with self._changed:
            self.seen.append(seen)
            self._changed.notify_all()

    async def wait_for(self, test: Callable[[list[Seen]], bool], seconds: float = 5) -> None:
        async with asyncio.timeout(deadline(seconds)), self._changed:
            await self._changed.wait_for(lambda: test(self.seen))

    def of(self, kind: str) -> list[Seen]:
        return [s for s in self.seen if s.kind == kind]

    def frames(self) -> list[Any]:
        return [s.frame for s in self.of("frame")]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {}
                for line in lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                if headers.get("upgrade", "").lower() == "websocket":
                    await self._socket(path, headers, reader, writer)
                    return
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                await self._record(Seen("http", path, method, headers, body))
                status, answer = self._answer(method, path)
                data = json.dumps(answer).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    def _answer(self, method: str, path: str) -> tuple[int, Any]:
        if (method, path) == ("POST", "/sessions"):
            session_id = f"session_{len(self.created) + 1:016x}"
            self.created.append(session_id)
            return 200, {
                "session_id": session_id,
                "message_count": 0,
                "current_agent": "orchestrator",
                "created_at": CREATED_AT,
            }
        if (method, path) == ("GET", "/sessions"):
            if self.list_fails:
                return 500, {"error": "the list is down"}
            infos = [
                {"session_id": s, "message_count": 0, "last_activity": CREATED_AT}
                | {"current_agent": "orchestrator"}
                for s in self.created
            ]
            return 200, {"sessions": infos, "total": len(infos)}
        if method == "GET" and path.startswith("/sessions/") and path.endswith("/history"):
            session_id = path.removeprefix("/sessions/").removesuffix("/history")
            if session_id in self.histories:
                return 200, self.histories[session_id]
        return 404, {"error": "not found"}

    async def _socket(
        self,
        path: str,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        digest = hashlib.sha1((headers["sec-websocket-key"] + WS_GUID).encode()).digest()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + base64.b64encode(digest) + b"\r\n\r\n"
        )
        await writer.drain()
        peer = Peer(len(self.peers) + 1, path, writer)
        self.peers.append(peer)
        await self._record(Seen("open", path, "GET", headers, socket=peer.number))
        while True:
            opcode, data = await _read_ws_frame(reader)
            if opcode == 0x8:
                await self._record(Seen("close", path, socket=peer.number))
                if self.hold_close_until_next_open:
                    with contextlib.suppress(TimeoutError):
                        await self.wait_for(lambda seen: len(self.of("open")) > peer.number, 3)
                await self._record(Seen("closed", path, socket=peer.number))
                await peer.close()
                return
            try:
                frame: Any = json.loads(data)
            except ValueError:
                frame = data.decode("utf-8", "replace")
            await self._record(Seen("frame", path, socket=peer.number, frame=frame))
            await self.on_frame(peer, frame)


@pytest.fixture
async def gateway() -> AsyncIterator[RecordingGateway]:
    server = RecordingGateway()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def ide(gateway: RecordingGateway, tmp_path: Path) -> AsyncIterator[Ide]:
    made = shipped(gateway, tmp_path)
    yield made
    await made.close()


def shipped(gateway: RecordingGateway, tmp_path: Path, **settings: Any) -> Ide:
    assert gateway._server is not None
    port = gateway._server.sockets[0].getsockname()[1]
    options: dict[str, Any] = {"turn_timeout": deadline(2), **settings}
    return Ide(
        IdeSettings(gateway_url=f"http://127.0.0.1:{port}", client="shipped", **options),
        tmp_path / "ide.json",
    )


def history(session_id: str, messages: list[dict[str, Any]], agent: str = "orchestrator") -> Any:
    return {
        "session_id": session_id,
        "messages": messages,
        "message_count": len(messages),
        "last_activity": CREATED_AT,
        "current_agent": agent,
        "agent_history": [],
    }


async def frames_to_arrive(gateway: RecordingGateway, count: int) -> list[Any]:
    await gateway.wait_for(lambda seen: len([s for s in seen if s.kind == "frame"]) >= count)
    return gateway.frames()


# Start-up and the session list


async def test_opening_the_panel_lists_sessions_and_opens_no_socket(
    gateway: RecordingGateway, ide: Ide
) -> None:
    await ide.open_panel()
    assert ide.state == "loaded"
    assert [(s.method, s.path) for s in gateway.seen] == [("GET", "/sessions")]
    assert ide.connected_session_id is None


async def test_start_up_restores_nothing_even_with_a_stored_session(
    gateway: RecordingGateway, tmp_path: Path
) -> None:
    stored = "session_00000000000000aa"
    gateway.histories[stored] = history(stored, [])
    (tmp_path / "ide.json").write_text(json.dumps({"current_session_id": stored}))
    ide = shipped(gateway, tmp_path)
    try:
        assert await ide.start() is None
        await asyncio.sleep(0.2)
    finally:
        await ide.close()
    assert [(s.method, s.path) for s in gateway.seen] == [("GET", "/sessions")]
    assert ide.stored_session_id == stored


async def test_a_list_that_fails_leaves_the_manager_in_error(
    gateway: RecordingGateway, ide: Ide
) -> None:
    gateway.list_fails = True
    await ide.open_panel()
    assert ide.state == "error"


async def test_going_back_to_the_list_reloads_it_and_keeps_the_socket(
    gateway: RecordingGateway, ide: Ide
) -> None:
    session_id = await ide.new_session()
    await ide.back_to_list()
    assert [(s.method, s.path) for s in gateway.of("http")][-1] == ("GET", "/sessions")
    assert ide.connected_session_id == session_id
    assert gateway.of("close") == []


# REST


@pytest.mark.parametrize(
    ("client_key", "sent"), [(None, "change-me-internal-key"), ("the-client-key", "the-client-key")]
)
async def test_rest_carries_the_client_key_and_the_socket_does_not(
    gateway: RecordingGateway, tmp_path: Path, client_key: str | None, sent: str
) -> None:
    ide = shipped(gateway, tmp_path, client_key=client_key)
    try:
        await ide.open_panel()
        await ide.new_session()
    finally:
        await ide.close()
    assert [s.headers.get("x-internal-auth") for s in gateway.of("http")] == [sent] * 3
    assert [("x-internal-auth" in s.headers) for s in gateway.of("open")] == [False]


async def test_a_new_session_posts_no_body_and_connects_to_its_id(
    gateway: RecordingGateway, ide: Ide
) -> None:
    session_id = await ide.new_session()
    post = gateway.of("http")[0]
    assert (post.method, post.path, post.body) == ("POST", "/sessions", b"")
    assert post.headers.get("content-length", "0") == "0"
    assert "content-type" not in post.headers
    assert [s.path for s in gateway.of("open")] == [f"/ws/{session_id}"]
    assert ide.last_create_body == {
        "session_id": session_id,
        "message_count": 0,
        "current_agent": "orchestrator",
        "created_at": CREATED_AT,
    }
    assert (ide.stored_session_id, ide.stored_agent_type) == (session_id, "orchestrator")
    # Its bloc reloads the list after a create: it ends there, not in newSessionCreated.
    assert ide.state == "loaded"


async def test_ids_go_into_urls_unencoded(gateway: RecordingGateway, ide: Ide) -> None:
    odd = "session:1@x"
    gateway.histories[odd] = history(odd, [])
    await ide.switch_to(odd)
    assert gateway.of("http")[0].path == f"/sessions/{odd}/history"
    assert [s.path for s in gateway.of("open")] == [f"/ws/{odd}"]


# Switching


async def test_a_switch_connects_to_the_history_replys_session_id(
    gateway: RecordingGateway, ide: Ide
) -> None:
    clicked, answered = "session_00000000000000c1", "session_00000000000000a2"
    gateway.histories[clicked] = history(answered, [], agent="coder")
    await ide.switch_to(clicked)
    assert [s.path for s in gateway.of("open")] == [f"/ws/{answered}"]
    assert (ide.stored_session_id, ide.stored_agent_type) == (clicked, "coder")
    assert ide.state == "loaded"


async def test_a_switch_closes_the_old_socket_without_waiting(
    gateway: RecordingGateway, ide: Ide
) -> None:
    gateway.hold_close_until_next_open = True
    first = await ide.new_session()
    second = "session_00000000000000b2"
    gateway.histories[second] = history(second, [])
    await ide.switch_to(second)
    await gateway.wait_for(lambda seen: any(s.kind == "closed" for s in seen))
    events = [(s.kind, s.path) for s in gateway.seen if s.kind != "http"]
    # The old socket was asked to close, the new one opened while the old was still open.
    assert events == [
        ("open", f"/ws/{first}"),
        ("close", f"/ws/{first}"),
        ("open", f"/ws/{second}"),
        ("closed", f"/ws/{first}"),
    ]
    assert ide.connected_session_id == second
    assert ide.closed_session_ids == [first]


async def test_a_switch_to_an_unknown_session_ends_in_error(
    gateway: RecordingGateway, ide: Ide
) -> None:
    current = await ide.new_session()
    with pytest.raises(IdeError, match="switch step 3"):
        await ide.switch_to("session_00000000000000ff")
    assert ide.state == "error"
    assert ide.connected_session_id == current


# Frames the IDE sends


async def test_chat_frames_are_written_as_the_real_ide_writes_them(
    gateway: RecordingGateway, ide: Ide
) -> None:
    await ide.new_session()
    await ide.send("hello")
    assert await ide.final_reply() == "hello"
    await ide.switch_agent("coder", "please")
    assert await frames_to_arrive(gateway, 2) == [
        {"type": "user_message", "content": "hello", "role": "user"},
        {"type": "switch_agent", "agent_type": "coder", "content": "please"},
    ]


def _tool_call(name: str, arguments: dict[str, Any], approval: bool = False) -> FrameScript:
    async def script(peer: Peer, frame: Any) -> None:
        if frame.get("type") == "user_message":
            await peer.send(
                {
                    "type": "tool_call",
                    "call_id": "call_1",
                    "tool_name": name,
                    "arguments": arguments,
                    "requires_approval": approval,
                }
            )

    return script


def _result(**fields: Any) -> dict[str, Any]:
    empty = {"content": None, "lines_read": None, "bytes_written": None, "backup_path": None}
    return {"success": True, **empty, "error": None, **fields}


@pytest.mark.parametrize(
    ("name", "arguments", "result", "error"),
    [
        ("read_file", {"path": "a.txt"}, _result(content="one\ntwo", lines_read=2), None),
        ("write_file", {"path": "b.txt", "content": "Grüße"}, _result(bytes_written=7), None),
        ("list_files", {}, _result(content="a.txt", lines_read=1), None),
        (
            "read_file",
            {"path": "nope.txt"},
            None,
            "[File not found] File not found: nope.txt\nDetails: path=nope.txt",
        ),
    ],
)
async def test_tool_results_carry_every_field_with_nulls_written_out(
    gateway: RecordingGateway,
    ide: Ide,
    name: str,
    arguments: dict[str, Any],
    result: Any,
    error: str | None,
) -> None:
    ide.put_file("a.txt", "one\ntwo")
    gateway.on_frame = _tool_call(name, arguments)
    await ide.new_session()
    await ide.send("go")
    frames = await frames_to_arrive(gateway, 2)
    assert frames[1] == {
        "type": "tool_result",
        "call_id": "call_1",
        "tool_name": name,
        "result": result,
        "error": error,
    }


REJECTED = "[Operation rejected by user] User rejected operation: write_file\n"
REJECTED += "Details: operation=write_file"


@pytest.mark.parametrize(
    ("decision", "arguments", "sent", "result", "error", "written"),
    [
        ("approve", None, ("approve", None), _result(bytes_written=3), None, "one"),
        # Its dialog's edit approves: the edited arguments are neither sent nor run.
        (
            "edit",
            {"path": "a.txt", "content": "four"},
            ("approve", None),
            _result(bytes_written=3),
            None,
            "one",
        ),
        ("reject", None, ("reject", "User rejected this operation"), None, REJECTED, None),
    ],
)
async def test_the_approval_exchange_is_a_decision_then_the_ides_own_tool_result(
    gateway: RecordingGateway,
    ide: Ide,
    decision: str,
    arguments: dict[str, Any] | None,
    sent: tuple[str, str | None],
    result: Any,
    error: str | None,
    written: str | None,
) -> None:
    gateway.on_frame = _tool_call("write_file", {"path": "a.txt", "content": "one"}, True)
    await ide.new_session()
    await ide.send("go")
    call = await ide.next_tool_call()
    assert call["requires_approval"] is True
    await ide.decide(decision, arguments, "my own words")
    frames = await frames_to_arrive(gateway, 3)
    assert frames[1:] == [
        {
            "type": "hitl_decision",
            "call_id": "call_1",
            "decision": sent[0],
            "modified_arguments": None,
            "feedback": sent[1],
        },
        {
            "type": "tool_result",
            "call_id": "call_1",
            "tool_name": "write_file",
            "result": result,
            "error": error,
        },
    ]
    workspace = ide.workspace
    assert isinstance(workspace, FakeWorkspace)
    assert workspace.files.get("a.txt") == written


# Dropped sockets


async def test_no_reconnect_after_the_server_closes_the_socket(
    gateway: RecordingGateway, ide: Ide
) -> None:
    await ide.new_session()
    await gateway.peers[0].close()
    await asyncio.sleep(0.2)
    await ide.send("anyone there?")
    with pytest.raises(IdeError, match="no final reply"):
        await ide.final_reply()
    assert len(gateway.of("open")) == 1
    assert gateway.frames() == []
    assert ide.errors == []


# Frames the IDE reads


async def test_frames_are_read_leniently_and_unreadable_ones_dropped(
    gateway: RecordingGateway, ide: Ide
) -> None:
    async def script(peer: Peer, frame: Any) -> None:
        for reply in [
            "not json at all",
            {"type": "no_such_frame"},
            {"type": "tool_call", "call_id": "c"},
            {
                "type": "agent_switched",
                "metadata": {"from_agent": "orchestrator", "to_agent": "ask"},
            },
            {"type": "assistant_message", "token": "ignored", "is_final": False},
            {"type": "assistant_message", "content": "one "},
            {"type": "assistant_message", "content": "two", "is_final": True},
        ]:
            await peer.send(reply)

    gateway.on_frame = script
    await ide.new_session()
    await ide.send("hi")
    assert await ide.final_reply() == "one two"
    assert ide.errors == []
    assert ide.chat.agent == "ask"
    # One bubble per chunk, as the real chat shows them.
    assert ide.chat.items == [
        ChatItem("user", "hi"),
        ChatItem("agent_switch", "ask"),
        ChatItem("assistant", ""),
        ChatItem("assistant", "one "),
        ChatItem("assistant", "two"),
    ]
    dropped = [e.message for e in ide.trace.events if e.message.startswith("frame dropped")]
    assert len(dropped) == 3


async def test_a_tool_call_without_requires_approval_runs_at_once(
    gateway: RecordingGateway, ide: Ide
) -> None:
    async def script(peer: Peer, frame: Any) -> None:
        if frame.get("type") == "user_message":
            call = {"type": "tool_call", "call_id": "c9", "tool_name": "list_files"}
            await peer.send({**call, "arguments": {}})

    gateway.on_frame = script
    await ide.new_session()
    await ide.send("go")
    frames = await frames_to_arrive(gateway, 2)
    assert (frames[1]["type"], frames[1]["call_id"]) == ("tool_result", "c9")


async def test_an_error_frame_is_read_from_content_or_error(
    gateway: RecordingGateway, ide: Ide
) -> None:
    async def script(peer: Peer, frame: Any) -> None:
        await peer.send({"type": "error", "error": "it broke"})

    gateway.on_frame = script
    await ide.new_session()
    await ide.send("go")
    assert await ide.next_error() == "it broke"


# History shown as chat


async def test_a_history_is_shown_as_the_real_ide_shows_it(
    gateway: RecordingGateway, ide: Ide
) -> None:
    session_id = "session_00000000000000d1"
    gateway.histories[session_id] = history(
        session_id,
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "read it"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "t1"}]},
            {"role": "tool", "content": "text", "tool_call_id": "t1", "name": "read_file"},
            {"role": "tool", "content": "orphan", "name": "read_file"},
            {"role": "assistant", "content": "done"},
        ],
    )
    await ide.switch_to(session_id)
    assert ide.chat.items == [
        ChatItem("user", "read it"),
        ChatItem("assistant", ""),
        ChatItem("tool_result", "text", "t1"),
        ChatItem("tool_result", "orphan", ""),
        ChatItem("assistant", "done"),
    ]


async def test_http_calls_wait_thirty_seconds(ide: Ide) -> None:
    timeout = ide.api.client.timeout
    assert (timeout.read, timeout.connect) == (deadline(30), deadline(30))


async def test_an_unreachable_gateway_gives_a_stored_local_id(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = IdeSettings(gateway_url=f"http://127.0.0.1:{port}", client="shipped")
    ide = Ide(settings, tmp_path / "ide.json")
    try:
        session_id = await ide.new_session()
    finally:
        await ide.close()
    assert is_local_session_id(session_id)
    assert (ide.stored_session_id, ide.last_create_body) == (session_id, None)
    # Its bloc reloads the list after the fallback too, and that fails.
    assert ide.state == "error"

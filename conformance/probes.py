"""Clients the checks use: every request and frame goes into the check's transcript."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conformance.contract.frames import FrameError, ServerFrame, parse_server_frame
from conformance.transcript import Transcript, body_text

TEST_HEADER = "X-Sessionlab-Test"


def http_probe(
    base_url: str, transcript: Transcript, headers: dict[str, str], timeout: float
) -> httpx.AsyncClient:
    """An httpx client whose every exchange lands in the transcript."""

    async def on_request(request: httpx.Request) -> None:
        shown = {k: v for k, v in request.headers.items() if k.lower() == "x-internal-auth"}
        body = body_text(request.content) if request.content else ""
        extra = f" {shown}" if shown else ""
        transcript.record("http-request", f"{request.method} {request.url}{extra} {body}".rstrip())

    async def on_response(response: httpx.Response) -> None:
        await response.aread()
        kind = response.headers.get("content-type", "")
        transcript.record(
            "http-response",
            f"{response.status_code} {kind} {body_text(response.content)}".rstrip(),
        )

    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        timeout=timeout,
        trust_env=False,
        event_hooks={"request": [on_request], "response": [on_response]},
    )


def describe_close(closed: ConnectionClosed) -> str:
    """How a socket closed, as a report shows it."""
    # `rcvd`: ConnectionClosed.code and .reason are deprecated (websockets 13.1).
    frame = closed.rcvd
    # No close frame at all is an abnormal closure, 1006.
    return f"close {frame.code} {frame.reason!r}" if frame else "close 1006 (no close frame)"


class Socket:
    """A WebSocket to the gateway whose frames land in the transcript; every wait has a deadline."""

    def __init__(self, connection: ClientConnection, transcript: Transcript, timeout: float):
        self.connection = connection
        self.transcript = transcript
        self.timeout = timeout

    async def send_text(self, text: str) -> None:
        self.transcript.record("ws-send", text)
        await self.connection.send(text)

    async def send_json(self, frame: dict[str, Any]) -> None:
        await self.send_text(json.dumps(frame))

    async def send_bytes(self, data: bytes) -> None:
        self.transcript.record("ws-send", f"<binary {len(data)} bytes>")
        await self.connection.send(data)

    async def recv_text(self, timeout: float | None = None) -> str:
        async with asyncio.timeout(timeout or self.timeout):
            try:
                message = await self.connection.recv()
            except ConnectionClosed as closed:
                self.transcript.record("ws-close", describe_close(closed))
                raise
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        self.transcript.record("ws-recv", text)
        return text

    async def recv_frame(self, timeout: float | None = None) -> ServerFrame:
        """The next frame, validated; a malformed one raises FrameError naming the problem."""
        return parse_server_frame(await self.recv_text(timeout))

    async def turn(self, timeout: float | None = None) -> list[ServerFrame]:
        """Frames up to the one that ends a turn: a final assistant chunk, a tool_call, an error."""
        frames: list[ServerFrame] = []
        async with asyncio.timeout(timeout or self.timeout):
            while True:
                frame = await self.recv_frame(timeout=None)
                frames.append(frame)
                if ends_turn(frame):
                    return frames

    async def close(self) -> None:
        await self.connection.close()
        self.transcript.record(
            "ws-close", f"closed by sessionlab, code {self.connection.close_code}"
        )


def ends_turn(frame: ServerFrame) -> bool:
    if frame.type == "assistant_message":
        return frame.is_final
    return frame.type in ("tool_call", "error")


@asynccontextmanager
async def open_socket(
    ws_base: str,
    session_id: str,
    transcript: Transcript,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Socket]:
    url = f"{ws_base}/ws/{quote(session_id, safe='')}"
    transcript.record("ws-open", url)
    async with asyncio.timeout(timeout):
        connection = await connect(
            url,
            additional_headers=headers,
            open_timeout=timeout,
            ping_interval=None,
            max_size=None,
        )
    try:
        yield Socket(connection, transcript, timeout)
    finally:
        await connection.close()


__all__ = ["FrameError", "Socket", "ends_turn", "http_probe", "open_socket"]

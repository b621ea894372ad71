"""`/ws/{session_id}`: one socket per session, each turn relayed from the runtime's SSE stream."""

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing, suppress
from http import HTTPStatus
from typing import Any

import httpx
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from conformance.contract.frames import ClientFrame, FrameError, parse_client_frame
from conformance.contract.sse import SSEDecoder
from reference.gateway.deps import RuntimeClient, Settings
from reference.gateway.errors import runtime_error, transport_failure
from reference.gateway.proxy import quote_segment
from reference.gateway.relay import STREAM_CUT, error_frame, relay
from reference.settings import GatewaySettings

logger = logging.getLogger("sessionlab.gateway")

STREAM_PATH = "/agent/message/stream"
UNKNOWN_SESSION = 4404
BINARY_FRAME = "Invalid message: binary frames are not supported, send JSON text"

router = APIRouter()


def printable(session_id: str) -> str:
    # Ids come from the URL: keep control characters out of the log lines.
    return session_id if session_id.isprintable() else repr(session_id)


async def session_unknown(runtime: httpx.AsyncClient, session_id: str) -> bool:
    """True only when the runtime says the session does not exist.

    The history route rather than `/agents/{id}/current`: some runtimes answer 404 there until a
    session's first message. An unreachable runtime, or any other answer, is not a "no": the socket
    is accepted and each turn reports the runtime's state as an error frame (W-DOWN-1), which keeps
    the IDE's socket usable once the runtime is back instead of refusing it for an outage.
    """
    path = f"/sessions/{quote_segment(session_id.encode())}/history"
    try:
        response = await runtime.get(path)
    except httpx.RequestError:
        return False
    return response.status_code == HTTPStatus.NOT_FOUND


@router.websocket("/ws/{session_id}")
async def session_socket(
    websocket: WebSocket, session_id: str, runtime: RuntimeClient, settings: Settings
) -> None:
    if settings.strict and await session_unknown(runtime, session_id):
        # Accept first, then close: a close before accept reaches the client as an HTTP 403 with
        # no close code, and W-CONN-2 asks for code 4404.
        await websocket.accept()
        await websocket.close(code=UNKNOWN_SESSION, reason="unknown session")
        return
    await websocket.accept()
    logger.info("WebSocket connected: %s", printable(session_id))
    # The IDE may leave at any time, mid-turn too: normal, nothing to report.
    with suppress(WebSocketDisconnect):
        await _serve(websocket, runtime, settings, session_id)
    logger.info("WebSocket disconnected: %s", printable(session_id))


async def _serve(
    websocket: WebSocket, runtime: httpx.AsyncClient, settings: GatewaySettings, session_id: str
) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            await websocket.send_text(error_frame(BINARY_FRAME))
            continue
        try:
            frame = parse_client_frame(text)
        except FrameError as exc:
            # W-BAD-1/2: report and keep the socket open.
            await websocket.send_text(error_frame(str(exc)))
            continue
        await _turn(websocket, runtime, settings, session_id, frame)


async def _turn(
    websocket: WebSocket,
    runtime: httpx.AsyncClient,
    settings: GatewaySettings,
    session_id: str,
    frame: ClientFrame,
) -> None:
    """Relay one turn; frames go only to this session's socket (W-ISO-1)."""
    try:
        async with asyncio.timeout(settings.turn_timeout):
            async with aclosing(stream_turn(runtime, settings, session_id, frame)) as frames:
                async for text in frames:
                    await websocket.send_text(text)
    except TimeoutError:
        await websocket.send_text(error_frame(f"turn timed out after {settings.turn_timeout:g} s"))


def stream_body(session_id: str, frame: ClientFrame) -> dict[str, Any]:
    """The runtime request for one frame: the fields the IDE sent, explicit nulls included."""
    return {"session_id": session_id, "message": frame.model_dump(mode="json", exclude_unset=True)}


async def stream_turn(
    runtime: httpx.AsyncClient, settings: GatewaySettings, session_id: str, frame: ClientFrame
) -> AsyncGenerator[str, None]:
    """The frames of one turn, always ending in a final frame or an error frame (W-TURN-1)."""
    body = stream_body(session_id, frame)
    # Agents may pause between events; the turn timeout, not the request timeout, bounds a read.
    timeout = httpx.Timeout(
        settings.request_timeout, connect=settings.connect_timeout, read=settings.turn_timeout
    )
    try:
        async with runtime.stream("POST", STREAM_PATH, json=body, timeout=timeout) as response:
            if response.status_code != HTTPStatus.OK:
                content = await response.aread()
                _, body = runtime_error(response.status_code, content)
                yield error_frame(f"runtime answered {response.status_code}: {body['error']}")
                return
            decoder = SSEDecoder()
            async for chunk in response.aiter_text():
                frames, ended = relay(decoder.feed(chunk))
                for text in frames:
                    yield text
                if ended:
                    return
    except httpx.RequestError as exc:
        yield error_frame(transport_failure(exc)[1])
        return
    yield error_frame(STREAM_CUT)

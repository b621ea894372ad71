"""`/ws/{session_id}`: one socket per session, each turn relayed from the runtime's SSE stream."""

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing, suppress
from http import HTTPStatus
from typing import Any, Literal

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from contract.frames import ClientFrame, FrameError, parse_client_frame
from contract.routes import ACCESS, HISTORY, HISTORY_HEAD, MESSAGE_STREAM, SOCKET
from contract.sse import SSEDecoder
from reference.gateway.deps import Draining, RuntimeClient, Settings
from reference.gateway.drain import GOING_AWAY, REFUSED_TURN, STOPPING, Closing, Drain
from reference.gateway.errors import Busy, UpstreamError, runtime_error
from reference.gateway.relay import STREAM_CUT, ends_turn, error_frame, relay
from reference.gateway.upstream import Upstream
from reference.gateway.users import OTHER_USERS_SESSION, current_user, user_headers
from reference.json_limits import TOO_DEEP, nests_too_deep_async
from reference.settings import GatewaySettings

logger = logging.getLogger("sessionlab.gateway")

UNKNOWN_SESSION = 4404
# RFC 6455 "try again later": the gateway had no connection to the runtime free in time.
TRY_AGAIN_LATER = 1013
BUSY = Busy().message
# A runtime's answers to a method it does not offer on a route.
NO_HEAD = frozenset({HTTPStatus.METHOD_NOT_ALLOWED, HTTPStatus.NOT_IMPLEMENTED})
BINARY_FRAME = "Invalid message: binary frames are not supported, send JSON text"
READ_ONLY = "read-only: this session is shared with you; only its owner can post to it"

router = APIRouter()


def printable(session_id: str) -> str:
    # Ids come from the URL: keep control characters out of the log lines.
    return session_id if session_id.isprintable() else repr(session_id)


async def session_unknown(runtime: Upstream, session_id: str) -> bool:
    """True only when the runtime says the session does not exist.

    The history route rather than `/agents/{id}/current`: some runtimes answer 404 there until a
    session's first message. Asked with HEAD, which the reference runtime answers without reading
    the history (a switch read it twice, and opening a socket slowed as the session grew); a
    runtime without HEAD there (405, 501) is asked with GET. An unreachable runtime, or any other
    answer, is not a "no": the socket is accepted and each turn reports the runtime's state as an
    error frame (W-DOWN-1), which keeps the IDE's socket usable once the runtime is back instead
    of refusing it for an outage. Busy (the gateway has no runtime connection free) is raised.
    """
    try:
        response = await runtime.head(HISTORY_HEAD.path(session_id=session_id))
        if response.status in NO_HEAD:
            response = await runtime.get(HISTORY.path(session_id=session_id))
    except Busy:
        raise
    except UpstreamError:
        return False
    return response.status == HTTPStatus.NOT_FOUND


SocketAccess = Literal["owner", "reader", "none", "unknown"]


async def socket_access(runtime: Upstream, session_id: str, user: str) -> SocketAccess | None:
    """What a user may do on a socket to the session (X-AUTH-1); None when the runtime cannot say.

    An unverified socket is accepted, as without users (W-DOWN-1): the runtime checks the user on
    every turn anyway. Busy (the gateway has no runtime connection free) is raised.
    """
    try:
        response = await runtime.get(ACCESS.path(session_id=session_id), headers=user_headers(user))
    except Busy:
        raise
    except UpstreamError:
        return None
    if response.status == HTTPStatus.NOT_FOUND:
        return "unknown"
    if response.status != HTTPStatus.OK:
        return None
    try:
        access: Any = response.json().get("access")
    except (ValueError, AttributeError):
        return None
    return access if access in ("owner", "reader", "none") else None


@router.websocket(SOCKET.template)
async def session_socket(
    websocket: WebSocket,
    session_id: str,
    runtime: RuntimeClient,
    settings: Settings,
    drain: Draining,
) -> None:
    if drain.stopping:
        # Refused with a close code that tells the IDE to come back later, not that it erred.
        await websocket.accept()
        await websocket.close(code=GOING_AWAY, reason=STOPPING)
        return
    user = current_user(websocket)
    try:
        if user is None:
            unknown = settings.strict and await session_unknown(runtime, session_id)
            access: SocketAccess | None = "unknown" if unknown else None
        else:
            access = await socket_access(runtime, session_id, user)
    except Busy:
        # Answered, with a code that tells the IDE to retry, before the client or the server
        # gives up on the handshake and cancels it mid-wait.
        logger.warning(
            "WebSocket refused, no runtime connection free in time: %s", printable(session_id)
        )
        await websocket.accept()
        await websocket.close(code=TRY_AGAIN_LATER, reason=BUSY)
        return
    refusal = None
    if access == "unknown" and settings.strict:
        refusal = (UNKNOWN_SESSION, "unknown session")
    elif access == "none":
        refusal = (OTHER_USERS_SESSION, "another user's session")
    if refusal is not None:
        # Accept first, then close: a close before accept reaches the client as an HTTP 403 with
        # no close code, and W-CONN-2 and X-AUTH-1 ask for close codes.
        await websocket.accept()
        await websocket.close(code=refusal[0], reason=refusal[1])
        return
    await websocket.accept()
    logger.info("WebSocket connected: %s", printable(session_id))
    # The IDE may leave at any time, mid-turn too: normal, nothing to report.
    with suppress(WebSocketDisconnect):
        try:
            await _serve(websocket, runtime, settings, drain, session_id, user, access == "reader")
        except Closing:
            # The IDE may have gone meanwhile: then there is nothing left to close.
            with suppress(RuntimeError, OSError):
                await websocket.close(code=GOING_AWAY, reason=STOPPING)
    logger.info("WebSocket disconnected: %s", printable(session_id))


async def _serve(
    websocket: WebSocket,
    runtime: Upstream,
    settings: GatewaySettings,
    drain: Drain,
    session_id: str,
    user: str | None = None,
    read_only: bool = False,
) -> None:
    """Frames until the IDE leaves; Closing once a stop's grace period is over."""
    while True:
        message = await drain.unless_closing(websocket.receive())
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            await websocket.send_text(error_frame(BINARY_FRAME))
            continue
        if await nests_too_deep_async(text):
            # Refused before a parser recurses into it (W-ROB-1).
            await websocket.send_text(error_frame(f"Invalid message: {TOO_DEEP}"))
            continue
        try:
            frame = parse_client_frame(text)
        except FrameError as exc:
            # W-BAD-1/2: report and keep the socket open.
            await websocket.send_text(error_frame(str(exc)))
            continue
        except RecursionError:
            await websocket.send_text(error_frame(f"Invalid message: {TOO_DEEP}"))
            continue
        if read_only:
            # X-SHARE-1: every client frame writes to the session; a reader only watches it.
            await websocket.send_text(error_frame(READ_ONLY))
            continue
        if drain.stopping:
            # Not sent on: the stop waits only for turns begun before it.
            await websocket.send_text(error_frame(REFUSED_TURN))
            continue
        with drain.turn():
            await drain.unless_closing(_turn(websocket, runtime, settings, session_id, frame, user))


async def _turn(
    websocket: WebSocket,
    runtime: Upstream,
    settings: GatewaySettings,
    session_id: str,
    frame: ClientFrame,
    user: str | None = None,
) -> None:
    """Relay one turn; frames go only to this session's socket (W-ISO-1)."""
    turn = stream_turn(runtime, settings, session_id, frame, user=user)
    try:
        async with asyncio.timeout(settings.turn_timeout):
            async with aclosing(turn) as frames:
                async for text in frames:
                    await websocket.send_text(text)
    except TimeoutError:
        await websocket.send_text(error_frame(f"turn timed out after {settings.turn_timeout:g} s"))


def stream_body(session_id: str, frame: ClientFrame) -> dict[str, Any]:
    """The runtime request for one frame: the fields the IDE sent, explicit nulls included."""
    return {"session_id": session_id, "message": frame.model_dump(mode="json", exclude_unset=True)}


async def stream_turn(
    runtime: Upstream,
    settings: GatewaySettings,
    session_id: str,
    frame: ClientFrame,
    user: str | None = None,
) -> AsyncGenerator[str, None]:
    """The frames of one turn, always ending in a final frame or an error frame (W-TURN-1)."""
    body = stream_body(session_id, frame)
    headers = user_headers(user)
    try:
        # Agents may pause between events; the turn timeout, not the request timeout, bounds a read.
        async with runtime.stream(
            MESSAGE_STREAM.method,
            MESSAGE_STREAM.path(),
            json_body=body,
            headers=headers,
            read_timeout=settings.turn_timeout,
        ) as response:
            if response.status != HTTPStatus.OK:
                content = await response.read()
                _, body = runtime_error(response.status, content, for_user=user is not None)
                yield error_frame(f"runtime answered {response.status}: {body['error']}")
                return
            decoder = SSEDecoder()
            finished = False
            async for chunk in response.text():
                frames, ended = relay(decoder.feed(chunk))
                for text in frames:
                    finished = finished or ends_turn(text)
                    yield text
                if ended:
                    return
    except UpstreamError as exc:
        yield error_frame(exc.message)
        return
    if finished:
        # The IDE's turn is over: a frame after the last one would be read as the next turn's
        # (W-TURN-1). The runtime's missing `done` is its own fault, logged here.
        logger.warning("runtime stream for %s ended without done after the turn ended", session_id)
        return
    yield error_frame(STREAM_CUT)

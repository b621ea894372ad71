"""Clients the checks use: every request and frame goes into the check's transcript.

They also do, once for every check, what every exchange owes the contract: each response and frame
is scanned for the internal key (G-PROXY-2 on the gateway, R-AUTH-3 on the runtime), a target that
rate-limits is honoured (429 and Retry-After), and every wait that runs out says what was awaited,
for how long, and what came instead.
"""

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import quote

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conformance.run_state import state
from conformance.transcript import Transcript, body_text
from contract.frames import FrameError, ServerFrame, parse_server_frame
from contract.routes import SOCKET

TEST_HEADER = "X-Sessionlab-Test"
Party = Literal["gateway", "runtime"]
# Which requirement a leaked internal key fails, by the party that answered.
LEAK_REQUIREMENT: dict[Party, str] = {"gateway": "G-PROXY-2", "runtime": "R-AUTH-3"}
# A Retry-After longer than this is not waited out: the run would stall on one answer.
MAX_RETRY_AFTER = 30.0
MAX_RETRIES = 6


def retry_after(response: httpx.Response) -> float:
    """Seconds a 429 asks to wait: delta-seconds or an HTTP date; 1 s when it says nothing."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return 1.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 1.0
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class PacedTransport(httpx.AsyncBaseTransport):
    """Waits its turn under the run's pace; on a 429 waits as asked and tries again."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pacing = state().pacing
        for _ in range(MAX_RETRIES):
            await pacing.wait_turn()
            pacing.sent()
            response = await self.inner.handle_async_request(request)
            if response.status_code != 429:
                return response
            await response.aread()
            await response.aclose()
            delay = retry_after(response)
            pacing.rate_limited(delay)
            await asyncio.sleep(delay)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Probe(httpx.AsyncClient):
    """An httpx client that knows which party it talks to."""

    party: Party
    # The requirement a failed create through this client fails (see support.create_session).
    create_requirement: str


def _leak(key: str | None, party: Party, answer: str, asked: str, where: str) -> None:
    """Report the internal key in an answer, unless the question carried it (an echo)."""
    if key and key in answer and key not in asked:
        state().found(
            LEAK_REQUIREMENT[party],
            f"{LEAK_REQUIREMENT[party]} failed: expected no {party} answer carrying the internal "
            f"key, received it in the answer to {where}",
        )


def http_probe(
    base_url: str,
    transcript: Transcript,
    headers: dict[str, str],
    timeout: float,
    party: Party = "gateway",
    internal_key: str | None = None,
    create_requirement: str = "R-CREATE-1",
) -> Probe:
    """An httpx client whose every exchange lands in the transcript."""

    async def on_request(request: httpx.Request) -> None:
        shown = {k: v for k, v in request.headers.items() if k.lower() == "x-internal-auth"}
        body = body_text(request.content) if request.content else ""
        extra = f" {shown}" if shown else ""
        transcript.record("http-request", f"{request.method} {request.url}{extra} {body}".rstrip())

    async def on_response(response: httpx.Response) -> None:
        await response.aread()
        kind = response.headers.get("content-type", "")
        text = response.content.decode("utf-8", "replace")
        request = response.request
        # What the question carried may come back (a refusal quoting a wrong key); the key
        # itself, sent as the credential, may not.
        carried = [value for value in request.headers.values() if value != internal_key]
        asked = " ".join([*carried, str(request.url), request.content.decode("utf-8", "replace")])
        answer = text + " " + " ".join(response.headers.values())
        _leak(internal_key, party, answer, asked, f"{request.method} {request.url.path}")
        transcript.record(
            "http-response",
            f"{response.status_code} {kind} {body_text(response.content)}".rstrip(),
        )

    client = Probe(
        base_url=base_url,
        headers=headers,
        timeout=timeout,
        trust_env=False,
        event_hooks={"request": [on_request], "response": [on_response]},
        transport=PacedTransport(httpx.AsyncHTTPTransport(trust_env=False)),
    )
    client.party = party
    client.create_requirement = create_requirement
    return client


def describe_close(closed: ConnectionClosed) -> str:
    """How a socket closed, as a report shows it."""
    # `rcvd`: ConnectionClosed.code and .reason are deprecated (websockets 13.1).
    frame = closed.rcvd
    # No close frame at all is an abnormal closure, 1006.
    return f"close {frame.code} {frame.reason!r}" if frame else "close 1006 (no close frame)"


class NoFrame(TimeoutError):
    """A socket that stays open but answers nothing; the message says after what, how long."""


class TurnDidNotEnd(TimeoutError):
    """Frames came, or none, but not the one that ends a turn."""


class SocketRefused(Exception):
    """A user's WebSocket that did not open; the message says how (an HTTP status, no handshake)."""


class SocketClosed(ConnectionClosed):
    """The gateway closed the socket while a frame was awaited."""

    def __init__(self, closed: ConnectionClosed, awaited: str) -> None:
        super().__init__(closed.rcvd, closed.sent, closed.rcvd_then_sent)
        self.awaited = awaited

    def __str__(self) -> str:
        return f"the socket closed ({describe_close(self)}) while awaiting {self.awaited}"


def _frame_shown(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


class Socket:
    """A WebSocket to the gateway whose frames land in the transcript; every wait has a deadline."""

    def __init__(
        self,
        connection: ClientConnection,
        transcript: Transcript,
        timeout: float,
        internal_key: str | None = None,
    ):
        self.connection = connection
        self.transcript = transcript
        self.timeout = timeout
        self.internal_key = internal_key
        self.last_sent = "nothing sent yet"
        self._sent: list[str] = []

    async def send_text(self, text: str) -> None:
        self.transcript.record("ws-send", text)
        self.last_sent = f"the frame {_frame_shown(text, 80)}"
        self._sent.append(text)
        try:
            await self.connection.send(text)
        except ConnectionClosed as closed:
            self.transcript.record("ws-close", describe_close(closed))
            raise SocketClosed(closed, f"a chance to send {self.last_sent}") from None

    async def send_json(self, frame: dict[str, Any]) -> None:
        await self.send_text(json.dumps(frame))

    async def send_bytes(self, data: bytes) -> None:
        self.transcript.record("ws-send", f"<binary {len(data)} bytes>")
        self.last_sent = f"a binary frame of {len(data)} bytes"
        try:
            await self.connection.send(data)
        except ConnectionClosed as closed:
            self.transcript.record("ws-close", describe_close(closed))
            raise SocketClosed(closed, f"a chance to send {self.last_sent}") from None

    async def recv_text(self, timeout: float | None = None) -> str:
        seconds = timeout or self.timeout
        try:
            async with asyncio.timeout(seconds):
                message = await self.connection.recv()
        except TimeoutError:
            raise NoFrame(
                f"no frame within {seconds:g} s after {self.last_sent}; the socket is still open "
                "but answers nothing"
            ) from None
        except ConnectionClosed as closed:
            self.transcript.record("ws-close", describe_close(closed))
            raise SocketClosed(closed, f"a frame after {self.last_sent}") from None
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        self.transcript.record("ws-recv", text)
        _leak(self.internal_key, "gateway", text, " ".join(self._sent), "a WebSocket frame")
        return text

    async def recv_frame(self, timeout: float | None = None) -> ServerFrame:
        """The next frame, validated; a malformed one raises FrameError naming the problem and
        showing the frame."""
        text = await self.recv_text(timeout)
        try:
            return parse_server_frame(text)
        except FrameError as exc:
            raise FrameError(f"{exc}, in the frame {_frame_shown(text)}") from None

    async def turn(self, timeout: float | None = None) -> list[ServerFrame]:
        """Frames up to the one that ends a turn: a final assistant chunk, a tool_call, an error."""
        frames: list[ServerFrame] = []
        seconds = timeout or self.timeout
        asked = self.last_sent
        try:
            async with asyncio.timeout(seconds):
                while True:
                    frame = await self.recv_frame(timeout=seconds * 2)
                    frames.append(frame)
                    if ends_turn(frame):
                        return frames
        except TimeoutError:
            if frames:
                last = frames[-1].model_dump_json(exclude_none=True)
                came = f"{len(frames)} frame(s) came, none ending it (the last: {last})"
            else:
                came = "no frame came; the socket is still open"
            raise TurnDidNotEnd(
                f"no final assistant_message, tool_call or error within {seconds:g} s after "
                f"{asked}: {came}"
            ) from None

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
    internal_key: str | None = None,
    query: str = "",
) -> AsyncIterator[Socket]:
    url = ws_base + SOCKET.raw_path(session_id=quote(session_id, safe="")) + query
    transcript.record("ws-open", url)
    await state().pacing.wait_turn()
    async with asyncio.timeout(timeout):
        connection = await connect(
            url,
            additional_headers=headers,
            open_timeout=timeout,
            ping_interval=None,
            max_size=None,
        )
    try:
        yield Socket(connection, transcript, timeout, internal_key)
    finally:
        await connection.close()


__all__ = ["FrameError", "Socket", "SocketRefused", "ends_turn", "http_probe", "open_socket"]

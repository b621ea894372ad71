"""WebSocketRepository: one socket at a time; connect, reconnect, disconnect. Incoming frames go
to a handler. What happens around a close (waiting for it, noticing a drop, reopening) is the
client model's socket policy."""

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from contract.ids import WEBSOCKET_FALLBACK_ID
from contract.routes import SOCKET
from simulators.ide.settings import IdeSettings
from simulators.ide.trace import Trace

FrameHandler = Callable[[str], Awaitable[None]]
ClosedHandler = Callable[[str], None]


class SocketError(Exception):
    pass


@dataclass(frozen=True)
class SocketPolicy:
    encode_ids: bool
    # The design note closes the old socket, then opens the new one; the shipped client asks the
    # old one to close and opens the new one at once.
    waits_for_old_close: bool
    # The design note's client reopens a dropped socket on the next send; the shipped one never.
    reopens_after_drop: bool
    # The design note's client ends a turn in an error when its socket goes; the shipped one
    # loses its sends without a word and its turn never ends.
    reports_drop: bool


DESIGNED_SOCKET = SocketPolicy(
    encode_ids=True, waits_for_old_close=True, reopens_after_drop=True, reports_drop=True
)
SHIPPED_SOCKET = SocketPolicy(
    encode_ids=False, waits_for_old_close=False, reopens_after_drop=False, reports_drop=False
)


class WebSocketRepository:
    def __init__(
        self,
        settings: IdeSettings,
        trace: Trace,
        policy: SocketPolicy,
        on_text: FrameHandler,
        on_closed: ClosedHandler | None = None,
    ) -> None:
        self.settings = settings
        self.trace = trace
        self.policy = policy
        self.on_text = on_text
        self.on_closed = on_closed
        self.session_id: str | None = None
        self.connection: ClientConnection | None = None
        self.closed_session_ids: list[str] = []
        self._reader: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def url(self, session_id: str | None) -> str:
        """C-WS-1: gateway base, ws scheme, /ws/{id}; /ws/ide-session with no id."""
        named = session_id or WEBSOCKET_FALLBACK_ID
        # The shipped client pastes the id into the URL as it is.
        path_id = quote(named, safe="") if self.policy.encode_ids else named
        return self.settings.ws_base + SOCKET.raw_path(session_id=path_id)

    @property
    def connected(self) -> bool:
        return self.connection is not None and self._reader is not None and not self._reader.done()

    async def connect(self, session_id: str | None) -> None:
        url = self.url(session_id)
        try:
            # The shipped client has no deadline here; this one bounds the simulator's wait.
            async with asyncio.timeout(self.settings.scaled(self.settings.connect_timeout)):
                self.connection = await connect(
                    url,
                    additional_headers=self.settings.headers,
                    ping_interval=None,
                    max_size=None,
                )
        # InvalidHandshake: a refusal (InvalidStatus), or a handshake cut short (InvalidMessage).
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            self.connection = None
            self.session_id = session_id
            raise SocketError(f"WebSocket {url} did not open: {type(exc).__name__}: {exc}") from exc
        self.session_id = session_id
        self.trace.traffic(f"WS open {url}")
        self._reader = asyncio.create_task(
            self._read(self.connection), name=f"ws-read:{session_id}"
        )

    async def _read(self, connection: ClientConnection) -> None:
        reason = f"code {connection.close_code}"
        try:
            async for message in connection:
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                await self.on_text(text)
            reason = f"code {connection.close_code} {connection.close_reason or ''}".strip()
        except ConnectionClosed as exc:
            reason = str(exc)
        # Closed by the other side (our own disconnect clears self.connection first).
        if connection is self.connection:
            self.trace.traffic(f"WS closed by the gateway: {reason}")
            if self.policy.reports_drop and self.on_closed is not None:
                self.on_closed(f"the WebSocket closed: {reason}")

    async def _close(self, connection: ClientConnection, session_id: str | None) -> None:
        await connection.close()
        self.trace.traffic(f"WS close {self.url(session_id)} code {connection.close_code}")

    async def disconnect(self, wait: bool = True) -> None:
        connection, reader, session_id = self.connection, self._reader, self.session_id
        self.connection, self._reader = None, None
        if connection is not None:
            if session_id is not None:
                self.closed_session_ids.append(session_id)
            if wait:
                await self._close(connection, session_id)
            else:
                task = asyncio.create_task(self._close(connection, session_id))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        if reader is not None:
            # Not waiting: the old socket's frames are no longer read, whatever it still sends.
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if wait:
            # Closes a reconnect left running end before the IDE does.
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def reconnect(self, session_id: str) -> None:
        """C-WS-2: the old socket closed (waited for or not, per policy), then /ws/{new id}."""
        await self.disconnect(wait=self.policy.waits_for_old_close)
        await self.connect(session_id)

    async def _reopen(self) -> None:
        """The socket dropped under us: reconnect to the same session."""
        session_id = self.session_id
        self.trace.step("chat", None, f"socket to {session_id} dropped; reconnecting", "C-WS-2")
        await self.disconnect()
        await self.connect(session_id)

    def _lost(self, text: str, why: str) -> None:
        self.trace.traffic(f"WS send lost ({why}) {text[:300]}")

    async def send(self, frame: dict[str, Any]) -> None:
        text = json.dumps(frame)
        if not self.policy.reopens_after_drop:
            # A closed sink takes the frame and drops it.
            if self.connection is None:
                self._lost(text, "no socket")
                return
            self.trace.traffic(f"WS send {text[:300]}")
            try:
                await self.connection.send(text)
            except ConnectionClosed:
                self._lost(text, "the socket is closed")
            return
        if not self.connected and self.session_id is not None:
            await self._reopen()
        for attempt in range(2):
            if self.connection is None:
                raise SocketError("no WebSocket is open")
            self.trace.traffic(f"WS send {text[:300]}")
            try:
                await self.connection.send(text)
                return
            except ConnectionClosed as exc:
                # A cut not yet noticed by the reader: one fresh socket, then give up.
                if attempt == 1 or self.session_id is None:
                    raise SocketError(f"the WebSocket closed: {exc}") from exc
                await self._reopen()

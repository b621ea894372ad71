"""WebSocketRepository: one socket at a time; connect, reconnect (the old one closed first),
disconnect. Incoming frames go to a handler; a dropped socket is noticed and reported."""

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from conformance.contract.ids import WEBSOCKET_FALLBACK_ID
from simulators.ide.settings import IdeSettings
from simulators.ide.trace import Trace

FrameHandler = Callable[[str], Awaitable[None]]
ClosedHandler = Callable[[str], None]


class SocketError(Exception):
    pass


class WebSocketRepository:
    def __init__(
        self,
        settings: IdeSettings,
        trace: Trace,
        on_text: FrameHandler,
        on_closed: ClosedHandler | None = None,
    ) -> None:
        self.settings = settings
        self.trace = trace
        self.on_text = on_text
        self.on_closed = on_closed
        self.session_id: str | None = None
        self.connection: ClientConnection | None = None
        self.closed_session_ids: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    def url(self, session_id: str | None) -> str:
        """C-WS-1: gateway base, ws scheme, /ws/{id}; /ws/ide-session with no id."""
        return f"{self.settings.ws_base}/ws/{quote(session_id or WEBSOCKET_FALLBACK_ID, safe='')}"

    @property
    def connected(self) -> bool:
        return self.connection is not None and self._reader is not None and not self._reader.done()

    async def connect(self, session_id: str | None) -> None:
        url = self.url(session_id)
        try:
            async with asyncio.timeout(self.settings.scaled(self.settings.connect_timeout)):
                self.connection = await connect(
                    url,
                    additional_headers=self.settings.headers,
                    ping_interval=None,
                    max_size=None,
                )
        except (OSError, TimeoutError, InvalidStatus, InvalidURI) as exc:
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
        # Closed by the other side (our own disconnect clears self.connection first): a turn
        # waiting on this socket will never be answered, and must hear so.
        if connection is self.connection and self.on_closed is not None:
            self.trace.traffic(f"WS closed by the gateway: {reason}")
            self.on_closed(f"the WebSocket closed: {reason}")

    async def disconnect(self) -> None:
        connection, reader, session_id = self.connection, self._reader, self.session_id
        self.connection, self._reader = None, None
        if connection is not None:
            await connection.close()
            self.trace.traffic(f"WS close {self.url(session_id)} code {connection.close_code}")
            if session_id is not None:
                self.closed_session_ids.append(session_id)
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def reconnect(self, session_id: str) -> None:
        """C-WS-2: close the old socket first, then open /ws/{new id}."""
        await self.disconnect()
        await self.connect(session_id)

    async def _reopen(self) -> None:
        """The socket dropped under us: reconnect to the same session, as the IDE does."""
        session_id = self.session_id
        self.trace.step("chat", None, f"socket to {session_id} dropped; reconnecting", "C-WS-2")
        await self.disconnect()
        await self.connect(session_id)

    async def send(self, frame: dict[str, Any]) -> None:
        if not self.connected and self.session_id is not None:
            await self._reopen()
        text = json.dumps(frame)
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

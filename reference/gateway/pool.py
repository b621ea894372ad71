"""The gateway's connections to the runtime: one broken exchange must not break another.

httpx keeps connections to the runtime open for reuse. A runtime that answers one request badly
can leave its connection unusable in two ways: bytes after the end of its answer (which the next
request on that connection would read as its own answer), or a connection it has dropped while
the pool still holds it. Either would fail a later request of an unrelated client. So:

- after each answer, an idle connection holding unread bytes is closed, never reused;
- a request that fails on a connection the runtime broke (reset, closed, garbled) is retried
  once, after the idle connections are dropped, when retrying cannot do anything twice: GET and
  HEAD only. A create or a turn sent twice would act twice; it fails with its 502 instead.
"""

from collections.abc import AsyncIterator

import httpcore
import httpx

IDEMPOTENT = frozenset({"GET", "HEAD"})
# Failures of a connection the runtime broke; a refused connect or a timeout is an outage, and
# retrying it at once would only double the wait.
BROKEN = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


class HygienicTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__(trust_env=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except BROKEN:
            if request.method not in IDEMPOTENT:
                await self.drop_idle()
                raise
            await self.drop_idle()
            response = await super().handle_async_request(request)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_SweepAfter(response.stream, self),
            extensions=response.extensions,
        )

    async def drop_idle(self) -> None:
        """Close every idle connection: after one broke, the others may share its fate (a
        runtime restarted), and the retry must get a fresh one."""
        for connection in self._pool.connections:
            if connection.is_idle():
                await connection.aclose()

    async def sweep(self) -> None:
        """Close idle connections holding bytes nobody asked for."""
        for connection in self._pool.connections:
            if connection.is_idle() and _holds_unread_bytes(connection):
                await connection.aclose()


def _holds_unread_bytes(connection: httpcore.AsyncConnectionInterface) -> bool:
    # httpcore keeps the HTTP/1.1 parser private; without one to ask, the connection is trusted
    # as httpx itself would.
    inner = getattr(connection, "_connection", None)
    parser = getattr(inner, "_h11_state", None)
    trailing = getattr(parser, "trailing_data", None)
    return bool(trailing and trailing[0])


class _SweepAfter(httpx.AsyncByteStream):
    def __init__(
        self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, transport: HygienicTransport
    ) -> None:
        assert isinstance(stream, httpx.AsyncByteStream)
        self._stream = stream
        self._transport = transport

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()
        await self._transport.sweep()

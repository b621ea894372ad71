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

import select
import socket
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpcore
import httpx

# Connections to the runtime at most: more than the requests and socket checks a busy gateway has
# in flight at once, so that a burst of sockets opening does not queue behind a handful of
# connections (httpx's default is 100).
POOL_CONNECTIONS = 256
# Of those, how many stay open once idle. Not all of them: httpcore checks every connection it
# holds, and counts the idle ones, on each request and each answer, so a pool left large after
# a burst slows every later request.
POOL_KEEPALIVE = 32
# Seconds a request waits for a free connection before it is answered (503 over REST, close 1013
# for a socket being opened), rather than waiting until its client or the server gives up on it.
POOL_WAIT = 5.0
IDEMPOTENT = frozenset({"GET", "HEAD"})
# Failures of a connection the runtime broke; a refused connect or a timeout is an outage, and
# retrying it at once would only double the wait.
BROKEN = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


class HygienicTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__(
            trust_env=False,
            limits=httpx.Limits(
                max_connections=POOL_CONNECTIONS, max_keepalive_connections=POOL_KEEPALIVE
            ),
        )
        # httpx offers no way to hand its pool a network backend; the pool takes it from here
        # for every connection it opens.
        self._pool._network_backend = _ReadinessCachingBackend()

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


class _ReadinessCachingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's own backend, its streams answering "is_readable" from a socket looked up once.

    httpcore asks every pooled connection whether it is readable (dropped by the server) on each
    request and each answer, and anyio builds a table of all of a socket's attributes for every
    lookup: a fifth of the gateway's CPU per proxied request, before this.
    """

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _ReadinessCachingStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(path, timeout, socket_options)
        return _ReadinessCachingStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _ReadinessCachingStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        sock = inner.get_extra_info("socket")
        self._socket = sock if isinstance(sock, socket.socket) else None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        # A TLS stream wraps the socket anew: its readiness is asked of it, uncached.
        return await self._inner.start_tls(ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._socket is not None:
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


def _readable(sock: socket.socket) -> bool:
    """Data or EOF waiting: on an idle connection, the peer has closed it or sent too much."""
    if sock.fileno() < 0:
        return True
    poll = select.poll()
    poll.register(sock, select.POLLIN)
    return bool(poll.poll(0))

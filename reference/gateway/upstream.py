"""The gateway's pooled client to the runtime: one broken exchange must not break another.

aiohttp, not httpx: per proxied request httpx spent about a millisecond of the gateway's CPU,
three quarters of all it spent on a create; aiohttp, with its C parser, an eighth of that
(docs/performance.md).

A runtime that answers one request badly can leave its connection unusable: bytes after the end of
its answer, or a connection it dropped while the pool still holds it. So:

- a connection is reused only when its answer was read to the end and nothing else came on it
  (aiohttp closes any other: one that failed to parse, holds unread bytes or was left mid-body);
- a request that fails on a connection the runtime broke (reset, closed, garbled) is tried once
  more when that cannot do anything twice: GET and HEAD only. A create or a turn sent twice would
  act twice; it fails with its 502 instead;
- at most POOL_CONNECTIONS requests are in flight; one waits at most POOL_WAIT for its turn, then
  it is answered (503, or close 1013 for a socket being opened) rather than left to wait until its
  client or the server gives up on it.
"""

import asyncio
import codecs
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from reference.gateway.errors import Broken, Busy, Unreachable, UpstreamError

# Requests to the runtime in flight at most: more than the requests and socket checks a busy
# gateway has at once, so that a burst of sockets opening does not queue behind a handful.
POOL_CONNECTIONS = 256
# Seconds a request waits for one of those before it is answered as busy.
POOL_WAIT = 5.0
IDEMPOTENT = frozenset({"GET", "HEAD"})
# aiohttp would add a content type to a body the client sent without one (the runtime would then
# refuse a JSON body as octet-stream) and ask for compressed answers the gateway passes on as is.
_NOT_ADDED = ("Content-Type", "Accept-Encoding")


@dataclass(frozen=True)
class Answer:
    """A runtime answer, read whole."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Streamed:
    """A runtime answer whose body is read as it comes (a turn's SSE stream)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise classify(exc) from exc

    async def text(self) -> AsyncIterator[str]:
        """The body as text, decoded across chunk boundaries."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            async for chunk in self._response.content.iter_any():
                if text := decoder.decode(chunk):
                    yield text
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise classify(exc) from exc
        if tail := decoder.decode(b"", final=True):
            yield tail


def classify(exc: BaseException) -> UpstreamError:
    """The client's answer to a request that got no usable answer from the runtime.

    Refused or timed-out connections mean the runtime is down or overloaded: 503, so the IDE may
    retry. Anything else (a connection dropped mid-answer, an answer that is no HTTP) is a bad
    upstream answer: 502. Never 500, which would blame the gateway itself.
    """
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return Unreachable("no connection in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Unreachable(f"connection refused ({exc.os_error.strerror or exc.os_error})")
    if isinstance(exc, TimeoutError):
        # aiohttp's read timeouts are TimeoutErrors too.
        return Unreachable("no answer in time")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Broken("connection closed before the answer ended")
    if isinstance(exc, aiohttp.ClientResponseError):
        # A malformed answer: the parser's message, first line (it goes on to quote the bytes).
        return Broken(f"malformed answer: {exc.message.splitlines()[0] if exc.message else exc}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return Broken("answer cut short")
    return Broken(str(exc) or type(exc).__name__)


class Upstream:
    """The one pooled client to the runtime, carrying the internal key on every call."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        connect_timeout: float,
        request_timeout: float,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._headers = dict(headers)
        self._connect_timeout = connect_timeout
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=request_timeout
        )
        # Read when the client is made, so a test may shrink them first.
        self._slots = asyncio.Semaphore(POOL_CONNECTIONS)
        self._wait = POOL_WAIT
        self._connections = POOL_CONNECTIONS
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Upstream":
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections, limit_per_host=0),
            headers=self._headers,
            timeout=self._timeout,
            skip_auto_headers=_NOT_ADDED,
            # Never a cookie of one client's answer on another client's request.
            cookie_jar=aiohttp.DummyCookieJar(),
            # Proxy variables of the environment must not reroute calls to a loopback runtime.
            trust_env=False,
            auto_decompress=False,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url(self, path: str) -> URL:
        # As sent: the proxy re-quoted each segment, and `%2E%2E` must not become `..`.
        return URL(self._base + path, encoded=True)

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self._slots.locked():
            try:
                async with asyncio.timeout(self._wait):
                    await self._slots.acquire()
            except TimeoutError:
                raise Busy() from None
        else:
            await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        try:
            return await self._request_once(method, path, body, headers)
        except Broken:
            if method not in IDEMPOTENT:
                raise
        # The failed connection is closed; the retry gets another one.
        return await self._request_once(method, path, body, headers)

    async def _request_once(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str] | None
    ) -> Answer:
        assert self._session is not None, "the runtime client is used outside its lifespan"
        async with self._slot():
            try:
                async with self._session.request(
                    method,
                    self._url(path),
                    data=body or None,
                    headers=headers,
                    allow_redirects=False,
                ) as response:
                    content = await response.read()
                    return Answer(response.status, response.headers, content)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise classify(exc) from exc

    async def get(self, path: str, headers: Mapping[str, str] | None = None) -> Answer:
        return await self.request("GET", path, headers=headers)

    async def head(self, path: str) -> Answer:
        return await self.request("HEAD", path)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        json_body: Any,
        headers: Mapping[str, str],
        read_timeout: float,
    ) -> AsyncIterator[Streamed]:
        """An answer read as it comes; each read may wait up to `read_timeout`."""
        assert self._session is not None, "the runtime client is used outside its lifespan"
        body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._connect_timeout, sock_read=read_timeout
        )
        async with self._slot():
            try:
                response = await self._session.request(
                    method,
                    self._url(path),
                    data=body,
                    headers={**headers, "Content-Type": "application/json"},
                    timeout=timeout,
                    allow_redirects=False,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise classify(exc) from exc
            try:
                yield Streamed(response)
            finally:
                # A stream left before its end is closed, not pooled.
                response.release()

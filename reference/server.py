"""Run an ASGI app under a real uvicorn server on a loopback port, from sync or async code."""

import asyncio
import contextlib
import contextvars
import logging
import math
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import uvicorn
from starlette.types import ASGIApp
from uvicorn.loops.auto import auto_loop_factory
from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.protocols.http.h11_impl import H11Protocol

from reference.settings import DEFAULT_MAX_BYTES

LOOPBACK = "127.0.0.1"

# The service whose server task is running. Connections and requests are tasks spawned from that
# task, so they inherit it: a line logged by the server library or a shared helper can still be
# told to come from the runtime or the gateway when both run in one process.
SERVICE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sessionlab_service", default=None
)
# The server library's two loggers, by what their lines are about.
_SERVER_PARTS = {"uvicorn.error": "server", "uvicorn.access": "access"}


def service_logger_name(record: logging.LogRecord) -> str:
    """The name a log line shows: `sessionlab.<service>[.<part>]` inside a service, else the
    logger's own name."""
    service = SERVICE.get()
    own = f"sessionlab.{service}"
    if service is None or record.name == own or record.name.startswith(own + "."):
        return record.name
    part = _SERVER_PARTS.get(record.name) or record.name.removeprefix("sessionlab.")
    return f"{own}.{part}"


class ServiceName(logging.Filter):
    """Adds `service_logger` (see service_logger_name) for a handler's format string. On the
    handler, not the logger: the record keeps its real name for every other handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.service_logger = service_logger_name(record)
        return True


class ClientTrouble(logging.Filter):
    """Lowers what a client causes, and the server copes with, below WARNING: these lines are
    written by libraries at ERROR (with a traceback) or as a WARNING flood, and would read as a
    fault of the service."""

    # logger name -> {message: (level, message shown instead)}
    LOWERED: ClassVar[dict[str, dict[str, tuple[int, str]]]] = {
        "uvicorn.error": {
            # A text frame that is not UTF-8: the socket is closed with 1007, as RFC 6455 says.
            "Invalid UTF-8 sequence received from client.": (
                logging.INFO,
                "a WebSocket client sent a text frame that is not UTF-8; closed with 1007",
            ),
        },
        "asyncio": {
            # Writes to a peer that has gone; each after the fifth is logged, until the
            # connection's loss is processed.
            "socket.send() raised exception.": (
                logging.DEBUG,
                "socket.send() raised exception: the peer has gone",
            ),
        },
    }

    def filter(self, record: logging.LogRecord) -> bool:
        lowered = self.LOWERED.get(record.name, {}).get(str(record.msg))
        if lowered is None:
            return True
        level, message = lowered
        # The logger's level was checked against the original level; check the new one.
        if not logging.getLogger(record.name).isEnabledFor(level):
            return False
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.msg, record.args = message, ()
        record.exc_info, record.exc_text = None, None
        return True


class OncePerInterval(logging.Filter):
    """Lets one line of a kind through per interval: a refused connection is logged once, with
    the count refused since, not once per attempt (a flood of them filled a disk in seconds)."""

    # logger name -> the start of the messages limited
    LIMITED: ClassVar[dict[str, tuple[str, ...]]] = {
        # The process is out of file descriptors: every attempt to accept fails alike.
        "asyncio": ("socket.accept() out of system resource",),
        # Garbage instead of a request head: one line says it is happening.
        "uvicorn.error": ("Invalid HTTP request received.",),
    }

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[str, float] = {}
        self._dropped: dict[str, int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        kind = next((k for k in self.LIMITED.get(record.name, ()) if message.startswith(k)), None)
        if kind is None:
            return True
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.interval:
                self._dropped[kind] = self._dropped.get(kind, 0) + 1
                return False
            self._last[kind] = now
            dropped = self._dropped.pop(kind, 0)
        if dropped:
            record.msg = f"{kind} ({dropped} more like it in the last {self.interval:g} s)"
            record.args = ()
        # The traceback is the same each time, and the reason is in the message.
        record.exc_info, record.exc_text = None, None
        return True


def quiet_client_trouble() -> None:
    """Install ClientTrouble and OncePerInterval on the loggers they watch (once)."""
    for name in ClientTrouble.LOWERED:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, ClientTrouble) for existing in logger.filters):
            logger.addFilter(ClientTrouble())
    for name in OncePerInterval.LIMITED:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, OncePerInterval) for existing in logger.filters):
            logger.addFilter(OncePerInterval())


@dataclass(frozen=True)
class ServerLimits:
    """What one service's server takes from its clients (docs/decisions.md, "Hostile input")."""

    # Largest WebSocket frame (larger: close 1009); the app limits REST bodies to the same.
    max_bytes: int = DEFAULT_MAX_BYTES
    # Seconds a connection may take to send a whole request head, from its opening or from the
    # first byte of a later request on it.
    head_timeout: float = 5.0
    # Seconds a kept-alive connection may stay silent between a response and its next request.
    # Longer than the idle time clients keep a connection for (5 s for httpx, 15 s for Dart's
    # HttpClient), so that no client sends a request on a connection the server is just closing.
    idle_timeout: float = 75.0
    # Open connections at most, further bounded by the files the process may open.
    max_connections: int = 1000
    # False: uvicorn's HTTP protocol as it comes, with no deadline for heads and no eviction at
    # the bound; the benchmark's baseline, never what `serve` runs.
    guard_heads: bool = True


_LIMITS_ATTRIBUTE = "sessionlab_server_limits"
# Files kept free for everything but inbound connections: the store, the gateway's pool to the
# runtime, logs.
_RESERVED_FILES = 64


def attach_limits(app: Any, limits: ServerLimits) -> None:
    """Let the server that runs `app` know its limits (an app wrapped later runs with the
    defaults)."""
    setattr(app, _LIMITS_ATTRIBUTE, limits)


def limits_of(app: ASGIApp) -> ServerLimits:
    limits = getattr(app, _LIMITS_ATTRIBUTE, None)
    return limits if isinstance(limits, ServerLimits) else ServerLimits()


def connection_cap(wanted: int) -> int:
    """`wanted`, but never more than half the files the process may open, less a reserve: both
    services may share one process, and a process out of files cannot even answer /health."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(8, min(wanted, (soft - _RESERVED_FILES) // 2))


# uvicorn's fastest HTTP/1.1 protocol installed: httptools' C parser where it is (the
# `uvicorn[standard]` extra), else h11 in pure Python; both offer what the guard below uses.
if TYPE_CHECKING:
    _FastestHttp = H11Protocol
else:
    _FastestHttp = AutoHTTPProtocol


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop where it is installed, else asyncio's: as `uvicorn` itself picks."""
    return auto_loop_factory()


def guarded_http(
    head_timeout: float, max_connections: int, idle_timeout: float | None = None
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol with a deadline for request heads and a bound on connections.

    uvicorn waits for a request head for ever: a client that sends half of one holds its
    connection, and enough of them exhaust the process's files. Here a head must be complete
    within `head_timeout` of the connection's opening or of the request's first byte; a
    kept-alive connection may stay silent for `idle_timeout` after a response; and at the bound,
    a new connection evicts the oldest one still waiting for a head (a client that sends nothing
    loses its place, not an active one), else it is closed at once.
    """
    idle = head_timeout if idle_timeout is None else idle_timeout
    # Connections awaiting a request head, oldest first (dicts keep insertion order), each with
    # the way to drop it.
    waiting: dict[_FastestHttp, Callable[[], None]] = {}

    class HeadDeadline(_FastestHttp):
        _head_timer: asyncio.TimerHandle | None = None
        _idle = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            if len(self.connections) > max_connections:
                drop_oldest = next(iter(waiting.values()), None)
                if drop_oldest is None:
                    transport.close()
                    return
                drop_oldest()
            self._await_head()

        def _await_head(self, seconds: float = head_timeout, idle: bool = False) -> None:
            self._head_arrived()
            self._idle = idle
            waiting[self] = self.drop_headless
            self._head_timer = self.loop.call_later(seconds, self.drop_headless)

        def _head_arrived(self) -> None:
            waiting.pop(self, None)
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def drop_headless(self) -> None:
            self._head_arrived()
            # After an upgrade the transport is the socket's, which has its own rules.
            if self.transport.get_protocol() is self and not self.transport.is_closing():
                self.transport.close()
                # Counted out now, not when the loop gets round to connection_lost: uvicorn
                # answers 503 to a request that arrives while the count is still at its bound.
                self.connections.discard(self)

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            super().data_received(data)
            if self.cycle is not cycle or self.transport.get_protocol() is not self:
                self._head_arrived()
            elif self._idle and self in waiting:
                # The next request has begun: its head has the head deadline, not the idle one.
                self._await_head()

        def on_response_complete(self) -> None:
            cycle = self.cycle
            super().on_response_complete()
            # Kept alive and no pipelined request begun: the next head is awaited alike.
            if not self.transport.is_closing() and self.cycle is cycle:
                self._await_head(idle, idle=True)

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_arrived()
            super().connection_lost(exc)

    return HeadDeadline


def bind_socket(host: str = LOOPBACK, port: int = 0, reuse_port: bool = False) -> socket.socket:
    """`reuse_port`: several processes of one service each listen on the port with a socket of
    their own, and the kernel spreads new connections over them (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so, and without
    # it every small response waits out the client's delayed ACK (about 40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # A restarted service takes its old port back at once, even with connections in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class _QuietServer(uvicorn.Server):
    # Signals belong to whoever runs the servers (the CLI, or the test process), not to each one.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def make_server(
    app: ASGIApp,
    log_level: str = "warning",
    limits: ServerLimits | None = None,
    stop_timeout: float | None = None,
) -> uvicorn.Server:
    """`stop_timeout`: seconds a stop waits for requests in flight before cancelling them;
    None waits for as long as they take."""
    quiet_client_trouble()
    limits = limits or limits_of(app)
    connections = connection_cap(limits.max_connections)
    # log_config=None: the caller owns logging (one format for every service, caplog in tests).
    config = uvicorn.Config(
        app,
        log_level=log_level,
        log_config=None,
        lifespan="on",
        ws_ping_interval=None,
        http=(
            guarded_http(limits.head_timeout, connections, limits.idle_timeout)
            if limits.guard_heads
            else "h11"
        ),
        # uvicorn's own timer for a silent kept-alive connection, in whole seconds (its type).
        timeout_keep_alive=math.ceil(limits.idle_timeout),
        # The frame's header gives its length: a larger frame is refused (1009) unread.
        ws_max_size=limits.max_bytes,
        # No compression: a compressed frame's header tells nothing of its size, so each one
        # is inflated up to the limit before it can be refused, and the memory stays with the
        # process after the burst. The IDE's frames are small.
        ws_per_message_deflate=False,
        # Requests in flight at most; further ones are answered 503 rather than queued. uvicorn
        # counts open connections too, which the guarded protocol keeps at `connections`.
        limit_concurrency=connections + 1,
        # Connections the kernel holds before accepting: no more than the server would take.
        backlog=min(2048, connections),
        # Whole seconds (uvicorn's type), rounded up: never shorter than asked.
        timeout_graceful_shutdown=None if stop_timeout is None else math.ceil(stop_timeout),
    )
    return _QuietServer(config)


class ThreadedServer:
    """A uvicorn server on its own event loop thread; start() returns once it accepts."""

    def __init__(
        self, app: ASGIApp, host: str = LOOPBACK, port: int = 0, log_level: str = "warning"
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 15.0) -> "ThreadedServer":
        if self._thread is not None:
            raise RuntimeError("server already running")
        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        server = make_server(self.app, self.log_level)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with asyncio.Runner(loop_factory=loop_factory()) as runner:
                    runner.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # reported to the starting thread below
                failure.append(exc)
            finally:
                sock.close()

        self._server = server
        self._thread = threading.Thread(target=run, name=f"uvicorn:{self.port}", daemon=True)
        self._thread.start()
        deadline = threading.Event()
        waited = 0.0
        while not server.started:
            if failure or not self._thread.is_alive():
                self._thread.join(1)
                self._thread = None
                raise RuntimeError(f"server on port {self.port} failed to start: {failure!r}")
            if waited >= timeout:
                raise TimeoutError(f"server on port {self.port} did not start in {timeout} s")
            deadline.wait(0.01)
            waited += 0.01
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful stop: lifespan shutdown runs, so the store is closed cleanly."""
        if self._thread is None or self._server is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        self._thread = None
        self._server = None

    def restart(self) -> "ThreadedServer":
        self.stop()
        return self.start()

    def __enter__(self) -> "ThreadedServer":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

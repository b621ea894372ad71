"""Run an ASGI app under a real uvicorn server on a loopback port, from sync or async code."""

import asyncio
import contextlib
import contextvars
import logging
import socket
import threading
from collections.abc import Iterator
from typing import ClassVar

import uvicorn
from starlette.types import ASGIApp

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


def quiet_client_trouble() -> None:
    """Install ClientTrouble on the loggers it watches (once)."""
    for name in ClientTrouble.LOWERED:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, ClientTrouble) for existing in logger.filters):
            logger.addFilter(ClientTrouble())


def bind_socket(host: str = LOOPBACK, port: int = 0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so, and without
    # it every small response waits out the client's delayed ACK (about 40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # A restarted service takes its old port back at once, even with connections in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class _QuietServer(uvicorn.Server):
    # Signals belong to whoever runs the servers (the CLI, or the test process), not to each one.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def make_server(app: ASGIApp, log_level: str = "warning") -> uvicorn.Server:
    quiet_client_trouble()
    # log_config=None: the caller owns logging (one format for every service, caplog in tests).
    config = uvicorn.Config(
        app, log_level=log_level, log_config=None, lifespan="on", ws_ping_interval=None
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
                asyncio.run(server.serve(sockets=[sock]))
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

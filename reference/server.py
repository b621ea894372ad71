"""Run an ASGI app under a real uvicorn server on a loopback port, from sync or async code."""

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

LOOPBACK = "127.0.0.1"


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

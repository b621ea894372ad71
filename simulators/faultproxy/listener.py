"""A listening socket that can be shut and reopened on the same port synchronously."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

BACKLOG = 128
ACCEPT_RETRY_S = 1.0


class Listener:
    """Accepts on ``(host, port)`` and hands each new socket to ``on_accept``.

    Built on the loop's reader callbacks rather than ``asyncio.start_server`` because
    opening and closing must take effect before the call returns: right after ``close()``
    a dial must be refused, right after ``open`` it must succeed.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        on_accept: Callable[[socket.socket], None],
    ) -> None:
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._on_accept = on_accept
        self._retry: asyncio.TimerHandle | None = None
        self.host, self.port = sock.getsockname()[:2]
        loop.add_reader(sock.fileno(), self._accept_ready)

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        on_accept: Callable[[socket.socket], None],
    ) -> Listener:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # Reopening the same port must work while connections accepted earlier on it
            # are still open or lingering in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return cls(loop, sock, on_accept)

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        """Stop listening now; dials queued but not yet accepted are refused too."""
        sock, self._sock = self._sock, None
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if sock is None:
            return
        self._loop.remove_reader(sock.fileno())
        sock.close()

    def _pause(self) -> None:
        if self._sock is None:
            return
        self._loop.remove_reader(self._sock.fileno())
        self._retry = self._loop.call_later(ACCEPT_RETRY_S, self._resume)

    def _resume(self) -> None:
        self._retry = None
        if self._sock is not None:
            self._loop.add_reader(self._sock.fileno(), self._accept_ready)

    def _accept_ready(self) -> None:
        for _ in range(BACKLOG):
            if self._sock is None:
                return
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # Out of descriptors or similar. The socket stays readable, so pause rather
                # than spin; the queued dials wait in the backlog meanwhile.
                log.warning("accept failed on %s:%s", self.host, self.port, exc_info=True)
                self._pause()
                return
            conn.setblocking(False)
            self._on_accept(conn)

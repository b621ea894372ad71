"""The fault-injecting TCP proxy: listener, live connections, and the table of faults."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Mapping
from types import MappingProxyType, TracebackType

from .connection import Connection, EndMode
from .faults import FAULT_TYPES, Direction, Fault, Timeout
from .listener import Listener


def _port(name: str, value: object, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int; got {value!r}")
    if not low <= value <= 65535:
        raise ValueError(f"{name} must be in {low}..65535; got {value}")
    return value


class FaultProxy:
    """A TCP proxy from ``listen_host:listen_port`` to ``upstream_host:upstream_port``.

    Faults added with :meth:`add_fault` shape the bytes of every connection, open or
    future; :meth:`down`, :meth:`up`, :meth:`cut` and :meth:`reset` act on the listener
    and on the open connections. ``seed`` makes jitter and slicing repeatable.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        *,
        seed: int = 0,
        connect_timeout: float = 5.0,
        close_timeout: float = 2.0,
    ) -> None:
        if not upstream_host:
            raise ValueError("upstream_host must not be empty")
        if connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be > 0; got {connect_timeout!r}")
        if close_timeout <= 0:
            raise ValueError(f"close_timeout must be > 0; got {close_timeout!r}")
        self._upstream = (upstream_host, _port("upstream_port", upstream_port, low=1))
        self._listen_host = listen_host
        self._port = _port("listen_port", listen_port, low=0)
        self._seed = seed
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._started = False
        self._listener: Listener | None = None
        self._faults: dict[str, Fault] = {}
        self._live: dict[Connection, asyncio.Task[None]] = {}
        self._ids = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("FaultProxy is already started")
        self._listener = Listener.open(self._listen_host, self._port, self._accept)
        # Pin the port chosen for listen_port=0 so up() and a restart reuse it.
        self._port = self._listener.port
        self._started = True

    async def stop(self) -> None:
        """Stop listening and close every connection; calling it again does nothing."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        await self._end_all(EndMode.CLOSE)
        leftover = list(self._live.values())
        for task in leftover:
            task.cancel()
        if leftover:
            await asyncio.wait(leftover, timeout=self._close_timeout)
        self._started = False

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- where it listens ------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("FaultProxy has no port until start()")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (self._listen_host, self.port)

    def url(self, scheme: str = "http") -> str:
        host = f"[{self._listen_host}]" if ":" in self._listen_host else self._listen_host
        return f"{scheme}://{host}:{self.port}"

    @property
    def upstream(self) -> tuple[str, int]:
        return self._upstream

    @property
    def listening(self) -> bool:
        return self._listener is not None

    @property
    def connections(self) -> int:
        """Client connections accepted and not yet closed."""
        return len(self._live)

    # -- faults ----------------------------------------------------------------------

    @property
    def faults(self) -> Mapping[str, Fault]:
        """The active faults by name, in the order they apply."""
        return MappingProxyType(dict(self._faults))

    def add_fault(self, fault: Fault, name: str | None = None) -> str:
        """Activate ``fault`` on open and future connections; returns its name."""
        if not isinstance(fault, FAULT_TYPES):
            raise TypeError(f"fault must be one of {[t.__name__ for t in FAULT_TYPES]}")
        if name is None:
            name = self._free_name(f"{fault.kind}_{fault.direction.value}")
        elif not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string; got {name!r}")
        elif name in self._faults:
            raise ValueError(f"a fault named {name!r} is already active")
        self._faults[name] = fault
        if isinstance(fault, Timeout) and fault.close_after_ms is not None:
            for conn in self._live:
                conn.close_after(name, fault.close_after_ms / 1000.0)
        return name

    def remove_fault(self, name: str) -> Fault:
        """Deactivate the fault called ``name``; KeyError if there is none."""
        try:
            fault = self._faults.pop(name)
        except KeyError:
            raise KeyError(f"no active fault named {name!r}") from None
        for conn in self._live:
            conn.cancel_close(name)
        return fault

    def clear_faults(self) -> None:
        for name in list(self._faults):
            self.remove_fault(name)

    def _free_name(self, base: str) -> str:
        if base not in self._faults:
            return base
        return next(f"{base}_{n}" for n in itertools.count(2) if f"{base}_{n}" not in self._faults)

    def _faults_for(self, flow: Direction) -> tuple[Fault, ...]:
        return tuple(f for f in self._faults.values() if f.direction.covers(flow))

    # -- network actions -------------------------------------------------------------

    def down(self) -> None:
        """Close the listening socket: new dials are refused; open connections stay."""
        self._require_started()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def up(self) -> None:
        """Listen again on the same port."""
        self._require_started()
        if self._listener is None:
            self._listener = Listener.open(self._listen_host, self._port, self._accept)

    async def cut(self) -> None:
        """Close every open connection on both sides with FIN."""
        await self._end_all(EndMode.CLOSE)

    async def reset(self) -> None:
        """Abort every open connection on both sides with RST."""
        await self._end_all(EndMode.RESET)

    async def _end_all(self, mode: EndMode) -> None:
        # Connections accepted from here on are not part of this action.
        ending = dict(self._live)
        for conn in ending:
            conn.end(mode)
        if ending:
            # Each connection bounds its own close; this bound is a backstop on top.
            await asyncio.wait(ending.values(), timeout=2 * self._close_timeout + 1.0)

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("FaultProxy is not started")

    def _accept(self, client: socket.socket) -> None:
        conn = Connection(
            next(self._ids),
            client,
            self._upstream,
            self._faults_for,
            seed=self._seed,
            connect_timeout=self._connect_timeout,
            close_timeout=self._close_timeout,
        )
        task = conn.start()
        self._live[conn] = task
        task.add_done_callback(lambda _: self._live.pop(conn, None))
        for name, fault in self._faults.items():
            if isinstance(fault, Timeout) and fault.close_after_ms is not None:
                conn.close_after(name, fault.close_after_ms / 1000.0)

"""One proxied connection: a client socket, its upstream socket, and a pump each way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections.abc import Callable, Sequence
from enum import Enum
from functools import partial

from .faults import Direction, Fault
from .pump import pump

log = logging.getLogger(__name__)

FaultsFor = Callable[[Direction], Sequence[Fault]]


class EndMode(Enum):
    CLOSE = "close"  # orderly: FIN after any bytes already written
    RESET = "reset"  # abortive: RST, unsent bytes discarded


def _send_rst_on_close(sock: socket.socket | None) -> None:
    if sock is None:
        return
    # Linger on with a zero timeout is the portable way to make close() send RST.
    # An OSError means the socket is already gone: there is nothing left to reset.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class Connection:
    def __init__(
        self,
        ident: int,
        client: socket.socket,
        upstream: tuple[str, int],
        faults_for: FaultsFor,
        *,
        seed: int,
        connect_timeout: float,
        close_timeout: float,
    ) -> None:
        self.ident = ident
        self._client = client
        self._adopted = False
        self._upstream = upstream
        self._faults_for = faults_for
        self._seed = seed
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._mode = EndMode.CLOSE
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(
            self._run(), name=f"faultproxy-conn-{self.ident}"
        )
        task.add_done_callback(self._release)
        self._task = task
        return task

    def end(self, mode: EndMode) -> None:
        """Ask the connection to finish both sides in ``mode``; returns at once."""
        if self._task is None or self._task.done():
            return
        self._mode = mode
        self._task.cancel()

    def close_after(self, key: str, delay_s: float) -> None:
        self.cancel_close(key)
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay_s, self.end, EndMode.CLOSE)

    def cancel_close(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _rng(self, flow: Direction) -> random.Random:
        # One generator per connection and direction: a run replays the same jitter and
        # slicing however the event loop interleaves connections.
        return random.Random(f"{self._seed}:{self.ident}:{flow.value}")

    async def _run(self) -> None:
        writers: list[asyncio.StreamWriter] = []
        try:
            client_reader, client_writer = await asyncio.open_connection(sock=self._client)
            self._adopted = True
            writers.append(client_writer)
            async with asyncio.timeout(self._connect_timeout):
                upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
            writers.append(upstream_writer)
            async with asyncio.TaskGroup() as group:
                for flow, reader, writer in (
                    (Direction.UPSTREAM, client_reader, upstream_writer),
                    (Direction.DOWNSTREAM, upstream_reader, client_writer),
                ):
                    name = f"faultproxy-conn-{self.ident}-{flow.value}"
                    faults = partial(self._faults_for, flow)
                    group.create_task(
                        pump(reader, writer, faults, self._rng(flow), name=name), name=name
                    )
        except* OSError:
            # An unreachable upstream or a peer that reset: pass the failure on as a reset
            # rather than a tidy close, so the other side sees an error, not a clean end.
            self._mode = EndMode.RESET
        finally:
            await self._close(writers)

    async def _close(self, writers: list[asyncio.StreamWriter]) -> None:
        for writer in writers:
            if self._mode is EndMode.RESET:
                _send_rst_on_close(writer.get_extra_info("socket"))
                writer.transport.abort()
            else:
                writer.close()
        for writer in writers:
            try:
                async with asyncio.timeout(self._close_timeout):
                    await writer.wait_closed()
            except TimeoutError:
                # A peer that stopped reading keeps a graceful close pending for ever.
                writer.transport.abort()
            except OSError:
                pass  # the socket failed while closing; it is closed all the same

    def _release(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("connection %d failed", self.ident, exc_info=exc)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        # A task cancelled before its first step never reaches _run's cleanup.
        if not self._adopted:
            if self._mode is EndMode.RESET:
                _send_rst_on_close(self._client)
            self._client.close()

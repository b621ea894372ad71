"""The gateway's stop: turns in flight finish, new ones are refused, then every socket closes.

Without it a stop closes each socket at once, and a turn the runtime had already stored never
reached its IDE (docs/decisions.md, "Stopping").
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterator
from typing import TypeVar

logger = logging.getLogger("sessionlab.gateway")

T = TypeVar("T")
# RFC 6455 "going away": a client reconnects later, as after a server's restart.
GOING_AWAY = 1001
STOPPING = "going away: the gateway is stopping"
REFUSED_TURN = (
    "the gateway is stopping: this message was not sent to the agent; send it again once the "
    "gateway is back"
)


class Closing(Exception):
    """The stop's grace period is over: the socket waiting for this closes now."""


class Drain:
    """One per run of the gateway (its lifespan), so its events belong to that run's loop."""

    def __init__(self) -> None:
        self.stopping = False
        self._turns = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = asyncio.Event()

    @property
    def turns(self) -> int:
        return self._turns

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """A turn in flight: a stop waits for it, within its grace period."""
        self._turns += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._turns -= 1
            if self._turns == 0:
                self._idle.set()

    async def unless_closing(self, awaitable: Awaitable[T]) -> T:
        """`awaitable`'s result; Closing (and `awaitable` cancelled) once every socket must
        close."""
        if self._closing.is_set():
            raise Closing
        work = asyncio.ensure_future(awaitable)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait((work, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work
        if work.cancelled():
            raise Closing
        return work.result()

    async def stop(self, grace: float, hurry: asyncio.Event | None = None) -> int:
        """Refuse new turns and sockets, wait up to `grace` seconds (or until `hurry`) for the
        turns in flight, then close every socket. Returns how many turns were cut."""
        self.stopping = True
        if self._turns:
            logger.info(
                "Stopping: %d turn(s) in flight, waiting up to %g s for them", self._turns, grace
            )
        else:
            logger.info("Stopping: no turn in flight")
        waits = [asyncio.ensure_future(self._idle.wait())]
        if hurry is not None:
            waits.append(asyncio.ensure_future(hurry.wait()))
        try:
            await asyncio.wait(waits, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        cut = self._turns
        if cut:
            logger.warning("Stopping: %d turn(s) still in flight are cut off", cut)
        self._closing.set()
        return cut

"""Move bytes one way between two streams, shaped by whatever faults are active right now."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence

from .faults import Fault
from .plan import is_blackholed, plan_chunk

CHUNK_SIZE = 64 * 1024
# Bounded so a slowed direction pushes back on its sender instead of buffering without end.
QUEUE_CHUNKS = 16

ActiveFaults = Callable[[], Sequence[Fault]]


async def sleep_until(deadline: float) -> None:
    """Sleep until the loop clock reaches ``deadline``; never wakes early."""
    loop = asyncio.get_running_loop()
    # The loop may fire a timer up to its clock resolution early; a lower bound promised
    # by a fault must hold on the same clock callers measure with.
    while (left := deadline - loop.time()) > 0:  # noqa: ASYNC110 - not polling for a state
        await asyncio.sleep(left)


async def _read(reader: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes]]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        data = await reader.read(CHUNK_SIZE)
        # The arrival time lets latency overlap across chunks, as on a real link,
        # instead of adding up chunk after chunk.
        await queue.put((loop.time(), data))
        if not data:
            return


async def _forward(
    queue: asyncio.Queue[tuple[float, bytes]],
    writer: asyncio.StreamWriter,
    faults: ActiveFaults,
    rng: random.Random,
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        arrived, data = await queue.get()
        if not data:
            # End of stream is passed on even under a timeout fault, so that a peer
            # giving up does not leave the proxy holding the other side open for ever.
            if writer.can_write_eof():
                writer.write_eof()
            return
        plan = plan_chunk(data, faults(), rng)
        if plan.dropped:
            continue
        await sleep_until(arrived + plan.hold_s)
        for step in plan.steps:
            if step.wait_s > 0:
                await sleep_until(loop.time() + step.wait_s)
            # A timeout added while this chunk was being paced must bite at once.
            if is_blackholed(faults()):
                break
            writer.write(step.data)
            await writer.drain()


async def pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    faults: ActiveFaults,
    rng: random.Random,
    *,
    name: str,
) -> None:
    """Copy ``reader`` to ``writer`` until end of stream, then half-close ``writer``.

    ``faults`` is asked again for every chunk, so faults added or removed later act on
    a connection that is already open. Socket errors propagate to the caller.
    """
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)
    async with asyncio.TaskGroup() as group:
        group.create_task(_read(reader, queue), name=f"{name}-read")
        group.create_task(_forward(queue, writer, faults, rng), name=f"{name}-write")

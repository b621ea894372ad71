"""A load generator process: its share of the simulated IDEs, all on one event loop.

The run starts one such process per core (a spawned interpreter: nothing of the server under
test, which may run in the run's own process, is inherited). Outcomes go back on a queue in
batches, twice a second, so the run shows progress while the IDEs work.
"""

import asyncio
import contextlib
import os
import resource
import signal
import time
from dataclasses import dataclass, field, replace
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from simulators.ide import IdeSettings
from simulators.ide.settings import Client
from simulators.load.cpu import own_cpu_seconds
from simulators.load.flows import BROKEN, Outcome, Pace, SimulatedUser

FLUSH_EVERY = 0.5
# A worker's last message of a round, with its CPU seconds so far: everything it measured is on
# the queue before it.
END = "end"
# Once the time is up, the operations in flight get this long past their own step timeout.
WIND_DOWN = 5.0

_queue: "Queue[Any] | None" = None


@dataclass(frozen=True)
class WorkerJob:
    worker: int
    round: int
    ides: tuple[int, ...]  # the global numbers of this worker's IDEs
    ide_count: int  # IDEs of the whole run, for the ramp-up
    gateway_url: str
    client_key: str | None = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    client: Client
    origin: float  # time.time() when the round starts, the same in every worker
    ramp_up: float
    stop_at: float  # seconds after the origin
    operations: tuple[int | None, ...]  # per IDE of `ides`
    think_min: float
    think_max: float
    step_timeout: float
    # The run's scratch folder (the IDEs' preferences files), removed by the run even when its
    # workers are killed.
    folder: str


def init_worker(queue: "Queue[Any]") -> None:
    global _queue
    _queue = queue
    # Ctrl-C is the run's to handle: it stops the round and the workers with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Every IDE holds a socket and an HTTP connection or two: as many files as allowed.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_job(job: WorkerJob) -> int:
    """Run the job's IDEs to their end; returns how many operations they did."""
    return asyncio.run(_run(job))


async def _run(job: WorkerJob) -> int:
    pending: list[Outcome] = []
    done = 0

    def record(outcome: Outcome) -> None:
        nonlocal done
        done += 1
        pending.append(outcome)

    def flush() -> None:
        if pending and _queue is not None:
            _queue.put((job.round, list(pending)))
            pending.clear()

    async def flush_often() -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            flush()

    settings = IdeSettings(
        gateway_url=job.gateway_url,
        client_key=job.client_key,
        headers=job.headers,
        # The step timeout decides what is an error; the IDE's own bounds must not come first.
        request_timeout=job.step_timeout,
        connect_timeout=job.step_timeout,
        turn_timeout=job.step_timeout,
        client=job.client,
    )
    pace = Pace(
        origin=job.origin,
        stop_at=job.stop_at,
        operations=None,
        think_min=job.think_min,
        think_max=job.think_max,
        step_timeout=job.step_timeout,
    )
    flusher = asyncio.create_task(flush_often())
    folder = Path(job.folder) / f"round-{job.round}-worker-{job.worker}"
    folder.mkdir(parents=True, exist_ok=True)
    users = [
        SimulatedUser(
            ide,
            settings,
            folder,
            replace(pace, operations=operations),
            record,
        )
        for ide, operations in zip(job.ides, job.operations, strict=True)
    ]
    deadline = job.stop_at + job.step_timeout + WIND_DOWN
    try:
        async with asyncio.timeout(max(0.0, job.origin + deadline - time.time())):
            ended = await asyncio.gather(
                *(
                    _after(job.origin + job.ramp_up * user.index / job.ide_count, user)
                    for user in users
                ),
                return_exceptions=True,
            )
        for user, end in zip(users, ended, strict=True):
            if isinstance(end, Exception):
                # The load generator's own fault, shown as such rather than lost.
                at = time.time() - job.origin
                record(Outcome(BROKEN, at, 0.0, f"IDE {user.index}: {end!r}"))
    except TimeoutError:
        pass  # what did not end by then is cut off; what it did is recorded
    flusher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await flusher
    flush()
    if _queue is not None:
        _queue.put((job.round, (END, os.getpid(), own_cpu_seconds())))
    return done


async def _after(start: float, user: SimulatedUser) -> None:
    if user.pace.operations == 0:
        return
    await asyncio.sleep(max(0.0, start - time.time()))
    await user.run()

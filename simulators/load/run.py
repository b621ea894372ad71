"""The rounds of a load run on worker processes, against targets already started.

With two targets, they are measured in one run in alternating rounds (A B B A A B ...): whatever
else the machine does at one moment weighs on both alike, and the ratios printed are of numbers
measured side by side. Starting the targets and reporting is the command's (sessionlab.load_run).
"""

import math
import multiprocessing
import queue
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.pool import AsyncResult
from typing import Any, TextIO

from simulators.load.flows import BROKEN, Outcome
from simulators.load.plan import LoadPlan
from simulators.load.progress import LiveProgress
from simulators.load.samples import Tally
from simulators.load.worker import END, WorkerJob, init_worker, run_job
from simulators.services import Gateway

# Seconds the workers get to come up before the first round's clock starts.
WARM_UP = 60.0


def _unseen() -> float | None:
    return None


@dataclass(frozen=True)
class LoadTarget:
    """A started target as the load sees it."""

    name: str
    gateway: Gateway
    # CPU seconds its processes have used so far, read before and after each of its rounds;
    # None where they cannot be seen (a URL, a container, a target in this process).
    cpu_seconds: Callable[[], float | None] = _unseen


@dataclass
class Measured:
    """What a run leaves for the reports."""

    plan: LoadPlan
    tallies: list[Tally]
    names: list[str]
    urls: list[str]
    rounds: int
    started_at: float
    wall: float
    stopped: str | None = None

    @property
    def errors(self) -> int:
        return sum(tally.error_count for tally in self.tallies)


def round_order(targets: int, rounds: int) -> list[int]:
    """0 1 1 0 0 1 ... for two targets (each `rounds` times); [0] for one."""
    if targets == 1:
        return [0]
    order: list[int] = []
    for pair in range(rounds):
        order.extend((0, 1) if pair % 2 == 0 else (1, 0))
    return order


def _label(names: list[str]) -> list[str]:
    if len(names) == 2 and names[0] == names[1]:
        return [f"{names[0]} (A)", f"{names[1]} (B)"]
    return names


def _round_plan(plan: LoadPlan, per_target: int) -> LoadPlan:
    if per_target == 1:
        return plan
    return replace(
        plan,
        duration=None if plan.duration is None else plan.duration / per_target,
        operations=None if plan.operations is None else max(1, plan.operations // per_target),
    )


def _jobs(
    plan: LoadPlan, gateway: Gateway, number: int, origin: float, folder: str
) -> list[WorkerJob]:
    workers = plan.worker_count
    return [
        WorkerJob(
            worker=worker,
            round=number,
            ides=tuple(range(worker, plan.ides, workers)),
            ide_count=plan.ides,
            gateway_url=gateway.gateway_url,
            client_key=gateway.client_key,
            headers=gateway.socket_headers(),
            client=plan.client,
            origin=origin,
            ramp_up=plan.ramp_up,
            stop_at=plan.ramp_up + plan.time_limit,
            operations=tuple(plan.operations_of(ide) for ide in range(worker, plan.ides, workers)),
            think_min=plan.think_min,
            think_max=plan.think_max,
            step_timeout=plan.step_timeout,
            folder=folder,
        )
        for worker in range(workers)
    ]


def _warm(_: int) -> int:
    time.sleep(0.2)  # long enough that every worker takes one
    return 0


def _cpu(_: int) -> tuple[int, float]:
    import os

    from simulators.load.cpu import own_cpu_seconds

    time.sleep(0.2)
    return os.getpid(), own_cpu_seconds()


def measure(plan: LoadPlan, rounds: int, targets: list[LoadTarget], err: TextIO) -> Measured:
    """`rounds` per target when there are two (alternating), else one."""
    labels = _label([target.name for target in targets])
    tallies = [Tally(label) for label in labels]
    order = round_order(len(targets), rounds)
    per_target = len(order) // len(targets)
    round_plan = _round_plan(plan, per_target)
    context = multiprocessing.get_context("spawn")
    results: queue.Queue[Any] = context.Queue()  # type: ignore[assignment]
    started_at = time.time()
    stopped: str | None = None
    worker_cpu: dict[int, float] = {}
    # Here, not in the workers: a worker killed by Ctrl-C cannot remove its own.
    scratch = tempfile.TemporaryDirectory(prefix="sessionlab-load-")
    pool = context.Pool(plan.worker_count, initializer=init_worker, initargs=(results,))
    try:
        # Every worker up and importing done before any clock starts.
        pool.map_async(_warm, range(plan.worker_count), chunksize=1).get(WARM_UP)
        # Spawning and importing is not the load's work: each worker's counter starts here.
        for pid, cpu in pool.map(_cpu, range(plan.worker_count), chunksize=1):
            worker_cpu[pid] = cpu
        with LiveProgress(err) as progress:
            for number, which in enumerate(order):
                if len(order) > 1:
                    progress.title = f"round {number + 1}/{len(order)} "
                origin = time.time() + 0.2
                jobs = _jobs(round_plan, targets[which].gateway, number, origin, scratch.name)
                pending = [pool.apply_async(run_job, (job,)) for job in jobs]
                target_before = targets[which].cpu_seconds()
                _collect(
                    results,
                    pending,
                    number,
                    tallies[which],
                    origin,
                    round_plan,
                    progress,
                    worker_cpu,
                )
                target_after = targets[which].cpu_seconds()
                if target_before is not None and target_after is not None:
                    spent = target_after - target_before
                    tally = tallies[which]
                    tally.target_cpu = (tally.target_cpu or 0.0) + spent
    except KeyboardInterrupt:
        stopped = "interrupted"
        raise
    finally:
        pool.terminate()
        pool.join()
        scratch.cleanup()
    return Measured(
        plan=plan,
        tallies=tallies,
        names=[target.name for target in targets],
        urls=[target.gateway.gateway_url for target in targets],
        rounds=per_target,
        started_at=started_at,
        wall=time.time() - started_at,
        stopped=stopped,
    )


def _collect(
    results: "queue.Queue[Any]",
    pending: list[AsyncResult[int]],
    number: int,
    tally: Tally,
    origin: float,
    plan: LoadPlan,
    progress: LiveProgress,
    worker_cpu: dict[int, float],
) -> None:
    ended = 0
    last_at = 0.0
    while ended < len(pending):
        try:
            round_number, payload = results.get(timeout=0.25)
        except queue.Empty:
            failed = [job for job in pending if job.ready() and not job.successful()]
            for job in failed:
                # A worker that died never sends its end; its error is the generator's own.
                pending.remove(job)
                try:
                    job.get(0)
                except Exception as exc:
                    tally.add(Outcome(BROKEN, time.time() - origin, 0.0, repr(exc)))
            progress.show(tally, time.time() - origin, plan.ides)
            continue
        if round_number != number:
            continue  # late news of a round that was cut off
        if isinstance(payload, tuple) and payload[0] == END:
            ended += 1
            _, pid, cpu = payload
            # A pool process serves every round: its CPU counter runs on from the last one.
            tally.generator_cpu += cpu - worker_cpu.get(pid, 0.0)
            worker_cpu[pid] = cpu
            continue
        for outcome in payload:
            tally.add(outcome)
            last_at = max(last_at, outcome.at)
        progress.show(tally, time.time() - origin, plan.ides)
    tally.measured += last_at
    # The next round of this target is drawn after this one on the plots' time axis.
    tally.offset += math.ceil(last_at)

"""`sessionlab serve --workers N`: N processes of each service served, on the service's one port.

The parent binds every port first, with SO_REUSEPORT and without listening: port 0 gets its number
and a port in use is one sentence before anything starts, and the port stays held for the run.
Each worker is a fresh interpreter (spawn: no event loop, engine or lock is copied by a fork)
that listens on the same ports with sockets of its own; the kernel spreads new connections over
the listening sockets of a port by a hash of each connection's addresses, so connections, and
with them the requests they carry, land on every worker. A worker runs the services a single
`serve` would run in one process, exactly as it would (docs/scale-out.md).

Signals belong to the parent. A stop signal sent to the process group (Ctrl-C in a terminal, a
process manager's SIGTERM) reaches the workers too, so they ignore SIGINT and SIGTERM and stop on
SIGUSR1, which only the parent sends: once per signal it received, so that a second signal still
means "stop at once". A worker whose parent dies gets SIGUSR1 from the kernel (PR_SET_PDEATHSIG),
so nothing is left running when the parent is killed.
"""

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract.exit_codes import ExitCode
from reference.settings import GatewaySettings, RuntimeSettings

if TYPE_CHECKING:
    from reference.serve import ServeSettings

log = logging.getLogger("sessionlab.serve")

STOP = signal.SIGUSR1
WORKER_HEADER = b"x-sessionlab-worker"
# Seconds a worker may take to start (open its store, bind) before the run is given up.
START_SECONDS = 60.0
# After the grace period, what a worker may still take to close its store and exit.
EXIT_MARGIN_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker serves: picklable, handed to the new interpreter."""

    index: int
    ports: list[tuple[str, int]]
    host: str
    log_level: str
    grace_period: float
    runtime: RuntimeSettings
    gateway: GatewaySettings


class WorkerHeader:
    """Names the worker on every HTTP response (`X-Sessionlab-Worker: 2`), so that a client, a
    test or an operator can tell which process answered a request."""

    def __init__(self, app: ASGIApp, worker: int) -> None:
        self.app = app
        self.value = str(worker).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (WORKER_HEADER, self.value)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, tagged)


def _die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(STOP), 0, 0, 0)
    if os.getppid() != parent:
        # The parent died before the request above was made: nobody would send it.
        os.kill(os.getpid(), STOP)


def worker_main(spec: WorkerSpec, parent: int, ready: Connection) -> None:
    """A worker's life: listen, report ready (or why not), serve until the parent says stop."""
    import asyncio

    from reference.serve import (
        ServeError,
        ServeSettings,
        configure_logging,
        serve_until_signalled,
    )
    from reference.server import bind_socket, loop_factory
    from reference.stack import create_service_app

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    _die_with_parent(parent)
    configure_logging(spec.log_level, worker=spec.index)
    serve = ServeSettings(host=spec.host, log_level=spec.log_level, grace_period=spec.grace_period)
    apps: list[tuple[str, FastAPI, socket.socket]] = []
    for name, port in spec.ports:
        sock = bind_socket(spec.host, port, reuse_port=True)
        app = create_service_app(name, spec.runtime, spec.gateway)
        app.add_middleware(WorkerHeader, worker=spec.index)
        apps.append((name, app, sock))
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            code = runner.run(
                serve_until_signalled(
                    apps, serve, lambda _: ready.send("ready"), stop_signals=(STOP,)
                )
            )
    except ServeError as exc:
        ready.send(f"worker {spec.index}: {exc}")
        code = 1
    sys.exit(code)


class _Stops:
    """Signals the parent received, each passed on to the workers."""

    def __init__(self) -> None:
        self.count = 0
        self.workers: list[BaseProcess] = []
        # Workers asked to stop at least once: asking again would mean "at once".
        self.asked: set[int] = set()

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        for process in self.workers:
            self.ask(process)

    def ask(self, process: BaseProcess) -> None:
        if process.pid is not None and process.is_alive():
            os.kill(process.pid, STOP)
            self.asked.add(process.pid)


def supervise(
    bound: list[tuple[str, socket.socket]],
    serve: "ServeSettings",
    runtime: RuntimeSettings,
    gateway: GatewaySettings,
    describe: Callable[[list[tuple[str, int]]], str],
) -> int:
    """Start `serve.workers` workers on the bound ports; the banner once all accept; until a
    signal. 0 after a signal, 1 when a worker failed or stopped on its own."""
    from reference.serve import ServeError

    ports = [(name, sock.getsockname()[1]) for name, sock in bound]
    context = multiprocessing.get_context("spawn")
    stops = _Stops()
    previous = {signum: signal.signal(signum, stops) for signum in (signal.SIGINT, signal.SIGTERM)}
    readiness: list[Connection] = []
    try:
        for index in range(1, serve.workers + 1):
            receiving, sending = context.Pipe(duplex=False)
            spec = WorkerSpec(
                index, ports, serve.host, serve.log_level, serve.grace_period, runtime, gateway
            )
            process = context.Process(
                target=worker_main,
                args=(spec, os.getpid(), sending),
                name=f"sessionlab-worker-{index}",
            )
            process.start()
            sending.close()
            stops.workers.append(process)
            readiness.append(receiving)
        failure = _await_ready(readiness, stops)
        if failure is not None:
            raise ServeError(failure)
        if stops.count == 0:
            print(describe(ports), flush=True)
        return _await_end(stops)
    finally:
        _stop_all(stops, serve.grace_period)
        for _, sock in bound:
            sock.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _await_ready(readiness: list[Connection], stops: _Stops) -> str | None:
    """None once every worker accepts; else why one did not."""
    waiting = set(readiness)
    deadline = time.monotonic() + START_SECONDS
    while waiting and stops.count == 0:
        left = deadline - time.monotonic()
        if left <= 0:
            return f"the workers did not start within {START_SECONDS:g} s"
        for connection in wait(list(waiting), timeout=min(left, 0.2)):
            assert isinstance(connection, Connection)
            try:
                said = connection.recv()
            except EOFError:
                said = "a worker stopped while starting; see the log above"
            if said != "ready":
                return str(said)
            waiting.discard(connection)
    return None


def _await_end(stops: _Stops) -> int:
    sentinels = [process.sentinel for process in stops.workers]
    while stops.count == 0:
        # A signal during the wait ends the loop above, not this: the workers then stop anyway.
        ready = wait(sentinels, timeout=0.2)
        if ready and stops.count == 0:
            ended = next(p for p in stops.workers if p.sentinel in ready)
            # Its files close a moment before it can be waited for.
            ended.join(EXIT_MARGIN_SECONDS)
            log.error("worker %s exited (%s); stopping the others", ended.name, ended.exitcode)
            return ExitCode.FAILED
    return ExitCode.OK


def _stop_all(stops: _Stops, grace: float) -> None:
    """Every worker stopped: asked once (those a signal reached are not asked again), then
    killed after the grace period."""
    for process in stops.workers:
        if process.pid not in stops.asked:
            stops.ask(process)
    deadline = time.monotonic() + grace + EXIT_MARGIN_SECONDS
    for process in stops.workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()

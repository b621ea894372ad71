"""A started target on its own event loop thread, usable from any test's event loop.

Checks run each in their own loop; the target (its subprocesses, containers, proxies) lives as long
as the whole run. Control calls hop to the target's loop and back.

The loop's thread lives until close(): launched processes are forked from it, and it must outlive
them. A call the caller stops waiting for (a signal's KeyboardInterrupt, a timeout) is cancelled
and awaited, so a target is never left half started while another call closes it.
"""

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from conformance.targets import Capability, Endpoints, LogSource, Service, Target
from simulators.faultproxy import FaultProxy

T = TypeVar("T")

# How long an abandoned call may take to unwind once cancelled (a start closing what it began).
CANCEL_WAIT = 60.0

_open: set["TargetRunner"] = set()
_open_lock = threading.Lock()


def close_open_runners(timeout: float = 60) -> None:
    """Close every runner not closed yet: the last clean-up of a command that was stopped."""
    with _open_lock:
        runners = list(_open)
    for runner in runners:
        runner.close(timeout)


class TargetRunner:
    def __init__(self, target: Target) -> None:
        self.target = target
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sessionlab-target", daemon=True
        )
        self._thread.start()
        self._closed = False
        self.endpoints: Endpoints | None = None
        with _open_lock:
            _open.add(self)

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        outcome: concurrent.futures.Future[T] = concurrent.futures.Future()
        settled = threading.Event()
        tasks: list[asyncio.Task[T]] = []

        def settle(task: asyncio.Task[T]) -> None:
            if task.cancelled():
                outcome.cancel()
            elif (error := task.exception()) is not None:
                outcome.set_exception(error)
            else:
                outcome.set_result(task.result())
            settled.set()

        def begin() -> None:
            task = self._loop.create_task(coroutine)
            task.add_done_callback(settle)
            tasks.append(task)

        def cancel() -> None:
            for task in tasks:
                task.cancel()

        self._loop.call_soon_threadsafe(begin)
        try:
            return outcome.result(timeout)
        except (KeyboardInterrupt, TimeoutError):
            # Scheduled after begin(), so the task exists by then, started or not.
            self._loop.call_soon_threadsafe(cancel)
            settled.wait(CANCEL_WAIT)
            raise

    async def _hop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self._loop))

    def start(self, timeout: float) -> Endpoints:
        self._call(self.target.start(), timeout)
        self.endpoints = self.target.endpoints
        return self.endpoints

    def close(self, timeout: float = 60) -> None:
        with _open_lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._call(self.target.close(), timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._loop.close()
            with _open_lock:
                _open.discard(self)

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def profiles(self) -> frozenset[str]:
        return self.target.profiles

    @property
    def turn_timeout(self) -> float:
        return self.target.turn_timeout

    def supports(self, service: Service, capability: Capability) -> bool:
        return self.target.supports(service, capability)

    async def stop_service(self, service: Service) -> None:
        await self._hop(self.target.stop_service(service))

    async def start_service(self, service: Service) -> None:
        await self._hop(self.target.start_service(service))

    async def restart_service(self, service: Service) -> None:
        await self._hop(self.target.restart_service(service))

    async def kill_service(self, service: Service) -> None:
        await self._hop(self.target.kill_service(service))

    async def pause_service(self, service: Service) -> None:
        await self._hop(self.target.pause_service(service))

    async def resume_service(self, service: Service) -> None:
        await self._hop(self.target.resume_service(service))

    @property
    def has_runtime_hop(self) -> bool:
        return self.target.runtime_hop is not None

    async def on_runtime_hop(self, action: Callable[[FaultProxy], Awaitable[None]]) -> None:
        """Act on the gateway-to-runtime fault proxy, on the loop it lives on."""
        hop = self.target.runtime_hop
        if hop is None:
            raise RuntimeError(f"target {self.name!r} has no fault proxy before its runtime")
        await self._hop(_acting(action, hop))

    def logs(self, service: Service) -> LogSource:
        return self.target.logs(service)


async def _acting(action: Callable[[FaultProxy], Awaitable[None]], proxy: FaultProxy) -> None:
    await action(proxy)

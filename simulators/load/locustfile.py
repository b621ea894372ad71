"""Locust users that drive the IDE simulator's flows, for loads beyond one machine.

    locust -f simulators/load/locustfile.py --host http://127.0.0.1:8000 --headless -u 100 \
           -r 10 -t 60s
    locust -f simulators/load/locustfile.py --master --expect-workers 2 ...  # on one machine
    locust -f simulators/load/locustfile.py --worker --master-host HOST       # on the others

(docs/load.md has the whole recipe.)

Each Locust user is one simulated IDE going round the same cycle as `sessionlab load` (create,
chat, switch, restore: simulators.load.flows.IdeCycle), one operation per task, with Locust's
wait time as the user's think time. Every operation is reported to Locust as a request of type
`IDE` named by its flow, so Locust's statistics, its distribution over workers, its web UI and its
CSV files all work as for HTTP users.

The IDE simulator is asyncio and Locust is gevent: in each Locust process the IDEs run on one
asyncio event loop in an operating-system thread of its own, and a user's greenlet waits for its
operation by polling, which yields to the other greenlets. Options of its own (after Locust's):
--ide-client designed|shipped, --ide-think MIN-MAX, --step-timeout S, --client-key KEY (or
SESSIONLAB_CLIENT_KEY), --allow-remote (a host not on this machine is refused without it).
"""

import asyncio
import importlib
import logging
import os
import random
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from locust import User, events, task
from locust.exception import StopUser

from simulators.ide import IdeSettings
from simulators.load.causes import cause_of
from simulators.load.flows import IdeCycle, Outcome
from simulators.load.loopback import RemoteTargetError, loopback_only

T = TypeVar("T")
# gevent ships no type information; only get_original is used of it.
monkey = importlib.import_module("gevent.monkey")
# Locust logs at INFO: a line per request of each simulated IDE's HTTP client would drown it.
logging.getLogger("httpx").setLevel(logging.WARNING)
# How often a waiting greenlet looks whether its operation ended.
POLL = 0.005


def _options(parser: Any) -> None:
    parser.add_argument("--ide-client", choices=["designed", "shipped"], default="designed")
    parser.add_argument("--ide-think", default="0.5-1.5", help="seconds between operations")
    parser.add_argument("--step-timeout", type=float, default=30.0)
    parser.add_argument("--client-key", default=os.environ.get("SESSIONLAB_CLIENT_KEY"))
    parser.add_argument("--allow-remote", action="store_true", default=False)


events.init_command_line_parser.add_listener(_options)  # type: ignore[no-untyped-call]


class _AsyncioThread:
    """One asyncio loop on a real thread for the whole Locust process."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def loop(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                ready: list[asyncio.AbstractEventLoop] = []

                def serve() -> None:
                    loop = asyncio.new_event_loop()
                    ready.append(loop)
                    loop.run_forever()

                # An operating-system thread, not a greenlet: the patched threading would give
                # a greenlet, and the loop would then block every user's greenlet.
                monkey.get_original("_thread", "start_new_thread")(serve, ())
                while not ready:
                    time.sleep(POLL)  # gevent's sleep: Locust has patched time
                cls._loop = ready[0]
            return cls._loop

    @classmethod
    def run(cls, coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, cls.loop())
        while not future.done():
            time.sleep(POLL)
        return future.result()


_folder = tempfile.TemporaryDirectory(prefix="sessionlab-locust-")
_numbers = iter(range(1, 1 << 62))


def _think(user: "IdeUser") -> float:
    low, _, high = str(user.environment.parsed_options.ide_think).partition("-")
    return random.uniform(float(low), float(high or low))


class IdeUser(User):
    """One simulated IDE (see the module's docstring)."""

    wait_time = _think

    def on_start(self) -> None:
        options = self.environment.parsed_options
        host = self.host or ""
        if not options.allow_remote:
            try:
                loopback_only(host)
            except RemoteTargetError as exc:
                self.environment.events.user_error.fire(user_instance=self, exception=exc, tb=None)
                raise StopUser() from exc
        number = next(_numbers)
        settings = IdeSettings(
            gateway_url=host,
            client_key=options.client_key,
            request_timeout=options.step_timeout,
            connect_timeout=options.step_timeout,
            turn_timeout=options.step_timeout,
            client=options.ide_client,
        )
        self.cycle = IdeCycle(
            number, settings, Path(_folder.name) / f"ide-{number}.json", options.step_timeout
        )

    @task
    def operation(self) -> None:
        outcome: Outcome = _AsyncioThread.run(self.cycle.next())
        self.environment.events.request.fire(
            request_type="IDE",
            name=outcome.flow,
            response_time=outcome.latency * 1000,
            response_length=0,
            # Grouped by cause in Locust's failure table, as in `sessionlab load`'s.
            exception=None
            if outcome.error is None
            else IdeFailure(cause_of(outcome.flow, outcome.error)),
            context={},
        )

    def on_stop(self) -> None:
        cycle = getattr(self, "cycle", None)
        if cycle is not None:
            _AsyncioThread.run(cycle.close())


class IdeFailure(Exception):
    """An operation that failed; the message is its cause, variable parts taken out."""

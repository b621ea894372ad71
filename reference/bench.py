"""`sessionlab bench`, its second part: the reference's micro-ratios, printed as ratios of one run.

(The first part, simulated IDEs against the reference, is `sessionlab load`'s fixed recipe:
sessionlab/bench.py.) Absolute figures depend on the machine and its load; the ratios
(gateway vs. runtime directly, a chat at 10,000 messages vs. at 10) are what to compare between
runs. The runtime and the gateway each run in a process of their own, as deployed, so that neither
the client nor the other service shares their interpreter; the client is this process, on aiohttp:
httpx spent more CPU per request than the reference does to answer it, and a client that is the
bottleneck measures itself (docs/performance.md).
docs/performance.md has the figures measured so far and what they led to.
"""

import asyncio
import contextlib
import functools
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal, TextIO

import aiohttp
from websockets.asyncio.client import ClientConnection, connect

from contract.bodies import Message
from contract.routes import CREATE_SESSION, HISTORY, LIST_AGENTS, SOCKET, Route
from reference.gateway.app import create_app as create_gateway_app
from reference.keys import random_key
from reference.runtime.app import create_app as create_runtime_app
from reference.runtime.script_agent import Turn
from reference.runtime.store import Store
from reference.server import ThreadedServer
from reference.settings import RuntimeSettings
from reference.stack import StackChoices

# As many requests at a time as the side-by-side measurement used.
CONCURRENCY = 16
HISTORY_LENGTH = 1000
CHAT_LENGTHS = (10, 2000, 10000)
STARTUP = 30.0

Service = Literal["runtime", "gateway"]


@dataclass(frozen=True)
class Timings:
    seconds: list[float]
    wall: float

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p99(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]

    @property
    def rate(self) -> float:
        return len(self.seconds) / self.wall

    def row(self, label: str) -> str:
        return (
            f"  {label:<34} {self.rate:8.1f}/s  p50 {self.p50 * 1000:7.2f} ms"
            f"  p99 {self.p99 * 1000:7.2f} ms  (n={len(self.seconds)})"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "n": len(self.seconds),
            "per_s": round(self.rate, 3),
            "p50_ms": round(self.p50 * 1000, 3),
            "p99_ms": round(self.p99 * 1000, 3),
        }


@dataclass(frozen=True)
class Row:
    """One measured line of a section."""

    label: str
    timings: Timings

    def line(self) -> str:
        return self.timings.row(self.label)

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, **self.timings.as_json()}


@dataclass(frozen=True)
class Ratio:
    """One figure over another of the same run: p50, and throughput where it means something."""

    label: str
    p50: float
    throughput: float | None = None
    per_core: float | None = None
    note: str = ""

    @classmethod
    def of(cls, label: str, over: Timings, under: Timings) -> "Ratio":
        return cls(label, over.p50 / under.p50, over.rate / under.rate)

    def line(self) -> str:
        parts = [f"p50 {self.p50:.2f}x"]
        if self.throughput is not None:
            parts.append(f"throughput {self.throughput:.2f}x")
        if self.per_core is not None:
            parts.append(f"per core {self.per_core:.2f}x")
        note = f" ({self.note})" if self.note else ""
        return f"  ratio {self.label}: {', '.join(parts)}{note}"

    def as_json(self) -> dict[str, Any]:
        figures = {"p50": self.p50, "throughput": self.throughput, "per_core": self.per_core}
        return {
            "ratio": self.label,
            **{name: None if value is None else round(value, 4) for name, value in figures.items()},
            **({"note": self.note} if self.note else {}),
        }


@dataclass(frozen=True)
class Goal:
    """A figure the reference is held to, as this run measured it (docs/performance.md)."""

    figure: str
    value: float
    bound: float
    unit: str
    at_most: bool = True

    @property
    def met(self) -> bool:
        return self.value <= self.bound if self.at_most else self.value >= self.bound

    def line(self) -> str:
        relation = "<=" if self.at_most else ">="
        verdict = "met" if self.met else "NOT met"
        return (
            f"  {verdict:<8} {self.figure}: {self.value:.2f}{self.unit}"
            f" (goal {relation} {self.bound:g}{self.unit})"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "value": round(self.value, 4),
            "bound": self.bound,
            "at_most": self.at_most,
            "met": self.met,
        }


def goals_of(sections: dict[str, "Section"]) -> list[Goal]:
    """The goals, from what the sections (by the Bench method that measured them) hold."""

    def item(section: str, label: str) -> "Row | Ratio":
        return next(
            found
            for found in sections[section].items
            if isinstance(found, Row | Ratio) and found.label == label
        )

    def timings(section: str, label: str) -> Timings:
        row = item(section, label)
        assert isinstance(row, Row)
        return row.timings

    def ratio(section: str, label: str) -> float:
        found = item(section, label)
        assert isinstance(found, Ratio)
        return found.p50

    longest = f"{CHAT_LENGTHS[-1]:,}/{CHAT_LENGTHS[0]}"
    return [
        Goal("create p50, gateway / runtime", ratio("creates", "gateway/runtime"), 1.3, "x"),
        Goal(
            "creates through the gateway",
            timings("creates", "through the gateway").rate,
            82.5,
            "/s",
            at_most=False,
        ),
        Goal(
            "one history read alone, runtime, p50",
            timings("histories", "alone, runtime directly").p50 * 1000,
            5,
            " ms",
        ),
        Goal(
            f"history reads {CONCURRENCY} at a time, runtime",
            timings("histories", f"{CONCURRENCY} at a time, runtime directly").rate,
            197,
            "/s",
            at_most=False,
        ),
        Goal("switch p99", timings("switches", "switch").p99 * 1000, 50, " ms"),
        Goal(f"chat exchange p50, {longest} messages", ratio("chats", longest), 1.5, "x"),
    ]


@dataclass(frozen=True)
class CpuPerRequest:
    """CPU time each service process spent per request during a row's run: where a ratio's
    difference went (a ratio of latencies on a shared machine also counts waiting for a core)."""

    label: str
    milliseconds: dict[str, float]

    def line(self) -> str:
        spent = ", ".join(f"{name} {ms:.3f} ms" for name, ms in self.milliseconds.items())
        return f"  CPU per request, {self.label}: {spent}"

    def as_json(self) -> dict[str, Any]:
        return {
            "cpu_per_request": self.label,
            **{k: round(v, 4) for k, v in self.milliseconds.items()},
        }


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User and system CPU seconds of each process so far, from /proc; empty where there is none."""
    spent = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return {}
        spent[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return spent


def per_request(before: dict[str, float], after: dict[str, float], count: int) -> dict[str, float]:
    if not before or not after:
        return {}
    return {name: (after[name] - before[name]) / count * 1000 for name in before}


@dataclass
class Section:
    """A titled table of the output: its rows and ratios, in the order they are printed."""

    title: str
    items: list[Row | Ratio | CpuPerRequest] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [self.title, *(item.line() for item in self.items)]

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "rows": [item.as_json() for item in self.items if isinstance(item, Row)],
            "ratios": [item.as_json() for item in self.items if isinstance(item, Ratio)],
            "cpu": [item.as_json() for item in self.items if isinstance(item, CpuPerRequest)],
        }


async def timed(count: int, concurrency: int, call: Callable[[], Awaitable[None]]) -> Timings:
    seconds: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            started = time.perf_counter()
            await call()
            seconds.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return Timings(seconds, time.perf_counter() - started)


async def fetch(client: aiohttp.ClientSession, route: Route, **values: str) -> None:
    """One request, its answer read whole; an error answer stops the bench."""
    path = route.path(**values)
    async with client.request(route.method, path) as response:
        await response.read()
        if response.status >= 300:
            raise RuntimeError(f"{route.method} {path} answered {response.status}")


@dataclass
class Bench:
    gateway: aiohttp.ClientSession
    runtime: aiohttp.ClientSession
    store: Store
    gateway_url: str
    n: int
    # The services' processes, whose CPU time a create section reads.
    pids: dict[str, int]

    def socket_url(self, session_id: str) -> str:
        return self.gateway_url.replace("http", "ws", 1) + SOCKET.path(session_id=session_id)

    async def session_of(self, length: int) -> str:
        """A session holding `length` user messages, written straight into the store."""
        session_id = (await self.store.create_session()).session_id
        for start in range(0, length, 1000):
            count = min(1000, length - start)
            messages = [Message(role="user", content=f"message {start + i}") for i in range(count)]
            await self.store.apply_turn(session_id, Turn(messages=messages))
        return session_id

    async def creates(self) -> Section:
        section = Section(f"create session ({CREATE_SESSION}), {CONCURRENCY} at a time:")

        async def create_on(client: aiohttp.ClientSession) -> None:
            await fetch(client, CREATE_SESSION)

        # Five times the other sections' count: at a thousand creates a second, n of them last
        # a fraction of a second, which one hiccup of this machine decides.
        count = 5 * self.n
        spent = cpu_seconds(self.pids)
        direct = await timed(count, CONCURRENCY, lambda: create_on(self.runtime))
        direct_cpu, spent = (
            per_request(spent, cpu_seconds(self.pids), count),
            cpu_seconds(self.pids),
        )
        proxied = await timed(count, CONCURRENCY, lambda: create_on(self.gateway))
        proxied_cpu = per_request(spent, cpu_seconds(self.pids), count)
        section.items += [Row("runtime directly", direct), Row("through the gateway", proxied)]
        section.items.append(Ratio.of("gateway/runtime", proxied, direct))
        if direct_cpu and proxied_cpu:
            section.items += [
                CpuPerRequest("runtime directly", direct_cpu),
                CpuPerRequest("through the gateway", proxied_cpu),
            ]
        return section

    async def histories(self) -> Section:
        big = await self.session_of(HISTORY_LENGTH)
        section = Section(f"history of a {HISTORY_LENGTH:,}-message session ({HISTORY}):")

        async def history_on(client: aiohttp.ClientSession) -> None:
            await fetch(client, HISTORY, session_id=big)

        alone = max(20, self.n // 10)
        direct = await timed(alone, 1, lambda: history_on(self.runtime))
        proxied = await timed(alone, 1, lambda: history_on(self.gateway))
        section.items += [
            Row("alone, runtime directly", direct),
            Row("alone, through the gateway", proxied),
            Ratio.of("gateway/runtime, alone", proxied, direct),
        ]
        loaded = max(40, self.n // 4)
        direct = await timed(loaded, CONCURRENCY, lambda: history_on(self.runtime))
        proxied = await timed(loaded, CONCURRENCY, lambda: history_on(self.gateway))
        section.items += [
            Row(f"{CONCURRENCY} at a time, runtime directly", direct),
            Row(f"{CONCURRENCY} at a time, through the gateway", proxied),
            Ratio.of(f"gateway/runtime, {CONCURRENCY} at a time", proxied, direct),
        ]
        return section

    async def switches(self) -> Section:
        """An IDE's switch to a session: its history, then a new socket to it (strict: the gateway
        checks that the session exists before accepting)."""
        big = await self.session_of(HISTORY_LENGTH)
        socket_url = self.socket_url(big)

        async def switch() -> None:
            await fetch(self.gateway, HISTORY, session_id=big)
            async with connect(socket_url, open_timeout=30, close_timeout=5):
                pass

        async def socket_only() -> None:
            async with connect(socket_url, open_timeout=30, close_timeout=5):
                pass

        count = max(40, self.n // 4)
        section = Section(
            f"switch to a {HISTORY_LENGTH:,}-message session (history + new socket), 1 at a time:"
        )
        opened = await timed(count, 1, socket_only)
        switched = await timed(count, 1, switch)
        section.items += [Row("new socket alone", opened), Row("switch", switched)]
        return section

    async def chats(self) -> Section:
        """One chat exchange over the gateway's socket: a user message to its final reply."""
        section = Section(
            "one chat exchange over the socket (user message -> final reply), 1 at a time:"
        )
        results: dict[int, Timings] = {}
        for length in CHAT_LENGTHS:
            session_id = await self.session_of(length)
            socket_url = self.socket_url(session_id)
            async with connect(socket_url, open_timeout=30, close_timeout=5) as socket:
                results[length] = await timed(
                    max(20, self.n // 4), 1, functools.partial(_exchange, socket)
                )
            section.items.append(Row(f"at {length:,} messages", results[length]))
        first = CHAT_LENGTHS[0]
        for length in CHAT_LENGTHS[1:]:
            section.items.append(
                Ratio(f"{length:,}/{first}", results[length].p50 / results[first].p50)
            )
        return section


async def _exchange(socket: ClientConnection) -> None:
    await socket.send(json.dumps({"type": "user_message", "content": "one more", "role": "user"}))
    async with asyncio.timeout(30):
        while True:
            frame = json.loads(await socket.recv())
            if frame.get("type") == "error":
                raise RuntimeError(f"the turn failed: {frame}")
            if frame.get("type") == "assistant_message" and frame.get("is_final") is True:
                return


def client_of(base_url: str, headers: dict[str, str] | None = None) -> aiohttp.ClientSession:
    """The bench's client: as many connections as requests at a time, nothing from the
    environment (proxy variables must not reroute loopback calls)."""
    return aiohttp.ClientSession(
        base_url,
        headers=headers,
        connector=aiohttp.TCPConnector(limit=CONCURRENCY),
        timeout=aiohttp.ClientTimeout(total=30),
        trust_env=False,
    )


async def _measure(
    runtime_url: str,
    gateway_url: str,
    pids: dict[str, int],
    key: str,
    data_dir: Path,
    n: int,
    out: TextIO,
) -> dict[str, Section]:
    store = await Store.open(RuntimeSettings(data_dir=data_dir).resolved_database_url())
    try:
        async with (
            client_of(gateway_url) as gateway,
            client_of(runtime_url, {"X-Internal-Auth": key}) as runtime,
        ):
            # Warm both paths so connection set-up is not measured as the first requests.
            await timed(40, CONCURRENCY, lambda: fetch(gateway, LIST_AGENTS))
            await timed(40, CONCURRENCY, lambda: fetch(runtime, LIST_AGENTS))
            bench = Bench(gateway, runtime, store, gateway_url, n, pids)
            sections = {}
            for part in (bench.creates, bench.histories, bench.switches, bench.chats):
                sections[part.__name__] = section = await part()
                print("\n".join(section.lines()), file=out, flush=True)
            return sections
    finally:
        await store.close()


def serve_child(
    service: Service, choices: StackChoices, runtime_url: str | None, pipe: Connection
) -> None:
    """A child process's service: its URL goes up the pipe; anything sent down it stops it."""
    if service == "runtime":
        app = create_runtime_app(choices.runtime_settings())
    else:
        assert runtime_url is not None, "a gateway needs its runtime's URL"
        app = create_gateway_app(choices.gateway_settings(runtime_url))
    with ThreadedServer(app) as server:
        pipe.send(server.url)
        pipe.recv()


@dataclass(frozen=True)
class Child:
    url: str
    pid: int


@contextlib.contextmanager
def child_service(
    service: Service, choices: StackChoices, runtime_url: str | None = None
) -> Iterator[Child]:
    """Run one service in a process of its own."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=serve_child,
        args=(service, choices, runtime_url, theirs),
        name=f"bench-{service}",
        daemon=True,
    )
    process.start()
    try:
        if not ours.poll(STARTUP):
            raise RuntimeError(f"the {service} did not start within {STARTUP:g} s")
        url: str = ours.recv()
        assert process.pid is not None
        yield Child(url, process.pid)
    finally:
        with contextlib.suppress(OSError):
            ours.send("stop")
        process.join(15)
        if process.is_alive():
            process.kill()
            process.join(5)


@dataclass(frozen=True)
class MicroRatios:
    """What the second part of `sessionlab bench` measured."""

    n: int
    sections: list[Section]
    goals: list[Goal]
    wall: float

    def as_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "wall_s": round(self.wall, 3),
            "sections": [section.as_json() for section in self.sections],
            "goals": [goal.as_json() for goal in self.goals],
        }


def run_bench(scale: float = 1.0, out: TextIO | None = None) -> MicroRatios:
    """Measure and print the micro-ratios, each section as it is done."""
    out = out or sys.stdout
    n = max(40, round(400 * scale))
    key = random_key()
    with tempfile.TemporaryDirectory(prefix="sessionlab-bench-") as scratch:
        data_dir = Path(scratch)
        choices = StackChoices(data_dir=data_dir, internal_key=key)
        with child_service("runtime", choices) as runtime:
            runtime_url = runtime.url
            with child_service("gateway", choices, runtime_url) as gateway:
                gateway_url = gateway.url
                pids = {"runtime": runtime.pid, "gateway": gateway.pid}
                print(
                    f"micro-ratios: runtime {runtime_url}, gateway {gateway_url} "
                    f"(a process each), n={n}",
                    file=out,
                )
                started = time.perf_counter()
                measured = asyncio.run(
                    _measure(runtime_url, gateway_url, pids, key, data_dir, n, out)
                )
                goals = goals_of(measured)
                sections = list(measured.values())
                print("goals (docs/performance.md), this run:", file=out)
                print("\n".join(goal.line() for goal in goals), file=out, flush=True)
                # Worker processes (docs/scale-out.md): a section of its own, its own stacks.
                from reference.bench_workers import scale_out_section

                sections.append(scale_out_section(n))
                print("\n".join(sections[-1].lines()), file=out, flush=True)
                wall = time.perf_counter() - started
                print(f"micro-ratios done in {wall:.1f} s", file=out)
    return MicroRatios(n, sections, goals, wall)

"""`sessionlab bench`: the reference stack measured against itself, printed as ratios of one run.

Absolute figures depend on the machine and its load; the ratios (gateway vs. runtime directly,
a chat at 10,000 messages vs. at 10) are what to compare between runs. The runtime and the
gateway each run in a process of their own, as deployed, so that neither the client nor the other
service shares their interpreter; the client is this process. docs/performance.md has the figures
measured so far and what they led to.
"""

import asyncio
import contextlib
import functools
import json
import multiprocessing
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import AnyHttpUrl, SecretStr
from websockets.asyncio.client import ClientConnection, connect

from conformance.contract.bodies import Message
from reference.gateway.app import create_app as create_gateway_app
from reference.runtime.app import create_app as create_runtime_app
from reference.runtime.script_agent import Turn
from reference.runtime.store import Store
from reference.server import ThreadedServer
from reference.settings import GatewaySettings, RuntimeSettings

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


def ratio(label: str, over: Timings, under: Timings) -> str:
    return (
        f"  ratio {label}: p50 {over.p50 / under.p50:.2f}x, "
        f"throughput {over.rate / under.rate:.2f}x"
    )


def _ok(response: httpx.Response) -> None:
    if response.status_code >= 300:
        raise RuntimeError(f"{response.request.url} answered {response.status_code}")


async def _ok_async(pending: Awaitable[httpx.Response]) -> None:
    _ok(await pending)


@dataclass
class Bench:
    gateway: httpx.AsyncClient
    runtime: httpx.AsyncClient
    store: Store
    gateway_url: str
    n: int

    async def session_of(self, length: int) -> str:
        """A session holding `length` user messages, written straight into the store."""
        session_id = (await self.store.create_session()).session_id
        for start in range(0, length, 1000):
            count = min(1000, length - start)
            messages = [Message(role="user", content=f"message {start + i}") for i in range(count)]
            await self.store.apply_turn(session_id, Turn(messages=messages))
        return session_id

    async def creates(self) -> list[str]:
        lines = [f"create session (POST /sessions), {CONCURRENCY} at a time:"]

        async def create_on(client: httpx.AsyncClient) -> None:
            _ok(await client.post("/sessions"))

        direct = await timed(self.n, CONCURRENCY, lambda: create_on(self.runtime))
        proxied = await timed(self.n, CONCURRENCY, lambda: create_on(self.gateway))
        lines += [direct.row("runtime directly"), proxied.row("through the gateway")]
        lines.append(ratio("gateway/runtime", proxied, direct))
        return lines

    async def histories(self) -> list[str]:
        big = await self.session_of(HISTORY_LENGTH)
        path = f"/sessions/{big}/history"
        lines = [f"history of a {HISTORY_LENGTH:,}-message session (GET /sessions/{{id}}/history):"]

        async def history_on(client: httpx.AsyncClient) -> None:
            _ok(await client.get(path))

        alone = max(20, self.n // 10)
        direct = await timed(alone, 1, lambda: history_on(self.runtime))
        proxied = await timed(alone, 1, lambda: history_on(self.gateway))
        lines += [direct.row("alone, runtime directly"), proxied.row("alone, through the gateway")]
        lines.append(ratio("gateway/runtime, alone", proxied, direct))
        loaded = max(40, self.n // 4)
        direct = await timed(loaded, CONCURRENCY, lambda: history_on(self.runtime))
        proxied = await timed(loaded, CONCURRENCY, lambda: history_on(self.gateway))
        lines += [
            direct.row(f"{CONCURRENCY} at a time, runtime directly"),
            proxied.row(f"{CONCURRENCY} at a time, through the gateway"),
        ]
        lines.append(ratio(f"gateway/runtime, {CONCURRENCY} at a time", proxied, direct))
        return lines

    async def switches(self) -> list[str]:
        """An IDE's switch to a session: its history, then a new socket to it (strict: the gateway
        checks that the session exists before accepting)."""
        big = await self.session_of(HISTORY_LENGTH)
        socket_url = self.gateway_url.replace("http", "ws", 1) + f"/ws/{big}"

        async def switch() -> None:
            _ok(await self.gateway.get(f"/sessions/{big}/history"))
            async with connect(socket_url, open_timeout=30, close_timeout=5):
                pass

        async def socket_only() -> None:
            async with connect(socket_url, open_timeout=30, close_timeout=5):
                pass

        count = max(40, self.n // 4)
        lines = [
            f"switch to a {HISTORY_LENGTH:,}-message session (history + new socket), 1 at a time:"
        ]
        opened = await timed(count, 1, socket_only)
        switched = await timed(count, 1, switch)
        lines += [opened.row("new socket alone"), switched.row("switch")]
        return lines

    async def chats(self) -> list[str]:
        """One chat exchange over the gateway's socket: a user message to its final reply."""
        lines = ["one chat exchange over the socket (user message -> final reply), 1 at a time:"]
        results: dict[int, Timings] = {}
        for length in CHAT_LENGTHS:
            session_id = await self.session_of(length)
            socket_url = self.gateway_url.replace("http", "ws", 1) + f"/ws/{session_id}"
            async with connect(socket_url, open_timeout=30, close_timeout=5) as socket:
                results[length] = await timed(
                    max(20, self.n // 4), 1, functools.partial(_exchange, socket)
                )
            lines.append(results[length].row(f"at {length:,} messages"))
        first = CHAT_LENGTHS[0]
        for length in CHAT_LENGTHS[1:]:
            lines.append(
                f"  ratio {length:,}/{first}: p50 {results[length].p50 / results[first].p50:.2f}x"
            )
        return lines


async def _exchange(socket: ClientConnection) -> None:
    await socket.send(json.dumps({"type": "user_message", "content": "one more", "role": "user"}))
    async with asyncio.timeout(30):
        while True:
            frame = json.loads(await socket.recv())
            if frame.get("type") == "error":
                raise RuntimeError(f"the turn failed: {frame}")
            if frame.get("type") == "assistant_message" and frame.get("is_final") is True:
                return


async def _measure(runtime_url: str, gateway_url: str, key: str, data_dir: Path, n: int) -> None:
    store = await Store.open(RuntimeSettings(data_dir=data_dir).resolved_database_url())
    limits = httpx.Limits(max_connections=CONCURRENCY)
    try:
        async with (
            httpx.AsyncClient(base_url=gateway_url, limits=limits, timeout=30) as gateway,
            httpx.AsyncClient(
                base_url=runtime_url,
                limits=limits,
                timeout=30,
                headers={"X-Internal-Auth": key},
            ) as runtime,
        ):
            # Warm both paths so connection set-up is not measured as the first requests.
            await timed(40, CONCURRENCY, lambda: _ok_async(gateway.get("/sessions")))
            await timed(40, CONCURRENCY, lambda: _ok_async(runtime.get("/sessions")))
            bench = Bench(gateway, runtime, store, gateway_url, n)
            for part in (bench.creates, bench.histories, bench.switches, bench.chats):
                for line in await part():
                    print(line, flush=True)
    finally:
        await store.close()


def serve_child(service: Service, settings: dict[str, Any], pipe: Connection) -> None:
    """A child process's service: its URL goes up the pipe; anything sent down it stops it."""
    app = (
        create_runtime_app(RuntimeSettings(**settings))
        if service == "runtime"
        else create_gateway_app(GatewaySettings(**settings))
    )
    with ThreadedServer(app) as server:
        pipe.send(server.url)
        pipe.recv()


@contextlib.contextmanager
def child_service(service: Service, settings: dict[str, Any]) -> Iterator[str]:
    """Run one service in a process of its own; its URL."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=serve_child, args=(service, settings, theirs), name=f"bench-{service}", daemon=True
    )
    process.start()
    try:
        if not ours.poll(STARTUP):
            raise RuntimeError(f"the {service} did not start within {STARTUP:g} s")
        url: str = ours.recv()
        yield url
    finally:
        with contextlib.suppress(OSError):
            ours.send("stop")
        process.join(15)
        if process.is_alive():
            process.kill()
            process.join(5)


def run_bench(scale: float = 1.0) -> int:
    n = max(40, round(400 * scale))
    key = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="sessionlab-bench-") as scratch:
        data_dir = Path(scratch)
        runtime_settings = {"data_dir": data_dir, "internal_key": SecretStr(key)}
        with child_service("runtime", runtime_settings) as runtime_url:
            gateway_settings = {
                "runtime_url": AnyHttpUrl(runtime_url),
                "internal_key": SecretStr(key),
            }
            with child_service("gateway", gateway_settings) as gateway_url:
                print(
                    f"sessionlab bench: runtime {runtime_url}, gateway {gateway_url} "
                    f"(a process each), n={n}"
                )
                started = time.perf_counter()
                asyncio.run(_measure(runtime_url, gateway_url, key, data_dir, n))
                # Worker processes (docs/scale-out.md): a section of its own, its own stacks.
                from reference.bench_workers import scale_out_section

                print("\n".join(scale_out_section(n)), flush=True)
                print(f"done in {time.perf_counter() - started:.1f} s")
    return 0

"""`sessionlab bench`: the reference stack measured against itself, printed as ratios of one run.

Absolute figures depend on the machine and its load; the ratios (gateway vs. direct, append at
10,000 messages vs. at 10) are what to compare between runs.
"""

import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import AnyHttpUrl, SecretStr

from conformance.contract.bodies import Message
from reference.gateway.app import create_app as create_gateway_app
from reference.runtime.app import create_app as create_runtime_app
from reference.runtime.script_agent import Turn
from reference.runtime.store import Store
from reference.server import ThreadedServer
from reference.settings import GatewaySettings, RuntimeSettings


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


def _ok(response: httpx.Response) -> None:
    if response.status_code >= 300:
        raise RuntimeError(f"{response.request.url} answered {response.status_code}")


async def _bench_http(
    gateway: httpx.AsyncClient, runtime: httpx.AsyncClient, store: Store, n: int
) -> list[str]:
    lines = ["create session (POST /sessions), 8 at a time:"]

    async def create_on(client: httpx.AsyncClient) -> None:
        _ok(await client.post("/sessions"))

    direct = await timed(n, 8, lambda: create_on(runtime))
    proxied = await timed(n, 8, lambda: create_on(gateway))
    lines += [direct.row("runtime directly"), proxied.row("through the gateway")]
    lines.append(
        f"  ratio gateway/direct: p50 {proxied.p50 / direct.p50:.2f}x, "
        f"throughput {proxied.rate / direct.rate:.2f}x"
    )

    big = (await store.create_session()).session_id
    await store.apply_turn(
        big, Turn(messages=[Message(role="user", content=f"message {i}") for i in range(1000)])
    )
    lines.append("history of a 1,000-message session (GET /sessions/{id}/history), 1 at a time:")

    async def history_on(client: httpx.AsyncClient) -> None:
        _ok(await client.get(f"/sessions/{big}/history"))

    loads = max(10, n // 10)
    direct = await timed(loads, 1, lambda: history_on(runtime))
    proxied = await timed(loads, 1, lambda: history_on(gateway))
    lines += [direct.row("runtime directly"), proxied.row("through the gateway")]
    lines.append(f"  ratio gateway/direct: p50 {proxied.p50 / direct.p50:.2f}x")
    return lines


async def _bench_appends(runtime: httpx.AsyncClient, store: Store, n: int) -> list[str]:
    small = (await store.create_session()).session_id
    large = (await store.create_session()).session_id
    await store.apply_turn(small, Turn(messages=[Message(role="user", content="x")] * 10))
    for _ in range(10):
        await store.apply_turn(large, Turn(messages=[Message(role="user", content="x")] * 1000))

    async def append(session_id: str) -> None:
        await store.apply_turn(session_id, Turn(messages=[Message(role="user", content="y")]))

    async def turn(session_id: str) -> None:
        message = {"type": "user_message", "content": "one more", "role": "user"}
        response = await runtime.post(
            "/agent/message/stream", json={"session_id": session_id, "message": message}
        )
        _ok(response)

    lines = ["append one message, store call (in process):"]
    at_small = await timed(n, 1, lambda: append(small))
    at_large = await timed(n, 1, lambda: append(large))
    lines += [at_small.row("at 10 messages"), at_large.row("at 10,000 messages")]
    lines.append(f"  ratio 10,000/10: p50 {at_large.p50 / at_small.p50:.2f}x")
    lines.append("one agent turn (POST /agent/message/stream, 2 messages appended):")
    turns = max(10, n // 2)
    at_small = await timed(turns, 1, lambda: turn(small))
    at_large = await timed(turns, 1, lambda: turn(large))
    lines += [at_small.row("at ~10 messages"), at_large.row("at ~10,000 messages")]
    lines.append(f"  ratio 10,000/10: p50 {at_large.p50 / at_small.p50:.2f}x")
    return lines


async def _measure(runtime_url: str, gateway_url: str, key: str, data_dir: Path, n: int) -> None:
    store = await Store.open(RuntimeSettings(data_dir=data_dir).resolved_database_url())
    limits = httpx.Limits(max_connections=16)
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
            await timed(20, 4, lambda: _ok_async(gateway.get("/sessions")))
            await timed(20, 4, lambda: _ok_async(runtime.get("/sessions")))
            for line in await _bench_http(gateway, runtime, store, n):
                print(line, flush=True)
            for line in await _bench_appends(runtime, store, n):
                print(line, flush=True)
    finally:
        await store.close()


async def _ok_async(pending: Awaitable[httpx.Response]) -> None:
    _ok(await pending)


def run_bench(scale: float = 1.0) -> int:
    n = max(20, round(400 * scale))
    key = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="sessionlab-bench-") as scratch:
        data_dir = Path(scratch)
        settings = RuntimeSettings(data_dir=data_dir, internal_key=SecretStr(key))
        with ThreadedServer(create_runtime_app(settings)) as runtime:
            gateway_settings = GatewaySettings(
                runtime_url=AnyHttpUrl(runtime.url), internal_key=SecretStr(key)
            )
            with ThreadedServer(create_gateway_app(gateway_settings)) as gateway:
                print(f"sessionlab bench: runtime {runtime.url}, gateway {gateway.url}, n={n}")
                started = time.perf_counter()
                asyncio.run(_measure(runtime.url, gateway.url, key, data_dir, n))
                print(f"done in {time.perf_counter() - started:.1f} s")
    return 0

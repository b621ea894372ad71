"""The fault proxy on real loopback sockets: each fault as a client observes it."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

from simulators.faultproxy import Bandwidth, Direction, Fault, FaultProxy, Latency, Slice, Timeout
from simulators.faultproxy.plan import Step, bandwidth_sizes, plan_chunk, slice_sizes

LOOPBACK = "127.0.0.1"
# Generous: only a broken proxy waits this long; healthy paths finish far sooner.
DEADLINE_S = 3.0


# -- upstream servers ------------------------------------------------------------------


class EchoServer:
    """Echoes every byte; remembers what it got; may greet each new connection first."""

    def __init__(self, greeting: bytes = b"") -> None:
        self.greeting = greeting
        self.received = bytearray()
        self.arrived = asyncio.Condition()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._writers):
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            writer.write(self.greeting)
            while data := await reader.read(65536):
                self.received += data
                async with self.arrived:
                    self.arrived.notify_all()
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            self._writers.discard(writer)


class HttpServer(EchoServer):
    """Answers every HTTP/1.1 request with 200 and body ``ok``, keeping the connection."""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                self.received += await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(LOOPBACK, echo.port, seed=7) as proxy:
        yield proxy


@contextlib.asynccontextmanager
async def dial(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    async with asyncio.timeout(DEADLINE_S):
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            async with asyncio.timeout(DEADLINE_S):
                await writer.wait_closed()


async def round_trip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes
) -> float:
    """Send ``payload``, read it back whole, return the seconds it took on the loop clock."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    writer.write(payload)
    await writer.drain()
    async with asyncio.timeout(DEADLINE_S):
        assert await reader.readexactly(len(payload)) == payload
    return loop.time() - began


async def nothing_arrives(reader: asyncio.StreamReader, within_s: float) -> bool:
    try:
        async with asyncio.timeout(within_s):
            await reader.read(1)
    except TimeoutError:
        return True
    return False


def proxy_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("faultproxy")]


# -- plumbing --------------------------------------------------------------------------


async def test_forwards_bytes_both_ways_and_counts_live_connections(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    assert proxy.url() == f"http://{LOOPBACK}:{proxy.port}"
    assert proxy.url("ws") == f"ws://{LOOPBACK}:{proxy.port}"
    assert proxy.address == (LOOPBACK, proxy.port)
    async with dial(proxy.port) as (reader, writer):
        await round_trip(reader, writer, b"hello")
        assert proxy.connections == 1
        assert bytes(echo.received) == b"hello"
        open_tasks = proxy_tasks()
    # The client hung up; the proxy closes its side of both sockets by itself.
    await asyncio.wait(open_tasks, timeout=DEADLINE_S)
    assert proxy.connections == 0


async def test_unreachable_upstream_resets_the_client() -> None:
    with socket.socket() as placeholder:
        placeholder.bind((LOOPBACK, 0))
        dead_port = placeholder.getsockname()[1]
    async with FaultProxy(LOOPBACK, dead_port) as proxy, dial(proxy.port) as (reader, _):
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(DEADLINE_S):
                await reader.read(1)


# -- down / up, cut, reset -------------------------------------------------------------


async def test_down_refuses_new_connections_keeps_open_ones_and_up_relistens_on_same_port(
    proxy: FaultProxy,
) -> None:
    port = proxy.port
    async with dial(port) as (reader, writer):
        await round_trip(reader, writer, b"before")
        proxy.down()
        assert not proxy.listening
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(LOOPBACK, port)
        await round_trip(reader, writer, b"still open")
        proxy.up()
        assert proxy.port == port
        async with dial(port) as (reader2, writer2):
            await round_trip(reader2, writer2, b"after")


async def test_cut_closes_open_connections_with_eof(proxy: FaultProxy) -> None:
    async with dial(proxy.port) as (reader, writer):
        await round_trip(reader, writer, b"ping")
        await proxy.cut()
        assert proxy.connections == 0
        async with asyncio.timeout(DEADLINE_S):
            assert await reader.read(1) == b""
        # Cut is one-shot: the listener stays up and new connections work.
        async with dial(proxy.port) as (reader2, writer2):
            await round_trip(reader2, writer2, b"again")


async def test_cut_closes_a_live_websocket() -> None:
    async def echo_ws(conn: ServerConnection) -> None:
        # The cut reaches this side too, as an end of stream without a close frame.
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in conn:
                await conn.send(message)

    async with ws_serve(echo_ws, LOOPBACK, 0) as server:
        ws_port = next(iter(server.sockets)).getsockname()[1]
        async with (
            FaultProxy(LOOPBACK, ws_port) as proxy,
            ws_connect(proxy.url("ws"), open_timeout=DEADLINE_S) as ws,
        ):
            await ws.send("hi")
            async with asyncio.timeout(DEADLINE_S):
                assert await ws.recv() == "hi"
            await proxy.cut()
            with pytest.raises(websockets.ConnectionClosed):
                async with asyncio.timeout(DEADLINE_S):
                    await ws.recv()


async def test_reset_aborts_open_connections_with_rst(proxy: FaultProxy) -> None:
    async with dial(proxy.port) as (reader, writer):
        await round_trip(reader, writer, b"ping")
        await proxy.reset()
        assert proxy.connections == 0
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(DEADLINE_S):
                await reader.read(1)


# -- shaping faults --------------------------------------------------------------------


async def test_latency_delays_replies_on_an_open_connection_by_at_least_its_delay(
    proxy: FaultProxy,
) -> None:
    async with dial(proxy.port) as (reader, writer):
        without = await round_trip(reader, writer, b"a")
        name = proxy.add_fault(Latency(ms=200, direction=Direction.DOWNSTREAM))
        with_latency = await round_trip(reader, writer, b"b")
        proxy.remove_fault(name)
        both_ways = proxy.add_fault(Latency(ms=100, jitter_ms=0))
        round_both = await round_trip(reader, writer, b"c")
        proxy.remove_fault(both_ways)
    assert with_latency >= 0.200, (without, with_latency)
    assert round_both >= 0.200, "a latency on both directions counts once each way"


async def test_timeout_leaves_requests_unanswered_until_the_fault_is_removed() -> None:
    server = HttpServer()
    await server.start()
    try:
        async with (
            FaultProxy(LOOPBACK, server.port) as proxy,
            httpx.AsyncClient(base_url=proxy.url()) as client,
        ):
            assert (await client.get("/", timeout=DEADLINE_S)).text == "ok"
            name = proxy.add_fault(Timeout())
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/", timeout=0.3)
            proxy.remove_fault(name)
            assert (await client.get("/", timeout=DEADLINE_S)).text == "ok"
    finally:
        await server.stop()


async def test_timeout_with_close_after_closes_open_connections(proxy: FaultProxy) -> None:
    async with dial(proxy.port) as (reader, writer):
        await round_trip(reader, writer, b"ping")
        proxy.add_fault(Timeout(close_after_ms=100))
        writer.write(b"lost")
        async with asyncio.timeout(DEADLINE_S):
            assert await reader.read(10) == b""


async def test_bandwidth_makes_a_64_kib_transfer_take_at_least_size_over_rate(
    proxy: FaultProxy,
) -> None:
    payload = random.Random(1).randbytes(64 * 1024)
    rate = 256 * 1024
    async with dial(proxy.port) as (reader, writer):
        proxy.add_fault(Bandwidth(bytes_per_second=rate, direction=Direction.DOWNSTREAM))
        elapsed = await round_trip(reader, writer, payload)
    assert elapsed >= len(payload) / rate


async def test_slice_delivers_the_same_bytes_in_many_reads(proxy: FaultProxy) -> None:
    payload = random.Random(2).randbytes(2048)
    proxy.add_fault(
        Slice(average_size=128, size_variation=32, delay_ms=10, direction=Direction.DOWNSTREAM)
    )
    reads: list[bytes] = []
    async with dial(proxy.port) as (reader, writer):
        writer.write(payload)
        async with asyncio.timeout(DEADLINE_S):
            while sum(map(len, reads)) < len(payload):
                reads.append(await reader.read(65536))
    assert b"".join(reads) == payload
    assert len(reads) >= 4, [len(r) for r in reads]


# -- directions and removal ------------------------------------------------------------


async def test_downstream_fault_leaves_upstream_bytes_flowing(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    proxy.add_fault(Timeout(direction=Direction.DOWNSTREAM))
    async with dial(proxy.port) as (reader, writer):
        writer.write(b"request")
        async with asyncio.timeout(DEADLINE_S), echo.arrived:
            await echo.arrived.wait_for(lambda: echo.received == b"request")
        assert await nothing_arrives(reader, within_s=0.3)


async def test_upstream_fault_leaves_downstream_bytes_flowing() -> None:
    server = EchoServer(greeting=b"welcome")
    await server.start()
    try:
        async with FaultProxy(LOOPBACK, server.port) as proxy:
            proxy.add_fault(Timeout(direction=Direction.UPSTREAM))
            async with dial(proxy.port) as (reader, writer):
                async with asyncio.timeout(DEADLINE_S):
                    assert await reader.readexactly(7) == b"welcome"
                writer.write(b"swallowed")
                assert await nothing_arrives(reader, within_s=0.3)
                assert server.received == b""
    finally:
        await server.stop()


async def test_clear_faults_restores_plain_forwarding(proxy: FaultProxy) -> None:
    proxy.add_fault(Timeout())
    proxy.add_fault(Slice(average_size=1))
    async with dial(proxy.port) as (reader, writer):
        writer.write(b"dropped")
        assert await nothing_arrives(reader, within_s=0.2)
        proxy.clear_faults()
        assert proxy.faults == {}
        await round_trip(reader, writer, b"delivered")


# -- stop ------------------------------------------------------------------------------


async def test_stop_closes_listener_and_connections_and_leaves_no_task(echo: EchoServer) -> None:
    proxy = FaultProxy(LOOPBACK, echo.port)
    await proxy.start()
    port = proxy.port
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        await round_trip(reader, writer, b"x")
        proxy.add_fault(Timeout(close_after_ms=60_000))
        await proxy.stop()
        await proxy.stop()
        assert proxy.connections == 0
        assert proxy_tasks() == []
        async with asyncio.timeout(DEADLINE_S):
            assert await reader.read(1) == b""
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(LOOPBACK, port)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# -- the API's contract ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Latency(ms=-1), "ms"),
        (lambda: Latency(ms=10, jitter_ms=-1), "jitter_ms"),
        (lambda: Latency(ms=float("nan")), "ms"),
        (lambda: Bandwidth(bytes_per_second=0), "bytes_per_second"),
        (lambda: Slice(average_size=0), "average_size"),
        (lambda: Slice(average_size=10, size_variation=10), "size_variation"),
        (lambda: Slice(average_size=10, delay_ms=-5), "delay_ms"),
        (lambda: Timeout(close_after_ms=-1), "close_after_ms"),
        (lambda: Latency(ms=1, direction="sideways"), "direction"),  # type: ignore[arg-type]
    ],
)
def test_bad_fault_parameters_raise_value_error_naming_the_field(build, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        build()


def test_direction_accepts_its_names_as_strings() -> None:
    assert Latency(ms=1, direction="upstream").direction is Direction.UPSTREAM  # type: ignore[arg-type]


def test_fault_names_are_unique_and_removal_of_an_unknown_name_fails() -> None:
    proxy = FaultProxy(LOOPBACK, 9)
    first = proxy.add_fault(Latency(ms=1, direction=Direction.UPSTREAM))
    second = proxy.add_fault(Latency(ms=2, direction=Direction.UPSTREAM))
    assert (first, second) == ("latency_upstream", "latency_upstream_2")
    assert proxy.add_fault(Bandwidth(100), name="slow") == "slow"
    with pytest.raises(ValueError, match="slow"):
        proxy.add_fault(Bandwidth(200), name="slow")
    assert list(proxy.faults) == [first, second, "slow"]
    proxy.remove_fault(first)
    with pytest.raises(KeyError, match=first):
        proxy.remove_fault(first)


def test_ports_are_checked_when_the_proxy_is_built() -> None:
    with pytest.raises(ValueError, match="upstream_port"):
        FaultProxy(LOOPBACK, 0)
    with pytest.raises(ValueError, match="listen_port"):
        FaultProxy(LOOPBACK, 80, listen_port=70000)


# -- pure planning ---------------------------------------------------------------------


@given(
    length=st.integers(min_value=0, max_value=5000),
    average=st.integers(min_value=1, max_value=300),
    seed=st.integers(),
    data=st.data(),
)
def test_slice_sizes_cover_the_chunk_within_the_allowed_spread(
    length: int, average: int, seed: int, data: st.DataObject
) -> None:
    variation = data.draw(st.integers(min_value=0, max_value=average - 1))
    sizes = slice_sizes(length, Slice(average, variation), random.Random(seed))
    assert sum(sizes) == length
    assert all(1 <= s <= average + variation for s in sizes)
    assert all(s >= average - variation for s in sizes[:-1])


def test_bandwidth_plan_waits_size_over_rate_before_each_piece() -> None:
    fault = Bandwidth(bytes_per_second=1000)
    assert bandwidth_sizes(120, fault) == [50, 50, 20]
    plan = plan_chunk(bytes(120), [fault], random.Random(0))
    assert plan.steps == (Step(0.05, bytes(50)), Step(0.05, bytes(50)), Step(0.02, bytes(20)))


def test_plans_are_reproducible_from_the_seed_and_timeout_drops_everything() -> None:
    faults: list[Fault] = [Latency(ms=50, jitter_ms=40), Slice(average_size=10, size_variation=5)]
    data = bytes(range(200))
    first = plan_chunk(data, faults, random.Random(3))
    assert first == plan_chunk(data, faults, random.Random(3))
    assert b"".join(s.data for s in first.steps) == data
    assert 0.010 <= first.hold_s <= 0.090
    assert plan_chunk(data, [*faults, Timeout()], random.Random(3)).dropped

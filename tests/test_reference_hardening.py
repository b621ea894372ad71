"""The reference survives hostile input and load: one test per defect of the hardening issue,
against real servers (uvicorn on loopback, `sessionlab serve` processes, real WebSockets)."""

import asyncio
import json
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest
from pydantic import AnyHttpUrl, SecretStr
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from reference.gateway.app import create_app as create_gateway_app
from reference.server import ThreadedServer
from reference.settings import GatewaySettings
from tests.fixtures.stack import INTERNAL_KEY, ReferenceStack, deadline, start_stack
from tests.test_serve_running import BANNER_URL, SESSIONLAB, clean_environment

DEEP = b"[" * 100_000 + b"]" * 100_000
MIB = 1024 * 1024


def _ws(stack_or_url: ReferenceStack | str, session_id: str) -> str:
    base = stack_or_url if isinstance(stack_or_url, str) else stack_or_url.gateway_url
    return base.replace("http://", "ws://", 1) + f"/ws/{session_id}"


# --- 1. JSON nested deeper than a parser follows ----------------------------------------------


def test_a_deeply_nested_body_is_a_422_on_the_runtime_and_through_the_gateway(
    reference_stack: ReferenceStack,
) -> None:
    headers = {"Content-Type": "application/json"}
    with httpx.Client(timeout=deadline(10)) as client:
        direct = client.post(
            f"{reference_stack.runtime_url}/sessions",
            content=DEEP,
            headers={**headers, **reference_stack.runtime_headers},
        )
        proxied = client.post(
            f"{reference_stack.gateway_url}/sessions", content=DEEP, headers=headers
        )
        session_id = client.post(f"{reference_stack.gateway_url}/sessions").json()["session_id"]
        turn = b'{"session_id": "%s", "message": {"type": "user_message", "role": "user", ' % (
            session_id.encode()
        )
        stream = client.post(
            f"{reference_stack.runtime_url}/agent/message/stream",
            content=turn + b'"content": ' + DEEP + b"}}",
            headers={**headers, **reference_stack.runtime_headers},
        )
    for answer in (direct, proxied, stream):
        assert answer.status_code == 422, answer.text
        assert "nested deeper than" in answer.json()["error"]


async def test_a_deeply_nested_frame_gets_an_error_frame_on_a_socket_that_stays_usable(
    reference_stack: ReferenceStack,
) -> None:
    async with httpx.AsyncClient(base_url=reference_stack.gateway_url) as client:
        session_id = (await client.post("/sessions")).json()["session_id"]
    frame = b'{"type": "user_message", "role": "user", "content": ' + DEEP + b"}"
    async with connect(_ws(reference_stack, session_id), max_size=None) as ws:
        await ws.send(frame.decode())
        error = json.loads(await asyncio.wait_for(ws.recv(), deadline(5)))
        assert error["type"] == "error"
        assert "nested deeper than" in error["content"]
        await ws.send(json.dumps({"type": "user_message", "role": "user", "content": "hi"}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), deadline(5)))
        assert reply["type"] == "assistant_message"


# --- 2. A broken exchange with the runtime poisons a pooled connection ------------------------


class PoisoningRuntime:
    """A runtime that speaks HTTP/1.1 with keep-alive by hand and, once, sends bytes after the
    end of an answer, in the same write: what a runtime that miscounts a body does."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.poison_next = False
        self.created = 0
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = next(
                    (
                        int(v)
                        for k, _, v in (line.partition(": ") for line in lines[1:])
                        if k.lower() == "content-length"
                    ),
                    0,
                )
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                if method == "POST" and path == "/sessions":
                    self.created += 1
                    body = json.dumps({"session_id": f"session_{self.created:016x}"}).encode()
                else:
                    body = b"[]"
                answer = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                if self.poison_next:
                    self.poison_next = False
                    answer += b"\x00garbage that is no HTTP answer\r\n\r\n"
                conn.sendall(answer)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def poisoning_gateway() -> Iterator[tuple[PoisoningRuntime, ThreadedServer]]:
    runtime = PoisoningRuntime()
    settings = GatewaySettings(
        runtime_url=AnyHttpUrl(runtime.url), internal_key=SecretStr(INTERNAL_KEY), strict=False
    )
    gateway = ThreadedServer(create_gateway_app(settings)).start()
    yield runtime, gateway
    gateway.stop()
    runtime.close()


def test_one_broken_answer_never_fails_another_clients_request(
    poisoning_gateway: tuple[PoisoningRuntime, ThreadedServer],
) -> None:
    runtime, gateway = poisoning_gateway
    failures: list[str] = []
    for round_ in range(10):
        with httpx.Client(base_url=gateway.url, timeout=deadline(10)) as hostile:
            runtime.poison_next = True
            assert hostile.get("/agents").status_code == 200
        # Another client, after the broken answer: a read, then a create, which is not retried.
        with httpx.Client(base_url=gateway.url, timeout=deadline(10)) as ordinary:
            for method, path in (("GET", "/agents"), ("POST", "/sessions")):
                answer = ordinary.request(method, path)
                if answer.status_code != 200:
                    failures.append(f"round {round_}: {method} {path} {answer.status_code}")
            runtime.poison_next = True
            assert ordinary.get("/agents").status_code == 200
            answer = ordinary.post("/sessions")
            if answer.status_code != 200:
                failures.append(f"round {round_}: POST /sessions after {answer.status_code}")
    assert failures == []
    # Never a create sent twice: ten rounds, two creates each.
    assert runtime.created == 20


# --- 3. Half-sent requests and running out of files -------------------------------------------


def _half_head(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_request_head_that_never_finishes_is_dropped(tmp_path: Path) -> None:
    settings = GatewaySettings(internal_key=SecretStr(INTERNAL_KEY), head_timeout=1.0)
    with ThreadedServer(create_gateway_app(settings)) as gateway:
        port = int(gateway.url.rsplit(":", 1)[1])
        started = time.monotonic()
        with _half_head(port) as sock:
            assert _closed_within(sock, deadline(4))
        assert time.monotonic() - started < deadline(3)


def _health_on(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(deadline(5))
    answer = sock.recv(65536)
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    return answer


def test_a_kept_alive_connection_outlives_the_head_deadline_but_not_a_slow_head() -> None:
    """A client keeps an idle connection for a while (httpx 5 s, Dart 15 s): the server must not
    close it at the head deadline, or a request sent just then is lost. A head begun on it still
    has the head deadline."""
    settings = GatewaySettings(internal_key=SecretStr(INTERNAL_KEY), head_timeout=1.0)
    with ThreadedServer(create_gateway_app(settings)) as gateway:
        port = int(gateway.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            assert _health_on(sock).startswith(b"HTTP/1.1 200")
            time.sleep(2.5)
            assert _health_on(sock).startswith(b"HTTP/1.1 200")
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            started = time.monotonic()
            assert _closed_within(sock, deadline(4))
            assert time.monotonic() - started < deadline(3)


def test_connections_are_bounded_and_idle_ones_make_room_for_a_real_client() -> None:
    settings = GatewaySettings(internal_key=SecretStr(INTERNAL_KEY), max_connections=8)
    with ThreadedServer(create_gateway_app(settings)) as gateway:
        port = int(gateway.url.rsplit(":", 1)[1])
        held = [_half_head(port) for _ in range(40)]
        try:
            # The oldest that never sent a whole head were closed to keep to the bound.
            closed = sum(_closed_within(sock, deadline(3)) for sock in held[:32])
            assert closed == 32
            assert httpx.get(f"{gateway.url}/health", timeout=deadline(5)).status_code == 200
        finally:
            for sock in held:
                sock.close()


def _lower_file_limit(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


class LimitedServe:
    """`sessionlab serve` with few files to open, as on a small container."""

    def __init__(self, tmp_path: Path, files: int, *args: str) -> None:
        self.process = subprocess.Popen(
            [
                SESSIONLAB,
                "serve",
                "--runtime-port",
                "0",
                "--gateway-port",
                "0",
                "--data-dir",
                str(tmp_path),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_environment(),
            preexec_fn=lambda: _lower_file_limit(files),
        )
        self.urls: dict[str, str] = {}
        self.log = bytearray()
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        stderr = self.process.stderr
        self._reader = threading.Thread(target=self._drain, args=(stderr,), daemon=True)
        self._reader.start()
        for raw in self.process.stdout:
            line = raw.decode()
            match = BANNER_URL.match(line)
            if match:
                self.urls[match.group(1)] = match.group(2)
            if line.startswith("Stop with"):
                return
        raise AssertionError(f"serve ended before its banner: {self.stop()!r}")

    def _drain(self, stream: IO[bytes]) -> None:
        while chunk := stream.read(4096):
            self.log += chunk

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def stop(self) -> bytes:
        self.process.terminate()
        try:
            self.process.wait(deadline(20))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(deadline(5))
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return bytes(self.log)


def test_300_half_sent_requests_with_256_files_leave_health_up_and_the_log_short(
    tmp_path: Path,
) -> None:
    served = LimitedServe(tmp_path, 256)
    try:
        port = int(served.urls["gateway"].rsplit(":", 1)[1])
        held: list[socket.socket] = []
        try:
            for _ in range(300):
                held.append(_half_head(port))
            for _ in range(3):
                answer = httpx.get(f"{served.urls['gateway']}/health", timeout=deadline(5))
                assert answer.status_code == 200
            time.sleep(2)
        finally:
            for sock in held:
                sock.close()
    finally:
        log = served.stop()
    assert len(log) < 64 * 1024, log[-2000:].decode("utf-8", "replace")
    assert b"Too many open files" not in log


# --- 4. Frames over the size limit, and memory after a burst ----------------------------------


async def _send_huge_frame(url: str, size: int) -> int | None:
    """Send one text frame of `size` bytes; the close code the gateway answered with."""
    try:
        async with connect(url, max_size=None, open_timeout=deadline(10)) as ws:
            content = "x" * size
            await ws.send(json.dumps({"type": "user_message", "role": "user", "content": content}))
            await asyncio.wait_for(ws.recv(), deadline(10))
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else 1006
    return None


async def test_20_frames_of_15_mb_get_1009_and_memory_returns_to_baseline(
    tmp_path: Path,
) -> None:
    served = LimitedServe(tmp_path, 4096)
    try:
        gateway = served.urls["gateway"]
        async with httpx.AsyncClient(base_url=gateway, timeout=deadline(10)) as client:
            session_id = (await client.post("/sessions")).json()["session_id"]
            baseline = served.rss_bytes()
            codes = await asyncio.gather(
                *(_send_huge_frame(_ws(gateway, session_id), 15 * 1000 * 1000) for _ in range(20))
            )
            started = time.monotonic()
            assert (await client.get("/health")).status_code == 200
            assert time.monotonic() - started < deadline(1)
        await asyncio.sleep(0.5)
        after = served.rss_bytes()
    finally:
        served.stop()
    assert codes == [1009] * 20
    assert after - baseline < 40 * MIB, (baseline, after)


def test_the_size_limit_is_one_option_for_bodies_and_frames(tmp_path: Path) -> None:
    served = LimitedServe(tmp_path, 4096, "--max-bytes", "65536")
    try:
        gateway = served.urls["gateway"]
        body = json.dumps({"padding": "x" * 70_000})
        answer = httpx.post(f"{gateway}/sessions", content=body, timeout=deadline(10))
        assert answer.status_code == 413
        session_id = httpx.post(f"{gateway}/sessions").json()["session_id"]
        assert asyncio.run(_send_huge_frame(_ws(gateway, session_id), 70_000)) == 1009
        assert asyncio.run(_send_huge_frame(_ws(gateway, session_id), 60_000)) is None
    finally:
        served.stop()


# --- 5. Which web pages may open a socket -----------------------------------------------------


@pytest.fixture
def origin_stack(tmp_path: Path) -> Iterator[ReferenceStack]:
    stack = start_stack(tmp_path)
    stack.gateway.stop()
    settings = GatewaySettings(
        runtime_url=AnyHttpUrl(stack.runtime_url),
        internal_key=SecretStr(INTERNAL_KEY),
        allowed_origins=["https://ide.example"],
    )
    stack.gateway = ThreadedServer(create_gateway_app(settings)).start()
    yield stack
    stack.gateway.stop()
    stack.runtime.stop()


async def test_a_page_of_another_origin_cannot_open_a_socket(origin_stack: ReferenceStack) -> None:
    async with httpx.AsyncClient(base_url=origin_stack.gateway_url) as client:
        session_id = (await client.post("/sessions")).json()["session_id"]
    url = _ws(origin_stack, session_id)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    # The desktop IDE sends no Origin; an allowed page sends its own.
    for origin in (None, "https://ide.example"):
        async with connect(url, origin=origin) as ws:  # type: ignore[arg-type]
            await ws.send(json.dumps({"type": "user_message", "role": "user", "content": "hi"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), deadline(5)))["type"] != "error"


def test_rest_follows_the_same_origins(origin_stack: ReferenceStack) -> None:
    gateway = origin_stack.gateway_url
    refused = httpx.get(f"{gateway}/sessions", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    allowed = httpx.get(f"{gateway}/sessions", headers={"Origin": "https://ide.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://ide.example"
    preflight = httpx.options(
        f"{gateway}/sessions",
        headers={"Origin": "https://ide.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert httpx.get(f"{gateway}/sessions").status_code == 200

"""`sessionlab serve` while it runs: the key file it leaves for a tester, and what it logs when
clients misbehave. Real `sessionlab` processes on loopback ports, real clients."""

import asyncio
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode

from conformance.targets.ports import free_ports
from tests.fixtures.stack import deadline

# The installed command, as a tester runs it (not `python -m`).
SESSIONLAB = str(Path(sys.executable).parent / "sessionlab")
BANNER_URL = re.compile(r"^\s+(runtime|gateway)\s+(http://\S+)")
KEY_FILE_LINE = re.compile(r"internal key \(random, this run only\) in (\S+)$")
# A traceback's first line, whoever writes it.
TRACEBACK = "Traceback (most recent call last)"


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any SESSIONLAB_ option a developer may have set."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SESSIONLAB_") or name == "SESSIONLAB_TIMEOUT_SCALE"
    }
    return {**kept, **(extra or {})}


def run_serve(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`sessionlab serve` expected to refuse its configuration, so to end on its own."""
    return subprocess.run(
        [SESSIONLAB, "serve", *args],
        capture_output=True,
        text=True,
        timeout=deadline(60),
        check=False,
        env=clean_environment(env),
    )


def free_port() -> int:
    (port,) = free_ports(1)
    return port


class Serving:
    """A `sessionlab serve` process, running once its banner is out."""

    def __init__(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [SESSIONLAB, "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_environment(env),
        )
        self.banner: list[str] = []
        self.urls: dict[str, str] = {}
        self._err: list[str] = []
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        # Read stderr all along: a server that logs more than a pipe holds would block on it.
        self._err_reader = threading.Thread(
            target=self._err.extend, args=(self.process.stderr,), daemon=True
        )
        self._err_reader.start()
        for line in self.process.stdout:
            self.banner.append(line.rstrip("\n"))
            match = BANNER_URL.match(line)
            if match:
                self.urls[match.group(1)] = match.group(2)
            if line.startswith("Stop with"):
                return
        code, log = self.stop()
        raise AssertionError(f"serve exited ({code}) before its banner:\n{log}")

    @property
    def banner_text(self) -> str:
        return "\n".join(self.banner)

    def log_so_far(self) -> str:
        return "".join(self._err)

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            self.process.wait(timeout=deadline(20))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._err_reader.join(deadline(5))
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return self.process.returncode, "".join(self._err)


@pytest.fixture
def serving() -> Iterator[list[Serving]]:
    started: list[Serving] = []
    yield started
    for item in started:
        item.stop(signal.SIGKILL)


def start(started: list[Serving], *args: str, env: Mapping[str, str] | None = None) -> Serving:
    item = Serving(*args, env=env)
    started.append(item)
    return item


# --- the internal key picked for `serve both` ----------------------------------------------------


def test_the_picked_key_is_in_a_private_file_named_by_the_banner(
    tmp_path: Path, serving: list[Serving]
) -> None:
    data_dir = tmp_path / "data"
    served = start(
        serving, "--runtime-port", "0", "--gateway-port", "0", "--data-dir", str(data_dir)
    )
    lines = [m for line in served.banner if (m := KEY_FILE_LINE.search(line))]
    assert len(lines) == 1, served.banner_text
    key_file = Path(lines[0].group(1))
    assert key_file == (data_dir / "internal-key").resolve()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    assert key
    # The banner names the file, never the key; nor does the log.
    assert key not in served.banner_text
    runtime = served.urls["runtime"]
    assert httpx.get(f"{runtime}/sessions").status_code == 401
    assert httpx.get(f"{runtime}/sessions", headers={"X-Internal-Auth": key}).status_code == 200
    code, log = served.stop()
    assert code == 0
    assert key not in log
    # The key dies with the run, and so does its file.
    assert not key_file.exists()


def test_a_key_that_was_given_gets_no_file(tmp_path: Path, serving: list[Serving]) -> None:
    served = start(
        serving,
        *("--runtime-port", "0", "--gateway-port", "0", "--data-dir", str(tmp_path)),
        env={"SESSIONLAB_INTERNAL_KEY": "given-key"},
    )
    assert "internal key" not in served.banner_text
    assert not (tmp_path / "internal-key").exists()
    headers = {"X-Internal-Auth": "given-key"}
    assert httpx.get(f"{served.urls['runtime']}/sessions", headers=headers).status_code == 200


# --- logs -----------------------------------------------------------------------------------------


def user_frame(content: str) -> str:
    return json.dumps({"type": "user_message", "content": content, "role": "user"})


async def leave_mid_turn(gateway: str, session_id: str) -> None:
    """Start a long turn, read its first frame, and drop the connection without a close."""
    ws_url = gateway.replace("http", "ws", 1)
    client = await connect(f"{ws_url}/ws/{session_id}", open_timeout=deadline(5))
    await client.send(user_frame("word " * 400))
    async with asyncio.timeout(deadline(5)):
        first = json.loads(await client.recv())
    assert first["is_final"] is False
    assert client.transport is not None
    client.transport.abort()


async def close_politely_mid_turn(gateway: str, session_id: str) -> None:
    ws_url = gateway.replace("http", "ws", 1)
    async with connect(f"{ws_url}/ws/{session_id}", open_timeout=deadline(5)) as client:
        await client.send(user_frame("word " * 400))
        async with asyncio.timeout(deadline(5)):
            await client.recv()


async def send_invalid_utf8(gateway: str, session_id: str) -> int | None:
    ws_url = gateway.replace("http", "ws", 1)
    async with connect(f"{ws_url}/ws/{session_id}", open_timeout=deadline(5)) as client:
        client.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe not UTF-8"))
        client.send_data()
        async with asyncio.timeout(deadline(5)):
            await client.wait_closed()
        return client.close_code


def leave_before_the_body(gateway: str) -> None:
    """An HTTP request whose body never comes: the client hangs up after its first bytes."""
    host, port = gateway.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=deadline(5)) as raw:
        raw.sendall(
            b"POST /sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        time.sleep(0.2)


def wait_for_line(served: Serving, text: str, seconds: float = 5) -> None:
    end = time.monotonic() + deadline(seconds)
    while text not in served.log_so_far():
        if time.monotonic() > end:
            raise AssertionError(f"no log line with {text!r}:\n{served.log_so_far()}")
        time.sleep(0.05)


def test_clients_that_misbehave_are_no_error_and_each_line_names_its_service(
    tmp_path: Path, serving: list[Serving]
) -> None:
    served = start(
        serving, "--runtime-port", "0", "--gateway-port", "0", "--data-dir", str(tmp_path)
    )
    gateway = served.urls["gateway"]
    session_id = httpx.post(f"{gateway}/sessions").json()["session_id"]
    asyncio.run(leave_mid_turn(gateway, session_id))
    asyncio.run(close_politely_mid_turn(gateway, session_id))
    assert asyncio.run(send_invalid_utf8(gateway, session_id)) == 1007
    leave_before_the_body(gateway)
    wait_for_line(served, "client went away before its request was read: POST /sessions")
    # The gateway still serves the session after all of it.
    assert httpx.get(f"{gateway}/sessions/{session_id}/history").status_code == 200
    code, log = served.stop()
    assert code == 0
    lines = log.splitlines()
    assert TRACEBACK not in log
    assert [line for line in lines if re.search(r" (ERROR|WARNING|CRITICAL) ", line)] == []
    assert "WebSocket client sent a text frame that is not UTF-8" in log
    # The lines the conformance checks read keep their words, now under their service's name.
    assert any(
        "INFO sessionlab.runtime: Created new session: " + session_id in line for line in lines
    )
    assert any(
        f"INFO sessionlab.gateway: WebSocket connected: {session_id}" in line for line in lines
    )
    # The server library's lines are told apart by service too.
    assert any("sessionlab.runtime.server: Application startup complete" in x for x in lines)
    assert any("sessionlab.gateway.server: Application startup complete" in x for x in lines)
    assert any("sessionlab.runtime.access:" in line for line in lines)
    assert any("sessionlab.gateway.access:" in line for line in lines)
    assert not any("uvicorn" in line for line in lines)

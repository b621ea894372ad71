"""Hostile inputs against `sessionlab serve` (a real process on loopback): malformed and deep
bodies, deep, binary, non-UTF-8 and huge frames, half-sent requests. Prints the inputs sent, the
5xx answers, the handler deaths (sockets closed 1006, with no close frame) and the gateway
process's RSS before, at the peak of and after the burst of big frames.

    .venv/bin/python benchmarks/hostile_inputs.py [ROUNDS]      (default 10)
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

BANNER_URL = re.compile(r"^\s+(runtime|gateway)\s+(http://\S+)")
SESSIONLAB = str(Path(sys.executable).parent / "sessionlab")
DEEP = "[" * 100_000 + "]" * 100_000
BIG_FRAMES = 20
BIG_FRAME_BYTES = 15 * 1000 * 1000
HALF_HEADS = 300


@dataclass
class Tally:
    sent: int = 0
    server_errors: int = 0
    deaths: int = 0


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def bodies() -> list[bytes]:
    nested = '{"a": ' * 5000 + "1" + "}" * 5000
    return [
        DEEP.encode(),
        nested.encode(),
        b"\xff\xfe\x00not json",
        b'{"unterminated": "',
        json.dumps([None] * 10_000).encode(),
        b"null",
        b"[" * 5_000_000,
    ]


def frames() -> list[str | bytes]:
    message = '{"type": "user_message", "role": "user", "content": %s}'
    return [
        message % DEEP,
        message % ('{"a": ' * 5000 + "1" + "}" * 5000),
        b"\x00\xff binary",
        '{"type": "user_message", "role": "user", "content": "half \\ud800 a pair"}',
        "not json at all",
        "[" * 1_000_000,
    ]


async def post_bodies(gateway: str, runtime: str, key: str, tally: Tally) -> None:
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        for body in bodies():
            for url, headers in ((gateway, {}), (runtime, {"X-Internal-Auth": key})):
                tally.sent += 1
                try:
                    answer = await client.post(f"{url}/sessions", content=body, headers=headers)
                except httpx.HTTPError:
                    tally.server_errors += 1
                    continue
                tally.server_errors += answer.status_code >= 500


async def send_frames(ws_url: str, tally: Tally) -> None:
    for frame in frames():
        tally.sent += 1
        try:
            async with connect(ws_url, max_size=None) as ws:
                await ws.send(frame)
                await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as closed:
            tally.deaths += closed.rcvd is None
        except TimeoutError:
            pass


async def not_utf8(ws_url: str, tally: Tally) -> None:
    tally.sent += 1
    try:
        async with connect(ws_url) as ws:
            await ws.send(b'{"\xff\xfe":', text=True)
            await asyncio.wait_for(ws.recv(), 10)
    except ConnectionClosed as closed:
        tally.deaths += closed.rcvd is None
    except TimeoutError:
        pass


async def big_frame(ws_url: str, tally: Tally) -> None:
    tally.sent += 1
    content = "x" * BIG_FRAME_BYTES
    try:
        async with connect(ws_url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "user_message", "role": "user", "content": content}))
            await asyncio.wait_for(ws.recv(), 30)
    except ConnectionClosed as closed:
        tally.deaths += closed.rcvd is None
    except TimeoutError:
        pass


async def half_heads(gateway: str, tally: Tally) -> float:
    """Hold half-sent requests open; the seconds /health took meanwhile."""
    host, port = gateway.removeprefix("http://").rsplit(":", 1)
    writers = []
    for _ in range(HALF_HEADS):
        tally.sent += 1
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            continue
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        writers.append(writer)
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            tally.server_errors += (await client.get(f"{gateway}/health")).status_code >= 500
    except httpx.HTTPError:
        tally.server_errors += 1
    took = time.monotonic() - started
    for writer in writers:
        writer.close()
    return took


def start_serve(scratch: str, key: str) -> tuple["subprocess.Popen[str]", dict[str, str]]:
    process = subprocess.Popen(
        [
            SESSIONLAB,
            "serve",
            "--runtime-port",
            "0",
            "--gateway-port",
            "0",
            "--data-dir",
            scratch,
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "SESSIONLAB_INTERNAL_KEY": key},
    )
    urls: dict[str, str] = {}
    assert process.stdout is not None
    for line in process.stdout:
        if match := BANNER_URL.match(line):
            urls[match.group(1)] = match.group(2)
        if line.startswith("Stop with"):
            break
    return process, urls


async def burst(pid: int, gateway: str, runtime: str, key: str, rounds: int) -> None:
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        session_id = (await client.post(f"{gateway}/sessions")).json()["session_id"]
    ws_url = gateway.replace("http://", "ws://", 1) + f"/ws/{session_id}"
    tally = Tally()
    started = time.monotonic()
    for _ in range(rounds):
        await post_bodies(gateway, runtime, key, tally)
        await send_frames(ws_url, tally)
        await not_utf8(ws_url, tally)
    health_seconds = await half_heads(gateway, tally)
    before = rss_mib(pid)
    peak = before
    frames_sent = asyncio.gather(*(big_frame(ws_url, tally) for _ in range(BIG_FRAMES)))
    while not frames_sent.done():
        peak = max(peak, rss_mib(pid))
        await asyncio.sleep(0.02)
    await frames_sent
    await asyncio.sleep(1)
    after = rss_mib(pid)
    elapsed = time.monotonic() - started
    print(f"inputs sent          {tally.sent}")
    print(f"5xx answers          {tally.server_errors}")
    print(f"handler deaths       {tally.deaths} (sockets closed 1006)")
    print(f"/health with {HALF_HEADS} half-sent requests held: {health_seconds:.2f} s")
    print(
        f"gateway+runtime RSS  before {before:.0f} MiB, peak {peak:.0f} MiB, after {after:.0f} MiB"
    )
    print(f"wall time            {elapsed:.1f} s")


def main(rounds: int) -> None:
    key = "bench-internal-key"
    with tempfile.TemporaryDirectory(prefix="sessionlab-hostile-") as scratch:
        process, urls = start_serve(scratch, key)
        try:
            asyncio.run(burst(process.pid, urls["gateway"], urls["runtime"], key, rounds))
        finally:
            process.terminate()
            process.wait(20)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)

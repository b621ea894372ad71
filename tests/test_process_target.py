"""Process targets for real: the reference and a made-up third-party stack run as subprocesses,
stopped, killed, paused and restarted by signal, their logs read, their faults injected on the
gateway-to-runtime hop, their set-up mistakes reported fast; nothing of theirs outlives a test."""

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets

from conformance.targets import Capability, TargetError
from conformance.targets.launched import LaunchedTarget
from conformance.targets.loader import load_target
from conformance.targets.ports import free_ports
from conformance.targets.process_target import ProcessTarget
from conformance.targets.url_target import UrlTarget
from simulators.faultproxy import Latency
from tests.fixtures.stack import deadline
from tests.fixtures.thirdparty.harness import (
    ACME_CLIENT_KEY,
    EXAMPLES,
    HERE,
    acme_environment,
    assert_nothing_left,
    client,
    create_session,
    history_status,
    sessionlab_on_path,
)


@pytest.fixture
async def reference_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[ProcessTarget]:
    sessionlab_on_path(monkeypatch)
    target = load_target(EXAMPLES / "reference-process.yaml", run_dir=tmp_path / "run")
    assert isinstance(target, ProcessTarget)
    await target.start()
    try:
        yield target
    finally:
        await target.close()
    assert_nothing_left(target)


async def test_the_runtime_killed_with_sigkill_restarts_behind_a_live_gateway_with_its_data(
    reference_process: ProcessTarget,
) -> None:
    target = reference_process
    first_pid = target.pid("runtime")
    gateway_pid = target.pid("gateway")
    assert first_pid is not None
    assert gateway_pid is not None
    async with client(target.endpoints) as gateway:
        session_id = await create_session(gateway)
        await target.kill_service("runtime")
        with pytest.raises(ProcessLookupError):
            os.kill(first_pid, 0)
        # The gateway lives on and says the runtime is gone, quickly.
        started = time.monotonic()
        assert await history_status(gateway, session_id) in (502, 503)
        assert time.monotonic() - started < deadline(10)
        await target.start_service("runtime")
        assert target.pid("runtime") not in (None, first_pid)
        assert target.pid("gateway") == gateway_pid
        assert await history_status(gateway, session_id) == 200
    # The log says the runtime was started twice, and the line of the create came through.
    runtime_log = (target.run_dir or Path()) / "logs" / "runtime.log"
    assert runtime_log.read_text().count("# sessionlab: runtime started") == 2
    async with asyncio.timeout(deadline(5)):
        await target.logs("runtime").wait_for(f"Created new session: {session_id}")


async def test_a_paused_runtime_is_silent_until_resumed_and_a_stopped_one_refuses(
    reference_process: ProcessTarget,
) -> None:
    target = reference_process
    endpoints = target.endpoints
    async with httpx.AsyncClient(
        base_url=endpoints.runtime_url or "", headers=endpoints.runtime_headers(), trust_env=False
    ) as runtime:
        await target.pause_service("runtime")
        with pytest.raises(httpx.ReadTimeout):
            await runtime.get("/sessions", timeout=1.0)
        await target.resume_service("runtime")
        assert (await runtime.get("/sessions", timeout=deadline(10))).status_code == 200
        await target.stop_service("runtime")
        with pytest.raises(httpx.ConnectError):
            await runtime.get("/sessions", timeout=deadline(5))
        await target.start_service("runtime")
        assert (await runtime.get("/sessions", timeout=deadline(10))).status_code == 200


async def test_faults_on_the_runtime_hop_reach_the_gateway(
    reference_process: ProcessTarget,
) -> None:
    target = reference_process
    hop = target.runtime_hop
    assert hop is not None
    async with client(target.endpoints) as gateway:
        assert (await gateway.get("/sessions")).status_code == 200
        # Down refuses new connections only; the cut drops the gateway's pooled ones.
        hop.down()
        await hop.cut()
        response = await gateway.get("/sessions")
        assert response.status_code in (502, 503)
        assert "error" in response.json()
        hop.up()
        assert (await gateway.get("/sessions")).status_code == 200
        # The gateway keeps pooled connections through the hop: the delay applies to them too.
        hop.add_fault(Latency(ms=400))
        started = time.monotonic()
        assert (await gateway.get("/sessions")).status_code == 200
        assert time.monotonic() - started >= 0.4
        hop.clear_faults()
        # A cut drops the gateway's live connections to the runtime; its next request reconnects.
        await hop.cut()
        assert (await gateway.get("/sessions")).status_code == 200


async def test_a_gateway_websocket_is_logged_and_the_gateway_log_is_captured(
    reference_process: ProcessTarget,
) -> None:
    target = reference_process
    endpoints = target.endpoints
    assert target.supports("gateway", Capability.LOGS)
    async with client(endpoints) as gateway:
        session_id = await create_session(gateway)
    async with websockets.connect(f"{endpoints.ws_url}/ws/{session_id}"):
        async with asyncio.timeout(deadline(5)):
            line = await target.logs("gateway").wait_for(f"WebSocket connected.*{session_id}")
    assert session_id in line


# --- a third-party stack, driven without changing its code ---------------------------------------


async def test_a_thirdparty_stack_runs_as_a_process_target_under_its_base_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acme_environment(monkeypatch)
    target = load_target(HERE / "acme.yaml")
    assert isinstance(target, ProcessTarget)
    await target.start()
    try:
        endpoints = target.endpoints
        assert endpoints.gateway_url.endswith("/api/v1")
        assert endpoints.client_key == ACME_CLIENT_KEY
        async with client(endpoints) as gateway:
            session_id = await create_session(gateway)
            assert await history_status(gateway, session_id) == 200
            await target.restart_service("runtime")
            assert await history_status(gateway, session_id) == 200  # its JSON file kept it
        async with asyncio.timeout(deadline(5)):
            await target.logs("runtime").wait_for("Created new session: " + session_id)
        pids = [pid for pid in (target.pid("runtime"), target.pid("gateway")) if pid]
    finally:
        await target.close()
    assert_nothing_left(target, pids)


@pytest.mark.parametrize(
    ("file", "says", "within"),
    [
        (
            "acme-wrong-key.yaml",
            "the runtime refuses the keys of the target file: GET http://127.0.0.1:",
            20,
        ),
        (
            "acme-missing-command.yaml",
            "services.runtime.command: 'acme-runtime-not-installed' was not found on PATH",
            5,
        ),
        ("acme-never-listens.yaml", "the runtime did not answer at http://127.0.0.1:", 10),
        ("acme-exits.yaml", "the runtime exited with status 2 before", 20),
    ],
)
async def test_a_broken_thirdparty_target_fails_fast_naming_the_problem(
    monkeypatch: pytest.MonkeyPatch, file: str, says: str, within: float
) -> None:
    acme_environment(monkeypatch)
    target = load_target(HERE / file)
    assert isinstance(target, LaunchedTarget)
    started = time.monotonic()
    with pytest.raises(TargetError) as caught:
        await target.start()
    assert time.monotonic() - started < deadline(within)
    message = str(caught.value)
    assert says in message, message
    if file == "acme-wrong-key.yaml":
        assert "keys.internal is wrong or missing" in message
    if file == "acme-exits.yaml":
        # Its own words are quoted, so the tester sees why without opening a log.
        assert "unrecognized arguments: --no-such-flag" in message
    if file == "acme-never-listens.yaml":
        assert "within 2 s (connection refused)" in message
        assert "acme runtime starting" in message
    # The key never shows in an error, even where the command line carried it.
    assert "acme-internal-key-for-tests" not in message
    assert_nothing_left(target)


# --- a running target's logs, read from the file it writes --------------------------------------


async def test_a_url_target_reads_the_log_file_of_a_running_stack(tmp_path: Path) -> None:
    gateway_port, runtime_port = free_ports(2)
    log_path = tmp_path / "serve.log"
    command = [
        sys.executable,
        "-m",
        "sessionlab.cli",
        "serve",
        "--gateway-port",
        str(gateway_port),
        "--runtime-port",
        str(runtime_port),
        "--data-dir",
        str(tmp_path / "data"),
        "--internal-key",
        "url-target-internal-key",
    ]
    with log_path.open("w") as log_file:
        served = await asyncio.create_subprocess_exec(
            *command, stdout=log_file, stderr=asyncio.subprocess.STDOUT
        )
    target = UrlTarget(
        f"http://127.0.0.1:{gateway_port}",
        f"http://127.0.0.1:{runtime_port}",
        internal_key="url-target-internal-key",
        log_files={"runtime": log_path},
    )
    try:
        await target.start()
        assert target.supports("runtime", Capability.LOGS)
        assert not target.supports("runtime", Capability.KILL)
        with pytest.raises(TargetError, match="cannot kill its runtime"):
            await target.kill_service("runtime")
        async with client(target.endpoints) as gateway:
            session_id = await create_session(gateway)
        async with asyncio.timeout(deadline(5)):
            await target.logs("runtime").wait_for(f"Created new session: {session_id}")
    finally:
        await target.close()
        served.send_signal(signal.SIGTERM)
        async with asyncio.timeout(deadline(15)):
            assert await served.wait() == 0


async def test_a_url_target_with_nothing_listening_says_so() -> None:
    (port,) = free_ports(1)
    target = UrlTarget(f"http://127.0.0.1:{port}", connect_wait=0.5)
    with pytest.raises(TargetError, match=rf"the gateway at http://127.0.0.1:{port} does not"):
        await target.start()


def test_the_example_target_runs_without_an_activated_virtualenv(tmp_path: Path) -> None:
    """README's `sessionlab verify --target examples/targets/reference-process.yaml` after `make`:
    the file's `sessionlab` is the installation that runs verify, activated or not."""
    import subprocess

    bare = {**os.environ, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "sessionlab"),
            "verify",
            "--target",
            str(EXAMPLES / "reference-process.yaml"),
            "--only",
            "G-HEALTH-1",
        ],
        env=bare,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=deadline(120),
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "CONFORMS" in result.stdout

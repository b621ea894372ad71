"""`sessionlab serve --workers`: several processes per service on one port, the runtimes sharing
one PostgreSQL database, any turn of a session on any of them; the scale-out target conforms and
passes the shipped test plans. Real `sessionlab` processes, the real PostgreSQL."""

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conformance.targets.description import ProcessDescription, TargetFileError, load_description
from contract import sse
from reference.workers import WORKER_HEADER
from tests.fixtures.postgres import create_database, drop_database
from tests.fixtures.stack import deadline
from tests.fixtures.thirdparty.harness import EXAMPLES
from tests.test_serve_running import SESSIONLAB, Serving, clean_environment, run_serve

KEY = "scale-out-internal-key"
HEADERS = {"X-Internal-Auth": KEY}
SCALE_OUT_TARGET = EXAMPLES / "reference-postgres-scale-out.yaml"


def children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: list[int]) -> list[int]:
    """The pids still alive after the deadline."""
    end = time.monotonic() + deadline(20)
    while time.monotonic() < end and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


@pytest.fixture
def runtimes(postgres_url: str) -> Iterator[Serving]:
    """Two runtime processes on one PostgreSQL database, on one port."""
    served = Serving(
        "runtime",
        *("--workers", "2", "--port", "0", "--internal-key", KEY),
        *("--database-url", postgres_url),
    )
    workers = children(served.process.pid)
    try:
        yield served
    finally:
        code, log = served.stop()
        assert code == 0, log
        assert wait_gone(workers) == []


@contextlib.contextmanager
def client_on(url: str, worker: str) -> Iterator[httpx.Client]:
    """A client whose one connection is served by `worker`: the kernel picks a worker per
    connection, so connections are opened until one lands there."""
    for _ in range(200):
        client = httpx.Client(
            base_url=url,
            headers=HEADERS,
            timeout=deadline(10),
            limits=httpx.Limits(max_connections=1),
        )
        answered = client.get("/health")
        if answered.headers.get(WORKER_HEADER.decode()) == worker:
            try:
                yield client
            finally:
                client.close()
            return
        client.close()
    raise AssertionError(f"no connection landed on worker {worker} in 200 tries")


def send(
    client: httpx.Client, session_id: str, frame: dict[str, object]
) -> list[dict[str, object]]:
    """One turn; its frames, an error event as {"error": ...}."""
    response = client.post(
        "/agent/message/stream", json={"session_id": session_id, "message": frame}
    )
    assert response.status_code == 200, response.text
    frames: list[dict[str, object]] = []
    for event in sse.decode_events(response.text):
        if event.event == sse.MESSAGE:
            frames.append(event.json())
        elif event.event == sse.ERROR:
            frames.append({"error": event.json()["error"]})
    return frames


# --- what is refused ------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["both", "runtime"])
def test_more_than_one_runtime_process_on_sqlite_is_refused_in_one_sentence(
    service: str, tmp_path: Path
) -> None:
    args = ["--internal-key", KEY] if service == "runtime" else []
    result = run_serve(service, "--workers", "2", "--data-dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "sessionlab serve: --workers 2 runs that many runtime processes, which need a store "
        "they can share: give --database-url a PostgreSQL URL, or serve the gateway alone with "
        "more workers\n"
    )


@pytest.mark.parametrize("workers", ["0", "65"])
def test_a_number_of_workers_out_of_range_is_refused(workers: str) -> None:
    result = run_serve("gateway", "--workers", workers)
    assert result.returncode == 2
    assert result.stderr == (
        f"sessionlab serve: --workers {workers} is not a number of processes (1 to 64)\n"
    )


# --- several runtimes, one store ------------------------------------------------------------


def test_the_runtime_workers_share_one_port_and_the_banner_counts_them(
    runtimes: Serving,
) -> None:
    assert "(2 processes on this port)" in runtimes.banner_text
    assert len(children(runtimes.process.pid)) >= 2
    url = runtimes.urls["runtime"]
    seen = set()
    for _ in range(200):
        if len(seen) == 2:
            break
        with httpx.Client(base_url=url, headers=HEADERS, timeout=deadline(10)) as client:
            seen.add(client.get("/health").headers[WORKER_HEADER.decode()])
    assert seen == {"1", "2"}


def test_each_step_of_an_approval_may_land_on_another_runtime(runtimes: Serving) -> None:
    url = runtimes.urls["runtime"]
    with client_on(url, "1") as one, client_on(url, "2") as two:
        session_id = one.post("/sessions").json()["session_id"]
        (call,) = send(
            two,
            session_id,
            {
                "type": "user_message",
                "role": "user",
                "content": '/approve write_file {"path": "a"}',
            },
        )
        call_id = call["call_id"]
        decision = {"type": "hitl_decision", "call_id": call_id, "decision": "approve"}
        assert send(one, session_id, decision) == []
        result = {"type": "tool_result", "call_id": call_id, "result": "written"}
        assert send(two, session_id, result)[-1] == {
            "type": "assistant_message",
            "content": "written",
            "is_final": True,
        }
        switch = {"type": "switch_agent", "agent_type": "coder", "content": ""}
        assert send(one, session_id, switch)[0]["type"] == "agent_switched"
        history = two.get(f"/sessions/{session_id}/history").json()
        assert one.get(f"/agents/{session_id}/current").json()["current_agent"] == "coder"
    assert [m["role"] for m in history["messages"]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "assistant",
    ]
    assert history["current_agent"] == "coder"


async def test_one_call_answered_on_two_runtimes_at_once_is_stored_once(
    runtimes: Serving,
) -> None:
    """The turn is decided on what was read before the session's lock; the store writes it
    only if that still holds, else it is decided again: the second result finds the call done."""
    url = runtimes.urls["runtime"]
    with client_on(url, "1") as one, client_on(url, "2") as two:
        session_id = one.post("/sessions").json()["session_id"]
        calls = []
        for index in range(8):
            frame = {"type": "user_message", "role": "user", "content": f"/tool t{index} {{}}"}
            calls.append(send(one, session_id, frame)[0]["call_id"])

        async def result(client: httpx.Client, call_id: object) -> list[dict[str, object]]:
            frame = {"type": "tool_result", "call_id": call_id, "result": "done"}
            return await asyncio.to_thread(send, client, session_id, frame)

        async with asyncio.timeout(deadline(60)):
            answers = await asyncio.gather(
                *(result(client, call_id) for call_id in calls for client in (one, two))
            )
        history = one.get(f"/sessions/{session_id}/history").json()
    for first, second in zip(answers[0::2], answers[1::2], strict=True):
        errors = [answer for answer in (first, second) if "error" in answer[-1]]
        assert len(errors) == 1, (first, second)
    tool_messages = [m["tool_call_id"] for m in history["messages"] if m["role"] == "tool"]
    assert sorted(tool_messages) == sorted(calls)


async def test_the_gateways_spread_the_requests_over_the_runtimes(postgres_url: str) -> None:
    served = Serving(
        *("--workers", "2", "--runtime-port", "0", "--gateway-port", "0"),
        *("--database-url", postgres_url, "--internal-key", KEY),
    )
    try:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(
            base_url=served.urls["gateway"], limits=limits, timeout=deadline(30)
        ) as client:

            async def create() -> str:
                response = await client.post("/sessions")
                assert response.status_code == 200, response.text
                return str(response.json()["session_id"])

            async with asyncio.timeout(deadline(60)):
                created = await asyncio.gather(*(create() for _ in range(64)))
        # Each line names the worker that wrote it: sessionlab.runtime[2]: Created new session...
        end = time.monotonic() + deadline(10)
        while time.monotonic() < end:
            log = served.log_so_far()
            if all(session_id in log for session_id in created):
                break
            await asyncio.sleep(0.05)
    finally:
        code, log = served.stop()
    assert code == 0, log
    by_worker = {
        worker: sum(
            f"sessionlab.runtime[{worker}]: Created new session" in line
            for line in log.splitlines()
        )
        for worker in ("1", "2")
    }
    assert sum(by_worker.values()) == 64
    assert by_worker["1"] > 0
    assert by_worker["2"] > 0


def test_a_stop_ends_every_worker_and_a_killed_parent_takes_them_along(
    postgres_url: str,
) -> None:
    args = ("--workers", "2", "--runtime-port", "0", "--gateway-port", "0")
    stopped = Serving(*args, "--database-url", postgres_url, "--internal-key", KEY)
    workers = children(stopped.process.pid)
    code, log = stopped.stop(signal.SIGTERM)
    assert code == 0, log
    assert wait_gone(workers) == []
    killed = Serving(*args, "--database-url", postgres_url, "--internal-key", KEY)
    workers = children(killed.process.pid)
    killed.stop(signal.SIGKILL)
    # Each worker is told by the kernel that its parent died, and stops.
    assert wait_gone(workers) == []


def test_a_worker_that_dies_stops_the_others_and_serve_exits_1() -> None:
    served = Serving("gateway", "--workers", "2", "--port", "0")
    workers = children(served.process.pid)
    # Workers are spawned interpreters; the other child is multiprocessing's resource tracker.
    worker = next(
        pid for pid in workers if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    os.kill(worker, signal.SIGKILL)
    code = served.process.wait(deadline(30))
    _, log = served.stop()
    assert code == 1, log
    assert "exited (-9); stopping the others" in log
    assert wait_gone(workers) == []


# --- the K x M topology, as a target ---------------------------------------------------------


def test_the_scale_out_file_is_a_process_target_needing_a_database_url() -> None:
    url = "postgresql+asyncpg://app@127.0.0.1/sessions"
    description = load_description(SCALE_OUT_TARGET, {"SESSIONLAB_DATABASE_URL": url})
    assert isinstance(description, ProcessDescription)
    assert description.services.runtime.command[:5] == [
        "sessionlab",
        "serve",
        "runtime",
        "--workers",
        "2",
    ]
    assert url in description.services.runtime.command
    assert description.services.gateway.command[3:5] == ["--workers", "2"]
    with pytest.raises(TargetFileError, match="SESSIONLAB_DATABASE_URL is not set"):
        load_description(SCALE_OUT_TARGET, {})


@pytest.fixture
def scale_out_environment(tmp_path: Path) -> Iterator[dict[str, str]]:
    database = create_database()
    path = f"{Path(SESSIONLAB).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    try:
        yield clean_environment({"SESSIONLAB_DATABASE_URL": database, "PATH": path})
    finally:
        drop_database(database)


def test_two_gateways_on_two_runtimes_on_one_postgresql_conform_and_pass_the_plans(
    scale_out_environment: dict[str, str], tmp_path: Path
) -> None:
    def sessionlab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SESSIONLAB, *args, "--target", str(SCALE_OUT_TARGET)],
            capture_output=True,
            text=True,
            timeout=deadline(900),
            check=False,
            env=scale_out_environment,
            cwd=tmp_path,
        )

    verified = sessionlab("verify")
    assert verified.returncode == 0, verified.stdout[-4000:] + verified.stderr[-2000:]
    assert verified.stdout.rstrip().endswith("CONFORMS")
    planned = sessionlab("run")
    assert planned.returncode == 0, planned.stdout[-4000:] + planned.stderr[-2000:]

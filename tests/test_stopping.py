"""Stopping a run: the real `sessionlab` executable, the reference launched as two processes, and
real signals. SIGTERM and SIGINT stop and remove everything the run launched before sessionlab
exits (143, 130); a second signal exits at once and SIGKILL gives no chance at all, and there the
target's watchdog removes what is left: processes and run directory."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conformance.targets.launched import RUN_ID_VARIABLE
from tests.fixtures.stack import deadline

ROOT = Path(__file__).resolve().parents[1]
SESSIONLAB = Path(sys.executable).parent / "sessionlab"
PROCESS_TARGET = ROOT / "examples" / "targets" / "reference-process.yaml"


def _alive(pid: int) -> bool:
    """A zombie counts as gone: it holds nothing but its exit status, for whoever reaps it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _children(parent: int) -> dict[int, str]:
    """Live children of `parent`: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] not in ("Z", "X"):
            found[int(entry.name)] = cmdline
    return found


def _marked(pid: int) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return any(item.startswith(f"{RUN_ID_VARIABLE}=".encode()) for item in environ.split(b"\0"))


@dataclass
class Launched:
    """What one sessionlab run launched, found from outside as a user would."""

    services: dict[str, int]  # service -> pid
    watchdog: int
    run_dir: Path

    def pids(self) -> list[int]:
        return [*self.services.values(), self.watchdog]


class Run:
    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir()
        self.out = tmp_path / "out.txt"
        self.err = tmp_path / "err.txt"
        # Temporary folders in a folder of the test's own, so that what is left can be listed.
        env = {
            **os.environ,
            "TMPDIR": str(self.tmp),
            "PATH": f"{SESSIONLAB.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                [str(SESSIONLAB), *args], stdout=out, stderr=err, env=env, cwd=tmp_path
            )

    def wait_until_serving(self) -> Launched:
        """Both services launched and the gateway answering: the run is under way."""
        end = time.monotonic() + deadline(60)
        while time.monotonic() < end:
            assert self.process.poll() is None, self.output()
            children = _children(self.process.pid)
            services = {
                service: pid
                for pid, cmdline in children.items()
                for service in ("runtime", "gateway")
                if f"serve {service}" in cmdline and _marked(pid)
            }
            watchdogs = [pid for pid, cmd in children.items() if "targets.watchdog" in cmd]
            if len(services) == 2 and watchdogs and self._answers(services["gateway"]):
                runtime = Path(f"/proc/{services['runtime']}/cmdline").read_bytes().split(b"\0")
                data_dir = Path(runtime[runtime.index(b"--data-dir") + 1].decode())
                return Launched(services, watchdogs[0], data_dir.parent)
            time.sleep(0.1)
        raise AssertionError(f"the services never came up:\n{self.output()}")

    def _answers(self, gateway_pid: int) -> bool:
        words = Path(f"/proc/{gateway_pid}/cmdline").read_bytes().split(b"\0")
        port = int(words[words.index(b"--port") + 1])
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).is_success
        except httpx.TransportError:
            return False

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(deadline(timeout))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"sessionlab did not exit in time:\n{self.output()}") from None

    def output(self) -> str:
        return f"{self.out.read_text()[-3000:]}\n--- stderr ---\n{self.err.read_text()[-3000:]}"

    def left_in_tmp(self) -> list[str]:
        return sorted(entry.name for entry in self.tmp.iterdir())


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def _all_gone(pids: list[int], within: float) -> list[int]:
    end = time.monotonic() + deadline(within)
    while (left := [pid for pid in pids if _alive(pid)]) and time.monotonic() < end:
        time.sleep(0.05)
    return left


@pytest.mark.parametrize(
    ("command", "signum", "status"),
    [
        (["verify"], signal.SIGTERM, 143),
        (["verify"], signal.SIGINT, 130),
        (["run", "--only", "TP-2"], signal.SIGTERM, 143),
    ],
    ids=["verify-SIGTERM", "verify-SIGINT", "run-SIGTERM"],
)
def test_a_signal_stops_and_removes_what_the_run_launched_before_sessionlab_exits(
    tmp_path: Path, runs: list[Run], command: list[str], signum: signal.Signals, status: int
) -> None:
    run = Run(tmp_path, *command, "--target", str(PROCESS_TARGET))
    runs.append(run)
    launched = run.wait_until_serving()
    assert launched.run_dir.is_dir()
    run.process.send_signal(signum)
    assert run.wait(60) == status, run.output()
    # Stopped before sessionlab exited, not after: nothing is left to wait for.
    assert _all_gone(launched.pids(), within=0) == []
    assert not launched.run_dir.exists()
    assert run.left_in_tmp() == []
    assert f"stopped by {signum.name}" in run.err.read_text()
    # A run cut short judges nothing: no verdict, no requirement counted as an error.
    assert "CONFORM" not in run.out.read_text() + run.err.read_text(), run.output()


def test_a_second_signal_exits_at_once_and_the_watchdog_removes_the_rest(
    tmp_path: Path, runs: list[Run]
) -> None:
    run = Run(tmp_path, "verify", "--target", str(PROCESS_TARGET))
    runs.append(run)
    launched = run.wait_until_serving()
    run.process.send_signal(signal.SIGTERM)
    # The first signal's clean stop (each service given its grace to stop) is under way.
    time.sleep(0.05)
    run.process.send_signal(signal.SIGINT)
    assert run.wait(5) == 130, run.output()
    assert _all_gone(launched.pids(), within=10) == []
    assert not launched.run_dir.exists()


def test_services_and_run_directory_do_not_outlive_a_sessionlab_killed_with_sigkill(
    tmp_path: Path, runs: list[Run]
) -> None:
    run = Run(tmp_path, "verify", "--target", str(PROCESS_TARGET))
    runs.append(run)
    launched = run.wait_until_serving()
    run.process.kill()
    assert run.wait(10) == -signal.SIGKILL
    assert _all_gone(launched.pids(), within=10) == []
    # The watchdog removes the run directory too. (verify's own report folder,
    # sessionlab-verify-*, is not the target's: a SIGKILL leaves it in TMPDIR.)
    assert not launched.run_dir.exists()
    assert [name for name in run.left_in_tmp() if not name.startswith("sessionlab-verify-")] == []


def test_containers_and_run_directory_do_not_outlive_a_sessionlab_killed_with_sigkill(
    tmp_path: Path, runs: list[Run]
) -> None:
    from conformance.targets.container_target import TARGET_LABEL
    from tests.fixtures.thirdparty.harness import docker_client_or_skip

    engine: Any = docker_client_or_skip()
    try:
        try:
            engine.images.get("sessionlab-reference:latest")
        except Exception:
            reason = "no sessionlab-reference image; scripts/docker/build-images.sh builds it"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        target = ROOT / "examples" / "targets" / "reference-container.yaml"
        run = Run(tmp_path, "verify", "--target", str(target))
        runs.append(run)
        end = time.monotonic() + deadline(90)
        names: list[str] = []
        while len(names) < 2 and time.monotonic() < end:
            assert run.process.poll() is None, run.output()
            found = engine.containers.list(filters={"label": TARGET_LABEL, "status": "running"})
            names = [c.name for c in found if "reference-container" in c.name]
            time.sleep(0.2)
        assert len(names) == 2, run.output()
        run.process.kill()
        assert run.wait(10) == -signal.SIGKILL
        end = time.monotonic() + deadline(20)
        while (
            left := [c.name for c in engine.containers.list(all=True) if c.name in names]
        ) and time.monotonic() < end:
            time.sleep(0.2)
        assert left == []
        end = time.monotonic() + deadline(10)
        while any(n.startswith("sessionlab-reference-container-") for n in run.left_in_tmp()):
            assert time.monotonic() < end, run.left_in_tmp()
            time.sleep(0.1)
    finally:
        engine.close()

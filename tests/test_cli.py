"""The `sessionlab` command line as a user runs it: real processes, real signals, real ports."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.stack import deadline

CLI = [sys.executable, "-m", "sessionlab.cli"]
BANNER_URL = re.compile(r"^\s+(runtime|gateway)\s+(http://\S+)")


class Served:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [*CLI, "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.urls: dict[str, str] = {}
        self._err: list[str] = []
        self._out_reader: threading.Thread | None = None
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        # Read stderr all along: a server that logs more than a pipe holds would block on it.
        self._err_reader = threading.Thread(
            target=self._err.extend, args=(self.process.stderr,), daemon=True
        )
        self._err_reader.start()
        for line in self.process.stdout:
            match = BANNER_URL.match(line)
            if match:
                self.urls[match.group(1)] = match.group(2)
            if line.startswith("Stop with"):
                self._out_reader = threading.Thread(target=self.process.stdout.read, daemon=True)
                self._out_reader.start()
                return
        raise AssertionError(f"serve exited before its banner: {self.stop()}")

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            self.process.wait(timeout=deadline(20))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for reader in (self._err_reader, self._out_reader):
            if reader is not None:
                reader.join(deadline(5))
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return self.process.returncode, "".join(self._err)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for item in started:
        item.stop(signal.SIGKILL)


def test_serve_runs_both_services_and_keeps_data_across_a_stop(
    tmp_path: Path, served: list[Served]
) -> None:
    ports = ["--runtime-port", "0", "--gateway-port", "0", "--data-dir", str(tmp_path)]
    first = Served(*ports)
    served.append(first)
    assert set(first.urls) == {"runtime", "gateway"}
    gateway = first.urls["gateway"]
    session_id = httpx.post(f"{gateway}/sessions").json()["session_id"]
    assert httpx.get(first.urls["runtime"] + "/sessions").status_code == 401
    code, log = first.stop(signal.SIGTERM)
    assert code == 0
    assert f"Created new session: {session_id}" in log

    second = Served(*ports)
    served.append(second)
    listed = httpx.get(f"{second.urls['gateway']}/sessions").json()
    assert [s["session_id"] for s in listed["sessions"]] == [session_id]
    assert second.stop(signal.SIGINT)[0] == 0


def test_services_run_apart_with_a_shared_key(tmp_path: Path, served: list[Served]) -> None:
    runtime = Served("runtime", "--port", "0", "--internal-key", "k1", "--data-dir", str(tmp_path))
    served.append(runtime)
    gateway = Served(
        "gateway", "--port", "0", "--internal-key", "k1", "--runtime-url", runtime.urls["runtime"]
    )
    served.append(gateway)
    response = httpx.post(f"{gateway.urls['gateway']}/sessions")
    assert response.status_code == 200
    assert "k1" not in response.text
    assert gateway.stop()[0] == 0
    assert runtime.stop()[0] == 0


def test_keys_come_from_the_environment(tmp_path: Path, served: list[Served]) -> None:
    os.environ["SESSIONLAB_CLIENT_KEY"] = "from-env"
    try:
        item = Served("--runtime-port", "0", "--gateway-port", "0", "--data-dir", str(tmp_path))
    finally:
        del os.environ["SESSIONLAB_CLIENT_KEY"]
    served.append(item)
    gateway = item.urls["gateway"]
    assert httpx.get(f"{gateway}/sessions").status_code == 401
    ok = httpx.get(f"{gateway}/sessions", headers={"X-Internal-Auth": "from-env"})
    assert ok.status_code == 200


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    # Launched example targets run `sessionlab` from PATH, as an activated virtualenv does.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=deadline(timeout),
        check=False,
        env={**os.environ, "PATH": path},
    )


def test_runtime_alone_without_a_key_is_refused_with_the_reason() -> None:
    result = run_cli("serve", "runtime", "--port", "0")
    assert result.returncode == 2
    assert "the runtime alone needs --internal-key" in result.stderr


def test_a_port_already_taken_is_reported(served: list[Served], tmp_path: Path) -> None:
    first = Served("gateway", "--port", "0")
    served.append(first)
    port = first.urls["gateway"].rsplit(":", 1)[1]
    result = run_cli("serve", "gateway", "--port", port)
    assert result.returncode == 2
    assert f"the gateway cannot listen on 127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--bogus"], "unrecognized arguments: --bogus"),
        (["serve", "--port", "1"], "--port names the port of `runtime` or `gateway` alone"),
        (["serve", "--runtime-port", "x"], "argument --runtime-port: invalid int value: 'x'"),
        (["nonsense"], "invalid choice: 'nonsense'"),
        ([], "the following arguments are required: COMMAND"),
    ],
    ids=["unknown-flag", "port-with-both", "bad-int", "unknown-command", "no-command"],
)
def test_bad_usage_prints_usage_and_exits_2(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert "usage: sessionlab" in result.stderr
    assert message in result.stderr


def test_schema_check_fails_on_a_stale_directory(tmp_path: Path) -> None:
    assert run_cli("schemas", "--dir", str(tmp_path)).returncode == 0
    assert run_cli("schemas", "--check", "--dir", str(tmp_path)).returncode == 0
    (tmp_path / "Health.json").write_text("{}\n")
    stale = run_cli("schemas", "--check", "--dir", str(tmp_path))
    assert stale.returncode == 1
    assert "Health.json" in stale.stderr


def test_smoke_checks_the_reference_and_passes() -> None:
    result = run_cli("smoke")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed, 0 failed" in result.stdout


def test_verify_finds_the_reference_conforming(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    # A whole run: the bound is a guard against a hang, as for the target-file runs below.
    result = run_cli(
        "verify", "--json", str(report_path), "--junit-xml", str(tmp_path / "j.xml"), timeout=180
    )
    assert result.returncode == 0, result.stdout[-4000:]
    report = json.loads(report_path.read_text())
    statuses = {r["id"]: r["status"] for r in report["requirements"]}
    checked = {i: s for i, s in statuses.items() if r_profile(report, i) in report["profiles"]}
    assert set(checked.values()) == {"passed"}
    assert {"core", "strict", "scripted"} <= set(report["profiles"])
    assert "CONFORMS" in result.stdout
    assert (tmp_path / "j.xml").read_text().count("<testcase") == len(statuses)


def assert_every_must_passed(
    report_path: Path, result: subprocess.CompletedProcess[str], may_skip: tuple[str, ...] = ()
) -> None:
    """Every requirement of core, strict and scripted passed, or skipped or passed in part for a
    reason named."""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    report = json.loads(report_path.read_text())
    for profile in ("core", "strict", "scripted"):
        assert profile in report["profiles"]
    checked = [r for r in report["requirements"] if r["profile"] in ("core", "strict", "scripted")]
    failing = {
        r["id"]: r["message"]
        for r in checked
        if r["status"] != "passed"
        and not (
            r["status"] in ("skipped", "partial")
            and any(reason in r["message"] for reason in may_skip)
        )
    }
    assert failing == {}


def test_verify_passes_the_reference_run_as_a_process_target(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    target = Path(__file__).parents[1] / "examples" / "targets" / "reference-process.yaml"
    result = run_cli("verify", "--target", str(target), "--json", str(report_path), timeout=180)
    assert_every_must_passed(report_path, result)
    assert "target reference-process" in result.stdout


def test_verify_passes_a_running_reference_named_by_its_urls(
    tmp_path: Path, served: list[Served]
) -> None:
    stack = Served(
        "--runtime-port",
        "0",
        "--gateway-port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        "--internal-key",
        "url-internal-key",
        "--client-key",
        "url-client-key",
        "--turn-timeout",
        "10",
    )
    served.append(stack)
    report_path = tmp_path / "report.json"
    result = run_cli(
        "verify",
        "--gateway-url",
        stack.urls["gateway"],
        "--runtime-url",
        stack.urls["runtime"],
        "--client-key",
        "url-client-key",
        "--internal-key",
        "url-internal-key",
        *("--profile", "core", "--profile", "strict", "--profile", "scripted"),
        "--json",
        str(report_path),
        timeout=180,
    )
    # Nothing stops a target sessionlab only talks to, nor reads its logs: those skip or pass in
    # part, saying why.
    assert_every_must_passed(
        report_path,
        result,
        may_skip=(
            "the target offers no control of its runtime",
            "the target offers no runtime logs",
            "the target offers no gateway logs",
            "the runtime's logs were not checked: the target offers none",
            "not checked across a runtime restart",
        ),
    )


def test_verify_names_the_line_of_a_bad_target_file(tmp_path: Path) -> None:
    bad = tmp_path / "target.yaml"
    bad.write_text("kind: process\nservices:\n  runtime: {command: [x]}\n")
    result = run_cli("verify", "--target", str(bad))
    assert result.returncode == 2
    assert f"{bad}:2 services.gateway: field required" in result.stderr


def test_verify_of_a_target_that_does_not_start_says_why_once(tmp_path: Path) -> None:
    thirdparty = Path(__file__).parent / "fixtures" / "thirdparty"
    report_path = tmp_path / "report.json"
    result = subprocess.run(
        [
            *CLI,
            "verify",
            "--target",
            str(thirdparty / "acme-exits.yaml"),
            "--json",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=deadline(60),
        check=False,
        env={**os.environ, "ACME_PYTHON": sys.executable, "ACME_TEST_INTERNAL_KEY": "k"},
    )
    assert result.returncode == 3, result.stdout + result.stderr
    reason = "the target did not start: the runtime exited with status 2 before"
    assert f"sessionlab verify: {reason}" in result.stderr
    # Said once, not under each of the checks.
    assert (result.stdout + result.stderr).count(reason) <= 2
    report = json.loads(report_path.read_text())
    assert report["stopped"].startswith(reason)
    assert not report["conforms"]


def r_profile(report: dict[str, object], requirement_id: str) -> str:
    requirements = report["requirements"]
    assert isinstance(requirements, list)
    return str(next(r["profile"] for r in requirements if r["id"] == requirement_id))


def test_verify_exits_2_with_usage_on_two_targets() -> None:
    result = run_cli("verify", "--gateway-url", "http://127.0.0.1:1", "--target-factory", "a:b")
    assert result.returncode != 0
    assert (
        "name one target, not --target-factory and --gateway-url" in result.stderr + result.stdout
    )


def test_bench_prints_its_ratios(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    # A bound on a hung run, not a timing: speed is never asserted.
    result = run_cli("bench", "--scale", "0.05", "--json", str(report), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    load, _, micro = result.stdout.partition("sessionlab bench, 2 of 2")
    # 1: the load recipe, the reference as a process target against itself, a row per flow.
    assert "sessionlab load --target" in load
    assert "reference-process (A)" in load
    assert "reference-process (B) against reference-process (A)" in load
    for flow in ("create", "chat", "switch", "restore"):
        assert flow in load
    assert "no errors" in load
    assert "noise" in load
    # 2: create, history alone and 16 at a time, chat at 2,000 and at 10,000 messages ...
    single, _, scale_out = micro.partition("\nscale-out:")
    assert single.count("  ratio ") == 5
    # ... and with 1 and with 2 worker processes (reference/bench_workers.py).
    assert scale_out.count("ratio 2 workers / 1") == 1
    both = json.loads(report.read_text(encoding="utf-8"))
    ratios = both["load"]["comparison"]
    assert [row["flow"] for row in ratios] == ["create", "chat", "switch", "restore"]
    # Every IDE's first operation is a create: never a flow without operations.
    assert ratios[0]["throughput_ratio"] is not None
    assert len(both["micro_ratios"]["sections"]) == 5
    # The goals, each with what this run measured (met or not: never asserted here).
    goals = both["micro_ratios"]["goals"]
    assert len(goals) == 6
    assert all(isinstance(goal["met"], bool) for goal in goals)
    assert single.count("(goal ") == 6

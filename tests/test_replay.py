"""`sessionlab replay`: a failure of a verify run seen again, without the checks.

The real `sessionlab` executable verifies a broken variant of tests/broken (WebSocket and event
stream failures), writes the JSON report, and replays the failure from it against a running
instance of that same broken server, by the recorded URLs or others. The replay must show the same
wrong answer again and never print a key."""

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance.targets.reference_target import ReferenceTarget
from tests.broken import core_breaks
from tests.fixtures.stack import deadline

SESSIONLAB = str(Path(sys.executable).parent / "sessionlab")
REPO = Path(__file__).resolve().parents[1]
# Distinctive, so that any trace of it is found; the broken gateway asks for no client key.
CLIENT_KEY = "ck-Rp93tLw5Vx2Qa8Mz"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def sessionlab(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Run:
    # No key of the tester's shell leaks into a test that asserts which key is used.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONLAB_")}
    result = subprocess.run(
        [SESSIONLAB, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**clean, **(env or {})},
        timeout=deadline(timeout),
        check=False,
    )
    return Run(result.returncode, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def closes_on_bad_json() -> Iterator[ReferenceTarget]:
    """The broken gateway that closes the socket (1011) on a frame that is not JSON (W-BAD-1),
    running for the whole module: verified, then replayed against."""
    target = core_breaks.closes_on_bad_json()
    asyncio.run(target.start())
    yield target
    asyncio.run(target.close())


@dataclass
class Verified:
    target: ReferenceTarget
    report_path: Path
    report: dict[str, Any]
    console: str


@pytest.fixture(scope="module")
def socket_failure(
    closes_on_bad_json: ReferenceTarget, tmp_path_factory: pytest.TempPathFactory
) -> Verified:
    endpoints = closes_on_bad_json.endpoints
    assert endpoints.internal_key is not None
    report_path = tmp_path_factory.mktemp("replay") / "report.json"
    run = sessionlab(
        "verify",
        *("--gateway-url", endpoints.gateway_url, "--runtime-url", str(endpoints.runtime_url)),
        *("--internal-key", endpoints.internal_key),
        *("--only", "W-BAD-1", "--only", "R-LIST-1", "--json", str(report_path)),
        timeout=300,
    )
    assert run.code == 1, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    return Verified(closes_on_bad_json, report_path, report, run.stdout)


def requirement(report: dict[str, Any], requirement_id: str) -> dict[str, Any]:
    (found,) = [r for r in report["requirements"] if r["id"] == requirement_id]
    return found


def failing_checks(report: dict[str, Any], requirement_id: str) -> list[dict[str, Any]]:
    return [c for c in requirement(report, requirement_id)["checks"] if c["outcome"] == "failed"]


def keys_of(target: ReferenceTarget) -> dict[str, str]:
    key = target.endpoints.internal_key
    assert key is not None
    return {"SESSIONLAB_INTERNAL_KEY": key, "SESSIONLAB_CLIENT_KEY": CLIENT_KEY}


def test_a_socket_failure_names_its_replay_command_in_the_console_and_the_json(
    socket_failure: Verified,
) -> None:
    command = f"sessionlab replay {socket_failure.report_path} W-BAD-1"
    checks = failing_checks(socket_failure.report, "W-BAD-1")
    assert checks
    for check in checks:
        lines = check["reproduce"].splitlines()
        assert lines[0].startswith("open ws://"), lines
        assert lines[-1] == command
    assert command in socket_failure.console


def test_replay_sends_the_frames_again_and_shows_the_same_close(socket_failure: Verified) -> None:
    run = sessionlab(
        "replay",
        str(socket_failure.report_path),
        "W-BAD-1",
        env=keys_of(socket_failure.target),
    )
    assert run.code == 0, run.stdout + run.stderr
    out = run.stdout
    assert out.startswith("sessionlab replay — W-BAD-1 (MUST, core)")
    gateway = socket_failure.target.endpoints.gateway_url
    assert f"gateway   {gateway} (as recorded)" in out
    checks = failing_checks(socket_failure.report, "W-BAD-1")
    assert out.count("\ncheck ") == len(checks)
    # The frame that is not JSON goes again, on a socket of a session created now...
    assert "  IDE → gateway  send this is not json" in out
    assert "(the recorded session_" in out
    # ...and the broken gateway closes it again, as it did in the verify run.
    assert "    recorded  close 1011 'bad frame'" in out
    assert "    now       close 1011 'bad frame'  (as recorded)" in out
    assert out.rstrip().splitlines()[-1].startswith(f"replayed {len(checks)} check(s) of W-BAD-1")
    everything = run.stdout + run.stderr
    for key in keys_of(socket_failure.target).values():
        assert key not in everything


def test_replay_reads_an_event_stream_to_its_end_on_another_target(tmp_path: Path) -> None:
    """Verified by --target-factory (its instance is gone when verify ends), replayed against a
    new instance of the same broken runtime named by --gateway-url and --runtime-url."""
    report_path = tmp_path / "report.json"
    verified = sessionlab(
        "verify",
        *("--target-factory", "tests.broken.core_breaks:stream_without_done"),
        *("--only", "R-STREAM-1", "--json", str(report_path)),
        timeout=300,
    )
    assert verified.code == 1, verified.stdout[-3000:] + verified.stderr[-3000:]
    report = json.loads(report_path.read_text())
    (check,) = failing_checks(report, "R-STREAM-1")
    *curl, replay = check["reproduce"].splitlines()
    assert curl[-1].startswith("curl -sS -i -N -X POST")
    assert replay == f"sessionlab replay {report_path} R-STREAM-1"

    target = core_breaks.stream_without_done()
    asyncio.run(target.start())
    try:
        endpoints, keys = target.endpoints, keys_of(target)
        assert endpoints.runtime_url is not None
        run = sessionlab(
            "replay",
            str(report_path),
            "R-STREAM-1",
            *("--gateway-url", endpoints.gateway_url, "--runtime-url", endpoints.runtime_url),
            env=keys,
        )
    finally:
        asyncio.run(target.close())
    assert run.code == 0, run.stdout + run.stderr
    out = run.stdout
    recorded_runtime = report["target"]["runtime_url"]
    assert f"runtime   {endpoints.runtime_url} (recorded: {recorded_runtime})" in out
    # The request goes to the new runtime with the key of the environment, named, not shown.
    stream = f"  IDE → runtime  POST {endpoints.runtime_url}/agent/message/stream "
    assert stream in out
    assert "[X-Internal-Auth: $SESSIONLAB_INTERNAL_KEY]" in out
    # The stream, read to its end, ends again without its done event: the same wrong answer.
    after = out[out.index(stream) :]
    recorded = after[after.index("    recorded  200 text/event-stream") : after.index("    now  ")]
    now = after[after.index("    now       200 text/event-stream") :]
    now = now[: now.find("\n\n") if "\n\n" in now else len(now)]
    assert "event: message data:" in recorded
    assert "event: message data:" in now
    assert '"is_final":true' in now
    assert "event: done" not in now
    assert "(as recorded)" in now
    for key in keys.values():
        assert key not in run.stdout + run.stderr


def test_replay_without_the_recorded_key_says_which_variable_to_set(
    socket_failure: Verified, tmp_path: Path
) -> None:
    # The runtime's list check carries the internal key; keep it failing by marking it so.
    report = json.loads(socket_failure.report_path.read_text())
    listing = requirement(report, "R-LIST-1")
    assert listing["status"] == "passed"
    key_needing = {
        "nodeid": "conformance/checks/test_runtime_sessions.py::test_list",
        "outcome": "failed",
        "message": "made to fail here",
        "transcript": [
            {
                "at": 0.0,
                "kind": "http-request",
                "text": f"GET {report['target']['runtime_url']}/sessions "
                "{'x-internal-auth': '<redacted>'}",
            },
            {"at": 0.1, "kind": "http-response", "text": '200 application/json {"sessions": []}'},
        ],
    }
    listing.update(status="failed", checks=[key_needing])
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(report))
    run = sessionlab("replay", str(edited), "R-LIST-1")
    assert run.code == 2
    assert run.stderr.strip() == (
        "sessionlab replay: the recorded requests of R-LIST-1 carried a key: set "
        "SESSIONLAB_INTERNAL_KEY (or give --client-key / --internal-key)"
    )
    assert not run.stdout
    given = sessionlab("replay", str(edited), "R-LIST-1", env=keys_of(socket_failure.target))
    assert given.code == 0, given.stdout + given.stderr
    assert "    now       200 application/json" in given.stdout
    for key in keys_of(socket_failure.target).values():
        assert key not in given.stdout + given.stderr


def test_clear_errors_for_what_cannot_be_replayed(socket_failure: Verified, tmp_path: Path) -> None:
    path = str(socket_failure.report_path)

    def refused(*args: str) -> str:
        run = sessionlab("replay", *args)
        assert run.code == 2, run.stdout + run.stderr
        assert not run.stdout
        (line,) = run.stderr.strip().splitlines()
        return line

    missing = tmp_path / "nowhere.json"
    assert refused(str(missing), "W-BAD-1") == (
        f"sessionlab replay: no report at {missing} (write one with `sessionlab verify --json`)"
    )
    assert refused(path, "W-NOPE-9") == (
        f"sessionlab replay: no requirement W-NOPE-9 in {path}; the requirements that failed: "
        "W-BAD-1"
    )
    passed = requirement(socket_failure.report, "R-LIST-1")["message"]
    assert refused(path, "R-LIST-1") == (
        f"sessionlab replay: R-LIST-1 did not fail in that run: it passed ({passed}); "
        "the requirements that failed: W-BAD-1"
    )
    assert refused(path, "W-TURN-1").startswith(
        "sessionlab replay: W-TURN-1 did not fail in that run: it was skipped (not selected by "
        "--only"
    )

    stripped = json.loads(socket_failure.report_path.read_text())
    for entry in stripped["requirements"]:
        for check in entry["checks"]:
            check.pop("transcript", None)
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(stripped))
    assert refused(str(bare), "W-BAD-1") == (
        f"sessionlab replay: {bare} holds no transcripts: nothing recorded can be sent again (a "
        "report of `sessionlab verify --json` keeps the transcript of every failed check)"
    )

    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps([{"id": "TP-1", "status": "passed"}]))
    assert refused(str(plans), "W-BAD-1") == (
        f"sessionlab replay: {plans} is not a report of `sessionlab verify --json`"
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert refused(str(broken), "W-BAD-1").startswith(f"sessionlab replay: {broken} is not JSON")

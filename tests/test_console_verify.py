"""`sessionlab verify` as a tester meets it: its own console, no key anywhere, a pre-flight that
stops a run set up wrong with one sentence.

Every test runs the real `sessionlab` executable against real servers: `sessionlab serve` in a
subprocess (with keys chosen here, so that they can be looked for), or a broken variant of
tests/broken."""

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from tests.fixtures.stack import deadline

SESSIONLAB = str(Path(sys.executable).parent / "sessionlab")
REPO = Path(__file__).resolve().parents[1]
# Distinctive, so that any trace of them is found.
INTERNAL_KEY = "ik-Zq81xVw0Lm3Rt7Pn"
CLIENT_KEY = "ck-Hy42sEo9Ka6Ud1Jb"
BANNER_URL = re.compile(r"^\s+(runtime|gateway)\s+(http://\S+)")
FLAGS = {"json": "json", "junit": "junit-xml", "html": "html"}
# What pytest prints of its own: progress dots, the summary line.
PYTEST_SUMMARY = re.compile(r"\b\d+ (passed|failed|skipped|deselected)\b.* in \d+\.\d+s")


@dataclass
class Stack:
    process: subprocess.Popen[str]
    log: IO[str]
    gateway_url: str
    runtime_url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=deadline(20))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.log.close()


def serve(tmp: Path, *extra: str) -> Stack:
    """The reference stack of `sessionlab serve`, with both keys on."""
    log = (tmp / "serve.log").open("w")
    process = subprocess.Popen(
        [
            SESSIONLAB,
            "serve",
            *("--runtime-port", "0", "--gateway-port", "0", "--data-dir", str(tmp / "data")),
            *("--internal-key", INTERNAL_KEY, "--client-key", CLIENT_KEY, "--turn-timeout", "10"),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert process.stdout is not None
    urls: dict[str, str] = {}
    for line in process.stdout:
        match = BANNER_URL.match(line)
        if match:
            urls[match.group(1)] = match.group(2)
        if line.startswith("Stop with"):
            break
    stack = Stack(process, log, urls.get("gateway", ""), urls.get("runtime", ""))
    if set(urls) != {"runtime", "gateway"}:
        stack.stop()
        raise AssertionError(f"serve exited before its banner: {(tmp / 'serve.log').read_text()}")
    # Nothing more comes on stdout after the banner: it need not be read.
    return stack


@pytest.fixture(scope="module")
def tolerant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack that accepts unknown session ids: it fails W-CONN-2 and R-STREAM-3 under strict."""
    stack = serve(tmp_path_factory.mktemp("tolerant"), "--tolerant")
    yield stack
    stack.stop()


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    files: dict[str, str]

    def everything(self) -> str:
        return "\n".join([self.stdout, self.stderr, *self.files.values()])


def verify(tmp: Path, *args: str, reports: bool = True, timeout: float = 180) -> Run:
    paths = {
        "json": tmp / "report.json",
        "junit": tmp / "junit.xml",
        "html": tmp / "report.html",
    }
    flags = [arg for name, path in paths.items() for arg in (f"--{FLAGS[name]}", str(path))]
    result = subprocess.run(
        [SESSIONLAB, "verify", *args, *(flags if reports else [])],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=deadline(timeout),
        check=False,
    )
    files = {name: path.read_text() for name, path in paths.items() if path.exists()}
    return Run(result.returncode, result.stdout, result.stderr, files)


def by_url(stack: Stack, *, internal: str = INTERNAL_KEY, client: str = CLIENT_KEY) -> list[str]:
    return [
        *("--gateway-url", stack.gateway_url, "--runtime-url", stack.runtime_url),
        *("--internal-key", internal, "--client-key", client),
    ]


# What fails here: W-CONN-2 and R-STREAM-3 under strict; what sends keys, right and wrong, and
# looks for them in answers: the auth and proxy checks.
FAILING_ONLY = ["W-CONN-2", "R-STREAM-3", "R-AUTH", "G-AUTH", "G-PROXY-2"]
STRICT = ["--profile", "core", "--profile", "strict"]


def _only(*prefixes: str) -> list[str]:
    return [arg for prefix in prefixes for arg in ("--only", prefix)]


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
def test_no_key_is_printed_or_written_in_any_format_at_any_verbosity(
    tolerant: Stack, tmp_path: Path, verbose: bool
) -> None:
    run = verify(
        tmp_path,
        *by_url(tolerant),
        *STRICT,
        *_only(*FAILING_ONLY),
        *(["-v"] if verbose else []),
    )
    assert run.code == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert set(run.files) == {"json", "junit", "html"}
    everything = run.everything()
    for key in (INTERNAL_KEY, CLIENT_KEY):
        # The key, and the near keys a timing check sends (one character changed).
        for trace in (key, key[:-1], key[1:]):
            assert trace not in everything
    if verbose:
        # The full tracebacks are there, with the checks' arguments that used to hold the keys.
        assert "Traceback" in run.stdout
        assert "CheckFailure" in run.stdout
    else:
        assert "Traceback" not in run.stdout


def test_the_console_is_sessionlabs_own(tolerant: Stack, tmp_path: Path) -> None:
    """Progress lines, the table, each failure with expected, received and a reproduce line, no
    pytest output, the verdict last."""
    run = verify(tmp_path, *by_url(tolerant), *STRICT, *_only("W-CONN-2", "R-STREAM-3"))
    assert run.code == 1
    lines = run.stdout.splitlines()
    assert lines[-1] == "DOES NOT CONFORM"
    assert not any(PYTEST_SUMMARY.search(line) for line in lines), run.stdout
    assert not any(set(line) <= set(".FsEx") and line for line in lines), "pytest's dots"
    # Not a terminal: a plain line per requirement as it starts, n/N.
    assert "[ 1/2] " in run.stdout
    assert "[ 2/2] " in run.stdout
    assert "Failures" in lines
    said = run.stdout[run.stdout.index("\nFailures\n") :]
    assert "expected   an unknown id refused with close code 4404 (profile strict)" in said
    assert "received   accepted, and it answered a message" in said
    # A socket failure says what to send, in order; an HTTP one is a curl line, keys by name.
    assert re.search(r"reproduce  open ws://\S+/ws/session_\w+ \(a WebSocket\) and send", said)
    curl = next(line for line in said.splitlines() if "/agent/message/stream" in line)
    assert re.match(r" +(reproduce)? +curl -sS -i -N -X POST '?http://", curl), curl
    assert '"X-Internal-Auth: $SESSIONLAB_INTERNAL_KEY"' in curl
    assert "--data-raw '{" in curl
    assert "$SESSIONLAB_INTERNAL_KEY: export them before pasting" in said
    report = json.loads(run.files["json"])
    failed = [
        check
        for requirement in report["requirements"]
        for check in requirement["checks"]
        if check["outcome"] == "failed"
    ]
    assert failed
    assert all(check["reproduce"] for check in failed)


def test_skipped_requirements_are_named_with_their_reason_once(
    tolerant: Stack, tmp_path: Path
) -> None:
    """Without a runtime URL the runtime-only checks skip: one line names the reason and them."""
    run = verify(
        tmp_path,
        "--gateway-url",
        tolerant.gateway_url,
        "--client-key",
        CLIENT_KEY,
        *_only("R-AUTH", "G-HEALTH"),
        reports=False,
    )
    assert run.code == 0, run.stdout[-3000:]
    skipped = run.stdout[run.stdout.index("\nSkipped\n") :].splitlines()
    reason = next(line for line in skipped if "no runtime URL given" in line)
    assert "R-AUTH-1" in reason
    assert "R-AUTH-2" in reason
    assert run.stdout.count("no runtime URL given") == 1


def test_a_wrong_internal_key_stops_the_run_with_one_sentence(
    tolerant: Stack, tmp_path: Path
) -> None:
    run = verify(tmp_path, *by_url(tolerant, internal="not-the-key"))
    sentence = (
        f"the runtime at {tolerant.runtime_url} refused the internal key (401 to GET /sessions)"
    )
    assert run.code == 3, run.stdout[-3000:]
    assert f"sessionlab verify: {sentence}" in run.stderr
    assert f"the run stopped: {sentence}" in run.stdout
    assert "FAIL" not in run.stdout
    report = json.loads(run.files["json"])
    assert report["stopped"] == sentence
    assert not any(r["status"] == "failed" for r in report["requirements"])


def test_a_wrong_client_key_stops_the_run(tolerant: Stack, tmp_path: Path) -> None:
    run = verify(tmp_path, *by_url(tolerant, client="not-the-client-key"), reports=False)
    assert run.code == 3, run.stdout[-3000:]
    assert f"the gateway at {tolerant.gateway_url} refused the client key (401" in run.stderr


def test_an_unreachable_runtime_stops_the_run_naming_its_url(
    tolerant: Stack, tmp_path: Path
) -> None:
    down = "http://127.0.0.1:9"
    run = verify(
        tmp_path,
        *("--gateway-url", tolerant.gateway_url, "--runtime-url", down),
        *("--internal-key", INTERNAL_KEY, "--client-key", CLIENT_KEY),
        reports=False,
    )
    assert run.code == 3
    assert f"sessionlab verify: the runtime at {down} is not reachable: GET {down}/health" in (
        run.stderr
    )
    assert "ConnectError" not in run.stdout + run.stderr


def test_a_target_that_never_checks_keys_is_judged_not_stopped(tmp_path: Path) -> None:
    """The pre-flight stops on the right key refused, never on a wrong key accepted: a runtime
    that answers without a key is the auth checks' to judge."""
    run = verify(
        tmp_path,
        "--target-factory",
        "tests.broken.core_breaks:runtime_agents_without_key",
        *_only("R-AUTH-1"),
        reports=False,
    )
    assert run.code == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert "the run stopped" not in run.stdout
    assert re.search(r"FAIL MUST +R-AUTH-1", run.stdout)

"""`sessionlab serve` options: a value it cannot serve is one line and exit status 2, and every
option is read from SESSIONLAB_<OPTION> as well. Real `sessionlab` processes throughout."""

import argparse
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from reference.serve import environment_name, long_option, serve_options
from sessionlab.cli import build_parser
from tests.test_serve_running import TRACEBACK, Serving, free_port, run_serve, start

SECRET = "s3cret-never-shown"


def serve_parser() -> argparse.ArgumentParser:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            parser: argparse.ArgumentParser = action.choices["serve"]
            return parser
    raise AssertionError("no serve command")


def assert_refused(result: subprocess.CompletedProcess[str], sentence: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert TRACEBACK not in result.stderr
    assert result.stdout == ""
    assert result.stderr == f"sessionlab serve: {sentence}\n"
    assert SECRET not in result.stderr


@pytest.fixture
def serving() -> Iterator[list[Serving]]:
    started: list[Serving] = []
    yield started
    for item in started:
        item.stop(signal.SIGKILL)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


# --- values it cannot serve -----------------------------------------------------------------

# `{tmp}` is the test's directory; in it, `a-file` is a file and `corrupt/sessions.db` no database.
BOTH = ("--runtime-port", "0", "--gateway-port", "0", "--data-dir", "{tmp}/data")
REFUSED = [
    pytest.param(
        ["--gateway-port", "99999", "--runtime-port", "0"],
        {},
        "--gateway-port 99999 is not a port number (0 to 65535; 0 picks a free one)",
        id="port-too-big",
    ),
    pytest.param(
        ["runtime", "--port", "-1", "--internal-key", SECRET],
        {},
        "--port -1 is not a port number (0 to 65535; 0 picks a free one)",
        id="port-negative",
    ),
    pytest.param(
        [*BOTH, "--host", "no-such-host.invalid"],
        {},
        "the runtime cannot listen on no-such-host.invalid:0: --host 'no-such-host.invalid' is "
        "not an address of this machine (Name or service not known)",
        id="unknown-host",
    ),
    pytest.param(
        [*BOTH, "--host", ""], {}, "--host '' is not an address to listen on", id="no-host"
    ),
    pytest.param(
        ["--data-dir", "/proc/nonexistent/x"],
        {},
        "--data-dir /proc/nonexistent/x: cannot create that directory (No such file or directory)",
        id="data-dir-cannot-be-made",
    ),
    pytest.param(
        [*BOTH, "--data-dir", "{tmp}/a-file"],
        {},
        "--data-dir {tmp}/a-file: not a directory",
        id="data-dir-is-a-file",
    ),
    pytest.param(
        [*BOTH, "--data-dir", "{tmp}/corrupt"],
        {},
        "--data-dir {tmp}/corrupt: cannot open the store "
        "((sqlite3.DatabaseError) file is not a database)",
        id="data-dir-holds-no-database",
    ),
    pytest.param(
        [*BOTH, "--database-url", "foo://bar"],
        {},
        "--database-url foo://bar: no database driver 'foo'",
        id="database-url-unknown-driver",
    ),
    pytest.param(
        [*BOTH, "--database-url", f"postgresql://ann:{SECRET}@127.0.0.1/db"],
        {},
        "--database-url postgresql://ann:***@127.0.0.1/db: 'postgresql' is not an async driver "
        "(e.g. postgresql+asyncpg, sqlite+aiosqlite)",
        id="database-url-sync-driver",
    ),
    pytest.param(
        [*BOTH, "--database-url", "no url"],
        {},
        "--database-url 'no url' is not a database URL (e.g. postgresql+asyncpg://user@host/db)",
        id="database-url-not-a-url",
    ),
    pytest.param(
        [*BOTH, "--runtime-url", "ftp://x"],
        {},
        "--runtime-url 'ftp://x' is not an http:// or https:// URL",
        id="runtime-url-not-http",
    ),
    pytest.param(
        [*BOTH, "--turn-timeout", "0"],
        {},
        "--turn-timeout 0 is not a positive number of seconds",
        id="turn-timeout-zero",
    ),
    pytest.param(
        [*BOTH, "--turn-timeout", "inf"],
        {},
        "--turn-timeout inf is not a positive number of seconds",
        id="turn-timeout-infinite",
    ),
    pytest.param([*BOTH, "--client-key", ""], {}, "--client-key is empty", id="client-key-empty"),
    pytest.param(
        [*BOTH, "--internal-key", f" {SECRET}"],
        {},
        "--internal-key must be printable ASCII without leading or trailing spaces "
        "(its value is not shown)",
        id="internal-key-spaces",
    ),
    pytest.param(
        [*BOTH, "--user-token", f"ann={SECRET}", "--user-token", SECRET],
        {},
        "--user-token (entry 2) is not NAME=TOKEN",
        id="user-token-not-a-pair",
    ),
    pytest.param(
        ["runtime", "--port", "0"],
        {},
        "the runtime alone needs --internal-key (or SESSIONLAB_INTERNAL_KEY): "
        "its gateway must send the same key",
        id="runtime-without-key",
    ),
    # The same checks for values from the environment name the variable.
    pytest.param(
        ["--runtime-port", "0"],
        {"SESSIONLAB_GATEWAY_PORT": "70000"},
        "SESSIONLAB_GATEWAY_PORT 70000 is not a port number (0 to 65535; 0 picks a free one)",
        id="env-port-too-big",
    ),
    pytest.param(
        ["--gateway-port", "0", "--data-dir", "{tmp}/data"],
        {"SESSIONLAB_RUNTIME_PORT": "abc"},
        "SESSIONLAB_RUNTIME_PORT='abc' is not a whole number",
        id="env-port-not-a-number",
    ),
    pytest.param(
        BOTH,
        {"SESSIONLAB_TURN_TIMEOUT": "soon"},
        "SESSIONLAB_TURN_TIMEOUT='soon' is not a number",
        id="env-timeout-not-a-number",
    ),
    pytest.param(
        BOTH,
        {"SESSIONLAB_TOLERANT": "maybe"},
        "SESSIONLAB_TOLERANT='maybe' is not one of 1, true, yes, 0, false, no",
        id="env-flag-not-a-boolean",
    ),
    pytest.param(
        BOTH,
        {"SESSIONLAB_LOG_LEVEL": "loud"},
        "SESSIONLAB_LOG_LEVEL='loud' is not one of debug, info, warning, error",
        id="env-not-a-choice",
    ),
    pytest.param(
        ["--gateway-port", "0", "--runtime-port", "0"],
        {"SESSIONLAB_DATA_DIR": "/proc/nonexistent/x"},
        "SESSIONLAB_DATA_DIR /proc/nonexistent/x: cannot create that directory "
        "(No such file or directory)",
        id="env-data-dir",
    ),
    pytest.param(
        BOTH,
        {"SESSIONLAB_CLIENT_KEY": f"{SECRET}\n"},
        "SESSIONLAB_CLIENT_KEY must be printable ASCII without leading or trailing spaces "
        "(its value is not shown)",
        id="env-client-key-newline",
    ),
    pytest.param(
        BOTH,
        {"SESSIONLAB_USER_TOKEN": f"ann={SECRET} ben={SECRET}"},
        "SESSIONLAB_USER_TOKEN (entry 2) repeats the token of user 'ann'",
        id="env-user-token-repeated",
    ),
    pytest.param(
        BOTH,
        {"SESSIONLAB_PORT": "8001"},
        "SESSIONLAB_PORT names the port of `runtime` or `gateway` alone; with both, set the "
        "runtime's and the gateway's",
        id="env-port-with-both",
    ),
    # Settings that are no option are read by the settings themselves, and refused as plainly.
    pytest.param(
        BOTH,
        {"SESSIONLAB_CONNECT_TIMEOUT": "-1"},
        "SESSIONLAB_CONNECT_TIMEOUT: Input should be greater than 0",
        id="env-connect-timeout",
    ),
    pytest.param(
        BOTH,
        {"SESSIONLAB_USER_TOKENS": "{"},
        "SESSIONLAB_USER_TOKENS is not valid JSON",
        id="env-user-tokens-json",
    ),
]


@pytest.mark.parametrize(("args", "env", "sentence"), REFUSED)
def test_a_value_it_cannot_serve_is_one_sentence_and_status_2(
    args: list[str], env: dict[str, str], sentence: str, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "sessions.db").write_text("not a database")
    result = run_serve(*(arg.format(tmp=tmp_path) for arg in args), env=env)
    assert_refused(result, sentence.format(tmp=tmp_path))


def test_a_port_in_use_is_one_sentence_naming_the_option(taken_port: int, tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert_refused(
        run_serve("--gateway-port", str(taken_port), "--runtime-port", "0", *data),
        f"the gateway cannot listen on 127.0.0.1:{taken_port}: the port is in use; "
        "choose another --gateway-port, or 0 for a free one",
    )
    assert_refused(
        run_serve(
            "runtime", "--internal-key", SECRET, *data, env={"SESSIONLAB_PORT": str(taken_port)}
        ),
        f"the runtime cannot listen on 127.0.0.1:{taken_port}: the port is in use; "
        "choose another SESSIONLAB_PORT, or 0 for a free one",
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a directory whatever its mode")
def test_a_data_dir_it_cannot_write_is_one_sentence(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        result = run_serve("--runtime-port", "0", "--gateway-port", "0", "--data-dir", str(locked))
    finally:
        locked.chmod(0o700)
    assert_refused(
        result, f"--data-dir {locked}: cannot write in that directory (Permission denied)"
    )


def test_a_data_dir_nobody_may_write_is_one_sentence() -> None:
    # Whoever runs the tests, root included, may not create files in /sys.
    result = run_serve("--runtime-port", "0", "--gateway-port", "0", "--data-dir", "/sys")
    assert_refused(result, "--data-dir /sys: cannot write in that directory (Permission denied)")


# --- every option from the environment --------------------------------------------------------

Check = Callable[[Serving, Path], None]


def banner_has(text: str) -> Check:
    def check(served: Serving, _tmp: Path) -> None:
        assert text in served.banner_text

    return check


def _internal_key_works(served: Serving, _tmp: Path) -> None:
    runtime = served.urls["runtime"]
    headers = {"X-Internal-Auth": "env-internal-key"}
    assert httpx.get(f"{runtime}/sessions", headers=headers).status_code == 200
    assert "internal key" not in served.banner_text


def _client_key_required(served: Serving, _tmp: Path) -> None:
    gateway = served.urls["gateway"]
    assert httpx.get(f"{gateway}/sessions").status_code == 401
    headers = {"X-Internal-Auth": "env-client-key"}
    assert httpx.get(f"{gateway}/sessions", headers=headers).status_code == 200


def _quiet_at_warning(served: Serving, _tmp: Path) -> None:
    assert "log level warning" in served.banner_text
    httpx.post(f"{served.urls['gateway']}/sessions")
    code, log = served.stop()
    assert code == 0
    assert " INFO " not in log


def _database_file_used(served: Serving, tmp: Path) -> None:
    assert f"store sqlite+aiosqlite:///{tmp}/elsewhere.db" in served.banner_text
    assert (tmp / "elsewhere.db").exists()


# option -> (variable's value, other arguments, what proves the value was read). Every option of
# the parser has a row: the test below fails for one that has none.
def env_cases(tmp: Path) -> dict[str, tuple[str, list[str], Check]]:
    port = free_port()
    both = ["--runtime-port", "0", "--gateway-port", "0", "--data-dir", str(tmp)]
    return {
        "--host": ("localhost", both, banner_has("gateway  http://localhost:")),
        "--port": (
            str(port),
            ["runtime", "--internal-key", "k", "--data-dir", str(tmp)],
            banner_has(f"runtime  http://127.0.0.1:{port} "),
        ),
        "--runtime-port": (
            str(port),
            ["--gateway-port", "0", "--data-dir", str(tmp)],
            banner_has(f"runtime  http://127.0.0.1:{port} "),
        ),
        "--gateway-port": (
            str(port),
            ["--runtime-port", "0", "--data-dir", str(tmp)],
            banner_has(f"gateway  http://127.0.0.1:{port} "),
        ),
        "--data-dir": (
            str(tmp / "from-env"),
            ["--runtime-port", "0", "--gateway-port", "0"],
            banner_has(f"store sqlite+aiosqlite:///{tmp}/from-env/sessions.db"),
        ),
        "--database-url": (
            f"sqlite+aiosqlite:///{tmp}/elsewhere.db",
            both,
            _database_file_used,
        ),
        "--runtime-url": ("http://127.0.0.1:9", both, banner_has("runtime at http://127.0.0.1:9/")),
        "--internal-key": ("env-internal-key", both, _internal_key_works),
        "--client-key": ("env-client-key", both, _client_key_required),
        "--turn-timeout": ("7.5", both, banner_has("turn timeout 7.5 s")),
        "--grace-period": ("2.5", both, banner_has("grace period of 2.5 s")),
        "--max-bytes": ("65536", both, banner_has("size limit 65536 bytes")),
        "--allowed-origin": (
            "https://a.example https://b.example",
            both,
            banner_has("origins https://a.example, https://b.example"),
        ),
        "--user-token": (
            "ann=token-a ben=token-b",
            both,
            banner_has("user auth on, bearer tokens of: ann, ben"),
        ),
        "--tolerant": ("yes", both, banner_has("Profile tolerant: unknown ids accepted")),
        "--log-level": ("warning", both, _quiet_at_warning),
        # The gateway alone: more than one runtime process needs PostgreSQL (test_scale_out.py).
        "--workers": (
            "2",
            ["gateway", "--port", "0", "--runtime-url", "http://127.0.0.1:9"],
            banner_has("(2 processes on this port)"),
        ),
        "--no-migrate": ("yes", both, banner_has("upgrades off (--no-migrate)")),
    }


def test_every_option_has_an_environment_case(tmp_path: Path) -> None:
    options = {long_option(action) for action in serve_options(serve_parser())}
    assert options == set(env_cases(tmp_path))


OPTIONS = [long_option(action) for action in serve_options(serve_parser())]


@pytest.mark.parametrize("option", OPTIONS)
def test_every_option_is_read_from_its_variable(
    option: str, tmp_path: Path, serving: list[Serving]
) -> None:
    action = next(a for a in serve_options(serve_parser()) if long_option(a) == option)
    variable = environment_name(action)
    assert variable == "SESSIONLAB_" + option[2:].upper().replace("-", "_")
    value, args, check = env_cases(tmp_path)[option]
    served = start(serving, *args, env={variable: value})
    check(served, tmp_path)


@pytest.mark.parametrize(
    ("value", "profile"),
    [
        ("true", "tolerant"),
        ("1", "tolerant"),
        ("YES", "tolerant"),
        ("false", "strict"),
        ("0", "strict"),
        ("no", "strict"),
        ("", "strict"),
    ],
)
def test_a_flag_reads_the_usual_words_for_true_and_false(
    value: str, profile: str, tmp_path: Path, serving: list[Serving]
) -> None:
    both = ["--runtime-port", "0", "--gateway-port", "0", "--data-dir", str(tmp_path)]
    served = start(serving, *both, env={"SESSIONLAB_TOLERANT": value})
    assert f"Profile {profile}:" in served.banner_text


def test_a_flag_wins_over_its_variable(tmp_path: Path, serving: list[Serving]) -> None:
    port = free_port()
    served = start(
        serving,
        *("--runtime-port", "0", "--gateway-port", str(port), "--data-dir", str(tmp_path)),
        env={"SESSIONLAB_GATEWAY_PORT": "not even a number"},
    )
    assert served.urls["gateway"] == f"http://127.0.0.1:{port}"

"""The pytest plugin of the conformance suite (entry point `pytest11: sessionlab`).

Checks carry `@pytest.mark.req("W-BAD-1", ...)`. The plugin validates those ids, skips a check whose
requirements all belong to profiles not selected, records each check's outcome and transcript, and
at the end judges every requirement: console summary, and a JSON report with `--sessionlab-json`.
"""

import os
import re
import secrets
import time
import traceback
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from websockets.exceptions import InvalidHandshake

from conformance import __version__, run_state, secrecy
from conformance.baseline import BaselineError, load_baseline
from conformance.causes import shared_causes
from conformance.failures import CheckFailure
from conformance.outcomes import classify, describe_refusal
from conformance.preflight import preflight
from conformance.probes import TEST_HEADER, Party, Socket, SocketRefused, http_probe, open_socket
from conformance.reports.model import (
    Outcome,
    RateLimited,
    RequirementVerdict,
    SharedCause,
    TargetInfo,
    VerifyReport,
    render_json,
)
from conformance.reproduce import (
    CLIENT_KEY_VARIABLE,
    INTERNAL_KEY_VARIABLE,
    Where,
    replay_line,
    reproduce_line,
)
from conformance.run_state import PrerequisiteFailure
from conformance.target_options import TargetOptionError, TargetOptions, make_target
from conformance.target_runner import TargetRunner
from conformance.targets import Endpoints, TargetError
from conformance.transcript import Transcript
from conformance.verdicts import (
    NO_CHECK,
    CheckResult,
    apply_baseline,
    conforms,
    exit_status,
    judge_all,
    judged_in,
    summary,
)
from contract.exit_codes import ExitCode
from contract.requirements import CLIENT_PROFILE, PROFILES, catalogue

RESULTS = pytest.StashKey[dict[str, CheckResult]]()
REPORT = pytest.StashKey[dict[str, Any]]()
STARTED = pytest.StashKey[float]()
# Why the run stopped before any check could judge the target (it did not start, or the
# pre-flight found a part missing or a key refused).
STOPPED = pytest.StashKey[str]()
# Requirement id -> how its checks were deselected (-k, -m, --only): not selected, not unjudged.
LEFT_OUT = pytest.StashKey[dict[str, str]]()
# Whether pytest's terminal is off: `sessionlab verify` prints its own console.
OWN_CONSOLE = pytest.StashKey[bool]()
# The profiles checked, once the target has said which it claims.
CHECKED = pytest.StashKey[frozenset[str]]()
# How to reach the target again, for the reproduce lines.
WHERE = pytest.StashKey[Where]()
# The options naming the target: a command's own (ChosenTarget) or pytest's.
TARGET_OPTIONS = pytest.StashKey[TargetOptions]()
MARKER = "req"
TIMEOUT_SCALE = float(os.environ.get("SESSIONLAB_TIMEOUT_SCALE", "1"))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sessionlab", "sessionlab conformance checks")
    TargetOptions.add_to_pytest(group)
    group.addoption(
        "--profile",
        dest="sessionlab_profiles",
        action="append",
        choices=PROFILES,
        help="profile to check, repeatable (default: those the target claims; core always)",
    )
    group.addoption(
        "--deep", dest="sessionlab_deep", action="store_true", help="many more generated examples"
    )
    group.addoption(
        "--only",
        dest="sessionlab_only",
        action="append",
        metavar="ID",
        help="run only checks of requirements with this id or id prefix (e.g. W-BAD), repeatable",
    )
    group.addoption(
        "--baseline",
        dest="sessionlab_baseline",
        metavar="FILE",
        help="YAML of known failures and flaky requirements (see docs/conformance.md)",
    )
    group.addoption(
        "--rate",
        dest="sessionlab_rate",
        type=float,
        metavar="N",
        help="at most N requests (and socket opens) per second, for targets that rate-limit",
    )
    group.addoption(
        "--sessionlab-json", dest="sessionlab_json", help="write the per-requirement report here"
    )
    group.addoption(
        "--sessionlab-report-path",
        dest="sessionlab_report_path",
        metavar="FILE",
        help="where the JSON report ends up, for the `sessionlab replay` lines; empty: nowhere "
        "(default: --sessionlab-json)",
    )
    group.addoption(
        "--sessionlab-hypothesis-dir",
        dest="sessionlab_hypothesis_dir",
        metavar="DIR",
        help="where hypothesis keeps its caches (default: .hypothesis in the working directory)",
    )


def pytest_configure(config: pytest.Config) -> None:
    baseline_path = config.getoption("sessionlab_baseline", None)
    if baseline_path:
        try:
            load_baseline(Path(baseline_path))
        except BaselineError as exc:
            raise pytest.UsageError(str(exc)) from None
    config.addinivalue_line("markers", f"{MARKER}(*ids): requirement ids the check verifies")
    config.stash[RESULTS] = {}
    config.stash[LEFT_OUT] = {}
    chosen = _chosen(config)
    target = chosen.options if chosen is not None else TargetOptions.from_pytest(config)
    config.stash[TARGET_OPTIONS] = target
    secrecy.remember([target.client_key, target.internal_key])
    config.stash[OWN_CONSOLE] = config.pluginmanager.is_blocked("terminal")
    if config.stash[OWN_CONSOLE]:
        # pytest's rendering of a failure is replaced (own_frames); the native style it makes
        # first parses no source, which can fail on a deep traceback.
        config.option.tbstyle = "native"
    config.stash[STARTED] = time.time()
    rate = config.getoption("sessionlab_rate", None)
    if rate is not None and rate <= 0:
        raise pytest.UsageError(
            f"--rate takes a positive number of requests per second, not {rate}"
        )
    run_state.reset(rate)
    hypothesis_dir = config.getoption("sessionlab_hypothesis_dir", None)
    if hypothesis_dir:
        # Imported here: plugins load before hypothesis's own, which pytest wants to rewrite.
        from hypothesis.configuration import set_hypothesis_home_dir

        set_hypothesis_home_dir(Path(hypothesis_dir))


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.getoption("sessionlab_hypothesis_dir", None):
        from hypothesis.configuration import set_hypothesis_home_dir

        set_hypothesis_home_dir(None)


def requirement_ids(item: pytest.Item) -> tuple[str, ...]:
    ids: list[str] = []
    for marker in item.iter_markers(MARKER):
        ids.extend(str(arg) for arg in marker.args)
    return tuple(dict.fromkeys(ids))


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    known = catalogue()
    for item in items:
        for requirement_id in requirement_ids(item):
            if requirement_id not in known:
                raise pytest.UsageError(f"{item.nodeid}: unknown requirement id {requirement_id!r}")
    # Checks of prerequisites first: when one fails, the checks that stand on it are blocked at
    # once instead of each failing (or timing out) the same way.
    # A check runs after the prerequisites of all its requirements: by its deepest one.
    items.sort(key=lambda item: max((_depth(i) for i in requirement_ids(item)), default=0))
    only = config.getoption("sessionlab_only")
    if not only:
        return
    unmatched = [prefix for prefix in only if not any(i.startswith(prefix) for i in known)]
    if unmatched:
        raise pytest.UsageError(f"--only {unmatched[0]!r} names no requirement")
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        ids = requirement_ids(item)
        chosen = any(i.startswith(prefix) for i in ids for prefix in only)
        (kept if chosen or not ids else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _deselection(config: pytest.Config) -> str:
    """How checks were left out of the run, as the user said it."""
    said = [
        f"{flag} {value}"
        for flag, value in (
            ("-k", config.getoption("keyword", "")),
            ("-m", config.getoption("markexpr", "")),
        )
        if value
    ]
    # Those left out by --only are told so by the verdict itself (verdicts.judge).
    return " and ".join(said) or "the selection of checks"


def pytest_deselected(items: list[pytest.Item]) -> None:
    if not items:
        return
    config = items[0].config
    if LEFT_OUT not in config.stash:
        return
    how = _deselection(config)
    for item in items:
        for requirement_id in requirement_ids(item):
            config.stash[LEFT_OUT].setdefault(requirement_id, how)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """A requirement that kept a check is judged by it, whatever else was deselected."""
    left_out = session.config.stash.get(LEFT_OUT, {})
    for item in session.items:
        for requirement_id in requirement_ids(item):
            left_out.pop(requirement_id, None)


def _depth(requirement_id: str) -> int:
    """How many prerequisites stand below a requirement, at most."""
    needs = catalogue()[requirement_id].needs
    return 1 + max((_depth(need) for need in needs), default=-1)


def _all_needs(requirement_id: str) -> set[str]:
    """Every prerequisite a requirement stands on, directly or through another."""
    needs = set(catalogue()[requirement_id].needs)
    for need in list(needs):
        needs |= _all_needs(need)
    return needs


def _checks_run(config: pytest.Config) -> bool:
    return bool(config.stash[RESULTS]) or STOPPED in config.stash


# Target and profiles


@dataclass(frozen=True, eq=False)
class ChosenTarget:
    """A plugin object: the target options a command was given and the target it built from them,
    handed to pytest in place of target options on its command line. The checks run against that
    target, so it is built once per run, and the command closes it if no check needed it."""

    options: TargetOptions
    runner: TargetRunner


def _chosen(config: pytest.Config) -> ChosenTarget | None:
    plugins = config.pluginmanager.get_plugins()
    return next((plugin for plugin in plugins if isinstance(plugin, ChosenTarget)), None)


def _runner(config: pytest.Config) -> TargetRunner:
    chosen = _chosen(config)
    if chosen is not None:
        return chosen.runner
    try:
        return TargetRunner(make_target(config.stash[TARGET_OPTIONS]))
    except TargetOptionError as exc:
        raise pytest.UsageError(str(exc)) from None


def selected_profiles(config: pytest.Config, claimed: frozenset[str]) -> frozenset[str]:
    chosen = config.getoption("sessionlab_profiles")
    return frozenset({"core", *(chosen or claimed)})


@pytest.fixture(scope="session")
def sessionlab_target(request: pytest.FixtureRequest) -> Iterator[TargetRunner]:
    runner = _runner(request.config)
    try:
        runner.start(timeout=120 * TIMEOUT_SCALE)
    except (TargetError, OSError, TimeoutError) as exc:
        runner.close()
        # Every check needs the target: one clear reason beats the same error under each check.
        reason = f"the target did not start: {secrecy.redact(str(exc))}"
        request.config.stash[STOPPED] = reason
        pytest.exit(reason, returncode=ExitCode.HARNESS_FAILED)
    request.config.stash[REPORT] = {"target": _describe(runner)}
    endpoints = runner.endpoints
    if endpoints is not None:
        secrecy.remember(
            [endpoints.client_key, endpoints.internal_key, *endpoints.user_tokens.values()]
        )
        request.config.stash[WHERE] = _where(request.config, endpoints)
        problem = preflight(endpoints, deadline(10))
        if problem is not None:
            runner.close()
            # A part missing or a key refused is the set-up's, not a requirement's failure: one
            # sentence, not the same connection error under every check.
            request.config.stash[STOPPED] = problem
            pytest.exit(problem, returncode=ExitCode.HARNESS_FAILED)
    yield runner
    keep = request.config.stash[TARGET_OPTIONS].keep_run
    if keep is not None:
        from conformance.keep_run import keep_logs

        keep_logs(runner, keep)
    runner.close()


def _where(config: pytest.Config, endpoints: Endpoints) -> Where:
    target = config.stash[TARGET_OPTIONS]
    # Keys by reference: a line to paste never holds one.
    by_reference = replace(
        target,
        client_key=target.client_key and f'"${CLIENT_KEY_VARIABLE}"',
        internal_key=target.internal_key and f'"${INTERNAL_KEY_VARIABLE}"',
    )
    options = by_reference.args(
        "target_file", "target_factory", "gateway_url", "runtime_url", "client_key", "internal_key"
    )
    for profile in config.getoption("sessionlab_profiles") or ():
        options += ["--profile", profile]
    report_path = config.getoption("sessionlab_report_path")
    if report_path is None:
        report_path = config.getoption("sessionlab_json")
    return Where(
        runtime_url=endpoints.runtime_url,
        has_user_tokens=bool(endpoints.user_tokens),
        verify_options=tuple(options),
        report_path=str(report_path) if report_path else None,
    )


def _describe(runner: TargetRunner) -> dict[str, Any]:
    endpoints = runner.endpoints
    return {
        "name": runner.name,
        "gateway_url": endpoints.gateway_url if endpoints else None,
        "runtime_url": endpoints.runtime_url if endpoints else None,
        "claimed_profiles": sorted(runner.profiles),
    }


@pytest.fixture(scope="session")
def profiles(request: pytest.FixtureRequest, sessionlab_target: TargetRunner) -> frozenset[str]:
    chosen = selected_profiles(request.config, sessionlab_target.profiles)
    request.config.stash[CHECKED] = chosen
    return chosen


def checked_profiles(config: pytest.Config) -> frozenset[str] | None:
    """The profiles this run checks, once the target has started; None before."""
    return config.stash.get(CHECKED, None)


@pytest.fixture(autouse=True)
def _requirement_gate(request: pytest.FixtureRequest) -> None:
    ids = requirement_ids(request.node)
    if not ids:
        return
    chosen = request.getfixturevalue("profiles")
    effective = {catalogue()[i].effective(chosen)[1] for i in ids}
    if not effective & chosen:
        missing = ", ".join(sorted(effective))
        pytest.skip(f"profile {missing} is not selected (checking {', '.join(sorted(chosen))})")
    run = run_state.state()
    for requirement_id in ids:
        for need in catalogue()[requirement_id].needs:
            if need not in ids:
                run.require(need)


PARTIAL = pytest.StashKey[list[str]]()
# How a check says it does not apply: the profile it belongs to is not checked.
NOT_SELECTED = re.compile(r"profiles? [\w, ]+ (is|are) not selected")


@pytest.fixture
def partial(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Say what a passing check did not check, and what would check it: the verdict is then
    `partial`, never a silent `passed`."""
    notes: list[str] = request.node.stash.setdefault(PARTIAL, [])
    return notes.append


# Per-check fixtures


def deadline(seconds: float) -> float:
    return seconds * TIMEOUT_SCALE


@pytest.fixture
def transcript(sessionlab_target: TargetRunner) -> Transcript:
    endpoints = sessionlab_target.endpoints
    record = Transcript()
    if endpoints is not None:
        record.add_secrets([endpoints.client_key, endpoints.internal_key])
        record.add_secrets(endpoints.user_tokens.values())
    return record


@pytest.fixture(scope="session")
def run_id() -> str:
    """Suffix for anything a check names, so reruns against one target never collide."""
    return secrets.token_hex(4)


def _headers(request: pytest.FixtureRequest, base: dict[str, str]) -> dict[str, str]:
    return {**base, TEST_HEADER: request.node.nodeid}


@pytest_asyncio.fixture
async def gateway(
    request: pytest.FixtureRequest, sessionlab_target: TargetRunner, transcript: Transcript
) -> AsyncIterator[httpx.AsyncClient]:
    endpoints = sessionlab_target.endpoints
    assert endpoints is not None
    headers = _headers(request, endpoints.client_headers())
    # Through a gateway whose runtime is checked on its own, a failed create is the gateway's.
    create = "G-PROXY-1" if endpoints.runtime_url else "R-CREATE-1"
    async with http_probe(
        endpoints.gateway_url,
        transcript,
        headers,
        deadline(15),
        "gateway",
        endpoints.internal_key,
        create,
    ) as client:
        yield client


@pytest_asyncio.fixture
async def runtime(
    request: pytest.FixtureRequest, sessionlab_target: TargetRunner, transcript: Transcript
) -> AsyncIterator[httpx.AsyncClient]:
    endpoints = sessionlab_target.endpoints
    assert endpoints is not None
    if endpoints.runtime_url is None:
        pytest.skip("no runtime URL given (--runtime-url or the target file)")
    headers = _headers(request, endpoints.runtime_headers())
    async with http_probe(
        endpoints.runtime_url, transcript, headers, deadline(15), "runtime", endpoints.internal_key
    ) as client:
        yield client


@pytest_asyncio.fixture
async def sessions_api(
    request: pytest.FixtureRequest, sessionlab_target: TargetRunner, transcript: Transcript
) -> AsyncIterator[httpx.AsyncClient]:
    """The runtime when its URL is known, else the gateway that proxies it: for R- checks that
    hold through either."""
    endpoints = sessionlab_target.endpoints
    assert endpoints is not None
    party: Party
    if endpoints.runtime_url is not None:
        url, base, party = endpoints.runtime_url, endpoints.runtime_headers(), "runtime"
    else:
        url, base, party = endpoints.gateway_url, endpoints.client_headers(), "gateway"
        transcript.note("no runtime URL: checking the runtime's API through the gateway")
    async with http_probe(
        url, transcript, _headers(request, base), deadline(15), party, endpoints.internal_key
    ) as client:
        yield client


class SocketOpener(Protocol):
    def __call__(
        self,
        session_id: str,
        *,
        as_user: str | None = None,
        token: str | None = None,
        token_in_query: bool = False,
    ) -> AbstractAsyncContextManager[Socket]: ...


@pytest.fixture
def open_ws(sessionlab_target: TargetRunner, transcript: Transcript) -> SocketOpener:
    endpoints = sessionlab_target.endpoints
    assert endpoints is not None
    turn = deadline(sessionlab_target.turn_timeout)

    @asynccontextmanager
    async def opened(
        session_id: str,
        *,
        as_user: str | None = None,
        token: str | None = None,
        token_in_query: bool = False,
    ) -> AsyncIterator[Socket]:
        """A socket for a session the check made: the prerequisite W-CONN-1.

        With `as_user` (a user the target names), or `token` (the check's own: a wrong one, or ""
        for none), it is that user's socket instead: whether it opens is what the check judges, so
        a refusal raises SocketRefused. `token_in_query` sends the token as ?token= alone.
        """
        run = run_state.state()
        for_user = as_user is not None or token is not None
        if not for_user:
            run.require("W-CONN-1")
        bearer = endpoints.user_tokens[as_user] if as_user is not None else token
        headers = endpoints.socket_headers()
        query = ""
        if for_user:
            headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        if token_in_query and bearer:
            headers, query = {}, f"?token={quote(bearer, safe='')}"
        what = f"a WebSocket on /ws/{session_id} for a created session"
        async with AsyncExitStack() as stack:
            try:
                socket = await stack.enter_async_context(
                    open_socket(
                        endpoints.ws_url,
                        session_id,
                        transcript,
                        turn,
                        headers,
                        endpoints.internal_key,
                        query,
                    )
                )
            except (InvalidHandshake, TimeoutError, OSError) as exc:
                received = describe_refusal(exc, endpoints.ws_url, turn)
                if for_user:
                    raise SocketRefused(received) from exc
                raise run.prerequisite_failed("W-CONN-1", what, received) from None
            yield socket

    return opened


@pytest.fixture(scope="session")
def deep(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("sessionlab_deep"))


# Outcomes


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_runtest_setup(item: pytest.Item) -> None:
    run_state.state().current_check = item.nodeid


def _record(results: dict[str, CheckResult], result: CheckResult) -> None:
    previous = results.get(result.nodeid)
    # A failure or error in one phase stands, whatever a later phase (tear-down) says.
    if previous is None or previous.outcome not in ("failed", "error", "blocked"):
        results[result.nodeid] = result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed and call.excinfo is not None and item.config.stash.get(OWN_CONSOLE, False):
        report.longrepr = own_frames(call.excinfo.value)
    _redact_report(report)
    ids = requirement_ids(item)
    if not ids:
        return report
    results = item.config.stash[RESULTS]
    transcript = getattr(item, "funcargs", {}).get("transcript")
    kept = transcript if isinstance(transcript, Transcript) else None
    error = call.excinfo.value if call.excinfo is not None else None
    if report.skipped and not isinstance(error, run_state.Blocked):
        # A check of several requirements that skips leaves each to its own checks; a check
        # that does not apply to the selected profiles leaves nothing unchecked: neither makes a
        # requirement whose other checks passed `partial`.
        reason = _skip_reason(report)
        applies = not NOT_SELECTED.match(reason)
        outcome: Outcome = "skipped" if len(ids) == 1 and applies else "unjudged"
        _record(results, CheckResult(item.nodeid, ids, outcome, reason))
        return report
    if error is None and report.when != "call":
        return report
    verdict = classify(error, ids)
    if verdict.kind == "blocked" and len(ids) > 1 and verdict.blocked_by:
        standing = tuple(i for i in ids if verdict.blocked_by in _all_needs(i)) or ids
        verdict = replace(verdict, blamed=standing)
    if verdict.kind == "failed" and report.when != "call":
        # Only the check's own body can fail the target; set-up and tear-down are sessionlab's.
        verdict = classify(RuntimeError(verdict.message), ids)
    if (
        isinstance(error, CheckFailure)
        and not isinstance(error, PrerequisiteFailure)
        and verdict.kind == "blocked"
    ):
        run_state.state().found(error.requirement, str(error).splitlines()[0])
    outcome = verdict.kind
    message = verdict.message
    notes = item.stash.get(PARTIAL, [])
    if outcome == "passed" and notes:
        outcome, message = "partial", "; ".join(dict.fromkeys(notes))
    if kept is not None and verdict.traceback:
        kept.note(kept.redact(verdict.traceback))
    # A kept run (--keep-run) keeps every check's exchange; otherwise the report carries those
    # of the failures only, which is what a reader looks for.
    keep_all = item.config.stash[TARGET_OPTIONS].keep_run is not None
    wire = kept.as_list() if kept and (keep_all or outcome in ("failed", "error")) else []
    result = CheckResult(
        nodeid=item.nodeid,
        requirement_ids=verdict.blamed,
        outcome=outcome,
        message=message,
        duration=report.duration,
        transcript=wire,
        blocked_by=verdict.blocked_by if outcome == "blocked" else None,
    )
    if outcome == "failed":
        failure = error if isinstance(error, CheckFailure) and error.requirement in ids else None
        result = _with_parts(item.config, result, failure, wire)
    _record(results, result)
    waiting = tuple(i for i in ids if i not in verdict.blamed)
    if waiting:
        # A check of several requirements stopped early: its other requirements were not seen
        # through by it. They stay unjudged by this check (their own checks judge them).
        results[f"{item.nodeid} (unjudged)"] = CheckResult(
            nodeid=item.nodeid,
            requirement_ids=waiting,
            outcome="unjudged",
            message=f"not judged: the check stopped at {verdict.blamed[0]}: {message}",
        )
    own = set(verdict.blamed) if outcome == "failed" else set()
    for number, finding in enumerate(run_state.state().take_findings()):
        if finding.requirement in own:
            continue
        seen = kept.as_list() if kept else []
        results[f"{item.nodeid} (found {number})"] = _with_parts(
            item.config,
            CheckResult(
                nodeid=f"{item.nodeid} (seen while checking {', '.join(ids)})",
                requirement_ids=(finding.requirement,),
                outcome="failed",
                message=finding.message,
                transcript=seen,
            ),
            None,
            seen,
        )
    if outcome == "blocked":
        # To pytest a blocked check is skipped: it did not run to judge anything.
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, message)
    return report


# Frames that say nothing about the target or the check: the test runner's and the event loop's.
NOISE = ("_pytest", "pluggy", "pytest_asyncio", "asyncio", "hypothesis")


def own_frames(exc: BaseException) -> str:
    """The traceback of a failure through the check's code and sessionlab's only."""
    shown = traceback.TracebackException.from_exception(exc)
    pending = [shown]
    while pending:
        each = pending.pop()
        frames = [f for f in each.stack if not _noise(f.filename)]
        each.stack = traceback.StackSummary.from_list(frames or list(each.stack))
        pending += [e for e in (each.__cause__, each.__context__) if e is not None]
        pending += list(each.exceptions or [])
    return "".join(shown.format())


def _noise(filename: str) -> bool:
    parts = Path(filename).parts
    return any(part in NOISE for part in parts)


def _redact_report(report: pytest.TestReport) -> None:
    """pytest's own rendering of a failure (its traceback, captured output and logs) never shows
    a key: a check's arguments are in the traceback, a target may log its key."""
    if not secrecy.known():
        return
    if report.longrepr is not None:
        text = str(report.longrepr)
        if secrecy.redact(text) != text:
            report.longrepr = secrecy.redact(text)
    report.sections = [(name, secrecy.redact(content)) for name, content in report.sections]


def _with_parts(
    config: pytest.Config,
    result: CheckResult,
    failure: CheckFailure | None,
    wire: list[dict[str, Any]],
) -> CheckResult:
    """A failure's expected, received and reproduce line, for the console and the JSON."""
    where = config.stash.get(WHERE, Where())
    requirement_id = failure.requirement if failure else result.requirement_ids[0]
    return replace(
        result,
        expected=failure.expected if failure else None,
        received=failure.received if failure else result.message,
        reproduce=reproduce_line(wire, where, requirement_id)
        or (failure.reproduce if failure else None),
        replay=replay_line(wire, requirement_id, where),
    )


def build_report(config: pytest.Config, target: dict[str, Any] | None) -> dict[str, Any]:
    claimed = frozenset((target or {}).get("claimed_profiles", ["core"]))
    chosen = selected_profiles(config, claimed)
    stopped = config.stash.get(STOPPED, None)
    verdicts = judge_all(
        config.stash[RESULTS].values(),
        chosen,
        only=config.getoption("sessionlab_only"),
        unjudged=NO_CHECK if stopped is None else f"not judged: {stopped}",
        left_out=config.stash.get(LEFT_OUT, {}),
    )
    baseline_path = config.getoption("sessionlab_baseline")
    if baseline_path:
        verdicts = apply_baseline(verdicts, load_baseline(Path(baseline_path)))
    requirements = [verdict.entry() for verdict in verdicts]
    report = VerifyReport(
        sessionlab=__version__,
        target=None if target is None else TargetInfo.model_validate(target),
        profiles=sorted(chosen),
        started_at=config.stash[STARTED],
        stopped=stopped,
        duration=round(time.time() - config.stash[STARTED], 3),
        conforms=conforms(verdicts),
        summary=summary(verdicts),
        rate_limited=_rate_limited(),
        causes=[] if stopped else _causes(requirements),
        requirements=requirements,
    )
    # The last pass: whatever a check or a target put in a message, no key leaves the run.
    return secrecy.redact_data(report.document())


def _causes(requirements: list[RequirementVerdict]) -> list[SharedCause]:
    shared = shared_causes([requirement.model_dump(mode="json") for requirement in requirements])
    return [SharedCause.model_validate(cause) for cause in shared]


def _rate_limited() -> RateLimited | None:
    pacing = run_state.state().pacing
    if not pacing.limited:
        return None
    return RateLimited(
        responses_429=pacing.limited,
        waited=round(pacing.waited, 1),
        final_rate=round(pacing.rate or 0, 2),
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not _checks_run(config):
        return
    report = build_report(config, config.stash.get(REPORT, {}).get("target"))
    config.stash[REPORT] = report
    path = config.getoption("sessionlab_json")
    if path:
        text = secrecy.redact(render_json(report))
        Path(path).write_text(text, encoding="utf-8", errors="backslashreplace")
    if session.exitstatus in _JUDGED:
        # The exit status is the verdict's, as under `sessionlab verify`: requirements left out
        # by -k are not selected, a failed SHOULD is a warning, a known failure does not fail.
        session.exitstatus = exit_status(judged_in(report))


# pytest's statuses after which the checks ran and the verdict stands (not a usage error, not an
# interruption, not an internal error).
_JUDGED = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    report = config.stash.get(REPORT, None)
    if not report or "requirements" not in report:
        return
    from conformance.reports.console import render_console

    verbose = config.getoption("verbose", 0) > 0
    terminalreporter.write_line("")
    for line in secrecy.redact(render_console(report, verbose=verbose)).splitlines():
        terminalreporter.write_line(line)


__all__ = ["CLIENT_PROFILE", "deadline"]

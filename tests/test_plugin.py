"""The conformance plugin itself, run through pytester on small check files."""

import json

import pytest

pytest_plugins = ["pytester"]

FACTORY = """
from conformance.targets.reference_target import ReferenceTarget

def core_only():
    return ReferenceTarget(profiles=frozenset({"core"}))
"""


@pytest.fixture
def checks(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.syspathinsert()
    pytester.makepyfile(factory=FACTORY)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, object]]:
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "--target-factory", "factory:core_only", "--sessionlab-json", str(report), *args
    )
    return result, json.loads(report.read_text()) if report.exists() else {}


def verdict(report: dict[str, object], requirement_id: str) -> dict[str, object]:
    requirements = report["requirements"]
    assert isinstance(requirements, list)
    return next(r for r in requirements if r["id"] == requirement_id)


def test_an_unknown_requirement_id_is_a_usage_error(checks: pytest.Pytester) -> None:
    checks.makepyfile(
        test_x="""
import pytest

@pytest.mark.req("R-NOPE-9")
def test_it():
    pass
"""
    )
    result, _ = run(checks)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown requirement id 'R-NOPE-9'*"])


def test_checks_of_an_unclaimed_profile_are_skipped_with_the_reason(
    checks: pytest.Pytester,
) -> None:
    checks.makepyfile(
        test_x="""
import pytest

@pytest.mark.req("W-TOOL-1")
def test_scripted():
    raise AssertionError("must not run")

@pytest.mark.req("R-HEALTH-1")
def test_core():
    pass
"""
    )
    result, report = run(checks)
    result.assert_outcomes(passed=1, skipped=1)
    assert verdict(report, "W-TOOL-1")["status"] == "skipped"
    assert verdict(report, "R-HEALTH-1")["status"] == "passed"


def test_a_check_failure_reaches_the_report_with_its_transcript(checks: pytest.Pytester) -> None:
    checks.makepyfile(
        test_x="""
import pytest
from conformance.failures import Expect

pytestmark = pytest.mark.asyncio

@pytest.mark.req("R-LIST-1")
async def test_list(gateway):
    response = await gateway.get("/sessions")
    Expect("R-LIST-1").that(response.status_code == 418, "a teapot", response.status_code)
"""
    )
    result, report = run(checks, "--only", "R-LIST")
    result.assert_outcomes(failed=1)
    listed = verdict(report, "R-LIST-1")
    assert listed["status"] == "failed"
    assert listed["message"] == "R-LIST-1 failed: expected a teapot, received 200"
    check = listed["checks"][0]  # type: ignore[index]
    kinds = [entry["kind"] for entry in check["transcript"]]
    assert kinds == ["http-request", "http-response"]
    assert report["conforms"] is False


def test_only_deselects_other_requirements(checks: pytest.Pytester) -> None:
    checks.makepyfile(
        test_x="""
import pytest

@pytest.mark.req("R-LIST-1")
def test_list():
    pass

@pytest.mark.req("R-HIST-1")
def test_history():
    pass
"""
    )
    result, report = run(checks, "--only", "R-HIST")
    result.assert_outcomes(passed=1, deselected=1)
    assert verdict(report, "R-LIST-1")["status"] == "skipped"
    assert verdict(report, "R-HIST-1")["status"] == "passed"


def test_a_target_that_does_not_start_is_a_harness_error(checks: pytest.Pytester) -> None:
    checks.makepyfile(
        broken_factory="""
from conformance.targets.reference_target import ReferenceTarget
from conformance.targets import TargetError

class NeverStarts(ReferenceTarget):
    async def start(self):
        raise TargetError("port 1 never opened")

def make():
    return NeverStarts()
""",
        test_x="""
import pytest

@pytest.mark.req("R-HEALTH-1")
def test_core(sessionlab_target):
    pass

@pytest.mark.req("R-LIST-1")
def test_list(sessionlab_target):
    pass
""",
    )
    report_path = checks.path / "report.json"
    result = checks.runpytest_subprocess(
        "--target-factory", "broken_factory:make", "--sessionlab-json", str(report_path)
    )
    # The run stops at the first check: one reason, not the same error under every check.
    assert result.ret == 3
    result.assert_outcomes()
    result.stdout.fnmatch_lines(["*the target did not start: port 1 never opened*"])
    report = json.loads(report_path.read_text())
    assert report["stopped"] == "the target did not start: port 1 never opened"
    for requirement_id in ("R-HEALTH-1", "R-LIST-1"):
        judged = verdict(report, requirement_id)
        assert judged["status"] == "error"
        assert judged["message"] == "not judged: the target did not start: port 1 never opened"


def test_an_exception_in_a_checks_own_code_is_sessionlabs_error(checks: pytest.Pytester) -> None:
    checks.makepyfile(
        test_x="""
import pytest

pytestmark = pytest.mark.asyncio

@pytest.mark.req("R-LIST-1")
async def test_list(gateway):
    body = (await gateway.get("/sessions")).json()
    body["no such field"]
"""
    )
    _, report = run(checks, "--only", "R-LIST")
    listed = verdict(report, "R-LIST-1")
    assert listed["status"] == "error"
    said = str(listed["message"])
    assert said.startswith("sessionlab's own error, not the target's: KeyError")
    assert "test_x.py" in said
    assert "please report it" in said
    check = listed["checks"][0]  # type: ignore[index]
    assert check["outcome"] == "error"
    assert "Traceback" in check["transcript"][-1]["text"]
    assert report["conforms"] is False


def test_a_check_that_leaves_part_unchecked_is_partial_everywhere(
    checks: pytest.Pytester,
) -> None:
    checks.makepyfile(
        test_x="""
import pytest

pytestmark = pytest.mark.asyncio

@pytest.mark.req("R-LIST-1")
async def test_list(gateway, partial):
    assert (await gateway.get("/sessions")).status_code == 200
    partial("the order was not checked: no second session")
"""
    )
    _, report = run(checks, "--only", "R-LIST")
    listed = verdict(report, "R-LIST-1")
    assert listed["status"] == "partial"
    assert listed["message"] == "the order was not checked: no second session"
    assert report["conforms"] is True
    from conformance.reports.console import render_console
    from conformance.reports.html import render_html
    from conformance.reports.junit import render_junit

    assert "part MUST   R-LIST-1" in render_console(report)
    assert "partial: the order was not checked" in render_junit(report)
    assert "status-partial" in render_html(report)


def test_a_prerequisite_that_failed_blocks_the_checks_standing_on_it(
    checks: pytest.Pytester,
) -> None:
    checks.makepyfile(
        test_x="""
import pytest
from conformance.run_state import state

pytestmark = pytest.mark.asyncio

@pytest.mark.req("W-TURN-1")
async def test_turn(gateway):
    raise state().prerequisite_failed("W-TURN-1", "a turn that ends", "silence")

@pytest.mark.req("W-ISO-1")
async def test_isolation(gateway):
    raise AssertionError("never reached: blocked before it runs")
"""
    )
    result, report = run(checks, "--only", "W-")
    assert verdict(report, "W-TURN-1")["status"] == "failed"
    isolated = verdict(report, "W-ISO-1")
    assert isolated["status"] == "blocked"
    assert isolated["blocked_by"] == ["W-TURN-1"]
    assert str(isolated["message"]).startswith(
        "blocked by W-TURN-1: W-TURN-1 failed: expected a turn that ends, received silence"
    )
    assert result.ret == 1


def test_plain_pytest_k_leaves_requirements_not_selected_and_the_exit_status_agrees(
    checks: pytest.Pytester,
) -> None:
    """`pytest --pyargs conformance.checks -k health`: what -k left out is not selected (as with
    --only), not an error, and the verdict printed is the exit status."""
    result, report = run(
        checks, "--pyargs", "conformance.checks", "-k", "health", "-p", "no:cacheprovider"
    )
    assert verdict(report, "R-HEALTH-1")["status"] == "passed"
    listed = verdict(report, "R-LIST-1")
    assert listed["status"] == "skipped"
    assert listed["message"] == "not selected by -k health"
    assert not [r["id"] for r in report["requirements"] if r["status"] == "error"]  # type: ignore[union-attr]
    assert report["conforms"] is True
    result.stdout.fnmatch_lines(["left out by -k health: * requirements", "*", "CONFORMS"])
    assert "DOES NOT CONFORM" not in result.stdout.str()
    assert result.ret == 0


def test_under_plain_pytest_the_exit_status_is_the_verdicts(checks: pytest.Pytester) -> None:
    """A failed SHOULD is a warning: pytest counts a failed test, the verdict conforms, and so
    does the exit status; a failed MUST does not conform, with exit status 1."""
    checks.makepyfile(
        test_x="""
import pytest
from conformance.failures import Expect

@pytest.mark.req("R-HEALTH-1")
def test_health():
    pass

@pytest.mark.req("R-CREATE-2")
def test_should():
    Expect("R-CREATE-2").fail("a SHOULD that passes", "a failure")

@pytest.mark.req("R-LIST-1")
def test_must():
    Expect("R-LIST-1").fail("a MUST that passes", "a failure")
"""
    )
    only = ("--only", "R-HEALTH-1", "--only", "R-CREATE-2", "--only", "R-LIST-1")
    warned, report = run(checks, *only, "-k", "not must")
    assert verdict(report, "R-CREATE-2")["status"] == "warning"
    assert verdict(report, "R-LIST-1")["message"] == "not selected by -k not must"
    warned.stdout.fnmatch_lines(["CONFORMS"])
    assert warned.ret == 0
    failed, report = run(checks, *only)
    assert verdict(report, "R-LIST-1")["status"] == "failed"
    failed.stdout.fnmatch_lines(["DOES NOT CONFORM"])
    assert failed.ret == 1

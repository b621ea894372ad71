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

"""The machinery of the property and model checks: budgets and `--deep`, the seed, what the
strategies generate, and how the plugin judges a check of several requirements."""

import json
from pathlib import Path

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from conformance.checks import generation, test_properties, test_session_model
from conformance.checks.generation import (
    Budget,
    is_directive,
    malformed_frames,
    message_contents,
    not_json_texts,
    parses_as_json,
    path_segment,
    session_ids,
    shown,
    stream_bodies,
)
from conformance.verify import VerifyOptions
from contract.bodies import StreamRequest
from contract.frames import FrameError, parse_client_frame

pytest_plugins = ["pytester"]

# The strategies' own tests: few examples, nothing kept on disk.
QUICK = settings(max_examples=60, database=None, deadline=None)


def test_deep_raises_the_examples_and_steps_and_nothing_is_written() -> None:
    budget = Budget(examples=10, deep_examples=200, steps=5, deep_steps=20)
    quick, deep = budget.settings(deep=False), budget.settings(deep=True)
    assert (quick.max_examples, deep.max_examples) == (10, 200)
    assert (quick.stateful_step_count, deep.stateful_step_count) == (5, 20)
    for chosen in (quick, deep):
        assert chosen.database is None
        assert chosen.deadline is None
        assert chosen.derandomize is False
        assert chosen.report_multiple_bugs is False
        assert Phase.explain not in chosen.phases
        assert Phase.reuse not in chosen.phases


@pytest.mark.parametrize(
    "budget",
    [
        test_properties.IDS,
        test_properties.CONTENTS,
        test_properties.FRAMES,
        test_properties.BODIES,
        test_session_model.MODEL,
        test_session_model.WITH_RESTARTS,
    ],
)
def test_the_shipped_budgets_are_small_by_default_and_large_with_deep(budget: Budget) -> None:
    assert budget.examples <= 40
    assert budget.deep_examples >= 4 * budget.examples
    assert budget.step_count(deep=True) >= budget.step_count(deep=False)


def test_property_checks_get_hundreds_of_examples_with_deep() -> None:
    for budget in (test_properties.IDS, test_properties.CONTENTS, test_properties.BODIES):
        assert budget.max_examples(deep=True) >= 300


def test_verify_passes_deep_on_to_the_checks() -> None:
    args = VerifyOptions(deep=True).pytest_args(Path("report.json"))
    assert "--deep" in args
    assert "--deep" not in VerifyOptions().pytest_args(Path("report.json"))


def test_the_seed_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    generation.run_seed.cache_clear()
    try:
        monkeypatch.setenv("SESSIONLAB_SEED", "1234")
        assert generation.run_seed() == 1234
        generation.run_seed.cache_clear()
        monkeypatch.setenv("SESSIONLAB_SEED", "soon")
        with pytest.raises(ValueError, match="SESSIONLAB_SEED must be an integer"):
            generation.run_seed()
    finally:
        generation.run_seed.cache_clear()


def test_values_are_shown_readably() -> None:
    assert shown("\x80é") == '"\\u0080é"'
    assert shown(["\u200b"]) == '["\\u200b"]'
    assert shown("x" * 100, limit=10) == '"xxxxxxxxx… (100 characters)'
    assert path_segment("a/b é") == "a%2Fb%20%C3%A9"
    assert path_segment("..") == "%2E%2E"


@QUICK
@given(malformed_frames())
def test_every_malformed_frame_is_refused_by_the_contract(frame: object) -> None:
    with pytest.raises(FrameError):
        parse_client_frame(json.dumps(frame))


@QUICK
@given(not_json_texts())
def test_text_that_is_not_json_is_never_json(text: str) -> None:
    assert not parses_as_json(text)


@QUICK
@given(st.data())
def test_every_generated_stream_body_is_an_invalid_request(data: st.DataObject) -> None:
    body = data.draw(stream_bodies("session_0123456789abcdef"))
    with pytest.raises((ValidationError, ValueError)):
        StreamRequest.model_validate_json(body)


@QUICK
@given(message_contents())
def test_contents_are_no_directive_and_at_most_64_kib(content: str) -> None:
    assert not is_directive(content)
    assert len(content.encode()) <= 64 * 1024 + 32


@QUICK
@given(session_ids())
def test_generated_ids_are_one_path_segment_of_at_most_1000_characters(session_id: str) -> None:
    assert 1 <= len(session_id) <= 1000
    assert "/" not in path_segment(session_id)


FACTORY = """
from conformance.targets.reference_target import ReferenceTarget

def core_only():
    return ReferenceTarget(profiles=frozenset({"core"}))
"""

COUNTING = """
import pytest
from hypothesis import strategies as st

from conformance.checks.generation import Budget, for_all
from conformance.transcript import Transcript

pytestmark = pytest.mark.asyncio

async def test_count(deep, tmp_path_factory):
    seen = []

    async def check(value):
        seen.append(value)

    await for_all(
        st.integers(), check, budget=Budget(examples=5, deep_examples=40), deep=deep,
        transcript=Transcript(), timeout=10,
    )
    print(f"EXAMPLES={len(seen)}")
"""


@pytest.fixture
def checks(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.syspathinsert()
    pytester.makepyfile(factory=FACTORY)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


@pytest.mark.parametrize(("flags", "examples"), [((), 5), (("--deep",), 40)])
def test_deep_reaches_the_generated_checks(
    checks: pytest.Pytester, flags: tuple[str, ...], examples: int
) -> None:
    checks.makepyfile(test_counting=COUNTING)
    result = checks.runpytest_subprocess("-s", "-p", "no:cacheprovider", *flags)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*EXAMPLES={examples}*"])


def test_a_failing_generated_check_shows_the_shrunk_example_and_the_seed(
    checks: pytest.Pytester,
) -> None:
    checks.makepyfile(
        test_shrinks="""
import pytest
from hypothesis import strategies as st

from conformance.checks.generation import Budget, for_all
from conformance.failures import Expect
from conformance.transcript import Transcript

pytestmark = pytest.mark.asyncio

async def test_small_numbers(deep):
    async def check(value):
        Expect("R-LIST-1").that(value < 1000, "a number under 1000", value)

    await for_all(
        st.integers(min_value=0), check, budget=Budget(examples=200, deep_examples=200),
        deep=deep, transcript=Transcript(), timeout=10,
    )
"""
    )
    result = checks.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*R-LIST-1 failed: expected a number under 1000, received 1000*",
            "*replay this run's examples with SESSIONLAB_SEED=*",
        ]
    )


def test_a_check_of_several_requirements_fails_only_the_one_its_failure_names(
    checks: pytest.Pytester,
) -> None:
    checks.makepyfile(
        test_model="""
import pytest
from conformance.failures import Expect

@pytest.mark.req("R-LIST-1", "R-HIST-1")
def test_model():
    Expect("R-HIST-1").fail("a history", "none")

@pytest.mark.req("R-AGENTS-1", "R-AGENTS-2")
def test_other():
    raise RuntimeError("no requirement named")
"""
    )
    report_path = checks.path / "report.json"
    result = checks.runpytest_subprocess(
        "--target-factory", "factory:core_only", "--sessionlab-json", str(report_path)
    )
    result.assert_outcomes(failed=2)
    report = json.loads(report_path.read_text())
    status = {r["id"]: (r["status"], r["message"]) for r in report["requirements"]}
    assert status["R-HIST-1"] == ("failed", "R-HIST-1 failed: expected a history, received none")
    assert status["R-LIST-1"] == (
        "skipped",
        "not judged: the check stopped at R-HIST-1: R-HIST-1 failed: expected a history, "
        "received none",
    )
    # An exception of the check's own code is sessionlab's error, for all its requirements.
    assert status["R-AGENTS-1"][0] == status["R-AGENTS-2"][0] == "error"

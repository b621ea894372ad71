"""From check outcomes to per-requirement verdicts, the exit contract, and baselines."""

from pathlib import Path

import pytest

from conformance.baseline import BaselineError, load_baseline
from conformance.verdicts import (
    Baseline,
    CheckResult,
    apply_baseline,
    conforms,
    judge,
    judge_all,
)
from contract.requirements import requirement

CORE = frozenset({"core"})
STRICT = frozenset({"core", "strict"})


def result(outcome: str, *ids: str, message: str = "") -> CheckResult:
    return CheckResult(
        nodeid=f"check::{outcome}", requirement_ids=ids, outcome=outcome, message=message
    )  # type: ignore[arg-type]


def test_a_failed_must_check_fails_its_requirement() -> None:
    checks = [result("passed", "R-LIST-1"), result("failed", "R-LIST-1", message="boom")]
    verdict = judge(requirement("R-LIST-1"), CORE, checks)
    assert (verdict.status, verdict.message) == ("failed", "boom")


def test_a_failed_should_check_is_a_warning() -> None:
    verdict = judge(requirement("R-CREATE-2"), CORE, [result("failed", "R-CREATE-2", message="x")])
    assert verdict.status == "warning"


def test_all_checks_skipped_is_a_skip_with_their_reasons() -> None:
    checks = [
        result("skipped", "G-DOWN-1", message="no control"),
        result("skipped", "G-DOWN-1", message="no control"),
    ]
    verdict = judge(requirement("G-DOWN-1"), CORE, checks)
    assert (verdict.status, verdict.message) == ("skipped", "no control")


def test_a_requirement_no_check_covers_is_an_error_not_a_pass() -> None:
    assert judge(requirement("W-ISO-1"), CORE, []).status == "error"


def test_a_profile_not_selected_is_skipped_whatever_ran() -> None:
    verdict = judge(requirement("W-TOOL-1"), CORE, [result("failed", "W-TOOL-1")])
    assert verdict.status == "skipped"


def test_strict_raises_a_may_to_a_must() -> None:
    checks = [result("failed", "W-CONN-2")]
    assert judge(requirement("W-CONN-2"), CORE, checks).status == "warning"
    assert judge(requirement("W-CONN-2"), STRICT, checks).status == "failed"


def test_harness_errors_are_kept_apart_from_failures() -> None:
    assert judge(requirement("R-LIST-1"), CORE, [result("error", "R-LIST-1")]).status == "error"


def test_a_run_that_passed_nothing_does_not_conform() -> None:
    verdicts = judge_all([result("skipped", "R-LIST-1", message="no")], CORE, only=["R-LIST"])
    assert {v.status for v in verdicts} == {"skipped"}
    assert not conforms(verdicts)


def test_a_known_failure_no_longer_fails_the_run() -> None:
    verdicts = judge_all(
        [result("failed", "R-LIST-1"), result("passed", "R-HIST-1")],
        CORE,
        only=["R-LIST", "R-HIST-1"],
    )
    assert not conforms(verdicts)
    verdicts = apply_baseline(verdicts, Baseline(known_failures=frozenset({"R-LIST-1"})))
    assert conforms(verdicts)
    assert [v.known_failure for v in verdicts if v.id == "R-LIST-1"] == [True]


def test_a_known_failure_that_passes_is_an_error_so_the_list_shrinks() -> None:
    verdicts = judge_all([result("passed", "R-LIST-1")], CORE, only=["R-LIST"])
    verdicts = apply_baseline(verdicts, Baseline(known_failures=frozenset({"R-LIST-1"})))
    listed = next(v for v in verdicts if v.id == "R-LIST-1")
    assert listed.status == "error"
    assert "remove it from the baseline" in listed.message
    assert not conforms(verdicts)


def test_a_flaky_failure_is_a_warning() -> None:
    verdicts = judge_all([result("failed", "R-LIST-1", message="m")], CORE, only=["R-LIST"])
    verdicts = apply_baseline(verdicts, Baseline(flaky=frozenset({"R-LIST-1"})))
    listed = next(v for v in verdicts if v.id == "R-LIST-1")
    assert (listed.status, listed.message) == ("warning", "flaky (baseline): m")


def test_baseline_file_is_validated(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("known_failures: [R-LIST-1]\nflaky: [R-AUTH-2]\n")
    assert load_baseline(good) == Baseline(frozenset({"R-LIST-1"}), frozenset({"R-AUTH-2"}))
    bad = tmp_path / "bad.yaml"
    bad.write_text("known_failures: [R-NOPE-1]\n")
    with pytest.raises(BaselineError, match="unknown requirement id 'R-NOPE-1'"):
        load_baseline(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("known_failure: [R-LIST-1]\n")
    with pytest.raises(BaselineError, match="known_failure: Extra inputs are not permitted"):
        load_baseline(typo)

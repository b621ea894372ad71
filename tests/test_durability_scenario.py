"""The `durability` scenario action: a plan runs many IDEs under a schedule it gives in full, and
the step fails with the checker's report when anything acknowledged is lost."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.target_runner import TargetRunner
from scenarios.loader import ScenarioError, load_scenario
from scenarios.model import Scenario
from scenarios.session import run_plans
from tests.broken.durability_breaks import acks_before_committing, intact
from tests.fixtures.stack import deadline

# Two runtime restarts and a cut, given in full: what a plan writes to replay a schedule.
SCHEDULE = """\
  - durability:
      ides: 6
      faults:
        - {at: 1.0, fault: restart}
        - {at: 2.0, fault: cut@ide}
        - {at: 2.5, fault: restart}
    within: 90
"""


def _plan(tmp_path: Path, steps: str) -> Scenario:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "id: durability-probe\ntitle: probe\nprofiles: [core]\nneeds: [runtime-control]\n"
        f"steps:\n{steps}"
    )
    return load_scenario(path)


@pytest.fixture
def reference() -> Iterator[TargetRunner]:
    runner = TargetRunner(intact())
    runner.start(timeout=deadline(60))
    yield runner
    runner.close()


@pytest.fixture
def committing_late() -> Iterator[TargetRunner]:
    runner = TargetRunner(acks_before_committing())
    runner.start(timeout=deadline(60))
    yield runner
    runner.close()


async def test_a_plan_runs_a_workload_under_its_schedule_and_passes_on_the_reference(
    tmp_path: Path, reference: TargetRunner
) -> None:
    (result,) = await run_plans([_plan(tmp_path, SCHEDULE)], reference)
    assert result.status == "passed", result.render()


async def test_the_step_fails_with_the_anomalies_of_a_runtime_that_acks_before_committing(
    tmp_path: Path, committing_late: TargetRunner
) -> None:
    (result,) = await run_plans([_plan(tmp_path, SCHEDULE)], committing_late)
    assert result.status == "failed", result.render()
    failed = result.failed_step
    assert failed is not None
    assert "durability: FAILED" in failed.message
    assert "LOST: acknowledged turn" in failed.message


def test_an_unknown_fault_in_a_plan_is_refused_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"plan.yaml:\d+: .*unknown fault 'melt'"):
        _plan(tmp_path, "  - durability: {faults: [{at: 1, fault: melt}]}\n")

"""The hostile-input checks prove themselves: against servers that each break one requirement of
R-ROB-, G-ROB- and W-ROB-, exactly that requirement fails (a SHOULD as a warning); the reference
and the independent implementation pass them."""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.broken.harness import collateral, message, not_passing, statuses, verify, verify_target

FACTORY = "tests.broken.robustness_breaks:"
FAMILIES = ("R-ROB", "G-ROB", "W-ROB")
ALTERNATIVE = ("--target", "tests/fixtures/alternative/alternative.yaml", "--profile", "strict")

# Each run is bounded by --only: its own requirement, and G-ROB-1, which every break leaves whole.
CASES = [
    ("runtime_500_on_deep_bodies", {"R-ROB-1": "failed"}, "500"),
    ("gateway_500_on_deep_bodies", {"G-ROB-1": "failed"}, "500"),
    ("gateway_dies_on_deep_frames", {"W-ROB-1": "failed"}, "close 1006"),
    ("gateway_stalls_on_big_frames", {"W-ROB-2": "failed"}, "GET /health"),
    ("gateway_starved_by_slow_heads", {"G-ROB-2": "failed"}, "503"),
    ("gateway_without_head_deadline", {"G-ROB-3": "warning"}, "still open"),
    ("gateway_accepts_16_mib_frames", {"W-ROB-3": "warning"}, "close 1009"),
]


@pytest.fixture(scope="module")
def reports() -> dict[str, dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(verify, FACTORY + name, *broken, "G-ROB-1")
            for name, broken, _ in CASES
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize(("factory", "broken", "says"), CASES, ids=[case[0] for case in CASES])
def test_exactly_the_broken_requirement_fails(
    reports: dict[str, dict[str, Any]], factory: str, broken: dict[str, str], says: str
) -> None:
    report = reports[factory]
    (requirement_id,) = broken
    assert statuses(report)[requirement_id] == broken[requirement_id], report["stdout"][-3000:]
    assert says in message(report, requirement_id)
    assert collateral(report, requirement_id) == {}, not_passing(report)
    assert report["exit_code"] == (1 if "failed" in broken.values() else 0)


def test_the_reference_passes_every_hostile_input_requirement() -> None:
    report = verify("conformance.targets.reference_target:ReferenceTarget", *FAMILIES)
    checked = {k: v for k, v in statuses(report).items() if k.split("-")[1] == "ROB"}
    assert set(checked.values()) == {"passed"}, report["stdout"][-3000:]
    assert len(checked) == 7
    assert report["exit_code"] == 0


# The independent implementation keeps a half-sent request head open for as long as its client
# likes (aiohttp has no deadline for a head): G-ROB-3 is a SHOULD, so a warning, reported.
ALTERNATIVE_WARNS = {"G-ROB-3": "warning"}


def test_the_alternative_passes_every_hostile_input_must() -> None:
    report = verify_target(ALTERNATIVE, *FAMILIES)
    checked = {k: v for k, v in statuses(report).items() if k.split("-")[1] == "ROB"}
    assert {k: v for k, v in checked.items() if v != "passed"} == ALTERNATIVE_WARNS, report[
        "stdout"
    ][-3000:]
    assert report["exit_code"] == 0

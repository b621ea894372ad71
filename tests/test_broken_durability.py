"""X-DUR-1's check against broken runtimes: a runtime that acknowledges before committing, one
that loses the last message on restart, one that stores a resent message twice and one that
reorders turns written together are each caught with the right anomaly; the reference passes.

Every run is a real `sessionlab verify --only X-DUR-1` of the in-process reference with one
wrapper around its runtime (`tests/broken/durability_breaks.py`), under a schedule of runtime
restarts and cut or reset IDE connections replayed from a fixed seed.
"""

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from unittest import mock

import pytest

from tests.broken.harness import message, statuses, verify

BREAKS = "tests.broken.durability_breaks"
# Short, and the same schedule every time (a fixed seed), of the faults that show each break:
# restarts for what a restart loses, cut and reset connections for what a resend stores twice.
EVERYTHING = "restart,gateway_restart,cut@ide,reset@ide,latency@ide,down@ide"
CASES = [
    ("acks_before_committing", "restart,cut@ide", "lost", "its user message is missing"),
    ("loses_the_last_message_on_restart", "restart,cut@ide", "lost", "acknowledged turn"),
    ("stores_a_resend_twice", "cut@ide,reset@ide", "duplicated", "times, at positions"),
    ("reorders_under_concurrency", "cut@ide,latency@ide", "out_of_order", "before turn"),
]


def _verify(factory: str, faults: str, *only: str) -> dict[str, Any]:
    schedule = {
        "SESSIONLAB_DURABILITY_IDES": "12",
        "SESSIONLAB_DURABILITY_FAULTS": "12",
        "SESSIONLAB_DURABILITY_SEED": "3",
        "SESSIONLAB_DURABILITY_FAULT_NAMES": faults,
    }
    # verify's subprocess inherits this environment; each run sets its own.
    with mock.patch.dict(os.environ, schedule):
        return verify(f"{BREAKS}:{factory}", "X-DUR-1", *only)


@pytest.fixture(scope="module")
def reports() -> Iterator[dict[str, Future[dict[str, Any]]]]:
    """The runs one after another, in the background while the first results are judged: three
    at once on a busy machine slow the turns down until few are in flight when a fault strikes."""
    runs = [("intact", EVERYTHING), *((name, faults) for name, faults, _, _ in CASES)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield {name: pool.submit(_verify, name, faults) for name, faults in runs}


def test_the_reference_passes_x_dur_1_under_the_schedule(
    reports: dict[str, Future[dict[str, Any]]],
) -> None:
    report = reports["intact"].result()
    assert "durability" in report["target"]["claimed_profiles"]
    assert statuses(report)["X-DUR-1"] == "passed", message(report, "X-DUR-1")
    assert report["exit_code"] == 0


def test_a_target_that_does_not_claim_the_profile_skips_it() -> None:
    report = verify(f"{BREAKS}:not_claiming", "X-DUR-1", "R-HEALTH-1")
    assert statuses(report)["X-DUR-1"] == "skipped"
    assert message(report, "X-DUR-1") == "profile 'durability' is not selected"


def test_a_target_that_cannot_be_restarted_skips_it_with_the_reason() -> None:
    report = verify(
        f"{BREAKS}:without_control",
        "X-DUR-1",
        "R-HEALTH-1",
        extra=("--profile", "durability"),
    )
    assert statuses(report)["X-DUR-1"] == "skipped"
    assert "offers no control of its runtime" in message(report, "X-DUR-1")


@pytest.mark.parametrize(
    ("name", "faults", "kind", "says"), CASES, ids=[name for name, *_ in CASES]
)
def test_each_broken_runtime_is_caught_with_the_right_anomaly(
    reports: dict[str, Future[dict[str, Any]]], name: str, faults: str, kind: str, says: str
) -> None:
    report = reports[name].result()
    assert statuses(report)["X-DUR-1"] == "failed", report["stdout"][-3000:]
    text = message(report, "X-DUR-1")
    assert f"{kind}: " in text, text
    assert says in text, text
    assert report["exit_code"] == 1

"""The suite proves itself on a second code base: the alternative stack, broken in one behaviour
at a time (tests/fixtures/alternative/breaks.py), fails the broken requirement with a message a
tester understands, and the whole strict profile points at that requirement alone."""

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from tests.broken.harness import collateral, message, statuses
from tests.fixtures.alternative.breaks import KNOWN
from tests.fixtures.alternative.harness import UNMET_SHOULDS, verify_alternative

CASES = [
    ("create_without_created_at", "created_at"),
    ("list_total_off_by_one", "total =="),
    ("history_reversed", "in the order sent"),
    ("history_500_on_quotes", "received 500"),
    ("stream_without_done", "done or error"),
    ("agents_without_key", "401 for GET /agents"),
    ("logs_the_key", "no log line carrying the internal key"),
    ("drops_tool_call_id_after_restart", "differs in tool_call_id"),
    ("gateway_rewrites_agents", "the runtime's body"),
    ("gateway_leaks_key_when_runtime_down", "answer carrying the internal key"),
    ("gateway_html_when_runtime_down", "JSON object"),
    ("closes_on_bad_json", "close 1011"),
    ("leaks_across_sessions", "nothing on the idle socket of session_"),
    ("turns_never_end", "no final assistant_message"),
    ("tolerant_gateway", "close code 4404"),
]


def test_every_break_is_proven() -> None:
    assert {name for name, _ in CASES} == set(KNOWN)


@pytest.fixture(scope="module")
def reports(request: pytest.FixtureRequest) -> Iterator[dict[str, Future[dict[str, Any]]]]:
    """One whole-profile run per selected break, started together: each run is a subprocess
    that mostly waits on its target, and one after another they would take a quarter of an hour."""
    selected = [
        item.callspec.params["name"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        yield {
            name: pool.submit(verify_alternative, extra=("--profile", "strict"), broken=name)
            for name in selected
        }


@pytest.mark.parametrize(("name", "says"), CASES, ids=[name for name, _ in CASES])
def test_exactly_the_broken_requirement_fails(
    reports: dict[str, Future[dict[str, Any]]], name: str, says: str
) -> None:
    report = reports[name].result()
    broken = KNOWN[name]
    assert statuses(report)[broken] == "failed", report["stdout"][-3000:]
    assert broken in message(report, broken)
    assert says in message(report, broken)
    assert collateral(report, broken, *UNMET_SHOULDS) == {}
    assert report["exit_code"] == 1

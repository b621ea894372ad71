"""The generated checks prove themselves: servers whose break the example-based checks miss are
caught by the property checks or the session model, exactly the broken requirement fails, and its
message holds the shrunk reproducer (the smallest input, the fewest steps)."""

import re

import pytest

from tests.broken.harness import failing_transcript, not_passing, verify

FACTORY = "tests.broken.property_breaks:"
# A fixed seed: the same examples every run, so a pass here is not luck.
SEED = "20251125"
GENERATED = ("test_properties.py", "test_session_model.py")

CASES = [
    pytest.param(
        "history_drops_unusual_messages",
        ["R-HIST"],
        "R-HIST-3",
        # The model's steps, shrunk: one session, one message with one non-ASCII character.
        [
            r'after the steps: 1\. create s1; 2\. switch to s1; 3\. send "\\u0080" on s1; '
            r"4\. history of s1, received \[\]",
            r'after the steps: 1\. create s1; 2\. stream "\\u0080" to s1; 3\. history of s1',
        ],
        id="history_drops_unusual_messages",
    ),
    pytest.param(
        "list_hides_busy_sessions",
        ["R-LIST"],
        "R-LIST-1",
        # Three turns, and no more, before the list: the break shows only after the third.
        [
            r"listed once, after the steps: 1\. create s1; 2\. switch to s1; "
            r'3\. send "" on s1; 4\. send "" on s1; 5\. send "" on s1; 6\. list, '
            r"received listed 0 times",
            r'1\. create s1; 2\. stream "" to s1; 3\. stream "" to s1; 4\. stream "" to s1; '
            r"5\. list",
        ],
        id="list_hides_busy_sessions",
    ),
    pytest.param(
        "gateway_crashes_on_structured_content",
        ["W-BAD"],
        "W-BAD-2",
        [
            r'an error frame for the frame \{"type": "user_message", "content": \[\], '
            r'"role": "user"\}, received the socket closed \(close 1011'
        ],
        id="gateway_crashes_on_structured_content",
    ),
    pytest.param(
        "create_500_on_json_that_is_not_an_object",
        ["R-CREATE-1"],
        "R-CREATE-1",
        [r'POST /sessions with the body "null", received 500'],
        id="create_500_on_json_that_is_not_an_object",
    ),
    pytest.param(
        "history_500_on_control_characters",
        ["R-HIST"],
        "R-HIST-2",
        [r'GET /sessions/\{session_id\}/history with the id "\\u00[01][0-9a-f]", received 500'],
        id="history_500_on_control_characters",
    ),
]


@pytest.fixture(autouse=True)
def _fixed_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONLAB_SEED", SEED)


def _checks(report: dict[str, object], requirement_id: str) -> list[dict[str, str]]:
    requirements = report["requirements"]
    assert isinstance(requirements, list)
    found = next(r for r in requirements if r["id"] == requirement_id)
    return list(found["checks"])


@pytest.mark.parametrize(("factory", "only", "broken", "says"), CASES)
def test_generated_examples_catch_what_the_example_checks_miss(
    factory: str, only: list[str], broken: str, says: list[str]
) -> None:
    report = verify(FACTORY + factory, *only)
    assert not_passing(report) == {broken: "failed"}, report["stdout"][-3000:]
    assert report["exit_code"] == 1
    checks = _checks(report, broken)
    failed = [c["nodeid"] for c in checks if c["outcome"] == "failed"]
    missed = [c["nodeid"] for c in checks if c["outcome"] == "passed" and c["nodeid"]]
    # Caught by generated examples only: the example-based checks of the requirement passed.
    assert failed, checks
    assert all(node.split("::")[0].endswith(GENERATED) for node in failed), failed
    assert any(not node.split("::")[0].endswith(GENERATED) for node in missed), checks
    requirement = next(r for r in report["requirements"] if r["id"] == broken)
    for pattern in says:
        assert re.search(pattern, requirement["message"]), requirement["message"]
    # The failure names the run's seed to replay it, in the output and in the transcript.
    assert f"SESSIONLAB_SEED={SEED}" in report["stdout"]
    transcript = failing_transcript(report, broken)
    assert any(f"seed {SEED}" in entry["text"] for entry in transcript), transcript[:3]

"""The user checks against broken servers: each bug fails exactly the requirement it breaks.

Every run is a real `sessionlab verify` of the reference with three users and one wrapper that
injects the bug (`tests/broken/user_breaks.py`); the intact reference with users must conform
with the whole suite.
"""

import pytest

from tests.broken.harness import failing_transcript, message, not_passing, statuses, verify

USER_CHECKS = ("X-AUTH-1", "X-SHARE-1")
# The extension profiles too, so their routes are in the checks' reach.
PROFILES = tuple(
    arg
    for profile in ("auth", "sharing", "lifecycle", "export", "search")
    for arg in ("--profile", profile)
)


def test_the_reference_with_users_passes_the_whole_suite() -> None:
    report = verify("tests.broken.user_breaks:intact")
    assert {"auth", "sharing"} <= set(report["target"]["claimed_profiles"])
    assert statuses(report)["X-AUTH-1"] == "passed"
    assert statuses(report)["X-SHARE-1"] == "passed"
    # Requirements no check covers yet are errors of the suite, not of the target.
    failed = {rid: status for rid, status in not_passing(report).items() if status != "error"}
    assert failed == {}
    uncovered = {
        r["id"]
        for r in report["requirements"]
        if r["status"] == "error" and r["message"] != "no check covers this requirement"
    }
    assert uncovered == set()


def test_the_reference_with_users_passes_the_user_checks_in_every_profile() -> None:
    report = verify("tests.broken.user_breaks:intact", *USER_CHECKS, extra=PROFILES)
    assert not_passing(report) == {}
    assert statuses(report)["X-AUTH-1"] == "passed"
    assert statuses(report)["X-SHARE-1"] == "passed"
    assert report["exit_code"] == 0


@pytest.mark.parametrize(
    ("factory", "broken", "says"),
    [
        pytest.param(
            "wrong_token_passes_on_one_route",
            "X-AUTH-1",
            "401 for GET /agents with a",
            id="token-ignored-on-one-route",
        ),
        pytest.param(
            "history_readable_by_other_users",
            "X-AUTH-1",
            "404 for another user's GET /sessions/",
            id="history-readable-by-others",
        ),
        pytest.param(
            "reader_can_post",
            "X-SHARE-1",
            "an error frame for the reader's user_message",
            id="reader-can-post",
        ),
        pytest.param(
            "share_opens_the_session_to_everyone",
            "X-SHARE-1",
            "404 for a third user's history after the share",
            id="share-makes-public",
        ),
    ],
)
def test_a_broken_server_fails_exactly_the_requirement_it_breaks(
    factory: str, broken: str, says: str
) -> None:
    report = verify(f"tests.broken.user_breaks:{factory}", *USER_CHECKS, extra=PROFILES)
    assert not_passing(report) == {broken: "failed"}
    assert says in message(report, broken)
    assert report["exit_code"] == 1
    transcript = failing_transcript(report, broken)
    assert transcript, "a failure ships its transcript"
    assert any(entry["kind"] == "http-request" for entry in transcript)

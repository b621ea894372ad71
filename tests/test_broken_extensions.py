"""The extension checks against broken servers: each bug fails exactly the requirement it breaks.

Every run is a real `sessionlab verify` of the reference with one wrapper that injects the bug
(`tests/broken/extension_breaks.py`), limited to the four extension requirements so that a bug
is judged by its own checks alone; the intact reference must pass all four.
"""

from typing import Any

import pytest

from tests.broken.harness import failing_transcript, message, not_passing, statuses, verify

EXTENSIONS = ("X-DEL-1", "X-REN-1", "X-EXP-1", "X-SRCH-1")
# `strict` too, so that X-DEL-1's socket refusal is in reach.
PROFILES = tuple(
    arg for profile in ("strict", "lifecycle", "export", "search") for arg in ("--profile", profile)
)


def _passed(report: dict[str, Any]) -> dict[str, str]:
    found = statuses(report)
    return {requirement: found[requirement] for requirement in EXTENSIONS}


def test_the_reference_passes_the_extension_checks_when_their_profiles_are_selected() -> None:
    report = verify("tests.broken.extension_breaks:intact", *EXTENSIONS, extra=PROFILES)
    assert not_passing(report) == {}
    assert _passed(report) == dict.fromkeys(EXTENSIONS, "passed")
    assert report["exit_code"] == 0


def test_the_reference_claims_the_extension_profiles_and_passes_them_unasked() -> None:
    report = verify("tests.broken.extension_breaks:intact", *EXTENSIONS)
    assert {"lifecycle", "export", "search"} <= set(report["target"]["claimed_profiles"])
    assert _passed(report) == dict.fromkeys(EXTENSIONS, "passed")
    assert report["exit_code"] == 0


def test_without_strict_a_delete_still_passes_and_its_socket_check_says_why_it_skipped() -> None:
    only_lifecycle = ("--profile", "lifecycle")
    report = verify("tests.broken.extension_breaks:intact", "X-DEL-1", extra=only_lifecycle)
    assert statuses(report)["X-DEL-1"] == "passed"
    [requirement] = [r for r in report["requirements"] if r["id"] == "X-DEL-1"]
    skipped = [
        check["message"] for check in requirement["checks"] if check["outcome"] == "unjudged"
    ]
    assert skipped == ["profile strict is not selected: a socket to a deleted session may open"]


@pytest.mark.parametrize(
    ("factory", "broken", "says"),
    [
        pytest.param(
            "delete_leaves_the_session_listed",
            "X-DEL-1",
            "the deleted session no longer listed by GET /sessions",
            id="delete-stays-listed",
        ),
        pytest.param(
            "rename_ignores_the_title",
            "X-REN-1",
            "with title 'First title ",
            id="rename-ignores-title",
        ),
        pytest.param(
            "rename_accepts_an_empty_title",
            "X-REN-1",
            "expected 422 for an empty title, received 200",
            id="rename-accepts-empty-title",
        ),
        pytest.param(
            "markdown_export_served_as_text_plain",
            "X-EXP-1",
            "expected Content-Type text/markdown, received text/plain",
            id="markdown-as-text-plain",
        ),
        pytest.param(
            "markdown_export_drops_the_last_message",
            "X-EXP-1",
            "expected message 4 of 4 (assistant) in the transcript",
            id="markdown-missing-a-message",
        ),
        pytest.param(
            "search_is_case_sensitive",
            "X-SRCH-1",
            "(case-insensitive), received []",
            id="search-case-sensitive",
        ),
        pytest.param(
            "search_lists_oldest_first",
            "X-SRCH-1",
            "the session written to last (session_",
            id="search-oldest-first",
        ),
    ],
)
def test_a_broken_server_fails_exactly_the_requirement_it_breaks(
    factory: str, broken: str, says: str
) -> None:
    report = verify(f"tests.broken.extension_breaks:{factory}", *EXTENSIONS, extra=PROFILES)
    assert not_passing(report) == {broken: "failed"}
    assert says in message(report, broken)
    assert report["exit_code"] == 1
    transcript = failing_transcript(report, broken)
    assert transcript, "a failure ships its transcript"
    assert any(entry["kind"] == "http-request" for entry in transcript)

"""X-IDEM-1's checks against broken servers: each way of storing a resend twice, or of not
answering it with the stored reply, fails X-IDEM-1 and nothing else; the reference passes.

Every run is a real `sessionlab verify` of the reference with one wrapper around its runtime's
stream route (`tests/broken/idempotency_breaks.py`).
"""

import pytest

from tests.broken.harness import (
    collateral,
    failing_transcript,
    message,
    not_passing,
    statuses,
    verify,
)

BREAKS = "tests.broken.idempotency_breaks"
PROFILE = ("--profile", "idempotent")


def test_the_reference_claims_idempotent_and_passes_x_idem_1() -> None:
    report = verify(f"{BREAKS}:intact", "X-IDEM-1")
    assert "idempotent" in report["target"]["claimed_profiles"]
    assert statuses(report)["X-IDEM-1"] == "passed"
    [requirement] = [r for r in report["requirements"] if r["id"] == "X-IDEM-1"]
    # The restart check ran too: the reference target can restart its runtime.
    assert [check["outcome"] for check in requirement["checks"]] == ["passed"] * 4
    assert report["exit_code"] == 0


def test_a_target_that_does_not_claim_the_profile_skips_it_like_the_other_extensions() -> None:
    # With a requirement that runs beside it: a run that judges nothing conforms to nothing.
    report = verify(f"{BREAKS}:not_claiming", "X-IDEM-1", "R-HEALTH-1")
    assert "idempotent" not in report["target"]["claimed_profiles"]
    assert statuses(report)["X-IDEM-1"] == "skipped"
    assert message(report, "X-IDEM-1") == "profile 'idempotent' is not selected"
    assert report["exit_code"] == 0


@pytest.mark.parametrize(
    ("factory", "says"),
    [
        pytest.param(
            "resend_stored_twice",
            "expected the history unchanged by the resends",
            id="stored-twice",
        ),
        pytest.param(
            "concurrent_resends_stored_twice",
            "once after 4 sends at once, received 4 times",
            id="concurrent-stored-twice",
        ),
        pytest.param(
            "resend_refused_as_a_duplicate",
            "answered with the stored reply",
            id="refused-as-duplicate",
        ),
    ],
)
def test_a_broken_server_fails_x_idem_1_alone(factory: str, says: str) -> None:
    report = verify(f"{BREAKS}:{factory}", "X-IDEM-1", extra=PROFILE)
    assert not_passing(report) == {"X-IDEM-1": "failed"}
    assert says in message(report, "X-IDEM-1")
    assert collateral(report, "X-IDEM-1") == {}
    assert report["exit_code"] == 1
    transcript = failing_transcript(report, "X-IDEM-1")
    assert any(
        entry["kind"] == "ws-send" and "client_message_id" in entry.get("text", str(entry))
        for entry in transcript
    )

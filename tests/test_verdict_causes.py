"""One defect, one failed requirement: the checks that stand on it are blocked by it, nothing else
moves, no message shows a raw exception, and a target that rate-limits is honoured."""

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.broken.cause_breaks import TURN_TIMEOUT
from tests.broken.harness import collateral, message, statuses, verify, verify_target
from tests.fixtures.stack import start_stack

FACTORY = "tests.broken.cause_breaks:"
Reports = dict[str, dict[str, Any]]

# Each variant's run, and the requirement prefixes it is limited to (none: the whole profiles).
RUNS: dict[str, tuple[str, ...]] = {
    "create_answers_id": (),
    "turns_never_end_slowly": (),
    "list_names_ids_id": ("R-LIST", "R-CREATE-4"),
    "runtime_rate_limits": (),
    "tool_directive_ignored": ("R-HIST", "R-STREAM", "W-TOOL"),
    "current_agent_404_for_new_sessions": (),
    "odd_stream_bodies_streamed": (),
    "chunks_without_spaces": (),
    "binary_frames_ignored": ("W-BAD",),
    "history_500_after_a_nul": (),
    "gateway_5xx_carries_the_key": (),
    "error_frames_without_content": ("W-BAD-2",),
}


@pytest.fixture(scope="module")
def reports() -> Reports:
    """Every run of this module, a few at a time: each is a verify subprocess, mostly waiting."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(verify, FACTORY + name, *only) for name, only in RUNS.items()}
        return {name: future.result() for name, future in futures.items()}


RAW = re.compile(r"\b(KeyError|TimeoutError\(\)|ConnectionClosed\w*\(|FrameError\b)")


def _raw_exceptions(report: dict[str, Any]) -> list[str]:
    return [
        f"{r['id']}: {r['message']}" for r in report["requirements"] if RAW.search(r["message"])
    ]


def test_a_create_without_session_id_fails_r_create_1_and_blocks_what_needs_a_session(
    reports: Reports,
) -> None:
    report = reports["create_answers_id"]
    verdicts = statuses(report)
    assert verdicts["R-CREATE-1"] == "failed"
    assert "keys: created_at, current_agent, id, message_count" in message(report, "R-CREATE-1")
    assert collateral(report, "R-CREATE-1") == {}
    for blocked in ("W-TURN-1", "W-ISO-1", "G-PROXY-2", "R-HIST-3", "R-CREATE-3"):
        assert verdicts[blocked] == "blocked", blocked
        assert message(report, blocked).startswith("blocked by")
        assert "R-CREATE-1" in message(report, blocked)
    assert _raw_exceptions(report) == []
    assert report["exit_code"] == 1


def test_turns_that_never_end_fail_w_turn_1_once_within_one_timeout(reports: Reports) -> None:
    report = reports["turns_never_end_slowly"]
    verdicts = statuses(report)
    assert verdicts["W-TURN-1"] == "failed"
    said = message(report, "W-TURN-1")
    assert f"within {TURN_TIMEOUT:g} s" in said
    assert "none ending it" in said
    assert collateral(report, "W-TURN-1") == {}
    for blocked in ("W-ISO-1", "W-BAD-1", "W-TURN-2", "W-AGENT-1"):
        assert verdicts[blocked] == "blocked", blocked
    for unaffected in ("W-CONN-1", "R-STREAM-2", "R-HIST-3"):
        assert verdicts[unaffected] == "passed", unaffected
    assert _raw_exceptions(report) == []
    # Waited out once (twice at most, by the socket model), not once per check that chats.
    assert report["duration"] < 2 * TURN_TIMEOUT + 90, report["duration"]
    assert report["exit_code"] == 1


def test_a_list_naming_ids_id_says_so_and_fails_r_list_1_alone(reports: Reports) -> None:
    report = reports["list_names_ids_id"]
    assert statuses(report)["R-LIST-1"] == "failed"
    said = message(report, "R-LIST-1")
    assert "carry no session_id (their keys:" in said
    assert "id," in said
    assert "not listed" not in said
    assert statuses(report)["R-CREATE-4"] in ("passed", "blocked")
    assert collateral(report, "R-LIST-1") == {}


def test_a_runtime_that_rate_limits_is_honoured_and_the_report_says_so(reports: Reports) -> None:
    report = reports["runtime_rate_limits"]
    assert collateral(report, "none") == {}, report["stdout"][-3000:]
    limited = report["rate_limited"]
    assert limited["responses_429"] > 0
    assert "the target rate-limited the run" in report["stdout"]
    assert report["exit_code"] == 0


def test_a_profile_feature_that_does_not_answer_blames_the_profiles_requirement(
    reports: Reports,
) -> None:
    report = reports["tool_directive_ignored"]
    verdicts = statuses(report)
    assert verdicts["W-TOOL-1"] == "failed"
    assert verdicts["R-HIST-3"] == "partial"
    assert "the /tool directive gave no call" in message(report, "R-HIST-3")
    assert verdicts["R-STREAM-2"] == "partial"
    assert collateral(report, "W-TOOL-1") == {}


@pytest.mark.parametrize("rate", ["0", "-1", "x"])
def test_rate_takes_a_positive_number(rate: str) -> None:
    with pytest.raises(AssertionError, match="wrote no report"):
        verify(FACTORY + "runtime_rate_limits", extra=("--rate", rate))


# False failures that must not come back: a right implementation, or one whose defect is another
# requirement's, is judged right.


def test_a_runtime_404_the_gateway_passes_on_fails_r_agents_2_alone(reports: Reports) -> None:
    report = reports["current_agent_404_for_new_sessions"]
    assert statuses(report)["R-AGENTS-2"] == "failed"
    assert collateral(report, "R-AGENTS-2") == {}
    assert statuses(report)["G-PROXY-1"] == "passed"
    assert statuses(report)["G-PROXY-2"] == "passed"


@pytest.mark.parametrize(
    "factory", ["odd_stream_bodies_streamed", "chunks_without_spaces"], ids=str
)
def test_what_the_contract_allows_is_not_failed(reports: Reports, factory: str) -> None:
    report = reports[factory]
    assert collateral(report, "none") == {}
    assert report["exit_code"] == 0


def test_a_binary_frame_answered_by_silence_is_w_bad_3_and_says_so(reports: Reports) -> None:
    report = reports["binary_frames_ignored"]
    assert statuses(report)["W-BAD-3"] == "warning"
    assert statuses(report)["W-BAD-1"] == "passed"
    said = message(report, "W-BAD-3")
    assert "after a binary frame of 8 bytes; the socket is still open but answers nothing" in said
    assert report["exit_code"] == 0


# Silent passes that must not come back: a defect the run could see is reported.


def test_a_history_that_breaks_after_odd_content_fails_r_hist_1(reports: Reports) -> None:
    report = reports["history_500_after_a_nul"]
    assert statuses(report)["R-HIST-1"] == "failed"
    assert "after unusual content" in message(report, "R-HIST-1")
    assert collateral(report, "R-HIST-1") == {}


def test_a_key_in_a_502_body_fails_g_proxy_2(reports: Reports) -> None:
    report = reports["gateway_5xx_carries_the_key"]
    assert statuses(report)["G-PROXY-2"] == "failed"
    assert "received it in the answer to" in message(report, "G-PROXY-2")
    assert collateral(report, "G-PROXY-2") == {}


def test_a_url_target_checks_logs_and_restarts_only_in_part(tmp_path: Path) -> None:
    stack = start_stack(tmp_path, client_key="url-client-key")
    try:
        target = (
            *("--gateway-url", stack.gateway_url, "--runtime-url", stack.runtime_url),
            *("--internal-key", stack.internal_key, "--client-key", "url-client-key"),
        )
        report = verify_target(target, "R-AUTH-3", "R-HIST-3")
    finally:
        stack.gateway.stop()
        stack.runtime.stop()
    assert statuses(report)["R-AUTH-3"] == "partial"
    assert "use a process or container target" in message(report, "R-AUTH-3")
    assert statuses(report)["R-HIST-3"] == "partial"
    assert "not checked across a runtime restart" in message(report, "R-HIST-3")
    assert "partial" in report["stdout"]
    assert report["exit_code"] == 0


def test_an_invalid_frame_is_named_in_the_message_never_a_bare_frame_error(
    reports: Reports,
) -> None:
    report = reports["error_frames_without_content"]
    assert statuses(report)["W-BAD-2"] == "failed"
    said = message(report, "W-BAD-2")
    assert "an invalid frame: " in said
    assert 'in the frame {"type": "error", "message": ' in said
    assert _raw_exceptions(report) == []

"""Failures that share one cause: the report leads with it, in one line, and tells it once."""

from typing import Any

from conformance.causes import cause_of, shared_causes
from conformance.reports.console import render_console
from conformance.verdicts import CheckResult, conforms, judge_all, summary

RUNTIME = "http://127.0.0.1:8001"
DOWN = [
    ("R-LIST-1", f"GET {RUNTIME}/sessions: no connection (All connection attempts failed)"),
    (
        "R-HIST-1",
        f"GET {RUNTIME}/sessions/session_ab/history: no connection (All connection "
        "attempts failed)",
    ),
    ("R-AGENTS-1", f"GET {RUNTIME}/agents: no connection (All connection attempts failed)"),
    ("R-CREATE-1", f"POST {RUNTIME}/sessions: no connection (All connection attempts failed)"),
]


def report_of(results: list[CheckResult]) -> dict[str, Any]:
    profiles = frozenset({"core"})
    judged = sorted({i for result in results for i in result.requirement_ids})
    verdicts = judge_all(results, profiles, only=judged)
    requirements = [verdict.as_dict() for verdict in verdicts]
    return {
        "sessionlab": "0",
        "target": {"name": "t", "gateway_url": "http://g", "runtime_url": RUNTIME},
        "profiles": ["core"],
        "stopped": None,
        "duration": 1.0,
        "conforms": conforms(verdicts),
        "summary": summary(verdicts),
        "rate_limited": None,
        "causes": shared_causes(requirements),
        "requirements": requirements,
    }


def test_connection_failures_to_one_service_share_its_base_url() -> None:
    causes = {cause_of(message) for _, message in DOWN}
    assert causes == {f"no connection to {RUNTIME} (All connection attempts failed)"}
    assert cause_of("R-LIST-1 failed: expected 200, received 500 for session_1f") == cause_of(
        "R-HIST-1 failed: expected 200, received 500 for session_2e"
    )


def test_the_console_leads_with_a_cause_many_failures_share_and_tells_it_once() -> None:
    results = [
        CheckResult(f"test_{i}.py::test", (requirement,), "failed", message, received=message)
        for i, (requirement, message) in enumerate(DOWN)
    ]
    results.append(
        CheckResult("test_h.py::test", ("R-HEALTH-1",), "failed", "R-HEALTH-1 failed: a 500")
    )
    report = report_of(results)
    assert report["causes"] == [
        {
            "cause": f"no connection to {RUNTIME} (All connection attempts failed)",
            "requirements": ["R-CREATE-1", "R-LIST-1", "R-HIST-1", "R-AGENTS-1"],
        }
    ]
    text = render_console(report)
    lines = text.splitlines()
    lead = (
        f"4 requirements fail for one cause: no connection to {RUNTIME} (All connection "
        "attempts failed) (R-CREATE-1, R-LIST-1, R-HIST-1, R-AGENTS-1)"
    )
    # Before the table: the first thing after the header.
    assert lines[3] == lead
    assert lines.index(lead) < lines.index("[core]")
    # The first shows what it looks like; the others point at the cause; the odd one out is
    # told in full.
    assert text.count("no connection (All connection attempts failed)") == 1
    assert text.count("the cause shared above") == 3
    assert "received   R-HEALTH-1 failed: a 500" not in text
    assert "said       R-HEALTH-1 failed: a 500" in text


def test_a_few_failures_of_different_causes_lead_with_nothing() -> None:
    results = [
        CheckResult("a.py::test", ("R-LIST-1",), "failed", "R-LIST-1 failed: one thing"),
        CheckResult("b.py::test", ("R-HIST-1",), "failed", "R-HIST-1 failed: another"),
    ]
    report = report_of(results)
    assert report["causes"] == []
    assert "fail for one cause" not in render_console(report)

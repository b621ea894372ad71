"""Test plans: every shipped plan passes against the reference, and its core plans against a
correct implementation unlike it; a broken gateway fails the right step with words a tester
understands, at once when what a step awaits can no longer come; bad files are refused before
anything runs."""

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.target_runner import TargetRunner
from conformance.targets.reference_target import ReferenceTarget
from scenarios.loader import ScenarioError, load_scenario, load_scenarios
from scenarios.model import (
    HistoryExpect,
    LogExpect,
    ReplyExpect,
    Scenario,
    SwitchAgentArgs,
    TextArg,
)
from scenarios.results import ScenarioResult
from scenarios.session import run_plans
from tests.broken.scenario_breaks import reply_always_empty, turn_never_ends
from tests.fixtures.stack import deadline
from tests.fixtures.thirdparty.harness import docker_client_or_skip

REPO = Path(__file__).resolve().parents[1]
PLANS = REPO / "scenarios" / "plans"


def run(*args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    report = Path(args[-1]) if args and args[-1].endswith(".json") else None
    result = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "run", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=deadline(300),
        check=False,
        # The example process target runs `sessionlab` from PATH, as an activated virtualenv does.
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
    )
    return result, json.loads(report.read_text()) if report and report.exists() else {}


def test_every_shipped_plan_passes_against_the_reference(tmp_path: Path) -> None:
    report = tmp_path / "plans.json"
    result, document = run(
        str(PLANS), "--junit-xml", str(tmp_path / "plans.xml"), "--json", str(report)
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    statuses = {s["id"]: s["status"] for s in document["scenarios"]}  # type: ignore[index]
    assert len(statuses) == len(list(PLANS.glob("*.yaml")))
    # The in-process reference cannot SIGKILL or freeze its runtime and has no proxy before it:
    # those plans are skipped, with the reason.
    assert {k for k, v in statuses.items() if v != "passed"} == {
        "runtime-killed-mid-chat",
        "runtime-hop-faults",
    }
    assert "the target cannot kill its runtime" in result.stdout
    assert "the target offers no fault proxy between gateway and runtime" in result.stdout
    assert (tmp_path / "plans.xml").read_text().count("<testcase") == len(statuses)


@pytest.mark.parametrize("kind", ["process", "container"])
def test_every_shipped_plan_passes_against_the_reference_as_a_launched_target(
    tmp_path: Path, kind: str
) -> None:
    if kind == "container":
        docker_client_or_skip()
    report = tmp_path / "plans.json"
    target = REPO / "examples" / "targets" / f"reference-{kind}.yaml"
    result, document = run(str(PLANS), "--target", str(target), "--json", str(report))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    statuses = {s["id"]: s["status"] for s in document["scenarios"]}  # type: ignore[index]
    assert len(statuses) == len(list(PLANS.glob("*.yaml")))
    assert set(statuses.values()) == {"passed"}


# What a core plan must not lean on: only the reference's script agent (contract section 7) is
# bound to echo, to call a tool, to ask for approval or to switch agent on request.
DIRECTIVES = ("/tool", "/approve", "/switch", "/fail")
SCRIPTED_ACTIONS = {"expect_tool_call", "approve", "edit", "reject", "switch_agent"}
# Built from the class names of exceptions, as a repr shows them: TimeoutError(), Foo(None, None).
EXCEPTION_REPR = re.compile(r"\b[A-Z]\w*(Error|Exception|Closed|Timeout)\(")


def agent_dependencies(scenario: Scenario) -> list[str]:
    """Steps that hold only for the script agent, or only for the reference's log layout."""
    found = []
    for step in scenario.steps:
        where = f"line {step.line} {step.action}"
        args = step.args
        if step.action in SCRIPTED_ACTIONS:
            found.append(f"{where}: only the script agent does this on request")
        if isinstance(args, ReplyExpect) and (args.equals, args.contains, args.matches) != (
            None,
            None,
            None,
        ):
            found.append(f"{where}: checks the agent's wording")
        if isinstance(args, TextArg | SwitchAgentArgs):
            text = args.text if isinstance(args, TextArg) else args.content
            if text.startswith(DIRECTIVES):
                found.append(f"{where}: a script directive")
        if isinstance(args, HistoryExpect):
            for message in args.messages or []:
                if message.role == "tool":
                    found.append(f"{where}: a tool message only a tool call leaves")
                if message.role == "assistant" and (message.content or message.contains):
                    found.append(f"{where}: checks the agent's wording in the history")
        if isinstance(args, LogExpect) and args.line is not None:
            found.append(f"{where}: a regex fixes the layout of the line; say what it contains")
    return found


def test_no_core_plan_leans_on_what_only_the_script_agent_does() -> None:
    plans = load_scenarios(sorted(PLANS.glob("*.yaml")))
    core = [plan for plan in plans if "scripted" not in plan.profiles]
    assert len(core) >= 7
    assert {plan.id: agent_dependencies(plan) for plan in core} == {plan.id: [] for plan in core}


def test_the_agent_dependency_check_sees_each_kind(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        """id: leaning
title: t
steps:
  - send: '/tool read_file {"path": "a"}'
  - expect_tool_call: read_file
  - expect_reply: {contains: hello}
  - expect_history: {messages: [{role: user}, {role: assistant, contains: hello}]}
  - expect_log: {service: gateway, line: "WebSocket connected.*x"}
"""
    )
    found = agent_dependencies(load_scenario(path))
    assert [entry.split(":")[0] for entry in found] == [
        "line 4 send",
        "line 5 expect_tool_call",
        "line 6 expect_reply",
        "line 7 expect_history",
        "line 8 expect_log",
    ]


def test_every_core_plan_passes_against_a_correct_implementation_unlike_the_reference(
    tmp_path: Path,
) -> None:
    """An agent answering in its own words after tool rounds of its own, a gateway logging
    `[<id>] WebSocket connected`: nothing the contract forbids, so no core plan may fail."""
    report = tmp_path / "plans.json"
    result, document = run(
        str(PLANS),
        "--target-factory",
        "tests.broken.scenario_breaks:independent_implementation",
        "--json",
        str(report),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    outcomes = {s["id"]: (s["status"], s["message"]) for s in document["scenarios"]}  # type: ignore[index]
    plans = load_scenarios(sorted(PLANS.glob("*.yaml")))
    scripted = {plan.id for plan in plans if "scripted" in plan.profiles}
    assert scripted == {"agent-switch", "approvals", "tool-round-trip"}
    skipped_as_scripted = {
        plan
        for plan, (status, message) in outcomes.items()
        if status == "skipped" and "does not claim profile 'scripted'" in message
    }
    assert skipped_as_scripted == scripted
    # The in-process variant cannot kill or freeze its runtime: those two are skipped as well.
    passed = {plan for plan, (status, _) in outcomes.items() if status == "passed"}
    assert passed == {plan.id for plan in plans} - scripted - {
        "runtime-killed-mid-chat",
        "runtime-hop-faults",
    }


def _plan(tmp_path: Path, steps: str, profiles: str = "[core]") -> Scenario:
    path = tmp_path / "plan.yaml"
    path.write_text(f"id: probe\ntitle: probe\nprofiles: {profiles}\nsteps:\n{steps}")
    return load_scenario(path)


@pytest.fixture(scope="module")
def reference() -> Iterator[TargetRunner]:
    runner = TargetRunner(ReferenceTarget())
    runner.start(timeout=deadline(60))
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def independent() -> Iterator[TargetRunner]:
    from tests.broken.scenario_breaks import independent_implementation

    runner = TargetRunner(independent_implementation())
    runner.start(timeout=deadline(60))
    yield runner
    runner.close()


async def _failed_step(tmp_path: Path, runner: TargetRunner, steps: str) -> tuple[str, float]:
    plan = _plan(tmp_path, "  - new_session: {}\n" + steps, "[scripted]")
    (result,) = await run_plans([plan], runner)
    return _only_failure(result)


def _only_failure(result: ScenarioResult) -> tuple[str, float]:
    assert result.status == "failed", result.render()
    failed = result.failed_step
    assert failed is not None
    assert not EXCEPTION_REPR.search(failed.message), failed.message
    return failed.message, failed.duration


APPROVE = """  - send: '/approve write_file {"path": "a.txt"}'\n"""


@pytest.mark.parametrize(
    ("steps", "awaited", "instead"),
    [
        (
            "  - send: hello\n  - expect_tool_call: {}\n",
            "expected a tool call within 30 s",
            "the turn ended with the final reply 'hello' and no tool call",
        ),
        (
            "  - send: /fail the model is down\n  - expect_tool_call: {}\n",
            "expected a tool call within 30 s",
            "the turn ended in an error: the model is down and no tool call",
        ),
        (
            "  - send: hello\n  - expect_error: {}\n",
            "expected an error within 30 s",
            "the turn ended with the final reply 'hello'",
        ),
        (
            "  - send: /fail the model is down\n  - expect_reply: {}\n",
            "expected a final reply within 30 s",
            "the turn ended in an error: the model is down",
        ),
        (
            APPROVE + "  - expect_reply: {}\n",
            "expected a final reply within 30 s",
            "the agent is waiting for the plan to approve, edit or reject write_file",
        ),
        (
            APPROVE + "  - expect_tool_call: write_file\n  - expect_tool_call: {}\n",
            "expected a tool call within 30 s",
            "the agent is waiting for the plan to approve, edit or reject write_file",
        ),
        (
            "  - send: hello\n  - expect_reply: {}\n  - expect_reply: {}\n",
            "expected a final reply within 30 s",
            "no turn is open: the plan sent nothing since the last turn ended",
        ),
    ],
    ids=[
        "tool-call-after-reply",
        "tool-call-after-error",
        "error-after-reply",
        "reply-after-error",
        "reply-while-approval-waits",
        "another-tool-call-while-approval-waits",
        "reply-with-no-turn",
    ],
)
async def test_a_turn_expectation_fails_at_once_when_its_event_can_no_longer_come(
    tmp_path: Path, reference: TargetRunner, steps: str, awaited: str, instead: str
) -> None:
    started = time.monotonic()
    message, duration = await _failed_step(tmp_path, reference, steps)
    # The step may take 30 s; the turn ended well before, and so must the step.
    assert duration < 5
    assert time.monotonic() - started < 10
    assert message.startswith(awaited + ";")
    assert instead in message


async def test_a_reply_that_never_ends_says_how_long_and_what_came(tmp_path: Path) -> None:
    runner = TargetRunner(turn_never_ends())
    runner.start(timeout=deadline(60))
    try:
        steps = "  - new_session: {}\n  - send: hello there\n  - expect_reply: {}\n    within: 1\n"
        (result,) = await run_plans([_plan(tmp_path, steps)], runner)
    finally:
        runner.close()
    message, _ = _only_failure(result)
    assert message.startswith(
        "waited 1 s for a final reply; 1 frame(s) came, none ending the turn;"
    )
    assert message.endswith(
        'the last: {"type":"assistant_message","content":"hello ","is_final":false}'
    )


async def test_a_bare_reply_expectation_wants_text(tmp_path: Path) -> None:
    runner = TargetRunner(reply_always_empty())
    runner.start(timeout=deadline(60))
    try:
        steps = "  - new_session: {}\n  - send: hello\n  - expect_reply: {}\n"
        (result,) = await run_plans([_plan(tmp_path, steps)], runner)
    finally:
        runner.close()
    message, _ = _only_failure(result)
    assert message == "the final reply came with empty text; expected a reply with text"


@pytest.mark.parametrize(
    ("expectation", "passes"),
    [
        ('{service: gateway, contains: ["WebSocket connected", "${created}"]}', True),
        ('{service: gateway, contains: ["${created}", "WebSocket connected"]}', True),
        ('{service: gateway, line: "WebSocket connected.*${created}"}', False),
        ('{service: gateway, line: "\\\\[${created}\\\\] WebSocket connected"}', True),
    ],
    ids=["contains", "contains-any-order", "regex-id-after", "regex-id-before"],
)
async def test_a_log_line_is_found_by_what_it_contains_wherever_the_id_stands(
    tmp_path: Path, independent: TargetRunner, expectation: str, passes: bool
) -> None:
    steps = (
        f"  - new_session: {{}}\n    as: created\n  - expect_log: {expectation}\n    within: 1\n"
    )
    (result,) = await run_plans([_plan(tmp_path, steps)], independent)
    assert (result.status == "passed") is passes, result.render()
    if not passes:
        message, _ = _only_failure(result)
        assert message.startswith("waited 1 s for a gateway log line matching /WebSocket connected")
        assert "] WebSocket connected" in message  # the lines that came instead


async def test_the_independent_agent_does_not_echo(
    tmp_path: Path, independent: TargetRunner
) -> None:
    steps = "  - new_session: {}\n  - send: hello\n  - expect_reply: {contains: hello}\n"
    (result,) = await run_plans([_plan(tmp_path, steps)], independent)
    message, _ = _only_failure(result)
    assert message == "the reply 'Understood.' does not contain 'hello'"


def test_a_gateway_answering_an_empty_history_fails_the_switch_plan_at_its_step(
    tmp_path: Path,
) -> None:
    report = tmp_path / "r.json"
    result, document = run(
        str(PLANS / "tp2-switch.yaml"),
        "--target-factory",
        "tests.broken.scenario_breaks:history_always_empty",
        "--json",
        str(report),
    )
    assert result.returncode == 1
    (scenario,) = document["scenarios"]  # type: ignore[index]
    failed = [step for step in scenario["steps"] if step["status"] == "failed"]
    assert [step["action"] for step in failed] == ["expect_history"]
    assert failed[0]["line"] == 25
    assert "(expected message 1 of 2); it holds none" in failed[0]["message"]
    assert any("switch step 8" in line for line in failed[0]["trace"])
    assert "FAIL step 15 (line 25): expect_history" in result.stdout


def test_a_gateway_that_drops_every_socket_fails_tp1_at_its_first_chat(
    tmp_path: Path,
) -> None:
    report = tmp_path / "r.json"
    result, document = run(
        str(PLANS / "tp1-create.yaml"),
        "--target-factory",
        "tests.broken.core_breaks:gateway_refuses_every_socket",
        "--json",
        str(report),
    )
    assert result.returncode == 1
    (scenario,) = document["scenarios"]  # type: ignore[index]
    failed = next(step for step in scenario["steps"] if step["status"] == "failed")
    # The socket opens, then the gateway closes it as unknown: the first message finds it gone.
    assert failed["action"] == "expect_reply"
    assert "the WebSocket closed: received 4404" in failed["message"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "id: x\ntitle: t\nsteps:\n  - sned: hi\n",
            "4: unknown action 'sned' (did you mean 'send'?)",
        ),
        ("id: x\ntitle: t\nsteps:\n  - stop: database\n", "4: stop: service: Input should be"),
        ("id: x\ntitle: t\nsteps:\n  - send: ${who}\n", "4: ${who} is used before a step saves it"),
        ("id: x\ntitle: t\nsteps: []\n", "3: steps: a non-empty list of steps is required"),
        ("id: x\ntitle: t\nprofiles: [nope]\nsteps:\n  - wait: 1\n", "3: profiles: Value error"),
        ("id: x\nsteps:\n  - wait: 1\n", "1: title: Field required"),
        (
            "id: x\ntitle: t\nsteps:\n  - send: [oops\n",
            "4: YAML syntax: while parsing a flow sequence",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - send: a\n    wait: 1\n",
            "4: a step names exactly one action",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - expect_log: {service: gateway}\n",
            "4: expect_log: Value error, give either `contains` (texts a line holds) or `line`",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - expect_log: {service: gateway, contains: []}\n",
            "4: expect_log: Value error, `contains` needs at least one non-empty text",
        ),
    ],
    ids=[
        "typo",
        "bad-value",
        "undefined-variable",
        "no-steps",
        "bad-profile",
        "no-title",
        "yaml-syntax",
        "two-actions",
        "log-without-text",
        "log-with-no-texts",
    ],
)
def test_a_bad_plan_gets_its_file_line_and_reason(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value).startswith(f"{path}:")
    assert reason in str(caught.value)


def test_a_bad_file_among_good_ones_stops_the_run_before_anything_runs(tmp_path: Path) -> None:
    bad = tmp_path / "zz-bad.yaml"
    bad.write_text("id: bad\ntitle: t\nsteps:\n  - expect_stat: loaded\n")
    result, _ = run(str(PLANS / "tp1-create.yaml"), str(bad))
    assert result.returncode == 2
    assert f"{bad}:4: unknown action 'expect_stat' (did you mean 'expect_state'?)" in result.stderr
    assert "target" not in result.stdout


def test_two_plans_with_one_id_are_refused(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("id: same\ntitle: t\nsteps:\n  - wait: 0.1\n")
    with pytest.raises(ScenarioError, match="id 'same' is also used by"):
        load_scenarios(sorted(tmp_path.glob("*.yaml")))


def test_plans_run_as_pytest_items() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-c",
            "/dev/null",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            str(PLANS / "tp1-create.yaml"),
            str(PLANS / "tp3-logs.yaml"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=deadline(120),
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout

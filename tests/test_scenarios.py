"""Test plans: every shipped plan passes against the reference, and its core plans against a
correct implementation unlike it; a broken gateway fails the right step with words a tester
understands, at once when what a step awaits can no longer come; bad files are refused before
anything runs."""

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.target_runner import TargetRunner
from conformance.targets import LogSource, Service
from conformance.targets.reference_target import ReferenceTarget
from scenarios.cli import chosen_clients
from scenarios.loader import ScenarioError, load_scenario, load_scenarios
from scenarios.model import (
    ChatExpect,
    HistoryExpect,
    LogExpect,
    ReplyExpect,
    Scenario,
    SwitchAgentArgs,
    TextArg,
)
from scenarios.results import ScenarioResult
from scenarios.runner import ChatEntry, chat_as_read
from scenarios.session import run_plans
from tests.broken.asgi import rewrite_json
from tests.broken.scenario_breaks import reply_always_empty, turn_never_ends
from tests.fixtures.alternative.harness import SCRIPTED_TARGET_FILE as ALTERNATIVE_SCRIPTED_TARGET
from tests.fixtures.alternative.harness import alternative_environment
from tests.fixtures.stack import deadline
from tests.fixtures.thirdparty.harness import docker_client_or_skip

REPO = Path(__file__).resolve().parents[1]
PLANS = REPO / "scenarios" / "plans"


def run(
    *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    report = Path(args[-1]) if args and args[-1].endswith(".json") else None
    environment = dict(os.environ if env is None else env)
    # The example process target runs `sessionlab` from PATH, as an activated virtualenv does.
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    result = subprocess.run(
        [sys.executable, "-m", "sessionlab.cli", "run", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=deadline(300),
        check=False,
        env=environment,
    )
    return result, json.loads(report.read_text()) if report and report.exists() else {}


# Where the real IDE cannot do what a plan asks: known failures of the shipped client model.
SHIPPED_KNOWN = {"restart-restore": 5, "reconnect-after-cut": 6}


def outcomes_by_client(document: dict[str, object]) -> dict[tuple[str, str], str]:
    return {(s["id"], s["client"]): s["status"] for s in document["scenarios"]}  # type: ignore[attr-defined]


def assert_known_shipped_failures(document: dict[str, object]) -> None:
    """The shipped client's known failures, and nothing else, are noted; the designed one has
    none."""
    notes = {
        (s["id"], s["client"]): s["notes"]
        for s in document["scenarios"]  # type: ignore[attr-defined]
        if s["notes"]
    }
    assert set(notes) == {(plan, "shipped") for plan in SHIPPED_KNOWN}, notes
    for plan, step in SHIPPED_KNOWN.items():
        (note,) = notes[(plan, "shipped")]
        assert note.startswith(f"step {step} known to fail with the shipped client: the shipped ")


def test_every_shipped_plan_passes_against_the_reference_with_both_clients(
    tmp_path: Path,
) -> None:
    report = tmp_path / "plans.json"
    result, document = run(
        str(PLANS),
        "--client",
        "both",
        "--junit-xml",
        str(tmp_path / "plans.xml"),
        "--json",
        str(report),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    statuses = outcomes_by_client(document)
    plans = len(list(PLANS.glob("*.yaml")))
    assert len(statuses) == 2 * plans
    # The in-process reference cannot SIGKILL or freeze its runtime and has no proxy before it:
    # those plans are skipped, with the reason.
    assert {k for k, v in statuses.items() if v != "passed"} == {
        (plan, client)
        for plan in ("runtime-killed-mid-chat", "runtime-hop-faults")
        for client in ("designed", "shipped")
    }
    assert "the target cannot kill its runtime" in result.stdout
    assert "the target offers no fault proxy between gateway and runtime" in result.stdout
    assert_known_shipped_failures(document)
    assert "TP-2 [shipped] Switch between sessions: PASSED" in result.stdout
    assert "  KNOWN step 5 (line 13): expect_session" in result.stdout
    junit = (tmp_path / "plans.xml").read_text()
    assert junit.count("<testcase") == len(statuses)
    assert 'name="TP-1 [shipped] Create a session' in junit
    assert '<property name="note" value="step 5 known to fail with the shipped client' in junit


@pytest.mark.parametrize("kind", ["process", "container"])
def test_every_shipped_plan_passes_against_the_reference_as_a_launched_target(
    tmp_path: Path, kind: str
) -> None:
    if kind == "container":
        docker_client_or_skip()
    report = tmp_path / "plans.json"
    target = REPO / "examples" / "targets" / f"reference-{kind}.yaml"
    result, document = run(
        str(PLANS), "--target", str(target), "--client", "both", "--json", str(report)
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    statuses = outcomes_by_client(document)
    assert len(statuses) == 2 * len(list(PLANS.glob("*.yaml")))
    assert set(statuses.values()) == {"passed"}
    assert_known_shipped_failures(document)


def test_every_plan_passes_against_the_alternative_with_both_clients(tmp_path: Path) -> None:
    """The independently written stack, launched as processes in its scripted mode (its own
    agents and wording, an approval answered at once): every plan passes with each client model,
    the shipped one's known failures aside."""
    report = tmp_path / "plans.json"
    result, document = run(
        str(PLANS),
        "--target",
        str(ALTERNATIVE_SCRIPTED_TARGET),
        "--client",
        "both",
        "--json",
        str(report),
        env=alternative_environment(),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    statuses = outcomes_by_client(document)
    plans = load_scenarios(sorted(PLANS.glob("*.yaml")))
    assert statuses == {
        (plan.id, client): "passed" for plan in plans for client in ("designed", "shipped")
    }
    assert_known_shipped_failures(document)


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
        if isinstance(args, ChatExpect):
            for item in args.items:
                if item.kind == "assistant" and (item.text or item.contains):
                    found.append(f"{where}: checks the agent's wording in the chat")
                if item.kind in ("tool_call", "tool_result", "agent_switch"):
                    found.append(f"{where}: a chat item only a directive brings")
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
  - expect_chat: [{kind: user}, {kind: assistant, text: hello}]
  - expect_chat: [{kind: tool_result}]
"""
    )
    found = agent_dependencies(load_scenario(path))
    assert [entry.split(":")[0] for entry in found] == [
        "line 4 send",
        "line 5 expect_tool_call",
        "line 6 expect_reply",
        "line 7 expect_history",
        "line 8 expect_log",
        "line 9 expect_chat",
        "line 10 expect_chat",
    ]


def test_every_core_plan_passes_against_a_correct_implementation_unlike_the_reference(
    tmp_path: Path,
) -> None:
    """An agent answering in its own words after tool rounds of its own, a gateway logging
    `[<id>] WebSocket connected`: nothing the contract forbids, so no core plan may fail, with
    either client model."""
    report = tmp_path / "plans.json"
    result, document = run(
        str(PLANS),
        "--target-factory",
        "tests.broken.scenario_breaks:independent_implementation",
        "--client",
        "both",
        "--json",
        str(report),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    outcomes = {
        (s["id"], s["client"]): (s["status"], s["message"])
        for s in document["scenarios"]  # type: ignore[attr-defined]
    }
    plans = load_scenarios(sorted(PLANS.glob("*.yaml")))
    scripted = {plan.id for plan in plans if "scripted" in plan.profiles}
    assert scripted == {"agent-switch", "approvals", "tool-round-trip"}
    skipped_as_scripted = {
        key
        for key, (status, message) in outcomes.items()
        if status == "skipped" and "does not claim profile 'scripted'" in message
    }
    assert skipped_as_scripted == {(plan, c) for plan in scripted for c in ("designed", "shipped")}
    # The in-process variant cannot kill or freeze its runtime: those two are skipped as well.
    passed = {key for key, (status, _) in outcomes.items() if status == "passed"}
    assert passed == {
        (plan.id, client)
        for plan in plans
        for client in ("designed", "shipped")
        if plan.id not in scripted | {"runtime-killed-mid-chat", "runtime-hop-faults"}
    }
    assert_known_shipped_failures(document)


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
        "--client",
        "both",
        "--json",
        str(report),
    )
    assert result.returncode == 1
    scenarios = document["scenarios"]
    assert [s["client"] for s in scenarios] == ["designed", "shipped"]  # type: ignore[attr-defined]
    for scenario in scenarios:  # type: ignore[attr-defined]
        failed = [step for step in scenario["steps"] if step["status"] == "failed"]
        assert [step["action"] for step in failed] == ["expect_history"]
        assert failed[0]["line"] == 36
        assert "(expected message 1 of 2); it holds none" in failed[0]["message"]
        assert any("switch step 8" in line for line in failed[0]["trace"])
    assert "FAIL step 23 (line 36): expect_history" in result.stdout
    # Failing with both client models is no difference between them.
    assert "passed with" not in result.stdout


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
    # Whichever is seen first, the close itself or the socket found gone, names the cause.
    assert (
        "the WebSocket closed: received 4404" in failed["message"]
        or "no WebSocket is open to bring it" in failed["message"]
    ), failed["message"]


# --- client models, known failures, the steps of the design note's plans ---------------------

CLIENTS = ("designed", "shipped")


def _named_plan(tmp_path: Path, name: str, header: str, steps: str) -> Scenario:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"id: {name}\ntitle: {name}\n{header}steps:\n{steps}")
    return load_scenario(path)


async def test_each_plan_runs_once_per_client_model_unless_it_names_its_clients(
    tmp_path: Path, reference: TargetRunner
) -> None:
    steps = (
        "  - open_panel: {}\n"
        "  - expect_state: loaded\n"
        "  - new_session: {}\n"
        "  - expect_state: {designed: newSessionCreated, shipped: loaded}\n"
        "  - send: hello\n"
        "  - expect_reply: {}\n"
        "  - back_to_list: {}\n"
        "  - expect_state: loaded\n"
        "  - expect_connected: ${session}\n"
    )
    every = _named_plan(tmp_path, "every", "", steps)
    only = _named_plan(tmp_path, "only", "clients: [designed]\n", steps)
    results = await run_plans([every, only], reference, clients=CLIENTS)
    assert [(r.label, r.status) for r in results] == [
        ("every [designed]", "passed"),
        ("every [shipped]", "passed"),
        ("only [designed]", "passed"),
        ("only [shipped]", "skipped"),
    ], [r.render() for r in results]
    assert results[3].message == "the plan runs only with the designed client, not the shipped one"


async def test_a_state_per_client_model_is_checked_against_that_model(
    tmp_path: Path, reference: TargetRunner
) -> None:
    steps = (
        "  - new_session: {}\n  - expect_state: {designed: loaded, shipped: newSessionCreated}\n"
    )
    designed, shipped = await run_plans([_plan(tmp_path, steps)], reference, clients=CLIENTS)
    assert _only_failure(designed)[0] == (
        "the session manager is 'newSessionCreated', expected 'loaded' (the designed client)"
    )
    assert _only_failure(shipped)[0] == (
        "the session manager is 'loaded', expected 'newSessionCreated' (the shipped client)"
    )


KNOWN = '    known_failure: {shipped: "the real IDE cannot"}\n'


async def test_a_known_failure_stops_the_plan_as_passed_with_a_note(
    tmp_path: Path, reference: TargetRunner
) -> None:
    steps = (
        "  - new_session: {}\n    as: one\n  - new_session: {}\n"
        '  - expect_session: {equals: "${one}"}\n' + KNOWN + "  - expect_connected: ${one}\n"
    )
    designed, shipped = await run_plans([_plan(tmp_path, steps)], reference, clients=CLIENTS)
    # Known to fail with the shipped client only: the designed one is not excused.
    assert _only_failure(designed)[0].startswith("the current session is session_")
    assert shipped.status == "passed"
    assert [step.status for step in shipped.steps] == [
        "passed",
        "passed",
        "known failure",
        "not run",
    ]
    assert shipped.notes == ["step 3 known to fail with the shipped client: the real IDE cannot"]
    assert shipped.steps[2].message.startswith("the current session is session_")
    rendered = shipped.render()
    assert "note: step 3 known to fail with the shipped client: the real IDE cannot" in rendered
    assert "KNOWN step 3 (line 8): expect_session" in rendered
    assert shipped.as_dict()["notes"] == shipped.notes


async def test_a_step_known_to_fail_that_passes_is_noted_and_the_plan_goes_on(
    tmp_path: Path, reference: TargetRunner
) -> None:
    steps = "  - new_session: {}\n  - expect_listed: ${session}\n" + KNOWN
    steps += "  - expect_connected: ${session}\n"
    (result,) = await run_plans([_plan(tmp_path, steps)], reference, clients=["shipped"])
    assert result.status == "passed", result.render()
    assert [step.status for step in result.steps] == ["passed"] * 3
    assert result.notes == [
        "step 2 is known to fail with the shipped client (the real IDE cannot), but it passed"
    ]


async def test_a_turn_on_a_socket_the_ide_does_not_reopen_fails_at_once(
    tmp_path: Path, reference: TargetRunner
) -> None:
    steps = (
        "  - new_session: {}\n  - network: {hop: ide, fault: cut}\n"
        "  - send: hello\n  - expect_reply: {}\n"
    )
    designed, shipped = await run_plans([_plan(tmp_path, steps)], reference, clients=CLIENTS)
    # The designed IDE reopens the socket and the turn goes on; the shipped one's send is lost.
    assert designed.status == "passed", designed.render()
    message, duration = _only_failure(shipped)
    assert duration < 5
    assert message.startswith("expected a final reply within 30 s; after ")
    assert "no WebSocket is open to bring it: the IDE's socket to session_" in message


def test_a_plan_passing_with_one_client_model_only_is_named_in_the_summary(
    tmp_path: Path,
) -> None:
    text = (PLANS / "restart-restore.yaml").read_text()
    # The plan without its known failure: the shipped IDE restores nothing, so it fails.
    unexcused = re.sub(r"    known_failure:\n(?:      .*\n|        .*\n)+", "", text)
    assert "known_failure" not in unexcused
    plan = tmp_path / "restart-restore.yaml"
    plan.write_text(unexcused)
    result, document = run(str(plan), "--client", "both", "--json", str(tmp_path / "r.json"))
    assert result.returncode == 1
    line = (
        "restart-restore: passed with designed, failed with shipped: "
        "step 5 (expect_session): the IDE has no current session"
    )
    assert line in result.stdout.splitlines()
    assert document["summary"]["client_differences"] == [line]  # type: ignore[index]
    assert document["summary"]["clients"] == ["designed", "shipped"]  # type: ignore[index]


def test_the_client_model_is_the_option_else_the_target_files_else_designed(
    tmp_path: Path,
) -> None:
    target = tmp_path / "reference.yaml"
    target.write_text("kind: reference\nclient: shipped\n")
    assert chosen_clients(None, None) == ("designed",)
    assert chosen_clients(None, str(target)) == ("shipped",)
    assert chosen_clients("designed", str(target)) == ("designed",)
    assert chosen_clients("both", None) == CLIENTS
    result, _ = run(str(PLANS / "tp1-create.yaml"), "--target", str(target))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "client model(s): shipped" in result.stdout
    assert "TP-1 [shipped] Create a session: PASSED" in result.stdout
    target.write_text("kind: reference\nclient: browser\n")
    refused, _ = run(str(PLANS / "tp1-create.yaml"), "--target", str(target))
    assert refused.returncode == 2
    assert f"{target}:2 client: unknown client model 'browser'" in refused.stderr


class _RewrittenLogs:
    """A service's log lines as another implementation would write them."""

    def __init__(self, source: LogSource, rewrite: Callable[[list[str]], list[str]]) -> None:
        self.source = source
        self.rewrite = rewrite

    def lines(self) -> list[str]:
        return self.rewrite(self.source.lines())

    async def wait_for(self, pattern: str, since: int = 0) -> str:
        compiled = re.compile(pattern)
        while True:
            for line in self.lines()[since:]:
                if compiled.search(line):
                    return line
            await asyncio.sleep(0.02)


class _LogsRewritten(ReferenceTarget):
    def __init__(self, service: Service, rewrite: Callable[[list[str]], list[str]]) -> None:
        super().__init__()
        self.rewritten = service
        self.rewrite = rewrite

    def logs(self, service: Service) -> LogSource:
        source = super().logs(service)
        return _RewrittenLogs(source, self.rewrite) if service == self.rewritten else source


def _created_before_creating(lines: list[str]) -> list[str]:
    """Each "Creating new session" line moved after the "Created new session" line it announces."""
    out: list[str] = []
    waiting: list[str] = []
    for line in lines:
        if "Creating new session" in line:
            waiting.append(line)
            continue
        out.append(line)
        if "Created new session" in line:
            out.extend(waiting)
            waiting.clear()
    return out + waiting


def _no_connections(lines: list[str]) -> list[str]:
    return [line for line in lines if "WebSocket connected" not in line]


def _first_connection_only(lines: list[str]) -> list[str]:
    """A gateway that logs a session's first connection, never its reconnections."""
    seen: set[str] = set()
    out = []
    for line in lines:
        if "WebSocket connected" in line:
            (session,) = re.findall(r"session_\w+", line)
            if session in seen:
                continue
            seen.add(session)
        out.append(line)
    return out


async def _design_note_plans(
    service: Service, rewrite: Callable[[list[str]], list[str]]
) -> dict[str, ScenarioResult]:
    runner = TargetRunner(_LogsRewritten(service, rewrite))
    runner.start(timeout=deadline(60))
    try:
        plans = [load_scenario(PLANS / name) for name in ("tp1-create.yaml", "tp3-logs.yaml")]
        return {result.id: result for result in await run_plans(plans, runner)}
    finally:
        runner.close()


async def test_creation_logged_in_the_wrong_order_fails_tp1_and_tp3_at_their_order_step() -> None:
    results = await _design_note_plans("runtime", _created_before_creating)
    for plan, step in (("TP-1", 4), ("TP-3", 2)):
        message, _ = _only_failure(results[plan])
        failed = results[plan].failed_step
        assert failed is not None
        assert (failed.index + 1, failed.action) == (step, "expect_log")
        assert message.startswith(
            "waited 5 s for runtime log lines in order: 'Creating new session', then "
            "'Created new session: session_"
        )
        assert "1 line(s) holding 'Created new session: session_" in message
        assert "no line holding 'Creating new session' before 'INFO" in message


async def test_a_gateway_that_does_not_log_connections_fails_tp1_and_tp3() -> None:
    results = await _design_note_plans("gateway", _no_connections)
    for plan, step in (("TP-1", 8), ("TP-3", 3)):
        message, _ = _only_failure(results[plan])
        failed = results[plan].failed_step
        assert failed is not None
        assert (failed.index + 1, failed.action) == (step, "expect_log")
        assert message.startswith(
            "waited 5 s for a gateway log line containing all of 'WebSocket connected', 'session_"
        )


async def test_a_gateway_that_does_not_log_a_switch_fails_tp3_at_the_switch() -> None:
    results = await _design_note_plans("gateway", _first_connection_only)
    assert results["TP-1"].status == "passed", results["TP-1"].render()
    message, _ = _only_failure(results["TP-3"])
    failed = results["TP-3"].failed_step
    assert failed is not None
    assert (failed.index + 1, failed.line) == (8, 27)
    assert "1 line(s) holding 'WebSocket connected' + 'session_" in message


async def test_the_stored_session_and_agent_are_what_the_preferences_hold(
    tmp_path: Path, reference: TargetRunner
) -> None:
    stored = "  - new_session: {}\n    as: one\n  - new_session: {}\n"
    plans = [
        _named_plan(tmp_path, "right", "", stored + "  - expect_stored: {agent: orchestrator}\n"),
        _named_plan(tmp_path, "old", "", stored + "  - expect_stored: ${one}\n"),
        _named_plan(tmp_path, "agent", "", stored + "  - expect_stored: {agent: coder}\n"),
    ]
    right_d, right_s, old_d, old_s, agent_d, agent_s = await run_plans(
        plans, reference, clients=CLIENTS
    )
    assert right_d.status == right_s.status == "passed"
    for result in (old_d, old_s):
        message, _ = _only_failure(result)
        assert re.fullmatch(
            r"the IDE's preferences hold session session_\w+, expected session_\w+", message
        )
    for result in (agent_d, agent_s):
        assert _only_failure(result)[0] == (
            "the IDE's preferences hold agent orchestrator, expected coder"
        )


def _creates(method: str, path: str) -> bool:
    return method == "POST" and path == "/sessions"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda body: {**body, "current_agent": "coder"},
            "the create answer's current_agent is 'coder', expected 'orchestrator'",
        ),
        (
            lambda body: {k: v for k, v in body.items() if k != "created_at"},
            "the create answer has no created_at (it has ['current_agent', 'message_count', "
            "'session_id'])",
        ),
        (
            lambda body: {**body, "created_at": None},
            "the create answer has no created_at (it is null)",
        ),
    ],
    ids=["wrong-agent", "no-created-at", "null-created-at"],
)
async def test_a_create_answer_without_what_r_create_1_asks_fails_tp1(
    change: Callable[[dict[str, object]], dict[str, object]], reason: str
) -> None:
    runner = TargetRunner(ReferenceTarget(gateway_wrapper=rewrite_json(_creates, change)))
    runner.start(timeout=deadline(60))
    try:
        results = await run_plans(
            [load_scenario(PLANS / "tp1-create.yaml")], runner, clients=CLIENTS
        )
    finally:
        runner.close()
    for result in results:
        message, _ = _only_failure(result)
        failed = result.failed_step
        assert failed is not None
        assert (failed.index + 1, failed.action) == (6, "expect_created")
        assert message == reason


def _no_replies(body: dict[str, Any]) -> dict[str, Any]:
    messages = [m for m in body["messages"] if m.get("role") != "assistant"]
    return {**body, "messages": messages, "message_count": len(messages)}


async def test_the_chat_a_switch_shows_is_checked_item_by_item(tmp_path: Path) -> None:
    history = re.compile(r"/sessions/[^/]+/history")
    wrapper = rewrite_json(
        lambda method, path: method == "GET" and bool(history.fullmatch(path)), _no_replies
    )
    runner = TargetRunner(ReferenceTarget(gateway_wrapper=wrapper))
    runner.start(timeout=deadline(60))
    steps = (
        "  - new_session: {}\n    as: one\n  - send: hi there\n  - expect_reply: {}\n"
        "  - new_session: {}\n  - switch_to: ${one}\n"
        '  - expect_chat: [{kind: user, text: "hi there"}, {kind: assistant}]\n'
    )
    try:
        results = await run_plans([_plan(tmp_path, steps)], runner, clients=CLIENTS)
    finally:
        runner.close()
    for result in results:
        assert _only_failure(result)[0] == (
            "the chat has no item {'kind': 'assistant'} after item 1 (expected item 2 of 2); "
            "it shows 1 item(s), consecutive assistant bubbles read as one: [\"user: 'hi there'\"]"
        )


def test_consecutive_assistant_bubbles_read_as_one_reply() -> None:
    bubbles = [
        ChatEntry("user", "hi"),
        ChatEntry("assistant", "hello "),
        ChatEntry("assistant", "there"),
        ChatEntry("tool_result", "ok"),
        ChatEntry("assistant", "done"),
    ]
    assert chat_as_read(bubbles) == [
        ChatEntry("user", "hi"),
        ChatEntry("assistant", "hello there"),
        ChatEntry("tool_result", "ok"),
        ChatEntry("assistant", "done"),
    ]


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
            "4: expect_log: Value error, give one of `contains` (texts a line holds), `line` (a "
            "regex) or `in_order` (lines in order)",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - expect_log: {service: gateway, contains: []}\n",
            "4: expect_log: Value error, `contains` needs at least one non-empty text",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - expect_log: {service: runtime, in_order: [a]}\n",
            "4: expect_log: Value error, `in_order` needs two lines or more",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - expect_log:\n      service: runtime\n"
            "      contains: a\n      in_order: [a, b]\n",
            "4: expect_log: Value error, give one of `contains` (texts a line holds), `line`",
        ),
        ("id: x\ntitle: t\nclients: [browser]\nsteps:\n  - wait: 1\n", "3: clients.0: Input"),
        ("id: x\ntitle: t\nclients: []\nsteps:\n  - wait: 1\n", "3: clients: List should have"),
        (
            "id: x\ntitle: t\nsteps:\n  - wait: 1\n    known_failure: {browser: why}\n",
            "5: known_failure: unknown client model 'browser' (known: designed, shipped)",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - wait: 1\n    known_failure:\n      shipped: ''\n",
            "6: known_failure: the reason is required: why the shipped client cannot",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - wait: 1\n    known_failure: shipped\n",
            "5: known_failure: a mapping of client model to the reason",
        ),
        (
            "id: x\ntitle: t\nclients: [designed]\nsteps:\n  - wait: 1\n"
            "    known_failure: {shipped: why}\n",
            "6: known_failure: the plan does not run with the shipped client (clients: designed)",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - expect_state: {designed: newSessionCreated}\n",
            "4: expect_state: no state for the shipped client, which the plan runs with",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - expect_state: {state: loaded, shipped: loaded}\n",
            "4: expect_state: Value error, give `state` or a state per client model, not both",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - expect_state:\n      designed: loaded\n"
            "      shipped: switched\n",
            "6: expect_state: shipped: Input should be",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - expect_chat: [{kind: bubble}]\n",
            "4: expect_chat: items.0.kind: Input should be 'user', 'assistant'",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - expect_chat: []\n",
            "4: expect_chat: items: List should have at least 1 item",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - expect_stored: {}\n",
            "4: expect_stored: Value error, give `session`, `agent` or both",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - expect_created:\n      current_agent: a\n"
            "      createdat: yes\n",
            "6: expect_created: createdat: Extra inputs are not permitted",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - open_panel: now\n",
            "4: open_panel takes a mapping of arguments",
        ),
        (
            "id: x\ntitle: t\nsteps:\n  - new_session:\n  - send:\n",
            "5: send: text: Field required",
        ),
        ("id: x\ntitle: t\nsteps:\n  -\n", "4: a step is a mapping such as `- send: hello`"),
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
        "log-order-of-one",
        "log-contains-and-order",
        "unknown-client",
        "no-clients",
        "known-failure-unknown-client",
        "known-failure-without-reason",
        "known-failure-not-a-mapping",
        "known-failure-for-a-client-not-run",
        "state-missing-for-a-client",
        "state-both-ways",
        "state-per-client-bad-value",
        "chat-unknown-kind",
        "chat-no-items",
        "stored-nothing",
        "created-unknown-field",
        "panel-with-an-argument",
        "step-with-an-empty-value",
        "empty-step",
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


def test_plans_run_as_pytest_items_once_per_client_model() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            "-c",
            "/dev/null",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "--client",
            "both",
            str(PLANS / "tp1-create.yaml"),
            str(PLANS / "restart-restore.yaml"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=deadline(120),
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "4 passed" in result.stdout
    assert "tp1-create.yaml::TP-1[shipped]" in result.stdout
    assert "restart-restore [shipped]: step 5 known to fail with the shipped client" in (
        result.stdout
    )

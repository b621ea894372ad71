"""Test plans: every shipped plan passes against the reference; a broken gateway fails the right
step with words a tester understands; bad files are refused before anything runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scenarios.loader import ScenarioError, load_scenario, load_scenarios
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

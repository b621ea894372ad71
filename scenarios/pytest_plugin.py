"""Scenario files as pytest items (entry point `pytest11: sessionlab-scenarios`).

A YAML file is collected when it is named on the command line, or lies in a `plans` folder of a
`scenarios` folder. One item per scenario and client model (`--client`, as for `sessionlab run`),
named `ID[model]`; a failure shows every step with the failing one's trace.
"""

import asyncio
from pathlib import Path
from typing import Any

import pytest

from conformance.target_runner import TargetRunner
from conformance.targets.description import TargetFileError
from scenarios.loader import ScenarioError, load_scenario
from scenarios.model import Client, Scenario
from scenarios.results import ScenarioResult

RESULTS = pytest.StashKey[list[ScenarioResult]]()


class ScenarioFailed(AssertionError):
    def __init__(self, result: ScenarioResult) -> None:
        super().__init__(result.render())
        self.result = result


def _is_plan(path: Path, parent: pytest.Collector) -> bool:
    if path.suffix not in (".yaml", ".yml"):
        return False
    if parent.session.isinitpath(path):
        return True
    return path.parent.name == "plans" and path.parent.parent.name == "scenarios"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if _is_plan(file_path, parent):
        collector: ScenarioFile = ScenarioFile.from_parent(parent, path=file_path)
        return collector
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("sessionlab").addoption(
        "--client",
        dest="sessionlab_client",
        choices=["designed", "shipped", "both"],
        help="the IDE simulator's client model for test plans (both: each plan once per model); "
        "default: the target file's `client:`, else designed",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESULTS] = []


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Known client failures and plans that pass with one client model only, as in a run."""
    from scenarios.results import client_differences

    results = config.stash.get(RESULTS, [])
    lines = [f"{r.label}: {note}" for r in results for note in r.notes]
    lines += client_differences(results)
    if lines:
        terminalreporter.section("sessionlab test plans")
        for line in lines:
            terminalreporter.write_line(line)


def _clients(config: pytest.Config) -> tuple[Client, ...]:
    from scenarios.cli import chosen_clients

    return chosen_clients(
        config.getoption("sessionlab_client", None), config.getoption("sessionlab_target", None)
    )


class ScenarioFile(pytest.File):
    def collect(self) -> list[pytest.Item]:
        try:
            scenario = load_scenario(self.path)
            clients = _clients(self.config)
        except (ScenarioError, TargetFileError) as exc:
            raise self.CollectError(str(exc)) from None
        return [
            ScenarioItem.from_parent(
                self, name=f"{scenario.id}[{client}]", callobj=_runner(scenario, client)
            )
            for client in clients
        ]


def _runner(scenario: Scenario, client: Client) -> Any:
    # A plain function taking the conformance plugin's target fixture: pytest resolves fixtures
    # for Function items by the signature, so the scenario shares the run's one target.
    def run_scenario_file(sessionlab_target: TargetRunner, request: pytest.FixtureRequest) -> None:
        from scenarios.session import run_plans

        result = asyncio.run(run_plans([scenario], sessionlab_target, clients=[client]))[0]
        request.config.stash[RESULTS].append(result)
        request.node.user_properties.append(("client", client))
        request.node.user_properties.append(("steps", [s.as_dict() for s in result.steps]))
        for note in result.notes:
            request.node.user_properties.append(("note", note))
        if result.status == "skipped":
            pytest.skip(result.message)
        if result.status != "passed":
            raise ScenarioFailed(result)

    run_scenario_file.scenario = scenario  # type: ignore[attr-defined]
    return run_scenario_file


class ScenarioItem(pytest.Function):
    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, ScenarioFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        scenario: Scenario = self.obj.scenario
        return self.path, 0, f"scenario {self.name}: {scenario.title}"

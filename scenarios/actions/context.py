"""What every action works with while a plan runs: the target, the IDE, the fault proxy, the
plan's variables, and what the plan did to the target."""

from dataclasses import dataclass, field
from typing import Any

import httpx

from conformance.target_runner import TargetRunner
from conformance.targets import Service
from scenarios.ide_protocol import Ide
from scenarios.model import VARIABLE, Args, Client, Scenario
from simulators.faultproxy import FaultProxy


class StepFailed(AssertionError):
    """An expectation of the plan did not hold; the message says what, in the plan's words."""


@dataclass
class Run:
    scenario: Scenario
    target: TargetRunner
    ide: Ide
    proxy: FaultProxy
    http: httpx.AsyncClient
    log_marks: dict[Service, int]
    client: Client = "designed"
    variables: dict[str, str] = field(default_factory=dict)
    # What the plan did to the target, undone when the scenario ends whatever happened.
    stopped: set[Service] = field(default_factory=set)
    paused: set[Service] = field(default_factory=set)
    hop_touched: bool = False

    def resolve(self, text: str) -> str:
        return VARIABLE.sub(lambda match: self.variables[match.group(1)], text)

    def resolved(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.resolve(value)
        if isinstance(value, dict):
            return {key: self.resolved(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolved(item) for item in value]
        return value

    def resolved_args(self, args: Args) -> Args:
        """A step's arguments with the plan's variables put in, validated again."""
        return type(args).model_validate(self.resolved(args.model_dump(exclude_none=True)))

    def remember_session(self, session_id: str) -> None:
        previous = self.variables.get("session")
        if previous is not None and previous != session_id:
            self.variables["previous_session"] = previous
        self.variables["session"] = session_id

"""What a scenario run produced: a verdict per step, with the trace around a failure."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

# "known failure": the step failed with a client model it is known to fail with (`known_failure`);
# the plan stops there and passes, with a note saying so.
StepStatus = Literal["passed", "failed", "known failure", "not run"]
MARKS: dict[StepStatus, str] = {
    "passed": "ok  ",
    "failed": "FAIL",
    "known failure": "KNOWN",
    "not run": "----",
}
ScenarioStatus = Literal["passed", "failed", "skipped", "error"]


@dataclass
class StepResult:
    index: int
    line: int
    action: str
    description: str
    status: StepStatus
    duration: float = 0.0
    message: str = ""
    trace: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "line": self.line,
            "action": self.action,
            "description": self.description,
            "status": self.status,
            "duration": round(self.duration, 4),
            "message": self.message,
            "trace": self.trace,
        }


@dataclass
class ScenarioResult:
    id: str
    title: str
    source: str
    status: ScenarioStatus
    message: str = ""
    duration: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    client: str = "designed"
    # Known failures met, and steps known to fail that passed all the same.
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The plan and the client model it ran with: `TP-2 [shipped]`."""
        return f"{self.id} [{self.client}]"

    @property
    def failed_step(self) -> StepResult | None:
        return next((step for step in self.steps if step.status == "failed"), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client": self.client,
            "title": self.title,
            "source": self.source,
            "status": self.status,
            "message": self.message,
            "notes": self.notes,
            "duration": round(self.duration, 3),
            "steps": [step.as_dict() for step in self.steps],
        }

    def render(self) -> str:
        lines = [f"{self.label} {self.title}: {self.status.upper()} ({self.duration:.1f} s)"]
        if self.message and self.status != "failed":
            lines.append(f"  {self.message}")
        lines.extend(f"  note: {note}" for note in self.notes)
        for step in self.steps:
            mark = MARKS[step.status]
            lines.append(f"  {mark} step {step.index + 1} (line {step.line}): {step.description}")
            if step.status in ("failed", "known failure"):
                lines.append(f"         {step.message}")
            if step.status == "failed":
                lines.extend(f"         | {entry}" for entry in step.trace)
        return "\n".join(lines)


def client_differences(results: Iterable[ScenarioResult]) -> list[str]:
    """One line per plan that passed with one client model and failed with another."""
    by_plan: dict[str, list[ScenarioResult]] = {}
    for result in results:
        by_plan.setdefault(result.id, []).append(result)
    lines = []
    for plan, runs in by_plan.items():
        passed = [run.client for run in runs if run.status == "passed"]
        failed = [run for run in runs if run.status in ("failed", "error")]
        if passed and failed:
            why = "; ".join(f"failed with {run.client}: {run.message}" for run in failed)
            lines.append(f"{plan}: passed with {', '.join(passed)}, {why}")
    return lines

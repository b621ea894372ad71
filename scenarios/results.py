"""What a scenario run produced: a verdict per step, with the trace around a failure."""

from dataclasses import dataclass, field
from typing import Any, Literal

StepStatus = Literal["passed", "failed", "not run"]
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

    @property
    def failed_step(self) -> StepResult | None:
        return next((step for step in self.steps if step.status == "failed"), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "source": self.source,
            "status": self.status,
            "message": self.message,
            "duration": round(self.duration, 3),
            "steps": [step.as_dict() for step in self.steps],
        }

    def render(self) -> str:
        lines = [f"{self.id} {self.title}: {self.status.upper()} ({self.duration:.1f} s)"]
        if self.message and self.status != "failed":
            lines.append(f"  {self.message}")
        for step in self.steps:
            mark = {"passed": "ok  ", "failed": "FAIL", "not run": "----"}[step.status]
            lines.append(f"  {mark} step {step.index + 1} (line {step.line}): {step.description}")
            if step.status == "failed":
                lines.append(f"         {step.message}")
                lines.extend(f"         | {entry}" for entry in step.trace)
        return "\n".join(lines)

"""Approval policies: how the simulated user answers a tool call that needs approval."""

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Decision = Literal["approve", "edit", "reject"]


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    arguments: dict[str, Any] | None = None
    feedback: str | None = None


class ApprovalPolicy(Protocol):
    async def decide(self, tool_name: str, arguments: dict[str, Any]) -> Verdict: ...


class ApproveAll:
    async def decide(self, tool_name: str, arguments: dict[str, Any]) -> Verdict:
        return Verdict("approve")


class AskTheTester:
    """Waits for a decision given from outside (a scenario step, a driver call)."""

    def __init__(self) -> None:
        self._verdicts: asyncio.Queue[Verdict] = asyncio.Queue()

    def give(self, verdict: Verdict) -> None:
        self._verdicts.put_nowait(verdict)

    async def decide(self, tool_name: str, arguments: dict[str, Any]) -> Verdict:
        return await self._verdicts.get()

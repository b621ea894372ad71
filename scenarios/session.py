"""Running plans: one IDE per scenario and client model, each with its own preferences file,
against one target."""

import tempfile
from collections.abc import Sequence
from pathlib import Path

from conformance.target_runner import TargetRunner
from scenarios.ide_protocol import Ide
from scenarios.model import Client, Scenario
from scenarios.results import ScenarioResult
from scenarios.runner import run_scenario


async def run_plans(
    scenarios: Sequence[Scenario],
    target: TargetRunner,
    step_timeout: float | None = None,
    clients: Sequence[Client] = ("designed",),
) -> list[ScenarioResult]:
    """Each plan once per client model, plan by plan; a plan restricted to other models
    (`clients:`) is reported skipped with the reason."""
    from scenarios.ide_adapter import open_ide

    bound = step_timeout or max(30.0, target.turn_timeout * 2)
    results = []
    for scenario in scenarios:
        for client in clients:
            with tempfile.TemporaryDirectory(prefix=f"sessionlab-{scenario.id}-") as scratch:
                preferences = Path(scratch) / "preferences.json"

                async def make_ide(
                    gateway_url: str, preferences: Path = preferences, client: Client = client
                ) -> Ide:
                    return await open_ide(gateway_url, preferences, target, bound, client)

                results.append(await run_scenario(scenario, target, make_ide, bound, client))
    return results

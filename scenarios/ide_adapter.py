"""The simulated IDE a scenario drives, set up for the target at hand."""

from pathlib import Path

from conformance.target_runner import TargetRunner
from simulators.ide import Ide, IdeSettings


async def open_ide(
    gateway_url: str, preferences: Path, target: TargetRunner, turn_timeout: float
) -> Ide:
    endpoints = target.endpoints
    assert endpoints is not None
    settings = IdeSettings(
        gateway_url=gateway_url,
        client_key=endpoints.client_key,
        headers=endpoints.socket_headers(),
        turn_timeout=turn_timeout,
    )
    return Ide(settings, preferences)

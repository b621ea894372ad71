"""Container targets on a real Docker engine: the reference image run with host networking, killed,
restarted, paused and read; containers removed after. Skipped with the reason where no engine or
image is here; under CI their absence fails."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conformance.targets import TargetError
from conformance.targets.container_target import RUN_LABEL, ContainerTarget
from conformance.targets.description import ContainerDescription, load_description
from conformance.targets.loader import build_target
from tests.fixtures.stack import deadline
from tests.fixtures.thirdparty.harness import (
    EXAMPLES,
    assert_nothing_left,
    client,
    create_session,
    docker_client_or_skip,
    history_status,
)


@pytest.fixture
def docker_client() -> Iterator[Any]:
    engine = docker_client_or_skip()
    yield engine
    engine.close()  # type: ignore[attr-defined]


def containers_of(docker_client: Any, target: ContainerTarget) -> list[Any]:
    found: list[Any] = docker_client.containers.list(
        all=True, filters={"label": f"{RUN_LABEL}={target.run_id}"}
    )
    return found


@pytest.fixture
async def reference_containers(
    docker_client: Any, tmp_path: Path
) -> AsyncIterator[ContainerTarget]:
    target = build_target(
        load_description(EXAMPLES / "reference-container.yaml"), EXAMPLES, tmp_path / "run"
    )
    assert isinstance(target, ContainerTarget)
    await target.start()
    try:
        yield target
    finally:
        await target.close()
    assert containers_of(docker_client, target) == []
    assert_nothing_left(target)


async def test_the_reference_image_runs_killed_and_restarted_behind_a_live_gateway(
    reference_containers: ContainerTarget, docker_client: Any
) -> None:
    target = reference_containers
    assert len(containers_of(docker_client, target)) == 2
    runtime_id = target.container_id("runtime")
    async with client(target.endpoints) as gateway:
        session_id = await create_session(gateway)
        await target.kill_service("runtime")
        assert docker_client.containers.get(runtime_id).status == "exited"
        assert await history_status(gateway, session_id) in (502, 503)
        await target.start_service("runtime")
        # The same container again: its data directory is the mounted one, so the session is there.
        assert target.container_id("runtime") == runtime_id
        assert await history_status(gateway, session_id) == 200
    async with asyncio.timeout(deadline(10)):
        await target.logs("runtime").wait_for(f"Created new session: {session_id}")
    # Lines of the first run are not read twice after the restart.
    created = [line for line in target.logs("runtime").lines() if "Created new session" in line]
    assert len(created) == 1


async def test_a_paused_runtime_container_is_silent_until_unpaused(
    reference_containers: ContainerTarget,
) -> None:
    target = reference_containers
    endpoints = target.endpoints
    async with httpx.AsyncClient(
        base_url=endpoints.runtime_url or "", headers=endpoints.runtime_headers(), trust_env=False
    ) as runtime:
        await target.pause_service("runtime")
        with pytest.raises(httpx.ReadTimeout):
            await runtime.get("/sessions", timeout=1.0)
        await target.resume_service("runtime")
        assert (await runtime.get("/sessions", timeout=deadline(10))).status_code == 200
        started = time.monotonic()
        await target.stop_service("runtime")
        assert time.monotonic() - started < deadline(15)  # SIGTERM is heeded, no SIGKILL wait
        with pytest.raises(httpx.ConnectError):
            await runtime.get("/sessions", timeout=deadline(5))


async def test_an_image_that_is_not_built_is_named(docker_client: Any, tmp_path: Path) -> None:
    description = load_description(EXAMPLES / "reference-container.yaml")
    assert isinstance(description, ContainerDescription)
    services = description.services
    missing = description.model_copy(
        update={
            "services": services.model_copy(
                update={
                    "runtime": services.runtime.model_copy(
                        update={"image": "sessionlab-not-built:latest"}
                    )
                }
            )
        }
    )
    target = build_target(missing, EXAMPLES, tmp_path / "run")
    assert isinstance(target, ContainerTarget)
    with pytest.raises(TargetError, match="sessionlab-not-built:latest is not on this Docker"):
        await target.start()
    assert containers_of(docker_client, target) == []

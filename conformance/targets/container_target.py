"""The `container` target: each service is a container, on the host's network.

Containers share the host's loopback (no bridge exists on these machines, and none is made), so a
service listens on 127.0.0.1:<port> with a port sessionlab picked. The data directory is mounted
at the same path inside, so `{data_dir}` means the same thing on both sides. Every container
carries the labels `org.sessionlab.target` and `org.sessionlab.run`; close() removes them all.
"""

import asyncio
import contextlib
import os
import re
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance.targets.base import Service, TargetError
from conformance.targets.description import (
    ContainerDescription,
    ContainerService,
    ProcessService,
    fill,
)
from conformance.targets.launched import (
    KILL_WAIT,
    RUN_ID_VARIABLE,
    LaunchedTarget,
    ServiceRunner,
    redact,
)
from conformance.targets.logs import LogBuffer

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

TARGET_LABEL = "org.sessionlab.target"
RUN_LABEL = "org.sessionlab.run"
# How long the log reader may take to see the end of a stopped container's output.
DRAIN_WAIT = 5.0
_TIMESTAMPED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z (.*)$")


def docker_container_class() -> "type[DockerContainer]":
    """testcontainers' DockerContainer, with its reaper off.

    The reaper is an image pulled from a registry, and no registry is reachable here: sessionlab
    removes its containers itself. The variable is read when testcontainers is first imported,
    and the setting is forced as well in case it was imported before.
    """
    os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer

    testcontainers_config.ryuk_disabled = True
    return DockerContainer


def _stamp_key(seconds: str, fraction: str | None) -> tuple[str, str]:
    # Docker writes nanoseconds; pad, so keys compare in time order whatever the width.
    return seconds, (fraction or "").ljust(9, "0")


class ContainerRunner(ServiceRunner):
    def __init__(
        self,
        service: Service,
        image: str,
        command: list[str],
        entrypoint: list[str] | None,
        env: Mapping[str, str],
        data_dir: Path,
        labels: Mapping[str, str],
        name: str,
        console: LogBuffer,
        log_path: Path,
        secrets: tuple[str, ...],
    ) -> None:
        super().__init__(service, console, log_path)
        self.image = image
        self.command = command
        self.entrypoint = entrypoint
        self.env = dict(env)
        self.data_dir = data_dir
        self.labels = dict(labels)
        self.name = name
        self._secrets = secrets
        self._container: DockerContainer | None = None
        self._exit: int | None = -1  # never started
        self._paused = False
        self._reader: threading.Thread | None = None
        self._last_stamp: tuple[str, str] = ("", "")
        self._since: float | None = None

    # --- state -------------------------------------------------------------------------------

    def exit_status(self) -> int | None:
        return self._exit

    @property
    def container_id(self) -> str | None:
        wrapped = self._wrapped_or_none()
        return str(wrapped.id) if wrapped is not None else None

    def _wrapped_or_none(self) -> Any:
        return self._container.get_wrapped_container() if self._container is not None else None

    def _wrapped(self) -> Any:
        wrapped = self._wrapped_or_none()
        if wrapped is None:
            raise TargetError(f"the {self.service} container was never created")
        return wrapped

    def _state(self) -> tuple[str, int]:
        wrapped = self._wrapped()
        wrapped.reload()
        state = wrapped.attrs.get("State", {})
        return str(state.get("Status", "")), int(state.get("ExitCode", 0))

    # --- launching ---------------------------------------------------------------------------

    async def launch(self) -> None:
        await self._join_reader()
        self._since = datetime.now(UTC).timestamp() - 1
        await asyncio.to_thread(self._create_or_start)
        self._exit = None
        self._paused = False
        self._reader = threading.Thread(
            target=self._follow, name=f"{self.service} container logs", daemon=True
        )
        self._reader.start()

    def _create_or_start(self) -> None:
        from docker.errors import DockerException, ImageNotFound  # type: ignore[import-untyped]

        with open(self.log_path, "a", encoding="utf-8") as log_file:
            command = redact(" ".join([self.image, *self.command]), self._secrets)
            log_file.write(f"# sessionlab: {self.service} starting: {command}\n")
        try:
            if self._container is not None:
                self._wrapped().start()
                return
            container = self._configured(docker_container_class())
            try:
                container.get_docker_client().client.images.get(self.image)
            except ImageNotFound:
                raise TargetError(
                    f"services.{self.service}.image: {self.image} is not on this Docker engine "
                    "(nothing is pulled; build it first, e.g. scripts/docker/build-images.sh)"
                ) from None
            self._container = container
            if self.watchdog is not None:
                # Named before it exists: a sessionlab killed while it starts leaves no container.
                self.watchdog.watch("container", self.name)
            container.start()
        except DockerException as exc:
            raise TargetError(f"Docker could not start the {self.service}: {exc}") from None

    def _configured(self, container_class: "type[DockerContainer]") -> "DockerContainer":
        from docker.errors import DockerException

        try:
            container = container_class(self.image)
        except DockerException as exc:
            raise TargetError(
                f"no Docker engine answers (is dockerd running, DOCKER_HOST right?): {exc}"
            ) from None
        kwargs: dict[str, Any] = {"network_mode": "host", "labels": self.labels}
        if self.entrypoint is not None:
            kwargs["entrypoint"] = self.entrypoint
        container.with_kwargs(**kwargs).with_name(self.name)
        if self.command:
            container.with_command(self.command)
        for key, value in self.env.items():
            container.with_env(key, value)
        # Same path inside and out: `{data_dir}` in a command means the same folder everywhere.
        container.with_volume_mapping(str(self.data_dir), str(self.data_dir), "rw")
        return container

    # --- output ------------------------------------------------------------------------------

    def _follow(self) -> None:
        """Read the container's output until it stops (a thread: the SDK's stream blocks)."""
        with open(self.log_path, "a", encoding="utf-8") as log_file:
            while True:
                try:
                    for line in self._stream_lines():
                        self.console.append(line)
                        log_file.write(line + "\n")
                        log_file.flush()
                    status, code = self._state()
                except Exception:  # a removed container ends the stream, in any of several ways
                    self._exit = self._exit if self._exit is not None else 137
                    return
                if status not in ("running", "paused", "restarting"):
                    self._exit = code
                    return
                # The stream ended while the container runs (the engine dropped it): read on.

    def _stream_lines(self) -> Iterator[str]:
        stream = self._wrapped().logs(stream=True, follow=True, timestamps=True, since=self._since)
        partial = b""
        for chunk in stream:
            *complete, partial = (partial + chunk).split(b"\n")
            for raw in complete:
                line = self._fresh(raw)
                if line is not None:
                    yield line
        if partial:
            line = self._fresh(partial)
            if line is not None:
                yield line

    def _fresh(self, raw: bytes) -> str | None:
        # A restarted container's stream repeats what was read before the restart (`since` has
        # second granularity on old engines): timestamps tell old lines from new.
        match = _TIMESTAMPED.match(raw.decode("utf-8", "replace").rstrip("\r"))
        if match is None:
            return raw.decode("utf-8", "replace").rstrip("\r")
        key = _stamp_key(match.group(1), match.group(2))
        if key <= self._last_stamp:
            return None
        self._last_stamp = key
        return match.group(3)

    async def _join_reader(self) -> None:
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, DRAIN_WAIT)
            self._reader = None

    # --- control -----------------------------------------------------------------------------

    async def _await_exit(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            status, code = await asyncio.to_thread(self._state)
            if status not in ("running", "paused", "restarting"):
                self._exit = code
                return True
            if loop.time() >= end:
                return False
            await asyncio.sleep(0.1)

    async def terminate(self, grace: float) -> None:
        if self._container is None or not self.running:
            await self._join_reader()
            return
        wrapped = self._wrapped()
        # Like `docker stop`, but a paused container is thawed after the signal, so it can act
        # on it within the grace period rather than sit frozen until SIGKILL.
        await asyncio.to_thread(wrapped.kill, signal="SIGTERM")
        if self._paused:
            await asyncio.to_thread(wrapped.unpause)
            self._paused = False
        if not await self._await_exit(grace):
            await self.kill()
            return
        await self._join_reader()

    async def kill(self) -> None:
        if self._container is None or not self.running:
            return
        from docker.errors import APIError

        with contextlib.suppress(APIError):  # it may have exited on its own meanwhile
            await asyncio.to_thread(self._wrapped().kill)
        if not await self._await_exit(KILL_WAIT):
            raise TargetError(f"the {self.service} container did not exit after SIGKILL")
        self._paused = False
        await self._join_reader()

    async def pause(self) -> None:
        self._require_running("pause")
        await asyncio.to_thread(self._wrapped().pause)
        self._paused = True

    async def resume(self) -> None:
        self._require_running("resume")
        await asyncio.to_thread(self._wrapped().unpause)
        self._paused = False

    async def discard(self) -> None:
        container, self._container = self._container, None
        if container is None:
            return
        from docker.errors import DockerException

        try:
            # stop() removes the container with its anonymous volumes, running or not.
            await asyncio.to_thread(container.stop, force=True, delete_volume=True)
        except DockerException as exc:
            raise TargetError(f"could not remove the {self.service} container: {exc}") from None
        else:
            if self.watchdog is not None:
                self.watchdog.forget("container", self.name)
        finally:
            if self._exit is None:
                self._exit = 137
            await self._join_reader()


class ContainerTarget(LaunchedTarget):
    """Services that are container images (`kind: container`), run with host networking."""

    description: ContainerDescription

    def __init__(
        self, description: ContainerDescription, base_dir: Path, run_dir: Path | None = None
    ) -> None:
        super().__init__(description, base_dir, run_dir)

    def container_id(self, service: Service) -> str | None:
        runner = self._runners.get(service)
        return runner.container_id if isinstance(runner, ContainerRunner) else None

    def _make_runner(
        self, service: Service, spec: ProcessService | ContainerService, values: Mapping[str, str]
    ) -> ServiceRunner:
        assert isinstance(spec, ContainerService)
        keys = self.description.keys
        return ContainerRunner(
            service,
            image=spec.image,
            command=[fill(word, values) for word in spec.command],
            entrypoint=[fill(w, values) for w in spec.entrypoint] if spec.entrypoint else None,
            env={
                **{name: fill(value, values) for name, value in spec.env.items()},
                RUN_ID_VARIABLE: self.run_id,
            },
            data_dir=Path(values["data_dir"]),
            labels={TARGET_LABEL: self.name, RUN_LABEL: self.run_id},
            name=re.sub(r"[^a-zA-Z0-9_.-]", "-", f"sessionlab-{self.name}-{service}-{self.run_id}"),
            console=self._console[service],
            log_path=self.log_path(service),
            secrets=tuple(s for s in (keys.internal, keys.client) if s),
        )

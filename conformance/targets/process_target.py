"""The `process` target: each service is a command sessionlab runs, in its own process group.

Signals go to the whole group, so a service that is a shell script, a supervisor or a server with
worker processes is stopped, killed and paused as one. Output (stdout and stderr together) is read
as it comes, into the service's log lines and its log file under the run directory.
"""

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from conformance.targets.base import Service, TargetError
from conformance.targets.description import (
    ContainerService,
    ProcessDescription,
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

# Output still buffered in a pipe after the process exits is read for at most this long.
DRAIN_WAIT = 5.0


def _with_own_scripts(path: str) -> str:
    """PATH, then the folder of sessionlab's own commands: a target file naming `sessionlab`
    runs the installation that runs it, activated or not; anything else on PATH comes first."""
    own = str(Path(sys.executable).parent)
    folders = path.split(os.pathsep) if path else []
    return os.pathsep.join(folders if own in folders else [*folders, own])


class ProcessRunner(ServiceRunner):
    def __init__(
        self,
        service: Service,
        argv: list[str],
        cwd: Path,
        env: Mapping[str, str],
        console: LogBuffer,
        log_path: Path,
        secrets: tuple[str, ...],
    ) -> None:
        super().__init__(service, console, log_path)
        self.argv = argv
        self.cwd = cwd
        self.env = dict(env)
        self._secrets = secrets
        self._process: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._paused = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self.running else None

    def exit_status(self) -> int | None:
        if self._process is None:
            return -1  # never started
        return self._process.returncode

    async def launch(self) -> None:
        if self._pump is not None:
            await self._finish()  # the previous run ended on its own; read its last words
        if not self.cwd.is_dir():
            raise TargetError(f"services.{self.service}.cwd: {self.cwd} is not a folder")
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                # Its own session and process group: signals reach its children too, and a
                # Ctrl-C meant for sessionlab does not reach it.
                start_new_session=True,
            )
        except FileNotFoundError:
            where = "on PATH" if os.sep not in self.argv[0] else f"(from {self.cwd})"
            raise TargetError(
                f"services.{self.service}.command: {self.argv[0]!r} was not found {where}"
            ) from None
        except PermissionError:
            raise TargetError(
                f"services.{self.service}.command: {self.argv[0]!r} is not executable"
            ) from None
        if self.watchdog is not None:
            self.watchdog.watch("group", self._process.pid)
        self._paused = False
        assert self._process.stdout is not None
        log_file = self.log_path.open("a", encoding="utf-8")
        command = redact(" ".join(self.argv), self._secrets)
        log_file.write(
            f"# sessionlab: {self.service} started, pid {self._process.pid}: {command}\n"
        )
        log_file.flush()
        self._pump = asyncio.create_task(
            self._read_output(self._process.stdout, log_file), name=f"{self.service} output"
        )

    async def _read_output(self, stream: asyncio.StreamReader, log_file: IO[str]) -> None:
        # Chunks, not readline(): one very long line must not stop the reading.
        partial = b""
        try:
            while chunk := await stream.read(65536):
                *complete, partial = (partial + chunk).split(b"\n")
                for raw in complete:
                    self._line(raw, log_file)
            if partial:
                self._line(partial, log_file)
        finally:
            log_file.close()

    def _line(self, raw: bytes, log_file: IO[str]) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        self.console.append(line)
        log_file.write(line + "\n")
        log_file.flush()

    def _signal(self, signum: signal.Signals) -> None:
        if self._process is None:
            return
        # The group id is the leader's pid (start_new_session); it outlives the leader while any
        # member lives, and those members are ours too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signum)

    async def _wait_exit(self, timeout: float) -> bool:
        assert self._process is not None
        try:
            async with asyncio.timeout(timeout):
                await self._process.wait()
        except TimeoutError:
            return False
        return True

    async def _finish(self) -> None:
        # Whatever the leader left behind in its group goes too, then the pipe is read to its end.
        self._signal(signal.SIGKILL)
        if self.watchdog is not None and self._process is not None:
            self.watchdog.forget("group", self._process.pid)
        self._paused = False
        if self._pump is not None:
            try:
                async with asyncio.timeout(DRAIN_WAIT):
                    await self._pump
            except TimeoutError:
                # A process outside the group still holds the pipe open; stop reading it.
                self._pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._pump
            self._pump = None

    async def terminate(self, grace: float) -> None:
        if self._process is None:
            return
        if self.running:
            self._signal(signal.SIGTERM)
            if self._paused:
                # A stopped process acts on SIGTERM only once it runs again.
                self._signal(signal.SIGCONT)
            if not await self._wait_exit(grace):
                await self.kill()
                return
        await self._finish()

    async def kill(self) -> None:
        if self._process is None:
            return
        self._signal(signal.SIGKILL)
        if not await self._wait_exit(KILL_WAIT):
            raise TargetError(
                f"the {self.service} (pid {self._process.pid}) did not exit {KILL_WAIT:g} s "
                "after SIGKILL"
            )
        await self._finish()

    async def pause(self) -> None:
        self._require_running("pause")
        self._signal(signal.SIGSTOP)
        self._paused = True

    async def resume(self) -> None:
        self._require_running("resume")
        self._signal(signal.SIGCONT)
        self._paused = False

    async def discard(self) -> None:
        if self._pump is not None:
            await self._finish()


class ProcessTarget(LaunchedTarget):
    """Services that are commands run on this machine (`kind: process`)."""

    description: ProcessDescription

    def __init__(
        self, description: ProcessDescription, base_dir: Path, run_dir: Path | None = None
    ) -> None:
        super().__init__(description, base_dir, run_dir)

    def pid(self, service: Service) -> int | None:
        runner = self._runners.get(service)
        return runner.pid if isinstance(runner, ProcessRunner) else None

    def _make_runner(
        self, service: Service, spec: ProcessService | ContainerService, values: Mapping[str, str]
    ) -> ServiceRunner:
        assert isinstance(spec, ProcessService)
        cwd = Path(fill(spec.cwd, values)) if spec.cwd else self._base_dir
        keys = self.description.keys
        return ProcessRunner(
            service,
            argv=[fill(word, values) for word in spec.command],
            cwd=cwd if cwd.is_absolute() else self._base_dir / cwd,
            # The environment sessionlab runs in, then the file's own values: PATH, HOME and the
            # like reach the service as they would from a shell.
            env={
                **os.environ,
                "PATH": _with_own_scripts(os.environ.get("PATH", "")),
                **{name: fill(value, values) for name, value in spec.env.items()},
                RUN_ID_VARIABLE: self.run_id,
            },
            console=self._console[service],
            log_path=self.log_path(service),
            secrets=tuple(s for s in (keys.internal, keys.client) if s),
        )

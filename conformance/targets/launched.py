"""What process and container targets share: ports, placeholders, health waits, key checks, the
run directory, the log files and the fault proxy on the gateway-to-runtime hop.

A kind only says how one service is launched and signalled (a `ServiceRunner`); everything a tester
reads in an error message is worded here, once.
"""

import asyncio
import os
import secrets
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from conformance.targets.base import SERVICES, Capability, Endpoints, Service, Target, TargetError
from conformance.targets.description import (
    ContainerDescription,
    ContainerService,
    ProcessDescription,
    ProcessService,
    fill,
)
from conformance.targets.logfile import FileTail
from conformance.targets.logs import LogBuffer, LogSource
from conformance.targets.ports import LOOPBACK, free_ports
from conformance.targets.watchdog import RUN_ID_VARIABLE as RUN_ID_VARIABLE
from conformance.targets.watchdog import Watchdog
from simulators.faultproxy import FaultProxy

TAIL_LINES = 20
# A process that ignores SIGKILL this long is stuck in the kernel; waiting longer helps nobody.
KILL_WAIT = 10.0


class ServiceRunner(ABC):
    """One service, launched the way its kind launches things. Output goes to `console`."""

    def __init__(self, service: Service, console: LogBuffer, log_path: Path) -> None:
        self.service = service
        self.console = console
        self.log_path = log_path
        # Told what this runner launches, to remove it should sessionlab die first.
        self.watchdog: Watchdog | None = None

    @abstractmethod
    async def launch(self) -> None:
        """Start the service (again); raises TargetError naming what is wrong."""

    @abstractmethod
    def exit_status(self) -> int | None:
        """None while the service runs (paused included), else how it ended."""

    @abstractmethod
    async def terminate(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds. Does nothing if it is not running."""

    @abstractmethod
    async def kill(self) -> None: ...

    @abstractmethod
    async def pause(self) -> None: ...

    @abstractmethod
    async def resume(self) -> None: ...

    @abstractmethod
    async def discard(self) -> None:
        """After the last stop: remove whatever launching made (a container)."""

    @property
    def running(self) -> bool:
        return self.exit_status() is None

    def _require_running(self, action: str) -> None:
        if not self.running:
            raise TargetError(f"cannot {action} the {self.service}: it is not running")


@dataclass(frozen=True)
class ServicePlan:
    name: Service
    port: int
    url: str  # where clients reach it: http://127.0.0.1:PORT, with the base path for the gateway
    health_url: str
    start_timeout: float
    stop_timeout: float


# Shorter "keys" are test values; replacing them would garble every word that contains them.
REDACT_MIN_LENGTH = 4


def redact(text: str, secrets: Iterable[str | None]) -> str:
    # Keys reach commands and env values; they must not reach reports (R-AUTH-3 holds us too).
    for secret in secrets:
        if secret and len(secret) >= REDACT_MIN_LENGTH:
            text = text.replace(secret, "***")
    return text


def timeout_scale() -> float:
    # The one knob for every deadline on a slow machine, the same one the checks read.
    return float(os.environ.get("SESSIONLAB_TIMEOUT_SCALE", "1"))


class LaunchedTarget(Target):
    """A target whose two services sessionlab starts, controls and stops itself."""

    def __init__(
        self,
        description: ProcessDescription | ContainerDescription,
        base_dir: Path,
        run_dir: Path | None = None,
    ) -> None:
        self.description = description
        self.name = description.name
        self.profiles = description.claimed_profiles()
        self.turn_timeout = description.turn_timeout
        self._base_dir = base_dir
        self._given_run_dir = run_dir
        self._run_dir: Path | None = None
        self._scratch: Path | None = None
        self._plans: dict[Service, ServicePlan] = {}
        self._runners: dict[Service, ServiceRunner] = {}
        self._console: dict[Service, LogBuffer] = {name: LogBuffer() for name in SERVICES}
        self._file_logs: dict[Service, LogBuffer] = {}
        self._tails: list[FileTail] = []
        self._hop: FaultProxy | None = None
        self._watchdog: Watchdog | None = None
        self._started = False
        # Marks everything this target launches (an environment variable of its processes, a
        # label of its containers), so a leftover can always be traced back to its run.
        self.run_id = secrets.token_hex(6)
        # The ports of the last start; kept after close, so callers can check they were freed.
        self.ports: dict[Service, int] = {}

    # --- what a kind supplies ----------------------------------------------------------------

    @abstractmethod
    def _make_runner(
        self, service: Service, spec: ProcessService | ContainerService, values: Mapping[str, str]
    ) -> ServiceRunner: ...

    # --- the Target interface ----------------------------------------------------------------

    @property
    def endpoints(self) -> Endpoints:
        if not self._plans:
            raise TargetError(f"target {self.name!r} is not started")
        keys = self.description.keys
        return Endpoints(
            gateway_url=self._plans["gateway"].url,
            # Straight to the runtime, never through the hop: runtime checks test the runtime.
            runtime_url=self._plans["runtime"].url,
            client_key=keys.client,
            internal_key=keys.internal,
            user_tokens=dict(self.description.users),
        )

    @property
    def runtime_hop(self) -> FaultProxy | None:
        """The fault proxy the gateway reaches the runtime through (`faults: {runtime_hop: true}`).

        It lives on the event loop that started the target; act on it from there.
        """
        return self._hop

    @property
    def run_dir(self) -> Path | None:
        """Where the log files (`logs/<service>.log`) and the data directory are."""
        return self._run_dir

    def pid(self, service: Service) -> int | None:
        """The process id of a process service (None for containers or when stopped)."""
        return None

    async def start(self) -> None:
        if self._started:
            return
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        self._started = True

    async def close(self) -> None:
        errors: list[str] = []
        # The gateway first, so it never serves a request into a runtime that is gone.
        for service in ("gateway", "runtime"):
            runner = self._runners.pop(service, None)
            if runner is None:
                continue
            try:
                await runner.terminate(self._plans[service].stop_timeout)
            except (TargetError, OSError) as exc:
                errors.append(str(exc))
            finally:
                await runner.discard()
        for tail in self._tails:
            await tail.stop()
        self._tails.clear()
        if self._hop is not None:
            await self._hop.stop()
            self._hop = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            if self._watchdog is not None:
                self._watchdog.forget("dir", self._scratch)
            self._scratch = None
        if self._watchdog is not None:
            # Whatever could not be removed above is still named: the watchdog removes it now.
            await asyncio.to_thread(self._watchdog.close)
            self._watchdog = None
        self._plans.clear()
        self._started = False
        if errors:
            raise TargetError("; ".join(errors))

    def supports(self, service: Service, capability: Capability) -> bool:
        if capability is Capability.LOGS:
            return self.description.log_spec(service).source != "none"
        return True

    async def stop_service(self, service: Service) -> None:
        await self._runner(service).terminate(self._plans[service].stop_timeout)

    async def start_service(self, service: Service) -> None:
        runner = self._runner(service)
        if not runner.running:
            await self._launch(service)

    async def kill_service(self, service: Service) -> None:
        await self._runner(service).kill()

    async def pause_service(self, service: Service) -> None:
        await self._runner(service).pause()

    async def resume_service(self, service: Service) -> None:
        await self._runner(service).resume()

    def logs(self, service: Service) -> LogSource:
        source = self.description.log_spec(service).source
        if source == "captured":
            return self._console[service]
        if source == "file":
            return self._file_logs[service]
        raise self._unsupported(service, Capability.LOGS)

    # --- starting ----------------------------------------------------------------------------

    async def _start(self) -> None:
        self._watchdog = await asyncio.to_thread(Watchdog.start, self.run_id)
        run_dir = self._prepare_run_dir()
        if self._scratch is not None:
            self._watchdog.watch("dir", self._scratch)
        data_dir = run_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "logs").mkdir(exist_ok=True)
        services = self.description.services
        specs: dict[Service, ProcessService | ContainerService] = {
            "runtime": services.runtime,
            "gateway": services.gateway,
        }
        picked = iter(free_ports(sum(1 for spec in specs.values() if spec.port is None)))
        ports = {name: spec.port or next(picked) for name, spec in specs.items()}
        self.ports = dict(ports)
        runtime_url = f"http://{LOOPBACK}:{ports['runtime']}"
        gateway_url = f"http://{LOOPBACK}:{ports['gateway']}{self.description.base_path}"
        if self.description.faults.runtime_hop:
            # The hook for faults on the gateway-to-runtime hop: the gateway is given the proxy's
            # URL as {runtime_url}, so every byte between the two passes through it.
            self._hop = FaultProxy(LOOPBACK, ports["runtime"])
            await self._hop.start()
        keys = self.description.keys
        values = {
            "runtime_url": self._hop.url() if self._hop is not None else runtime_url,
            "runtime_port": str(ports["runtime"]),
            "gateway_url": gateway_url,
            "gateway_port": str(ports["gateway"]),
            "data_dir": str(data_dir),
            "internal_key": keys.internal or "",
            "client_key": keys.client or "",
            "turn_timeout": f"{self.description.turn_timeout:g}",
        }
        urls: dict[Service, str] = {"runtime": runtime_url, "gateway": gateway_url}
        scale = timeout_scale()
        for name, spec in specs.items():
            health = fill(spec.health_url, values) if spec.health_url else f"{urls[name]}/health"
            self._plans[name] = ServicePlan(
                name,
                ports[name],
                urls[name],
                health,
                spec.start_timeout * scale,
                spec.stop_timeout * scale,
            )
        self._start_file_logs(values)
        # The runtime first: a gateway may check its runtime while it starts.
        for name in ("runtime", "gateway"):
            runner = self._runners[name] = self._make_runner(name, specs[name], values)
            runner.watchdog = self._watchdog
            await self._launch(name)
        await self._check_keys()

    def _prepare_run_dir(self) -> Path:
        if self._given_run_dir is not None:
            self._given_run_dir.mkdir(parents=True, exist_ok=True)
            self._run_dir = self._given_run_dir.resolve()
        else:
            # Nobody asked to keep it: it goes with the target.
            self._scratch = Path(tempfile.mkdtemp(prefix=f"sessionlab-{self.name}-"))
            self._run_dir = self._scratch
        return self._run_dir

    def log_path(self, service: Service) -> Path:
        assert self._run_dir is not None
        return self._run_dir / "logs" / f"{service}.log"

    def _start_file_logs(self, values: Mapping[str, str]) -> None:
        for service in SERVICES:
            spec = self.description.log_spec(service)
            if spec.source != "file" or spec.file is None:
                continue
            path = Path(fill(spec.file, values))
            buffer = self._file_logs[service] = LogBuffer()
            tail = FileTail(path if path.is_absolute() else self._base_dir / path, buffer)
            tail.start()
            self._tails.append(tail)

    def _runner(self, service: Service) -> ServiceRunner:
        try:
            return self._runners[service]
        except KeyError:
            raise TargetError(f"target {self.name!r} is not started") from None

    async def _launch(self, service: Service) -> None:
        runner = self._runners[service]
        await runner.launch()
        try:
            await self._await_healthy(service, runner)
        except BaseException:
            await runner.kill()
            raise

    async def _await_healthy(self, service: Service, runner: ServiceRunner) -> None:
        plan = self._plans[service]
        last = "nothing tried yet"
        loop = asyncio.get_running_loop()
        end = loop.time() + plan.start_timeout
        async with httpx.AsyncClient(trust_env=False) as client:
            while True:
                status = runner.exit_status()
                if status is not None:
                    raise TargetError(
                        f"the {service} exited with status {status} before {plan.health_url} "
                        f"answered{self.last_lines(service)}"
                    )
                remaining = end - loop.time()
                if remaining <= 0:
                    raise TargetError(
                        f"the {service} did not answer at {plan.health_url} within "
                        f"{plan.start_timeout:g} s ({last}){self.last_lines(service)}"
                    )
                try:
                    response = await client.get(plan.health_url, timeout=min(2.0, remaining))
                except httpx.TransportError as exc:
                    last = _transport_reason(exc)
                else:
                    if response.is_success:
                        return
                    last = f"it answered {response.status_code}"
                await asyncio.sleep(min(0.1, max(0.0, end - loop.time())))

    async def _check_keys(self) -> None:
        """Refuse to run checks against services that refuse the keys of the target file.

        Every check would fail with 401 and the report would blame the target for a file mistake.
        Only 401/403 stop the start: any other answer is for the checks to judge.
        """
        endpoints = self.endpoints
        probes: tuple[tuple[Service, str, dict[str, str], str], ...] = (
            (
                "runtime",
                f"{endpoints.runtime_url}/sessions",
                endpoints.runtime_headers(),
                "keys.internal is wrong or missing: the runtime uses another key",
            ),
            (
                "gateway",
                f"{endpoints.gateway_url}/sessions",
                endpoints.client_headers(),
                "keys.client is wrong or missing, the gateway was given another internal key "
                "than the runtime, or users are missing",
            ),
        )
        async with httpx.AsyncClient(trust_env=False, timeout=10.0 * timeout_scale()) as client:
            for service, url, headers, meaning in probes:
                try:
                    response = await client.get(url, headers=headers)
                except httpx.TransportError as exc:
                    raise TargetError(
                        f"the {service} stopped answering right after start: GET {url}: "
                        f"{_transport_reason(exc)}{self.last_lines(service)}"
                    ) from None
                if response.status_code in (401, 403):
                    raise TargetError(
                        f"the {service} refuses the keys of the target file: GET {url} answered "
                        f"{response.status_code}; {meaning}{self.last_lines(service)}"
                    )

    def last_lines(self, service: Service, count: int = TAIL_LINES) -> str:
        """The end of a service's output, ready to append to an error message."""
        lines = self._console[service].lines()[-count:]
        if not lines:
            return f"; it wrote nothing (log: {self.log_path(service)})"
        keys = self.description.keys
        text = "\n".join(f"    {line}" for line in lines)
        text = redact(text, (keys.internal, keys.client, *self.description.users.values()))
        return f"; its last lines (log: {self.log_path(service)}):\n{text}"


def _transport_reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        # httpx words every failed connect the same; the OSError under it says what happened.
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ConnectionRefusedError):
                return "connection refused"
            cause = cause.__cause__ or cause.__context__
        return f"cannot connect: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

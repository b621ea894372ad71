"""The `reference` target: the project's own runtime and gateway, in this process, on free ports."""

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

from conformance.targets.base import Capability, Endpoints, Service, Target, TargetError
from conformance.targets.logs import LogBuffer, LogSource
from reference.keys import random_key
from reference.server import ThreadedServer
from reference.stack import AppWrapper, StackChoices, ThreadedStack

REFERENCE_PROFILES = frozenset(
    {"core", "strict", "scripted", "lifecycle", "export", "search", "idempotent"}
)
# Claimed as well when the reference runs with users (X-AUTH-1, X-SHARE-1).
USER_PROFILES = frozenset({"auth", "sharing"})
_LOGGERS: dict[Service, str] = {"runtime": "sessionlab.runtime", "gateway": "sessionlab.gateway"}


class _BufferHandler(logging.Handler):
    def __init__(self, buffer: LogBuffer) -> None:
        super().__init__(logging.DEBUG)
        self.buffer = buffer
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.buffer.append(self.format(record))


class ReferenceTarget(Target):
    """The reference in process. The wrappers and settings overrides exist to build variants that
    break one requirement, the servers the suite proves itself against."""

    def __init__(
        self,
        data_dir: Path | None = None,
        client_key: str | None = None,
        turn_timeout: float = 10.0,
        profiles: frozenset[str] = REFERENCE_PROFILES,
        runtime_wrapper: AppWrapper | None = None,
        gateway_wrapper: AppWrapper | None = None,
        runtime_overrides: dict[str, Any] | None = None,
        gateway_overrides: dict[str, Any] | None = None,
        user_tokens: dict[str, str] | None = None,
    ) -> None:
        self.name = "reference"
        # user name -> token, as the checks see it; the gateway's settings take token -> name.
        self._user_tokens = dict(user_tokens or {})
        self.profiles = profiles | USER_PROFILES if self._user_tokens else profiles
        self.turn_timeout = turn_timeout
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._data_dir = data_dir
        self._client_key = client_key
        self._internal_key = random_key()
        self._stack: ThreadedStack | None = None
        self._logs: dict[Service, LogBuffer] = {name: LogBuffer() for name in _LOGGERS}
        self._handlers: list[tuple[logging.Logger, logging.Handler, int]] = []
        self._runtime_wrapper = runtime_wrapper
        self._gateway_wrapper = gateway_wrapper
        self._runtime_overrides = runtime_overrides or {}
        self._gateway_overrides = gateway_overrides or {}

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(
            gateway_url=self._server("gateway").url,
            runtime_url=self._server("runtime").url,
            client_key=self._client_key,
            internal_key=self._internal_key,
            user_tokens=dict(self._user_tokens),
        )

    async def start(self) -> None:
        if self._stack is not None:
            return
        if self._data_dir is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="sessionlab-reference-")
            self._data_dir = Path(self._scratch.name)
        self._capture_logs()
        choices = StackChoices(
            data_dir=self._data_dir,
            internal_key=self._internal_key,
            client_key=self._client_key,
            turn_timeout=self.turn_timeout,
            user_tokens={token: user for user, token in self._user_tokens.items()},
            runtime_overrides=self._runtime_overrides,
            gateway_overrides=self._gateway_overrides,
        )
        stack = ThreadedStack(choices, self._runtime_wrapper, self._gateway_wrapper)
        await asyncio.to_thread(stack.start)
        self._stack = stack

    async def close(self) -> None:
        if self._stack is not None:
            await asyncio.to_thread(self._stack.stop)
            self._stack = None
        for logger, handler, level in self._handlers:
            logger.removeHandler(handler)
            logger.setLevel(level)
        self._handlers.clear()
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
            self._data_dir = None

    def supports(self, service: Service, capability: Capability) -> bool:
        return capability in (Capability.STOP, Capability.LOGS)

    async def stop_service(self, service: Service) -> None:
        await asyncio.to_thread(self._server(service).stop)

    async def start_service(self, service: Service) -> None:
        # Same port as before: the other service and the clients keep their URLs.
        await asyncio.to_thread(self._server(service).start)

    def logs(self, service: Service) -> LogSource:
        return self._logs[service]

    def _server(self, service: Service) -> ThreadedServer:
        if self._stack is None:
            raise TargetError("the reference target is not started")
        return self._stack.server(service)

    def _capture_logs(self) -> None:
        for service, logger_name in _LOGGERS.items():
            logger = logging.getLogger(logger_name)
            handler = _BufferHandler(self._logs[service])
            self._handlers.append((logger, handler, logger.level))
            logger.addHandler(handler)
            # Every level: a key leaked at debug level must show (R-AUTH-3).
            logger.setLevel(logging.DEBUG)

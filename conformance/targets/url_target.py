"""The `url` target: a gateway (and maybe a runtime) that is already running somewhere.

sessionlab only talks to it: it cannot stop, kill or pause anything. Its logs are readable only
when the description names the files the services write.
"""

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

from conformance.targets.base import Capability, Endpoints, Service, Target, TargetError
from conformance.targets.logfile import FileTail
from conformance.targets.logs import LogBuffer, LogSource

# How long start() waits for the gateway to accept a connection before calling it unreachable.
CONNECT_WAIT = 10.0


class UrlTarget(Target):
    def __init__(
        self,
        gateway_url: str,
        runtime_url: str | None = None,
        *,
        name: str = "url",
        client_key: str | None = None,
        internal_key: str | None = None,
        profiles: frozenset[str] = frozenset({"core"}),
        turn_timeout: float = 10.0,
        user_tokens: dict[str, str] | None = None,
        log_files: dict[Service, Path] | None = None,
        connect_wait: float = CONNECT_WAIT,
    ) -> None:
        self.name = name
        self.profiles = profiles | {"core"}
        self.turn_timeout = turn_timeout
        self._endpoints = Endpoints(
            gateway_url=gateway_url.rstrip("/"),
            runtime_url=runtime_url.rstrip("/") if runtime_url else None,
            client_key=client_key,
            internal_key=internal_key,
            user_tokens=dict(user_tokens or {}),
        )
        self._log_files = dict(log_files or {})
        self._buffers: dict[Service, LogBuffer] = {s: LogBuffer() for s in self._log_files}
        self._tails: list[FileTail] = []
        self._connect_wait = connect_wait

    @property
    def endpoints(self) -> Endpoints:
        return self._endpoints

    async def start(self) -> None:
        # Only that something listens: whether what answers is right is for the checks to say,
        # but a gateway that is not there at all is a set-up mistake, not a failed check.
        await _await_listening("gateway", self._endpoints.gateway_url, self._connect_wait)
        if not self._tails:
            for service, path in self._log_files.items():
                tail = FileTail(path, self._buffers[service])
                tail.start()
                self._tails.append(tail)

    async def close(self) -> None:
        for tail in self._tails:
            await tail.stop()
        self._tails.clear()

    def supports(self, service: Service, capability: Capability) -> bool:
        return capability is Capability.LOGS and service in self._log_files

    def logs(self, service: Service) -> LogSource:
        if service not in self._buffers:
            raise TargetError(
                f"target {self.name!r} names no log file for its {service} "
                f"(logs: {{{service}: {{file: PATH}}}})"
            )
        return self._buffers[service]


async def _await_listening(service: str, url: str, wait: float) -> None:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    end = loop.time() + wait
    last: OSError | None = None
    while loop.time() < end:
        try:
            async with asyncio.timeout(max(0.1, end - loop.time())):
                _, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            last = exc if isinstance(exc, OSError) else OSError("no answer in time")
            await asyncio.sleep(0.2)
            continue
        writer.close()
        await writer.wait_closed()
        return
    reason = last.strerror or str(last) if last is not None else "no answer in time"
    raise TargetError(f"the {service} at {url} does not accept connections ({reason})")

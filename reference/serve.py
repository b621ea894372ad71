"""`sessionlab serve`: the reference runtime and gateway under uvicorn until a signal."""

import asyncio
import logging
import secrets
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TextIO

import uvicorn
from fastapi import FastAPI
from pydantic import AnyHttpUrl, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from reference.server import LOOPBACK, bind_socket, make_server
from reference.settings import GatewaySettings, RuntimeSettings

Service = Literal["both", "runtime", "gateway"]
log = logging.getLogger("sessionlab.serve")


class ServeSettings(BaseSettings):
    """Where the services listen. Environment variables: SESSIONLAB_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="SESSIONLAB_", extra="ignore")

    host: str = LOOPBACK
    runtime_port: int = 8001
    gateway_port: int = 8000
    log_level: str = "info"


class ServeError(Exception):
    """A configuration that cannot be served; the message says what to change."""


@dataclass
class _Running:
    name: str
    server: uvicorn.Server
    port: int
    task: "asyncio.Task[None] | None" = None


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    # One line per proxied call is noise at info; the access log already has the request.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _listen(name: str, host: str, port: int) -> socket.socket:
    try:
        return bind_socket(host, port)
    except OSError as exc:
        raise ServeError(f"the {name} cannot listen on {host}:{port}: {exc}") from None


def plan_apps(
    service: Service,
    serve: ServeSettings,
    runtime: RuntimeSettings,
    gateway: GatewaySettings,
    explicit_runtime_url: bool,
) -> list[tuple[str, FastAPI, socket.socket]]:
    """Settle keys, sockets and URLs between the services and build their apps, runtime first."""
    from reference.gateway.app import create_app as create_gateway_app
    from reference.runtime.app import create_app as create_runtime_app

    if service == "runtime" and runtime.internal_key is None:
        raise ServeError(
            "the runtime alone needs --internal-key (or SESSIONLAB_INTERNAL_KEY): "
            "its gateway must send the same key"
        )
    planned: list[tuple[str, FastAPI, socket.socket]] = []
    if service in ("both", "runtime"):
        if runtime.internal_key is None:
            # Only the two services in this process need it, so it never has to be shown.
            runtime.internal_key = SecretStr(secrets.token_urlsafe(24))
        sock = _listen("runtime", serve.host, serve.runtime_port)
        planned.append(("runtime", create_runtime_app(runtime), sock))
    if service in ("both", "gateway"):
        if service == "both":
            gateway.internal_key = runtime.internal_key
            if not explicit_runtime_url:
                # Bound first, so port 0 already has its real number here.
                runtime_port = planned[0][2].getsockname()[1]
                gateway.runtime_url = AnyHttpUrl(_url(serve.host, runtime_port))
        sock = _listen("gateway", serve.host, serve.gateway_port)
        planned.append(("gateway", create_gateway_app(gateway), sock))
    return planned


def _banner(
    running: list[_Running],
    serve: ServeSettings,
    runtime: RuntimeSettings,
    gateway: GatewaySettings,
) -> str:
    lines = ["sessionlab reference stack"]
    for item in running:
        url = _url(serve.host, item.port)
        if item.name == "gateway":
            ws = url.replace("http", "ws", 1)
            key = "client key required" if gateway.client_key else "no client key"
            lines.append(f"  gateway  {url}  (WebSocket {ws}/ws/<session_id>; {key})")
            lines.append(f"           runtime at {gateway.runtime_url}")
            if gateway.user_tokens:
                users = ", ".join(sorted(set(gateway.user_tokens.values())))
                lines.append(f"           user auth on, bearer tokens of: {users}")
        else:
            lines.append(f"  runtime  {url}  (internal; X-Internal-Auth required)")
            where = runtime.database_url and "database URL from settings"
            lines.append(f"           store {where or runtime.resolved_database_url()}")
    lines.append("Stop with Ctrl-C or SIGTERM.")
    return "\n".join(lines)


async def serve_until_signalled(
    apps: list[tuple[str, FastAPI, socket.socket]],
    serve: ServeSettings,
    describe: Callable[[list[_Running]], str],
    out: TextIO = sys.stdout,
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    running: list[_Running] = []
    try:
        for name, app, sock in apps:
            server = make_server(app, serve.log_level)
            item = _Running(name, server, sock.getsockname()[1])
            item.task = asyncio.create_task(server.serve(sockets=[sock]), name=name)
            running.append(item)
        while not all(item.server.started for item in running):
            failed = [item for item in running if item.task is not None and item.task.done()]
            if failed:
                raise ServeError(f"the {failed[0].name} stopped while starting; see the log above")
            await asyncio.sleep(0.02)
        print(describe(running), file=out, flush=True)
        stopped = asyncio.create_task(stop.wait())
        tasks = [item.task for item in running if item.task is not None]
        await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        return 0 if stop.is_set() else 1
    finally:
        # The gateway goes first, so no turn reaches a runtime that is shutting down.
        for item in reversed(running):
            item.server.should_exit = True
            if item.task is not None:
                await item.task
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def run(
    service: Service,
    serve: ServeSettings,
    runtime: RuntimeSettings,
    gateway: GatewaySettings,
    explicit_runtime_url: bool,
) -> int:
    configure_logging(serve.log_level)
    apps = plan_apps(service, serve, runtime, gateway, explicit_runtime_url)
    return asyncio.run(
        serve_until_signalled(
            apps, serve, lambda running: _banner(running, serve, runtime, gateway)
        )
    )

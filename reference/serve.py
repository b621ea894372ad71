"""`sessionlab serve`: the reference runtime and gateway under uvicorn until a signal.

Every option of the command may also be given as SESSIONLAB_<OPTION> (upper case, dashes as
underscores). The names are derived from the command's parser, so an option added there has its
variable at once. A value that cannot be served is refused before anything starts, with one line
that names the option (or the variable) and the value; a key or token is never shown.
"""

import argparse
import asyncio
import contextvars
import errno
import logging
import math
import os
import re
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, cast

import uvicorn
from fastapi import FastAPI
from pydantic import AnyHttpUrl, BaseModel, SecretStr, ValidationError
from pydantic_settings import SettingsError

from contract.exit_codes import ExitCode
from contract.routes import SOCKET
from reference.keys import random_key
from reference.server import (
    LOOPBACK,
    SERVICE,
    ServiceName,
    bind_socket,
    loop_factory,
    make_server,
)
from reference.settings import GatewaySettings, RuntimeSettings
from reference.stack import create_service_app
from reference.users import check_user_tokens

if TYPE_CHECKING:
    from reference.gateway.drain import Drain
    from reference.migrations import Outcome

Service = Literal["both", "runtime", "gateway"]
log = logging.getLogger("sessionlab.serve")

ENV_PREFIX = "SESSIONLAB_"
# Where `serve both` leaves the internal key it picked, so that a tester can pass it to `verify`.
KEY_FILE = "internal-key"
# Options holding a secret: a message names them, never their value.
SECRET_OPTIONS = frozenset({"internal_key", "client_key", "user_token"})
_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no")
_TYPE_NAMES: dict[object, str] = {int: "a whole number", float: "a number"}
# A store that takes longer than this to open would also fail the runtime's start.
STORE_PROBE_SECONDS = 30.0
LOG_FORMAT = "%(asctime)s %(levelname)s %(service_logger)s: %(message)s"
# More processes than this per service is a typing mistake on any machine this serves.
MAX_WORKERS = 64
# Long enough for an agent's reply to finish streaming, short enough for a process manager's
# patience before it kills (a target file's stop_timeout defaults to 10 s).
DEFAULT_GRACE_PERIOD = 5.0


class ServeError(Exception):
    """A configuration that cannot be served; the message says what to change."""


class ServeSettings(BaseModel):
    """Where the services listen. No environment of its own: `serve` has read it already."""

    host: str = LOOPBACK
    runtime_port: int = 8001
    gateway_port: int = 8000
    log_level: str = "info"
    # Seconds a stop waits for the turns (and requests) in flight before it cuts them.
    grace_period: float = DEFAULT_GRACE_PERIOD
    # Processes per service (docs/scale-out.md); more than one runtime needs PostgreSQL.
    workers: int = 1
    # False (--no-migrate): a store behind this version's schema is refused, not upgraded.
    migrate: bool = True


# --- options and their environment variables ------------------------------------------------


def serve_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The command's options, `--help` aside; the positional service is not an option."""
    return [
        action
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    ]


def long_option(action: argparse.Action) -> str:
    return next(name for name in action.option_strings if name.startswith("--"))


def environment_name(action: argparse.Action) -> str:
    return ENV_PREFIX + long_option(action)[2:].upper().replace("-", "_")


def _shown(dest: str, raw: str) -> str:
    return "(value not shown)" if dest in SECRET_OPTIONS else repr(raw)


def _from_environment(action: argparse.Action, variable: str, raw: str) -> object:
    """The variable's value as the parser would have made it from the flag."""
    if action.nargs == 0:
        word = raw.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ServeError(f"{variable}={raw!r} is not one of {', '.join(_TRUE + _FALSE)}")
    if isinstance(action, argparse._AppendAction):
        # Repeated values (NAME=TOKEN pairs) hold no spaces, so spaces separate them.
        return raw.split()
    value: object = raw
    if callable(action.type):
        try:
            value = action.type(raw)
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            kind = _TYPE_NAMES.get(action.type, "a valid value")
            raise ServeError(f"{variable}={_shown(action.dest, raw)} is not {kind}") from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(str(choice) for choice in action.choices)
        raise ServeError(f"{variable}={raw!r} is not one of {choices}")
    return value


def read_environment(
    parser: argparse.ArgumentParser, args: argparse.Namespace, environ: Mapping[str, str]
) -> dict[str, str]:
    """Fill the options not given on the command line from SESSIONLAB_<OPTION>; an empty variable
    counts as unset. Returns, per option, what to call it in a message: its flag or variable."""
    sources: dict[str, str] = {}
    for action in serve_options(parser):
        sources[action.dest] = long_option(action)
        if getattr(args, action.dest) is not None:
            continue
        variable = environment_name(action)
        raw = environ.get(variable, "")
        if raw:
            setattr(args, action.dest, _from_environment(action, variable, raw))
            sources[action.dest] = variable
    return sources


# --- checks of single values ----------------------------------------------------------------


def _masked_url(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return re.sub(r"\s*\(Background on this error at: [^)]*\)", "", first)


def _port(value: int, label: str) -> int:
    if not 0 <= value <= 65535:
        raise ServeError(f"{label} {value} is not a port number (0 to 65535; 0 picks a free one)")
    return value


def _host(value: str, label: str) -> str:
    if not value or any(char.isspace() for char in value):
        raise ServeError(f"{label} {value!r} is not an address to listen on")
    return value


def _seconds(value: float, label: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ServeError(f"{label} {value:g} is not a positive number of seconds")
    return value


def _grace(value: float, label: str) -> float:
    # 0 is a choice: stop at once, cutting whatever is in flight.
    if not (math.isfinite(value) and 0 <= value <= 3600):
        raise ServeError(f"{label} {value:g} is not a number of seconds from 0 to 3600")
    return value


_PRINTABLE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


def _key(value: str, label: str) -> SecretStr:
    if not value:
        raise ServeError(f"{label} is empty")
    # The key travels in an HTTP header, which cannot carry other characters unchanged.
    if not _PRINTABLE.fullmatch(value):
        raise ServeError(
            f"{label} must be printable ASCII without leading or trailing spaces "
            "(its value is not shown)"
        )
    return SecretStr(value)


def _runtime_url(value: str, label: str) -> AnyHttpUrl:
    try:
        return AnyHttpUrl(value)
    except ValidationError:
        raise ServeError(
            f"{label} {_masked_url(value)!r} is not an http:// or https:// URL"
        ) from None


def _user_tokens(pairs: list[str], label: str) -> dict[str, str]:
    """NAME=TOKEN values as the gateway's token -> name. Messages give an entry's position,
    never its text: it holds a token."""
    tokens: dict[str, str] = {}
    for position, pair in enumerate(pairs, start=1):
        name, sep, token = pair.partition("=")
        if not sep or not name or not token:
            raise ServeError(f"{label} (entry {position}) is not NAME=TOKEN")
        if token in tokens:
            raise ServeError(
                f"{label} (entry {position}) repeats the token of user {tokens[token]!r}"
            )
        tokens[token] = name
    try:
        check_user_tokens(tokens)
    except ValueError as exc:
        raise ServeError(f"{label}: {exc}") from None
    return tokens


MIN_SIZE_LIMIT = 1024


def _size_limit(value: int, label: str) -> int:
    if value < MIN_SIZE_LIMIT:
        raise ServeError(f"{label} {value} is below {MIN_SIZE_LIMIT} bytes: no turn would fit")
    return value


_ORIGIN = re.compile(r"^https?://[^/\s]+$")


def _origins(values: list[str], label: str) -> list[str]:
    """Origins as a browser sends them: scheme and host (and port), no path."""
    for value in values:
        if not _ORIGIN.fullmatch(value.rstrip("/")):
            raise ServeError(f"{label} {value!r} is not an origin such as https://ide.example:8443")
    return [value.rstrip("/") for value in values]


def _database_url(value: str, label: str) -> str:
    """A SQLAlchemy URL with an async driver that is installed; the store is opened later."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        raise ServeError(
            f"{label} {_masked_url(value)!r} is not a database URL "
            "(e.g. postgresql+asyncpg://user@host/db)"
        ) from None
    shown = url.render_as_string(hide_password=True)
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ServeError(f"{label} {shown}: no database driver {url.drivername!r}") from None
    if not getattr(dialect, "is_async", False):
        raise ServeError(
            f"{label} {shown}: {url.drivername!r} is not an async driver "
            "(e.g. postgresql+asyncpg, sqlite+aiosqlite)"
        )
    return value


def usable_directory(path: Path, label: str) -> Path:
    """Create the directory if need be, and prove a file can be written in it."""
    if path.exists() and not path.is_dir():
        raise ServeError(f"{label} {path}: not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServeError(
            f"{label} {path}: cannot create that directory ({exc.strerror or exc})"
        ) from None
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ServeError(
            f"{label} {path}: cannot write in that directory ({exc.strerror or exc})"
        ) from None
    return path


def probe_store(url: str, label: str, upgrade: bool = True, refusal: str = "") -> "Outcome | None":
    """Bring the store's schema up to date (or, with `upgrade` off, refuse one behind it, with
    `refusal` saying what to do), then open and close the store once: a store that cannot be
    used is one line, not the runtime's failed start and its traceback."""
    from reference.migrations import SchemaBehind, SchemaUnknown, upgrade_store
    from reference.runtime.store import Store

    async def probe() -> "Outcome":
        async with asyncio.timeout(STORE_PROBE_SECONDS):
            outcome = await upgrade_store(url, upgrade)
            store = await Store.open(url, upgrade=False)
            await store.close()
            return outcome

    try:
        return asyncio.run(probe())
    except TimeoutError:
        raise ServeError(
            f"{label}: the store did not open within {STORE_PROBE_SECONDS:g} s"
        ) from None
    except SchemaBehind as exc:
        raise ServeError(f"{label}: {exc}; {refusal}") from None
    except SchemaUnknown as exc:
        raise ServeError(f"{label}: {exc}") from None
    except Exception as exc:
        raise ServeError(f"{label}: cannot open the store ({_reason(exc)})") from None


def _workers(value: int, label: str) -> int:
    if not 1 <= value <= MAX_WORKERS:
        raise ServeError(f"{label} {value} is not a number of processes (1 to {MAX_WORKERS})")
    return value


def _is_sqlite(url: str) -> bool:
    from sqlalchemy.engine import make_url

    return make_url(url).get_backend_name() == "sqlite"


# --- from the command line to a plan --------------------------------------------------------


@dataclass
class Plan:
    service: Service
    serve: ServeSettings
    runtime: RuntimeSettings
    gateway: GatewaySettings
    explicit_runtime_url: bool
    sources: dict[str, str]
    # What preparing the store found (set by prepare_store; None for the gateway alone).
    schema: "Outcome | None" = None


def _settings_error(exc: ValidationError) -> ServeError:
    """A settings field read from the environment by the settings themselves (the variables
    that are no option, such as SESSIONLAB_CONNECT_TIMEOUT), as one line without its value."""
    problems = [
        f"{ENV_PREFIX}{'_'.join(str(part) for part in error['loc']).upper()}: "
        + str(error["msg"]).removeprefix("Value error, ")
        for error in exc.errors()
    ]
    return ServeError("; ".join(problems))


def settle(
    args: argparse.Namespace,
    sources: dict[str, str],
    usage_error: Callable[[str], NoReturn],
) -> Plan:
    """Check every value and build the settings. Nothing is bound or opened yet."""
    service = cast(Service, args.service)
    ports = {"runtime_port": args.runtime_port, "gateway_port": args.gateway_port}
    if args.port is not None and service == "both":
        message = f"{sources['port']} names the port of `runtime` or `gateway` alone"
        if sources["port"].startswith("--"):
            usage_error(message)
        raise ServeError(f"{message}; with both, set the runtime's and the gateway's")
    if service != "both" and (args.port is not None or ports[f"{service}_port"] is None):
        # One service: --port is its port, and what a message about it names.
        ports[f"{service}_port"] = args.port
        sources[f"{service}_port"] = sources["port"]
    for field, value in ports.items():
        if value is not None:
            _port(value, sources[field])
    given: dict[str, Any] = {}
    if args.host is not None:
        given["host"] = _host(args.host, sources["host"])
    serve = ServeSettings(
        **given,
        **{field: value for field, value in ports.items() if value is not None},
        **({"log_level": args.log_level} if args.log_level is not None else {}),
        **(
            {"grace_period": _grace(args.grace_period, sources["grace_period"])}
            if args.grace_period is not None
            else {}
        ),
        **(
            {"workers": _workers(args.workers, sources["workers"])}
            if args.workers is not None
            else {}
        ),
        migrate=not args.no_migrate,
    )
    internal_key = (
        None if args.internal_key is None else _key(args.internal_key, sources["internal_key"])
    )
    strict = not args.tolerant
    runtime_given: dict[str, Any] = {"strict": strict}
    gateway_given: dict[str, Any] = {"strict": strict}
    if internal_key is not None:
        runtime_given["internal_key"] = gateway_given["internal_key"] = internal_key
    if args.data_dir is not None:
        runtime_given["data_dir"] = Path(args.data_dir)
    if args.database_url is not None and service != "gateway":
        runtime_given["database_url"] = _database_url(args.database_url, sources["database_url"])
    if args.client_key is not None:
        gateway_given["client_key"] = _key(args.client_key, sources["client_key"])
    if args.runtime_url is not None and service != "runtime":
        gateway_given["runtime_url"] = _runtime_url(args.runtime_url, sources["runtime_url"])
    if args.turn_timeout is not None:
        gateway_given["turn_timeout"] = _seconds(args.turn_timeout, sources["turn_timeout"])
    if args.user_token:
        gateway_given["user_tokens"] = _user_tokens(args.user_token, sources["user_token"])
    if args.max_bytes is not None:
        limit = _size_limit(args.max_bytes, sources["max_bytes"])
        runtime_given["max_bytes"] = gateway_given["max_bytes"] = limit
    if args.allowed_origin:
        gateway_given["allowed_origins"] = _origins(args.allowed_origin, sources["allowed_origin"])
    if service == "runtime" and internal_key is None:
        raise ServeError(
            "the runtime alone needs --internal-key (or SESSIONLAB_INTERNAL_KEY): "
            "its gateway must send the same key"
        )
    try:
        runtime = RuntimeSettings(**runtime_given)
        gateway = GatewaySettings(**gateway_given)
    except ValidationError as exc:
        raise _settings_error(exc) from None
    except SettingsError as exc:
        # Only a structured field (SESSIONLAB_USER_TOKENS) is parsed before validation.
        found = re.search(r'field "(\w+)"', str(exc))
        name = f"{ENV_PREFIX}{found.group(1).upper()}" if found else "a SESSIONLAB_ variable"
        raise ServeError(f"{name} is not valid JSON") from None
    if serve.workers > 1 and service != "gateway" and _is_sqlite(runtime.resolved_database_url()):
        # SQLite has one writer, queued inside one process: two processes would fail each
        # other's writes with "database is locked".
        raise ServeError(
            f"{sources['workers']} {serve.workers} runs that many runtime processes, which "
            "need a store they can share: give --database-url a PostgreSQL URL, or serve the "
            "gateway alone with more workers"
        )
    return Plan(service, serve, runtime, gateway, args.runtime_url is not None, sources)


def prepare_store(plan: Plan) -> None:
    """The data directory and the store, proven usable before any port is taken."""
    if plan.service == "gateway":
        return
    runtime = plan.runtime
    label = plan.sources["data_dir"]
    needs_key_file = plan.service == "both" and runtime.internal_key is None
    if runtime.database_url is None or needs_key_file:
        usable_directory(runtime.data_dir, label)
    if runtime.database_url is None:
        where = f"--data-dir {runtime.data_dir}"
        store_label = f"{label} {runtime.data_dir}"
    else:
        shown = _shown_database_url(runtime.database_url)
        where = f"--database-url {shown}"
        store_label = f"{plan.sources['database_url']} {shown}"
    refusal = (
        f"upgrade it with `sessionlab migrate {where}`, or serve without "
        f"{plan.sources['no_migrate']}"
    )
    plan.schema = probe_store(
        runtime.resolved_database_url(), store_label, upgrade=plan.serve.migrate, refusal=refusal
    )


def _shown_database_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def write_key_file(directory: Path, key: str) -> Path:
    """The key in `directory/internal-key`, readable by its owner only (0600 from the start:
    mkstemp creates it so, and the rename keeps it)."""
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".internal-key-")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(key)
        path = directory / KEY_FILE
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path.resolve()


# --- running ---------------------------------------------------------------------------------


@dataclass
class _Running:
    name: str
    server: uvicorn.Server
    port: int
    app: FastAPI
    task: "asyncio.Task[None] | None" = None

    @property
    def drain(self) -> "Drain | None":
        """The gateway's (set by its lifespan); the runtime has none."""
        # Imported late, as the apps are: a refused configuration loads neither service.
        from reference.gateway.drain import Drain

        drain = getattr(self.app.state, "drain", None)
        return drain if isinstance(drain, Drain) else None


def configure_logging(level: str, worker: int | None = None) -> None:
    """`worker`: the number of the worker process whose lines these are (--workers)."""
    handler = logging.StreamHandler(sys.stderr)
    # Shows `sessionlab.runtime...` or `sessionlab.gateway...` on every line a service logs, the
    # server library's own lines included: with both in one process they would read alike.
    handler.addFilter(ServiceName())
    log_format = LOG_FORMAT if worker is None else LOG_FORMAT.replace(": ", f"[{worker}]: ", 1)
    handler.setFormatter(logging.Formatter(log_format))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # One line per proxied call is noise at info; the access log already has the request.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    # Alembic says at info which database kind it found, at every start; the banner says what
    # was done to the schema.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _listen(
    name: str, host: str, port: int, port_label: str, host_label: str, reuse_port: bool = False
) -> socket.socket:
    try:
        return bind_socket(host, port, reuse_port=reuse_port)
    except OSError as exc:
        where = f"the {name} cannot listen on {host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            reason = f"the port is in use; choose another {port_label}, or 0 for a free one"
        elif exc.errno == errno.EACCES:
            reason = f"permission denied; choose another {port_label}, or 0 for a free one"
        elif exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
            reason = f"{host_label} {host!r} is not an address of this machine ({exc.strerror})"
        else:
            reason = exc.strerror or str(exc)
        raise ServeError(f"{where}: {reason}") from None


def bind_services(
    service: Service,
    serve: ServeSettings,
    runtime: RuntimeSettings,
    gateway: GatewaySettings,
    explicit_runtime_url: bool,
    sources: Mapping[str, str] | None = None,
    reuse_port: bool = False,
) -> list[tuple[str, socket.socket]]:
    """Settle keys, sockets and URLs between the services, runtime first. `reuse_port`: the
    sockets only hold the ports for worker processes, which listen with sockets of their own."""
    named = dict(sources or {})
    if service == "runtime" and runtime.internal_key is None:
        raise ServeError(
            "the runtime alone needs --internal-key (or SESSIONLAB_INTERNAL_KEY): "
            "its gateway must send the same key"
        )
    planned: list[tuple[str, socket.socket]] = []
    host_label = named.get("host", "--host")
    if service in ("both", "runtime"):
        if runtime.internal_key is None:
            runtime.internal_key = SecretStr(random_key())
        label = named.get("runtime_port", "--runtime-port")
        sock = _listen("runtime", serve.host, serve.runtime_port, label, host_label, reuse_port)
        planned.append(("runtime", sock))
    if service in ("both", "gateway"):
        if service == "both":
            gateway.internal_key = runtime.internal_key
            if not explicit_runtime_url:
                # Bound first, so port 0 already has its real number here.
                runtime_port = planned[0][1].getsockname()[1]
                gateway.runtime_url = AnyHttpUrl(_url(serve.host, runtime_port))
        label = named.get("gateway_port", "--gateway-port")
        try:
            sock = _listen("gateway", serve.host, serve.gateway_port, label, host_label, reuse_port)
        except ServeError:
            for _, bound in planned:
                bound.close()
            raise
        planned.append(("gateway", sock))
    return planned


def _banner(
    running: list[tuple[str, int]],
    serve: ServeSettings,
    runtime: RuntimeSettings,
    gateway: GatewaySettings,
    key_file: Path | None = None,
    schema: "Outcome | None" = None,
) -> str:
    """What is served where: (service, port) pairs, runtime first."""
    lines = ["sessionlab reference stack"]
    for name, port in running:
        url = _url(serve.host, port)
        if serve.workers > 1:
            lines.append(f"  {name:<8} {url}  ({serve.workers} processes on this port)")
        if name == "gateway":
            ws = url.replace("http", "ws", 1)
            socket = SOCKET.raw_path(session_id="<session_id>")
            key = "client key required" if gateway.client_key else "no client key"
            if serve.workers == 1:
                lines.append(f"  gateway  {url}  (WebSocket {ws}{socket}; {key})")
            else:
                lines.append(f"           WebSocket {ws}{socket}; {key}")
            lines.append(f"           runtime at {gateway.runtime_url}")
            lines.append(f"           turn timeout {gateway.turn_timeout:g} s")
            origins = ", ".join(gateway.allowed_origins) or "none (only clients without Origin)"
            lines.append(f"           size limit {gateway.max_bytes} bytes; origins {origins}")
            if gateway.user_tokens:
                users = ", ".join(sorted(set(gateway.user_tokens.values())))
                lines.append(f"           user auth on, bearer tokens of: {users}")
        else:
            if serve.workers == 1:
                lines.append(f"  runtime  {url}  (internal; X-Internal-Auth required)")
            else:
                lines.append("           internal; X-Internal-Auth required")
            store = runtime.resolved_database_url()
            lines.append(f"           store {_shown_database_url(store)}")
            if schema is not None:
                upgrades = "" if serve.migrate else "; upgrades off (--no-migrate)"
                lines.append(f"           {_schema_line(schema)}{upgrades}")
            if key_file is not None:
                # The path, never the key: a terminal's scrollback and CI logs are read by many.
                lines.append(f"           internal key (random, this run only) in {key_file}")
    strict = runtime.strict and gateway.strict
    profile = "strict: unknown session ids refused" if strict else "tolerant: unknown ids accepted"
    lines.append(f"Profile {profile}; log level {serve.log_level}, on stderr.")
    lines.append(
        f"Stop with Ctrl-C or SIGTERM: turns in flight get a grace period of "
        f"{serve.grace_period:g} s to finish; a second signal stops at once."
    )
    return "\n".join(lines)


def _schema_line(schema: "Outcome") -> str:
    if schema.before is None:
        return f"schema created at revision {schema.after}"
    if schema.before != schema.after:
        return f"schema upgraded from {schema.before} to {schema.after}"
    return f"schema at revision {schema.after}"


class _StartFailed(Exception):
    """The server library ends the process when its app fails to start; here that ends only
    the one service, and `serve` says which."""


async def _serve_one(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:
        raise _StartFailed(str(exc.code)) from None


async def serve_until_signalled(
    apps: list[tuple[str, FastAPI, socket.socket]],
    serve: ServeSettings,
    announce: Callable[[list[_Running]], None],
    stop_signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
) -> int:
    """Serve until one of `stop_signals`; `announce` is called once every service accepts."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # A second signal during the grace period: the user will not wait.
    hurry = asyncio.Event()

    def signalled() -> None:
        (hurry if stop.is_set() else stop).set()

    for signum in stop_signals:
        loop.add_signal_handler(signum, signalled)
    running: list[_Running] = []
    try:
        for name, app, sock in apps:
            server = make_server(app, serve.log_level, stop_timeout=serve.grace_period)
            item = _Running(name, server, sock.getsockname()[1], app)
            # Everything the server task spawns (connections, requests) inherits the name.
            context = contextvars.copy_context()
            context.run(SERVICE.set, name)
            item.task = asyncio.create_task(_serve_one(server, sock), name=name, context=context)
            running.append(item)
        while not all(item.server.started for item in running):
            failed = [item for item in running if item.task is not None and item.task.done()]
            if failed:
                raise ServeError(f"the {failed[0].name} stopped while starting; see the log above")
            await asyncio.sleep(0.02)
        announce(running)
        stopped = asyncio.create_task(stop.wait())
        tasks = [item.task for item in running if item.task is not None]
        await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if stop.is_set():
            await _drain(running, serve.grace_period, hurry)
        return ExitCode.OK if stop.is_set() else ExitCode.FAILED
    finally:
        # The gateway goes first, so no turn reaches a runtime that is shutting down.
        for item in reversed(running):
            if hurry.is_set():
                item.server.config.timeout_graceful_shutdown = 0
            item.server.should_exit = True
            if item.task is not None:
                # A failed start was reported above, with the server's own log before it.
                await asyncio.gather(item.task, return_exceptions=True)
        for signum in stop_signals:
            loop.remove_signal_handler(signum)


async def _drain(running: list[_Running], grace: float, hurry: asyncio.Event) -> None:
    """The gateway's turns in flight finish (within `grace`), new ones are refused, and its
    sockets close with 1001; the runtime serves those turns meanwhile."""
    began = asyncio.get_running_loop().time()
    for item in running:
        if item.drain is not None and not (item.task is not None and item.task.done()):
            await item.drain.stop(grace, hurry)
    spent = asyncio.get_running_loop().time() - began
    for item in running:
        # What is left of the grace period, for the requests the server waits for itself.
        item.server.config.timeout_graceful_shutdown = math.ceil(max(0.0, grace - spent))


def run(
    service: Service,
    serve: ServeSettings,
    runtime: RuntimeSettings,
    gateway: GatewaySettings,
    explicit_runtime_url: bool,
    sources: Mapping[str, str] | None = None,
    schema: "Outcome | None" = None,
) -> int:
    configure_logging(serve.log_level)
    generated_key = service == "both" and runtime.internal_key is None
    bound = bind_services(
        service, serve, runtime, gateway, explicit_runtime_url, sources, serve.workers > 1
    )
    key_file: Path | None = None
    if generated_key and runtime.internal_key is not None:
        key = runtime.internal_key.get_secret_value()
        try:
            key_file = write_key_file(runtime.data_dir, key)
        except OSError as exc:
            for _, sock in bound:
                sock.close()
            label = (sources or {}).get("data_dir", "--data-dir")
            raise ServeError(
                f"{label} {runtime.data_dir}: cannot write the key file ({exc.strerror or exc})"
            ) from None

    def describe(ports: list[tuple[str, int]]) -> str:
        return _banner(ports, serve, runtime, gateway, key_file, schema)

    try:
        if serve.workers > 1:
            from reference.workers import supervise

            return supervise(bound, serve, runtime, gateway, describe)
        apps = [(name, create_service_app(name, runtime, gateway), sock) for name, sock in bound]

        def announce(running: list[_Running]) -> None:
            print(describe([(item.name, item.port) for item in running]), flush=True)

        # uvloop's event loop where it is installed, as uvicorn itself would pick.
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(serve_until_signalled(apps, serve, announce))
    finally:
        if key_file is not None:
            # The key is dead with this run; the file must not look as if it still opened a door.
            key_file.unlink(missing_ok=True)


def serve_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`sessionlab serve`: exit status 0 after a signal, 2 for a configuration it refuses."""
    try:
        sources = read_environment(parser, args, os.environ)
        plan = settle(args, sources, parser.error)
        prepare_store(plan)
        return run(
            plan.service,
            plan.serve,
            plan.runtime,
            plan.gateway,
            plan.explicit_runtime_url,
            plan.sources,
            plan.schema,
        )
    except ServeError as exc:
        print(f"sessionlab serve: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT


def migrate_command(args: argparse.Namespace) -> int:
    """`sessionlab migrate`: the store upgraded to this version's schema; 0, or 2 with one line."""
    from reference.migrations import SchemaUnknown, upgrade_store

    try:
        given: dict[str, Any] = {}
        if args.data_dir is not None:
            given["data_dir"] = args.data_dir
        if args.database_url is not None:
            given["database_url"] = _database_url(args.database_url, "--database-url")
        try:
            settings = RuntimeSettings(**given)
        except ValidationError as exc:
            raise _settings_error(exc) from None
        url = settings.resolved_database_url()
        if settings.database_url is None:
            usable_directory(settings.data_dir, "--data-dir")
        try:
            outcome = asyncio.run(upgrade_store(url))
        except SchemaUnknown as exc:
            raise ServeError(str(exc)) from None
        except Exception as exc:
            raise ServeError(f"cannot open the store ({_reason(exc)})") from None
    except ServeError as exc:
        print(f"sessionlab migrate: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if outcome.before is None:
        print(f"store created at revision {outcome.after}")
    elif outcome.before == outcome.after:
        print(f"store already at revision {outcome.after}")
    else:
        print(f"store upgraded from revision {outcome.before} to {outcome.after}")
    return ExitCode.OK

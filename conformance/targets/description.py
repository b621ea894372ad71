"""The target description file: YAML checked into typed models.

Every mistake is reported as `FILE:LINE KEY: REASON` (one line per mistake, all of them at once),
so a tester can fix a file without reading a traceback. Loading is pure: nothing is started and no
port is picked here; `${VAR}` references are filled from the environment given to the loader.
"""

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from conformance.targets.base import SERVICES, Service
from conformance.yaml_lines import LoadedYaml, Location, YamlSyntaxError, parse_yaml
from contract.requirements import PROFILES
from simulators.ide.settings import CLIENTS, Client

Kind = Literal["reference", "url", "process", "container"]
KINDS: tuple[str, ...] = ("reference", "url", "process", "container")

# What sessionlab fills in commands, env values, cwd, health URLs and log paths of launched
# services. `{{` and `}}` stand for literal braces.
PLACEHOLDERS: tuple[str, ...] = (
    "runtime_url",
    "runtime_port",
    "gateway_url",
    "gateway_port",
    "data_dir",
    "internal_key",
    "client_key",
    "turn_timeout",
)
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([a-z_]+)\}")
# ${VAR}, ${VAR:-default}; $$ is a literal $.
_ENV_REFERENCE = re.compile(
    r"\$(?:\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|\$)"
)


# --- errors ------------------------------------------------------------------------------------


def key_path(location: Location) -> str:
    """`("services", "runtime", "command", 2)` -> `services.runtime.command[2]`."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass(frozen=True)
class Problem:
    line: int
    location: Location
    reason: str

    def render(self, file: str) -> str:
        if self.location:
            return f"{file}:{self.line} {key_path(self.location)}: {self.reason}"
        return f"{file}:{self.line}: {self.reason}"


class TargetFileError(ValueError):
    """A target description that cannot be used; one line per problem, `file:line key: reason`."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = sorted(problems, key=lambda problem: problem.line)
        super().__init__("\n".join(problem.render(str(path)) for problem in self.problems))


def _parse(text: str) -> LoadedYaml:
    try:
        document = parse_yaml(text)
    except YamlSyntaxError as exc:
        raise _SyntaxProblem(Problem(exc.line, (), exc.reason)) from None
    if not isinstance(document.data, dict):
        line = document.line_of(())
        raise _SyntaxProblem(Problem(line, (), "a target description is a mapping of keys"))
    return document


class _SyntaxProblem(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


# --- ${VAR} references -------------------------------------------------------------------------


def _expand_text(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    missing: list[str] = []

    def one(match: re.Match[str]) -> str:
        name = match.group("name")
        if name is None:
            return "$"
        if name in environ:
            return environ[name]
        default = match.group("default")
        if default is not None:
            return default
        missing.append(name)
        return ""

    return _ENV_REFERENCE.sub(one, text), missing


def _expand(
    value: Any,
    location: Location,
    environ: Mapping[str, str],
    problems: list[Problem],
    doc: LoadedYaml,
) -> Any:
    if isinstance(value, str):
        expanded, missing = _expand_text(value, environ)
        for name in missing:
            reason = (
                f"environment variable {name} is not set (write ${{{name}:-default}} for a default)"
            )
            problems.append(Problem(doc.line_of(location), location, reason))
        return expanded
    if isinstance(value, dict):
        return {k: _expand(v, (*location, k), environ, problems, doc) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, (*location, i), environ, problems, doc) for i, v in enumerate(value)]
    return value


# --- models ------------------------------------------------------------------------------------


def _scalar_text(value: object) -> object:
    # YAML reads `--port, 8001` as an int; a command word or env value is text all the same.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_scalar_text)]
Seconds = Annotated[float, Field(gt=0)]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Keys(_Model):
    """`None` (or an empty value) means that side is open and its auth checks are skipped."""

    client: Text | None = None
    internal: Text | None = None

    @field_validator("client", "internal")
    @classmethod
    def _empty_is_absent(cls, value: str | None) -> str | None:
        return value or None


class LogSpec(_Model):
    """Where a service's log lines come from: its captured stdout+stderr, a file, or nowhere."""

    source: Literal["captured", "file", "none"]
    file: str | None = None


def _log_spec(value: object) -> object:
    if value is None or value == "none":
        return {"source": "none"}
    if value == "captured":
        return {"source": "captured"}
    if isinstance(value, dict) and set(value) == {"file"}:
        return {"source": "file", "file": value["file"]}
    raise ValueError("expected captured, none or {file: PATH}")


LogField = Annotated[LogSpec, BeforeValidator(_log_spec)]


class Faults(_Model):
    # A fault proxy between gateway and runtime; the gateway is given its URL as {runtime_url}.
    runtime_hop: bool = False


class _ServiceBase(_Model):
    env: dict[str, Text] = Field(default_factory=dict)
    port: Port | None = None  # omitted: a free loopback port, picked at start
    health_url: str | None = None  # default: the service's URL + /health
    start_timeout: Seconds = 30.0
    stop_timeout: Seconds = 10.0  # grace between SIGTERM and SIGKILL


class ProcessService(_ServiceBase):
    command: Annotated[list[Text], Field(min_length=1)]
    cwd: str | None = None  # relative: to the description file's folder


class ContainerService(_ServiceBase):
    image: Annotated[str, Field(min_length=1)]
    command: list[Text] = Field(default_factory=list)  # arguments to the image's entrypoint
    entrypoint: list[Text] | None = None


class ProcessServices(_Model):
    runtime: ProcessService
    gateway: ProcessService


class ContainerServices(_Model):
    runtime: ContainerService
    gateway: ContainerService


def _client(value: object) -> object:
    if value is not None and value not in CLIENTS:
        raise ValueError(f"unknown client model {value!r}; expected one of {', '.join(CLIENTS)}")
    return value


def _profile(value: str) -> str:
    if value not in PROFILES:
        raise ValueError(f"unknown profile {value!r}; known: {', '.join(PROFILES)}")
    return value


class _DescriptionBase(_Model):
    name: Annotated[str, Field(min_length=1)]
    profiles: list[Annotated[str, AfterValidator(_profile)]] | None = None
    turn_timeout: Seconds = 10.0
    keys: Keys = Field(default_factory=Keys)
    users: dict[str, Text] = Field(default_factory=dict)  # user name -> bearer token
    base_path: str = ""
    logs: dict[Service, LogField] = Field(default_factory=dict)
    faults: Faults = Field(default_factory=Faults)
    # The IDE simulator's client model for plans run against this target (`sessionlab run`'s
    # --client overrides it).
    client: Annotated[Client | None, BeforeValidator(_client)] = None

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and (not value.startswith("/") or any(c in value for c in "?# ")):
            raise ValueError("a base path starts with / and has no query, fragment or spaces")
        return value

    def claimed_profiles(self) -> frozenset[str]:
        # core is always checked, so it is always claimed.
        return frozenset({"core", *(self.profiles or [])})

    def log_spec(self, service: Service) -> LogSpec:
        return self.logs.get(service, LogSpec(source="captured"))


def _http_url(value: str) -> str:
    AnyHttpUrl(value)  # raises with pydantic's own reason
    return value.rstrip("/")


class ReferenceDescription(_DescriptionBase):
    kind: Literal["reference"]


class UrlDescription(_DescriptionBase):
    kind: Literal["url"]
    gateway_url: str
    runtime_url: str | None = None

    @field_validator("gateway_url", "runtime_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _http_url(value) if value else None

    def log_spec(self, service: Service) -> LogSpec:
        # Nothing of a running target's output reaches sessionlab unless it names a file.
        return self.logs.get(service, LogSpec(source="none"))


class ProcessDescription(_DescriptionBase):
    kind: Literal["process"]
    services: ProcessServices


class ContainerDescription(_DescriptionBase):
    kind: Literal["container"]
    services: ContainerServices


TargetDescription: TypeAlias = (
    ReferenceDescription | UrlDescription | ProcessDescription | ContainerDescription
)
_MODELS: dict[str, type[_DescriptionBase]] = {
    "reference": ReferenceDescription,
    "url": UrlDescription,
    "process": ProcessDescription,
    "container": ContainerDescription,
}


# --- placeholders ------------------------------------------------------------------------------


def placeholders_in(template: str) -> set[str]:
    return {m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1) is not None}


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace the known placeholders; `{{`/`}}` become braces; any other text stays as it is."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)[0]
        return values.get(name, match.group(0))

    return _PLACEHOLDER.sub(one, template)


def _service_templates(
    service: ProcessService | ContainerService,
) -> Iterator[tuple[Location, str]]:
    for index, word in enumerate(service.command):
        yield ("command", index), word
    if isinstance(service, ContainerService) and service.entrypoint is not None:
        for index, word in enumerate(service.entrypoint):
            yield ("entrypoint", index), word
    if isinstance(service, ProcessService) and service.cwd is not None:
        yield ("cwd",), service.cwd
    for name, value in service.env.items():
        yield ("env", name), value
    if service.health_url is not None:
        yield ("health_url",), service.health_url


def _templates(
    description: ProcessDescription | ContainerDescription,
) -> Iterator[tuple[Location, str]]:
    for name in SERVICES:
        service = getattr(description.services, name)
        for location, text in _service_templates(service):
            yield ("services", name, *location), text
    for name, spec in description.logs.items():
        if spec.file is not None:
            yield ("logs", name, "file"), spec.file


def _check_kind_rules(description: TargetDescription, doc: LoadedYaml) -> list[Problem]:
    problems: list[Problem] = []

    def problem(location: Location, reason: str) -> None:
        problems.append(Problem(doc.line_of(location), location, reason))

    if isinstance(description, ProcessDescription | ContainerDescription):
        keys = {"client_key": description.keys.client, "internal_key": description.keys.internal}
        for location, text in _templates(description):
            for name in sorted(placeholders_in(text)):
                if name not in PLACEHOLDERS:
                    known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                    reason = (
                        f"unknown placeholder {{{name}}} (known: {known}; write {{{{ for a brace)"
                    )
                    problem(location, reason)
                elif name in keys and keys[name] is None:
                    which = name.removesuffix("_key")
                    problem(location, f"{{{name}}} is used but keys.{which} is not set")
        if description.faults.runtime_hop:
            gateway = description.services.gateway
            if not any("runtime_url" in placeholders_in(t) for _, t in _service_templates(gateway)):
                problem(
                    ("faults", "runtime_hop"),
                    "needs {runtime_url} in services.gateway (command or env): "
                    "that is how the gateway is pointed at the fault proxy",
                )
        for name, spec in description.logs.items():
            if spec.source == "file" and not spec.file:
                problem(("logs", name, "file"), "a log file path is required")
    else:
        if description.faults.runtime_hop:
            problem(
                ("faults", "runtime_hop"),
                f"a {description.kind} target cannot have a fault proxy put before its runtime "
                "(only process and container targets, whose gateway sessionlab configures)",
            )
        for name, spec in description.logs.items():
            if isinstance(description, ReferenceDescription) and spec.source == "file":
                problem(("logs", name), "the reference's logs are captured in process; no file")
            if isinstance(description, UrlDescription) and spec.source == "captured":
                problem(
                    ("logs", name),
                    "a running target's output cannot be captured; name a {file: PATH} or none",
                )
    if isinstance(description, ReferenceDescription):
        if description.keys.internal is not None:
            problem(("keys", "internal"), "the reference picks its own internal key; remove it")
        if description.base_path:
            problem(("base_path",), "the reference serves at the root; remove it")
    return problems


# --- loading -----------------------------------------------------------------------------------


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return "unknown field"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def _validation_problems(exc: ValidationError, doc: LoadedYaml) -> list[Problem]:
    problems = []
    for error in exc.errors():
        # Every key of the document and every field name is a real key; any other part of a
        # location is pydantic's own bookkeeping (`[key]` of a dict key, a union member): dropped.
        known = _all_keys(doc.data) | _FIELD_NAMES
        location: Location = tuple(
            part for part in error["loc"] if isinstance(part, int) or part in known
        )
        problems.append(Problem(doc.line_of(location), location, _reason(error)))
    return problems


def _all_keys(data: Any) -> set[str]:
    if isinstance(data, dict):
        keys = set(data)
        for value in data.values():
            keys |= _all_keys(value)
        return keys
    if isinstance(data, list):
        return set().union(*(_all_keys(item) for item in data)) if data else set()
    return set()


def _field_names() -> set[str]:
    names: set[str] = set()
    pending: list[type[BaseModel]] = [*_MODELS.values()]
    while pending:
        model = pending.pop()
        for name, info in model.model_fields.items():
            names.add(name)
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                pending.append(annotation)
    return names


_FIELD_NAMES = _field_names()


def parse_description(
    text: str, path: Path, environ: Mapping[str, str] | None = None
) -> TargetDescription:
    """The description in `text` (read from `path`, which names it in errors)."""
    try:
        doc = _parse(text)
    except _SyntaxProblem as exc:
        raise TargetFileError(path, [exc.problem]) from None
    problems: list[Problem] = []
    data = _expand(doc.data, (), os.environ if environ is None else environ, problems, doc)
    if problems:
        raise TargetFileError(path, problems)
    kind = data.get("kind")
    if kind is None:
        raise TargetFileError(
            path, [Problem(1, ("kind",), f"field required (one of {', '.join(KINDS)})")]
        )
    if kind not in _MODELS:
        line = doc.line_of(("kind",))
        reason = f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}"
        raise TargetFileError(path, [Problem(line, ("kind",), reason)])
    data.setdefault("name", path.stem)
    try:
        description = _MODELS[kind].model_validate(data)
    except ValidationError as exc:
        raise TargetFileError(path, _validation_problems(exc, doc)) from None
    assert isinstance(
        description,
        ReferenceDescription | UrlDescription | ProcessDescription | ContainerDescription,
    )
    problems = _check_kind_rules(description, doc)
    if problems:
        raise TargetFileError(path, problems)
    return description


def load_description(path: Path, environ: Mapping[str, str] | None = None) -> TargetDescription:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetFileError(path, [Problem(1, (), f"cannot read the file: {exc}")]) from None
    return parse_description(text, path, environ)

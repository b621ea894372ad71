"""Scenario files in, validated scenarios out; a bad file gets its file, line and reason."""

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conformance.yaml_lines import LoadedYaml, Location, YamlSyntaxError, load_yaml
from scenarios.actions import ACTIONS
from scenarios.model import (
    CLIENTS,
    STEP_OPTIONS,
    VARIABLE,
    Capability,
    Client,
    Scenario,
    StateExpect,
    Step,
)

# Names every scenario may use without defining them.
BUILTIN_VARIABLES = frozenset({"run", "session", "previous_session"})


class ScenarioError(ValueError):
    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason


class _Header(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    title: str
    plan: str = ""
    profiles: list[str] = Field(default_factory=lambda: ["core"])
    needs: list[Capability] = Field(default_factory=list)
    clients: list[Client] = Field(default_factory=lambda: list(CLIENTS), min_length=1)


def _first_error(exc: ValidationError) -> tuple[Location, str]:
    error = exc.errors(include_url=False)[0]
    location = tuple(part for part in error["loc"] if isinstance(part, str | int))
    field = ".".join(str(part) for part in location)
    return location, f"{field}: {error['msg']}" if field else error["msg"]


def _variables(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield from VARIABLE.findall(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _variables(item)
    elif isinstance(value, list):
        for item in value:
            yield from _variables(item)


class _Parser:
    def __init__(self, path: Path, loaded: LoadedYaml) -> None:
        self.path = path
        self.loaded = loaded

    def error(self, location: Location, reason: str) -> ScenarioError:
        return ScenarioError(self.path, self.loaded.line_of(location), reason)

    def scenario(self) -> Scenario:
        data = self.loaded.data
        if not isinstance(data, dict):
            raise self.error((), "a scenario is a mapping with id, title and steps")
        raw_steps = data.get("steps")
        header = {key: value for key, value in data.items() if key != "steps"}
        try:
            parsed = _Header.model_validate(header)
        except ValidationError as exc:
            location, reason = _first_error(exc)
            raise self.error(location, reason) from None
        if not isinstance(raw_steps, list) or not raw_steps:
            raise self.error(("steps",), "steps: a non-empty list of steps is required")
        steps = [self.step(index, raw) for index, raw in enumerate(raw_steps)]
        self.check_variables(steps, raw_steps)
        self.check_clients(steps, parsed.clients)
        try:
            return Scenario(**parsed.model_dump(), steps=steps, source=str(self.path))
        except ValidationError as exc:
            location, reason = _first_error(exc)
            raise self.error(location, reason) from None

    def step(self, index: int, raw: Any) -> Step:
        where: Location = ("steps", index)
        if not isinstance(raw, dict):
            raise self.error(where, "a step is a mapping such as `- send: hello`")
        actions = [key for key in raw if key not in STEP_OPTIONS]
        if len(actions) != 1:
            found = ", ".join(map(str, actions)) or "none"
            raise self.error(where, f"a step names exactly one action, found: {found}")
        name = str(actions[0])
        action = ACTIONS.get(name)
        if action is None:
            close = difflib.get_close_matches(name, ACTIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.error((*where, name), f"unknown action {name!r}{hint}")
        value = raw[name]
        if value is None:
            value = {}
        if not isinstance(value, dict):
            if action.shorthand is None:
                raise self.error((*where, name), f"{name} takes a mapping of arguments")
            value = {action.shorthand: value}
        try:
            args = action.args.model_validate(value)
        except ValidationError as exc:
            location, reason = _first_error(exc)
            raise self.error((*where, name, *location), f"{name}: {reason}") from None
        options = {key: raw[key] for key in STEP_OPTIONS if key in raw}
        known_failure = (
            self.known_failure(where, options["known_failure"])
            if "known_failure" in options
            else {}
        )
        try:
            return Step(
                index=index,
                line=self.loaded.line_of(where),
                action=name,
                args=args,
                save_as=options.get("as"),
                within=options.get("within"),
                note=options.get("note"),
                known_failure=known_failure,
            )
        except ValidationError as exc:
            location, reason = _first_error(exc)
            key = {"save_as": "as"}.get(str(location[0]), str(location[0])) if location else ""
            raise self.error((*where, key), reason.replace("save_as", "as")) from None

    def known_failure(self, where: Location, value: Any) -> dict[Client, str]:
        """`{shipped: "why"}`: a client model, and the reason it cannot do what the step asks."""
        location = (*where, "known_failure")
        if not isinstance(value, dict) or not value:
            raise self.error(
                location,
                "known_failure: a mapping of client model to the reason, "
                'e.g. {shipped: "the shipped IDE restores nothing at start-up"}',
            )
        reasons: dict[Client, str] = {}
        for client, reason in value.items():
            if client not in CLIENTS:
                raise self.error(
                    (*location, client),
                    f"known_failure: unknown client model {client!r} (known: {', '.join(CLIENTS)})",
                )
            if not isinstance(reason, str) or not reason.strip():
                # A known failure without its reason would read as a failure hidden.
                raise self.error(
                    (*location, client),
                    f"known_failure: the reason is required: why the {client} client cannot "
                    "do what this step asks",
                )
            reasons[client] = reason.strip()
        return reasons

    def check_clients(self, steps: list[Step], clients: list[Client]) -> None:
        """Every client model the plan runs with has what its steps need."""
        for step in steps:
            where = ("steps", step.index)
            for client in step.known_failure:
                if client not in clients:
                    raise self.error(
                        (*where, "known_failure", client),
                        f"known_failure: the plan does not run with the {client} client "
                        f"(clients: {', '.join(clients)})",
                    )
            if isinstance(step.args, StateExpect):
                for client in clients:
                    if step.args.for_client(client) is None:
                        raise self.error(
                            (*where, step.action),
                            f"{step.action}: no state for the {client} client, which the plan "
                            f"runs with; give `{client}:` (or `state:` for every client model)",
                        )

    def check_variables(self, steps: list[Step], raw_steps: list[Any]) -> None:
        defined = set(BUILTIN_VARIABLES)
        for step, raw in zip(steps, raw_steps, strict=True):
            for name in _variables(raw.get(step.action)):
                if name not in defined:
                    raise self.error(
                        ("steps", step.index, step.action),
                        f"${{{name}}} is used before a step saves it (`as: {name}`)",
                    )
            if step.save_as:
                defined.add(step.save_as)


def load_scenario(path: Path) -> Scenario:
    try:
        loaded = load_yaml(path)
    except YamlSyntaxError as exc:
        raise ScenarioError(path, exc.line, exc.reason) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(path, 1, f"cannot read the file: {exc}") from None
    return _Parser(path, loaded).scenario()


def load_scenarios(paths: Iterable[Path]) -> list[Scenario]:
    """Every file validated before anything runs; the first bad one raises."""
    scenarios = [load_scenario(path) for path in paths]
    seen: dict[str, str] = {}
    for scenario in scenarios:
        if scenario.id in seen:
            raise ScenarioError(
                scenario.source, 1, f"id {scenario.id!r} is also used by {seen[scenario.id]}"
            )
        seen[scenario.id] = scenario.source
    return scenarios

"""The options that name a target, declared once for every command line that takes them (the
`sessionlab` subcommands' and pytest's), and the one way they become a Target."""

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance.targets import Target
from reference.keys import random_key

if TYPE_CHECKING:
    import pytest

# The key under which a TargetOptions field keeps its command-line spelling.
_FLAG = "flag"


class TargetOptionError(ValueError):
    """The options do not name a usable target; the message says which and why."""


@dataclass(frozen=True)
class Flag:
    """How one field of TargetOptions is given on a command line."""

    flag: str
    help: str
    type: Callable[[str], Any] | None = None
    metavar: str | None = None

    @property
    def dest(self) -> str:
        """The attribute argparse gives it, which the subcommands read."""
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def pytest_dest(self) -> str:
        # Prefixed: pytest's option namespace is shared with every other plugin's.
        return f"sessionlab_{self.dest}"

    def settings(self) -> dict[str, Any]:
        given = {"type": self.type, "metavar": self.metavar}
        return {"help": self.help, **{key: value for key, value in given.items() if value}}


def _flag(
    flag: str, help: str, type: Callable[[str], Any] | None = None, metavar: str | None = None
) -> dict[str, Flag]:
    return {_FLAG: Flag(flag, help, type, metavar)}


@dataclass(frozen=True)
class TargetOptions:
    """Which target a command works on. Every field is a command-line option, declared here only:
    `add_to` puts them on a `sessionlab` subcommand, `add_to_pytest` on pytest's command line."""

    target_file: str | None = field(
        default=None, metadata=_flag("--target", "target description file (YAML)")
    )
    target_factory: str | None = field(
        default=None,
        metadata=_flag(
            "--target-factory",
            "a Python callable that returns a Target (for targets built in code)",
            metavar="MODULE:CALLABLE",
        ),
    )
    gateway_url: str | None = field(
        default=None, metadata=_flag("--gateway-url", "gateway base URL of a running target")
    )
    runtime_url: str | None = field(
        default=None, metadata=_flag("--runtime-url", "runtime base URL")
    )
    # Out of the repr: options show up in tracebacks.
    client_key: str | None = field(
        default=None,
        repr=False,
        metadata=_flag("--client-key", "key the gateway requires of clients"),
    )
    internal_key: str | None = field(
        default=None, repr=False, metadata=_flag("--internal-key", "key the runtime requires")
    )
    turn_timeout: float | None = field(
        default=None,
        metadata=_flag("--turn-timeout", "seconds one agent turn may take", type=float),
    )
    keep_run: Path | None = field(
        default=None,
        metadata=_flag(
            "--keep-run",
            "keep what the run made in DIR: the services' logs, the data of the services it "
            "launched, the report with its transcripts (default: all temporary)",
            type=Path,
            metavar="DIR",
        ),
    )

    @staticmethod
    def add_to(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("target (default: the reference, started in process)")
        for _, flag in _flags():
            group.add_argument(flag.flag, **flag.settings())

    @staticmethod
    def add_to_pytest(group: "pytest.OptionGroup") -> None:
        for _, flag in _flags():
            group.addoption(flag.flag, dest=flag.pytest_dest, **flag.settings())

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "TargetOptions":
        """The options of a subcommand that took them with `add_to`."""
        return cls(**{name: getattr(args, flag.dest) for name, flag in _flags()})

    @classmethod
    def from_pytest(cls, config: "pytest.Config") -> "TargetOptions":
        """The options given on pytest's command line (`add_to_pytest`)."""
        return cls(**{name: config.getoption(flag.pytest_dest) for name, flag in _flags()})

    def args(self, *names: str) -> list[str]:
        """The named options that are set, as a command line gives them, in the order named."""
        spelled = dict(_flags())
        args: list[str] = []
        for name in names:
            value = getattr(self, name)
            if value is not None and value != "":
                args += [spelled[name].flag, str(value)]
        return args


def _flags() -> Iterator[tuple[str, Flag]]:
    for each in fields(TargetOptions):
        yield each.name, each.metadata[_FLAG]


def _call_factory(spec: str) -> Target:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise TargetOptionError(f"--target-factory takes MODULE:CALLABLE, got {spec!r}")
    # Like `python -m`: a module of the project the user stands in is importable.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        made = getattr(importlib.import_module(module_name), attribute)()
    except (ImportError, AttributeError) as exc:
        raise TargetOptionError(f"--target-factory {spec}: {exc}") from exc
    if not isinstance(made, Target):
        raise TargetOptionError(
            f"--target-factory {spec} returned {type(made).__name__}, not a Target"
        )
    return made


def make_target(options: TargetOptions) -> Target:
    """The target the options name (built, not started). A `--target-factory` is called here, so
    a run calls this once and keeps what it returns."""
    chosen = [
        flag
        for flag, value in (
            ("--target", options.target_file),
            ("--target-factory", options.target_factory),
            ("--gateway-url", options.gateway_url),
        )
        if value
    ]
    if len(chosen) > 1:
        raise TargetOptionError(f"name one target, not {' and '.join(chosen)}")
    if options.target_factory:
        return _call_factory(options.target_factory)
    if options.target_file is not None:
        return _from_file(options.target_file, options)
    if options.gateway_url is None:
        from conformance.targets.reference_target import ReferenceTarget

        # The reference is verified with its keys on, so the key checks run rather than skip.
        return ReferenceTarget(
            data_dir=None if options.keep_run is None else options.keep_run / "data",
            client_key=options.client_key or random_key(),
            turn_timeout=options.turn_timeout or 10.0,
        )
    from conformance.targets.url_target import UrlTarget

    return UrlTarget(
        options.gateway_url,
        options.runtime_url,
        client_key=options.client_key,
        internal_key=options.internal_key,
        turn_timeout=options.turn_timeout or 10.0,
    )


def _from_file(path: str, options: TargetOptions) -> Target:
    """The target of a description file, the other options overriding its values."""
    from conformance.targets.description import TargetFileError
    from conformance.targets.loader import load_target

    try:
        return load_target(
            path,
            run_dir=options.keep_run,
            overrides={
                "client_key": options.client_key,
                "internal_key": options.internal_key,
                "turn_timeout": options.turn_timeout,
                "runtime_url": options.runtime_url,
            },
        )
    except TargetFileError as exc:
        raise TargetOptionError(str(exc)) from exc

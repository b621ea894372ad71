"""One way to turn command-line options into a Target, for `verify`, `run` and the plugin."""

import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from conformance.targets import Target
from reference.keys import random_key


class TargetOptionError(ValueError):
    """The options do not name a usable target; the message says which and why."""


@dataclass(frozen=True)
class TargetOptions:
    target_file: str | None = None
    target_factory: str | None = None
    gateway_url: str | None = None
    runtime_url: str | None = None
    # Out of the repr: options show up in tracebacks.
    client_key: str | None = field(default=None, repr=False)
    internal_key: str | None = field(default=None, repr=False)
    turn_timeout: float | None = None
    # --keep-run: the folder that keeps the launched services' logs and data after the run.
    keep_run: Path | None = None


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
    if options.target_file is None and options.gateway_url is None:
        from conformance.targets.reference_target import ReferenceTarget

        # The reference is verified with its keys on, so the key checks run rather than skip.
        return ReferenceTarget(
            data_dir=None if options.keep_run is None else options.keep_run / "data",
            client_key=options.client_key or random_key(),
            turn_timeout=options.turn_timeout or 10.0,
        )
    from conformance.targets.loader import target_from_options

    target: Target = target_from_options(
        target_file=options.target_file,
        gateway_url=options.gateway_url,
        runtime_url=options.runtime_url,
        client_key=options.client_key,
        internal_key=options.internal_key,
        turn_timeout=options.turn_timeout,
        run_dir=options.keep_run,
    )
    return target

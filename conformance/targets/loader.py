"""From a target description file to a Target of the right kind."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conformance.targets.base import Service, Target
from conformance.targets.description import (
    Problem,
    ProcessDescription,
    ReferenceDescription,
    TargetDescription,
    TargetFileError,
    UrlDescription,
    load_description,
)


def build_target(
    description: TargetDescription, base_dir: Path, run_dir: Path | None = None
) -> Target:
    """The target a checked description names. `base_dir` anchors its relative paths (the
    file's folder); `run_dir` keeps the log files and data of launched services (default: a
    temporary folder removed on close)."""
    if isinstance(description, ReferenceDescription):
        from conformance.targets.reference_target import REFERENCE_PROFILES, ReferenceTarget

        profiles = REFERENCE_PROFILES if description.profiles is None else None
        return ReferenceTarget(
            client_key=description.keys.client,
            turn_timeout=description.turn_timeout,
            profiles=profiles or description.claimed_profiles(),
            user_tokens=dict(description.users),
        )
    if isinstance(description, UrlDescription):
        from conformance.targets.url_target import UrlTarget

        log_files: dict[Service, Path] = {}
        for service, spec in description.logs.items():
            if spec.file is not None:
                path = Path(spec.file)
                log_files[service] = path if path.is_absolute() else base_dir / path
        return UrlTarget(
            description.gateway_url + description.base_path,
            description.runtime_url,
            name=description.name,
            client_key=description.keys.client,
            internal_key=description.keys.internal,
            profiles=description.claimed_profiles(),
            turn_timeout=description.turn_timeout,
            user_tokens=dict(description.users),
            log_files=log_files,
        )
    if isinstance(description, ProcessDescription):
        from conformance.targets.process_target import ProcessTarget

        return ProcessTarget(description, base_dir, run_dir)
    from conformance.targets.container_target import ContainerTarget

    return ContainerTarget(description, base_dir, run_dir)


def load_target(
    path: str | Path,
    *,
    run_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Target:
    """The target described in the YAML file at `path`; TargetFileError if it is not usable.

    `overrides` replace values of the file: `client_key`, `internal_key`, `turn_timeout`,
    `runtime_url` (url targets only); None values are ignored.
    """
    path = Path(path)
    description = load_description(path, environ)
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    if given:
        description = _overridden(description, given, path)
    return build_target(description, path.resolve().parent, run_dir)


def _overridden(
    description: TargetDescription, given: Mapping[str, Any], path: Path
) -> TargetDescription:
    update: dict[str, Any] = {}
    keys = {
        field: given[option]
        for option, field in (("client_key", "client"), ("internal_key", "internal"))
        if option in given
    }
    if keys:
        update["keys"] = description.keys.model_copy(update=keys)
    if "turn_timeout" in given:
        update["turn_timeout"] = float(given["turn_timeout"])
    if "runtime_url" in given:
        if not isinstance(description, UrlDescription):
            raise TargetFileError(
                path,
                [
                    Problem(
                        1, (), f"--runtime-url is for url targets; this is a {description.kind} one"
                    )
                ],
            )
        update["runtime_url"] = str(given["runtime_url"]).rstrip("/")
    unknown = set(given) - {"client_key", "internal_key", "turn_timeout", "runtime_url"}
    if unknown:
        raise ValueError(f"unknown overrides: {', '.join(sorted(unknown))}")
    return description.model_copy(update=update)

"""`sessionlab schemas`: JSON Schema files for every HTTP body and WebSocket frame, and for the
report of `sessionlab verify --json`, kept committed in the contract's `schemas/` folder.

Here, in the command line's layer, because the report's model is the checks' (conformance), which
the contract below them may not import."""

import json
from pathlib import Path

from pydantic import BaseModel, TypeAdapter

import contract
from conformance.reports.model import VerifyReport
from contract import bodies, frames

SCHEMA_DIR = Path(contract.__file__).parent / "schemas"

_MODELS: tuple[type[BaseModel], ...] = (
    *frames.CLIENT_FRAME_TYPES,
    *frames.SERVER_FRAME_TYPES,
    bodies.Health,
    bodies.CreatedSession,
    bodies.SessionInfo,
    bodies.SessionList,
    bodies.Message,
    bodies.History,
    bodies.AgentSwitchRecord,
    bodies.AgentInfo,
    bodies.CurrentAgent,
    bodies.StreamRequest,
    bodies.StreamDone,
    bodies.StreamError,
    bodies.ErrorBody,
    bodies.RenameRequest,
    bodies.SessionExport,
    bodies.SearchResult,
    bodies.SearchResults,
    # Not the protocol's, but a contract all the same: what tools reading the report rely on.
    VerifyReport,
)
_UNIONS: dict[str, TypeAdapter[object]] = {
    "ClientFrame": TypeAdapter(frames.ClientFrame),
    "ServerFrame": TypeAdapter(frames.ServerFrame),
}


def _dump(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_schemas() -> dict[str, str]:
    """File name -> schema text, for every model of the contract and the report."""
    rendered = {f"{model.__name__}.json": _dump(model.model_json_schema()) for model in _MODELS}
    for name, adapter in _UNIONS.items():
        rendered[f"{name}.json"] = _dump(adapter.json_schema())
    return rendered


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    expected = render_schemas()
    for stale in directory.glob("*.json"):
        if stale.name not in expected:
            stale.unlink()
    written = []
    for name, text in expected.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that are missing, different, or no longer made."""
    expected = render_schemas()
    present = {path.name: path for path in directory.glob("*.json")}
    problems = [name for name in sorted(present) if name not in expected]
    for name, text in expected.items():
        path = present.get(name)
        if path is None or path.read_text(encoding="utf-8") != text:
            problems.append(name)
    return sorted(problems)

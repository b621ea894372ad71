"""The verify report as a typed model: the JSON document `sessionlab verify --json` writes.

The plugin builds it, `sessionlab replay` reads it back, and its JSON Schema is published with the
contract's (`sessionlab schemas`), so tools that read the report have a contract too. Keys a check
or a requirement has only sometimes (a failure's parts, what blocked it) are left out when absent,
never written as null: a reader tests for the key.
"""

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

# `unjudged`: a check of several requirements stopped before it judged this one; it counts
# neither way unless nothing else judged the requirement.
Outcome = Literal["passed", "partial", "failed", "blocked", "skipped", "error", "unjudged"]
Status = Literal["passed", "partial", "failed", "warning", "blocked", "skipped", "error"]
# The order reports list statuses in: what needs acting on first.
STATUSES: tuple[Status, ...] = (
    "failed",
    "error",
    "warning",
    "blocked",
    "partial",
    "passed",
    "skipped",
)
LevelName = Literal["MUST", "SHOULD", "MAY"]


def _without(
    dumped: dict[str, Any], absent: Mapping[str, Literal["none", "empty"]]
) -> dict[str, Any]:
    """`dumped` without the optional keys whose value says nothing: None, or also empty."""
    return {
        key: value
        for key, value in dumped.items()
        if not (key in absent and (value is None or (absent[key] == "empty" and not value)))
    }


class TranscriptEntry(BaseModel):
    """One recorded event of a check's exchange with the target."""

    # Seconds from the check's start.
    at: float = 0.0
    # http-request, http-response, ws-open, ws-send, ws-recv, ws-close, note, timeline.
    kind: str
    # Keys redacted; a text over the limit is cut and says how long it was.
    text: str = ""


class CheckEntry(BaseModel):
    """One check of a requirement, as it ended."""

    nodeid: str
    outcome: Outcome
    message: str = ""
    duration: float = 0.0
    transcript: list[TranscriptEntry] = Field(default_factory=list)
    # The prerequisite whose failure kept a `blocked` check from running.
    blocked_by: str | None = None
    # A failure's parts, for a tester: what was awaited, what came, and how to see it again.
    expected: str | None = None
    received: str | None = None
    reproduce: str | None = None
    replay: str | None = None

    @model_serializer(mode="wrap")
    def _present(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without(
            handler(self),
            {
                "blocked_by": "empty",
                "expected": "none",
                "received": "none",
                "reproduce": "none",
                "replay": "none",
            },
        )


class RequirementVerdict(BaseModel):
    """One requirement of the catalogue, judged; `level` and `profile` are the effective ones."""

    id: str
    level: LevelName
    profile: str
    title: str
    status: Status
    message: str
    # A failure the team listed as known in its baseline: reported, but it does not fail the run.
    known_failure: bool = False
    checks: list[CheckEntry] = Field(default_factory=list)
    # The prerequisites whose failure left a `blocked` requirement unjudged.
    blocked_by: list[str] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _present(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without(handler(self), {"blocked_by": "empty"})


class TargetInfo(BaseModel):
    name: str
    gateway_url: str | None = None
    runtime_url: str | None = None
    claimed_profiles: list[str] = Field(default_factory=list)


class RateLimited(BaseModel):
    """The target answered 429s during the run: how many, how long the checks waited."""

    responses_429: int
    waited: float
    final_rate: float


class SharedCause(BaseModel):
    """One cause behind several failing requirements, told once."""

    cause: str
    requirements: list[str]


class VerifyReport(BaseModel):
    """One `sessionlab verify` run; see docs/reports.md for what each key means."""

    sessionlab: str
    # None when the target never started; `stopped` then says why.
    target: TargetInfo | None
    profiles: list[str]
    started_at: float
    # Why the run stopped before any check could judge the target, or None.
    stopped: str | None
    duration: float
    conforms: bool
    # Requirements per status, every status present.
    summary: dict[str, int]
    rate_limited: RateLimited | None
    causes: list[SharedCause]
    requirements: list[RequirementVerdict]

    def document(self) -> dict[str, Any]:
        """The report as JSON data: what the file holds."""
        return self.model_dump(mode="json")

    @classmethod
    def read(cls, text: str) -> "VerifyReport":
        """A report back from its file's text; ValueError (json's or pydantic's) when it is not
        one. Parsed by json, which keeps the lone surrogates a target may have sent."""
        return cls.model_validate(json.loads(text))


def render_json(document: Mapping[str, Any]) -> str:
    """The file's text; non-ASCII as it is, for a reader."""
    return json.dumps(document, indent=2, ensure_ascii=False)

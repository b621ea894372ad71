"""From check outcomes to one verdict per requirement. Pure functions over data."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from conformance.reports.model import (
    STATUSES,
    CheckEntry,
    Outcome,
    RequirementVerdict,
    Status,
    TranscriptEntry,
)
from contract.exit_codes import ExitCode
from contract.requirements import CLIENT_PROFILE, Level, Requirement, catalogue


@dataclass
class CheckResult:
    nodeid: str
    requirement_ids: tuple[str, ...]
    outcome: Outcome
    message: str = ""
    duration: float = 0.0
    transcript: list[dict[str, Any]] = field(default_factory=list)
    # The prerequisite whose failure kept a `blocked` check from running.
    blocked_by: str | None = None
    # A failure's parts, for a tester: what was awaited, what came, and how to see it again.
    expected: str | None = None
    received: str | None = None
    reproduce: str | None = None
    replay: str | None = None

    def entry(self) -> CheckEntry:
        return CheckEntry(
            nodeid=self.nodeid,
            outcome=self.outcome,
            message=self.message,
            duration=round(self.duration, 4),
            transcript=[TranscriptEntry.model_validate(entry) for entry in self.transcript],
            blocked_by=self.blocked_by,
            expected=self.expected,
            received=self.received,
            reproduce=self.reproduce,
            replay=self.replay,
        )

    def as_dict(self) -> dict[str, Any]:
        return self.entry().model_dump(mode="json")


@dataclass
class Verdict:
    id: str
    level: Level
    profile: str
    title: str
    status: Status
    message: str
    checks: list[CheckResult]
    # A failure the team listed as known: reported, but it does not fail the run.
    known_failure: bool = False
    blocked_by: list[str] = field(default_factory=list)

    def entry(self) -> RequirementVerdict:
        return RequirementVerdict(
            id=self.id,
            level=self.level.value,
            profile=self.profile,
            title=self.title,
            status=self.status,
            message=self.message,
            known_failure=self.known_failure,
            checks=[check.entry() for check in self.checks],
            blocked_by=self.blocked_by,
        )

    def as_dict(self) -> dict[str, Any]:
        return self.entry().model_dump(mode="json")


def _unique(messages: Iterable[str]) -> str:
    return "; ".join(dict.fromkeys(message for message in messages if message))


NO_CHECK = "no check covers this requirement"


NOT_SELECTED_BY = "not selected by "


def judge(
    requirement: Requirement,
    profiles: frozenset[str],
    checks: list[CheckResult],
    only: Sequence[str] | None = None,
    unjudged: str = NO_CHECK,
    left_out: Mapping[str, str] | None = None,
) -> Verdict:
    """`left_out`: requirements whose every check was deselected (-k, -m), with how; like those
    outside `--only` they are not selected, not unjudged."""
    level, profile = requirement.effective(profiles)

    def verdict(status: Status, message: str) -> Verdict:
        return Verdict(requirement.id, level, profile, requirement.title, status, message, checks)

    if only and not any(requirement.id.startswith(prefix) for prefix in only):
        return verdict("skipped", f"{NOT_SELECTED_BY}--only {' '.join(only)}")
    if profile not in profiles:
        return verdict("skipped", f"profile {profile!r} is not selected")
    if not checks and left_out and requirement.id in left_out:
        return verdict("skipped", f"{NOT_SELECTED_BY}{left_out[requirement.id]}")
    if not checks:
        return verdict("error", unjudged)
    if all(check.outcome == "unjudged" for check in checks):
        return verdict("skipped", _unique(check.message for check in checks))
    # Every check stays in the report; the unjudged ones count neither way.
    counted = [check for check in checks if check.outcome != "unjudged"]
    failed = [check for check in counted if check.outcome == "failed"]
    if failed:
        # SHOULD and MAY are reported, never fatal: a warning is not a failure of conformance.
        status: Status = "failed" if level is Level.MUST else "warning"
        return verdict(status, _unique(check.message for check in failed))
    errors = [check for check in counted if check.outcome == "error"]
    if errors:
        return verdict("error", _unique(check.message for check in errors))
    blocked = [check for check in counted if check.outcome == "blocked"]
    if blocked:
        judged = verdict("blocked", _unique(check.message for check in blocked))
        judged.blocked_by = list(dict.fromkeys(c.blocked_by for c in blocked if c.blocked_by))
        return judged
    if all(check.outcome == "skipped" for check in counted):
        return verdict("skipped", _unique(check.message for check in counted))
    # What was not checked is said, never folded into a pass: a part skipped, a check partial.
    unchecked = [
        *(check.message for check in counted if check.outcome == "partial"),
        *(f"not checked: {check.message}" for check in counted if check.outcome == "skipped"),
    ]
    if unchecked:
        return verdict("partial", _unique(unchecked))
    passed = sum(check.outcome == "passed" for check in counted)
    return verdict("passed", f"{passed} check(s) passed")


def judge_all(
    results: Iterable[CheckResult],
    profiles: frozenset[str],
    only: Sequence[str] | None = None,
    unjudged: str = NO_CHECK,
    left_out: Mapping[str, str] | None = None,
) -> list[Verdict]:
    """Verdicts for every requirement; `unjudged` says why requirements without a result have
    none when the run stopped early (by default: no check covers them)."""
    by_requirement: dict[str, list[CheckResult]] = {}
    for result in results:
        for requirement_id in result.requirement_ids:
            by_requirement.setdefault(requirement_id, []).append(result)
    return [
        judge(
            requirement,
            profiles,
            by_requirement.get(requirement.id, []),
            only,
            unjudged,
            left_out,
        )
        for requirement in catalogue().values()
        if requirement.profile != CLIENT_PROFILE
    ]


@dataclass(frozen=True)
class Baseline:
    """Known failures a team has accepted for now, and requirements whose checks are flaky."""

    known_failures: frozenset[str] = frozenset()
    flaky: frozenset[str] = frozenset()


def apply_baseline(verdicts: list[Verdict], baseline: Baseline) -> list[Verdict]:
    """Known failures stop failing the run; one that passes is an error, so the list shrinks."""
    for verdict in verdicts:
        if verdict.id in baseline.known_failures:
            if verdict.status == "failed":
                verdict.known_failure = True
            elif verdict.status in ("passed", "partial", "warning"):
                verdict.status = "error"
                verdict.message = (
                    "listed as a known failure in the baseline, but it passed: remove it from "
                    "the baseline"
                )
        elif verdict.id in baseline.flaky and verdict.status == "failed":
            verdict.status = "warning"
            verdict.message = f"flaky (baseline): {verdict.message}"
    return verdicts


class Judged(Protocol):
    """What the exit status reads of a requirement: a Verdict, or one read back from a report."""

    @property
    def status(self) -> str: ...

    @property
    def known_failure(self) -> bool: ...


@dataclass(frozen=True)
class _Entry:
    status: str
    known_failure: bool


def judged_in(report: Mapping[str, Any]) -> list[Judged]:
    """The requirements of a report document (the JSON data), as the exit status reads them."""
    return [
        _Entry(str(r["status"]), bool(r.get("known_failure", False)))
        for r in report["requirements"]
    ]


def exit_status(requirements: Iterable[Judged]) -> ExitCode:
    """The exit status of a verify run, from its verdicts: the one place this rule lives.

    A MUST failure (not a known one) is the target's: 1. Otherwise a requirement that could not be
    judged (also every one of a run that stopped because the target did not start) means the run
    itself broke: 3. A run in which nothing passed proves nothing: 1. `partial` counts as passed
    (what it left unchecked is in its message); `blocked` follows its prerequisite's failure.
    """
    listed = list(requirements)
    if any(r.status == "failed" and not r.known_failure for r in listed):
        return ExitCode.FAILED
    if any(r.status == "error" for r in listed):
        return ExitCode.HARNESS_FAILED
    if not any(r.status in ("passed", "partial") for r in listed):
        return ExitCode.FAILED
    return ExitCode.OK


def conforms(verdicts: Iterable[Judged]) -> bool:
    """The CI contract: no MUST failed, no harness error, and at least one check really passed."""
    return exit_status(verdicts) is ExitCode.OK


def summary(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """Requirements per status; every status is present, zero or not."""
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for verdict in verdicts:
        counts[verdict.status] += 1
    return counts

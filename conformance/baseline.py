"""The baseline file: a team's known failures and flaky requirements, by requirement ID.

known_failures: [R-CREATE-2, G-DOWN-2]
flaky: [R-AUTH-2]
"""

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from conformance.verdicts import Baseline
from contract.requirements import catalogue


class BaselineError(ValueError):
    pass


class _BaselineFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    known_failures: list[str] = Field(default_factory=list)
    flaky: list[str] = Field(default_factory=list)

    @field_validator("known_failures", "flaky")
    @classmethod
    def _known_ids(cls, ids: list[str]) -> list[str]:
        unknown = [i for i in ids if i not in catalogue()]
        if unknown:
            raise ValueError(f"unknown requirement id {unknown[0]!r}")
        return ids


def load_baseline(path: Path) -> Baseline:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        parsed = _BaselineFile.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise BaselineError(f"{path}: cannot read the baseline: {exc}") from None
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        raise BaselineError(f"{path}: {where}: {error['msg']}") from None
    both = set(parsed.known_failures) & set(parsed.flaky)
    if both:
        raise BaselineError(f"{path}: {sorted(both)[0]} is listed both as known and as flaky")
    return Baseline(frozenset(parsed.known_failures), frozenset(parsed.flaky))

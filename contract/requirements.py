"""The requirement catalogue, loaded from requirements.yaml into typed objects."""

from collections.abc import Iterable
from enum import StrEnum
from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator


class Level(StrEnum):
    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"


PROFILES = (
    "core",
    "strict",
    "scripted",
    "lifecycle",
    "export",
    "search",
    "auth",
    "sharing",
    "idempotent",
    "durability",
)
CLIENT_PROFILE = "client"


class Requirement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[RGWCX]-[A-Z]+-\d+$")
    level: Level
    profile: str
    title: str
    raised_in: dict[str, Level] = Field(default_factory=dict)
    # Prerequisites: requirements whose failure leaves this one unjudgeable (`blocked`).
    needs: tuple[str, ...] = ()

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value not in (*PROFILES, CLIENT_PROFILE):
            raise ValueError(f"unknown profile {value!r}")
        return value

    def effective(self, profiles: Iterable[str]) -> tuple[Level, str]:
        """The level and profile that apply when the given profiles are checked."""
        selected = set(profiles)
        for profile, level in self.raised_in.items():
            if profile in selected:
                return level, profile
        return self.level, self.profile


_CATALOGUE_ADAPTER = TypeAdapter(list[Requirement])


@cache
def catalogue() -> dict[str, Requirement]:
    text = resources.files(__package__).joinpath("requirements.yaml").read_text(encoding="utf-8")
    entries = _CATALOGUE_ADAPTER.validate_python(yaml.safe_load(text))
    by_id = {entry.id: entry for entry in entries}
    if len(by_id) != len(entries):
        raise ValueError("requirements.yaml lists an id twice")
    for entry in entries:
        unknown = [need for need in entry.needs if need not in by_id or need == entry.id]
        if unknown:
            raise ValueError(f"requirements.yaml: {entry.id} needs {unknown}, not a prerequisite")
    return by_id


def requirement(requirement_id: str) -> Requirement:
    try:
        return catalogue()[requirement_id]
    except KeyError:
        raise KeyError(f"unknown requirement id {requirement_id!r}") from None

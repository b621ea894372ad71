"""Titles stand next to verdicts: each says what passing means, in every profile it is checked
in."""

import re
from pathlib import Path

import pytest

from contract.requirements import Level, Requirement, catalogue

# Words of a level: the level has its own column; in a title they read as the opposite of the
# verdict next to them ("FAIL ... MUST be refused").
LEVEL_WORDS = re.compile(r"\b(MUST|SHOULD|MAY)\b")
PROTOCOL_ROW = re.compile(r"^\| (?P<id>[RGWCX]-[A-Z]+-\d+) \|[^|]*\|(?P<text>.*)\|\s*$")


def _prohibited_in(requirement: Requirement) -> list[str]:
    """Profiles in which the requirement is raised to a prohibition of its own behaviour: the
    contract's `MUST NOT` or `MUST refuse`."""
    protocol = (Path(__file__).parents[1] / "docs" / "protocol.md").read_text()
    rows = {m["id"]: m["text"] for line in protocol.splitlines() if (m := PROTOCOL_ROW.match(line))}
    text = rows.get(requirement.id, "")
    prohibited = "MUST NOT" in text or "MUST refuse" in text
    return [p for p, level in requirement.raised_in.items() if prohibited and level is Level.MUST]


@pytest.mark.parametrize("requirement", catalogue().values(), ids=list(catalogue()))
def test_a_title_states_what_passing_means_not_the_level(requirement: Requirement) -> None:
    assert not LEVEL_WORDS.search(requirement.title), requirement.title


RAISED = [r for r in catalogue().values() if r.raised_in]


@pytest.mark.parametrize("requirement", RAISED, ids=[r.id for r in RAISED])
def test_a_raised_requirement_states_first_what_its_raised_profile_asks(
    requirement: Requirement,
) -> None:
    """W-CONN-2 next to FAIL under strict must not read "unknown ids are accepted": the clause of
    the raised profile comes first, names that profile, and asks for the refusal."""
    prohibited = _prohibited_in(requirement)
    assert prohibited, f"{requirement.id}: the contract's strict row is a prohibition"
    first = requirement.title.split(";")[0]
    for profile in prohibited:
        assert profile in first, requirement.title
    assert "refused" in first, requirement.title
    assert "accepted" not in first
    assert "creates" not in first


def test_no_title_of_a_strict_must_not_says_accepted_before_it_says_otherwise() -> None:
    for requirement in RAISED:
        title = requirement.title
        if "accepted" in title:
            assert title.index("otherwise") < title.index("accepted"), title

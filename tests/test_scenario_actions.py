"""The table of actions is the one place an action is defined: the loader refuses a step by it,
the runner carries a step out by it, and the action tables of docs/scenarios.md say the same."""

import re
from pathlib import Path

import pytest

from scenarios.actions import ACTIONS
from scenarios.loader import ScenarioError, load_scenario

DOC = Path(__file__).resolve().parents[1] / "docs" / "scenarios.md"
ROW = re.compile(r"^\| `(?P<name>\w+)` \| (?P<args>[^|]*) \| (?P<shorthand>[^|]*) \|")
NAME = re.compile(r"`(\w+)`")


def documented() -> dict[str, tuple[set[str], str | None]]:
    """Each action the doc's tables list: the argument names and the shorthand it gives."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Actions\n", 1)[1].split("\n## ", 1)[0]
    found: dict[str, tuple[set[str], str | None]] = {}
    for line in section.splitlines():
        row = ROW.match(line)
        if row is None:
            continue
        shorthand = NAME.findall(row["shorthand"])
        found[row["name"]] = (set(NAME.findall(row["args"])), shorthand[0] if shorthand else None)
    return found


def test_the_doc_lists_every_action_with_its_arguments_and_shorthand() -> None:
    table = {
        name: (set(action.args.model_fields), action.shorthand) for name, action in ACTIONS.items()
    }
    assert documented() == table


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_a_shorthand_names_a_field_of_the_arguments(name: str) -> None:
    action = ACTIONS[name]
    assert action.shorthand is None or action.shorthand in action.args.model_fields


def test_a_bare_value_for_an_action_without_shorthand_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("id: x\ntitle: x\nsteps:\n  - open_panel: {}\n  - network: down\n")
    with pytest.raises(ScenarioError) as error:
        load_scenario(plan)
    assert (error.value.line, error.value.reason) == (5, "network takes a mapping of arguments")

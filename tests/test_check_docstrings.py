"""Every conformance check quotes the contract sentence it enforces.

A check marked with `pytest.mark.req(...)` (on the function, or on a `pytest.param` of its
parametrization) names each of its requirement ids in its docstring and quotes, in double quotes,
a passage of docs/protocol.md (docs/decisions.md, "Verdicts and what a check may assert").
"""

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ROOT / "conformance" / "checks"
PROTOCOL = ROOT / "docs" / "protocol.md"
REQUIREMENT_ID = re.compile(r"[A-Z]+-[A-Z]+-\d+")
# A quoted passage: at least this many words of the contract, verbatim but for its markup.
PASSAGE_WORDS = 3


@dataclass(frozen=True)
class MarkedCheck:
    name: str
    line: int
    requirements: tuple[str, ...]
    docstring: str | None


def _string_tuples(tree: ast.Module) -> dict[str, tuple[str, ...]]:
    """Module-level names bound to a tuple or list of strings (`MODEL_IDS = ("R-…", …)`)."""
    found: dict[str, tuple[str, ...]] = {}
    for node in tree.body:
        if not (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Tuple | ast.List)
        ):
            continue
        values = node.value.elts
        strings = [
            v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        ]
        if len(strings) == len(values):
            found[node.targets[0].id] = tuple(strings)
    return found


def _marker_ids(call: ast.Call, tuples: dict[str, tuple[str, ...]]) -> list[str]:
    """The ids one `pytest.mark.req(...)` names; every id a conditional could pick counts."""
    ids: list[str] = []
    for argument in call.args:
        if isinstance(argument, ast.Starred):
            name = argument.value
            if not (isinstance(name, ast.Name) and name.id in tuples):
                raise ValueError(f"line {call.lineno}: cannot read {ast.unparse(argument)}")
            ids.extend(tuples[name.id])
            continue
        strings = [
            node.value
            for node in ast.walk(argument)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
        named = [text for text in strings if REQUIREMENT_ID.fullmatch(text)]
        if not named:
            raise ValueError(f"line {call.lineno}: no requirement id in {ast.unparse(argument)}")
        ids.extend(named)
    return ids


def marked_checks(source: str) -> list[MarkedCheck]:
    """The test functions of a module's source that carry a `req` marker, with their ids."""
    tree = ast.parse(source)
    tuples = _string_tuples(tree)
    checks = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        ids: list[str] = []
        for decorator in node.decorator_list:
            for call in ast.walk(decorator):
                if isinstance(call, ast.Call) and ast.unparse(call.func) == "pytest.mark.req":
                    ids.extend(_marker_ids(call, tuples))
        if ids:
            checks.append(
                MarkedCheck(
                    node.name, node.lineno, tuple(dict.fromkeys(ids)), ast.get_docstring(node)
                )
            )
    return checks


def _flat(text: str) -> str:
    """Text as compared: the contract's markup (backticks, bold, arrows) and line breaks aside."""
    text = text.replace("`", "").replace("**", "").replace("→", "->").replace("…", "...")
    return " ".join(text.split())


def _quotes_the_contract(docstring: str, contract: str) -> bool:
    """Some stretch between two double quotes is a passage of the contract: each part of it
    between elisions (`...`) appears there, and together they hold enough words."""
    pieces = _flat(docstring).split('"')[1:-1]
    for piece in pieces:
        parts = [part.strip(" ,;:.") for part in piece.split("...")]
        parts = [part for part in parts if part]
        words = sum(len(part.split()) for part in parts)
        if words >= PASSAGE_WORDS and all(part in contract for part in parts):
            return True
    return False


def docstring_problems(check: MarkedCheck, contract: str) -> list[str]:
    """What a check's docstring lacks: an empty list when it is as the rule asks."""
    if not check.docstring:
        return ["no docstring"]
    flat = _flat(check.docstring)
    problems = [
        f"does not name {requirement}"
        for requirement in check.requirements
        if not re.search(rf"(?<![\w-]){re.escape(requirement)}(?!\d)", flat)
    ]
    if not _quotes_the_contract(check.docstring, contract):
        problems.append("quotes no passage of docs/protocol.md in double quotes")
    return problems


@pytest.fixture(scope="module")
def contract() -> str:
    return _flat(PROTOCOL.read_text(encoding="utf-8"))


def _all_checks() -> list[tuple[str, MarkedCheck]]:
    return [
        (path.name, check)
        for path in sorted(CHECKS.glob("test_*.py"))
        for check in marked_checks(path.read_text(encoding="utf-8"))
    ]


def test_the_checks_are_found() -> None:
    names = {check.name for _, check in _all_checks()}
    # A collector that finds nothing would pass everything below.
    assert len(names) > 60
    assert "test_a_bad_frame_gets_an_error_frame_and_the_socket_stays_usable" in names


def test_every_marked_check_quotes_its_requirements() -> None:
    contract = _flat(PROTOCOL.read_text(encoding="utf-8"))
    wrong = [
        f"{module}:{check.line} {check.name}: {'; '.join(problems)}"
        for module, check in _all_checks()
        if (problems := docstring_problems(check, contract))
    ]
    assert not wrong, "\n".join(wrong)


# The helper on made-up sources

MADE_UP = '''
import pytest

MODEL_IDS = ("R-CREATE-1", "R-LIST-1")


@pytest.mark.req("R-HEALTH-1")
async def test_without_a_docstring() -> None:
    pass


@pytest.mark.req("R-AUTH-1")
async def test_without_a_quote() -> None:
    """R-AUTH-1: every path needs the key."""


@pytest.mark.req("R-AUTH-1")
async def test_with_an_invented_quote() -> None:
    """R-AUTH-1: "every path answers 418 to a teapot"."""


@pytest.mark.req(*MODEL_IDS, "W-TURN-2")
async def test_naming_one_id_of_three() -> None:
    """R-CREATE-1: "Ids are unique: 1,000 creates (including concurrent ones) give 1,000 distinct
    ids"."""


@pytest.mark.parametrize(
    "what",
    [pytest.param(w, marks=pytest.mark.req("W-BAD-1" if w else "W-BAD-2")) for w in "ab"],
)
async def test_parametrized(what: str) -> None:
    """W-BAD-1: "Text that is not JSON gets an error frame; the connection stays open and the
    next valid message works." W-BAD-2: "... gets an error frame ..."."""


@pytest.mark.req("R-HIST-10")
async def test_a_longer_id(what: str) -> None:
    """R-HIST-1: "Messages come back in the order they were appended"."""


async def test_unmarked() -> None:
    pass
'''


def test_the_helper_reads_markers_params_and_id_tuples() -> None:
    found = {check.name: check.requirements for check in marked_checks(MADE_UP)}
    assert found == {
        "test_without_a_docstring": ("R-HEALTH-1",),
        "test_without_a_quote": ("R-AUTH-1",),
        "test_with_an_invented_quote": ("R-AUTH-1",),
        "test_naming_one_id_of_three": ("R-CREATE-1", "R-LIST-1", "W-TURN-2"),
        "test_parametrized": ("W-BAD-1", "W-BAD-2"),
        "test_a_longer_id": ("R-HIST-10",),
    }


def test_the_helper_fails_a_check_that_lacks_its_docstring_ids_or_quote(contract: str) -> None:
    problems = {check.name: docstring_problems(check, contract) for check in marked_checks(MADE_UP)}
    assert problems == {
        "test_without_a_docstring": ["no docstring"],
        "test_without_a_quote": ["quotes no passage of docs/protocol.md in double quotes"],
        "test_with_an_invented_quote": ["quotes no passage of docs/protocol.md in double quotes"],
        "test_naming_one_id_of_three": ["does not name R-LIST-1", "does not name W-TURN-2"],
        "test_parametrized": [],
        "test_a_longer_id": ["does not name R-HIST-10"],
    }


def test_a_marker_whose_ids_cannot_be_read_is_an_error() -> None:
    source = '''
import pytest
from elsewhere import IDS

@pytest.mark.req(*IDS)
def test_ids_from_elsewhere() -> None:
    """R-LIST-1: "every created session appears"."""
'''
    with pytest.raises(ValueError, match="cannot read"):
        marked_checks(source)

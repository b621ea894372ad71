"""YAML loaded into plain data, with the line of every key and item kept for error messages.

Target description files and test plans are read this way, so both name the line of a mistake.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Location = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedYaml:
    data: Any
    lines: dict[Location, int]  # location -> 1-based line

    def line_of(self, location: Location) -> int:
        """The line of the value at `location`, or of its nearest enclosing value."""
        for end in range(len(location), -1, -1):
            line = self.lines.get(location[:end])
            if line is not None:
                return line
        return 1


class YamlSyntaxError(ValueError):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def _convert(node: yaml.Node, location: Location, lines: dict[Location, int]) -> Any:
    lines.setdefault(location, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, (*location, "<key>"), lines)
            if not isinstance(key, str | int):
                raise YamlSyntaxError(key_node.start_mark.line + 1, "keys must be strings")
            if key in result:
                raise YamlSyntaxError(key_node.start_mark.line + 1, f"duplicate key {key!r}")
            # The key's line, not the value's: a block value starts on the line after its key.
            lines[(*location, key)] = key_node.start_mark.line + 1
            result[key] = _convert(value_node, (*location, key), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*location, index), lines) for index, item in enumerate(node.value)]
    # Scalars: compose has resolved their tags (int, bool, null ...); the safe constructor
    # builds the value. (Re-serialising the node would lose an empty value: `key:` with nothing.)
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def parse_yaml(text: str) -> LoadedYaml:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # An unclosed bracket or quote is found at the end of the file; where it opened says more.
        if (
            exc.context_mark is not None
            and mark is not None
            and mark.line >= len(text.splitlines())
        ):
            mark = exc.context_mark
        line = mark.line + 1 if mark else 1
        reason = " ".join(part for part in (exc.context, exc.problem) if part)
        raise YamlSyntaxError(line, f"YAML syntax: {reason or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(1, f"YAML syntax: {exc}") from None
    if node is None:
        raise YamlSyntaxError(1, "the file is empty")
    lines: dict[Location, int] = {}
    return LoadedYaml(_convert(node, (), lines), lines)


def load_yaml(path: Path) -> LoadedYaml:
    return parse_yaml(path.read_text(encoding="utf-8"))

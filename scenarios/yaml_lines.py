"""YAML loaded into plain data, with the line of every value kept for error messages."""

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
    lines[location] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, (*location, "<key>"), lines)
            if not isinstance(key, str | int):
                raise YamlSyntaxError(key_node.start_mark.line + 1, "keys must be strings")
            if key in result:
                raise YamlSyntaxError(key_node.start_mark.line + 1, f"duplicate key {key!r}")
            result[key] = _convert(value_node, (*location, key), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*location, index), lines) for index, item in enumerate(node.value)]
    # Scalars: let the safe loader's resolver give them their types (int, bool, null ...).
    return yaml.SafeLoader(yaml.serialize(node)).get_single_data()


def load_yaml(path: Path) -> LoadedYaml:
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlSyntaxError(line, f"YAML syntax: {exc.problem or exc}") from None
    if node is None:
        raise YamlSyntaxError(1, "the file is empty")
    lines: dict[Location, int] = {}
    return LoadedYaml(_convert(node, (), lines), lines)

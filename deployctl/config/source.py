"""YAML text → plain data plus the line/column of every key and value.

PyYAML's composer gives us nodes with marks; we walk them ourselves so we can report
duplicate keys (PyYAML silently keeps the last) and keep positions for later errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from deployctl.errors import ConfigError, ConfigProblem

Path = tuple[str | int, ...]


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class Marks:
    """1-based (line, col) for each value path, and for each mapping key path."""

    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def at(self, path: Path) -> tuple[int, int]:
        """Best position for a path: the key if known, else the value, else the nearest parent."""
        probe = tuple(path)
        while probe:
            if probe in self.keys:
                return self.keys[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), (1, 1))

    def value_at(self, path: Path) -> tuple[int, int]:
        return self.values.get(tuple(path)) or self.at(path)


@dataclass
class Document:
    file: str
    data: Any
    marks: Marks

    def problem(self, path: Path, message: str, hint: str | None = None, *, key: bool = True) -> ConfigProblem:
        line, col = self.marks.at(path) if key else self.marks.value_at(path)
        return ConfigProblem(self.file, line, col, dotted(path), message, hint)


def _pos(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _scalar(node: yaml.ScalarNode) -> Any:
    # Resolve tags the safe loader's way (ints, bools, null, floats), without building objects.
    return yaml.SafeLoader.construct_scalar(_CONSTRUCTOR, node) if node.tag == "tag:yaml.org,2002:str" \
        else _CONSTRUCTOR.construct_object(node, deep=True)


_CONSTRUCTOR = yaml.SafeLoader("")


def parse(text: str, file: str) -> Document:
    """Parse YAML text. Raises ConfigError with every duplicate-key / tab problem, or the syntax error."""
    problems: list[ConfigProblem] = []
    for i, raw_line in enumerate(text.splitlines(), start=1):
        indent = raw_line[: len(raw_line) - len(raw_line.lstrip(" \t"))]
        if "\t" in indent:
            problems.append(ConfigProblem(file, i, indent.index("\t") + 1, "",
                                          "tab character in indentation", "YAML indents with spaces only"))
    if problems:
        raise ConfigError(problems)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = _pos(mark) if mark else (1, 1)
        what = (exc.problem or "invalid YAML").strip()
        if exc.context:
            what = f"{exc.context.strip()}: {what}"
        raise ConfigError([ConfigProblem(file, line, col, "", f"YAML syntax error: {what}")]) from None
    marks = Marks()
    if root is None:
        return Document(file, {}, marks)
    data = _walk(root, (), marks, problems, file)
    if problems:
        raise ConfigError(problems)
    return Document(file, data, marks)


def _walk(node: yaml.Node, path: Path, marks: Marks, problems: list[ConfigProblem], file: str) -> Any:
    marks.values[path] = _pos(node.start_mark)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        _CONSTRUCTOR.flatten_mapping(node)  # honours YAML merge keys (<<: *anchor)
        for key_node, value_node in node.value:
            key = _scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str | int | bool) or key is None:
                line, col = _pos(key_node.start_mark)
                problems.append(ConfigProblem(file, line, col, dotted(path), "mapping keys must be plain strings"))
                continue
            key = str(key).lower() if isinstance(key, bool) else str(key)
            child = (*path, key)
            if key in out:
                line, col = _pos(key_node.start_mark)
                first = marks.keys[child][0]
                problems.append(ConfigProblem(file, line, col, dotted(child),
                                              f"duplicate key (first defined on line {first})",
                                              "remove one of them"))
                continue
            marks.keys[child] = _pos(key_node.start_mark)
            out[key] = _walk(value_node, child, marks, problems, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), marks, problems, file) for i, item in enumerate(node.value)]
    return _scalar(node)

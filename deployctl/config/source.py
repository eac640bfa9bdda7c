"""YAML text → plain data plus the line/column of every key and value.

PyYAML's composer gives us nodes with marks; we walk them ourselves so we can report
duplicate keys (PyYAML silently keeps the last) and keep positions for later errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, cast

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
    # Problems found while parsing that do not stop validation (duplicate keys: the first wins),
    # so one run reports them together with everything else.
    problems: list[ConfigProblem] = field(default_factory=list)
    # Paths whose value could not be read (a bad tag, an unreadable number): already reported,
    # so later checks must not complain about the stand-in value again.
    unusable: set[Path] = field(default_factory=set)
    _unusable_dotted: set[str] = field(default_factory=set, repr=False)

    def is_usable(self, problem: ConfigProblem) -> bool:
        """False for a follow-on problem at (or inside) a value that could not be read."""
        if len(self._unusable_dotted) != len(self.unusable):  # a set per call made this quadratic
            self._unusable_dotted = {printable(dotted(path)) for path in self.unusable}
        where, bad = problem.path, self._unusable_dotted
        return where not in bad and not any(where[:i] in bad for i, c in enumerate(where) if c in ".[")

    # Values that came from ${VAR}: path → the variables in it, and each variable's value. An
    # error names the variable, never the value: it may be a token.
    from_env: dict[Path, list[str]] = field(default_factory=dict)
    env_values: dict[str, str] = field(default_factory=dict)
    data_after_env: Any = None  # the interpolated data, where hide_env_values finds the values

    def problem(self, path: Path, message: str, hint: str | None = None, *,
                key: bool = True) -> ConfigProblem:
        line, col = self.marks.at(path) if key else self.marks.value_at(path)
        message, hint = self.hide_env_values(tuple(path), message), \
            self.hide_env_values(tuple(path), hint) if hint else hint
        return ConfigProblem(self.file, line, col, printable(dotted(path)), printable(message),
                             printable(hint) if hint else hint)

    def hide_env_values(self, path: Path, text: str) -> str:
        names = self.from_env.get(path)
        if names:
            value = _value_at(self.data_after_env, path)
            refs = [f"${{{n}}}" for n in names]
            shown = f"the value of {refs[0]}" if len(refs) == 1 else \
                f"the value built from {', '.join(refs[:-1])} and {refs[-1]}"
            if isinstance(value, str) and value:
                for form in (f"'{value}'", repr(value)):
                    text = text.replace(form, shown)
                text = _replace_word(text, value, shown)
            elif isinstance(value, str):
                text = text.replace("an empty string", shown)
        # A value may also turn up in a message about a neighbour (cpu and memory together):
        # hide every variable's value that is long enough to be anything but a plain number.
        for name, value in sorted(self.env_values.items(), key=lambda item: -len(item[1])):
            if len(value) >= 6:
                text = _replace_word(text, value, f"${{{name}}}")
        return text


def _value_at(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]  # paths hold only keys and list indexes that the walk produced
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _replace_word(text: str, word: str, by: str) -> str:
    """`word` replaced where it stands alone: a port 8080 is hidden in "got 8080", not in "18080"."""
    if word not in text:
        return text
    return re.sub(rf"(?<![\w-]){re.escape(word)}(?![\w-])", lambda _: by, text)


def printable(text: str) -> str:
    """Text safe for a terminal and a CI log: control characters (ANSI escapes), unpaired
    surrogates and invisible format characters are shown escaped, never sent raw."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _pos(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


_CONSTRUCTOR = yaml.SafeLoader("")
_YAML = "tag:yaml.org,2002:"
# The YAML 1.1 scalar types the safe loader resolves; any other tag (CloudFormation's !Ref,
# !!python/…) has no meaning in deploy.yaml.
_SCALAR_KINDS = {"null": "null", "bool": "true or false", "int": "a whole number", "float": "a number",
                 "timestamp": "a date or time", "str": "text"}


_TAG_HINT = ("deploy.yaml takes plain values: of the tags it reads only the standard !!str, !!int, "
             "!!float, !!bool, !!null, !!timestamp, !!map and !!seq; CloudFormation's !Ref or !Sub "
             "mean nothing here")


def _shown_tag(tag: str) -> str:
    return f"!!{tag[len(_YAML):]}" if tag.startswith(_YAML) else tag


def parse(text: str, file: str) -> Document:
    """Parse YAML text. Tabs and syntax errors raise ConfigError; duplicate keys are kept on the Document."""
    problems: list[ConfigProblem] = []
    text, tabbed = _tabs_in_indentation(text)
    for i, col in tabbed:
        problems.append(ConfigProblem(file, i, col, "", "tab character in indentation",
                                      "YAML indents with spaces only"))
    if problems:
        raise ConfigError(problems)
    try:
        root = yaml.compose(text, Loader=_Loader)
    except RecursionError:  # the composer recurses once per level: locate the deep part without it
        raise ConfigError([_too_deep(text, file)]) from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_problem(exc, file)]) from None
    except yaml.reader.ReaderError as exc:  # a control character: PyYAML gives only an offset
        before = text[: exc.position]
        line, col = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise ConfigError([ConfigProblem(file, line, col, "", f"unacceptable character {char}",
                                         "deploy.yaml must be plain UTF-8 text")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(file, 1, 1, "", f"YAML syntax error: {exc}")]) from None
    marks = Marks()
    if root is None:
        return Document(file, {}, marks)
    walker = _Walker(file, marks, problems)
    data = walker.walk(root, ())
    return Document(file, data, marks, problems, walker.unusable)


def _scalar_lines(text: str) -> tuple[set[int], int | None]:
    """0-based lines that continue a multi-line scalar (block, quoted or plain), where a tab is
    text rather than indentation; and the line where scanning stopped on an error, if it did."""
    inside: set[int] = set()
    try:
        for token in yaml.scan(text, Loader=_Loader):
            if isinstance(token, yaml.ScalarToken) and token.start_mark and token.end_mark:
                start, end = token.start_mark, token.end_mark
                last = end.line if end.column > 0 else end.line - 1
                if last > start.line:
                    inside.update(range(start.line + 1, last + 1))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        return inside, mark.line if mark else 0
    except yaml.YAMLError:
        return inside, 0
    return inside, None


def _tabs_in_indentation(text: str) -> tuple[str, list[tuple[int, int]]]:
    """(text, [(line, col) of tabs that indent structure]), 1-based.

    Tabs inside block scalars and multi-line strings are content, and before a comment they
    are allowed (YAML 1.2): the scanner skips those itself (_Loader.scan_to_next_token), so one
    scan finds every line a tab really indents, up to the first one (where scanning stops)."""
    lines = text.split("\n")
    candidates = []
    for i, line in enumerate(lines):
        rest = line.lstrip(" \t")
        if "\t" in line[: len(line) - len(rest)] and rest[:1] not in ("#", "", "\r"):
            candidates.append(i)
    if not candidates:
        return text, []
    inside, stopped = _scalar_lines(text)
    tabbed = []
    for i in candidates:
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip(" \t"))]
        if i not in inside and (stopped is None or i <= stopped):
            tabbed.append((i + 1, indent.index("\t") + 1))
    return text, tabbed


def _too_deep(text: str, file: str) -> ConfigProblem:
    depth, line, col = 0, 1, 1
    try:
        for event in yaml.parse(text, Loader=_Loader):  # the parser keeps its own stack
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
                    break
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        pass
    return ConfigProblem(file, line, col, "", f"nested too deeply (more than {MAX_DEPTH} levels)",
                         "deploy.yaml needs only a few levels; look for unclosed or repeated [ or {")


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> ConfigProblem:
    mark = exc.problem_mark or exc.context_mark
    line, col = _pos(mark) if mark else (1, 1)
    what = (exc.problem or "invalid YAML").strip()
    if exc.context and exc.context_mark:
        # PyYAML's context ("while parsing a flow mapping") matters most when it started elsewhere:
        # an unclosed `{` or `[` on an earlier line is reported where the parser gave up.
        cline, ccol = _pos(exc.context_mark)
        where = f"line {cline} column {ccol}" if cline != line else f"column {ccol}"
        what = f"{what} ({exc.context.strip()} that starts at {where})"
    elif exc.context:
        what = f"{exc.context.strip()}: {what}"
    return ConfigProblem(file, line, col, "", printable(f"YAML syntax error: {what}"), _syntax_hint(what))


def _syntax_hint(what: str) -> str | None:
    if "flow" in what:
        return "look for a missing closing bracket, brace or comma"
    if "block" in what or "mapping values are not allowed" in what:
        return "check this line's indentation against the lines above, and quote values that contain ': '"
    if "found character '\\t'" in what:  # `region:<TAB>us-east-1`
        return "YAML separates with spaces: put a space, not a tab, after ':' or '-'"
    if "found character" in what and "cannot start any token" in what:
        return "quote the value"
    if "found undefined alias" in what:
        return "define the anchor (&name) before using *name"
    return None


MERGE_TAG = "tag:yaml.org,2002:merge"
# Limits that keep a hostile or broken file from hanging deployctl: a "billion laughs" file of
# a few hundred bytes multiplies nine-item lists through aliases into billions of values.
MAX_DEPTH = 64  # deploy.yaml itself needs about 8 levels
MAX_ALIAS_VALUES = 10_000  # values produced by expanding aliases and merges, in all


class _AliasNode(yaml.Node):
    """Where `*name` is written: PyYAML's composer hands back the anchored node itself, which
    loses the alias's position and hides alias expansion and self-reference from the walker."""

    id = "alias"

    def __init__(self, target: yaml.Node, anchor: str, start_mark: yaml.Mark, end_mark: yaml.Mark) -> None:
        super().__init__(target.tag, target.value, start_mark, end_mark)
        self.target, self.anchor = target, anchor


class _Loader(yaml.SafeLoader):
    def scan_to_next_token(self) -> None:
        """PyYAML's, except that a line of only whitespace and maybe a comment may hold tabs
        (YAML 1.2 allows them there; PyYAML refuses). Checking here, once per such line, keeps
        loading linear: rewriting the text and rescanning per line was quadratic."""
        if self.index == 0 and self.peek() == "\ufeff":
            self.forward()
        while True:
            while self.peek() == " ":
                self.forward()
            if self.peek() == "\t":
                run = 0
                while self.peek(run) in " \t":
                    run += 1
                if self.peek(run) in "#\0\r\n\x85\u2028\u2029" and self._blank_before():
                    self.forward(run)
            if self.peek() == "#":
                while self.peek() not in "\0\r\n\x85\u2028\u2029":
                    self.forward()
            if not self.scan_line_break():
                return
            if not self.flow_level:
                self.allow_simple_key = True

    def _blank_before(self) -> bool:
        """Only spaces and tabs precede the current position on its line."""
        start = self.pointer - self.column
        return start >= 0 and not self.buffer[start:self.pointer].strip(" \t")

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = cast(yaml.Node, super().compose_node(parent, index))  # raises for an undefined alias
            return _AliasNode(target, str(event.anchor), event.start_mark, event.end_mark)
        return cast(yaml.Node, super().compose_node(parent, index))


class _Walker:
    """Composed nodes → plain data, recording marks and collecting problems as it goes."""

    def __init__(self, file: str, marks: Marks, problems: list[ConfigProblem]) -> None:
        self.file, self.marks, self.problems = file, marks, problems
        self.unusable: set[Path] = set()
        self.reported: set[tuple[int, str]] = set()
        self.active: set[int] = set()  # the collections being walked: an alias to one refers to itself
        self.expanding = 0  # >0 while walking what an alias or a merge brings in
        self.alias_values = 0
        self.too_much = False

    def problem(self, node: yaml.Node, path: Path, message: str, hint: str | None = None) -> None:
        # A node reached again through an alias or a merge is reported once, where it is written.
        if (id(node), message) in self.reported:
            return
        self.reported.add((id(node), message))
        line, col = _pos(node.start_mark)
        self.problems.append(ConfigProblem(self.file, line, col, printable(dotted(path)), printable(message),
                                           printable(hint) if hint else hint))

    def walk(self, node: yaml.Node, path: Path, depth: int = 0) -> Any:
        if isinstance(node, _AliasNode):
            return self.alias(node, path, depth)
        if self.expanding:
            self.alias_values += 1
            if self.alias_values > MAX_ALIAS_VALUES:
                self.unusable.add(path)
                return None  # alias() reports it once, at the alias that started the expansion
        self.marks.values[path] = _pos(node.start_mark)
        if isinstance(node, yaml.CollectionNode):
            plain = _YAML + ("map" if isinstance(node, yaml.MappingNode) else "seq")
            if node.tag != plain:  # `!Ref {…}`, `!!python/object/apply:os.system [...]`, `!!set`
                self.problem(node, path, f"unsupported YAML tag {_shown_tag(node.tag)}", _TAG_HINT)
                self.unusable.add(path)
                return None
            if depth >= MAX_DEPTH:
                self.problem(node, path, f"nested too deeply (more than {MAX_DEPTH} levels)",
                             "deploy.yaml needs only a few levels; look for unclosed or repeated [ or {")
                self.unusable.add(path)
                return None
            self.active.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self.mapping(node, path, depth)
                return [self.walk(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
            finally:
                self.active.discard(id(node))
        # The composer builds only mapping, sequence and scalar nodes: what is left is a scalar.
        value, ok = self.scalar(cast(yaml.ScalarNode, node), path)
        if not ok:
            self.unusable.add(path)
        return value

    def alias(self, node: _AliasNode, path: Path, depth: int) -> Any:
        target = node.target
        if id(target) in self.active:
            self.problem(node, path, f"alias *{node.anchor} refers to itself (it is inside &{node.anchor})",
                         "an alias can only repeat a value whose anchor is complete before it")
            value = None
        else:
            self.expanding += 1
            try:
                value = self.walk(target, path, depth)
            finally:
                self.expanding -= 1
            if self.alias_values > MAX_ALIAS_VALUES:
                if not self.expanding and not self.too_much:  # once, at the outermost alias
                    self.too_much = True
                    self.problem(node, path, f"alias *{node.anchor} expands too much (more than "
                                             f"{MAX_ALIAS_VALUES} values through aliases in this file)",
                                 "aliases repeat whole values; nested ones multiply")
                value = None
        self.marks.values[path] = _pos(node.start_mark)  # what is written here is the alias
        if value is None:
            self.unusable.add(path)
        return value

    def scalar(self, node: yaml.ScalarNode, path: Path) -> tuple[Any, bool]:
        """The value the safe loader would build, or (the source text, False) after a problem."""
        tag = node.tag
        if tag == _YAML + "str" or tag in (MERGE_TAG, _YAML + "value"):  # `<<` or `=` as a value: text
            return node.value, True
        kind = tag[len(_YAML):] if tag.startswith(_YAML) else None
        if kind not in _SCALAR_KINDS:
            self.problem(node, path, f"unsupported YAML tag {_shown_tag(tag)}", _TAG_HINT)
            return node.value, False
        try:
            value = _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, node)
        except Exception as exc:  # noqa: BLE001 - PyYAML raises ValueError, KeyError, AttributeError…
            digits = str(exc) if "digits" in str(exc) else ""
            if digits:
                self.problem(node, path, f"number too long ({len(node.value)} characters)",
                             "quote it if it is text")
            else:
                self.problem(node, path, f"'{node.value}' is not {_SCALAR_KINDS[kind]} (tag !!{kind})",
                             "remove the tag, or fix the value")
            return node.value, False
        if kind == "timestamp":
            return node.value, True  # nothing here takes a date: keep `deploy_on: 2024-05-01` as written
        return value, True

    def mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        sources: list[yaml.Node] = []  # what `<<` merges in, highest priority first
        merge_line = 0
        for key_node, value_node in node.value:
            if isinstance(key_node, _AliasNode):
                key_node = key_node.target
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == MERGE_TAG:
                if merge_line:  # PyYAML merges both; YAML forbids a repeated key. Refused, merged to go on
                    self.problem(key_node, (*path, "<<"), f"a second merge key (<<) in this mapping (the first is "
                                                 f"on line {merge_line})",
                                 "merge several mappings with one key: `<<: [*first, *second]`")
                merge_line = merge_line or _pos(key_node.start_mark)[0]
                sources.extend(self.merge_sources(value_node, path))
                continue
            key, ok = self.scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else (None, True)
            if not ok:
                continue  # reported: an unreadable key
            if not isinstance(key, str | int | bool) or key is None:
                self.problem(key_node, path, "mapping keys must be plain strings")
                continue
            # Keys keep their source text: YAML 1.1 would turn `ON:` / `NO:` (env var names) into
            # true/false and `010:` into 8.
            key = key if isinstance(key, str) else str(key_node.value)
            child = (*path, key)
            if key in out:
                first = self.marks.keys[child][0]
                self.problem(key_node, child, f"duplicate key (first defined on line {first})",
                             "remove one of them")
                continue
            self.marks.keys[child] = _pos(key_node.start_mark)
            out[key] = self.walk(value_node, child, depth + 1)
        # YAML merge keys: keys written in this mapping win over merged ones, and among the
        # merged mappings the earlier one wins (`<<: [*a, *b]` takes a key from *a first).
        for source in sources:
            own, self.marks = self.marks, Marks()
            try:
                merged = self.walk(source, path, depth)
                found = self.marks
            finally:
                self.marks = own
            if not isinstance(merged, dict):
                continue  # refers to itself or expands too much: reported
            taken = {key for key in merged if key not in out}
            out.update((key, value) for key, value in merged.items() if key in taken)
            depth = len(path)
            for table, found_table in ((own.keys, found.keys), (own.values, found.values)):
                table.update((sub, pos) for sub, pos in found_table.items()
                             if len(sub) > depth and sub[depth] in taken)
        return out

    def merge_sources(self, value: yaml.Node, path: Path) -> list[yaml.Node]:
        seq = value.target if isinstance(value, _AliasNode) else value
        items = seq.value if isinstance(seq, yaml.SequenceNode) else [value]
        out: list[yaml.Node] = []
        for item in items:
            if isinstance(item.target if isinstance(item, _AliasNode) else item, yaml.MappingNode):
                out.append(item)
            else:
                self.problem(item, path, "a merge key (<<) takes a mapping or a list of mappings",
                             "write `<<: *anchor` or `<<: [*first, *second]`")
        return out

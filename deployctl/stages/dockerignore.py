""".dockerignore, applied the way the docker CLI applies it when it sends a build context.

Ported from moby's `patternmatcher` (ignorefile.ReadAll, Pattern.compile, MatchesOrParentMatches)
and the walk of `archive.TarWithOptions`, including the corners users trip over:
- a line is a comment only when `#` is its very first character (` #x` is a pattern `#x`);
  a UTF-8 BOM on the first line is dropped; whitespace around a pattern is trimmed;
- each pattern is cleaned like Go's `filepath.Clean` (`./a/../b` is `b`), one leading `/` dropped;
- `*` and `?` stay inside a path segment, `**` spans any number of segments (`**/x` also
  matches `x`), a pattern made of a literal then a trailing `**` is a plain prefix
  (`foo**` matches `foobar`), and `**` then a literal is a plain suffix (`**foo` matches
  `a/barfoo`);
- `[...]` is a Go regexp class: `[!x]` means "`!` or `x`", only `[^x]` negates; `\\` escapes;
- a pattern that matches a directory excludes everything below it; the last matching line wins;
- an excluded directory is skipped whole unless a `!` line *starts with* its path
  (`docs` + `!docs/keep.md` looks inside; `docs` + `!**/*.md` does not);
- the Dockerfile and .dockerignore are sent even when listed (the daemon needs them; it drops
  them before COPY).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deployctl.errors import UsageError

_ESCAPE = set(".+()|{}$")


@dataclass(frozen=True)
class Pattern:
    text: str  # cleaned, without the leading `!`
    exclusion: bool  # a `!` line: re-includes what it matches
    line: int  # 1-based line in .dockerignore (0 for lines deployctl adds)
    kind: str  # "exact", "prefix", "suffix" or "regexp" (as patternmatcher decides)
    regex: re.Pattern[str] | None = None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
        assert self.regex is not None
        return self.regex.fullmatch(path) is not None

    @property
    def source(self) -> str:
        return ("!" if self.exclusion else "") + self.text


def go_clean(path: str) -> str:
    """Go's path.Clean: the shortest equivalent path (`//a/./b/../c/` is `/a/c`, `` is `.`)."""
    if not path:
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _compile(text: str, exclusion: bool, line: int) -> Pattern:
    regex, kind, i, n = "", "exact", 0, len(text)
    first = True
    while i < n:
        c = text[i]
        if c == "*":
            if i + 1 < n and text[i + 1] == "*":
                i += 1
                if i + 1 < n and text[i + 1] == "/":
                    i += 1
                if i + 1 >= n:  # `**` ends the pattern: anything below
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        regex += ".*"
                        kind = "regexp"
                else:
                    regex += "(?:.*/)?"
                    kind = "regexp"
                if first:
                    kind = "suffix"
            else:
                regex += "[^/]*"
                kind = "regexp"
        elif c == "?":
            regex += "[^/]"
            kind = "regexp"
        elif c in _ESCAPE:
            regex += "\\" + c
        elif c == "\\":
            if i + 1 < n:
                i += 1
                regex += "\\" + text[i]
                kind = "regexp"
            else:
                regex += "\\\\"
        elif c in "[]":
            regex += c
            kind = "regexp"
        else:
            regex += c
        first = False
        i += 1
    compiled = None
    if kind == "regexp":
        try:
            compiled = re.compile(regex)
        except re.error as exc:
            raise _bad(line, text, str(exc)) from None
    return Pattern(text, exclusion, line, kind, compiled)


def _bad(line: int, text: str, why: str) -> UsageError:
    return UsageError(f".dockerignore line {line}: `{text}` is not a valid pattern ({why})",
                      hint="docker refuses such a context too; see "
                           "https://docs.docker.com/build/concepts/context/#dockerignore-files")


def _check_classes(text: str, line: int) -> None:
    """What Go's filepath.Match reports as ErrBadPattern: an unclosed `[` class, a dangling `\\`."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            j = i + 1
            if j < n and text[j] == "^":
                j += 1
            if j < n and text[j] == "]":
                raise _bad(line, text, "empty character class")
            while j < n and text[j] != "]":
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise _bad(line, text, "unclosed [")
            i = j
        i += 1
    if text.endswith("\\") and not text.endswith("\\\\"):
        raise _bad(line, text, "trailing backslash")


def parse(text: str) -> list[Pattern]:
    """The patterns of a .dockerignore, in order (see the module docstring for the rules)."""
    patterns: list[Pattern] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        if number == 1 and raw.startswith("\ufeff"):
            raw = raw[1:]
        raw = raw.removesuffix("\r")
        if raw.startswith("#"):
            continue
        line = raw.strip()
        if not line:
            continue
        exclusion = line[0] == "!"
        if exclusion:
            line = line[1:].strip()
            if not line:
                raise _bad(number, "!", "an exception needs a pattern")
        line = go_clean(line)
        if len(line) > 1 and line[0] == "/":
            line = line[1:]
        _check_classes(line, number)
        patterns.append(_compile(line, exclusion, number))
    return patterns


def extra_exception(path: str) -> Pattern:
    """The `!path` line the docker CLI appends so that the Dockerfile or .dockerignore is sent."""
    return _compile(path, True, 0)


ParentInfo = tuple[bool, ...]


class Matcher:
    """Decides whether a path (relative, "/"-separated) is excluded.

    The docker CLI walks the context top-down and passes each directory's per-pattern results to
    its entries (patternmatcher.MatchesUsingParentResults): a pattern that matched a directory
    matches everything below it, and a pattern skipped for the directory (a `!` line while the
    directory was not excluded) is tried on the entry's own path only. So `**/*.bin` then
    `!cache/sub` still excludes `cache/sub/b.bin`: the `!` line never matched the path itself.
    """

    def __init__(self, patterns: list[Pattern]) -> None:
        self.patterns = patterns
        self.exclusions = any(p.exclusion for p in patterns)

    def evaluate(self, path: str, parent: ParentInfo | None = None) -> tuple[Pattern | None, ParentInfo]:
        """(the pattern that excludes `path`, or None when it is sent; the results to pass to the
        entries of `path` when it is a directory). Without `parent`, every parent directory of
        `path` is tried against each pattern (MatchesOrParentMatches)."""
        parents = path.split("/")[:-1]
        deciding: Pattern | None = None
        info: list[bool] = []
        for i, pattern in enumerate(self.patterns):
            hit = bool(parent) and parent[i]  # type: ignore[index]
            if not hit:
                if pattern.exclusion != (deciding is not None):
                    info.append(False)
                    continue
                hit = pattern.match(path)
                if not hit and not parent:
                    hit = any(pattern.match("/".join(parents[:k + 1])) for k in range(len(parents)))
            info.append(hit)
            if hit:
                deciding = None if pattern.exclusion else pattern
        return deciding, tuple(info)

    def excluding_line(self, path: str) -> Pattern | None:
        return self.evaluate(path)[0]

    def ignored(self, path: str) -> bool:
        return self.excluding_line(path) is not None

    def may_reinclude_below(self, directory: str) -> bool:
        """An excluded directory is still walked when a `!` line starts with its path."""
        if not self.exclusions:
            return False
        prefix = directory + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)

"""`${VAR}` interpolation from the process environment.

`${VAR:-default}` gives a default when VAR is unset or empty (as in the shell); `$${` writes a
literal `${`. Only values are interpolated, never keys. Unset variables are collected (with
their path) rather than raised, so one run reports all of them. A reference that is not
closed (`${X`) or nests another (`${A:-${B}}`) is an error, never left as literal text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deployctl.config.source import Path

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate(data: Any, environ: Mapping[str, str],
                sources: dict[Path, list[str]] | None = None) -> tuple[Any, dict[Path, list[str]]]:
    """The data with every reference replaced, and per path the unset variable names (or a
    quoted message for a malformed reference), in the order they appear, each once.

    `sources`, when given, receives per path the names of the variables whose values went into
    it: errors about such a value name the variable instead of echoing what may be a secret."""
    unset: dict[Path, list[str]] = {}

    def note(table: dict[Path, list[str]], path: Path, what: str) -> None:
        found = table.setdefault(path, [])
        if what not in found:
            found.append(what)

    def sub_str(text: str, path: Path) -> str:
        out: list[str] = []
        pos = 0
        while (start := text.find("$", pos)) >= 0:
            out.append(text[pos:start])
            if text.startswith("$${", start):
                out.append("${")
                pos = start + 3
                continue
            if not text.startswith("${", start):
                out.append("$")
                pos = start + 1
                continue
            end = text.find("}", start + 2)
            inner = text[start + 2:end] if end >= 0 else text[start + 2:]
            nested = inner.find("${")
            if end < 0 or nested >= 0:
                # Name the reference by its start only: what follows may be a long or secret literal.
                shown = text[start:start + 2 + (nested if nested >= 0 else len(inner))][:40]
                note(unset, path, f"'{shown}…' is not closed with }}" if end < 0 else
                     f"'{shown}…' holds another ${{…}}: a default cannot refer to a variable")
                return ""
            pos = end + 1
            name, sep, default = inner.partition(":-")
            if not _NAME.fullmatch(name):
                note(unset, path, f"'${{{inner}}}' is not a valid variable reference")
                continue
            if sources is not None and (name in environ and (environ[name] or not sep)):
                note(sources, path, name)
            if sep:
                out.append(environ.get(name) or default)
            elif name in environ:
                out.append(environ[name])
            else:
                note(unset, path, name)
        out.append(text[pos:])
        return "".join(out)

    def walk(node: Any, path: Path) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*path, i)) for i, v in enumerate(node)]
        if isinstance(node, str) and "$" in node:
            # The result stays a string: pydantic's lax mode still accepts "3" for `count: ${COUNT}`.
            return sub_str(node, path)
        return node

    return walk(data, ()), unset

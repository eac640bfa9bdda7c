"""`${VAR}` interpolation from the process environment.

`${VAR:-default}` gives a default when VAR is unset or empty (as in the shell); `$${` writes a
literal `${`. Only values are interpolated, never keys. Unset variables are collected (with
their path) rather than raised, so one run reports all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deployctl.config.source import Path

_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{([^}]*)\}")


def interpolate(data: Any, environ: Mapping[str, str]) -> tuple[Any, dict[Path, list[str]]]:
    """The data with every reference replaced, and per path the unset variable names (or a
    quoted message for a malformed reference), in the order they appear, each once."""
    unset: dict[Path, list[str]] = {}

    def note(path: Path, what: str) -> None:
        found = unset.setdefault(path, [])
        if what not in found:
            found.append(what)

    def sub_str(text: str, path: Path) -> str:
        def repl(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            if match.group(3) is not None:
                note(path, f"'${{{match.group(3)}}}' is not a valid variable reference")
                return ""
            name, default = match.group(1), match.group(2)
            if default is not None:
                return environ.get(name) or default
            if name in environ:
                return environ[name]
            note(path, name)
            return ""

        return _REF.sub(repl, text)

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

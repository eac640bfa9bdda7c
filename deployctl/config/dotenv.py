"""A project's local `.env` file: NAME=value lines that the local (docker) target passes to the
dev containers as their secrets, under the deployer's shell environment (the shell wins).

Only the local target reads it, and only for the names a service lists under `secrets`; it is
never part of a build (the .dockerignore that init writes excludes .env, and the build's
secret-file check refuses it). Format: `NAME=value`, optional `export `, `#` comments, values
optionally in single or double quotes; no variable expansion.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

# Set once by the command that loaded a docker-target environment (commands.common.load); the
# local target reads it. None: no .env is read (remote targets, tests that pass an environ).
project_file: Path | None = None

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        m = _LINE.match(raw)
        if not m:
            continue
        value = m.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        out[m.group(1)] = value
    return out


def overlay(environ: Mapping[str, str], path: Path | None = None) -> Mapping[str, str]:
    """`environ` with the .env file's values underneath: a name set in the shell keeps its value.
    `path` defaults to the project's .env chosen by the command (project_file)."""
    path = project_file if path is None else path
    if path is None or not path.is_file():
        return environ
    try:
        values = parse(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError):
        return environ
    return {**values, **environ}

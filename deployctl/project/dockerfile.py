"""An existing Dockerfile's stages, CMD, EXPOSE and HEALTHCHECK (what `init` adopts)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

_URL_PATH = re.compile(r"https?://(?:localhost|127\.0\.0\.1|0\.0\.0\.0)(?::(\d+))?(/[^\s\"'|;)]*)?")


@dataclass(frozen=True)
class Dockerfile:
    path: str                      # relative to the project root
    stages: tuple[str, ...]        # stage names in order ("" for an unnamed stage)
    cmd: tuple[str, ...] | None    # the final stage's CMD (exec form, or split shell form)
    entrypoint: tuple[str, ...] | None
    expose: tuple[int, ...]
    healthcheck: str | None        # the final stage's HEALTHCHECK command text, None without one
    health_path: str | None        # the path its HEALTHCHECK requests on the local host, if any
    health_port: int | None

    @property
    def final_stage(self) -> str | None:
        return self.stages[-1] or None if self.stages else None


def _argv(rest: str) -> tuple[str, ...]:
    rest = rest.strip()
    if rest.startswith("["):
        try:
            value = json.loads(rest)
            if isinstance(value, list):
                return tuple(str(v) for v in value)
        except json.JSONDecodeError:
            pass
    try:
        return tuple(shlex.split(rest))
    except ValueError:
        return tuple(rest.split())


def parse(path: str, text: str) -> Dockerfile:
    joined = re.sub(r"\\\r?\n", " ", text)
    stages: list[str] = []
    cmd = entrypoint = None
    expose: list[int] = []
    health: str | None = None
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            m = re.search(r"\s+AS\s+(\S+)\s*$", rest, re.IGNORECASE)
            stages.append(m.group(1) if m else "")
            cmd = entrypoint = health = None  # these belong to the final stage only
            expose = []
        elif op == "CMD":
            cmd = _argv(rest)
        elif op == "ENTRYPOINT":
            entrypoint = _argv(rest)
        elif op == "EXPOSE":
            expose += [int(p.split("/")[0]) for p in rest.split() if p.split("/")[0].isdigit()]
        elif op == "HEALTHCHECK":
            m = re.search(r"\bCMD\b(.*)$", rest)
            health = None if rest.strip().upper() == "NONE" or not m else m.group(1).strip()
    url = _URL_PATH.search(health or "")
    return Dockerfile(path=path, stages=tuple(stages), cmd=cmd, entrypoint=entrypoint, expose=tuple(expose),
                      healthcheck=health, health_path=(url.group(2) or "/") if url else None,
                      health_port=int(url.group(1)) if url and url.group(1) else None)

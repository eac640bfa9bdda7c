"""An existing Dockerfile's stages, CMD, EXPOSE and HEALTHCHECK (what `init` adopts).

A multi-stage Dockerfile often ends with a stage that is not the service: `FROM production AS
test` with `CMD ["pytest"]`. Building the last stage would deploy the test runner, so init
builds the stage that serves the app (`serving`) and runs the tests in the test stage.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

_URL_PATH = re.compile(r"https?://(?:localhost|127\.0\.0\.1|0\.0\.0\.0)(?::(\d+))?(/[^\s\"'|;)]*)?")
# Stage names that run checks or serve development, never the deployed service.
_NOT_SERVING_NAME = re.compile(r"^(tests?|testing|ci|lint|check|checks|dev|develop|development|debug|local)"
                               r"([-_.].*)?$", re.IGNORECASE)
_TEST_NAME = re.compile(r"^(tests?|testing|ci|check|checks)([-_.].*)?$", re.IGNORECASE)
_TEST_TOOLS = ("pytest", "py.test", "unittest", "tox", "nox")
_SERVERS = ("uvicorn", "gunicorn", "hypercorn", "daphne", "granian", "waitress-serve", "fastapi", "flask",
            "runserver", "uwsgi")


@dataclass(frozen=True)
class Stage:
    name: str                          # "" for an unnamed stage
    base: str                          # what FROM names (an image or an earlier stage)
    cmd: tuple[str, ...] | None        # its CMD, inherited from a parent stage when it sets none
    entrypoint: tuple[str, ...] | None
    expose: tuple[int, ...]
    healthcheck: str | None
    runs: tuple[str, ...]              # its RUN commands (its own only)
    sources: tuple[str, ...]           # paths its COPY/ADD take from the build context

    @property
    def command(self) -> tuple[str, ...]:
        return (*(self.entrypoint or ()), *(self.cmd or ()))

    @property
    def runs_tests(self) -> bool:
        words = " ".join(self.command).replace("/", " ").split()
        return any(w in _TEST_TOOLS for w in words)

    @property
    def serves(self) -> bool:
        words = " ".join(self.command).replace("/", " ").split()
        return any(w in _SERVERS for w in words) or ("python" in " ".join(words) and not self.runs_tests
                                                      and bool(words))


@dataclass(frozen=True)
class Dockerfile:
    path: str                      # relative to the project root
    stages: tuple[str, ...]        # stage names in order ("" for an unnamed stage)
    cmd: tuple[str, ...] | None    # the serving stage's CMD (exec form, or split shell form)
    entrypoint: tuple[str, ...] | None
    expose: tuple[int, ...]
    healthcheck: str | None        # the serving stage's HEALTHCHECK command text, None without one
    health_path: str | None        # the path its HEALTHCHECK requests on the local host, if any
    health_port: int | None
    details: tuple[Stage, ...] = ()
    serving: str | None = None     # the stage to build and deploy (None: the last, unnamed one)
    serving_reason: str = "the last stage"
    test_stage: str | None = None  # a stage that runs the tests (e.g. `FROM production AS test`)
    test_command: tuple[str, ...] = ()  # that stage's own test command, when its CMD is one

    @property
    def final_stage(self) -> str | None:
        return self.stages[-1] or None if self.stages else None

    @property
    def sources(self) -> tuple[str, ...]:
        """Every context path a COPY or ADD of any stage names."""
        return tuple(dict.fromkeys(s for st in self.details for s in st.sources))

    def stage(self, name: str | None) -> Stage | None:
        return next((s for s in self.details if name and s.name == name), None)

    def installs(self, stage: str | None, package: str) -> bool:
        """A RUN of `stage` or of the stages it is built FROM installs/names `package`."""
        seen: set[str] = set()
        st = self.stage(stage)
        while st is not None and st.name not in seen:
            seen.add(st.name)
            if any(re.search(rf"(?<![\w-]){re.escape(package)}(?![\w-])", r) for r in st.runs):
                return True
            st = self.stage(st.base)
        return False


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


def _copy_sources(op: str, rest: str) -> list[str]:
    """Context paths of one COPY/ADD (none for `--from=` copies, URLs and git sources)."""
    words = list(_argv(rest))
    flags = [w for w in words if w.startswith("--")]
    args = [w for w in words if not w.startswith("--")]
    if any(f.startswith("--from") for f in flags) or len(args) < 2:
        return []
    out = []
    for src in args[:-1]:
        if "://" in src or src.startswith("git@") or src.startswith("$"):
            continue
        src = src.removeprefix("./").rstrip("/") or "."
        out.append(src)
    return out


def _choose(stages: list[Stage]) -> tuple[Stage | None, str, Stage | None]:
    """(the serving stage, why, the test stage)."""
    if not stages:
        return None, "the last stage", None
    test = next((s for s in reversed(stages) if s.name and (s.runs_tests or _TEST_NAME.match(s.name))), None)
    if len(stages) == 1:
        return stages[0], "the only stage", test if test is not stages[0] else None
    last = stages[-1]
    candidates = [s for s in stages if not (s.name and _NOT_SERVING_NAME.match(s.name)) and not s.runs_tests]
    if last in candidates:
        return last, "the last stage", test
    serving = [s for s in candidates if s.serves]
    if serving:
        chosen = serving[-1]
        why = (f"the last stage whose command starts the server (`{last.name or 'the last stage'}` "
               f"{'runs the tests' if last.runs_tests else 'is a ' + (last.name or 'non-service') + ' stage'})")
        return chosen, why, test
    if candidates:
        return candidates[-1], "the last stage that is not a test or development stage", test
    return last, "the last stage", test


def parse(path: str, text: str) -> Dockerfile:
    joined = re.sub(r"\\\r?\n", " ", text)
    stages: list[Stage] = []
    by_name: dict[str, Stage] = {}
    current: dict | None = None

    def close() -> None:
        if current is None:
            return
        parent = by_name.get(current["base"].lower())
        st = Stage(
            name=current["name"], base=current["base"],
            cmd=current["cmd"] if current["cmd"] is not None or not parent else parent.cmd,
            entrypoint=current["entrypoint"] if current["entrypoint"] is not None or not parent
            else parent.entrypoint,
            expose=tuple(current["expose"]) or (parent.expose if parent else ()),
            healthcheck=(current["health"] if current["health_set"] else parent.healthcheck if parent else None),
            runs=tuple(current["runs"]), sources=tuple(current["sources"]))
        stages.append(st)
        if st.name:
            by_name[st.name.lower()] = st

    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            close()
            words = [w for w in rest.split() if not w.startswith("--")]
            m = re.search(r"\s+AS\s+(\S+)\s*$", rest, re.IGNORECASE)
            current = {"name": m.group(1) if m else "", "base": words[0] if words else "", "cmd": None,
                       "entrypoint": None, "expose": [], "health": None, "health_set": False, "runs": [],
                       "sources": []}
        elif current is None:
            continue
        elif op == "CMD":
            current["cmd"] = _argv(rest)
        elif op == "ENTRYPOINT":
            current["entrypoint"] = _argv(rest)
        elif op == "EXPOSE":
            current["expose"] += [int(p.split("/")[0]) for p in rest.split() if p.split("/")[0].isdigit()]
        elif op == "HEALTHCHECK":
            m = re.search(r"\bCMD\b(.*)$", rest)
            current["health"] = None if rest.strip().upper() == "NONE" or not m else m.group(1).strip()
            current["health_set"] = True
        elif op == "RUN":
            current["runs"].append(rest)
        elif op in ("COPY", "ADD"):
            current["sources"] += _copy_sources(op, rest)
    close()

    serving, why, test = _choose(stages)
    health = serving.healthcheck if serving else None
    url = _URL_PATH.search(health or "")
    test_command = test.command if test is not None and test.runs_tests else ()
    return Dockerfile(path=path, stages=tuple(s.name for s in stages), cmd=serving.cmd if serving else None,
                      entrypoint=serving.entrypoint if serving else None,
                      expose=serving.expose if serving else (),
                      healthcheck=health, health_path=(url.group(2) or "/") if url else None,
                      health_port=int(url.group(1)) if url and url.group(1) else None,
                      details=tuple(stages), serving=(serving.name or None) if serving else None, serving_reason=why,
                      test_stage=test.name if test is not None else None, test_command=test_command)

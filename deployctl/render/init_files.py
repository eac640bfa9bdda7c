"""The Dockerfile and deploy.yaml that `deployctl init` writes, from what it detected and what
the user chose. Pure: text in, text out.

The build-essential rule: the builder installs compilers only when a dependency is known to
build from source (deployctl.project.deps.SDIST_ONLY, or a VCS/URL/path/--no-binary
requirement). Everything else is assumed to come as a wheel; for requirements files the
install falls back to installing build-essential and retrying when the plain install fails,
so an unknown sdist-only package costs a slower build, not a broken one.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

from deployctl.project import Project
from deployctl.project.deps import requirement_files

# Tools the builder needs for a lock file, pinned (bump together with the docs).
POETRY = "poetry==1.8.5"
UV = "uv==0.5.11"
# DL3008 (pin apt versions) is accepted: a Debian version pin stops resolving at the next point
# release; the base image tag is the pin (docs/ci.md, "Accepted linter findings").
APT_BUILD = ("# hadolint ignore=DL3008\n"
             "RUN apt-get update \\\n"
             " && apt-get install -y --no-install-recommends build-essential \\\n"
             " && rm -rf /var/lib/apt/lists/*\n")


@dataclass(frozen=True)
class Choices:
    """What init writes, after detection, flags and the user's answers."""

    app: str
    region: str
    registry: str
    port: int
    health_path: str | None              # None: a TCP connect check
    start: tuple[str, ...]               # the container's command
    local_port: int
    lint: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    stages_in_image: bool = False        # the config has `stages.<s>.in: image`
    env_health: bool = False             # the config has `environments.<env>.health`
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    context: str = "."
    dockerfile: str = "Dockerfile"
    target: str | None = "runtime"
    frontend: str | None = None
    adopted_dockerfile: bool = False
    healthcheck_in_image: bool = False   # the adopted Dockerfile has its own HEALTHCHECK
    # Per stage, where it runs when that differs from stages_in_image (an adopted Dockerfile's
    # test stage runs the tests; its lint tool may be on the host only), and the stage to build.
    lint_in_image: bool | None = None
    test_in_image: bool | None = None
    stage_target: str = "test"


def template(name: str) -> str:
    return (resources.files("deployctl") / "templates" / name).read_text("utf-8")


def fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    left = re.search(r"@@[A-Z_]+@@", text)
    if left:
        raise ValueError(f"unfilled placeholder {left.group(0)}")
    return text


# The sections of dockerignore.txt kept next to an adopted Dockerfile: the project chose what its
# image holds; deployctl only keeps secrets and VCS data out of the daemon's hands.
ADOPTED_SECTIONS = ("# Secrets", "# VCS")


def dockerignore(copied: tuple[str, ...] | None = None,
                 excludes: Callable[[str, str], bool] | None = None) -> tuple[str, list[str]]:
    """(the .dockerignore init writes, warnings). `copied`: the context paths an adopted
    Dockerfile's COPY/ADD lines name; None for the Dockerfile init writes. `excludes(pattern,
    path)`: Docker's rule for one .dockerignore line (deployctl.stages.dockerignore). Next to an adopted
    Dockerfile only secret and VCS exclusions are written, and none that excludes a path a COPY
    names (the build would fail on it) — except secrets, which stay out and are warned about."""
    text = template("dockerignore.txt")
    if copied is None:
        return text, []
    out = ["# Keeps secrets and VCS data out of the build context (written by `deployctl init` next to your",
           "# own Dockerfile: nothing else is excluded, and nothing its COPY or ADD lines name but secrets)."]
    warnings: list[str] = []
    section = ""
    for line in text.splitlines()[1:]:
        if line.startswith("#"):
            section = line
            if section.startswith(ADOPTED_SECTIONS):
                out.append(line)
            continue
        if not section.startswith(ADOPTED_SECTIONS) or not line.strip():
            continue
        named = [src for src in copied if src != "." and excludes is not None and excludes(line, src)]
        if named and section.startswith("# Secrets"):
            warning = (f"the Dockerfile copies {named[0]}, which looks like a secret: .dockerignore keeps it out "
                       "of the image (that COPY fails); give the value at run time instead")
            warnings += [] if warning in warnings else [warning]
        elif named:
            continue
        out.append(line)
    return "\n".join(out) + "\n", warnings


def _json(argv: list[str] | tuple[str, ...]) -> str:
    return json.dumps(list(argv))


def _install(project: Project) -> tuple[str, str]:
    """(Dockerfile lines that install the runtime dependencies into /opt/venv, a note)."""
    deps = project.deps
    if deps.manager == "pip" and deps.files and deps.files[0].endswith(".txt"):
        req = deps.files[0]
        directory = req.rsplit("/", 1)[0] if "/" in req else "."
        name = req.rsplit("/", 1)[-1]
        # every requirements file of that directory, so `-r base.txt` includes resolve; an include
        # from another directory: the files at their project paths under /src
        src = f"{directory}/requirements*.txt" if directory != "." else "requirements*.txt"
        included = requirement_files(project.root, req)
        if any((f.rsplit("/", 1)[0] if "/" in f else ".") != directory for f in included):
            copy, name = "\n".join(copy_requirements(included, "/src")), req
        elif all(fnmatch.fnmatchcase(f.rsplit("/", 1)[-1], "requirements*.txt") for f in included):
            copy = f"COPY {src} ./"
        else:  # e.g. `-c constraints.txt` next to it
            copy = f"COPY {' '.join(included)} ./"
        if deps.needs_compiler:
            run = f"RUN pip install -r {name}"
        else:
            run = ("# no compilers unless a wheel is missing: then install them and retry\n"
                   "# hadolint ignore=DL3008\n"
                   f"RUN pip install --only-binary=:all: -r {name} \\\n"
                   " || { apt-get update && apt-get install -y --no-install-recommends build-essential \\\n"
                   f"      && rm -rf /var/lib/apt/lists/* && pip install -r {name}; }}")
        return f"{copy}\n{run}", f"pip, {req}"
    if deps.manager == "uv" and deps.lock:
        return ("COPY " + " ".join([*deps.files, deps.lock]) + " ./\n"
                f"RUN python -m venv /opt/tools && /opt/tools/bin/pip install {UV} \\\n"
                " && UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never \\\n"
                "    /opt/tools/bin/uv sync --frozen --no-dev --no-install-project --inexact",
                f"uv, {deps.lock}")
    if deps.manager == "poetry" and deps.lock:
        return ("COPY " + " ".join([*deps.files, deps.lock]) + " ./\n"
                f"RUN python -m venv /opt/tools && /opt/tools/bin/pip install {POETRY} \\\n"
                " && VIRTUAL_ENV=/opt/venv /opt/tools/bin/poetry install --only main --no-root --no-interaction",
                f"poetry, {deps.lock}")
    if deps.files:  # a pyproject.toml without a lock deployctl can install from
        py = deps.files[0]
        return (f"COPY {py} ./\n"
                "RUN python -c \"import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); "
                "print(chr(10).join(d.get('project', {}).get('dependencies', [])))\" > requirements.txt \\\n"
                " && pip install -r requirements.txt", f"{deps.manager}, {py} [project].dependencies")
    return "# no requirements.txt or pyproject.toml was found: nothing to install", "no dependency files"


def copy_requirements(files: tuple[str, ...], dest: str) -> list[str]:
    """COPY lines that put requirements files under `dest` at their paths relative to the
    project (one COPY per directory), so `-r src/requirements.txt` inside one of them resolves."""
    by_dir: dict[str, list[str]] = {}
    for f in files:
        by_dir.setdefault(f.rsplit("/", 1)[0] if "/" in f else "", []).append(f)
    return [f"COPY {' '.join(names)} {dest}/{d + '/' if d else ''}" for d, names in by_dir.items()]


def _test_install(project: Project) -> str:
    tools = project.tools
    deps = project.deps
    dev = [f for f in deps.dev_files if f.endswith(".txt")]
    lines = []
    if dev:
        lines += copy_requirements(requirement_files(project.root, dev[0]), "/tmp/requirements")
        lines.append(f"RUN pip install --no-cache-dir -r /tmp/requirements/{dev[0]}")
    wanted = [p for p in (*tools.lint_packages, *tools.test_packages)
              if not dev or p not in deps.dev_packages]
    if wanted:
        lines.append("RUN pip install --no-cache-dir " + " ".join(wanted))
    return "\n".join(lines) or "# no lint or test tools were found in the project"


def dockerfile(project: Project, choices: Choices) -> str:
    install, note = _install(project)
    iroot = project.entry.import_root
    pythonpath = f" PYTHONPATH=/app/{iroot}" if iroot not in (".", "") else ""
    if choices.health_path:
        url = f"http://127.0.0.1:{choices.port}{choices.health_path}"
        probe = ["python", "-c", f"import urllib.request; urllib.request.urlopen('{url}', timeout=4)"]
    else:
        probe = ["python", "-c", f"import socket; socket.create_connection(('127.0.0.1', {choices.port}), 4)"]
    test_cmd = ["sh", "-c", " && ".join((*choices.lint, *choices.test))]
    return fill(template("Dockerfile.txt"), {
        "APP": choices.app,
        "DEPS_NOTE": note,
        "BUILDER_NOTE": "; build-essential for " + ", ".join(project.deps.needs_compiler)
        if project.deps.needs_compiler else "; no compilers (every dependency is expected as a wheel)",
        "COMPILERS": APT_BUILD if project.deps.needs_compiler else "",
        "INSTALL": install,
        "PYTHONPATH": pythonpath,
        "PORT": str(choices.port),
        "HEALTHCHECK": _json(probe),
        "CMD": _json(choices.start),
        "TEST_NOTE": "#   test:    the runtime image plus the lint and test tools (deploy.yaml's stages)\n"
        if choices.lint or choices.test else "",
        "TEST_STAGE": f"\nFROM runtime AS test\nUSER 0:0\n{_test_install(project)}\nUSER 10001:10001\n"
                      f"CMD {_json(test_cmd)}\n" if choices.lint or choices.test else "",
    })


def _yaml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML scalar


def _flow(mapping: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}: {_yaml_str(v)}" for k, v in mapping.items()) + "}"


def stages_block(choices: Choices) -> str:
    lines = []
    placed: dict[str, bool] = {}
    for name, run, flag, timeout in (("lint", choices.lint, choices.lint_in_image, "5m"),
                                     ("test", choices.test, choices.test_in_image, "15m")):
        if not run:
            continue
        in_image = choices.stages_in_image if flag is None else flag
        placed[name] = in_image
        where = f", in: image, target: {choices.stage_target}" if in_image else ""
        lines.append(f"  {name}: {{run: {json.dumps(list(run))}{where}, timeout: {timeout}}}")
    if not lines:
        return "# stages: no lint or test tool was found in the project (add e.g. lint: {run: [...]})\n"
    inside = [n for n, v in placed.items() if v]
    host = [n for n, v in placed.items() if not v]
    if inside == ["lint", "test"]:
        head = f"# lint and test run inside the image's `{choices.stage_target}` target: the image's own dependencies\n"
    elif not inside:
        head = "# lint and test run on this machine (and on the CI runner)\n"
    else:
        head = (f"# {inside[0]} runs inside the Dockerfile's `{choices.stage_target}` stage (the image's own "
                "dependencies)" + (f"; {host[0]} runs on this machine (and on the CI runner)" if host else "") + "\n")
    return head + "stages:\n" + "\n".join(lines) + "\n"


def deploy_yaml(choices: Choices) -> str:
    image = [f"  context: {choices.context}", f"  dockerfile: {choices.dockerfile}"]
    if choices.target:
        image.append(f"  target: {choices.target}"
                     + ("                 # the small final stage of the multi-stage Dockerfile"
                        if not choices.adopted_dockerfile else ""))
    if choices.health_path:
        health = (f"    health: {{path: {choices.health_path}, start_period: 60s, interval: 10s, "
                  "timeout: 5s, retries: 3}")
    elif choices.healthcheck_in_image:
        health = "    # health: the image's own HEALTHCHECK is used (none given here)"
    else:
        tcp = f"import socket; socket.create_connection(('127.0.0.1', {choices.port}), 4)"
        health = ("    # no health route was found: the check is that the port accepts connections\n"
                  f"    health: {{command: {_json(['python', '-c', tcp])}, start_period: 60s, interval: 10s, "
                  "timeout: 5s, retries: 3}")
    env = dict(choices.env)
    svc = [f"    port: {choices.port}", "    cpu: 1024", "    memory: 4096",
           "    # Model loading takes time: checks failing inside start_period do not count.", health]
    if env:
        svc.append(f"    env: {_flow(env)}")
    if choices.secrets:
        svc.append("    # Secrets Manager names (or ssm:/param/name); dev reads them from your shell or .env")
        names = {s: f"{choices.app}/{s.lower().replace('_', '-')}" for s in choices.secrets}
        svc.append("    secrets: " + _flow(names))
    svc += ["    count: 2", f"    local_port: {choices.local_port}"]
    dev_health = "    health: {start_period: 5s, interval: 5s}   # a broken release fails in seconds\n" \
        if choices.env_health and (choices.health_path or not choices.healthcheck_in_image) else ""
    frontend = (f"# frontend: {choices.frontend}/ was found; deployctl does not deploy it yet\n"
                if choices.frontend else "")
    return fill(template("deploy.yaml.txt"), {
        "APP": choices.app, "REGION": choices.region, "REGISTRY": choices.registry,
        "IMAGE": "\n".join(image), "STAGES": stages_block(choices), "SERVICE": "\n".join(svc),
        "DEV_HEALTH": dev_health, "FRONTEND": frontend,
    })

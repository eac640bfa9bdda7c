"""What `deployctl init` learns from a project's files: pure reading, no Docker, no network.

`detect(root)` returns a frozen `Project`; the init command turns it into choices, asks about
them on a terminal, and renders the files. Each concern is its own small module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deployctl.project import deps as _deps
from deployctl.project import dockerfile as _dockerfile
from deployctl.project import entry as _entry
from deployctl.project import envvars as _envvars
from deployctl.project import repo as _repo
from deployctl.project import routes as _routes
from deployctl.project import tools as _tools
from deployctl.project.deps import Deps
from deployctl.project.dockerfile import Dockerfile
from deployctl.project.entry import Entry
from deployctl.project.envvars import EnvVars
from deployctl.project.files import SKIP_DIRS, is_test_path, read, rel, walk
from deployctl.project.tools import Tools

__all__ = ["Deps", "Dockerfile", "Entry", "EnvVars", "Project", "Tools", "detect"]

APP_DIR_NAMES = ("backend", "api", "server", "service", "services/api")
_MARKERS = ("Dockerfile", "requirements.txt", "pyproject.toml", "manage.py", "Procfile", "src/requirements.txt")


@dataclass(frozen=True)
class Project:
    root: Path
    app_dir: str                     # "." or the subdirectory holding the Python app
    deps: Deps
    entry: Entry
    dockerfile: Dockerfile | None    # an existing Dockerfile, adopted as is
    port: int                        # what the app listens on in the container
    port_source: str
    health_path: str | None          # a declared readiness/health route, or the existing HEALTHCHECK's
    routes: tuple[str, ...]
    tools: Tools
    env: EnvVars
    deploying_workflows: tuple[str, ...]
    frontend: str | None

    @property
    def warnings(self) -> list[str]:
        out = []
        for wf in self.deploying_workflows:
            out.append(f"{wf} already deploys: two pipelines deploying the same app race each other; "
                       "retire one of them")
        if self.dockerfile is None and self.entry.start is None:
            out.append("no FastAPI, Starlette, Flask or Django app object and no Procfile found: give the "
                       "start command with --start")
        if self.dockerfile is None and self.deps.manager == "none":
            out.append("no requirements.txt or pyproject.toml found: the image gets no dependencies")
        if self.deps.needs_compiler:
            out.append("built from source, so the builder installs build-essential: "
                       + ", ".join(self.deps.needs_compiler))
        if self.entry.server in ("flask", "django"):
            out.append(f"the app starts with {self.entry.start_source}: a development server; add gunicorn "
                       "to the dependencies for production")
        if self.deps.manager == "pdm" and self.deps.lock:
            out.append("pdm.lock: the image installs [project].dependencies with pip, not the locked versions")
        return out


def find_app_dir(root: Path) -> str:
    if any((root / m).exists() for m in _MARKERS) or any(
            not is_test_path(rel(root, p)) for p in walk(root, max_depth=0)):
        return "."
    for name in APP_DIR_NAMES:
        if any((root / name / m).exists() for m in _MARKERS):
            return name
    for p in sorted(root.iterdir()):
        if p.is_dir() and p.name not in SKIP_DIRS and any((p / m).exists() for m in _MARKERS):
            return p.name
    return "."


def detect(root: Path, *, port: int | None = None, app_dir: str | None = None) -> Project:
    """Everything init needs to know about the project at `root`. `port` overrides detection."""
    root = root.resolve()
    app_dir = app_dir or find_app_dir(root)
    base = root / app_dir
    df = None
    if (base / "Dockerfile").is_file():
        df = _dockerfile.parse(rel(root, base / "Dockerfile"), read(base / "Dockerfile"))
    deps = _deps.detect(root, app_dir)
    chosen = port
    port_source = "--port" if port else ""
    if not chosen and df and df.expose:
        chosen, port_source = df.expose[0], f"EXPOSE in {df.path}"
    entry = _entry.detect(root, app_dir, deps, chosen)
    if not chosen and entry.port:
        chosen, port_source = entry.port, entry.port_source or entry.start_source
    env = _envvars.detect(root, app_dir)
    if not chosen and env.env.get("PORT", "").isdigit():
        chosen, port_source = int(env.env["PORT"]), env.sample_file or "PORT in the code"
    if not chosen:
        chosen, port_source = 8000, "default"
    if "PORT" in env.env:
        env.env["PORT"] = str(chosen)
    modules = {rel(root, path)[:-3].replace("/", "."): read(path) for path in walk(base)
               if not is_test_path(rel(root, path))}
    all_routes = _routes.project_routes(modules)
    health = _routes.health_route(all_routes)
    if df and df.health_path:
        health = df.health_path
    elif health is None and "/" in all_routes:
        health = "/"
    return Project(
        root=root, app_dir=app_dir, deps=deps, entry=entry, dockerfile=df, port=chosen, port_source=port_source,
        health_path=health, routes=tuple(dict.fromkeys(all_routes)), tools=_tools.detect(root, app_dir, deps, df),
        env=env, deploying_workflows=tuple(_repo.deploying_workflows(root)), frontend=_repo.frontend_dir(root),
    )

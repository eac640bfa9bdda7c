"""init: read the project, then write deploy.yaml, a multi-stage Dockerfile (unless the project
has one, which is adopted), a .dockerignore and the GitHub workflows.

Detection lives in deployctl.project (pure); the files are rendered by
deployctl.render.init_files and deployctl.render.workflows. This module asks and writes.
"""

from __future__ import annotations

import re
import shlex
import socket
import sys
import zlib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from deployctl.errors import UsageError

if TYPE_CHECKING:
    from deployctl.project import Dockerfile, Project
    from deployctl.render.init_files import Choices

APP = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
REGISTRY = re.compile(r"^(ecr|[A-Za-z0-9.-]+(:\d{1,5})?)$")
HEALTH = re.compile(r"^/\S*$")


def default_app(directory: Path) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"app-{name}".strip("-")
    return name[:40].rstrip("-") or "app"


def free_local_port(app: str) -> int:
    """A port on 127.0.0.1 nothing listens on now, stable for an app name: 18000–18999, away from
    the 8000/8080 that quickstarts and other dev servers take."""
    start = zlib.crc32(app.encode()) % 1000
    for i in range(1000):
        port = 18000 + (start + i) % 1000
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return 18000 + start


def check(choices: Choices) -> list[str]:
    """Problems with the choices, as sentences for people (empty when all are fine)."""
    out = []
    if not APP.match(choices.app):
        out.append(f"app name '{choices.app}': lowercase letters, digits and hyphens, starting with a "
                   "letter, at most 40 characters")
    if not REGION.match(choices.region):
        out.append(f"region '{choices.region}' is not an AWS region name such as us-east-1")
    for what, port in (("port", choices.port), ("local port", choices.local_port)):
        if not 1 <= port <= 65535:
            out.append(f"{what} {port} is not between 1 and 65535")
    if choices.health_path is not None and not HEALTH.match(choices.health_path):
        out.append(f"health path '{choices.health_path}' must start with / and contain no spaces")
    if not REGISTRY.match(choices.registry):
        out.append(f"registry '{choices.registry}': use `ecr` or a registry host such as localhost:5000")
    if not choices.start and not choices.adopted_dockerfile:
        out.append("no start command: none was found in the project (no app object, Procfile or Dockerfile "
                   "CMD); give one with --start, e.g. --start 'uvicorn app.main:app --host 0.0.0.0 --port 8000'")
    return out


def frontend_framework(directory: Path) -> str | None:
    """The Vercel framework preset of a JavaScript frontend directory, when it is plain to see."""
    names = {p.name for p in directory.iterdir()} if directory.is_dir() else set()
    return "nextjs" if any(n.startswith("next.config.") for n in names) else None


def frontend_yaml(path: str, framework: str | None) -> str:
    """The `frontend:` section init writes (docs/frontend-vercel.md)."""
    return (f"\n# The web frontend in {path}/, on Vercel: deployed after the backend by `deployctl run`, promoted\n"
            "# and rolled back with it. Needs VERCEL_TOKEN (docs/frontend-vercel.md: one-time setup).\n"
            "frontend:\n"
            f"  path: {path}\n"
            "  project_id: prj_TODO                       # TODO: Vercel → Project → Settings → Project ID\n"
            "  team_id: team_TODO                         # TODO: Vercel → Team → Settings → Team ID\n"
            + (f"  framework: {framework}\n" if framework else "")
            + "  api_url_env: NEXT_PUBLIC_API_URL            # gets the backend's URL of each environment\n"
              "  api_url: https://api-{env}.example.com      # TODO: where each environment's backend answers\n"
              "  health_path: /\n")


def _with_frontend(text: str, path: str, framework: str | None) -> str:
    """deploy.yaml with the frontend section: none for the local dev environment, and prod as the
    Vercel project's production (reached by promote)."""
    text = text.replace("  dev:\n    target: docker\n",
                        "  dev:\n    target: docker\n    frontend: null                 # the frontend is not deployed "
                        "from a laptop\n", 1)
    text = re.sub(r"(\n    promote_from: staging[^\n]*\n)",
                  r"\1    frontend: {production: true}   # Vercel production: staging's deployment, promoted\n",
                  text, count=1)
    return text.rstrip("\n") + "\n" + frontend_yaml(path, framework)


def git_root(start: Path) -> Path | None:
    for d in (start, *start.parents):
        if (d / ".git").exists():
            return d
    return None


def _config_features() -> tuple[bool, bool]:
    """(stages can run `in: image`, environments can override health timings) in this deployctl."""
    from deployctl.config import model  # lazy: pydantic stays off --help

    stage_fields = model.CommandStage.model_fields
    return "where" in stage_fields, "health" in model.Environment.model_fields


def _findings(p: Project) -> list[tuple[str, str]]:
    rows = [("app directory", p.app_dir)]
    deps = p.deps.manager if p.deps.manager != "none" else "none found"
    rows.append(("dependencies", f"{deps}: {', '.join([*p.deps.files, *([p.deps.lock] if p.deps.lock else [])])}"
                 if p.deps.files else deps))
    if p.entry.framework:
        rows.append(("framework", f"{p.entry.framework} ({p.entry.app})"))
    if p.entry.server:
        rows.append(("server", p.entry.server + (f" with {p.entry.server_config}" if p.entry.server_config else "")))
    if p.dockerfile:
        rows.append(("Dockerfile", f"{p.dockerfile.path}: kept as is (stages: "
                                   f"{', '.join(s or '-' for s in p.dockerfile.stages)})"))
        if len(p.dockerfile.stages) > 1:
            rows.append(("build target", f"{p.dockerfile.serving or 'the last stage'}: "
                                         f"{p.dockerfile.serving_reason}"))
        if p.dockerfile.test_stage:
            rows.append(("test stage", f"{p.dockerfile.test_stage}: deploy.yaml's test stage runs in it"))
        if p.dockerfile.healthcheck:
            rows.append(("HEALTHCHECK", p.dockerfile.healthcheck[:80]))
    rows.append(("port", f"{p.port} ({p.port_source})"))
    rows.append(("routes", ", ".join(p.routes[:8]) or "none found"))
    rows.append(("lint", ", ".join(p.tools.lint) or "no tool found: no lint stage"))
    rows.append(("test", ", ".join(p.tools.test) + (f" (from {p.tools.source})" if p.tools.source else "")
                 or "no tests found: no test stage"))
    if p.env.env:
        rows.append(("env", ", ".join(p.env.env)))
    if p.env.secrets:
        rows.append(("secrets", ", ".join(p.env.secrets)))
    if p.env.no_sample:
        rows.append(("env without a value", ", ".join(p.env.no_sample) + " (not written; add them if needed)"))
    if p.frontend:
        rows.append(("frontend", f"{p.frontend}/ (a Vercel frontend section is offered)"))
    return rows


def _show(rows: list[tuple[str, str]], warnings: list[str]) -> None:
    from rich.console import Console  # lazy: rich stays off --help
    from rich.table import Table  # lazy: rich stays off --help

    console = Console(stderr=True)
    table = Table(title="What init found", show_header=False, box=None, padding=(0, 2))
    for key, value in rows:
        table.add_row(f"[bold]{key}[/]", value)
    console.print(table)
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w}")


def init(
    app_name: str | None = typer.Option(None, "--app", help="App name (default: the directory's name)."),
    region: str | None = typer.Option(None, "--region", help="AWS region (default us-east-1)."),
    port: int | None = typer.Option(None, "--port", help="Port the app listens on in the container "
                                                         "(default: detected, else 8000)."),
    health_path: str | None = typer.Option(None, "--health-path",
                                           help="HTTP readiness path (default: the app's health route)."),
    start: str | None = typer.Option(None, "--start", help="Command that starts the app in the image "
                                                           "(default: detected)."),
    local_port: int | None = typer.Option(None, "--local-port", help="Port on 127.0.0.1 for the dev "
                                                                     "environment (default: a free one)."),
    registry: str | None = typer.Option(None, "--registry", help="`ecr` (default) or a registry host."),
    action_ref: str | None = typer.Option(None, "--action-ref",
                                          help="Commit SHA of deployctl the workflows use (default: this "
                                               "installation's git commit)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Take what was detected for everything not given."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that already exist (an existing "
                                                      "Dockerfile is otherwise kept and used)."),
    directory: str = typer.Option(".", "--dir", help="Project directory (inside a git repository)."),
) -> None:
    """Set a project up for deployctl: reads the project, then writes deploy.yaml, a Dockerfile
    (unless one exists: it is kept and used), .dockerignore and the GitHub workflows.

    On a terminal it shows what it found and asks to confirm or change each choice; `--yes`
    and the flags make it non-interactive. Never overwrites a file unless `--force`.

    \b
    Examples:  deployctl init
               deployctl init --yes --port 3100 --health-path /health
    """
    from deployctl import project as detection  # lazy: the detection modules stay off --help
    from deployctl.render import init_files, workflows  # lazy: the renderers stay off --help

    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"{directory}: no such directory")
    if git_root(root.resolve()) is None:
        raise UsageError(f"{root.resolve()} is not inside a git repository",
                         hint="run `git init` first: deployctl tags images with the commit")
    if start is not None and not start.strip():
        raise UsageError("--start is empty")
    ref = action_ref or workflows.own_commit()
    if ref is not None and not workflows.SHA.match(ref.rsplit("@", 1)[-1]):
        raise UsageError(f"--action-ref '{ref}' is not a 40-character commit SHA",
                         hint="the workflows pin deployctl's action by commit: a tag or branch can move")

    p = detection.detect(root, port=port)
    adopted = p.dockerfile is not None and not force
    in_image, env_health = _config_features()
    app = app_name or default_app(root)
    detected_start = tuple(shlex.split(start)) if start else (p.entry.start or ())
    health = health_path if health_path is not None else p.health_path
    # An adopted Dockerfile's own test stage runs the tests (its packages, not the host's); the lint
    # tool runs there too when that stage installs it, else on the host.
    own_test = p.dockerfile.test_stage if adopted and p.dockerfile and in_image else None
    choices = init_files.Choices(
        app=app, region=region or "us-east-1", registry=registry or "ecr", port=p.port, health_path=health,
        start=detected_start, local_port=local_port or free_local_port(app),
        lint=p.tools.lint, test=p.tools.test, stages_in_image=in_image and not adopted, env_health=env_health,
        env=dict(p.env.env), secrets=p.env.secrets, frontend=p.frontend, adopted_dockerfile=adopted,
        context=p.app_dir if adopted else ".",
        dockerfile="Dockerfile",
        target=(p.dockerfile.serving if adopted and p.dockerfile else "runtime"),
        healthcheck_in_image=bool(adopted and p.dockerfile and p.dockerfile.healthcheck),
        test_in_image=bool(own_test) if adopted else None,
        lint_in_image=bool(own_test and p.dockerfile and all(
            p.dockerfile.installs(own_test, t) for t in p.tools.lint_packages)) if adopted else None,
        stage_target=own_test or "test",
    )
    ignore_text, ignore_warnings = init_files.dockerignore(p.dockerfile.sources if adopted and p.dockerfile else None,
                                                           excludes=_excludes)
    warnings = p.warnings + ignore_warnings
    if adopted and p.dockerfile:
        warnings += _copies_excluded(root, p.app_dir, p.dockerfile)
    interactive = not yes and sys.stdin.isatty()
    _show(_findings(p), warnings)
    if interactive:
        choices = _ask(choices)
    problems = check(choices)
    if problems:
        raise UsageError("; ".join(problems))

    files = {"deploy.yaml": init_files.deploy_yaml(choices)}
    ignore_at = ".dockerignore" if choices.context == "." else f"{choices.context}/.dockerignore"
    if not adopted:
        files["Dockerfile"] = init_files.dockerfile(p, choices)
    if not adopted or not (root / ignore_at).exists():
        files[ignore_at] = ignore_text
    params = workflows.WorkflowParams(app=choices.app, region=choices.region, action_ref=ref or workflows.PLACEHOLDER,
                                      rollback_envs=("staging", "prod"),
                                      prepare=workflows.prepare_commands(_host_stages(p, choices),
                                                                         in_image and not adopted))
    for name, text in workflows.render(params).items():
        files[f".github/workflows/{name}"] = text
    existing = sorted(rel for rel in files if (root / rel).exists())
    if p.frontend is not None and (not interactive or typer.confirm(
            f"Deploy the frontend in {p.frontend}/ to Vercel with each release?", default=True)):
        files["deploy.yaml"] = _with_frontend(files["deploy.yaml"], p.frontend, frontend_framework(root / p.frontend))
    if existing and not force:
        raise UsageError("not overwriting existing files: " + ", ".join(existing),
                         hint="move them aside, or run again with --force")
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        typer.echo(f"{'overwrote' if rel in existing else 'wrote'} {rel}")
    if adopted and p.dockerfile:
        typer.echo(f"kept {p.dockerfile.path} (build target: {choices.target or 'its last stage'}"
                   + (f"; tests run in its `{choices.stage_target}` stage" if choices.test_in_image else "") + ")")
    if _ensure_gitignored(root, ".env"):
        typer.echo("added .env to .gitignore")
    _next_steps(choices, ref is None)


def _excludes(pattern: str, path: str) -> bool:
    """One .dockerignore line excludes `path` (or a directory above it), as the docker CLI applies it."""
    from deployctl.stages import dockerignore  # lazy: only for an adopted Dockerfile

    return dockerignore.Matcher(dockerignore.parse(pattern)).ignored(path)


def _copies_excluded(root: Path, context: str, df: Dockerfile) -> list[str]:
    """Warnings for paths the adopted Dockerfile COPYs that the project's own .dockerignore
    (kept as is) excludes: that build step fails with "file not found in build context"."""
    from deployctl.stages import dockerignore  # lazy: only for an adopted Dockerfile

    rel = ".dockerignore" if context == "." else f"{context}/.dockerignore"
    path = root / rel
    if not path.is_file():
        return []
    try:
        matcher = dockerignore.Matcher(dockerignore.parse(path.read_text("utf-8", errors="replace")))
    except UsageError:
        return []  # a broken .dockerignore is the build's to report, with its line
    return [f"{rel} excludes {src}, which {df.path} copies (COPY/ADD): that build step fails; remove the line "
            "that excludes it" for src in df.sources if src != "." and matcher.ignored(src)]


def _host_stages(p: Project, c: Choices) -> Project:
    """The project with only the tools of stages that run on the host (what CI must install)."""
    tools = p.tools
    if c.test_in_image:
        tools = replace(tools, test=(), test_packages=())
    if c.lint_in_image:
        tools = replace(tools, lint=(), lint_packages=())
    return replace(p, tools=tools)


def _ask(c: Choices) -> Choices:
    c = replace(c, app=typer.prompt("App name", default=c.app))
    c = replace(c, region=typer.prompt("AWS region", default=c.region))
    c = replace(c, port=typer.prompt("Port the app listens on", default=c.port, type=int))
    h = typer.prompt("Health check path (- for a TCP check)", default=c.health_path or "-")
    c = replace(c, health_path=None if h == "-" else h)
    if not c.adopted_dockerfile:
        s = typer.prompt("Start command", default=shlex.join(c.start) if c.start else "")
        c = replace(c, start=tuple(shlex.split(s)))
    c = replace(c, local_port=typer.prompt("Local port for dev (127.0.0.1)", default=c.local_port, type=int))
    c = replace(c, registry=typer.prompt("Image registry (ecr or host:port)", default=c.registry))
    if c.lint and not typer.confirm(f"Lint stage: {'; '.join(c.lint)}?", default=True):
        c = replace(c, lint=())
    if c.test and not typer.confirm(f"Test stage: {'; '.join(c.test)}?", default=True):
        c = replace(c, test=())
    return c


def _ensure_gitignored(root: Path, name: str) -> bool:
    """Adds `name` to the project's .gitignore unless a line already ignores it; True when added."""
    gi = root / ".gitignore"
    text = gi.read_text("utf-8") if gi.is_file() else ""
    if any(line.strip().rstrip("/") in (name, f"/{name}", f"**/{name}") for line in text.splitlines()):
        return False
    gi.write_text(text + ("" if not text or text.endswith("\n") else "\n") + f"{name}\n", encoding="utf-8")
    return True


def _next_steps(c: Choices, placeholder_ref: bool) -> None:
    url = f"http://127.0.0.1:{c.local_port}{c.health_path or '/'}"
    typer.echo("")
    typer.echo("Next:")
    typer.echo(f"  1. deployctl run --env dev        builds the image and serves it on {url}")
    if c.secrets:
        names = ", ".join(c.secrets)
        typer.echo(f"     dev needs its secrets ({names}): export them in your shell, or put NAME=value lines")
        typer.echo("     in .env next to deploy.yaml (git-ignored; deployctl passes it to the dev containers")
        typer.echo("     only, and .dockerignore keeps it out of every image)")
    typer.echo("  2. deployctl bootstrap --env staging   creates staging's AWS side, the stack deploy.yaml's")
    typer.echo("     from_stack names (network, load balancer, cluster, roles; docs/bootstrap.md)"
               + (";\n     fill in the Vercel project" if c.frontend else ""))
    typer.echo("  3. deployctl plan --env staging && deployctl run --env staging")
    typer.echo("  4. deployctl iam-policy --env staging --repo OWNER/NAME")
    typer.echo("     (the CI role, one per environment; its ARN goes in variable AWS_ROLE_ARN of the GitHub")
    typer.echo("     environment of the same name)")
    typer.echo("  5. GitHub → Settings → Environments → production: add required reviewers")
    if placeholder_ref:
        typer.echo("  ! the workflows use deployctl's action at a placeholder commit: run init again with")
        typer.echo("    --action-ref <deployctl commit SHA> (this deployctl was not installed from a git checkout)")


def register(app: typer.Typer) -> None:
    app.command()(init)

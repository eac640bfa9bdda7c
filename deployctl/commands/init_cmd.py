"""init: write deploy.yaml, a multi-stage Dockerfile, a .dockerignore and the GitHub workflows."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import typer

from deployctl import __version__
from deployctl.errors import UsageError

APP = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
REGISTRY = re.compile(r"^(ecr|[A-Za-z0-9.-]+(:\d{1,5})?)$")


@dataclass(frozen=True)
class Answers:
    app: str
    region: str = "us-east-1"
    port: int = 8000
    health_path: str = "/health/ready"
    registry: str = "ecr"


def default_app(directory: Path) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"app-{name}".strip("-")
    return name[:40].rstrip("-") or "app"


def check(answers: Answers) -> list[str]:
    """Problems with the answers, as sentences for people (empty when all are fine)."""
    out = []
    if not APP.match(answers.app):
        out.append(f"app name '{answers.app}': lowercase letters, digits and hyphens, starting with a "
                   "letter, at most 40 characters")
    if not REGION.match(answers.region):
        out.append(f"region '{answers.region}' is not an AWS region name such as us-east-1")
    if not 1 <= answers.port <= 65535:
        out.append(f"port {answers.port} is not between 1 and 65535")
    if not answers.health_path.startswith("/") or any(c.isspace() for c in answers.health_path):
        out.append(f"health path '{answers.health_path}' must start with / and contain no spaces")
    if not REGISTRY.match(answers.registry):
        out.append(f"registry '{answers.registry}': use `ecr` or a registry host such as localhost:5000")
    return out


FRONTEND_DIRS = ("frontend", "web", "client", "apps/web")


def find_frontend(root: Path) -> tuple[str, str | None] | None:
    """(directory, Vercel framework or None) of a JavaScript frontend next to the backend."""
    for rel in FRONTEND_DIRS:
        d = root / rel
        if (d / "package.json").is_file():
            names = {p.name for p in d.iterdir()}
            framework = "nextjs" if any(n.startswith("next.config.") for n in names) else None
            return rel, framework
    return None


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


def _template(name: str) -> str:
    return (resources.files("deployctl") / "templates" / name).read_text("utf-8")


def render_files(answers: Answers, install: str, frontend: tuple[str, str | None] | None = None) -> dict[str, str]:
    """Relative path → content of every file init writes. Pure."""
    from deployctl.render import workflows  # lazy: --help loads only what it needs

    values = {"APP": answers.app, "REGION": answers.region, "PORT": str(answers.port),
              "HEALTH": answers.health_path, "REGISTRY": answers.registry}
    files = {
        "deploy.yaml": workflows.fill(_template("deploy.yaml.txt"), values),
        "Dockerfile": workflows.fill(_template("Dockerfile.txt"), values),
        ".dockerignore": _template("dockerignore.txt"),
    }
    if frontend is not None:
        files["deploy.yaml"] = _with_frontend(files["deploy.yaml"], *frontend)
    params = workflows.WorkflowParams(app=answers.app, region=answers.region, install=install,
                                      rollback_envs=("staging", "prod"))
    for name, text in workflows.render(params).items():
        files[f".github/workflows/{name}"] = text
    return files


def git_root(start: Path) -> Path | None:
    for d in (start, *start.parents):
        if (d / ".git").exists():
            return d
    return None


def init(
    app_name: str | None = typer.Option(None, "--app", help="App name (default: the directory's name)."),
    region: str | None = typer.Option(None, "--region", help="AWS region (default us-east-1)."),
    port: int | None = typer.Option(None, "--port", help="Port the service listens on (default 8000)."),
    health_path: str | None = typer.Option(None, "--health-path",
                                           help="HTTP readiness path (default /health/ready)."),
    registry: str | None = typer.Option(None, "--registry", help="`ecr` (default) or a registry host."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Take the defaults for everything not given."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that already exist."),
    directory: str = typer.Option(".", "--dir", help="Project directory (inside a git repository)."),
) -> None:
    """Set a project up for deployctl: deploy.yaml, Dockerfile, .dockerignore, GitHub workflows.

    Asks a few questions on a terminal; flags answer them, `--yes` takes the defaults. Never
    overwrites an existing file unless `--force`.

    Examples:  deployctl init
               deployctl init --app chat-api --region eu-west-1 --port 8000 --yes
    """
    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"{directory}: no such directory")
    if git_root(root.resolve()) is None:
        raise UsageError(f"{root.resolve()} is not inside a git repository",
                         hint="run `git init` first: deployctl tags images with the commit")
    defaults = Answers(app=default_app(root))
    given = {"app": app_name, "region": region, "port": port, "health_path": health_path,
             "registry": registry}
    ask = not yes and sys.stdin.isatty()
    prompts = {"app": "App name", "region": "AWS region", "port": "Service port",
               "health_path": "Health check path", "registry": "Image registry (ecr or host:port)"}
    values: dict[str, object] = {}
    for key, value in given.items():
        if value is None:
            value = getattr(defaults, key)
            if ask:
                value = typer.prompt(prompts[key], default=value, type=type(value))
        values[key] = value
    answers = Answers(**values)  # type: ignore[arg-type]
    problems = check(answers)
    if problems:
        raise UsageError("; ".join(problems))

    frontend = find_frontend(root)
    if frontend is not None and ask and not typer.confirm(
            f"Deploy the frontend in {frontend[0]}/ to Vercel with each release?", default=True):
        frontend = None
    files = render_files(answers, install=f'"deployctl=={__version__}"', frontend=frontend)
    existing = sorted(p for p in files if (root / p).exists())
    if existing and not force:
        raise UsageError("not overwriting existing files: " + ", ".join(existing),
                         hint="move them aside, or run again with --force")
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        verb = "overwrote" if rel in existing else "wrote"
        typer.echo(f"{verb} {rel}")
    typer.echo("")
    typer.echo("Next:")
    typer.echo("  1. fill in the TODO lines of deploy.yaml (cluster, subnets, security groups, roles"
               + (", the Vercel project)" if frontend else ")"))
    typer.echo("  2. deployctl validate && deployctl plan --env staging")
    typer.echo("  3. deployctl iam-policy --env staging --repo OWNER/NAME")
    typer.echo("     (the CI role, one per environment; its ARN goes in variable AWS_ROLE_ARN of the GitHub")
    typer.echo("     environment of the same name)")
    typer.echo("  4. GitHub → Settings → Environments → production: add required reviewers")
    typer.echo("     (the promote and rollback workflows wait for them)")


def register(app: typer.Typer) -> None:
    app.command()(init)

"""Helpers shared by command modules: loading config, printing JSON, consoles."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from deployctl.app.session import SESSION
from deployctl.errors import Interrupted, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from deployctl.adapters.git import GitFacts
    from deployctl.config.model import ResolvedConfig
    from deployctl.pipeline import RunReport, StageContext
    from deployctl.plan import Plan
    from deployctl.redact import Redactor
    from deployctl.targets.base import DeployOptions, DeployRunner, Target

FILE_OPTION = typer.Option("deploy.yaml", "--file", "-f", help="Path to deploy.yaml.")
ENV_OPTION = typer.Option(..., "--env", "-e", help="Environment name from deploy.yaml (e.g. dev, staging, prod).")
JSON_OPTION = typer.Option(False, "--json", help="Print stable machine-readable JSON on stdout.")
YES_OPTION = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (CI).")
LOCK_WAIT_OPTION = typer.Option(None, "--lock-wait", metavar="DURATION",
                                help="Wait this long (e.g. 10m) for another deploy of the environment "
                                     "to finish instead of failing at once.")


def parse_lock_wait(text: str | None, flag: str = "--lock-wait") -> float:
    """Seconds from a duration flag (e.g. 90s, 10m); UsageError (exit 2) for nonsense."""
    if text is None:
        return 0.0
    from deployctl.config.units import parse_duration  # lazy: pydantic and the config stay off --help

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def print_tracebacks(tracebacks: list[str]) -> None:
    for text in tracebacks:
        print(text, file=sys.stderr)


def engine_runner(target: Target, *, as_json: bool,
                  on_result: Callable[[RunReport], None] | None = None) -> DeployRunner:
    """A deployctl.targets.base.DeployRunner: one deploy as the `deploy` stage of the engine,
    rendered like `deployctl run` (progress, --json report, tracebacks with --verbose).
    `on_result(report)` runs once the deploy is over and reported (notifications)."""

    def run(plan: Plan, image_ref: str, options: DeployOptions, *, release_id: str | None = None,
            before: Callable[[StageContext], None] | None = None,
            after: Callable[[StageContext], None] | None = None) -> int:
        # lazy: pydantic, the config and the UI stay off --help
        from deployctl.app.deploy_stage import run_deploy, stage_tracebacks
        from deployctl.ui import make_reporter
        from deployctl.ui.report import report_json

        result = run_deploy(target, plan, image_ref, options, reporter=make_reporter(json_mode=as_json),
                            redactor=_redactor(), release_id=release_id, before=before, after=after)
        if as_json:
            sys.stdout.write(report_json(result))
            sys.stdout.flush()
        print_tracebacks(stage_tracebacks(result, SESSION.verbose))
        if on_result is not None:
            on_result(result)
        return result.exit_code

    return run


def notify(cfg: ResolvedConfig, command: str, report: RunReport, *, git_sha: str = "",
           redactor: Redactor | None = None) -> None:
    """Post the outcome where deploy.yaml's `notify:` says; what happened goes to stderr (so
    --json stays one document on stdout). Never changes the outcome or the exit code."""
    if cfg.notify is None:
        return
    from deployctl.app import notify as use  # lazy: --help loads only what it needs

    note = use.notification(cfg, command, report, git_sha=git_sha)
    for line in use.send(cfg, note, redactor or _redactor()):
        print(line, file=sys.stderr)


def _redactor() -> Redactor:
    from deployctl.app.run import run_redactor  # lazy: pydantic and the config stay off --help

    return run_redactor()


def confirm(question: str, yes: bool) -> None:
    """The one confirmation of every command that removes or replaces something: asks on a
    terminal; `--yes` skips; no terminal and no --yes is a usage error (exit 2), so a script
    or CI job never removes anything it did not explicitly say yes to."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question.rstrip('?')}: this needs a confirmation and there is no terminal to ask "
                         "on; nothing was changed", hint="pass --yes to go ahead without asking (CI)")
    if not typer.confirm(question, default=False):
        raise Interrupted("nothing was changed")


def load(file: str, env: str, *, from_stack: bool = True) -> ResolvedConfig:
    """One environment's config; with `from_stack` (the default) what deploy.yaml leaves out is
    filled from the outputs of the environment's `from_stack` stack (an AWS call)."""
    from deployctl.config import dotenv, load_env, read  # lazy: pydantic and the config stay off --help

    # The project's .env (config/dotenv.py): only the local target reads it, for its services'
    # secrets under the shell's values; remote targets never call it.
    dotenv.project_file = project_dir(file) / ".env"
    cfg = load_env(read(file), env)
    if from_stack and cfg.environment.from_stack:
        from deployctl.app.stack import resolve  # lazy: boto3 only for environments that need it

        cfg = resolve(cfg)[0]
    return cfg


def project_dir(file: str) -> Path:
    return Path(file).resolve().parent


def git_facts(file: str) -> GitFacts:
    from deployctl.adapters.git import read_facts  # lazy: --help loads only what it needs

    return read_facts(project_dir(file))


def print_json(data: Any, redactor: Redactor | None = None) -> None:
    """Print `data` as JSON, its secrets masked (by key name and value shape, see
    Redactor.redact_data): every JSON document deployctl prints goes through the redactor."""
    from deployctl.redact import Redactor  # lazy: --help loads only what it needs

    data = (redactor or Redactor()).redact_data(data)
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def console(stderr: bool = False) -> Console:
    from rich.console import Console  # lazy: rich stays off --help

    return Console(stderr=stderr, highlight=False, soft_wrap=False)

"""`deployctl task run`: a one-off task from an environment's release; parse and render only
(the use case is deployctl.app.task)."""

from __future__ import annotations

import json
import sys

import typer

from deployctl.app.session import SESSION
from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, load, parse_lock_wait
from deployctl.errors import EXIT_FAILED, EXIT_INTERRUPTED

task_app = typer.Typer(help="One-off tasks from an environment's release (migrations, scripts).",
                       no_args_is_help=True)


@task_app.command("run")
def run(
    command: list[str] = typer.Argument(..., metavar="CMD", help="The command and its arguments, after `--`."),
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    service: str | None = typer.Option(None, "--service", "-s",
                                       help="Whose task definition to use (may be left out with one service)."),
    release: str | None = typer.Option(None, "--release", metavar="ID",
                                       help="Run this release's revision instead of the live one."),
    timeout: str = typer.Option("1h", "--timeout", metavar="DURATION",
                                help="Stop the task after this long (exit 1)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run CMD in a one-off Fargate task with the service's image digest, secrets, roles and
    network, stream its output (CloudWatch Logs, redacted) and exit with its exit code.

    The task runs the live service's task definition (or --release's) with the command
    overridden; nothing is registered. Ctrl-C stops the task (exit 130). With --json the
    output goes to stderr and stdout gets one document (schema deployctl.task/v1).

    \b
    Examples:  deployctl task run --env staging -- python manage.py migrate
               deployctl task run --env prod --service worker -- python -m jobs.reindex
               deployctl task run --env prod --release 20261207T120015Z-0123456789ab-f9c3 -- ./check.sh
    """
    # lazy: pydantic, boto3 and the config stay off --help
    from deployctl.adapters import aws
    from deployctl.app import task as use
    from deployctl.app.run import run_redactor

    limit = parse_lock_wait(timeout, "--timeout")
    cfg = load(file, env)
    clients = aws.clients(cfg.region)
    out = sys.stderr if as_json else sys.stdout
    redact = run_redactor(cfg).stream()
    with aws.aws_errors(f"reading {cfg.env_name}'s service"):
        plan = use.plan_task(cfg, clients, service=service, release=release, command=command)
    release_text = f"release {plan.release}, " if plan.release else ""
    _note(f"running `{' '.join(plan.command)}` in a one-off task of {plan.service} ({release_text}{plan.label})")
    if plan.logs is None:
        _note(f"(container {plan.container} does not log with awslogs: its output cannot be shown)")
    started: list[str] = []

    def on_started(arn: str) -> None:
        started.append(arn)
        _note(f"task {arn.rsplit('/', 1)[-1]} started; waiting for it (Ctrl-C stops it)")

    def emit(line: str) -> None:
        print(redact(line), file=out, flush=True)

    try:
        with aws.aws_errors(f"running a task in {cfg.env_name}"):
            outcome = use.run(clients, plan, emit=emit, timeout=limit, on_started=on_started)
    except KeyboardInterrupt:
        which = f"task {started[0].rsplit('/', 1)[-1]}" if started else "the task (if it started)"
        _note(f"interrupted: asked ECS to stop {which}")
        SESSION.interrupted = False  # handled: no second "interrupted" line from the CLI
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if as_json:
        sys.stdout.write(json.dumps(use.to_json(plan, outcome, cfg.env_name), indent=2) + "\n")
    _note(outcome.describe())
    if outcome.timed_out or outcome.exit_code is None:
        raise typer.Exit(EXIT_FAILED)
    raise typer.Exit(outcome.exit_code)


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def register(app: typer.Typer) -> None:
    app.add_typer(task_app, name="task")

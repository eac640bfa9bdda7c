"""`deployctl task run`: a one-off task from an environment's release; parse and render only
(the use case is deployctl.app.task)."""

from __future__ import annotations

import json
import sys

import typer

from deployctl.app.session import SESSION
from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, load, parse_lock_wait
from deployctl.errors import EXIT_FAILED, EXIT_INTERRUPTED, UsageError

task_app = typer.Typer(help="One-off tasks from an environment's release (migrations, scripts).",
                       no_args_is_help=True)


@task_app.command("run")
def run(
    command: list[str] | None = typer.Argument(None, metavar="CMD",
                                               help="The command and its arguments, after `--`."),
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    service: str | None = typer.Option(None, "--service", "-s",
                                       help="Whose task definition to use (may be left out with one service)."),
    release: str | None = typer.Option(None, "--release", metavar="ID",
                                       help="Run this release's revision instead of the live one."),
    job: str | None = typer.Option(None, "--job", metavar="NAME",
                                   help="Run this `jobs:` entry now: its command, size and capacity."),
    timeout: str | None = typer.Option(None, "--timeout", metavar="DURATION",
                                       help="Stop the task after this long (exit 1); default 1h, or the job's."),
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
               deployctl task run --env prod --job embed
    """
    # lazy: pydantic, boto3 and the config stay off --help
    from deployctl.adapters import aws
    from deployctl.app import task as use
    from deployctl.app.run import run_redactor

    if job is not None and (command or service or release):
        raise UsageError("--job runs the job's own command, service and the live release",
                         hint="leave out CMD, --service and --release, or leave out --job")
    cfg = load(file, env)
    default = cfg.jobs[job].timeout if job is not None and job in cfg.jobs else 3600.0
    limit = parse_lock_wait(timeout, "--timeout") if timeout is not None else default
    clients = aws.clients(cfg.region)
    out = sys.stderr if as_json else sys.stdout
    redact = run_redactor(cfg).stream()
    with aws.aws_errors(f"reading {cfg.env_name}'s service"):
        plan = use.plan_job(cfg, clients, job=job) if job is not None else \
            use.plan_task(cfg, clients, service=service, release=release, command=command or [])
    release_text = f"release {plan.release}, " if plan.release else ""
    what = f"job {plan.job}: " if plan.job else ""
    capacity = " on FARGATE_SPOT" if plan.job and "capacityProviderStrategy" in plan.request else ""
    _note(f"{what}running `{' '.join(plan.command)}` in a one-off task of {plan.service} "
          f"({release_text}{plan.label}){capacity}")
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

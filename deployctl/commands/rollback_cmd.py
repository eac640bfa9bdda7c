"""`deployctl rollback`: parse, call deployctl.app.rollback, render."""

from __future__ import annotations

import sys

import typer

from deployctl.commands.common import (
    ENV_OPTION,
    FILE_OPTION,
    JSON_OPTION,
    LOCK_WAIT_OPTION,
    YES_OPTION,
    confirm,
    engine_runner,
    load,
    notify,
    parse_lock_wait,
)
from deployctl.errors import UsageError


def rollback(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    to: str | None = typer.Option(None, "--to", help="Release id to go back to (see `deployctl history`)."),
    steps: int = typer.Option(1, "--steps", min=1, help="Go back this many succeeded releases with other images, "
                                                         "counted down `deployctl history`."),
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
    lock_wait: str | None = LOCK_WAIT_OPTION,
    name: str | None = typer.Option(None, "--name", help="A preview copy's name, for environments with "
                                                          "preview: true (e.g. pr-42)."),
) -> None:
    """Run an earlier succeeded release again, watched like a deploy and recorded as a release.

    By default the newest earlier succeeded release whose images differ from what runs now.
    On ECS its task-definition revisions run again as they are while ECS has them ACTIVE (a
    deregistered one is registered again as a copy); the confirmation names exactly what goes
    live. Service settings (count, deployment configuration) come from today's deploy.yaml.
    Nothing to roll back to, or an unknown/failed --to release, is exit 2 and changes nothing.

    \b
    Examples:  deployctl rollback --env staging
               deployctl rollback --env prod --to 20260315T101500Z-1a2b3c4d5e6f-9f3c --yes
    """
    # lazy: pydantic and the config stay off --help
    from deployctl.app import rollback as use
    from deployctl.targets import DeployOptions

    if to is not None and steps != 1:
        raise UsageError("--to and --steps do not go together", hint="pick a release with --to, or count with --steps")
    cfg = load(file, env)
    target, choice = use.choose(cfg, to=to, steps=steps, name=name)
    out = sys.stderr if as_json else sys.stdout
    for line in choice.summary:
        print(line, file=out)
    confirm(choice.question, yes)
    options = DeployOptions(yes=yes, lock_wait=parse_lock_wait(lock_wait))
    sha = choice.target.git_sha
    runner = engine_runner(target, as_json=as_json,
                           on_result=lambda report: notify(cfg, "rollback", report, git_sha=sha))
    code = use.execute(target, choice, options, run=runner, log=typer.echo, as_json=as_json)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command()(rollback)

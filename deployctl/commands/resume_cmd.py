"""`deployctl resume`: parse, call deployctl.app.resume, render."""

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
    load,
    parse_lock_wait,
    print_json,
)


def resume(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
    lock_wait: str | None = LOCK_WAIT_OPTION,
) -> None:
    """Start the ECS services the hourly cost cap stopped, at their configured count.

    The services `monitoring.cost_cap.services` names that are at 0 tasks get deploy.yaml's
    count back (with autoscaling: its min, at least 1), and their scalable target deploy.yaml's
    range. Refused (exit 2, nothing changed) when no cap stops services, when nothing is
    stopped, or while a cap alarm is still in ALARM (the stop policy would run again). Asks
    first (--yes in CI) and takes the deploy lock. See docs/cost-cap.md.

    JSON (schema deployctl.resume/v1): {schema, app, env, done, services: {name: {ecs_service,
    before, after, min_capacity, max_capacity}}, running}.

    \b
    Example:  deployctl resume --env prod
    """
    from deployctl.app import resume as use  # lazy: pydantic, boto3 and the config stay off --help

    cfg = load(file, env)
    wait = parse_lock_wait(lock_wait)
    p = use.plan(cfg)
    out = sys.stderr if as_json else sys.stdout
    for line in p.summary:
        print(line, file=out)
    confirm(p.question, yes)
    use.execute(cfg, p, lock_wait=wait, log=lambda line: print(line, file=out))
    print(f"resumed: ECS starts the tasks now; follow with `deployctl status --env {env} --watch`", file=out)
    if as_json:
        print_json(p.to_json(done=True))


def register(app: typer.Typer) -> None:
    app.command()(resume)

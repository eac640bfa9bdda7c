"""`deployctl scale`: parse, call deployctl.app.scale, render."""

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


def scale(
    counts: list[str] = typer.Argument(..., metavar="SERVICE=N...", help="Desired task counts, e.g. api=4."),
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
    lock_wait: str | None = LOCK_WAIT_OPTION,
) -> None:
    """Set the desired task count of ECS services now, within the environment's guardrails.

    Refused (exit 2, nothing changed) above guardrails.max_tasks or max_monthly_usd, outside a
    service's autoscaling min..max, or for a service that does not exist. Asks first (--yes in
    CI), takes the deploy lock, and records the change on the service: `history` shows it as
    an entry of kind `scale`. Only the desired count changes; the next `run` sets deploy.yaml's
    `count` again (`diff` shows that).

    JSON (schema deployctl.scale/v1): {schema, app, env, done, services: {name: {ecs_service,
    before, after}}, unchanged, monthly_usd, monthly_usd_after}.

    \b
    Examples:  deployctl scale --env prod api=4
               deployctl scale --env prod api=6 worker=2 --yes
    """
    from deployctl.app import scale as use  # lazy: pydantic, boto3 and the config stay off --help

    cfg = load(file, env)
    wait = parse_lock_wait(lock_wait)
    p = use.plan(cfg, counts)
    out = sys.stderr if as_json else sys.stdout
    for line in p.summary:
        print(line, file=out)
    if not p.changes:
        print("nothing to do: every service already has that count", file=out)
    else:
        confirm(p.question, yes)
        use.execute(cfg, p, lock_wait=wait, log=lambda line: print(line, file=out))
        print(f"scaled: ECS starts or stops tasks now; follow with `deployctl status --env {env} --watch`",
              file=out)
    if as_json:
        print_json(p.to_json(done=bool(p.changes)))


def register(app: typer.Typer) -> None:
    app.command()(scale)

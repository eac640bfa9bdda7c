"""`deployctl diff`: parse, call deployctl.app.diff, render."""

from __future__ import annotations

import typer

from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, load, print_json


def diff(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    exit_code: bool = typer.Option(False, "--exit-code",
                                   help="Exit 1 when a setting would change (as `git diff --exit-code`)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Service settings deploy.yaml would change on the live ECS services. Changes nothing.

    Compares the UpdateService request `run` sends (deployment configuration: circuit breaker,
    min/max percent, deployment alarms; capacity providers; network; load balancers; desired
    count; health check grace period) with DescribeServices. A deployment alarm on the live
    service that deploy.yaml does not list is shown with a warning: the next deploy removes it.

    Exit code: 0 whether or not something differs; with --exit-code, 1 when something would
    change (a service that does not exist yet counts). 2 for a config or usage error.
    JSON (schema deployctl.diff/v1): {schema, app, env, changed, services: {name: {ecs_service,
    exists, changes: [{setting, key, live, planned, warning}]}}}.

    \b
    Examples:  deployctl diff --env prod
               deployctl diff --env prod --json --exit-code
    """
    # lazy: pydantic, boto3 and the config stay off --help
    from deployctl import service_diff
    from deployctl.app import diff as use

    cfg = load(file, env)
    diffs = use.diff(cfg)
    if as_json:
        print_json(use.doc(cfg, diffs))
    else:
        typer.echo(f"{cfg.app}/{env}: service settings in deploy.yaml against the live services "
                   f"(cluster {cfg.environment.cluster})")
        for d in diffs:
            for line in service_diff.lines(d):
                typer.echo(line)
    if exit_code and any(d.changed for d in diffs):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(diff)

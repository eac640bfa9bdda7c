"""destroy: tear down one named preview (on ECS: its services and task-definition revisions), nothing else."""

from __future__ import annotations

from dataclasses import asdict

import typer

from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, YES_OPTION, confirm, load, print_json

NAME_OPTION = typer.Option(..., "--name", "-n", help="Preview name, e.g. pr-42.")


def destroy(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    name: str = NAME_OPTION,
    as_json: bool = JSON_OPTION,
    yes: bool = YES_OPTION,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be removed; change nothing."),
) -> None:
    """Remove one preview: its ECS services (scaled to 0, then deleted) and task-definition revisions.

    Only resources named like the preview's (<app>-<env>-<name>-…, or <app>-<name>-… from
    before names held the environment) AND tagged with this app, environment and
    deployctl:preview=<name> are touched. Refused for environments without `preview: true`.
    Asks first; without a terminal it needs --yes.

    Example:  deployctl destroy --env preview --name pr-42 --yes
    """
    from deployctl.app import destroy as use  # lazy: pydantic and the config stay off --help

    target, name = use.prepare(load(file, env), name)
    if not dry_run:
        confirm(target.teardown_question(name), yes)
    report = use.destroy(target, name, dry_run=dry_run)
    if as_json:
        print_json({"schema": "deployctl.destroy/v1", **asdict(report)})
        return
    verb = "would remove" if dry_run else "removed"
    if not report.services_deleted and not report.task_definitions_deregistered and not report.others_deleted:
        typer.echo(f"preview {name}: nothing to remove in cluster {report.cluster}")
    for svc in report.services_deleted:
        typer.echo(f"{verb} service {svc}")
    for arn in report.task_definitions_deregistered:
        typer.echo(f"{verb} task definition {arn.rsplit('/', 1)[-1]}")
    for what in report.others_deleted:
        typer.echo(f"{verb} {what}")
    for line in report.skipped:
        typer.echo(f"left alone: {line}")


def register(app: typer.Typer) -> None:
    app.command()(destroy)

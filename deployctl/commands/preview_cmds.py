"""destroy: tear down one named preview (on ECS: delete its services, deregister its task-definition
revisions), nothing else; `previews`: list the live previews of an environment."""

from __future__ import annotations

from dataclasses import asdict

import typer

from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, YES_OPTION, confirm, load, print_json

# Checked by the use case, not typer: a missing name gets deployctl's own message (and a local
# environment the pointer to `down`) instead of click's "Missing option".
NAME_OPTION = typer.Option(None, "--name", "-n", help="Preview name, e.g. pr-42 (required).")


def destroy(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    name: str | None = NAME_OPTION,
    as_json: bool = JSON_OPTION,
    yes: bool = YES_OPTION,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be removed; change nothing."),
) -> None:
    """Remove one preview: delete its ECS services (scaled to 0 first) and deregister its
    task-definition revisions (ECS keeps them listed as INACTIVE).

    Only resources named like the preview's (<app>-<env>-<name>-…, or <app>-<name>-… from
    before names held the environment) AND tagged with this app, environment and
    deployctl:preview=<name> are touched. Refused for environments without `preview: true`.
    Asks first; without a terminal it needs --yes.

    \b
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
    if not report.services_deleted and not report.task_definitions_deregistered and not report.others_deleted:
        typer.echo(f"preview {name}: nothing to remove in cluster {report.cluster}")
    for svc in report.services_deleted:
        typer.echo(f"would remove service {svc}: scale it to 0, then delete it" if dry_run else
                   f"deleted service {svc} (scaled to 0 first)")
    for arn in report.task_definitions_deregistered:
        label = arn.rsplit("/", 1)[-1]
        typer.echo(f"would deregister task definition {label} (it stays listed, INACTIVE)" if dry_run else
                   f"deregistered task definition {label} (now INACTIVE)")
    if report.task_definitions_deregistered and not dry_run:
        # Say what deregistering means: the revision is not gone, and that is by design of ECS.
        typer.echo("an INACTIVE revision starts no new task and costs nothing; ECS keeps it listed "
                   "(DeleteTaskDefinitions removes it for good)")
    for what in report.others_deleted:
        typer.echo(f"{'would remove' if dry_run else 'removed'} {what}")
    for line in report.skipped:
        typer.echo(f"left alone: {line}")


def previews(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """The live previews of an environment with `preview: true`: per name, its release and services.

    JSON (schema deployctl.previews/v1): {schema, app, env, cluster, previews: [{name, release,
    services: [{service, task_definition, rollout_state, running, desired}]}]}.

    \b
    Example:  deployctl previews --env preview
    """
    from deployctl.app import previews as use  # lazy: pydantic and the config stay off --help

    cfg = load(file, env)
    found = use.live(cfg)
    if as_json:
        print_json(use.previews_doc(cfg, found))
        return
    for line in use.previews_lines(cfg, found):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.command()(destroy)
    app.command()(previews)

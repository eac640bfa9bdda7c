"""destroy: tear down one named preview (its ECS services and task-definition revisions), nothing else."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import typer

from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, load, print_json

NAME_OPTION = typer.Option(..., "--name", "-n", help="Preview name, e.g. pr-42.")


@dataclass
class DestroyReport:
    env: str
    name: str
    cluster: str
    services_deleted: list[str] = field(default_factory=list)
    task_definitions_deregistered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    dry_run: bool = False


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def find_preview(ecs: Any, cfg: Any, name: str) -> tuple[list[str], list[str], list[str]]:
    """(service names, task-definition ARNs, skipped look-alikes) of preview `name`, read from ECS."""
    from deployctl import preview

    cluster = cfg.environment.cluster
    pre = preview.prefix(cfg, name)
    arns: list[str] = []
    for page in ecs.get_paginator("list_services").paginate(cluster=cluster):
        arns.extend(a for a in page.get("serviceArns", []) if preview.service_name_of(a).startswith(pre))
    described: list[dict[str, Any]] = []
    for chunk in _chunks(arns, 10):  # DescribeServices takes at most 10 services
        described.extend(ecs.describe_services(cluster=cluster, services=chunk, include=["TAGS"])["services"])
    services, skipped = preview.select_services(cfg, name, described)

    families: list[str] = []
    pages = ecs.get_paginator("list_task_definition_families").paginate(familyPrefix=pre, status="ACTIVE")
    for page in pages:
        families.extend(f for f in page.get("families", []) if f.startswith(pre))
    td_tags: dict[str, list[dict[str, str]]] = {}
    for fam in sorted(set(families)):
        for page in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=fam, status="ACTIVE"):
            for arn in page.get("taskDefinitionArns", []):
                resp = ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
                td_tags[arn] = resp.get("tags") or []
    tds, td_skipped = preview.select_task_definitions(cfg, name, td_tags)
    return services, tds, skipped + td_skipped


def destroy_preview(ecs: Any, cfg: Any, name: str, *, dry_run: bool = False) -> DestroyReport:
    """Scale each selected service to 0, delete it (force), then deregister the selected revisions."""
    cluster = cfg.environment.cluster
    services, tds, skipped = find_preview(ecs, cfg, name)
    report = DestroyReport(env=cfg.env_name, name=name, cluster=cluster, skipped=skipped, dry_run=dry_run)
    if dry_run:
        report.services_deleted, report.task_definitions_deregistered = services, tds
        return report
    for svc in services:
        # Scale to 0 first so tasks drain from their load balancer before the service goes.
        ecs.update_service(cluster=cluster, service=svc, desiredCount=0)
        ecs.delete_service(cluster=cluster, service=svc, force=True)
        report.services_deleted.append(svc)
    for arn in tds:
        ecs.deregister_task_definition(taskDefinition=arn)
        report.task_definitions_deregistered.append(arn)
    return report


def destroy(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    name: str = NAME_OPTION,
    as_json: bool = JSON_OPTION,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be removed; change nothing."),
) -> None:
    """Remove one preview: its ECS services (scaled to 0, then deleted) and task-definition revisions.

    Only resources whose name starts with <app>-<name>- AND that carry the tag
    deployctl:preview=<name> are touched. Refused for environments without `preview: true`.

    Example:  deployctl destroy --env preview --name pr-42 --yes
    """
    from deployctl import preview
    from deployctl.adapters import aws
    from deployctl.errors import Interrupted, UsageError

    cfg = load(file, env)
    if not cfg.environment.preview:
        raise UsageError(f"refusing to destroy in '{env}': it is not a preview environment",
                         hint="destroy only removes named previews of an environment with `preview: true`")
    name = preview.check_name(cfg, name) or name
    question = f"Remove preview '{name}' ({preview.prefix(cfg, name)}*) from {cfg.environment.cluster}?"
    if not (yes or dry_run) and sys.stdin.isatty() and not typer.confirm(question, default=False):
        raise Interrupted("nothing removed")
    client = aws.clients(cfg.region).ecs
    with aws.aws_errors(f"destroying preview {name}"):
        report = destroy_preview(client, cfg, name, dry_run=dry_run)
    if as_json:
        print_json({"schema": "deployctl.destroy/v1", **asdict(report)})
        return
    verb = "would remove" if dry_run else "removed"
    if not report.services_deleted and not report.task_definitions_deregistered:
        typer.echo(f"preview {name}: nothing to remove in cluster {report.cluster}")
    for svc in report.services_deleted:
        typer.echo(f"{verb} service {svc}")
    for arn in report.task_definitions_deregistered:
        typer.echo(f"{verb} task definition {arn.rsplit('/', 1)[-1]}")
    for line in report.skipped:
        typer.echo(f"left alone: {line}")


def register(app: typer.Typer) -> None:
    app.command()(destroy)

"""destroy: tear down one named preview (its ECS services and task-definition revisions), nothing else."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import typer

from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, YES_OPTION, confirm, load, print_json

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
    arns: list[str] = []
    for page in ecs.get_paginator("list_services").paginate(cluster=cluster):
        arns.extend(a for a in page.get("serviceArns", [])
                    if preview.is_candidate_service(cfg, name, preview.service_name_of(a)))
    described: list[dict[str, Any]] = []
    for chunk in _chunks(arns, 10):  # DescribeServices takes at most 10 services
        described.extend(ecs.describe_services(cluster=cluster, services=chunk, include=["TAGS"])["services"])
    services, skipped = preview.select_services(cfg, name, described)

    families: set[str] = set()
    for pre in preview.family_prefixes(cfg, name):
        pages = ecs.get_paginator("list_task_definition_families").paginate(familyPrefix=pre, status="ACTIVE")
        for page in pages:
            families.update(f for f in page.get("families", []) if f.startswith(pre))
    td_tags: dict[str, list[dict[str, str]]] = {}
    for fam in sorted(families):
        for page in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=fam, status="ACTIVE"):
            for arn in page.get("taskDefinitionArns", []):
                if preview.family_of(arn) != fam:
                    continue  # familyPrefix is a prefix: app-p-pr-1-api also lists app-p-pr-1-api2
                resp = ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
                td_tags[arn] = resp.get("tags") or []
    tds, td_skipped = preview.select_task_definitions(cfg, name, td_tags)
    return services, tds, skipped + td_skipped


def destroy_preview(ecs: Any, cfg: Any, name: str, *, dry_run: bool = False) -> DestroyReport:
    """Scale each selected service to 0, delete it (force), then deregister the selected revisions."""
    from deployctl import preview
    from deployctl.adapters import aws

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
        try:
            ecs.deregister_task_definition(taskDefinition=arn)
        except aws.ClientError as exc:
            if not aws.is_access_denied(exc):
                raise
            # The CI role's policy scopes deregistration by resource tags (deployctl iam-policy);
            # where AWS cannot evaluate them it denies. The services are gone; the revision is
            # inert and stays listed, which is safer than a policy that could deregister anyone's.
            report.skipped.append(f"task definition {preview.family_of(arn)}: not deregistered "
                                  f"({aws.error_code(exc)}: the CI role may not deregister it)")
            continue
        report.task_definitions_deregistered.append(arn)
    return report


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
    from deployctl import preview
    from deployctl.adapters import aws
    from deployctl.errors import UsageError

    cfg = load(file, env)
    if not cfg.environment.preview:
        raise UsageError(f"refusing to destroy in '{env}': it is not a preview environment",
                         hint="destroy only removes named previews of an environment with `preview: true`")
    name = preview.check_name(cfg, name) or name
    if not dry_run:
        confirm(f"Remove preview '{name}' ({', '.join(preview.service_names(cfg, name))} and their task "
                f"definitions) from cluster {cfg.environment.cluster}?", yes)
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

"""The named preview copies of an ECS environment: which are live (`live_previews`), and the
teardown of one: its services (scaled to 0, then deleted) and its task-definition revisions,
and nothing else (deployctl.preview says what is the preview's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from deployctl import preview, releases
from deployctl import releases_tags as rt
from deployctl.adapters import aws, ecs_gateway
from deployctl.adapters.aws import BotoClient
from deployctl.adapters.ecs_gateway import ServiceState
from deployctl.render import autoscaling as render_autoscaling
from deployctl.render import ecs as render_ecs
from deployctl.targets import ecs_autoscaling
from deployctl.targets.base import DestroyReport, LivePreview, PreviewService

if TYPE_CHECKING:
    from deployctl.config.model import ResolvedConfig


def find_preview(ecs: BotoClient, cfg: ResolvedConfig, name: str) -> tuple[list[str], list[str], list[str]]:
    """(service names, task-definition ARNs, skipped look-alikes) of preview `name`, read from ECS."""
    cluster = cfg.environment.cluster
    names = [n for n in ecs_gateway.service_names(ecs, cluster) if preview.is_candidate_service(cfg, name, n)]
    described: list[ServiceState] = []
    for i in range(0, len(names), 10):  # DescribeServices takes at most 10 services
        described += ecs_gateway.describe_services(ecs, cluster, names[i:i + 10], tags=True)
    services, skipped = preview.select_services(cfg, name, described)

    families: set[str] = set()
    for pre in preview.family_prefixes(cfg, name):
        families.update(f for f in ecs_gateway.task_definition_families(ecs, pre) if f.startswith(pre))
    td_tags: dict[str, Mapping[str, str]] = {}
    for fam in sorted(families):
        for arn in ecs_gateway.task_definition_arns(ecs, fam):
            if preview.family_of(arn) != fam:
                continue  # familyPrefix is a prefix: app-p-pr-1-api also lists app-p-pr-1-api2
            td_tags[arn] = ecs_gateway.describe_task_definition(ecs, arn).tags
    tds, td_skipped = preview.select_task_definitions(cfg, name, td_tags)
    return services, tds, skipped + td_skipped


def destroy_preview(ecs: BotoClient, cfg: ResolvedConfig, name: str, *, dry_run: bool = False,
                    scaling: BotoClient | None = None) -> DestroyReport:
    """Scale each selected service to 0, delete it (force), deregister its scalable target (with
    `scaling`, for services deploy.yaml auto-scales or the cost cap stops), then deregister the selected revisions."""
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
    # Application Auto Scaling keeps a deleted service's scalable target and policies.
    for svc_name in cfg.services:
        if scaling is None or not render_autoscaling.scaled(cfg, svc_name, name) or \
                render_ecs.service_name(cfg, svc_name, name) not in report.services_deleted:
            continue
        rid = ecs_autoscaling.remove(scaling, cfg, svc_name, name)
        if rid:
            report.others_deleted.append(f"scalable target {rid} and its scaling policies")
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


def live_previews(ecs: BotoClient, cfg: ResolvedConfig) -> list[LivePreview]:
    """The environment's preview copies with live (not INACTIVE) services: those tagged with this
    app, this environment and a deployctl:preview name, whatever their names say."""
    cluster = cfg.environment.cluster
    names = ecs_gateway.service_names(ecs, cluster)
    copies: dict[str, list[PreviewService]] = {}
    running: dict[str, set[str]] = {}
    for i in range(0, len(names), 10):  # DescribeServices takes at most 10 services
        for state in ecs_gateway.describe_services(ecs, cluster, names[i:i + 10], tags=True):
            name = state.tags.get(preview.PREVIEW_TAG)
            if (not name or state.status == "INACTIVE" or state.tags.get(preview.APP_TAG, cfg.app) != cfg.app
                    or state.tags.get(preview.ENV_TAG) != cfg.env_name):
                continue
            primary = state.primary
            arn = (primary.task_definition if primary else "") or state.task_definition
            copies.setdefault(name, []).append(PreviewService(
                service=state.name, task_definition=arn.rsplit("/", 1)[-1],
                rollout_state=(primary.rollout_state or None) if primary else None,
                running=primary.running if primary else state.running,
                desired=primary.desired if primary else state.desired))
            running.setdefault(name, set()).add(arn)
    return [LivePreview(name=name, release=_release_of(ecs, running[name]),
                        services=tuple(sorted(found, key=lambda s: s.service)))
            for name, found in sorted(copies.items())]


def _release_of(ecs: BotoClient, arns: set[str]) -> str | None:
    """The newest deployctl release among the revisions `arns` (by its id: they start with the
    UTC second they were made)."""
    found = []
    for arn in sorted(a for a in arns if a):
        rev = releases.revision_from(ecs_gateway.describe_task_definition(ecs, arn))
        if rev is not None and rt.parse(rev.tags).release:
            found.append(str(rt.parse(rev.tags).release))
    return max(found, default=None)

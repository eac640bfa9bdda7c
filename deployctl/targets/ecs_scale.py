"""ECS calls of `deployctl scale`: read the services, set a desired count, record it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployctl import releases_tags as rt
from deployctl import scale_record
from deployctl.adapters import ecs_gateway
from deployctl.adapters.aws import BotoClient
from deployctl.adapters.ecs_gateway import ServiceState
from deployctl.render import ecs as render

if TYPE_CHECKING:
    from deployctl.config.model import ResolvedConfig


def read(ecs: BotoClient, cfg: ResolvedConfig) -> dict[str, ServiceState | None]:
    """deploy.yaml name → what DescribeServices says of it, tags included (None: missing or INACTIVE)."""
    names = {render.service_name(cfg, name): name for name in cfg.services}
    out: dict[str, ServiceState | None] = dict.fromkeys(cfg.services)
    listed = list(names)
    for i in range(0, len(listed), 10):  # DescribeServices takes at most 10
        for svc in ecs_gateway.describe_services(ecs, cfg.environment.cluster, listed[i:i + 10], tags=True):
            if svc.status != "INACTIVE" and svc.name in names:
                out[names[svc.name]] = svc
    return out


def set_count(ecs: BotoClient, cfg: ResolvedConfig, service: str, count: int) -> None:
    """UpdateService with the desired count only: nothing else of the service changes."""
    ecs.update_service(cluster=cfg.environment.cluster, service=render.service_name(cfg, service),
                       desiredCount=count)


def record(ecs: BotoClient, cfg: ResolvedConfig, service: str, live: ServiceState, *, at: str, before: int,
           after: int, who: str) -> None:
    tags = scale_record.record_tags(app=cfg.app, env=cfg.env_name, service=service,
                                    tags=live.tags, at=at, before=before, after=after, who=who)
    ecs.tag_resource(resourceArn=live.arn, tags=rt.to_list(tags))


def events(ecs: BotoClient, cfg: ResolvedConfig) -> list[scale_record.ScaleEvent]:
    out: list[scale_record.ScaleEvent] = []
    for name, live in read(ecs, cfg).items():
        if live is not None:
            out += scale_record.events(name, live.tags)
    return out

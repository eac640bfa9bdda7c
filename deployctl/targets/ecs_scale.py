"""ECS calls of `deployctl scale`: read the services, set a desired count, record it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deployctl import releases_tags as rt
from deployctl import scale_record
from deployctl.render import ecs as render

if TYPE_CHECKING:
    from deployctl.config.model import ResolvedConfig


def read(ecs: Any, cfg: ResolvedConfig) -> dict[str, dict[str, Any] | None]:
    """deploy.yaml name → DescribeServices entry with its tags (None: missing or INACTIVE)."""
    names = {render.service_name(cfg, name): name for name in cfg.services}
    out: dict[str, dict[str, Any] | None] = dict.fromkeys(cfg.services)
    listed = list(names)
    for i in range(0, len(listed), 10):  # DescribeServices takes at most 10
        resp = ecs.describe_services(cluster=cfg.environment.cluster, services=listed[i:i + 10], include=["TAGS"])
        for svc in resp.get("services", []):
            if svc.get("status") != "INACTIVE" and svc.get("serviceName") in names:
                out[names[svc["serviceName"]]] = dict(svc)
    return out


def set_count(ecs: Any, cfg: ResolvedConfig, service: str, count: int) -> None:
    """UpdateService with the desired count only: nothing else of the service changes."""
    ecs.update_service(cluster=cfg.environment.cluster, service=render.service_name(cfg, service),
                       desiredCount=count)


def record(ecs: Any, cfg: ResolvedConfig, service: str, live: Mapping[str, Any], *, at: str, before: int,
           after: int, who: str) -> None:
    tags = scale_record.record_tags(app=cfg.app, env=cfg.env_name, service=service,
                                    tags=rt.to_dict(live.get("tags")), at=at, before=before, after=after, who=who)
    ecs.tag_resource(resourceArn=str(live["serviceArn"]), tags=rt.to_list(tags))


def events(ecs: Any, cfg: ResolvedConfig) -> list[scale_record.ScaleEvent]:
    out: list[scale_record.ScaleEvent] = []
    for name, live in read(ecs, cfg).items():
        if live is not None:
            out += scale_record.events(name, rt.to_dict(live.get("tags")))
    return out

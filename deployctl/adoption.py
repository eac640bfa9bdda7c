"""Adopting a service deployctl did not create: the revision it ran before becomes a release. Pure.

Release history is read from task-definition tags (deployctl.releases), so a service made by
hand or by another tool has no release before deployctl's first deploy, and `rollback` right
after it would find nothing to return to. The first deploy therefore records the revision that
was live as an ordinary succeeded release (the same tags every release carries; its detail says
it was adopted): on that revision itself when it is in the service's family, else on a copy of
it registered in that family (release history is read per family).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from deployctl import releases_tags as rt
from deployctl.adapters.ecs_gateway import TaskDefinition
from deployctl.render.ecs import TAG_PREFIX

DETAIL = "live before deployctl's first deploy of this service (adopted)"

# Set by ECS on a revision, or describing it: never part of a RegisterTaskDefinition request.
_READ_ONLY = frozenset({"taskDefinitionArn", "revision", "status", "registeredAt", "registeredBy",
                        "deregisteredAt", "requiresAttributes", "compatibilities", "tags"})


def needs_record(td: TaskDefinition) -> bool:
    """True for a revision no deployctl release owns (no release tag)."""
    return not rt.parse(td.tags).release


def _registered(td: TaskDefinition) -> datetime | None:
    when = td.registered
    if when is None:
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def release_id(deploy_release: str, started_at: datetime) -> str:
    """One adoption release per deploy, for every service it adopts (so `rollback` returns them
    all together): named like any release, from the deploy's time and nonce, without a sha."""
    return rt.new_release_id(now=started_at, git_sha=None, nonce=deploy_release.rsplit("-", 1)[-1])


def release_tags(td: TaskDefinition, *, release: str, app: str, env: str, service: str,
                 now: datetime) -> dict[str, str]:
    """The tags that make a described revision a succeeded release of app/env/service. It
    started when it was registered; when ECS does not say, at `now` (the deploy's start: the
    adopted release must sort before the deploy's own)."""
    when = _registered(td) or now
    image = td.containers[0].image if td.containers else ""
    tags = {
        rt.RELEASE: release,
        TAG_PREFIX + "app": app,
        TAG_PREFIX + "env": env,
        TAG_PREFIX + "service": service,
        rt.ACTOR: rt.tag_value(td.registered_by or "unknown"),
        rt.STARTED_AT: rt.iso(when),
        rt.FINISHED_AT: rt.iso(when),
        rt.OUTCOME: rt.SUCCEEDED,
        rt.DETAIL: rt.tag_value(DETAIL),
    }
    if "@" in image:
        tags[TAG_PREFIX + "image-digest"] = rt.tag_value(image.rsplit("@", 1)[1])
    return tags


def copy_request(described: TaskDefinition, *, family: str, tags: Mapping[str, str]) -> dict[str, Any]:
    """RegisterTaskDefinition request for the described revision, as it is, in `family`."""
    td = {k: v for k, v in described.definition.items() if k not in _READ_ONLY}
    td["family"] = family
    own = {k: v for k, v in described.tags.items() if not k.startswith("aws:")}
    td["tags"] = rt.to_list({**own, **tags})
    return td

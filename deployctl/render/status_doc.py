"""deployctl.status/v1: the one shape `status --json` prints for every target. Pure.

Keys are only ever added; a key that does not apply to a target is present with null
(docs/cli.md, "--json output").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# deployctl.status/v1: one shape for every target (README, "--json output"). Keys are only ever
# added; a key that does not apply to a target is present with null.
STATUS_KEYS = ("schema", "app", "env", "target", "cluster", "settled", "ok", "current", "services")
STATUS_CURRENT_KEYS = ("id", "outcome", "kind", "git_sha", "image_digest", "started_at", "finished_at")
STATUS_SERVICE_KEYS = (
    # every target
    "service", "exists", "release", "outcome", "image_digest", "image", "git_sha", "running", "desired",
    "healthy", "rolled_back",
    # ECS only (null for the local Docker target)
    "ecs_service", "task_definition", "revision", "pending", "rollout_state", "rollout_reason", "deployments",
    "targets", "events", "stopped_by_cost_cap",
    # local Docker target only (null for ECS)
    "url", "containers",
)


def _only(keys: tuple[str, ...], fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(keys)
    if unknown:  # a programming error: the schema is the tuple above
        raise ValueError(f"not in deployctl.status/v1: {', '.join(sorted(unknown))}")
    return {k: fields.get(k) for k in keys}


def status_service_doc(**fields: Any) -> dict[str, Any]:
    """One entry of `services` in deployctl.status/v1, every key present (null when not given)."""
    return _only(STATUS_SERVICE_KEYS, fields)


def status_doc(**fields: Any) -> dict[str, Any]:
    return {**_only(STATUS_KEYS, fields), "schema": "deployctl.status/v1"}


def status_current_doc(**fields: Any) -> dict[str, Any]:
    return _only(STATUS_CURRENT_KEYS, fields)


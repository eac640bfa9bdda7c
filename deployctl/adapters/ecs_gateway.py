"""Typed views of ECS DescribeServices answers: the one place that reads their dict shape.

Everything above the adapters (the rollout watcher, diagnosis, preflight, the ECS target)
asks a `ServiceState` for its PRIMARY deployment, counts and events instead of walking
response dicts. The types live here, in the bottom layer, because the adapters build them
and every layer above may import downwards; the module itself is pure (no boto3), so tests
build states from recorded or hand-written answers with `ServiceState.from_api`.

Shapes: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Service.html,
API_Deployment.html and API_ServiceEvent.html.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

# A DescribeServices entry as boto3 returns it (only ever read in this module).
ApiDict = Mapping[str, Any]

PRIMARY = "PRIMARY"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
IN_PROGRESS = "IN_PROGRESS"


def timestamp(value: object) -> float:
    """An API time (datetime from boto3; epoch seconds or ISO 8601 text in JSON recordings) as
    epoch seconds; 0.0 when absent or unreadable (sorts first)."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return 0.0
    return 0.0


def _count(d: ApiDict, key: str) -> int:
    return int(d.get(key) or 0)


def _text(d: ApiDict, key: str) -> str:
    value = d.get(key)
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Deployment:
    """One entry of a service's `deployments`."""

    id: str
    status: str  # PRIMARY | ACTIVE | INACTIVE
    rollout_state: str = ""  # IN_PROGRESS | COMPLETED | FAILED; "" when ECS does not say
    reason: str = ""  # rolloutStateReason
    task_definition: str = ""
    desired: int = 0
    running: int = 0
    pending: int = 0
    failed_tasks: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0

    @classmethod
    def from_api(cls, d: ApiDict) -> Deployment:
        return cls(id=_text(d, "id"), status=_text(d, "status"), rollout_state=_text(d, "rolloutState"),
                   reason=_text(d, "rolloutStateReason"), task_definition=_text(d, "taskDefinition"),
                   desired=_count(d, "desiredCount"), running=_count(d, "runningCount"),
                   pending=_count(d, "pendingCount"), failed_tasks=_count(d, "failedTasks"),
                   created_at=timestamp(d.get("createdAt")), updated_at=timestamp(d.get("updatedAt")))

    @property
    def is_primary(self) -> bool:
        return self.status == PRIMARY

    def counts_text(self) -> str:
        return (f"running {self.running}/{self.desired}, pending {self.pending}, "
                f"failed {self.failed_tasks}")


@dataclass(frozen=True)
class ServiceEvent:
    """One service event (newest first in the API; `created_at` in epoch seconds)."""

    id: str
    message: str
    created_at: float = 0.0

    @classmethod
    def from_api(cls, e: ApiDict) -> ServiceEvent:
        return cls(id=_text(e, "id"), message=_text(e, "message"), created_at=timestamp(e.get("createdAt")))


@dataclass(frozen=True)
class LoadBalancer:
    target_group_arn: str
    container_name: str = ""
    container_port: int = 0


@dataclass(frozen=True)
class ServiceState:
    """What one DescribeServices entry says about a service."""

    name: str
    status: str  # ACTIVE | DRAINING | INACTIVE
    desired: int = 0
    running: int = 0
    pending: int = 0
    task_definition: str = ""
    deployments: tuple[Deployment, ...] = ()
    events: tuple[ServiceEvent, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    load_balancers: tuple[LoadBalancer, ...] = ()
    # The circuit breaker or the deployment alarms are set to roll a failed deployment back.
    rollback_configured: bool = False

    @classmethod
    def from_api(cls, svc: ApiDict) -> ServiceState:
        conf = svc.get("deploymentConfiguration") or {}
        breaker = conf.get("deploymentCircuitBreaker") or {}
        alarms = conf.get("alarms") or {}
        return cls(
            name=_text(svc, "serviceName"), status=_text(svc, "status"),
            desired=_count(svc, "desiredCount"), running=_count(svc, "runningCount"),
            pending=_count(svc, "pendingCount"), task_definition=_text(svc, "taskDefinition"),
            deployments=tuple(Deployment.from_api(d) for d in svc.get("deployments") or []),
            events=tuple(ServiceEvent.from_api(e) for e in svc.get("events") or []),
            tags={str(t["key"]): str(t.get("value", "")) for t in svc.get("tags") or [] if t.get("key")},
            load_balancers=tuple(
                LoadBalancer(str(lb["targetGroupArn"]), _text(lb, "containerName"), _count(lb, "containerPort"))
                for lb in svc.get("loadBalancers") or [] if lb.get("targetGroupArn")),
            rollback_configured=bool((breaker.get("enable") and breaker.get("rollback"))
                                     or (alarms.get("enable") and alarms.get("rollback"))),
        )

    @property
    def primary(self) -> Deployment | None:
        """The deployment ECS is rolling out (or has rolled out): there is at most one."""
        return next((d for d in self.deployments if d.is_primary), None)

    def deployment(self, deployment_id: str) -> Deployment | None:
        return next((d for d in self.deployments if d.id == deployment_id), None)

    def others(self, deployment: Deployment) -> list[Deployment]:
        """Every deployment but `deployment` (old ones still draining, or a newer one)."""
        return [d for d in self.deployments if d is not deployment]

    @property
    def deployment_ids(self) -> set[str]:
        return {d.id for d in self.deployments}

    @property
    def event_ids(self) -> set[str]:
        return {e.id for e in self.events}

    @property
    def target_groups(self) -> list[str]:
        return [lb.target_group_arn for lb in self.load_balancers]

    @property
    def gone(self) -> bool:
        """Deleted or being deleted: no deployment will finish."""
        return self.status in ("INACTIVE", "DRAINING")


class _EcsClient(Protocol):
    def describe_services(self, **kwargs: Any) -> ApiDict: ...


def describe_services(ecs: _EcsClient, cluster: str, names: list[str], *,
                      tags: bool = False) -> list[ServiceState]:
    """DescribeServices for up to 10 names (the API's limit); services ECS reports MISSING are
    left out."""
    kwargs: dict[str, Any] = {"cluster": cluster, "services": names}
    if tags:
        kwargs["include"] = ["TAGS"]
    resp = ecs.describe_services(**kwargs)
    return [ServiceState.from_api(s) for s in resp.get("services", [])]

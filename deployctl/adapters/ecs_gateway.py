"""Typed views of ECS DescribeServices answers: the one place that reads their dict shape.

Everything above the adapters (the rollout watcher, diagnosis, preflight, the ECS target)
asks a `ServiceState` for its PRIMARY deployment, counts and events instead of walking
response dicts. The types live here, in the bottom layer, because the adapters build them
and every layer above may import downwards. The reads take a client (boto3's, a `Bounded` one
or a test's); the types are pure, so tests build them from recorded or hand-written answers
with `ServiceState.from_api`, `Task.from_api` and `TaskDefinition.from_api`.

Tasks (`Task`, DescribeTasks) and task-definition revisions (`TaskDefinition`,
DescribeTaskDefinition) are typed here too, with the reads that return them: callers above the
adapters never walk an ECS answer.

Shapes: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Service.html,
API_Deployment.html, API_ServiceEvent.html, API_Task.html, API_Container.html and
API_TaskDefinition.html.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from deployctl.adapters.logs import AwsLogs, container_logs

if TYPE_CHECKING:  # boto3 only where AWS is called: the views are read on paths that never call it
    from deployctl.adapters.aws import BotoClient

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


_PLACEMENT = ("networkConfiguration", "launchType", "capacityProviderStrategy", "platformVersion")


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
    arn: str = ""
    # Where its tasks run (networkConfiguration, launchType, capacityProviderStrategy,
    # platformVersion) in the API's own shape: a one-off task copies them into RunTask as they are.
    placement: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # The whole entry: what an UpdateService request is compared with setting by setting
    # (deployctl.service_diff), and the settings a failed update restores.
    settings: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

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
            tags=tags_of(svc.get("tags")),
            load_balancers=tuple(
                LoadBalancer(str(lb["targetGroupArn"]), _text(lb, "containerName"), _count(lb, "containerPort"))
                for lb in svc.get("loadBalancers") or [] if lb.get("targetGroupArn")),
            rollback_configured=bool((breaker.get("enable") and breaker.get("rollback"))
                                     or (alarms.get("enable") and alarms.get("rollback"))),
            arn=_text(svc, "serviceArn"),
            placement={k: svc[k] for k in _PLACEMENT if svc.get(k) not in (None, "", [], {})},
            settings=dict(svc),
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


def tags_of(raw: object) -> dict[str, str]:
    """An AWS tag list (`[{"key", "value"}]` in ECS, `[{"Key", "Value"}]` elsewhere) as a dict."""
    out: dict[str, str] = {}
    for t in raw if isinstance(raw, list | tuple) else []:
        if not isinstance(t, Mapping):
            continue
        key = t.get("key", t.get("Key"))
        if key:
            out[str(key)] = str(t.get("value", t.get("Value", "")))
    return out


# --- tasks (DescribeTasks) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    """One container of a task: how it ended (exit code, reason, health) and its addresses."""

    name: str
    exit_code: int | None = None
    reason: str = ""
    health_status: str = ""  # HEALTHY | UNHEALTHY | UNKNOWN; "" when no health check
    ips: tuple[str, ...] = ()  # privateIpv4Address of its network interfaces

    @classmethod
    def from_api(cls, c: ApiDict) -> Container:
        code = c.get("exitCode")
        return cls(name=_text(c, "name"), exit_code=int(code) if code is not None else None,
                   reason=_text(c, "reason"), health_status=_text(c, "healthStatus"),
                   ips=tuple(str(n["privateIpv4Address"]) for n in c.get("networkInterfaces") or []
                             if n.get("privateIpv4Address")))


@dataclass(frozen=True)
class Task:
    """One DescribeTasks entry: what a stopped task says about why it stopped, and (for target
    health) the awsvpc addresses a target group knows it by."""

    arn: str
    last_status: str = ""  # PROVISIONING … RUNNING … STOPPED
    task_definition: str = ""
    stop_code: str = ""
    stopped_reason: str = ""
    stopped_at: float = 0.0
    health_status: str = ""
    containers: tuple[Container, ...] = ()
    eni_ips: tuple[str, ...] = ()  # privateIPv4Address of its ElasticNetworkInterface attachment

    @classmethod
    def from_api(cls, t: ApiDict) -> Task:
        eni = [str(d["value"]) for att in t.get("attachments") or [] if att.get("type") == "ElasticNetworkInterface"
               for d in att.get("details") or [] if d.get("name") == "privateIPv4Address" and d.get("value")]
        return cls(arn=_text(t, "taskArn"), last_status=_text(t, "lastStatus"),
                   task_definition=_text(t, "taskDefinitionArn"), stop_code=_text(t, "stopCode"),
                   stopped_reason=_text(t, "stoppedReason"), stopped_at=timestamp(t.get("stoppedAt")),
                   health_status=_text(t, "healthStatus"),
                   containers=tuple(Container.from_api(c) for c in t.get("containers") or []),
                   eni_ips=tuple(eni))

    @property
    def stopped(self) -> bool:
        return self.last_status == "STOPPED"

    @property
    def ips(self) -> set[str]:
        """Its private IPv4 addresses: the target ids of an `ip` target group."""
        return {*self.eni_ips, *(ip for c in self.containers for ip in c.ips)}

    def container(self, name: str) -> Container | None:
        return next((c for c in self.containers if c.name == name), None)


# --- task definitions (DescribeTaskDefinition) -------------------------------------------------


@dataclass(frozen=True)
class ContainerDefinition:
    name: str
    image: str = ""
    essential: bool = True


@dataclass(frozen=True)
class TaskDefinition:
    """One task-definition revision with its tags.

    `definition` is the revision as ECS holds it: deployctl compares it with one it rendered and
    builds a RegisterTaskDefinition request from it (both the render layer's job); everything
    else reads the typed fields.
    """

    arn: str
    family: str = ""
    revision: int = 0
    status: str = ""  # ACTIVE | INACTIVE | DELETE_IN_PROGRESS
    registered_at: str = ""  # ISO 8601 as boto3 gives it (local time zone); "" when absent
    registered: datetime | None = None  # the same time, when the answer came from boto3 (not a recording)
    registered_by: str = ""
    containers: tuple[ContainerDefinition, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    logs: Mapping[str, AwsLogs] = field(default_factory=dict)  # container → where it logs (awslogs)
    definition: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, described: ApiDict) -> TaskDefinition:
        """From a DescribeTaskDefinition answer (`taskDefinition` and, with include=["TAGS"], `tags`)."""
        td: ApiDict = described.get("taskDefinition") or {}
        registered = td.get("registeredAt")
        return cls(
            arn=_text(td, "taskDefinitionArn"), family=_text(td, "family"), revision=_count(td, "revision"),
            status=_text(td, "status"),
            registered_at=registered.isoformat() if isinstance(registered, datetime) else str(registered or ""),
            registered=registered if isinstance(registered, datetime) else None,
            registered_by=_text(td, "registeredBy"),
            containers=tuple(ContainerDefinition(_text(c, "name"), _text(c, "image"), bool(c.get("essential", True)))
                             for c in td.get("containerDefinitions") or []),
            tags=tags_of(described.get("tags")), logs=container_logs(td), definition=dict(td))

    def container(self, name: str) -> ContainerDefinition | None:
        return next((c for c in self.containers if c.name == name), None)

    @property
    def essential(self) -> list[str]:
        return [c.name for c in self.containers if c.essential]


def _in(cluster: str | None) -> dict[str, Any]:
    """The `cluster` parameter: left out when None, which ECS reads as the `default` cluster."""
    return {"cluster": cluster} if cluster else {}


def describe_services(ecs: BotoClient, cluster: str | None, names: Sequence[str], *,
                      tags: bool = False) -> list[ServiceState]:
    """DescribeServices for up to 10 names (the API's limit); services ECS reports MISSING are
    left out."""
    kwargs: dict[str, Any] = {**_in(cluster), "services": list(names)}
    if tags:
        kwargs["include"] = ["TAGS"]
    resp = ecs.describe_services(**kwargs)
    return [ServiceState.from_api(s) for s in resp.get("services", [])]


def describe_service(ecs: BotoClient, cluster: str | None, service: str) -> ServiceState | None:
    """One service with its tags, or None when it does not exist (MISSING or INACTIVE)."""
    return next((s for s in describe_services(ecs, cluster, [service], tags=True) if s.status != "INACTIVE"), None)


def create_service(ecs: BotoClient, request: Mapping[str, Any]) -> ServiceState:
    """CreateService (a rendered request); the service as ECS answered."""
    return ServiceState.from_api(ecs.create_service(**request)["service"])


def update_service(ecs: BotoClient, request: Mapping[str, Any]) -> ServiceState:
    """UpdateService (a rendered request); the service as ECS answered, its new deployment included."""
    return ServiceState.from_api(ecs.update_service(**request)["service"])


def register_task_definition(ecs: BotoClient, request: Mapping[str, Any]) -> str:
    """RegisterTaskDefinition (a rendered request); the new revision's ARN."""
    return str(ecs.register_task_definition(**request)["taskDefinition"]["taskDefinitionArn"])


def service_names(ecs: BotoClient, cluster: str | None) -> list[str]:
    """The names of every service of the cluster (ListServices, all pages)."""
    names: list[str] = []
    for page in ecs.get_paginator("list_services").paginate(**_in(cluster)):
        names += [arn.rsplit("/", 1)[-1] for arn in page.get("serviceArns", [])]
    return names


def task_arns(ecs: BotoClient, cluster: str | None, *, service: str | None = None, started_by: str | None = None,
              desired_status: str | None = None, first_page: bool = False) -> list[str]:
    """ListTasks: every page, or (`first_page`, one call, as the rollout watcher counts its calls)
    the first 100 ARNs."""
    kwargs: dict[str, Any] = _in(cluster)
    if service:
        kwargs["serviceName"] = service
    if started_by:
        kwargs["startedBy"] = started_by
    if desired_status:
        kwargs["desiredStatus"] = desired_status
    if first_page:
        return [str(a) for a in ecs.list_tasks(maxResults=100, **kwargs).get("taskArns", [])]
    arns: list[str] = []
    for page in ecs.get_paginator("list_tasks").paginate(**kwargs):
        arns += [str(a) for a in page.get("taskArns", [])]
    return arns


def describe_tasks(ecs: BotoClient, cluster: str | None, arns: Sequence[str]) -> list[Task]:
    """DescribeTasks, 100 ARNs a call (the API's limit)."""
    out: list[Task] = []
    for chunk in _chunks(arns, 100):
        out += [Task.from_api(t) for t in ecs.describe_tasks(**_in(cluster), tasks=chunk).get("tasks") or []]
    return out


def run_task(ecs: BotoClient, request: Mapping[str, Any]) -> tuple[str | None, str]:
    """RunTask (a rendered request, one task): (its ARN, "") or, when ECS started none, (None,
    why: each `failures[]` entry's reason and detail)."""
    resp = ecs.run_task(**request)
    tasks = resp.get("tasks") or []
    if tasks:
        return str(tasks[0]["taskArn"]), ""
    why = "; ".join(f"{f.get('reason', '?')}{': ' + f['detail'] if f.get('detail') else ''}"
                    for f in resp.get("failures") or [])
    return None, why


def describe_task(ecs: BotoClient, cluster: str | None, arn: str) -> Task | None:
    found = describe_tasks(ecs, cluster, [arn])
    return found[0] if found else None


def describe_task_definition(ecs: BotoClient, ref: str, *, tags: bool = True) -> TaskDefinition:
    """A revision by ARN or `family[:revision]` (a family alone: its newest ACTIVE revision)."""
    kwargs: dict[str, Any] = {"taskDefinition": ref}
    if tags:
        kwargs["include"] = ["TAGS"]
    return TaskDefinition.from_api(ecs.describe_task_definition(**kwargs))


def task_definition_arns(ecs: BotoClient, family: str, *, newest_first: bool = False) -> Iterator[str]:
    """The ACTIVE revisions of `family` (ListTaskDefinitions familyPrefix: a prefix match, so a
    caller checks the family of what it describes), page by page."""
    kwargs: dict[str, Any] = {"familyPrefix": family, "status": "ACTIVE"}
    if newest_first:
        kwargs["sort"] = "DESC"
    for page in ecs.get_paginator("list_task_definitions").paginate(**kwargs):
        yield from (str(a) for a in page.get("taskDefinitionArns", []))


def task_definition_families(ecs: BotoClient, prefix: str) -> list[str]:
    """The families with an ACTIVE revision whose names start with `prefix`."""
    out: list[str] = []
    for page in ecs.get_paginator("list_task_definition_families").paginate(familyPrefix=prefix, status="ACTIVE"):
        out += [str(f) for f in page.get("families", [])]
    return out


def resource_tags(ecs: BotoClient, arn: str) -> dict[str, str]:
    """The tags ECS holds on a resource now (ListTagsForResource)."""
    return tags_of(ecs.list_tags_for_resource(resourceArn=arn).get("tags"))


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i:i + size])

"""Patch points that connect the rollout SIMULATION (``ecs_rollout``) to moto 5.2.1.

Patched (class attributes, restored by ``uninstall``):
- ``moto.ecs.responses.EC2ContainerServiceResponse``: CreateService (keeps
  deploymentConfiguration, healthCheckGracePeriodSeconds, capacityProviderStrategy, which moto
  drops, and starts the first deployment), UpdateService (new deployment on a new task definition
  / forceNewDeployment / network, platform, capacity or load-balancer change; count-only updates
  just rescale), DeleteService, DescribeServices, ListTasks, DescribeTasks, StopTask (simulated
  tasks are served next to moto's own RunTask tasks).
- ``moto.elbv2.models.ELBv2Backend.describe_target_health``: simulated targets of services whose
  loadBalancers name that target group.
- ``moto.cloudwatch.models.CloudWatchBackend.put_metric_alarm``: updating an existing alarm
  keeps its state, as CloudWatch does ("When you update an existing alarm, its state is left
  unchanged": https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html);
  moto replaces the alarm and with it the state.
- ``moto.moto_server.werkzeug_app.DomainDispatcherApplication.__call__`` (see ``api_hooks``):
  call log and throttling for every request.
All handlers run under the simulation's lock and first advance the simulated clock.

These patches replace moto's private handlers by name, so they are written for one moto line:
``SUPPORTED_MOTO`` (pyproject.toml pins the dev extra to it). ``install`` refuses any other
version with a message naming the range, rather than failing later in an unrelated assertion.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import api_hooks

if TYPE_CHECKING:
    from .ecs_rollout import RolloutSimulation, SimService, SimTask

# The moto versions these patches were written and checked against: [low, high).
SUPPORTED_MOTO = ((5, 2, 1), (5, 3))

_ACTIVE: RolloutSimulation | None = None
_ORIGINALS: list[tuple[Any, str, Any]] = []


def active() -> RolloutSimulation | None:
    return _ACTIVE


def check_moto_version(version: str) -> None:
    """Raise if ``version`` (moto's, as installed) is outside ``SUPPORTED_MOTO``."""
    low, high = SUPPORTED_MOTO
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:3])
    if not low <= parts < high:
        wanted = f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"
        raise RuntimeError(
            f"the ECS rollout simulation patches moto internals and supports moto{wanted}, but moto "
            f"{version} is installed; install the pinned dev extra (pip install -e '.[dev]') or "
            f"port tests/simulation/moto_patches.py to this moto and widen SUPPORTED_MOTO"
        )


def install(sim: RolloutSimulation) -> None:
    global _ACTIVE
    check_moto_version(importlib.metadata.version("moto"))
    if _ACTIVE is not None and _ACTIVE is not sim:
        raise RuntimeError("another RolloutSimulation is already installed")
    _ACTIVE = sim
    if _ORIGINALS:
        return
    from moto.cloudwatch.models import CloudWatchBackend
    from moto.ecs.responses import EC2ContainerServiceResponse as R
    from moto.elbv2.models import ELBv2Backend
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    _patch(R, "create_service", _create_service)
    _patch(R, "update_service", _update_service)
    _patch(R, "delete_service", _delete_service)
    _patch(R, "describe_services", _describe_services)
    _patch(R, "list_tasks", _list_tasks)
    _patch(R, "describe_tasks", _describe_tasks)
    _patch(R, "stop_task", _stop_task)
    _patch(ELBv2Backend, "describe_target_health", _describe_target_health)
    _patch(CloudWatchBackend, "put_metric_alarm", _put_metric_alarm)
    _patch(DomainDispatcherApplication, "__call__", api_hooks.make_wsgi_hook(active))


def add_registered_at() -> None:
    """Task definitions carry registeredAt, as ECS returns it (millisecond precision) and moto 5.2
    does not. Without it deployctl orders a release by its start tag, to the second, and a
    rollback earlier in that same second came out newer than the release after it."""
    from moto.ecs.models import TaskDefinition

    original = TaskDefinition.__init__
    if getattr(original, "adds_registered_at", False):
        return

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.registered_at = datetime.now(UTC)  # the serializer answers registeredAt from it

    init.adds_registered_at = True  # type: ignore[attr-defined]
    TaskDefinition.__init__ = init  # type: ignore[method-assign]


def uninstall(sim: RolloutSimulation) -> None:
    global _ACTIVE
    if _ACTIVE is not sim:
        return
    while _ORIGINALS:
        owner, name, original = _ORIGINALS.pop()
        setattr(owner, name, original)
    _ACTIVE = None


def _patch(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    original = owner.__dict__[name]
    _ORIGINALS.append((owner, name, original))
    setattr(owner, name, make(original))


def _wrapper(handler: Callable[..., Any]) -> Callable[[Any], Any]:
    """Turn ``handler(sim, original, self, ...)`` into a patch factory; the patched method is a
    plain function (moto finds actions with inspect.isfunction) that falls through to moto's
    own code when no simulation is active."""

    def make(original: Any) -> Any:
        @functools.wraps(original)
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            sim = _ACTIVE
            if sim is None:
                return original(self, *args, **kwargs)
            with sim.lock:
                return handler(sim, original, self, *args, **kwargs)

        return method

    return make


def _cluster_name(response: Any) -> str:
    return str(response._get_param("cluster") or "default").split("/")[-1]


def _normalise_dc(given: dict[str, Any] | None, base: dict[str, Any] | None = None) -> dict[str, Any]:
    from .ecs_rollout import DEFAULT_DEPLOYMENT_CONFIGURATION

    out = copy.deepcopy(base or DEFAULT_DEPLOYMENT_CONFIGURATION)
    for key, value in (given or {}).items():
        if value is not None:
            out[key] = copy.deepcopy(value)
    breaker = out.setdefault("deploymentCircuitBreaker", {"enable": False, "rollback": False})
    breaker.setdefault("enable", False)
    breaker.setdefault("rollback", False)
    return out


# ---------------------------------------------------------------- ECS


@_wrapper
def _create_service(sim: RolloutSimulation, original: Any, self: Any) -> Any:
    sim.advance()
    result = original(self)
    service = result.result["service"]
    service.deployment_configuration = _normalise_dc(self._get_param("deploymentConfiguration"))
    grace = self._get_param("healthCheckGracePeriodSeconds")
    if grace is not None or service.load_balancers:
        service.health_check_grace_period_seconds = int(grace or 0)
    strategy = self._get_param("capacityProviderStrategy")
    if strategy:
        service.capacity_provider_strategy = strategy
        if not self._get_param("launchType"):
            service.launch_type = None
    for param, attr in (
        ("enableExecuteCommand", "enable_execute_command"),
        ("enableECSManagedTags", "enable_ecs_managed_tags"),
    ):
        value = self._get_param(param)
        if value is not None:
            setattr(service, attr, value)
    if (service.deployment_controller or {}).get("type", "ECS") == "ECS":
        sim.create(self.current_account, self.region, self.ecs_backend, service)
    return result


_DEPLOYMENT_TRIGGERS = {
    "networkConfiguration": "network_configuration",
    "platformVersion": "platform_version",
    "capacityProviderStrategy": "capacity_provider_strategy",
    "loadBalancers": "load_balancers",
}


@_wrapper
def _update_service(sim: RolloutSimulation, original: Any, self: Any) -> Any:
    params = dict(self._get_params())
    cluster = _cluster_name(self)
    name = str(params.get("service", "")).split("/")[-1]
    backend = self.ecs_backend
    sim.advance()
    svc = sim.lookup(self.current_account, self.region, backend, cluster, name) if name else None
    before = {}
    old_dc = None
    if svc is not None:
        before = {attr: copy.deepcopy(getattr(svc.moto, attr, None)) for attr in _DEPLOYMENT_TRIGGERS.values()}
        old_dc = getattr(svc.moto, "deployment_configuration", None)
    result = original(self)
    service = result.result["service"]
    if svc is None or service is not svc.moto:
        return result
    if "deploymentConfiguration" in params:
        service.deployment_configuration = _normalise_dc(params["deploymentConfiguration"], old_dc)
    elif old_dc is not None:
        service.deployment_configuration = old_dc
    primary = svc.primary()
    now = sim.now()
    new_td = primary.task_definition if primary else service.task_definition
    if params.get("taskDefinition"):
        new_td = backend.describe_task_definition(params["taskDefinition"]).arn
    changed = primary is None or new_td != primary.task_definition or bool(params.get("forceNewDeployment"))
    for param, attr in _DEPLOYMENT_TRIGGERS.items():
        if param in params and params[param] != before.get(attr):
            changed = True
    if changed:
        svc.start_deployment(now, new_td, sim.next_scenario(svc.cluster, svc.name))
    else:
        svc.reconcile(now)
    svc.sync()
    return result


@_wrapper
def _delete_service(sim: RolloutSimulation, original: Any, self: Any) -> Any:
    sim.advance()
    result = original(self)
    service = result.result["service"]
    now = sim.now()
    for svc in sim.services.values():
        if svc.moto is service and not svc.deleted:
            primary = svc.primary()
            for task in list(svc.tasks.values()):
                reason = f"Scaling activity initiated by (deployment {primary.id if primary else task.deployment_id})"
                svc.stop(task, now, "ServiceSchedulerInitiated", reason)
            svc.advance(now)
            svc.deleted = True
            svc.sync()
            service.deployments = []
    return result


@_wrapper
def _describe_services(sim: RolloutSimulation, original: Any, self: Any) -> Any:
    cluster = _cluster_name(self)
    backend = self.ecs_backend
    for ref in self._get_param("services", []) or []:
        sim.lookup(self.current_account, self.region, backend, cluster, str(ref).split("/")[-1])
    sim.advance()
    return original(self)


def _sim_tasks(sim: RolloutSimulation, account: str, region: str, cluster: str) -> list[tuple[SimService, SimTask]]:
    out = []
    for (acct, reg, clus, _), svc in sim.services.items():
        if (acct, reg, clus) == (account, region, cluster):
            out.extend((svc, task) for task in svc.tasks.values())
    return sorted(out, key=lambda pair: pair[1].created_at)


@_wrapper
def _list_tasks(sim: RolloutSimulation, original: Any, self: Any) -> Any:
    from moto.core.responses import ActionResult

    sim.advance()
    backend = self.ecs_backend
    cluster_ref = self._get_param("cluster", "default")
    cluster = backend._get_cluster(cluster_ref).name  # raises ClusterNotFoundException like ECS
    service_name = self._get_param("serviceName")
    desired = self._get_param("desiredStatus") or "RUNNING"  # ECS default filter
    started_by = self._get_param("startedBy")
    family = self._get_param("family")
    launch_type = self._get_param("launchType")
    container_instance = self._get_param("containerInstance")
    arns: list[str] = []
    for task in backend.list_tasks(cluster_ref, container_instance, family, started_by, None, desired):
        if service_name and getattr(task, "group", None) != f"service:{service_name}":
            continue
        if launch_type and task.launch_type != launch_type:
            continue
        arns.append(task.task_arn)
    if not container_instance:
        for svc, task in _sim_tasks(sim, self.current_account, self.region, cluster):
            if service_name and service_name.split("/")[-1] != svc.name:
                continue
            if task.desired_status != desired:
                continue
            if started_by and task.deployment_id != started_by:
                continue
            if family and task.task_definition_arn.split("/")[-1].split(":")[0] != family:
                continue
            d = svc.deployment(task.deployment_id)
            if launch_type and (d is None or d.launch_type != launch_type):
                continue
            arns.append(task.arn)
    start = int(self._get_param("nextToken") or 0)
    limit = int(self._get_param("maxResults") or 100)
    page = arns[start : start + limit]
    out: dict[str, Any] = {"taskArns": page}
    if start + limit < len(arns):
        out["nextToken"] = str(start + limit)
    return ActionResult(out)


@_wrapper
def _describe_tasks(sim: RolloutSimulation, original: Any, self: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.ecs.exceptions import InvalidParameterException

    refs = [str(r) for r in (self._get_param("tasks", []) or [])]
    if not refs:
        return original(self)
    if len(refs) > 100:
        raise InvalidParameterException("Tasks cannot be more than 100.")
    sim.advance()
    backend = self.ecs_backend
    cluster = backend._get_cluster(self._get_param("cluster", "default")).name
    mine = {}
    for svc, task in _sim_tasks(sim, self.current_account, self.region, cluster):
        mine[task.arn] = (svc, task)
        mine[task.id] = (svc, task)
    rendered = []
    rest = []
    for ref in refs:
        if ref in mine:
            rendered.append(render_task(*mine[ref]))
        else:
            rest.append(ref)
    moto_tasks = list(backend.describe_tasks(cluster, rest)) if rest else []
    found = {t.task_arn for t in moto_tasks} | {t.task_arn.split("/")[-1] for t in moto_tasks}
    failures = [
        {"arn": ref if ref.startswith("arn:") else ref, "reason": "MISSING"} for ref in rest if ref not in found
    ]
    include = self._get_param("include", []) or []
    from moto.ecs.responses import DESCRIBE_TASKS_TAGS

    if "TAGS" in include:
        self._include_in_response(DESCRIBE_TASKS_TAGS)
    else:
        self._exclude_from_response(DESCRIBE_TASKS_TAGS)
    return ActionResult({"tasks": moto_tasks + rendered, "failures": failures})


@_wrapper
def _stop_task(sim: RolloutSimulation, original: Any, self: Any) -> Any:
    from moto.core.responses import ActionResult

    sim.advance()
    ref = str(self._get_param("task") or "")
    found = sim.find_task(ref) or sim.find_task(ref.split("/")[-1])
    if found is None:
        return original(self)
    svc, task = found
    now = sim.now()
    svc.stop(task, now, "UserInitiated", self._get_param("reason") or "Task stopped by user")
    svc.reconcile(now)
    svc.sync()
    return ActionResult({"task": render_task(svc, task)})


def render_task(svc: SimService, task: SimTask) -> dict[str, Any]:
    sim = svc.sim
    d = svc.deployment(task.deployment_id)
    td = svc.task_definition(task.task_definition_arn)
    definitions = td.container_definitions if td else [{"name": "app", "image": "", "essential": True}]
    if task.last_status in ("PROVISIONING", "PENDING"):
        container_status = "PENDING"
    elif task.last_status == "STOPPED":
        container_status = "STOPPED"
    else:
        container_status = "RUNNING"
    failing = next((c["name"] for c in definitions if c.get("essential", True)), definitions[0]["name"])
    containers = []
    for c in definitions:
        container: dict[str, Any] = {
            "containerArn": f"arn:aws:ecs:{svc.region}:{svc.account}:container/{svc.cluster}/{task.id}/{c['name']}",
            "taskArn": task.arn,
            "name": c["name"],
            "image": c.get("image"),
            "lastStatus": container_status,
            "networkInterfaces": [{"attachmentId": task.eni, "privateIpv4Address": task.ip}],
            "healthStatus": task.health_status if c.get("healthCheck") else "UNKNOWN",
            "cpu": str(c.get("cpu", 0)),
        }
        if c.get("memory") is not None:
            container["memory"] = str(c["memory"])
        if task.gone:
            if c["name"] == failing:
                if task.exit_code is not None:
                    container["exitCode"] = task.exit_code
                if task.container_reason:
                    container["reason"] = task.container_reason[:1024]
            elif task.started_at is not None:
                # ECS sent every container SIGTERM when it stopped the task; otherwise only the
                # failing one exited on its own and the others are shown as clean exits.
                container["exitCode"] = task.exit_code if task.signalled else 0
        containers.append(container)
    out: dict[str, Any] = {
        "taskArn": task.arn,
        "clusterArn": f"arn:aws:ecs:{svc.region}:{svc.account}:cluster/{svc.cluster}",
        "taskDefinitionArn": task.task_definition_arn,
        "lastStatus": task.last_status,
        "desiredStatus": task.desired_status,
        "group": f"service:{svc.name}",
        "startedBy": task.deployment_id,
        "createdAt": sim.wall_dt(task.created_at),
        "availabilityZone": f"{svc.region}a",
        "connectivity": "CONNECTED",
        "connectivityAt": sim.wall_dt(task.created_at),
        "healthStatus": task.health_status,
        "version": task.version,
        "containers": containers,
        "overrides": {"containerOverrides": [{"name": c["name"]} for c in definitions]},
        "attachments": [
            {
                "id": task.eni.replace("eni-", "attachment-"),
                "type": "ElasticNetworkInterface",
                "status": "DELETED" if task.gone else "ATTACHED",
                "details": [
                    {"name": "networkInterfaceId", "value": task.eni},
                    {"name": "privateIPv4Address", "value": task.ip},
                ],
            }
        ],
    }
    if td is not None:
        if getattr(td, "cpu", None):
            out["cpu"] = str(td.cpu)
        if getattr(td, "memory", None):
            out["memory"] = str(td.memory)
    if d is not None and d.capacity_provider_strategy:
        out["capacityProviderName"] = d.capacity_provider_strategy[0].get("capacityProvider")
    elif d is not None and d.launch_type:
        out["launchType"] = d.launch_type
    if d is not None and (d.launch_type == "FARGATE" or d.capacity_provider_strategy):
        out["platformVersion"] = d.platform_version or "1.4.0"
        out["platformFamily"] = "Linux"
    if task.started_at is not None:
        out["pullStartedAt"] = sim.wall_dt(task.created_at)
        out["pullStoppedAt"] = sim.wall_dt(task.started_at)
        out["startedAt"] = sim.wall_dt(task.started_at)
    if task.stopping_at is not None:
        out["stoppingAt"] = sim.wall_dt(task.stopping_at)
    if task.stopped_at is not None:
        out["stoppedAt"] = sim.wall_dt(task.stopped_at)
        out["executionStoppedAt"] = sim.wall_dt(task.stopped_at)
    if task.stop_code:
        out["stopCode"] = task.stop_code
    if task.stopped_reason:
        out["stoppedReason"] = task.stopped_reason
    return out


# ---------------------------------------------------------------- ELBv2


# ---------------------------------------------------------------- CloudWatch

_ALARM_STATE = ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp")


def _put_metric_alarm(original: Any) -> Any:
    @functools.wraps(original)
    def method(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        before = self.alarms.get(name)
        alarm = original(self, name, *args, **kwargs)
        if _ACTIVE is not None and before is not None:
            for attr in _ALARM_STATE:
                setattr(alarm, attr, getattr(before, attr))
        return alarm

    return method


# ---------------------------------------------------------------- ELBv2

_TARGET_TEXT = {
    "healthy": (None, None),
    "unhealthy": ("Target.ResponseCodeMismatch", "Health checks failed with these codes: [{codes}]"),
    "draining": ("Target.DeregistrationInProgress", "Target deregistration is in progress"),
}


@_wrapper
def _describe_target_health(
    sim: RolloutSimulation, original: Any, self: Any, target_group_arn: str, targets: list[dict[str, Any]]
) -> Any:
    from moto.elbv2.models import FakeHealthStatus

    sim.advance()
    users = [
        (svc, lb)
        for svc in sim.services.values()
        if (svc.account, svc.region) == (self.account_id, self.region_name) and not svc.deleted
        for lb in svc.load_balancers
        if lb["targetGroupArn"] == target_group_arn
    ]
    if not users:
        return original(self, target_group_arn, targets)
    registered = list(original(self, target_group_arn, []))  # validates the ARN; moto-registered targets
    health_port = self.target_groups[target_group_arn].health_check_port
    now = sim.now()
    for svc, lb in users:
        for task in sorted(svc.tasks.values(), key=lambda x: x.created_at):
            if task.target_state is None:
                continue
            port = str(lb.get("containerPort"))
            if task.target_state == "initial":
                started = task.started_at if task.started_at is not None else now
                if now < started + svc.scenario_of(task).healthy_s / 2:
                    reason, text = "Elb.RegistrationInProgress", "Target registration is in progress"
                else:
                    reason, text = "Elb.InitialHealthChecking", "Initial health checks in progress"
            else:
                reason, text = _TARGET_TEXT[task.target_state]
                if text:
                    text = text.format(codes=svc.scenario_of(task).health_codes)
            registered.append(FakeHealthStatus(task.ip, port, health_port, task.target_state, reason, text))
    if not targets:
        return registered
    out = []
    for wanted in targets:
        match = [
            h for h in registered if h.instance_id == wanted["Id"] and str(wanted.get("Port") or h.port) == str(h.port)
        ]
        out.extend(
            match
            or [
                FakeHealthStatus(
                    wanted["Id"],
                    str(wanted.get("Port", "")),
                    health_port,
                    "unused",
                    "Target.NotRegistered",
                    "Target is not registered to the target group",
                )
            ]
        )
    return out

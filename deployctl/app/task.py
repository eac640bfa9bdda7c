"""The `task run` use case: a one-off Fargate task from an environment's current release (or a
given one), with the same image digest, secrets, roles and network as the service.

The service's task definition is used as it is (no new revision): the live service's, or the
revision `--release` registered for that service; the command goes in as a container
override. Network and capacity come from the live service (DescribeServices), so the task
runs where the service's tasks run. No typer and no printing: the command renders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from deployctl import releases, releases_tags, targets
from deployctl.adapters import aws, ecs_gateway
from deployctl.adapters import logs as cwlogs
from deployctl.errors import DeployFailed, UsageError
from deployctl.render import jobs as render_jobs
from deployctl.render import task as render_task
from deployctl.rollout import td_label
from deployctl.targets import ecs_releases, ecs_task
from deployctl.targets.base import FEATURE_TASK

if TYPE_CHECKING:
    import threading

    from deployctl.config.model import ResolvedConfig

SCHEMA = "deployctl.task/v1"


@dataclass(frozen=True)
class TaskPlan:
    service: str
    task_definition: str
    release: str  # "" when the revision carries no deployctl release
    container: str
    command: tuple[str, ...]
    request: dict[str, Any]
    logs: cwlogs.AwsLogs | None
    job: str | None = None  # `task run --job`: the jobs: entry this task runs

    @property
    def label(self) -> str:
        return td_label(self.task_definition)


def pick_service(cfg: ResolvedConfig, service: str | None) -> str:
    if service is not None:
        if service not in cfg.services:
            raise UsageError(f"no service {service!r} in {cfg.env_name}", hint=f"services: {', '.join(cfg.services)}")
        return service
    if len(cfg.services) == 1:
        return next(iter(cfg.services))
    raise UsageError(f"{cfg.env_name} has several services: say whose image, secrets and network the task uses",
                     hint=f"--service one of {', '.join(cfg.services)}")


def plan_task(cfg: ResolvedConfig, clients: aws.AwsClients, *, service: str | None, release: str | None,
              command: list[str]) -> TaskPlan:
    """Everything RunTask needs, read from ECS; raises when the service is not deployed."""
    if not targets.supports(cfg, FEATURE_TASK):
        raise UsageError(f"`deployctl task run` runs an ECS task; {cfg.env_name} runs on the local Docker engine",
                         hint="run the command in a container of the image with `docker run`")
    if not command:
        raise UsageError("no command to run", hint="put it after `--`, e.g. `-- python manage.py migrate`")
    name = pick_service(cfg, service)
    ecs = clients.ecs
    live = ecs_releases.read_services(ecs, cfg).get(name)
    if live is None:
        raise DeployFailed(f"service {name} is not deployed in {cfg.env_name}: there is no release to run a task from",
                           hint=f"deploy it first: `deployctl run --env {cfg.env_name}`")
    arn = live.task_definition
    if release:
        found = releases.build(ecs_releases.read_revisions(ecs, cfg), app=cfg.app, env=cfg.env_name)
        rel = next((r for r in found if r.id == release), None)
        if rel is None:
            raise UsageError(f"no release {release} in {cfg.env_name}",
                             hint=f"`deployctl history --env {cfg.env_name}` lists its releases")
        if name not in rel.revisions:
            raise UsageError(f"release {release} did not deploy {name}",
                             hint=f"its services: {', '.join(sorted(rel.revisions)) or 'none'}")
        arn = rel.revisions[name].arn
    described = ecs_gateway.describe_task_definition(ecs, arn)
    container = render_task.main_container(described.definition, name)
    request = render_task.run_task_request(cluster=cfg.environment.cluster or "default", task_definition=arn,
                                           container=container, command=command, placement=live.placement,
                                           app=cfg.app, env=cfg.env_name)
    return TaskPlan(name, arn, releases_tags.parse(described.tags).release or "", container,
                    tuple(command), request, described.logs.get(container))


def plan_job(cfg: ResolvedConfig, clients: aws.AwsClients, *, job: str) -> TaskPlan:
    """A task for `jobs.<job>` now, as its schedule would start it: the job's command, its
    capacity (Fargate Spot unless spot: false) and, with its own cpu/memory, the latest revision of
    its own family (the one its schedule runs); else the service's live revision."""
    if job not in cfg.jobs:
        raise UsageError(f"no job {job!r} in {cfg.env_name}",
                         hint=f"jobs: {', '.join(cfg.jobs)}" if cfg.jobs else "deploy.yaml has no `jobs:` here")
    spec = cfg.jobs[job]
    plan = plan_task(cfg, clients, service=cfg.job_service(job), release=None, command=list(spec.command))
    arn = plan.task_definition
    if render_jobs.own_size(cfg, job) is not None:
        family = render_jobs.family(cfg.app, cfg.env_name, job)
        try:
            arn = ecs_gateway.describe_task_definition(clients.ecs, family, tags=False).arn
        except aws.ClientError as exc:
            if aws.error_code(exc) not in ("ClientException", "ResourceNotFoundException"):
                raise
            raise DeployFailed(f"job {job} has no task definition yet ({family})",
                               hint=f"deploy first: `deployctl run --env {cfg.env_name}` creates it") from None
    request = dict(plan.request, taskDefinition=arn)
    request.pop("launchType", None)
    request.pop("capacityProviderStrategy", None)
    if spec.spot:
        request["capacityProviderStrategy"] = [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    else:
        request["launchType"] = "FARGATE"
    request["startedBy"] = f"deployctl-job:{job}"[:128]
    return replace(plan, task_definition=arn, request=request, job=job)


def run(clients: aws.AwsClients, plan: TaskPlan, *, emit: Callable[[str], None], timeout: float,
        on_started: Callable[[str], None] | None = None,
        cancelled: threading.Event | None = None) -> ecs_task.TaskOutcome:
    return ecs_task.run(clients, plan.request, container=plan.container, logs=plan.logs, emit=emit,
                        timeout=timeout, on_started=on_started, cancelled=cancelled)


def to_json(plan: TaskPlan, outcome: ecs_task.TaskOutcome, env: str) -> dict[str, Any]:
    return {"schema": SCHEMA, "env": env, "service": plan.service, "job": plan.job, "release": plan.release or None,
            "task_definition": plan.task_definition, "command": list(plan.command), "task_id": outcome.task_id,
            "task_arn": outcome.task_arn, "container": outcome.container, "exit_code": outcome.exit_code,
            "stop_code": outcome.stop_code or None, "stopped_reason": outcome.stopped_reason or None,
            "timed_out": outcome.timed_out,
            "log_group": plan.logs.group if plan.logs else None,
            "log_stream": plan.logs.stream(outcome.task_arn) if plan.logs else None}

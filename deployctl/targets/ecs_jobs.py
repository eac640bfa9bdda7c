"""`jobs:` on ECS, applied after the services rolled (docs/jobs.md): one EventBridge Scheduler
schedule per job in the environment's schedule group, each running the job's command in a task
of the release just deployed. Idempotent: existing schedules are updated, schedules of jobs no
longer in deploy.yaml are deleted, the group and the dead-letter queue are created when missing.

A job runs its service's revision with a command override, or, when it has its own cpu/memory,
a revision of its own family `<app>-<env>-job-<name>` made from the service's (registered only
when the family's latest differs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deployctl.adapters import aws as awsa
from deployctl.adapters import scheduler_gateway, sqs_gateway
from deployctl.render import jobs as render_jobs
from deployctl.targets.ecs_taskdef import same_task_definition

if TYPE_CHECKING:
    from deployctl.plan import Plan


@dataclass
class JobsChange:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)  # own-family revisions registered here

    def summary(self) -> str:
        parts = [f"{len(v)} {k} ({', '.join(v)})" for k, v in (("created", self.created), ("updated", self.updated),
                                                            ("deleted", self.deleted)) if v]
        return "; ".join(parts) or "nothing to change"


def apply(plan: Plan, aws: awsa.AwsClients, *, account_id: str, revisions: Mapping[str, str],
          log: Callable[[str], None]) -> JobsChange:
    """Schedules for every job of `plan`, each on `revisions[service]` (the revision the deploy
    left running); deletes the group's other schedules."""
    cfg = plan.config
    scheduler = aws.client("scheduler")
    group = render_jobs.group_name(cfg.app, cfg.env_name)
    change = JobsChange()
    try:
        existing = scheduler_gateway.schedule_names(scheduler, group)
    except awsa.ClientError as exc:
        if cfg.jobs or not awsa.is_access_denied(exc):
            raise
        # No jobs, and a CI role from before jobs existed: it cannot have scheduled any either.
        log("jobs: none configured; could not look for schedules of removed jobs (access denied to "
            "EventBridge Scheduler: regenerate the role's policy with `deployctl iam-policy`)")
        return change
    if not cfg.jobs and existing is None:
        return change  # never had jobs: create nothing
    if cfg.jobs:
        if existing is None:
            scheduler_gateway.create_group(scheduler, group, {"deployctl:app": cfg.app, "deployctl:env": cfg.env_name})
            existing = set()
        dlq = _dead_letter_queue(aws.client("sqs"), render_jobs.dlq_name(cfg.app, cfg.env_name))
        by_service = {sp.name: sp for sp in plan.services}
        for name in cfg.jobs:
            sp = by_service[cfg.job_service(name)]
            td_arn = revisions[sp.name]
            size = render_jobs.own_size(cfg, name)
            if size is not None:
                td_arn = _own_revision(aws.ecs, render_jobs.job_task_definition(
                    sp.task_definition, render_jobs.family(cfg.app, cfg.env_name, name), *size), change)
            req = render_jobs.deploy_request(cfg, name, service_task_definition=sp.task_definition,
                                             create_service=sp.create_service, task_definition=td_arn,
                                             account_id=account_id, dlq_arn=dlq)
            if name in existing:
                scheduler_gateway.update_schedule(scheduler, req)
                change.updated.append(name)
            else:
                scheduler_gateway.create_schedule(scheduler, req)
                change.created.append(name)
            log(f"job {name}: {cfg.jobs[name].schedule} → {td_arn.rsplit('/', 1)[-1]}"
                f"{' on FARGATE_SPOT' if cfg.jobs[name].spot else ''}")
    for name in sorted((existing or set()) - set(cfg.jobs)):
        scheduler_gateway.delete_schedule(scheduler, group, name)
        change.deleted.append(name)
        log(f"job {name}: no longer in deploy.yaml; its schedule was deleted")
    return change


def _dead_letter_queue(sqs: awsa.BotoClient, name: str) -> str:
    """The queue's ARN, created (keeping messages 14 days, SQS's longest) when missing; an
    existing queue is used as it is."""
    url = sqs_gateway.queue_url(sqs, name)
    if url is None:
        url = sqs_gateway.create_queue(sqs, name, {"MessageRetentionPeriod": "1209600"})
    return sqs_gateway.queue_arn(sqs, url)


def _own_revision(ecs: awsa.BotoClient, request: dict[str, Any], change: JobsChange) -> str:
    """The family's latest revision when it equals `request`, else a new one."""

    try:
        live = ecs.describe_task_definition(taskDefinition=request["family"])["taskDefinition"]
    except awsa.ClientError as exc:
        if awsa.error_code(exc) not in ("ClientException", "ResourceNotFoundException"):
            raise
        live = None
    if live is not None and same_task_definition(request, live):
        return str(live["taskDefinitionArn"])
    arn = str(ecs.register_task_definition(**request)["taskDefinition"]["taskDefinitionArn"])
    change.registered.append(arn)
    return arn

"""Pure request builders for `jobs:` (docs/jobs.md): EventBridge Scheduler schedules whose
target runs one Fargate (Spot) task of the environment's release, and the monthly runs a
schedule expression stands for (the cost estimate in `plan`).

A schedule's Target is the cluster ARN with EcsParameters (the templated target for ECS
RunTask); its Input is RunTask's `overrides` as JSON, which carries the job's command as a
container override,
https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-templated.html and
https://docs.aws.amazon.com/scheduler/latest/APIReference/API_EcsParameters.html.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from deployctl.config import fargate
from deployctl.config.model import Job, ResolvedConfig
from deployctl.render import task as render_task

HOURS_PER_MONTH = fargate.HOURS_PER_MONTH
DAYS_PER_MONTH = HOURS_PER_MONTH / 24  # 30.42: the same month the service prices use
MANAGED_BY = "deployctl"


def group_name(app: str, env: str) -> str:
    """One schedule group per environment: its schedules are exactly the environment's jobs."""
    return f"deployctl-{app}-{env}"


def dlq_name(app: str, env: str) -> str:
    return f"{app}-{env}-jobs-dlq"


def family(app: str, env: str, job: str) -> str:
    """The family of a job that needs its own cpu/memory."""
    return f"{app}-{env}-job-{job}"


def own_size(cfg: ResolvedConfig, name: str) -> tuple[int, int] | None:
    """(cpu, memory) when the job's size differs from its service's, else None (it runs the
    service's own revision)."""
    job, svc = cfg.jobs[name], cfg.services[cfg.job_service(name)]
    cpu, memory = job.cpu or svc.cpu, job.memory or svc.memory
    return (cpu, memory) if (cpu, memory) != (svc.cpu, svc.memory) else None


def size(cfg: ResolvedConfig, name: str) -> tuple[int, int]:
    svc = cfg.services[cfg.job_service(name)]
    return own_size(cfg, name) or (svc.cpu, svc.memory)


def job_task_definition(service_td: Mapping[str, Any], fam: str, cpu: int, memory: int) -> dict[str, Any]:
    """The service's RegisterTaskDefinition request (same image digest, secrets, roles, logs)
    in the job's own family with the job's size. Container-level cpu/memory above the task's
    would make ECS refuse it: they are dropped (the task size bounds the container)."""
    req = json.loads(json.dumps(service_td))
    req["family"] = fam
    req["cpu"], req["memory"] = str(cpu), str(memory)
    for c in req.get("containerDefinitions") or []:
        for key in ("cpu", "memory", "memoryReservation"):
            c.pop(key, None)
    return req


def cluster_arn(cluster: str, region: str, account_id: str) -> str:
    if cluster.startswith("arn:"):
        return cluster
    return f"arn:aws:ecs:{region}:{account_id}:cluster/{cluster}"


def schedule_request(cfg: ResolvedConfig, name: str, *, task_definition: str, container: str,
                     placement: Mapping[str, Any], cluster: str, dlq_arn: str) -> dict[str, Any]:
    """CreateSchedule/UpdateSchedule (same shape) for job `name`. `placement` is the service's
    CreateService request: its subnets, security groups and public-IP setting are the job's."""
    job = cfg.jobs[name]
    net = (placement.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
    ecs: dict[str, Any] = {
        "TaskDefinitionArn": task_definition,
        "TaskCount": 1,
        "NetworkConfiguration": {"awsvpcConfiguration": {
            "Subnets": list(net.get("subnets") or []),
            "SecurityGroups": list(net.get("securityGroups") or []),
            "AssignPublicIp": net.get("assignPublicIp") or "DISABLED",
        }},
        "Group": f"deployctl-job:{name}"[:255],
    }
    if not ecs["NetworkConfiguration"]["awsvpcConfiguration"]["SecurityGroups"]:
        del ecs["NetworkConfiguration"]["awsvpcConfiguration"]["SecurityGroups"]
    if job.spot:
        ecs["CapacityProviderStrategy"] = [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    else:
        ecs["LaunchType"] = "FARGATE"
    if placement.get("platformVersion"):
        ecs["PlatformVersion"] = placement["platformVersion"]
    assert cfg.environment.jobs_role is not None  # validation requires it with jobs
    return {
        "Name": name,
        "GroupName": group_name(cfg.app, cfg.env_name),
        "ScheduleExpression": job.schedule,
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED",
        "Description": f"{MANAGED_BY} job {name} of {cfg.app}/{cfg.env_name}: {' '.join(job.command)}"[:512],
        "Target": {
            "Arn": cluster,
            "RoleArn": cfg.environment.jobs_role,
            "EcsParameters": ecs,
            "Input": json.dumps({"containerOverrides": [{"name": container, "command": list(job.command)}]},
                                separators=(",", ":")),
            "RetryPolicy": {"MaximumRetryAttempts": job.retries, "MaximumEventAgeInSeconds": 86400},
            "DeadLetterConfig": {"Arn": dlq_arn},
        },
    }


def deploy_request(cfg: ResolvedConfig, name: str, *, service_task_definition: Mapping[str, Any],
                   create_service: Mapping[str, Any], task_definition: str, account_id: str,
                   dlq_arn: str) -> dict[str, Any]:
    """The CreateSchedule/UpdateSchedule request a deploy sends for job `name`, from its service's
    plan (task definition and CreateService request) and the revision the job runs."""
    service = cfg.job_service(name)
    return schedule_request(cfg, name, task_definition=task_definition,
                            container=render_task.main_container(service_task_definition, service),
                            placement=create_service,
                            cluster=cluster_arn(cfg.environment.cluster or "default", cfg.region, account_id),
                            dlq_arn=dlq_arn)


# -- runs per month, for the cost estimate ---------------------------------------------------
_RATE = re.compile(r"^rate\((\d+) (minute|hour|day)s?\)$")
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


def runs_per_month(schedule: str) -> float:
    """How many times a month (730 h) the expression fires. rate(): exact. cron(): the product
    of how many values each field allows, days averaged over the month (an estimate: 'L', 'W'
    and '#' count once a month)."""
    rate = _RATE.match(schedule)
    if rate:
        minutes = int(rate.group(1)) * {"minute": 1, "hour": 60, "day": 1440}[rate.group(2)]
        return HOURS_PER_MONTH * 60 / minutes
    fields = schedule[len("cron("):-1].split()
    minute, hour, dom, month, dow, _year = fields
    per_day = _count(minute, 0, 59) * _count(hour, 0, 23)
    if dom == "?":
        days = 1.0 if ("#" in dow or "L" in dow) else _count(dow, 1, 7, _DAYS) * DAYS_PER_MONTH / 7
    else:
        days = 1.0 if ("L" in dom or "W" in dom) else min(_count(dom, 1, 31), DAYS_PER_MONTH)
    return per_day * days * _count(month, 1, 12, _MONTHS) / 12


def _count(field: str, lo: int, hi: int, names: list[str] | None = None) -> float:
    """How many values of lo..hi a cron field selects (lists, ranges, steps, names)."""
    if field in ("*", "?"):
        return hi - lo + 1
    chosen: set[int] = set()
    for part in field.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = max(1, int(step_text)) if step_text.isdigit() else 1
        if part in ("*", ""):
            start, end = lo, hi
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, lo, names), _value(b, lo, names)
        else:
            start = _value(part, lo, names)
            end = hi if step > 1 else start
        chosen.update(range(start, end + 1, step))
    return float(len({v for v in chosen if lo <= v <= hi}) or 1)


def _value(text: str, lo: int, names: list[str] | None) -> int:
    if names and text.upper() in names:
        return names.index(text.upper()) + lo
    digits = re.sub(r"\D", "", text)
    return int(digits) if digits else lo


def monthly_cost(cfg: ResolvedConfig, name: str) -> tuple[float, float]:
    """(runs per month, USD per month): runs × expected duration × the Fargate (Spot) price."""
    job: Job = cfg.jobs[name]
    cpu, memory = size(cfg, name)
    runs = runs_per_month(job.schedule)
    hourly = fargate.monthly_cost(cpu, memory, 1, arch=cfg.image.arch, spot=job.spot) / HOURS_PER_MONTH
    return runs, runs * job.duration / 3600 * hourly

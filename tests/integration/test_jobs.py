"""`jobs:` become EventBridge Scheduler schedules after every ECS deploy, each running its command
in a Fargate (Spot) task of the release just deployed, with retries and a dead-letter queue.
ECS is the rollout SIMULATION; schedules, the group and the queue are moto's scheduler and SQS,
all over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deployctl.render import iam
from tests.integration.test_ecs_deploy import cli, cli_project, deploy, load
from tests.integration.test_iam_coverage import denied, secret_arns, seen
from tests.simulation.one_off_tasks import Script
from tests.support.aws_world import ACCOUNT, CLUSTER, FAMILY_API, REGION, base_config

GROUP = "deployctl-chat-api-staging"
JOBS_ROLE = f"arn:aws:iam::{ACCOUNT}:role/chat-api-jobs"
EMBED = ["python", "-m", "jobs.embed"]


def _doc(world: Any, **jobs: Any) -> dict[str, Any]:
    doc = base_config(world)
    doc["jobs"] = jobs if jobs else {
        "embed": {"command": EMBED, "schedule": "rate(6 hours)", "retries": 3},
        "report": {"command": ["python", "-m", "jobs.report"], "schedule": "cron(0 3 * * ? *)", "spot": False,
                   "cpu": 2048, "memory": 8192},
    }
    doc["environments"]["staging"]["jobs_role"] = JOBS_ROLE
    return doc


def _schedules(world: Any) -> dict[str, dict[str, Any]]:
    sched = world.c("scheduler")
    names = [s["Name"] for s in sched.list_schedules(GroupName=GROUP)["Schedules"]]
    return {n: sched.get_schedule(Name=n, GroupName=GROUP) for n in names}


def test_jobs_become_schedules_on_the_new_release(world: Any, sim: Any, tmp_path: Path) -> None:
    cfg = load(tmp_path, _doc(world))
    res = deploy(cfg, world.push("v1"))
    assert res.exit_code == 0, res.text

    found = _schedules(world)
    assert set(found) == {"embed", "report"}
    embed, report = found["embed"], found["report"]
    assert embed["ScheduleExpression"] == "rate(6 hours)" and report["ScheduleExpression"] == "cron(0 3 * * ? *)"
    # The target is the cluster; the task definition is the service's revision this deploy rolled out.
    target = embed["Target"]
    assert target["Arn"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"
    assert target["RoleArn"] == JOBS_ROLE
    ecs = target["EcsParameters"]
    assert ecs["TaskDefinitionArn"] == world.service()["taskDefinition"]
    assert ecs["TaskDefinitionArn"].endswith(f"{FAMILY_API}:1")
    assert ecs["CapacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert "LaunchType" not in ecs
    net = ecs["NetworkConfiguration"]["awsvpcConfiguration"]
    assert net["Subnets"] == list(world.subnets) and net["SecurityGroups"] == [world.security_group]
    assert json.loads(target["Input"]) == {"containerOverrides": [{"name": "api", "command": EMBED}]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 3
    dlq_url = world.c("sqs").get_queue_url(QueueName="chat-api-staging-jobs-dlq")["QueueUrl"]
    dlq_arn = world.c("sqs").get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]
    assert target["DeadLetterConfig"] == {"Arn": dlq_arn["QueueArn"]}
    # A job with its own size runs its own family, on on-demand Fargate.
    rep = report["Target"]["EcsParameters"]
    assert rep["LaunchType"] == "FARGATE" and "CapacityProviderStrategy" not in rep
    td = world.c("ecs").describe_task_definition(taskDefinition=rep["TaskDefinitionArn"])["taskDefinition"]
    assert td["family"] == "chat-api-staging-job-report" and (td["cpu"], td["memory"]) == ("2048", "8192")
    svc_td = world.c("ecs").describe_task_definition(taskDefinition=ecs["TaskDefinitionArn"])["taskDefinition"]
    assert td["containerDefinitions"][0]["image"] == svc_td["containerDefinitions"][0]["image"]
    assert "jobs: 2 created (embed, report)" in res.text


def test_a_new_release_updates_the_schedules_and_removed_jobs_are_deleted(world: Any, sim: Any,
                                                                          tmp_path: Path) -> None:
    res = deploy(load(tmp_path, _doc(world)), world.push("v1"))
    assert res.exit_code == 0, res.text
    own_before = _schedules(world)["report"]["Target"]["EcsParameters"]["TaskDefinitionArn"]

    doc = _doc(world, report={"command": ["python", "-m", "jobs.report"], "schedule": "rate(1 day)",
                              "cpu": 2048, "memory": 8192})
    ref2 = world.push("v2")
    res = deploy(load(tmp_path, doc), ref2)
    assert res.exit_code == 0, res.text
    found = _schedules(world)
    assert set(found) == {"report"}  # embed is gone
    assert found["report"]["ScheduleExpression"] == "rate(1 day)"
    own_after = found["report"]["Target"]["EcsParameters"]["TaskDefinitionArn"]
    assert own_after != own_before and own_after.endswith("chat-api-staging-job-report:2")  # the new image
    assert "jobs: 1 updated (report); 1 deleted (embed)" in res.text

    # The same release again: nothing registered for the job, the schedule just rewritten.
    res = deploy(load(tmp_path, doc), ref2)
    assert res.exit_code == 0, res.text
    assert _schedules(world)["report"]["Target"]["EcsParameters"]["TaskDefinitionArn"] == own_after


def test_no_jobs_creates_nothing(world: Any, sim: Any, tmp_path: Path) -> None:
    res = deploy(load(tmp_path, base_config(world)), world.push("v1"))
    assert res.exit_code == 0, res.text
    groups = [g["Name"] for g in world.c("scheduler").list_schedule_groups()["ScheduleGroups"]]
    assert GROUP not in groups
    assert "jobs-dlq" not in json.dumps(world.c("sqs").list_queues())


def test_the_ci_policy_allows_every_call_of_the_jobs(world: Any, sim: Any, tmp_path: Path) -> None:
    """Every call of a deploy that creates, then updates and deletes schedules is allowed by the
    generated policy; without the jobs statements it is not."""
    cfg = load(tmp_path, _doc(world))
    sim.calls.clear()
    assert deploy(cfg, world.push("v1")).exit_code == 0
    cfg2 = load(tmp_path, _doc(world, report={"command": ["true"], "schedule": "rate(1 day)"}))
    assert deploy(cfg2, world.push("v2")).exit_code == 0
    wanted = {"scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule",
              "scheduler:ListSchedules", "scheduler:CreateScheduleGroup", "sqs:CreateQueue",
              "sqs:GetQueueAttributes"}
    assert wanted <= seen(sim.calls)
    secrets = secret_arns(world.c("secretsmanager"))
    policy = iam.ci_policy(cfg, ACCOUNT)
    assert denied(policy, sim.calls, cfg, secrets) == []
    jobs_sids = {"JobSchedules", "JobScheduleGroup", "JobSchedulesList", "JobsDeadLetterQueue"}
    without = {**policy, "Statement": [s for s in policy["Statement"] if s["Sid"] not in jobs_sids]}
    assert any("scheduler:CreateSchedule" in d for d in denied(without, sim.calls, cfg, secrets))


def test_task_run_job_runs_it_now_with_its_command_and_capacity(world: Any, sim: Any, one_off_tasks: Any,
                                                                tmp_path: Path) -> None:
    project = cli_project(tmp_path, _doc(world))
    r = cli(world.aws, project, "run", "--env", "staging", "--image", world.push("v1"), "--only", "deploy")
    assert r.returncode == 0, r.stdout + r.stderr
    one_off_tasks.script(Script(exit_code=0, lines=("embedded 120 documents",)),
                         Script(exit_code=4, lines=("report failed",)))

    r = cli(world.aws, project, "task", "run", "--env", "staging", "--job", "embed", "--json")
    assert r.returncode == 0, r.stderr
    req = one_off_tasks.requests[-1]
    assert req["taskDefinition"] == world.service()["taskDefinition"]
    assert req["overrides"] == {"containerOverrides": [{"name": "api", "command": EMBED}]}
    assert req["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert req.get("launchType") is None and req["startedBy"] == "deployctl-job:embed"
    doc = json.loads(r.stdout)
    assert doc["schema"] == "deployctl.task/v1" and doc["job"] == "embed" and doc["command"] == EMBED
    assert "job embed: running `python -m jobs.embed`" in r.stderr and "on FARGATE_SPOT" in r.stderr

    # A job with its own size runs the revision its schedule runs, on-demand; its exit code is ours.
    r = cli(world.aws, project, "task", "run", "--env", "staging", "--job", "report")
    assert r.returncode == 4, r.stderr
    req = one_off_tasks.requests[-1]
    sched = world.c("scheduler").get_schedule(Name="report", GroupName=GROUP)
    assert req["taskDefinition"] == sched["Target"]["EcsParameters"]["TaskDefinitionArn"]
    assert req["launchType"] == "FARGATE" and not req.get("capacityProviderStrategy")

    bad = cli(world.aws, project, "task", "run", "--env", "staging", "--job", "embedd")
    assert bad.returncode == 2 and "no job 'embedd' in staging" in bad.stderr and "embed, report" in bad.stderr
    both = cli(world.aws, project, "task", "run", "--env", "staging", "--job", "embed", "--", "true")
    assert both.returncode == 2 and "--job runs the job's own command" in both.stderr

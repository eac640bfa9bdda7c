"""Preflight reports every problem of an ECS deploy at once, before the lock or any registration
(moto server with the rollout simulation; `deployctl run --image … --only deploy` as a user runs it).

Missing here at the same time: the image (a tag never pushed), a Secrets Manager secret, an SSM
parameter, the target group, the task role, the deployment alarm, the SQS queue monitoring.queue
names, and the cluster's FARGATE_SPOT capacity provider that a `spot: true` service needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deployctl import preflight
from deployctl.adapters import aws as awsa
from deployctl.config import load_env, read
from deployctl.errors import PreflightFailed
from tests.integration.test_preview import ACCOUNT, CLUSTER, REGION, REPO, cli, deploy_yaml, write_project
from tests.support.aws_world import QUICK_PHASES, World, make_world

SIM_PHASES = QUICK_PHASES
MISSING_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPO}:never-pushed"
# What each problem line must name: the thing, and what to do about it.
EXPECTED = {
    "image": ("never-pushed", "push it"),
    "secret": ("chat-api/openai-key", "create it"),
    "ssm": ("/chat-api/database-url", "create it"),
    "target group": ("chat-api-tg", "create it"),
    "role": ("chat-api-task", "create it"),
    "alarm": ("chat-api-5xx", "create it"),
    "queue": ("chat-jobs", "create it"),
    "spot": ("FARGATE_SPOT", "add it"),
}


@pytest.fixture
def broken(env: Any, sim: Any) -> World:
    world = make_world(env, skip=("cluster", "secret", "ssm", "target_group", "role:chat-api-task", "alarm"))
    world.c("ecs").create_cluster(clusterName=CLUSTER, capacityProviders=["FARGATE"])  # no FARGATE_SPOT
    return world


def project(world: World, tmp_path: Path) -> Path:
    doc = deploy_yaml(world)
    doc["services"]["worker"]["spot"] = True
    doc["monitoring"] = {"queue": {"name": "chat-jobs", "max_visible": 100, "service": "worker"}}
    return write_project(tmp_path, doc)


def problem_lines(text: str) -> list[str]:
    return [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("- ")]


def test_run_reports_every_problem_at_once_before_the_lock(broken: World, sim: Any, tmp_path: Path) -> None:
    proj = project(broken, tmp_path)
    start = len(sim.calls)
    res = cli(broken.aws, proj, "run", "--env", "staging", "--image", MISSING_IMAGE, "--only", "deploy", "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    report = json.loads(res.stdout)
    message = report["stages"][0]["message"]
    lines = problem_lines(message)
    assert len(lines) == len(EXPECTED), message
    for kind, words in EXPECTED.items():
        assert any(all(w in line for w in words) for line in lines), (kind, lines)
    assert message.startswith(f"preflight found {len(EXPECTED)} problems")

    # Nothing was locked, registered or created: preflight ran before the lock.
    actions = {c.action for c in sim.calls[start:]}
    assert not actions & {"CreateTable", "PutItem", "UpdateItem", "RegisterTaskDefinition", "CreateService",
                          "UpdateService", "PutMetricAlarm"}, actions
    assert broken.c("ecs").list_task_definitions()["taskDefinitionArns"] == []
    assert "deployctl-locks" not in broken.c("dynamodb").list_tables()["TableNames"]


def test_preflight_error_carries_each_problem_as_a_list(broken: World, sim: Any, tmp_path: Path) -> None:
    proj = project(broken, tmp_path)
    cfg = load_env(read(proj / "deploy.yaml", environ={}), "staging")
    log: list[str] = []
    with pytest.raises(PreflightFailed) as info:
        preflight.run(cfg, awsa.clients(cfg.region), MISSING_IMAGE, log=log.append)
    problems = info.value.problems
    assert len(problems) == len(EXPECTED)
    assert all("\n" not in p for p in problems)  # one problem, one line
    # What `deployctl bootstrap` creates points there; what it never creates (secrets, images, an
    # alarm someone else owns) does not.
    points = {kind for kind, (name, _) in EXPECTED.items()
              if any(name in p and "deployctl bootstrap --env staging" in p for p in problems)}
    assert points == {"target group", "role", "queue", "spot"}, problems
    assert problem_lines(info.value.message) == problems


def test_a_spot_service_needs_fargate_spot_even_on_a_cluster_without_providers(env: Any, sim: Any,
                                                                               tmp_path: Path) -> None:
    world = make_world(env, skip=("cluster",))
    world.c("ecs").create_cluster(clusterName=CLUSTER)  # no capacity providers at all
    world.c("sqs").create_queue(QueueName="chat-jobs")
    proj = project(world, tmp_path)
    cfg = load_env(read(proj / "deploy.yaml", environ={}), "staging")
    image = world.push("v1")
    with pytest.raises(PreflightFailed) as info:
        preflight.run(cfg, awsa.clients(cfg.region), image)
    problems = info.value.problems
    assert len(problems) == 2, problems
    assert any("lacks the FARGATE capacity provider" in p and "api" in p for p in problems)
    assert any("lacks the FARGATE_SPOT capacity provider" in p and "worker" in p and "spot: false" in p
               for p in problems)

    # With both providers and the queue there, the same deploy goes through.
    world.c("ecs").put_cluster_capacity_providers(cluster=CLUSTER, capacityProviders=["FARGATE", "FARGATE_SPOT"],
                                                  defaultCapacityProviderStrategy=[])
    result = preflight.run(cfg, awsa.clients(cfg.region), image)
    assert result.image_digest == image.split("@", 1)[1]


def scaled_worker_with_spot_job(world: World, tmp_path: Path, queue: str) -> Path:
    """The worker scales on a queue's backlog; a nightly job runs on Spot (jobs' default)."""
    doc = deploy_yaml(world)
    doc["services"]["worker"]["autoscaling"] = {"min": 1, "max": 3, "target_cpu": None, "queue": queue,
                                                "queue_backlog_per_task": 10}
    doc["jobs"] = {"embed": {"command": ["python", "-m", "embed"], "service": "api", "schedule": "rate(1 day)"}}
    doc["environments"]["staging"]["jobs_role"] = f"arn:aws:iam::{ACCOUNT}:role/chat-api-jobs"
    return write_project(tmp_path, doc)


def test_backlog_queue_container_insights_and_spot_jobs_are_checked_at_once(env: Any, sim: Any,
                                                                           tmp_path: Path) -> None:
    world = make_world(env, skip=("cluster",))
    # No FARGATE_SPOT and Container Insights off (the default of CreateCluster).
    world.c("ecs").create_cluster(clusterName=CLUSTER, capacityProviders=["FARGATE"])
    world.c("sqs").create_queue(QueueName="chat-jobs")
    proj = scaled_worker_with_spot_job(world, tmp_path, queue="chat-jbos")  # misspelled
    image = world.push("v1")
    res = cli(world.aws, proj, "run", "--env", "staging", "--image", image, "--only", "deploy", "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    lines = problem_lines(json.loads(res.stdout)["stages"][0]["message"])
    assert len(lines) == 3, lines
    assert any("SQS queue chat-jbos does not exist" in line and "services.worker.autoscaling.queue" in line
               and "aws sqs create-queue --queue-name chat-jbos" in line for line in lines), lines
    assert any("Container Insights disabled" in line and "worker" in line and
               f"update-cluster-settings --cluster {CLUSTER} --settings name=containerInsights,value=enabled" in line
               for line in lines), lines
    assert any("lacks the FARGATE_SPOT capacity provider" in line and "job embed" in line
               and "spot: false on jobs.embed" in line for line in lines), lines
    assert world.c("ecs").list_task_definitions()["taskDefinitionArns"] == []  # nothing registered

    # Fixed as the lines say, the same deploy goes through.
    world.c("ecs").put_cluster_capacity_providers(cluster=CLUSTER, capacityProviders=["FARGATE", "FARGATE_SPOT"],
                                                  defaultCapacityProviderStrategy=[])
    world.c("ecs").delete_cluster(cluster=CLUSTER)  # moto has no UpdateClusterSettings: made again, with it on
    world.c("ecs").create_cluster(clusterName=CLUSTER, capacityProviders=["FARGATE", "FARGATE_SPOT"],
                                  settings=[{"name": "containerInsights", "value": "enabled"}])
    (tmp_path / "fixed").mkdir()
    proj = scaled_worker_with_spot_job(world, tmp_path / "fixed", queue="chat-jobs")
    cfg = load_env(read(proj / "deploy.yaml", environ={}), "staging")
    result = preflight.run(cfg, awsa.clients(cfg.region), image)
    assert result.image_digest

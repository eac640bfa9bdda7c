"""Two environments on ONE ECS cluster (moto server + the rollout simulation) never touch each
other: own services, families, releases and status; on a shared target group each counts and
watches only its own tasks' targets; preflight refuses to update another environment's service;
`destroy` without a terminal asks for --yes and removes nothing.

The simulation registers each task in its service's target groups under the task's private IP
(as ECS does for `ip` target groups) and reports it healthy once the task is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_preview import CLUSTER, World, cli, deploy_yaml, write_project
from tests.integration.test_preview import deploy as run_deploy
from tests.support.aws_world import QUICK_PHASES

SIM_PHASES = QUICK_PHASES
SHARED_TG = {"target_group": "chat-api-tg", "shared": True}


def two_envs(world: World, *, shared_tg: bool, template: str | None = None) -> dict[str, Any]:
    doc = deploy_yaml(world)
    envs = doc["environments"]
    base = {k: v for k, v in envs["staging"].items() if k != "deploy_on"}
    api_lb = {"load_balancer": SHARED_TG} if shared_tg else {"load_balancer": None}
    envs["staging"]["services"] = {"api": {"count": 2, **api_lb}}
    envs["prod"] = {**base, "services": {"api": {"count": 3, **api_lb}}}  # same cluster as staging
    if template:
        doc["deploy"]["service_name"] = template
        envs["preview"]["deploy"] = {"service_name": "{app}-{name}-{service}"}
    return doc


def task_ips(world: World, service: str) -> set[str]:
    ecs = world.c("ecs")
    arns = ecs.list_tasks(cluster=CLUSTER, serviceName=service)["taskArns"]
    tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
    return {d["value"] for t in tasks for a in t.get("attachments", []) for d in a.get("details", [])
            if d["name"] == "privateIPv4Address"}


def test_staging_and_prod_on_one_cluster_never_see_each_other(world: World, tmp_path: Path) -> None:
    proj = write_project(tmp_path, two_envs(world, shared_tg=False))
    v1, v2 = world.push("v1"), world.push("v2")
    run_deploy(proj, "staging", v1)
    prod_log = run_deploy(proj, "prod", v2)
    assert not any("chat-api-staging" in line for line in prod_log), prod_log

    services = world.services()
    assert {n for n, s in services.items() if s == "ACTIVE"} == {
        "chat-api-staging-api", "chat-api-staging-worker", "chat-api-prod-api", "chat-api-prod-worker"}
    for env, ref in (("staging", v1), ("prod", v2)):
        st = cli(world.aws, proj, "status", "--env", env, "--json")
        assert st.returncode == 0, st.stderr
        doc = json.loads(st.stdout)
        assert doc["current"]["image_digest"] == ref.rsplit("@", 1)[1], (env, doc["current"])
        assert {s["ecs_service"] for s in doc["services"]} == {f"chat-api-{env}-api", f"chat-api-{env}-worker"}
        assert all(s["image"] == ref and s["task_definition"].split("/")[-1].startswith(f"chat-api-{env}-")
                   for s in doc["services"]), doc["services"]
        hist = json.loads(cli(world.aws, proj, "history", "--env", env, "--json").stdout)
        assert [r["image_digest"] for r in hist["releases"]] == [ref.rsplit("@", 1)[1]]
        td = world.c("ecs").describe_task_definition(taskDefinition=f"chat-api-{env}-api")["taskDefinition"]
        assert td["containerDefinitions"][0]["logConfiguration"]["options"]["awslogs-group"] == \
            f"/deployctl/chat-api/{env}"


def test_on_a_shared_target_group_each_environment_counts_only_its_own_targets(world: World,
                                                                              tmp_path: Path) -> None:
    proj = write_project(tmp_path, two_envs(world, shared_tg=True))
    v1 = world.push("v1")
    staging_log = run_deploy(proj, "staging", v1)
    prod_log = run_deploy(proj, "prod", v1)
    staging_ips, prod_ips = task_ips(world, "chat-api-staging-api"), task_ips(world, "chat-api-prod-api")
    assert len(staging_ips) == 2 and len(prod_ips) == 3 and not staging_ips & prod_ips
    # the group really holds all five: what `status` used to count for both environments
    health = world.c("elbv2").describe_target_health(TargetGroupArn=world.target_group_arn)
    assert len(health["TargetHealthDescriptions"]) == 5

    for env, want in (("staging", 2), ("prod", 3)):
        st = cli(world.aws, proj, "status", "--env", env, "--json")
        assert st.returncode == 0, st.stderr
        api = next(s for s in json.loads(st.stdout)["services"] if s["service"] == "api")
        assert (api["running"], api["targets"], api["healthy"]) == (want, {"healthy": want}, want), (env, api)
        text = cli(world.aws, proj, "status", "--env", env).stdout
        assert f"targets {want} healthy" in text, text

    # prod's rollout watcher printed prod's targets, never staging's
    watched = {line.split("target ", 1)[1].split(":", 1)[0] for line in prod_log if "] target " in line}
    assert watched and watched <= prod_ips, (watched, prod_ips)
    assert not any(ip in line for ip in staging_ips for line in prod_log)
    assert {line.split("target ", 1)[1].split(":", 1)[0] for line in staging_log if "] target " in line} \
        <= staging_ips


def test_preflight_refuses_to_update_another_environments_service(world: World, tmp_path: Path) -> None:
    # The old naming ({app}-{service}) kept for both environments on one cluster: validate refuses
    # it, and a deploy that goes ahead anyway must not take over staging's services.
    proj = write_project(tmp_path, two_envs(world, shared_tg=False, template="{app}-{service}"))
    assert cli(world.aws, proj, "validate").returncode == 2
    v1, v2 = world.push("v1"), world.push("v2")
    run_deploy(proj, "staging", v1)
    before = world.c("ecs").describe_services(cluster=CLUSTER, services=["chat-api-api"])["services"][0]

    r = cli(world.aws, proj, "run", "--env", "prod", "--image", v2, "--only", "deploy")
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "refusing to deploy chat-api/prod: ECS services chat-api-api (tagged app chat-api, environment " \
           "staging), chat-api-worker (tagged app chat-api, environment staging) in cluster ai-staging belong " \
           "to another app or environment" in out, out
    assert "Nothing was registered or changed" in out
    after = world.c("ecs").describe_services(cluster=CLUSTER, services=["chat-api-api"])["services"][0]
    assert after["taskDefinition"] == before["taskDefinition"]
    assert world.active_revisions("chat-api-prod-") == [], "nothing registered for prod"


def test_a_service_without_deployctl_tags_is_adopted(world: World, tmp_path: Path) -> None:
    # Migration: services made by hand (or other tooling) under the name deploy.service_name keeps.
    doc = two_envs(world, shared_tg=False, template="{app}-{service}")
    del doc["environments"]["prod"]
    proj = write_project(tmp_path, doc)
    ecs = world.c("ecs")
    td = ecs.register_task_definition(family="hand-made", containerDefinitions=[
        {"name": "api", "image": "busybox", "memory": 128}])["taskDefinition"]["taskDefinitionArn"]
    for name in ("chat-api-api", "chat-api-worker"):
        ecs.create_service(cluster=CLUSTER, serviceName=name, taskDefinition=td, desiredCount=0)
    run_deploy(proj, "staging", world.push("v1"))
    svc = ecs.describe_services(cluster=CLUSTER, services=["chat-api-api"])["services"][0]
    assert svc["taskDefinition"].split("/")[-1].startswith("chat-api-staging-api:")


def test_destroy_without_a_terminal_asks_for_yes_and_removes_nothing(world: World, tmp_path: Path) -> None:
    proj = write_project(tmp_path, deploy_yaml(world))
    run_deploy(proj, "preview", world.push("v1"), preview="pr-7")
    before = world.services()
    assert before.get("chat-api-preview-pr-7-api") == "ACTIVE"

    r = cli(world.aws, proj, "destroy", "--env", "preview", "--name", "pr-7")  # stdin is /dev/null
    assert r.returncode == 2, r.stdout + r.stderr
    assert "needs a confirmation and there is no terminal to ask on" in r.stderr and "--yes" in r.stderr
    assert world.services() == before
    assert world.active_revisions("chat-api-preview-pr-7-api")

    r = cli(world.aws, proj, "destroy", "--env", "preview", "--name", "pr-7", "--yes")
    assert r.returncode == 0, r.stderr
    assert "chat-api-preview-pr-7-api" not in {n for n, s in world.services().items() if s == "ACTIVE"}


def test_destroy_also_removes_copies_named_before_names_held_the_environment(world: World, tmp_path: Path) -> None:
    # A copy deployed by an earlier deployctl: {app}-{name}-{service}, tagged env=preview.
    proj = write_project(tmp_path, deploy_yaml(world))
    ecs = world.c("ecs")
    tags = [{"key": "deployctl:app", "value": "chat-api"}, {"key": "deployctl:env", "value": "preview"},
            {"key": "deployctl:preview", "value": "pr-3"}]
    td = ecs.register_task_definition(family="chat-api-pr-3-api", tags=tags, containerDefinitions=[
        {"name": "api", "image": "busybox", "memory": 128}])["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=CLUSTER, serviceName="chat-api-pr-3-api", taskDefinition=td, desiredCount=0,
                       tags=tags)
    # and one from another environment that happens to match the old prefix: left alone
    other = [{**t, "value": "staging"} if t["key"] == "deployctl:env" else t for t in tags]
    ecs.create_service(cluster=CLUSTER, serviceName="chat-api-pr-3-worker", taskDefinition=td, desiredCount=0,
                       tags=other)
    r = cli(world.aws, proj, "destroy", "--env", "preview", "--name", "pr-3", "--yes", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["services_deleted"] == ["chat-api-pr-3-api"]
    assert [a.rsplit("/", 1)[1] for a in report["task_definitions_deregistered"]] == ["chat-api-pr-3-api:1"]
    assert report["skipped"] == ["service chat-api-pr-3-worker: tagged deployctl:env=staging, not preview"]


@pytest.fixture(autouse=True)
def _no_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)

"""Service settings are never changed silently, and services made by other tools can be adopted.

Against the moto server with the ECS rollout simulation: a service created by "another tool"
(boto3 directly: its own name, family and container name, breaker rollback off and a deployment
alarm deploy.yaml does not list) is deployed to by `run`, which says every setting it changes
before the update, records the revision that ran before as a succeeded release, and lets
`rollback` return to it.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from deployctl.targets.ecs_target import EcsTarget
from tests.integration.test_ecs_deploy import calls, deploy, load
from tests.support import cli as in_process
from tests.support.aws_world import ACCOUNT, ALARM, API, CLUSTER, World, base_config

LEGACY = "legacy-api"  # the adopted service's own ECS service and family name
TEAM_ALARM = "team-latency"  # a deployment alarm the team set on the service, not in deploy.yaml


def _legacy_service(world: World, *, family: str = LEGACY, name: str = LEGACY, container: str = "app") -> str:
    """A service made without deployctl: untagged revision, container `app`, breaker rollback off,
    two deployment alarms. Returns the revision's ARN once its rollout has completed."""
    ecs, cw = world.c("ecs"), world.c("cloudwatch")
    cw.put_metric_alarm(AlarmName=TEAM_ALARM, MetricName="TargetResponseTime", Namespace="AWS/ApplicationELB",
                        Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=5,
                        ComparisonOperator="GreaterThanThreshold")
    td = ecs.register_task_definition(
        family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="1024", memory="2048",
        executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/chat-api-execution",
        containerDefinitions=[{"name": container, "image": world.push("legacy"), "essential": True,
                               "portMappings": [{"containerPort": 8000}]}])["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(
        cluster=CLUSTER, serviceName=name, taskDefinition=td, desiredCount=2,
        capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1, "base": 0}],
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": False},
                                 "maximumPercent": 200, "minimumHealthyPercent": 100,
                                 "alarms": {"alarmNames": [ALARM, TEAM_ALARM], "enable": True, "rollback": True}},
        networkConfiguration={"awsvpcConfiguration": {"subnets": list(world.subnets),
                                                      "securityGroups": [world.security_group],
                                                      "assignPublicIp": "DISABLED"}},
        loadBalancers=[{"targetGroupArn": world.target_group_arn, "containerName": container, "containerPort": 8000}])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        deps = world.service(name)["deployments"]
        if len(deps) == 1 and deps[0].get("rolloutState") == "COMPLETED":
            return td
        time.sleep(0.05)
    raise AssertionError(f"the legacy service never settled: {world.service(name)['deployments']}")


def _adopting_config(world: World, **svc: Any) -> dict[str, Any]:
    doc = base_config(world)
    doc["services"]["api"].update({"ecs_service": LEGACY, "container": "app", **svc})
    return doc


def test_run_says_every_setting_it_changes_before_the_update(world: World, sim: Any, tmp_path: Path) -> None:
    legacy_td = _legacy_service(world)
    cfg = load(tmp_path, _adopting_config(world, family=LEGACY))
    res = deploy(cfg, world.push("v1"))

    assert res.exit_code == 0, res.text
    assert calls(sim, "UpdateService") == 1 and calls(sim, "CreateService") == 1  # the legacy one only
    lines = res.lines
    update = next(i for i, line in enumerate(lines) if "updating service legacy-api" in line)
    said = "\n".join(lines[:update])
    # Breaker rollback was off on the live service: deploy.yaml's `circuit_breaker: true` turns it on.
    assert "circuit breaker rollback: false → true" in said
    # The team's alarm is dropped because deploy.yaml lists only chat-api-5xx, and that is said.
    assert f"deployment alarms: [{ALARM}, {TEAM_ALARM}] → [{ALARM}]" in said
    assert f"warning: deployment alarm {TEAM_ALARM} guards the live service and is not in deploy.yaml" in said
    # The same changes, for machines, under a stable key of the run's outputs.
    changes = json.loads(res.outputs["service_changes"])
    keys = {c["key"]: c for c in changes["api"]}
    assert keys["deploymentConfiguration.deploymentCircuitBreaker.rollback"]["live"] is False
    assert keys["deploymentConfiguration.alarms.alarmNames"]["planned"] == [ALARM]
    assert keys["deploymentConfiguration.alarms.alarmNames"]["warning"].startswith(f"deployment alarm {TEAM_ALARM}")
    # deploy.yaml is the truth: the service now has what it says, in its own family and container.
    svc = world.service(LEGACY)
    assert svc["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert svc["deploymentConfiguration"]["alarms"]["alarmNames"] == [ALARM]
    assert svc["taskDefinition"].endswith(f"{LEGACY}:2") and svc["taskDefinition"] != legacy_td
    td = world.c("ecs").describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    assert [c["name"] for c in td["containerDefinitions"]] == ["app"]


def test_settings_changed_by_hand_are_not_overwritten_silently(world: World, sim: Any, tmp_path: Path) -> None:
    # The reported bug, with deployctl's own names (no adoption keys): breaker rollback turned
    # off and a team alarm added by hand; the next deploy changed both without a word.
    _legacy_service(world, name=API, family="chat-api-staging-api", container="api")
    res = deploy(load(tmp_path, base_config(world)), world.push("v1"))

    assert res.exit_code == 0, res.text
    assert "circuit breaker rollback: false → true" in res.text
    assert f"warning: deployment alarm {TEAM_ALARM} guards the live service and is not in deploy.yaml" in res.text
    assert "deploymentConfiguration.alarms.alarmNames" in res.outputs["service_changes"]


def test_identical_settings_say_nothing_changes(world: World, sim: Any, tmp_path: Path) -> None:
    cfg = load(tmp_path, base_config(world))
    assert deploy(cfg, world.push("v1")).exit_code == 0
    res = deploy(cfg, world.push("v2"))

    assert res.exit_code == 0, res.text
    assert "no service setting changes" in res.text
    assert "service_changes" not in res.outputs


def test_rollback_after_the_first_deploy_returns_to_the_adopted_revision(world: World, sim: Any,
                                                                         tmp_path: Path) -> None:
    legacy_td = _legacy_service(world)
    cfg = load(tmp_path, _adopting_config(world, family=LEGACY))
    res = deploy(cfg, world.push("v1"))
    assert res.exit_code == 0, res.text
    assert f"adopted {LEGACY}:1: recorded as release" in res.text

    # The revision that ran before is an ordinary succeeded release of this app/env/service.
    tags = world.td_tags(legacy_td)
    assert tags["deployctl:outcome"] == "succeeded"
    assert (tags["deployctl:app"], tags["deployctl:env"], tags["deployctl:service"]) == ("chat-api", "staging", "api")
    history = EcsTarget(cfg).history()
    assert [r.outcome for r in history.releases] == ["succeeded", "succeeded"]
    assert history.current == res.outputs["release"]
    choice = EcsTarget(cfg).choose_rollback()
    assert choice.target.id == tags["deployctl:release"]
    assert choice.target.revisions["api"].arn == legacy_td


def test_adopting_into_deployctls_own_family_copies_the_live_revision(world: World, sim: Any,
                                                                     tmp_path: Path) -> None:
    # Without `family:` the releases go to chat-api-staging-api; the legacy revision lives in
    # legacy-api, so a copy of it (as it is) is the adopted release in deployctl's family.
    legacy_td = _legacy_service(world)
    cfg = load(tmp_path, _adopting_config(world))
    res = deploy(cfg, world.push("v1"))
    assert res.exit_code == 0, res.text

    ours = world.revisions("chat-api-staging-api")
    assert len(ours) == 2
    copy = world.c("ecs").describe_task_definition(taskDefinition=ours[0], include=["TAGS"])
    legacy = world.c("ecs").describe_task_definition(taskDefinition=legacy_td)["taskDefinition"]
    assert copy["taskDefinition"]["containerDefinitions"][0]["image"] == legacy["containerDefinitions"][0]["image"]
    assert world.td_tags(legacy_td) == {}  # the other tool's revision is left alone
    choice = EcsTarget(cfg).choose_rollback()
    assert choice.target.revisions["api"].arn == ours[0]
    assert choice.target.detail.startswith("live before deployctl")


def test_a_second_deploy_records_no_adoption(world: World, sim: Any, tmp_path: Path) -> None:
    _legacy_service(world)
    cfg = load(tmp_path, _adopting_config(world, family=LEGACY))
    assert deploy(cfg, world.push("v1")).exit_code == 0
    res = deploy(cfg, world.push("v2"))

    assert res.exit_code == 0, res.text
    assert "adopted" not in res.text
    assert len(EcsTarget(cfg).history().releases) == 3


def _diff_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return in_process.run("diff", "-f", str(tmp_path / "deploy.yaml"), "--env", "staging", *args)


def test_diff_shows_the_changes_and_changes_nothing(world: World, sim: Any, tmp_path: Path) -> None:
    _legacy_service(world)
    cfg = load(tmp_path, _adopting_config(world, family=LEGACY))
    before = world.service(LEGACY)

    shown = _diff_cli(tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "legacy-api: 3 service settings change" in shown.stdout
    assert "circuit breaker rollback: false → true" in shown.stdout
    assert f"warning: deployment alarm {TEAM_ALARM} guards the live service" in shown.stdout
    as_json = _diff_cli(tmp_path, "--json", "--exit-code")
    assert as_json.returncode == 1, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["schema"] == "deployctl.diff/v1" and doc["changed"] is True
    assert doc["services"]["api"]["ecs_service"] == LEGACY and doc["services"]["api"]["exists"] is True
    assert [c["key"] for c in doc["services"]["api"]["changes"]] == [
        "deploymentConfiguration.deploymentCircuitBreaker.rollback", "deploymentConfiguration.alarms.alarmNames",
        "healthCheckGracePeriodSeconds"]
    # Read-only: the service is as it was.
    assert calls(sim, "UpdateService") == 0
    assert world.service(LEGACY)["deploymentConfiguration"] == before["deploymentConfiguration"]

    assert deploy(cfg, world.push("v1")).exit_code == 0
    after = _diff_cli(tmp_path, "--exit-code")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "legacy-api: no service setting changes" in after.stdout


def test_diff_of_a_service_not_created_yet(world: World, sim: Any, tmp_path: Path) -> None:
    load(tmp_path, base_config(world))
    res = _diff_cli(tmp_path, "--exit-code")
    assert res.returncode == 1
    assert "chat-api-staging-api: does not exist yet; the deploy creates it" in res.stdout

"""Pure helpers of the ECS target and release tags: task definition comparison after AWS's
normalisation, service-setting drift, the revision to roll back to, release ids and tags."""

from __future__ import annotations

import copy
import socket
from datetime import UTC, datetime
from typing import Any

import pytest

from deployctl import releases_tags
from deployctl.adapters.ecs_gateway import ServiceState
from deployctl.preflight import role_name, ssm_name
from deployctl.service_diff import compare
from deployctl.targets.ecs import (
    find_started_deployment,
    previous_revision,
    same_task_definition,
    td_differences,
)

REQUEST: dict[str, Any] = {
    "family": "chat-api-staging-api",
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "1024",
    "memory": "4096",
    "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
    "containerDefinitions": [{
        "name": "api",
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/chat-api@sha256:" + "a" * 64,
        "essential": True,
        "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        "secrets": [{"name": "K", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf"}],
        "portMappings": [{"containerPort": 8000, "protocol": "tcp", "name": "api-http"}],
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/deployctl/chat-api/staging"}},
        "dockerLabels": {"deployctl.app": "chat-api"},
        "stopTimeout": 30,
    }],
    "executionRoleArn": "arn:aws:iam::123456789012:role/chat-api-execution",
    "tags": [{"key": "deployctl:release", "value": "r1"}],
}


def described(request: dict[str, Any]) -> dict[str, Any]:
    """What DescribeTaskDefinition returns for `request` on AWS: read-only fields and defaults added."""
    td = copy.deepcopy(request)
    td.pop("tags")
    td.update({
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/chat-api-staging-api:4",
        "revision": 4, "status": "ACTIVE", "volumes": [], "placementConstraints": [],
        "compatibilities": ["EC2", "FARGATE"], "registeredAt": "2026-01-01T10:00:00Z",
        "registeredBy": "arn:aws:sts::123456789012:assumed-role/deployer/ci",
        "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.logging-driver.awslogs"}],
        "enableFaultInjection": False,
    })
    c = td["containerDefinitions"][0]
    c.update({"cpu": 0, "mountPoints": [], "volumesFrom": [], "systemControls": []})
    c["portMappings"][0]["hostPort"] = 8000
    c["environment"] = list(reversed(c["environment"]))  # AWS does not keep the order
    return td


def test_identical_after_aws_normalisation_and_tags_are_ignored() -> None:
    live = described(REQUEST)
    other_release = {**REQUEST, "tags": [{"key": "deployctl:release", "value": "r2"}]}
    assert same_task_definition(other_release, live)


@pytest.mark.parametrize(("path", "value", "diff"), [
    (("containerDefinitions", 0, "image"), "x@sha256:" + "b" * 64, "api.image"),
    (("memory",), "8192", "memory"),
    (("containerDefinitions", 0, "environment"), [{"name": "A", "value": "1"}], "api.environment"),
    (("containerDefinitions", 0, "command"), ["python", "-m", "worker"], "api.command"),
])
def test_a_real_change_is_seen(path: tuple[Any, ...], value: Any, diff: str) -> None:
    changed = copy.deepcopy(REQUEST)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    live = described(REQUEST)
    assert not same_task_definition(changed, live)
    assert td_differences(changed, live) == [diff]


def test_removed_setting_is_a_change() -> None:
    live = described({**REQUEST, "taskRoleArn": "arn:aws:iam::123456789012:role/t"})
    assert td_differences(REQUEST, live) == ["taskRoleArn"]


def _live_service(**kw: Any) -> dict[str, Any]:
    svc = {
        "desiredCount": 2,
        "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True, "rollback": True},
                                    "maximumPercent": 200, "minimumHealthyPercent": 100,
                                    "alarms": {"alarmNames": ["a"], "enable": True, "rollback": True}},
        "capacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}],
        "healthCheckGracePeriodSeconds": 60,
    }
    svc.update(kw)
    return svc


def test_service_drift() -> None:
    # Moved from targets.ecs.service_drift to deployctl.service_diff.compare, which names each
    # setting that changes (the same cases, per setting).
    update = {"desiredCount": 2, "capacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}],
              "deploymentConfiguration": _live_service()["deploymentConfiguration"],
              "healthCheckGracePeriodSeconds": 60}
    assert compare(update, _live_service()) == ()
    assert [c.text() for c in compare({**update, "desiredCount": 3}, _live_service())] == ["desired count: 2 → 3"]
    spot = [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    drift = compare({**update, "capacityProviderStrategy": spot}, _live_service())
    assert [c.setting for c in drift] == ["capacity providers"]
    no_alarms = copy.deepcopy(update)
    no_alarms["deploymentConfiguration"]["alarms"] = {"alarmNames": [], "enable": False, "rollback": False}
    assert [c.key for c in compare(no_alarms, _live_service())] == [
        "deploymentConfiguration.alarms.alarmNames", "deploymentConfiguration.alarms.enable",
        "deploymentConfiguration.alarms.rollback"]


def _d(i: str, status: str, rev: int, state: str) -> dict[str, Any]:
    return {"id": i, "status": status, "rolloutState": state, "taskDefinition": f"arn:td/fam:{rev}"}


def test_previous_revision_prefers_the_completed_deployment() -> None:
    live = {"taskDefinition": "arn:td/fam:9", "deployments": [_d("n", "PRIMARY", 9, "IN_PROGRESS"),
                                                              _d("o", "ACTIVE", 8, "COMPLETED")]}
    assert previous_revision(ServiceState.from_api(live)) == "arn:td/fam:8"
    assert previous_revision(ServiceState.from_api(
        {"taskDefinition": "arn:td/fam:9", "deployments": [_d("n", "PRIMARY", 9, "FAILED")]})) == "arn:td/fam:9"
    assert previous_revision(None) is None


def test_find_started_deployment_ignores_old_ids() -> None:
    svc = ServiceState.from_api(
        {"deployments": [_d("old", "PRIMARY", 3, "IN_PROGRESS"), _d("new", "PRIMARY", 4, "IN_PROGRESS")]})
    assert find_started_deployment(svc, "arn:td/fam:4", {"old"}) == "new"
    assert find_started_deployment(svc, "arn:td/fam:3", {"old"}) is None


def test_release_ids_and_tags() -> None:
    rid = releases_tags.new_release_id(datetime(2026, 3, 15, 10, 15, tzinfo=UTC), "1A2B3C4D5E6F7A8B", "9f3c")
    assert rid == "20260315T101500Z-1a2b3c4d5e6f-9f3c" and releases_tags.is_release_id(rid)
    assert releases_tags.new_release_id(git_sha=None).split("-")[1] == "nosha"
    start = releases_tags.start_tags(who="github:octo cat!", started_at=datetime(2026, 1, 1, tzinfo=UTC))
    end = releases_tags.outcome_tags("rolled-back", finished_at=datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
                                     duration_s=300.04, detail="rolled back to fam:7 (why?)", rolled_back_to="fam:7")
    tags = releases_tags.merge([{"key": "deployctl:release", "value": rid}], {**start, **end})
    parsed = releases_tags.parse(tags)
    assert parsed.release == rid and parsed.actor == "github:octo cat-" and parsed.outcome == "rolled-back"
    assert parsed.duration_s == 300.0 and parsed.rolled_back_to == "fam:7"
    assert parsed.detail == "rolled back to fam:7 -why--"
    assert parsed.started_at == "2026-01-01T00:00:00Z" and parsed.finished_at == "2026-01-01T00:05:00Z"
    with pytest.raises(ValueError):
        releases_tags.outcome_tags("maybe", finished_at=datetime.now(UTC), duration_s=1)
    assert releases_tags.actor({"GITHUB_ACTOR": "octo"}) == "github:octo"
    assert releases_tags.actor({"USER": "ana"}) == f"ana@{socket.gethostname()}"


def test_reference_parsing_for_preflight() -> None:
    assert ssm_name("ssm:/chat-api/database-url") == "/chat-api/database-url"
    assert ssm_name("arn:aws:ssm:us-east-1:123456789012:parameter/chat-api/database-url") == "/chat-api/database-url"
    assert ssm_name("arn:aws:ssm:us-east-1:123456789012:parameter/flat") == "flat"
    assert ssm_name("chat-api/openai-key") is None
    assert ssm_name("arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf") is None
    assert role_name("arn:aws:iam::123456789012:role/service-role/ecs-exec") == "ecs-exec"

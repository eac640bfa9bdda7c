"""The RunTask request of a one-off task, compared whole (pure: deployctl.render.task)."""

from __future__ import annotations

from deployctl.render.task import main_container, run_task_request

TD = "arn:aws:ecs:us-east-1:123456789012:task-definition/chat-api-staging-api:7"
NET = {"awsvpcConfiguration": {"subnets": ["subnet-1"], "securityGroups": ["sg-1"], "assignPublicIp": "DISABLED"}}


def test_the_services_network_and_capacity_providers_with_the_command_overridden() -> None:
    live = {"serviceName": "chat-api-staging-api", "launchType": "", "platformVersion": "LATEST",
            "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}],
            "networkConfiguration": NET, "desiredCount": 3}
    assert run_task_request(cluster="ai-staging", task_definition=TD, container="api",
                            command=["python", "manage.py", "migrate"], placement=live,
                            app="chat-api", env="staging") == {
        "cluster": "ai-staging",
        "taskDefinition": TD,
        "count": 1,
        "startedBy": "deployctl-task",
        "overrides": {"containerOverrides": [{"name": "api", "command": ["python", "manage.py", "migrate"]}]},
        "tags": [{"key": "deployctl:app", "value": "chat-api"}, {"key": "deployctl:env", "value": "staging"}],
        "networkConfiguration": NET,
        "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}],
        "platformVersion": "LATEST",
    }


def test_a_service_without_capacity_providers_runs_on_fargate() -> None:
    req = run_task_request(cluster="c", task_definition=TD, container="api", command=["true"],
                           placement={"networkConfiguration": NET}, app="a", env="e",
                           started_by="deployctl-before-deploy")
    assert req["launchType"] == "FARGATE" and "capacityProviderStrategy" not in req
    assert req["startedBy"] == "deployctl-before-deploy"


def test_the_command_goes_to_the_services_container_or_the_first_essential_one() -> None:
    td = {"containerDefinitions": [{"name": "envoy", "essential": False}, {"name": "app"}, {"name": "api"}]}
    assert main_container(td, "api") == "api"
    assert main_container(td, "web") == "app"

"""Pure request builder for one-off tasks (`deployctl task run`, `before_deploy`): a RunTask
request that runs a service's task definition with a command override, on the service's own
network and capacity (launch type or capacity-provider strategy, platform version).

Same image digest, secrets, roles and log configuration: they all come with the task
definition, which is used as it is (a containerOverrides `command` changes only the command,
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerOverride.html).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# `startedBy` (at most 128 characters) marks deployctl's one-off tasks in ListTasks and the console.
STARTED_BY_TASK = "deployctl-task"
STARTED_BY_BEFORE_DEPLOY = "deployctl-before-deploy"
# Keys of a CreateService request or a DescribeServices entry that say where tasks run.
_PLACEMENT_KEYS = ("networkConfiguration", "launchType", "capacityProviderStrategy", "platformVersion")


def main_container(task_definition: Mapping[str, Any], preferred: str = "") -> str:
    """The container a command override goes to: `preferred` (the deploy.yaml service name,
    which deployctl gives its container) when the task definition has it, else the first
    essential container."""
    containers = [c for c in task_definition.get("containerDefinitions") or [] if c.get("name")]
    names = [str(c["name"]) for c in containers]
    if preferred in names:
        return preferred
    essential = [str(c["name"]) for c in containers if c.get("essential", True)]
    return (essential or names or [preferred])[0]


def run_task_request(*, cluster: str, task_definition: str, container: str, command: Sequence[str],
                     placement: Mapping[str, Any], app: str, env: str,
                     started_by: str = STARTED_BY_TASK) -> dict[str, Any]:
    """RunTask for one task of `task_definition` (an ARN) running `command` in `container`.
    `placement` is the service's CreateService request or DescribeServices entry: its network,
    launch type or capacity providers, and platform version are the task's too. The task is
    tagged with the app and environment: the CI role may stop only tasks tagged so."""
    req: dict[str, Any] = {
        "cluster": cluster,
        "taskDefinition": task_definition,
        "count": 1,
        "startedBy": started_by[:128],
        "overrides": {"containerOverrides": [{"name": container, "command": list(command)}]},
        "tags": [{"key": "deployctl:app", "value": app}, {"key": "deployctl:env", "value": env}],
    }
    for key in _PLACEMENT_KEYS:
        value = placement.get(key)
        if value not in (None, "", [], {}):
            req[key] = value
    if "capacityProviderStrategy" in req:  # ECS refuses both in one request
        req.pop("launchType", None)
    elif "launchType" not in req:
        req["launchType"] = "FARGATE"
    net = (req.get("networkConfiguration") or {}).get("awsvpcConfiguration")
    if net is not None:  # DescribeServices returns the same block; keep only what RunTask takes
        req["networkConfiguration"] = {"awsvpcConfiguration": {
            k: v for k, v in net.items() if k in ("subnets", "securityGroups", "assignPublicIp")}}
    return req

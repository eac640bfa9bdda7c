"""`status` of an ECS service mid-rollout: the deployments and events it shows, in
deployctl.status/v1 (absent values are null) and as the text a person reads."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from deployctl.adapters.ecs_gateway import ServiceState
from deployctl.targets.ecs_status import ServiceStatus, render_status

TD = "arn:aws:ecs:us-east-1:123456789012:task-definition/chat-api-prod-api:"
AT = datetime(2026, 1, 1, 10, 0, 32, tzinfo=UTC)

# A DescribeServices entry mid-rollout: the new PRIMARY, and an old deployment whose
# rolloutState ECS does not give (a deployment older than the rollout-state feature).
MOVING: dict[str, Any] = {
    "serviceName": "chat-api-prod-api", "status": "ACTIVE", "desiredCount": 2,
    "deployments": [
        {"id": "ecs-svc/2", "status": "PRIMARY", "taskDefinition": TD + "8", "rolloutState": "IN_PROGRESS",
         "desiredCount": 2, "runningCount": 1, "pendingCount": 1, "failedTasks": 1},
        {"status": "ACTIVE", "taskDefinition": TD + "7", "desiredCount": 2, "runningCount": 2}],
    "events": [{"id": "e2", "createdAt": AT, "message": "(service chat-api-prod-api) has started 1 tasks."},
               {"id": "e1", "message": "(service chat-api-prod-api) an event without a time"}],
}


def _status() -> ServiceStatus:
    state = ServiceState.from_api(MOVING)
    return ServiceStatus("api", "chat-api-prod-api", exists=True, release="r8", outcome="in-progress",
                         task_definition=TD + "8", revision=8, running=1, desired=2, pending=1,
                         rollout_state="IN_PROGRESS", deployments=state.deployments, events=state.events)


def test_the_json_lists_every_deployment_and_event_with_nulls_for_what_ecs_does_not_say() -> None:
    doc = _status().to_json()
    assert doc["deployments"] == [
        {"id": "ecs-svc/2", "status": "PRIMARY", "task_definition": "chat-api-prod-api:8",
         "rollout_state": "IN_PROGRESS", "running": 1, "desired": 2, "failed_tasks": 1},
        {"id": None, "status": "ACTIVE", "task_definition": "chat-api-prod-api:7", "rollout_state": None,
         "running": 2, "desired": 2, "failed_tasks": 0}]
    assert doc["events"] == [{"at": AT.astimezone().isoformat(), "message": MOVING["events"][0]["message"]},
                             {"at": "", "message": MOVING["events"][1]["message"]}]


def test_the_text_shows_each_deployment_and_the_events() -> None:
    cfg = cast(Any, SimpleNamespace(app="chat-api", env_name="prod", environment=SimpleNamespace(cluster="ai-prod")))
    lines = render_status(cfg, [_status()])
    assert lines[0] == "chat-api/prod on cluster ai-prod"
    assert "  deployment ecs-svc/2: primary chat-api-prod-api:8 in_progress 1/2" in lines
    assert "  deployment None: active chat-api-prod-api:7 none 2/2" in lines
    assert f"  {AT.astimezone().isoformat()[:19]}  (service chat-api-prod-api) has started 1 tasks." in lines
    assert lines[-1] == "    (service chat-api-prod-api) an event without a time"

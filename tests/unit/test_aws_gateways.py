"""The typed views the ECS, ELB and CloudWatch gateways build from AWS answers: stopped tasks
(DescribeTasks), task-definition revisions (DescribeTaskDefinition), target health
(DescribeTargetHealth) and deployment alarms (DescribeAlarms). Each answer has the shape the
API reference documents, and each view is also built from an answer missing the optional keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from deployctl.adapters.alarm_gateway import AlarmInfo, describe_alarms
from deployctl.adapters.ecs_gateway import Task, TaskDefinition, tags_of
from deployctl.adapters.elb_gateway import TargetHealth, target_health

TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/ai-prod/0123456789abcdef0123456789abcdef"
TD_ARN = "arn:aws:ecs:us-east-1:123456789012:task-definition/chat-api-prod-api:8"

# A DescribeTasks `tasks[]` entry of a stopped awsvpc task (API_Task.html, API_Container.html).
STOPPED_TASK: dict[str, Any] = {
    "taskArn": TASK_ARN, "taskDefinitionArn": TD_ARN, "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
    "stopCode": "EssentialContainerExited", "stoppedReason": "Essential container in task exited",
    "stoppedAt": datetime(2026, 1, 1, 10, 5, tzinfo=UTC), "healthStatus": "UNHEALTHY",
    "attachments": [{"type": "ElasticNetworkInterface", "status": "DELETED", "details": [
        {"name": "subnetId", "value": "subnet-0abc"}, {"name": "privateIPv4Address", "value": "10.0.1.5"}]}],
    "containers": [
        {"name": "api", "exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage",
         "healthStatus": "UNHEALTHY", "networkInterfaces": [{"privateIpv4Address": "10.0.1.5"}]},
        {"name": "envoy", "exitCode": 0, "networkInterfaces": [{"privateIpv4Address": "10.0.1.6"}]}],
}


def test_a_stopped_task_says_how_each_container_ended_and_its_addresses() -> None:
    task = Task.from_api(STOPPED_TASK)
    assert task.stopped and task.arn == TASK_ARN and task.task_definition == TD_ARN
    assert (task.stop_code, task.stopped_reason) == ("EssentialContainerExited", "Essential container in task exited")
    assert task.stopped_at == datetime(2026, 1, 1, 10, 5, tzinfo=UTC).timestamp()
    assert task.health_status == "UNHEALTHY" and task.ips == {"10.0.1.5", "10.0.1.6"}
    api = task.container("api")
    assert api is not None and api.exit_code == 137 and api.reason.startswith("OutOfMemoryError")
    envoy = task.container("envoy")
    assert envoy is not None and envoy.exit_code == 0 and envoy.reason == "" and envoy.health_status == ""
    assert task.container("missing") is None


def test_a_task_still_provisioning_has_no_exit_codes_and_no_addresses() -> None:
    task = Task.from_api({"taskArn": TASK_ARN, "lastStatus": "PROVISIONING", "containers": [{"name": "api"}],
                          "attachments": [{"type": "ElasticNetworkInterface", "details": []}]})
    assert not task.stopped and task.stop_code == "" and task.stopped_at == 0.0 and task.ips == set()
    assert task.containers[0].exit_code is None
    assert Task.from_api({}).arn == "" and Task.from_api({}).containers == ()


# A DescribeTaskDefinition answer with include=["TAGS"] (API_TaskDefinition.html).
DESCRIBED: dict[str, Any] = {
    "taskDefinition": {
        "taskDefinitionArn": TD_ARN, "family": "chat-api-prod-api", "revision": 8, "status": "ACTIVE",
        "registeredAt": datetime(2026, 1, 1, 10, 0, tzinfo=UTC),
        "containerDefinitions": [
            {"name": "api", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/chat-api@sha256:" + "a" * 64,
             "essential": True, "logConfiguration": {"logDriver": "awslogs", "options": {
                 "awslogs-group": "/deployctl/chat-api/prod", "awslogs-stream-prefix": "api",
                 "awslogs-region": "us-east-1"}}},
            {"name": "envoy", "image": "envoyproxy/envoy:v1.31", "essential": False}]},
    "tags": [{"key": "deployctl:release", "value": "20260101T100000Z-abc1234"},
             {"key": "deployctl:app", "value": "chat-api"}],
}


def test_a_task_definition_revision_with_its_containers_logs_and_tags() -> None:
    td = TaskDefinition.from_api(DESCRIBED)
    assert (td.arn, td.family, td.revision, td.status) == (TD_ARN, "chat-api-prod-api", 8, "ACTIVE")
    assert td.registered_at == "2026-01-01T10:00:00+00:00"
    assert [c.name for c in td.containers] == ["api", "envoy"] and td.essential == ["api"]
    api = td.container("api")
    assert api is not None and api.image.endswith("a" * 64)
    assert dict(td.tags) == {"deployctl:release": "20260101T100000Z-abc1234", "deployctl:app": "chat-api"}
    assert list(td.logs) == ["api"] and td.logs["api"].stream(TASK_ARN) == (
        "api/api/0123456789abcdef0123456789abcdef")
    assert td.definition["family"] == "chat-api-prod-api"  # kept whole for comparison and re-registration


def test_a_task_definition_without_tags_or_optional_keys() -> None:
    td = TaskDefinition.from_api({"taskDefinition": {"taskDefinitionArn": TD_ARN, "registeredAt": "1767261600.0",
                                                     "containerDefinitions": [{"name": "api"}]}})
    assert td.revision == 0 and td.family == "" and dict(td.tags) == {} and dict(td.logs) == {}
    assert td.registered_at == "1767261600.0"  # a JSON recording's text is kept as it is
    assert td.containers[0].essential and td.containers[0].image == ""
    assert TaskDefinition.from_api({}).arn == ""


def test_tag_lists_of_every_service_spelling() -> None:
    assert tags_of([{"key": "a", "value": "1"}, {"Key": "b", "Value": "2"}, {"value": "no key"}, "junk"]) == {
        "a": "1", "b": "2"}
    assert tags_of(None) == {}


# DescribeTargetHealth (API_TargetHealthDescription.html).
class _Elb:
    def describe_target_health(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs == {"TargetGroupArn": "tg"}
        return {"TargetHealthDescriptions": [
            {"Target": {"Id": "10.0.1.5", "Port": 8000}, "HealthCheckPort": "8000",
             "TargetHealth": {"State": "unhealthy", "Reason": "Target.ResponseCodeMismatch",
                              "Description": "Health checks failed with these codes: [502]"}},
            {"Target": {"Id": "10.0.1.6", "Port": 8000}, "TargetHealth": {"State": "healthy"}},
            {"Target": {"Id": "10.0.1.7"}}]}


def test_target_health_names_each_target_its_state_and_why() -> None:
    bad, good, bare = target_health(_Elb(), "tg")
    assert (bad.id, bad.port, bad.state) == ("10.0.1.5", 8000, "unhealthy")
    assert bad.key == "10.0.1.5:8000"
    assert bad.text() == "unhealthy (Target.ResponseCodeMismatch: Health checks failed with these codes: [502])"
    assert good.text() == "healthy" and good.reason == ""
    assert (bare.port, bare.state, bare.key, bare.text()) == (None, "", "10.0.1.7:", "?")
    assert TargetHealth.from_api({}).key == "?:"


# DescribeAlarms (API_MetricAlarm.html, API_CompositeAlarm.html).
class _CloudWatch:
    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def describe_alarms(self, **kwargs: Any) -> dict[str, Any]:
        self.asked.append(kwargs["AlarmNames"])
        return {"MetricAlarms": [
            {"AlarmName": "chat-api-5xx", "StateValue": "ALARM", "Namespace": "AWS/ApplicationELB",
             "MetricName": "HTTPCode_Target_5XX_Count", "Statistic": "Sum",
             "ComparisonOperator": "GreaterThanThreshold", "Threshold": 5.0,
             "StateReason": "Threshold Crossed:\n 1 datapoint [12.0] was greater than the threshold (5.0)."},
            {"AlarmName": "chat-api-p99", "StateValue": "OK"}],
            "CompositeAlarms": [{"AlarmName": "chat-api-any", "StateValue": "INSUFFICIENT_DATA",
                                 "AlarmRule": 'ALARM("chat-api-5xx") OR ALARM("chat-api-p99")'}]}


def test_alarms_say_their_state_reason_and_what_they_watch() -> None:
    cw = _CloudWatch()
    five, p99, anyone = describe_alarms(cw, [f"a{i}" for i in range(150)])
    assert len(cw.asked[0]) == 100  # one call takes at most 100 names; the caller asks again for the rest
    assert five == AlarmInfo("chat-api-5xx", "ALARM",
                             "Threshold Crossed: 1 datapoint [12.0] was greater than the threshold (5.0).",
                             "AWS/ApplicationELB HTTPCode_Target_5XX_Count Sum > 5")
    assert p99 == AlarmInfo("chat-api-p99", "OK")
    assert anyone.metric == 'composite: ALARM("chat-api-5xx") OR ALARM("chat-api-p99")'
    assert AlarmInfo.from_api({}) == AlarmInfo("?", "")

"""The typed views of the non-ECS AWS answers deployctl reads (Application Auto Scaling,
CloudWatch, SNS, SQS, Scheduler, ELBv2/EC2, Secrets Manager/SSM, ECR, the lock table and ECS
clusters, IAM roles). Each answer below has the shape the service's API reference documents (boto3's
parsed form: datetimes, lists), including answers that leave optional keys out."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from deployctl.adapters import (
    autoscaling_gateway,
    cloudwatch_gateway,
    cluster_gateway,
    ecr_gateway,
    iam_gateway,
    network_gateway,
    scheduler_gateway,
    secrets_gateway,
    sns_gateway,
    sqs_gateway,
)
from deployctl.adapters.aws import ClientError
from deployctl.adapters.lock_table import Holder
from deployctl.render import autoscaling as render_autoscaling


class Recorded:
    """A client that answers each call with the next recorded answer for that operation (a
    ClientError instance is raised), and keeps the requests it was sent."""

    def __init__(self, answers: Mapping[str, list[Any]]) -> None:
        self._answers = {op: list(found) for op, found in answers.items()}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, operation: str) -> Any:
        def call(**kwargs: Any) -> Any:
            self.calls.append((operation, kwargs))
            answer = self._answers[operation].pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer
        return call


def error(code: str, operation: str = "Op") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (recorded)"}}, operation)


# --- Application Auto Scaling ----------------------------------------------------------------

RID = "service/prod/chat-api-prod-api"
TARGET = {"ServiceNamespace": "ecs", "ResourceId": RID, "ScalableDimension": "ecs:service:DesiredCount",
          "MinCapacity": 2, "MaxCapacity": 6, "RoleARN": "arn:aws:iam::123456789012:role/aws-service-role/x",
          "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
          "SuspendedState": {"DynamicScalingInSuspended": True, "DynamicScalingOutSuspended": False,
                             "ScheduledScalingSuspended": False}}
CPU_POLICY = {"PolicyARN": "arn:aws:autoscaling:eu-west-1:123456789012:scalingPolicy:1:resource/ecs/x:policyName/"
                           "deployctl-cpu", "PolicyName": "deployctl-cpu", "ServiceNamespace": "ecs",
              "ResourceId": RID, "ScalableDimension": "ecs:service:DesiredCount",
              "PolicyType": "TargetTrackingScaling",
              "TargetTrackingScalingPolicyConfiguration": {
                  "TargetValue": 60.0, "ScaleInCooldown": 300, "ScaleOutCooldown": 60,
                  "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}},
              "Alarms": [{"AlarmName": "TargetTracking-x-AlarmHigh", "AlarmARN": "arn:aws:cloudwatch:x"}],
              "CreationTime": datetime(2026, 1, 1, tzinfo=UTC)}


def test_scalable_target_reads_its_range_and_suspension() -> None:
    target = autoscaling_gateway.ScalableTarget.from_api(TARGET)
    assert (target.resource_id, target.min_capacity, target.max_capacity) == (RID, 2, 6)
    assert target.scale_in_suspended and target.suspended["DynamicScalingOutSuspended"] is False
    bare = autoscaling_gateway.ScalableTarget.from_api({"ResourceId": RID, "MinCapacity": 0, "MaxCapacity": 3})
    assert not bare.scale_in_suspended and dict(bare.suspended) == {}


def test_scaling_policy_compares_with_the_request_deployctl_renders() -> None:
    policy = autoscaling_gateway.ScalingPolicy.from_api(CPU_POLICY)
    assert policy.name == "deployctl-cpu" and policy.arn.endswith("policyName/deployctl-cpu")
    request = {"PolicyName": "deployctl-cpu", "PolicyType": "TargetTrackingScaling",
               "TargetTrackingScalingPolicyConfiguration": dict(CPU_POLICY["TargetTrackingScalingPolicyConfiguration"])}
    assert policy.same_as(request)
    request["TargetTrackingScalingPolicyConfiguration"] = {**request["TargetTrackingScalingPolicyConfiguration"],
                                                           "TargetValue": 70.0}
    assert not policy.same_as(request)
    assert not policy.same_as({**request, "PolicyType": "StepScaling"})
    assert render_autoscaling.policy_text(policy.document()).startswith("ECSServiceAverageCPUUtilization → 60")


def test_scaling_policy_without_a_configuration() -> None:
    policy = autoscaling_gateway.ScalingPolicy.from_api({"PolicyName": "p", "PolicyType": "StepScaling"})
    assert policy.configuration is None and policy.arn == ""
    assert not policy.same_as({"PolicyType": "StepScaling", "StepScalingPolicyConfiguration": {}})
    assert policy.document() == {"PolicyName": "p", "PolicyType": "StepScaling"}


def test_autoscaling_reads_every_page_and_the_latest_activity() -> None:
    client = Recorded({
        "describe_scalable_targets": [{"ScalableTargets": []}],
        "describe_scaling_policies": [{"ScalingPolicies": [CPU_POLICY], "NextToken": "t1"},
                                      {"ScalingPolicies": [{**CPU_POLICY, "PolicyName": "other"}]}],
        "describe_scaling_activities": [
            {"ScalingActivities": [{"ActivityId": "a", "Cause": "monitor alarm x in state ALARM triggered policy "
                                                                 "deployctl-cost-cap-stop",
                                    "StartTime": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)}]},
            {"ScalingActivities": [{"ActivityId": "b"}]}, {"ScalingActivities": []}],
    })
    assert autoscaling_gateway.scalable_target(client, RID) is None
    assert sorted(autoscaling_gateway.policies(client, RID)) == ["deployctl-cpu", "other"]
    assert client.calls[2][1]["NextToken"] == "t1" and client.calls[2][1]["ResourceId"] == RID
    act = autoscaling_gateway.latest_activity(client, RID)
    assert act is not None and act.cause.endswith("deployctl-cost-cap-stop")
    assert str(act.started_at)[:19] == "2026-01-02 03:04:05"
    bare = autoscaling_gateway.latest_activity(client, RID)
    assert bare is not None and (bare.cause, bare.started_at) == ("", None)
    assert autoscaling_gateway.latest_activity(client, RID) is None


def test_the_gateway_names_what_the_renderer_scales() -> None:
    assert (autoscaling_gateway.NAMESPACE, autoscaling_gateway.DIMENSION) == (render_autoscaling.NAMESPACE,
                                                                            render_autoscaling.DIMENSION)


# --- CloudWatch ---------------------------------------------------------------------------------

METRIC_ALARM = {"AlarmName": "chat-api-prod-api-5xx", "AlarmArn": "arn:aws:cloudwatch:eu-west-1:1:alarm:x",
                "ActionsEnabled": True, "OKActions": [], "AlarmActions": [], "InsufficientDataActions": [],
                "StateValue": "ALARM", "StateReason": "Threshold Crossed",
                "StateUpdatedTimestamp": datetime(2026, 1, 1, tzinfo=UTC), "MetricName": "HTTPCode_Target_5XX_Count",
                "Namespace": "AWS/ApplicationELB", "Statistic": "Sum",
                "Dimensions": [{"Name": "LoadBalancer", "Value": "app/x/1"}], "Period": 60,
                "EvaluationPeriods": 3, "Threshold": 5.0, "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching"}


def test_alarm_holds_only_what_the_request_sends() -> None:
    alarm = cloudwatch_gateway.Alarm.from_api(METRIC_ALARM)
    assert alarm.firing and not alarm.has_actions and not alarm.composite
    request = {"AlarmName": "chat-api-prod-api-5xx", "MetricName": "HTTPCode_Target_5XX_Count",
               "Namespace": "AWS/ApplicationELB", "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 3,
               "Threshold": 5, "ComparisonOperator": "GreaterThanThreshold",
               "Dimensions": [{"Name": "LoadBalancer", "Value": "app/x/1"}]}
    assert alarm.holds(request)  # 5 sent, 5.0 stored; AlarmArn and state are CloudWatch's own
    assert not alarm.holds({**request, "Threshold": 6})
    assert not alarm.holds({**request, "Dimensions": []})
    assert not alarm.holds({**request, "AlarmActions": ["arn:aws:sns:x"]})
    acting = cloudwatch_gateway.Alarm.from_api({"AlarmName": "a", "OKActions": ["arn:aws:sns:x"]})
    assert acting.has_actions and acting.state == "" and not acting.firing


def test_alarms_by_name_in_calls_of_100_with_composites_when_asked() -> None:
    names = [f"a{i}" for i in range(150)]
    client = Recorded({"describe_alarms": [
        {"MetricAlarms": [{**METRIC_ALARM, "AlarmName": "a1"}]},
        {"MetricAlarms": [], "CompositeAlarms": [{"AlarmName": "a120", "StateValue": "OK"}]},
        {"MetricAlarms": [{"AlarmName": "a2"}]}]})
    found = cloudwatch_gateway.alarm_states(client, names)
    assert found == {"a1": "ALARM", "a120": "OK"}
    assert [len(c[1]["AlarmNames"]) for c in client.calls] == [100, 50]
    assert all(c[1]["AlarmTypes"] == ["MetricAlarm"] for c in client.calls)
    assert cloudwatch_gateway.alarms(client, ["a2"], types=None)["a2"].state == ""
    assert "AlarmTypes" not in client.calls[-1][1]


def test_metric_value_is_the_newest_point_or_none() -> None:
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    client = Recorded({"get_metric_data": [
        {"MetricDataResults": [{"Id": "m", "Label": "x", "Timestamps": [end, start], "Values": [0.25, 0.5],
                                "StatusCode": "Complete"}]},
        {"MetricDataResults": [{"Id": "m", "Label": "x", "Timestamps": [], "Values": []}]},
        {"MetricDataResults": []}]})
    stat = {"Metric": {"Namespace": "AWS/ECS", "MetricName": "CPUUtilization", "Dimensions": []}, "Period": 900,
            "Stat": "Average"}
    assert cloudwatch_gateway.metric_value(client, stat, start, end) == 0.25
    assert cloudwatch_gateway.metric_value(client, stat, start, end) is None
    assert cloudwatch_gateway.metric_value(client, stat, start, end) is None


def test_metric_filters_every_page_compared_by_the_keys_sent() -> None:
    stored = {"filterName": "chat-api-prod-endpoint-1", "filterPattern": "{ $.status >= 500 }",
              "metricTransformations": [{"metricName": "Errors", "metricNamespace": "chat", "metricValue": "1"}],
              "creationTime": 1767225600000, "logGroupName": "/ecs/chat-api-prod"}
    client = Recorded({"describe_metric_filters": [{"metricFilters": [stored], "nextToken": "n"},
                                                   {"metricFilters": [{"filterName": "chat-api-prod-endpoint-2"}]}]})
    found = cloudwatch_gateway.metric_filters(client, "/ecs/chat-api-prod", "chat-api-prod-endpoint-")
    assert sorted(found) == ["chat-api-prod-endpoint-1", "chat-api-prod-endpoint-2"]
    assert client.calls[1][1]["nextToken"] == "n"
    request = {"logGroupName": "/ecs/chat-api-prod", "filterName": "chat-api-prod-endpoint-1",
               "filterPattern": "{ $.status >= 500 }", "metricTransformations": stored["metricTransformations"]}
    assert found["chat-api-prod-endpoint-1"].holds(request)
    assert not found["chat-api-prod-endpoint-2"].holds(request)


# --- SNS, SQS, Scheduler ---------------------------------------------------------------------------


def test_subscriptions_pending_and_confirmed() -> None:
    client = Recorded({"list_subscriptions_by_topic": [
        {"Subscriptions": [{"SubscriptionArn": "arn:aws:sns:eu-west-1:1:cap:abc", "Owner": "1", "Protocol": "email",
                            "Endpoint": "ops@example.com", "TopicArn": "arn:aws:sns:eu-west-1:1:cap"}],
         "NextToken": "n"},
        {"Subscriptions": [{"SubscriptionArn": "PendingConfirmation", "Protocol": "https",
                            "Endpoint": "https://hooks.example.com/x"}, {"Protocol": "sqs", "Endpoint": "q"}]}]})
    subs = sns_gateway.subscriptions(client, "arn:aws:sns:eu-west-1:1:cap")
    assert [(s.protocol, s.endpoint, s.confirmed) for s in subs] == [
        ("email", "ops@example.com", True), ("https", "https://hooks.example.com/x", False), ("sqs", "q", False)]


def test_topic_exists_only_a_missing_topic_is_false() -> None:
    client = Recorded({"get_topic_attributes": [{"Attributes": {"TopicArn": "t"}}, error("NotFound"),
                                                error("AuthorizationError")]})
    assert sns_gateway.topic_exists(client, "t")
    assert not sns_gateway.topic_exists(client, "t")
    with pytest.raises(ClientError):
        sns_gateway.topic_exists(client, "t")


def test_queue_url_arn_and_missing_queues_in_both_error_dialects() -> None:
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/chat-api-prod-jobs-dlq"
    client = Recorded({
        "get_queue_url": [{"QueueUrl": url}, error("AWS.SimpleQueueService.NonExistentQueue"),
                          error("QueueDoesNotExist"), error("AccessDenied")],
        "get_queue_attributes": [{"Attributes": {"QueueArn": "arn:aws:sqs:eu-west-1:123456789012:chat-dlq"}}]})
    assert sqs_gateway.queue_url(client, "chat-api-prod-jobs-dlq") == url
    assert sqs_gateway.queue_url(client, "x") is None
    assert not sqs_gateway.queue_exists(client, "x")
    with pytest.raises(ClientError):
        sqs_gateway.queue_exists(client, "x")
    assert sqs_gateway.queue_arn(client, url) == "arn:aws:sqs:eu-west-1:123456789012:chat-dlq"


def test_schedule_names_every_page_none_without_the_group() -> None:
    client = Recorded({
        "get_schedule_group": [{"Name": "chat-api-prod", "State": "ACTIVE"}, error("ResourceNotFoundException")],
        "list_schedules": [{"Schedules": [{"Name": "nightly", "GroupName": "chat-api-prod", "State": "ENABLED"}],
                            "NextToken": "n"}, {"Schedules": [{"Name": "hourly"}]}]})
    assert scheduler_gateway.schedule_names(client, "chat-api-prod") == {"nightly", "hourly"}
    assert scheduler_gateway.schedule_names(client, "chat-api-prod") is None


# --- ELBv2, EC2, ECS clusters ---------------------------------------------------------------------

TG_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/chat-api/73e2d6bc24d8a067"
LB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/chat/50dc6c495c0c9188"


def test_target_group_view_and_a_missing_one() -> None:
    group = network_gateway.TargetGroup.from_api({
        "TargetGroupArn": TG_ARN, "TargetGroupName": "chat-api", "Protocol": "HTTP", "Port": 8080,
        "VpcId": "vpc-1", "TargetType": "ip", "LoadBalancerArns": [LB_ARN]})
    assert (group.name, group.target_type, group.load_balancer_arns) == ("chat-api", "ip", (LB_ARN,))
    assert group.suffix == "targetgroup/chat-api/73e2d6bc24d8a067"
    bare = network_gateway.TargetGroup.from_api({"TargetGroupArn": TG_ARN})
    assert bare.target_type is None and bare.load_balancer_arns == ()
    client = Recorded({"describe_target_groups": [error("TargetGroupNotFound"), {"TargetGroups": []},
                                                  {"TargetGroups": [{"TargetGroupArn": TG_ARN}]}]})
    assert network_gateway.find_target_group(client, "chat-api") is None
    assert network_gateway.find_target_group(client, "chat-api") is None
    assert network_gateway.find_target_group(client, TG_ARN) == bare
    assert client.calls[-1][1] == {"TargetGroupArns": [TG_ARN]}


def test_load_balancer_arn_and_ec2_ids_that_do_not_exist() -> None:
    client = Recorded({"describe_load_balancers": [{"LoadBalancers": [{"LoadBalancerArn": LB_ARN}]},
                                                   {"LoadBalancers": []}],
                       "describe_subnets": [{"Subnets": [{"SubnetId": "subnet-1"}]},
                                            error("InvalidSubnetID.NotFound")],
                       "describe_security_groups": [error("InvalidGroup.NotFound"), error("UnauthorizedOperation")]})
    assert network_gateway.load_balancer_arn(client, "chat") == LB_ARN
    with pytest.raises(LookupError):
        network_gateway.load_balancer_arn(client, "chat")
    assert network_gateway.subnet_exists(client, "subnet-1")
    assert not network_gateway.subnet_exists(client, "subnet-2")
    assert not network_gateway.security_group_exists(client, "sg-1")
    with pytest.raises(ClientError):
        network_gateway.security_group_exists(client, "sg-1")


def test_cluster_view_skips_inactive_and_reads_settings() -> None:
    client = Recorded({"describe_clusters": [
        {"clusters": [{"clusterArn": "arn:aws:ecs:eu-west-1:1:cluster/prod", "clusterName": "prod",
                       "status": "ACTIVE", "capacityProviders": ["FARGATE", "FARGATE_SPOT"],
                       "settings": [{"name": "containerInsights", "value": "enabled"}]}], "failures": []},
        {"clusters": [{"clusterName": "prod", "status": "INACTIVE"}]},
        {"clusters": [], "failures": [{"arn": "x", "reason": "MISSING"}]},
        {"clusters": [{"clusterName": "dev", "settings": [{"name": "containerInsights"}]}]}]})
    prod = cluster_gateway.describe_cluster(client, "prod")
    assert prod is not None and prod.status == "ACTIVE"
    assert prod.capacity_providers == {"FARGATE", "FARGATE_SPOT"} and prod.settings["containerInsights"] == "enabled"
    assert cluster_gateway.describe_cluster(client, "prod") is None
    assert cluster_gateway.describe_cluster(client, "prod") is None
    dev = cluster_gateway.describe_cluster(client, "dev")
    assert dev is not None and dev.status is None and dev.capacity_providers == frozenset()
    assert "containerInsights" not in dev.settings  # no value: preflight says it could not read it


# --- Secrets Manager, SSM, ECR -----------------------------------------------------------------------


def test_secret_meta_versions_value_and_deletion() -> None:
    meta = secrets_gateway.SecretMeta.from_api({
        "ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:db-AbCdEf", "Name": "db",
        "VersionIdsToStages": {"v1": ["AWSPREVIOUS"], "v2": ["AWSCURRENT", "blue"]},
        "LastChangedDate": datetime(2026, 1, 1, tzinfo=UTC)})
    assert meta.has_value and meta.has_stage("blue") and not meta.has_stage("green") and not meta.deleted
    assert set(meta.versions) == {"v1", "v2"}
    pending_only = secrets_gateway.SecretMeta.from_api({"ARN": "arn:x", "VersionIdsToStages": {"v3": ["AWSPENDING"]}})
    assert not pending_only.has_value and pending_only.has_stage("AWSPENDING")
    placeholder = secrets_gateway.SecretMeta.from_api({"ARN": "arn:x", "Name": "db"})
    assert not placeholder.has_value and dict(placeholder.versions) == {}
    deleted = secrets_gateway.SecretMeta.from_api({"ARN": "arn:x", "DeletedDate": datetime(2026, 1, 1, tzinfo=UTC)})
    assert deleted.deleted
    client = Recorded({"describe_secret": [error("ResourceNotFoundException"), error("AccessDeniedException")]})
    assert secrets_gateway.describe_secret(client, "db") is None
    with pytest.raises(ClientError):
        secrets_gateway.describe_secret(client, "db")


def test_parameter_found_with_or_without_an_arn() -> None:
    client = Recorded({"describe_parameters": [
        {"Parameters": [{"Name": "/chat/db", "ARN": "arn:aws:ssm:eu-west-1:1:parameter/chat/db",
                         "Type": "SecureString", "Version": 3}]},
        {"Parameters": [{"Name": "/chat/db", "Type": "SecureString"}]}, {"Parameters": []}]})
    assert secrets_gateway.find_parameter(client, "/chat/db") == secrets_gateway.Parameter(
        "/chat/db", "arn:aws:ssm:eu-west-1:1:parameter/chat/db")
    assert secrets_gateway.find_parameter(client, "/chat/db") == secrets_gateway.Parameter("/chat/db", "")
    assert secrets_gateway.find_parameter(client, "/chat/db") is None
    assert client.calls[0][1]["ParameterFilters"][0]["Values"] == ["/chat/db"]


def test_ecr_login_and_repository() -> None:
    token = base64.b64encode(b"AWS:s3cret-token").decode()
    client = Recorded({
        "get_authorization_token": [{"authorizationData": [{
            "authorizationToken": token, "expiresAt": datetime(2026, 1, 1, 12, tzinfo=UTC),
            "proxyEndpoint": "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"}]}],
        "describe_repositories": [error("RepositoryNotFoundException")],
        "create_repository": [error("RepositoryAlreadyExistsException")]})
    assert ecr_gateway.login(client) == ecr_gateway.EcrLogin("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "AWS",
                                                             "s3cret-token")
    assert not ecr_gateway.repository_exists(client, "chat-api")
    assert not ecr_gateway.create_repository(client, "chat-api", {"deployctl:app": "chat"})
    assert client.calls[-1][1]["imageTagMutability"] == "IMMUTABLE"


# --- the lock table ------------------------------------------------------------------------------------


def test_holder_round_trips_through_its_item_and_reads_a_partial_one() -> None:
    holder = Holder(key="chat/prod", token="t", who="alice@laptop", host="laptop", pid=42, command="deployctl run",
                    started_at=1767225600.5, expires_at=1767225660.5, release="r-1")
    assert Holder.from_item(holder.item()) == holder
    assert "release" not in Holder(**{**holder.__dict__, "release": ""}).item()
    partial = Holder.from_item({"pk": {"S": "chat/prod"}, "token": {"S": "t"}, "expires_at": {"N": "10"}})
    assert (partial.key, partial.pid, partial.started_at, partial.expires_at, partial.release) == (
        "chat/prod", 0, 0.0, 10.0, "")
    assert partial.describe(now=0).endswith("lease expires in 10s")


def test_role_exists_only_a_missing_role_is_false() -> None:
    client = Recorded({"get_role": [{"Role": {"RoleName": "shop-task", "Arn": "arn:aws:iam::1:role/shop-task"}},
                                    error("NoSuchEntity"), error("AccessDenied")]})
    assert iam_gateway.role_exists(client, "shop-task")
    assert not iam_gateway.role_exists(client, "shop-task")
    with pytest.raises(ClientError):
        iam_gateway.role_exists(client, "shop-task")

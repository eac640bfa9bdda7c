"""diagnose: stopped tasks / events / target health → likely cause + what to try.

Stopped-task and event texts are the ones AWS documents (docs/ecs-rollouts.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deployctl import diagnose as diagnosis
from deployctl.adapters.ecs_gateway import ServiceEvent, Task
from deployctl.adapters.elb_gateway import TargetHealth
from deployctl.diagnose import Context, Finding, render

ARN = "arn:aws:ecs:us-east-1:123456789012:task/ai-prod/0123456789abcdef0123456789abcdef"
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/chat-api-tg/6d0ecf831eec9f09"
CTX = Context(service="api", env="prod", memory_mib=4096, port=8000, health_path="/health/ready", start_period=60,
              log_group="/deployctl/chat-api/prod", log_stream_prefix="api/api",
              execution_role="arn:aws:iam::123456789012:role/chat-api-execution",
              image="123456789012.dkr.ecr.us-east-1.amazonaws.com/chat-api@sha256:" + "a" * 64,
              region="us-east-1", alarms=("chat-api-5xx",))


def task(stop_code: str, reason: str, *, exit_code: int | None = None, container_reason: str | None = None,
         health: str | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "api"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if container_reason:
        container["reason"] = container_reason
    out: dict[str, Any] = {"taskArn": ARN, "stopCode": stop_code, "stoppedReason": reason, "containers": [container]}
    if health:
        out["healthStatus"] = health
        container["healthStatus"] = health
    return out


def diagnose(*, stopped_tasks: Sequence[dict[str, Any]] = (), targets: Sequence[dict[str, Any]] | None = None,
             **kwargs: Any) -> list[Finding]:
    """The diagnosis of recorded-shape answers (DescribeTasks and DescribeTargetHealth entries),
    read through the gateways as the watcher reads them."""
    return diagnosis.diagnose(stopped_tasks=[Task.from_api(t) for t in stopped_tasks],
                              targets=None if targets is None else [TargetHealth.from_api(t) for t in targets],
                              **kwargs)


def keys(findings: list[Any]) -> list[str]:
    return [f.key for f in findings]


def test_image_pull_failure() -> None:
    t = task("TaskFailedToStart", "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed "
             "to resolve ref 123456789012.dkr.ecr.us-east-1.amazonaws.com/chat-api:abc: not found")
    (f,) = diagnose(stopped_tasks=[t, t], context=CTX)
    assert f.key == "image_pull" and f.count == 2
    assert "ecr:BatchGetImage" in f.advice and "chat-api-execution" in f.advice and CTX.image in f.advice
    assert "CannotPullContainerError" in f.evidence


def test_secrets_failure() -> None:
    t = task("TaskFailedToStart", "ResourceInitializationError: unable to pull secrets or registry auth: execution "
             "resource retrieval failed: unable to retrieve secret from asm: service call has been retried 1 "
             "time(s): ...")
    (f,) = diagnose(stopped_tasks=[t], context=CTX)
    assert f.key == "secrets" and "GetSecretValue" in f.advice and "services.api.secrets" in f.advice


def test_other_resource_initialisation_failure() -> None:
    t = task("TaskFailedToStart", "ResourceInitializationError: failed to validate logger args: ... "
             "AccessDeniedException: logs:CreateLogStream")
    assert keys(diagnose(stopped_tasks=[t], context=CTX)) == ["init"]


def test_out_of_memory() -> None:
    t = task("EssentialContainerExited", "Essential container in task exited", exit_code=137,
             container_reason="OutOfMemoryError: Container killed due to memory usage")
    (f,) = diagnose(stopped_tasks=[t], context=CTX)
    assert f.key == "oom" and "services.api.memory (now 4096 MiB)" in f.advice


def test_exit_137_without_oom_reason() -> None:
    t = task("EssentialContainerExited", "Essential container in task exited", exit_code=137)
    assert keys(diagnose(stopped_tasks=[t], context=CTX)) == ["killed"]


def test_crash_points_to_the_logs() -> None:
    t = task("EssentialContainerExited", "Essential container in task exited", exit_code=3)
    (f,) = diagnose(stopped_tasks=[t], context=CTX)
    assert f.key == "crash" and "code 3" in f.cause
    assert "aws logs tail /deployctl/chat-api/prod --log-stream-name-prefix api/api --since 30m" in f.advice


def test_container_health_check_failing() -> None:
    t = task("ServiceSchedulerInitiated", "Task failed container health checks", health="UNHEALTHY")
    (f,) = diagnose(stopped_tasks=[t], context=CTX)
    assert f.key == "container_health" and "start_period (now 60s)" in f.advice and "wget or curl" in f.advice


def test_elb_health_check_failing_from_task_event_and_targets() -> None:
    t = task("ServiceSchedulerInitiated", f"Task failed ELB health checks in (target-group {TG})")
    assert keys(diagnose(stopped_tasks=[t], context=CTX)) == ["elb_health"]
    event = {"message": f"(service chat-api-api) (task 0123) (port 8000) is unhealthy in (target-group {TG}) due to "
                        "(reason Health checks failed with these codes: [502])."}
    (f,) = diagnose(events=[ServiceEvent.from_api(event)], context=CTX)
    assert f.key == "elb_health" and "port 8000, path /health/ready" in f.advice
    targets = [{"Target": {"Id": "10.0.1.5", "Port": 8000},
                "TargetHealth": {"State": "unhealthy", "Reason": "Target.Timeout", "Description": "Request timed out"}}]
    (f,) = diagnose(targets=targets, context=CTX)
    assert f.key == "elb_health" and "Target.Timeout" in f.evidence


def test_tasks_replaced_by_the_deployment_are_ignored() -> None:
    t = task("ServiceSchedulerInitiated", "Scaling activity initiated by (deployment ecs-svc/1)", exit_code=0)
    assert keys(diagnose(stopped_tasks=[t], cause="timeout", context=CTX)) == ["timeout"]


def test_placement_and_deployment_configuration_events() -> None:
    events = [
        {"message": "(service s) was unable to place a task. Reason: Capacity is unavailable at this time."},
        {"message": "(service s) was unable to stop or start tasks during a deployment because of the service "
                    "deployment configuration. Update the minimumHealthyPercent or maximumPercent value and try "
                    "again."},
    ]
    assert keys(diagnose(events=[ServiceEvent.from_api(e) for e in events], context=CTX)) == ["placement",
                                                                                                 "deploy_config"]


def test_alarm_cause_names_the_alarm() -> None:
    (f,) = diagnose(cause="alarm", context=CTX)
    assert f.key == "alarm" and "chat-api-5xx" in f.cause


def test_never_empty_and_ordered_most_specific_first() -> None:
    (f,) = diagnose(context=CTX)
    assert f.key == "unknown" and "deployctl status --env prod" in f.advice
    oom = task("EssentialContainerExited", "Essential container in task exited", exit_code=137,
               container_reason="OutOfMemoryError: Container killed due to memory usage")
    pull = task("TaskFailedToStart", "CannotPullContainerError: not found")
    assert keys(diagnose(stopped_tasks=[oom, pull], cause="alarm", context=CTX)) == ["image_pull", "oom", "alarm"]


def test_render_lines() -> None:
    t = task("EssentialContainerExited", "Essential container in task exited", exit_code=1)
    lines = render(diagnose(stopped_tasks=[t, t, t], context=CTX))
    assert lines[0].startswith("likely cause (3 tasks): The container exited with code 1")
    assert lines[1].startswith("  what to try: read the logs")
    assert lines[2].startswith("  seen: ")


# Every message of the "unable to pull secrets or registry auth" family contains the word "secrets";
# what failed is in the detail after it (AWS's stopped-task error texts, docs/ecs-rollouts.md).
RETRIEVAL = "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval " \
            "failed: "


def test_ecr_registry_auth_timeout_is_a_network_problem_not_secrets() -> None:
    t = task("TaskFailedToStart", RETRIEVAL + "unable to retrieve ecr registry auth: service call has been retried "
             "3 time(s): RequestError: send request failed caused by: Post \"https://api.ecr.us-east-1.amazonaws.com/"
             "\": dial tcp 52.46.146.144:443: i/o timeout")
    t["containers"][0]["reason"] = t["stoppedReason"]
    (f,) = diagnose(stopped_tasks=[t], cause="ecs_rollback", context=CTX)
    assert f.key == "network" and "ECR" in f.cause
    assert "NAT gateway" in f.advice and "ecr.api" in f.advice and "public_ip" in f.advice
    assert "GetSecretValue" not in f.advice


def test_ecr_registry_auth_denied_names_get_authorization_token() -> None:
    t = task("TaskFailedToStart", RETRIEVAL + "unable to retrieve ecr registry auth: service call has been retried "
             "3 time(s): AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/chat-api-execution/x "
             "is not authorized to perform: ecr:GetAuthorizationToken on resource: *")
    (f,) = diagnose(stopped_tasks=[t], context=CTX)
    assert f.key == "registry_auth" and "not allowed" in f.cause
    assert "chat-api-execution needs ecr:GetAuthorizationToken" in f.advice


def test_secrets_manager_timeout_is_a_network_problem() -> None:
    t = task("TaskFailedToStart", RETRIEVAL + "unable to retrieve secret from asm: service call has been retried 5 "
             "time(s): RequestError: send request failed caused by: Post \"https://secretsmanager.us-east-1."
             "amazonaws.com/\": dial tcp 10.0.0.1:443: i/o timeout")
    (f,) = diagnose(stopped_tasks=[t], context=CTX)
    assert f.key == "network" and "Secrets Manager" in f.cause


def test_real_secrets_failures_stay_secrets() -> None:
    denied = task("TaskFailedToStart", RETRIEVAL + "unable to retrieve secret from asm: service call has been retried "
                  "1 time(s): AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/chat-api-execution/x "
                  "is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:"
                  "us-east-1:123456789012:secret:chat-api/openai-key-AbCdEf")
    missing = task("TaskFailedToStart", RETRIEVAL + "unable to retrieve secret from asm: service call has been "
                   "retried 1 time(s): failed to fetch secret arn:aws:secretsmanager:us-east-1:123456789012:secret:"
                   "chat-api/gone from secrets manager: ResourceNotFoundException: Secrets Manager can't find the "
                   "specified secret.")
    ssm = task("TaskFailedToStart", RETRIEVAL + "unable to retrieve secrets from ssm: service call has been retried "
               "1 time(s): invalid parameters: /chat-api/database-url")
    for t in (denied, missing, ssm):
        # ECS repeats the text as the container's reason: both copies name "registry auth".
        t["containers"][0]["reason"] = t["stoppedReason"]
        assert keys(diagnose(stopped_tasks=[t], context=CTX)) == ["secrets"], t["stoppedReason"]


def replaced(exit_code: int) -> dict[str, Any]:
    return task("ServiceSchedulerInitiated", "Scaling activity initiated by (deployment ecs-svc/1234567890123456789)",
                exit_code=exit_code)


def test_tasks_scaled_in_by_an_alarm_rollback_are_not_a_crash() -> None:
    # ECS rolls back after the alarm and scales our healthy tasks in: SIGTERM (no handler → 143), or
    # SIGKILL after stopTimeout (137). ECS stopped them; the alarm is the cause.
    events = [{"message": "(service chat-api-api) (deployment ecs-svc/99) deployment failed: alarm detected."}]
    for code in (143, 137, 1):
        findings = diagnose(stopped_tasks=[replaced(code), replaced(code)],
                            events=[ServiceEvent.from_api(e) for e in events], cause="ecs_rollback",
                            context=CTX)
        assert keys(findings) == ["alarm"], code
        assert render(findings)[0].startswith("likely cause: chat-api-5xx went into ALARM")


def test_an_oom_kill_during_a_scale_in_is_still_an_oom() -> None:
    t = task("ServiceSchedulerInitiated", "Scaling activity initiated by (deployment ecs-svc/1)", exit_code=137,
             container_reason="OutOfMemoryError: Container killed due to memory usage")
    assert keys(diagnose(stopped_tasks=[t], cause="alarm", context=CTX)) == ["oom", "alarm"]


def test_alarm_cause_names_the_alarms_that_fired_with_metric_and_reason() -> None:
    from deployctl.rollout import AlarmInfo

    fired = AlarmInfo.from_api({
        "AlarmName": "chat-api-p99", "StateValue": "ALARM", "Namespace": "AWS/ApplicationELB",
        "MetricName": "TargetResponseTime", "ExtendedStatistic": "p99", "Threshold": 2.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "StateReason": "Threshold Crossed: 3 datapoints were greater than the threshold (2.0)."})
    quiet = AlarmInfo("chat-api-5xx", "OK")
    (f,) = diagnose(cause="alarm", context=CTX, alarms_firing=[fired, quiet])
    assert f.cause.startswith("The deployment alarm chat-api-p99 (AWS/ApplicationELB TargetResponseTime p99 > 2) "
                              "went into ALARM")
    assert "chat-api-5xx" not in f.cause  # configured, but it did not fire
    assert f.evidence == "chat-api-p99: Threshold Crossed: 3 datapoints were greater than the threshold (2.0)."

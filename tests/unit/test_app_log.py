"""Which stopped container's log explains a failure, and where the awslogs driver put it."""

from __future__ import annotations

from deployctl import diagnose
from deployctl.adapters.ecs_gateway import Task
from deployctl.adapters.logs import AwsLogs, container_logs

ARN = "arn:aws:ecs:us-east-1:123456789012:task/ai-staging/0f1e2d3c4b5a"


def _task(arn: str, stopped: float, *containers: dict, reason: str = "Essential container in task exited") -> Task:
    return Task.from_api({"taskArn": arn, "stoppedAt": stopped, "stoppedReason": reason,
                          "containers": list(containers)})


def test_the_container_that_exited_non_zero_is_chosen_over_a_clean_sidecar() -> None:
    task = _task(ARN, 10, {"name": "envoy", "exitCode": 0}, {"name": "api", "exitCode": 1})
    assert diagnose.failing_container([task]) == (task, "api", 1)


def test_the_newest_failure_wins_and_scaled_in_tasks_are_passed_over() -> None:
    old = _task("t/old", 10, {"name": "api", "exitCode": 1})
    new = _task("t/new", 20, {"name": "api", "exitCode": 2})
    scaled = _task("t/scaled", 30, {"name": "api", "exitCode": 143},
                   reason="Scaling activity initiated by (deployment ecs-svc/1)")
    assert diagnose.failing_container([old, new, scaled])[0] is new
    assert diagnose.failing_container([scaled]) is None


def test_a_container_with_only_a_reason_is_chosen_when_none_exited() -> None:
    task = _task(ARN, 5, {"name": "api", "reason": "CannotPullContainerError: not found"},
                 reason="CannotPullContainerError")
    assert diagnose.failing_container([task]) == (task, "api", None)


def test_the_stream_is_prefix_container_task_id() -> None:
    td = {"containerDefinitions": [
        {"name": "api", "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": "/deployctl/chat-api/staging", "awslogs-stream-prefix": "api",
            "awslogs-region": "us-east-1"}}},
        {"name": "sidecar", "logConfiguration": {"logDriver": "json-file"}}]}
    found = container_logs(td)
    assert list(found) == ["api"]
    assert found["api"].stream(ARN) == "api/api/0f1e2d3c4b5a"
    # Without a prefix the driver names streams by Docker container id: no name to give.
    assert AwsLogs("api", "/g").stream(ARN) == ""


def test_the_rendered_lines_say_what_is_missing() -> None:
    log = diagnose.AppLog(task_id="abc", container="api", exit_code=1, missing="no log stream api/api/abc in /g")
    assert diagnose.render_app_log(log) == ["last lines of api in task abc, exit 1: no log stream api/api/abc in /g"]
    full = diagnose.AppLog(task_id="abc", container="api", log_group="/g", log_stream="api/api/abc",
                           log_lines=("a", "b"))
    assert diagnose.render_app_log(full) == ["last lines of api in task abc (/g api/api/abc):", "  | a", "  | b"]

"""The typed views of AWS and Docker answers: what deployctl reads out of a DescribeServices
entry (the recorded rollouts in tests/unit/data/rollouts) and out of `docker inspect`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from deployctl.adapters.ecs_gateway import ServiceState, timestamp
from deployctl.adapters.engine_view import ContainerView

DATA = Path(__file__).parent / "data" / "rollouts"


def _entry(name: str, step: int) -> dict:
    doc = json.loads((DATA / f"{name}.json").read_text())
    return doc["steps"][step]["describe_services"]["services"][0]


def test_service_state_reads_the_primary_deployment_and_its_counts() -> None:
    state = ServiceState.from_api(_entry("breaker_rollback", 1))
    primary = state.primary
    assert primary is not None and primary.id == "ecs-svc/1174035815926391270"
    assert (primary.desired, primary.running, primary.pending, primary.failed_tasks) == (2, 0, 2, 2)
    assert primary.rollout_state == "IN_PROGRESS" and primary.task_definition.endswith("chat-api-prod-api:8")
    assert primary.counts_text() == "running 0/2, pending 2, failed 2"
    old = state.deployment("ecs-svc/6893472562508357546")
    assert old is not None and not old.is_primary and old.rollout_state == "COMPLETED"
    assert state.others(primary) == [old]
    assert state.deployment_ids == {primary.id, old.id}
    assert state.rollback_configured and not state.gone
    assert state.target_groups and all(arn.startswith("arn:aws:elasticloadbalancing") for arn in state.target_groups)


def test_service_state_events_keep_ids_messages_and_times() -> None:
    state = ServiceState.from_api(_entry("breaker_rollback", 1))
    first = state.events[0]
    assert first.id == "e0003-5f1c-4a0e-9d43-0c3f7b2a0003" and first.message.startswith("(service chat-api-api)")
    assert first.created_at == datetime(2026, 1, 1, 10, 0, 32, tzinfo=UTC).timestamp()
    assert first.id in state.event_ids


def test_service_without_primary_or_rollback_settings() -> None:
    state = ServiceState.from_api({"serviceName": "s", "status": "DRAINING",
                                   "deployments": [{"id": "a", "status": "ACTIVE"}],
                                   "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True,
                                                                                            "rollback": False}}})
    assert state.primary is None and state.gone and not state.rollback_configured
    assert state.deployments[0].rollout_state == "" and state.deployments[0].desired == 0
    alarms_only = ServiceState.from_api({"deploymentConfiguration": {"alarms": {"enable": True, "rollback": True}}})
    assert alarms_only.rollback_configured


def test_service_tags_come_as_a_mapping() -> None:
    state = ServiceState.from_api({"serviceName": "s", "tags": [{"key": "deployctl:app", "value": "chat"},
                                                                 {"value": "no key"}]})
    assert dict(state.tags) == {"deployctl:app": "chat"}


def test_timestamps_from_boto3_and_from_recordings() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    assert timestamp(when) == timestamp(when.isoformat()) == timestamp(str(when.timestamp())) == when.timestamp()
    assert timestamp(None) == timestamp("yesterday") == 0.0


INSPECT = {
    "Name": "/chat-api-local-api-r3-0",
    "Image": "sha256:" + "ab" * 32,
    "RestartCount": 2,
    "State": {"Status": "running", "ExitCode": 0, "OOMKilled": False,
              "Health": {"Status": "unhealthy", "FailingStreak": 3,
                         "Log": [{"ExitCode": 1, "Output": "wget: server returned error: HTTP/1.0 503\n"}]}},
    "Config": {"Labels": {"deployctl.release": "r3"}},
    "NetworkSettings": {"Ports": {"8000/tcp": [{"HostIp": "", "HostPort": "49153"}], "9000/tcp": None}},
}


def test_container_view_reads_state_health_labels_and_ports() -> None:
    view = ContainerView.from_attrs(INSPECT)
    assert view.name == "chat-api-local-api-r3-0" and view.image.startswith("sha256:")
    assert (view.status, view.exit_code, view.oom_killed, view.restarts) == ("running", 0, False, 2)
    assert view.health == "unhealthy" and view.failing_streak == 3
    assert view.health_log[0].exit_code == 1 and "503" in view.health_log[0].output
    assert view.labels == {"deployctl.release": "r3"}
    assert view.host_address(8000) == "127.0.0.1:49153" and view.host_address(9000) == ""


def test_container_without_health_check() -> None:
    view = ContainerView.from_attrs({"State": {"Status": "exited", "ExitCode": 137, "OOMKilled": True}})
    assert view.health is None and view.failing_streak is None and view.health_log == ()
    assert view.exit_code == 137 and view.oom_killed

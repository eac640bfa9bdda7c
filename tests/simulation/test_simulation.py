"""Tests of the ECS rollout SIMULATION itself, driven with plain boto3 over HTTP.

Each test asserts a sequence documented in docs/ecs-rollouts.md. Phase durations are
tens of milliseconds, so waits are short; ``wait_for`` polls like a watcher would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.simulation import (
    ALARM_FAILED_REASON,
    BREAKER_FAILED_REASON,
    RolloutSimulation,
    Scenario,
    moto_patches,
)
from tests.simulation.ecs_rollout import SimService

FAST = {"start_s": 0.05, "healthy_s": 0.05, "fail_s": 0.05, "drain_s": 0.05, "bake_s": 0.1}
CLUSTER = "prod"


@pytest.fixture
def sim(ecs_sim: RolloutSimulation) -> RolloutSimulation:
    ecs_sim.configure(**FAST)
    return ecs_sim


@pytest.fixture
def stepped(sim: RolloutSimulation) -> RolloutSimulation:
    """The simulation with its clock frozen: it moves only when the test steps it."""
    sim.freeze()
    return sim


@pytest.fixture
def ecs(aws: Any, sim: RolloutSimulation) -> Any:
    client = aws.client("ecs")
    client.create_cluster(clusterName=CLUSTER)
    for n in (1, 2):
        client.register_task_definition(
            family="api",
            containerDefinitions=[
                {
                    "name": "web",
                    "image": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/api:v{n}",
                    "memory": 2048,
                    "portMappings": [{"containerPort": 8080}],
                    "secrets": [
                        {"name": "TOKEN", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:tok"}
                    ],
                }
            ],
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="1024",
            memory="2048",
        )
    return client


def wait_for(probe: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``probe`` like a watcher would until it is truthy. With the simulation's clock frozen
    (the ``stepped`` fixture) the clock is stepped instead, one scheduled step per probe, so a
    state that lasts a single phase is seen however slow the machine is."""
    sim = moto_patches.active()
    if sim is not None and sim.frozen:
        return sim.run_until(probe, max_seconds=timeout)
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")


def create(ecs: Any, name: str = "api", desired: int = 2, td: str = "api:1", **dc: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if "loadBalancers" in dc:
        kwargs["loadBalancers"] = dc.pop("loadBalancers")
    return ecs.create_service(
        cluster=CLUSTER,
        serviceName=name,
        taskDefinition=td,
        desiredCount=desired,
        launchType="FARGATE",
        deploymentConfiguration=dc,
        **kwargs,
    )["service"]


def describe(ecs: Any, name: str = "api") -> dict[str, Any]:
    return ecs.describe_services(cluster=CLUSTER, services=[name])["services"][0]


def primary(svc: dict[str, Any]) -> dict[str, Any]:
    return next(d for d in svc["deployments"] if d["status"] == "PRIMARY")


def steady_on(ecs: Any, deployment_id: str, name: str = "api") -> Callable[[], Any]:
    def probe() -> Any:
        svc = describe(ecs, name)
        deps = svc["deployments"]
        ok = len(deps) == 1 and deps[0]["id"] == deployment_id and deps[0]["rolloutState"] == "COMPLETED"
        return svc if ok else None

    return probe


def deployed(ecs: Any, name: str = "api", **dc: Any) -> str:
    first = primary(create(ecs, name, **dc))["id"]
    wait_for(steady_on(ecs, first, name))
    return first


def messages(svc: dict[str, Any]) -> list[str]:
    return [e["message"] for e in svc["events"]]


def stopped_tasks(ecs: Any, name: str = "api") -> list[dict[str, Any]]:
    arns = ecs.list_tasks(cluster=CLUSTER, serviceName=name, desiredStatus="STOPPED")["taskArns"]
    return ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []


BREAKER_ROLLBACK = {"deploymentCircuitBreaker": {"enable": True, "rollback": True}}
BREAKER_ONLY = {"deploymentCircuitBreaker": {"enable": True, "rollback": False}}


def test_success_rollout_replaces_the_old_deployment(ecs: Any, sim: RolloutSimulation) -> None:
    started_wall = time.time()
    old = deployed(ecs)
    svc = ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")["service"]
    new = primary(svc)
    assert new["id"] != old and new["id"].startswith("ecs-svc/") and len(new["id"]) == len("ecs-svc/") + 19
    assert (
        new["rolloutState"] == "IN_PROGRESS" and new["rolloutStateReason"] == f"ECS deployment {new['id']} in progress."
    )
    assert svc["taskDefinition"].endswith("task-definition/api:2")
    assert [(d["id"], d["status"]) for d in svc["deployments"]] == [(new["id"], "PRIMARY"), (old, "ACTIVE")]
    assert new["launchType"] == "FARGATE" and new["failedTasks"] == 0 and new["desiredCount"] == 2
    assert (new["pendingCount"], new["runningCount"], svc["pendingCount"], svc["runningCount"]) == (2, 0, 2, 2)

    done = wait_for(steady_on(ecs, new["id"]))
    dep = done["deployments"][0]
    assert dep["rolloutStateReason"] == f"ECS deployment {new['id']} completed."
    assert (dep["runningCount"], dep["pendingCount"], done["runningCount"]) == (2, 0, 2)
    text = messages(done)
    assert text[0] == "(service api) has reached a steady state."
    assert text[1] == f"(service api) (deployment {new['id']}) deployment completed."
    assert any(m.startswith("(service api) has started 2 tasks: (task ") for m in text)
    assert any(m.startswith("(service api) has stopped 2 running tasks: (task ") for m in text), text
    assert len(text) <= 100
    outcome = sim.deployment(new["id"])
    assert outcome.rollout_state == "COMPLETED" and outcome.completed_at is not None
    assert outcome.completed_at <= time.monotonic()
    assert started_wall <= outcome.completed_wall <= time.time()

    replaced = stopped_tasks(ecs)
    assert {t["stopCode"] for t in replaced} == {"ServiceSchedulerInitiated"}
    assert {t["stoppedReason"] for t in replaced} == {f"Scaling activity initiated by (deployment {new['id']})"}
    assert {t["startedBy"] for t in replaced} == {old}
    assert {c["exitCode"] for t in replaced for c in t["containers"]} == {143}  # SIGTERM
    running = ecs.list_tasks(cluster=CLUSTER, serviceName="api")["taskArns"]
    tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=running)["tasks"]
    assert len(tasks) == 2 and {t["lastStatus"] for t in tasks} == {"RUNNING"}
    assert {t["startedBy"] for t in tasks} == {new["id"]}
    assert all(t["taskDefinitionArn"].endswith("api:2") for t in tasks)


def test_count_only_update_keeps_the_deployment_and_force_makes_a_new_one(ecs: Any) -> None:
    first = deployed(ecs)
    svc = ecs.update_service(cluster=CLUSTER, service="api", desiredCount=3)["service"]
    assert [d["id"] for d in svc["deployments"]] == [first]
    assert svc["deployments"][0]["desiredCount"] == 3
    wait_for(lambda: describe(ecs)["runningCount"] == 3)
    victim = ecs.list_tasks(cluster=CLUSTER, serviceName="api")["taskArns"][0]
    stopped = ecs.stop_task(cluster=CLUSTER, task=victim, reason="operator")["task"]
    assert (stopped["desiredStatus"], stopped["stopCode"], stopped["stoppedReason"]) == (
        "STOPPED",
        "UserInitiated",
        "operator",
    )
    wait_for(lambda: describe(ecs)["runningCount"] == 3 and victim not in ecs.list_tasks(cluster=CLUSTER)["taskArns"])
    assert primary(describe(ecs))["id"] == first
    svc = ecs.update_service(cluster=CLUSTER, service="api", forceNewDeployment=True)["service"]
    forced = primary(svc)
    assert forced["id"] != first and forced["taskDefinition"] == svc["deployments"][1]["taskDefinition"]
    wait_for(steady_on(ecs, forced["id"]))


def test_circuit_breaker_rollback_revives_the_old_deployment_id(ecs: Any, stepped: RolloutSimulation) -> None:
    sim = stepped
    sim.script("api", "success", sim.scenario("tasks_fail_to_start", drain_s=0.4), cluster=CLUSTER)
    old = deployed(ecs, **BREAKER_ROLLBACK)
    new = primary(ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")["service"])["id"]

    def rolling_back() -> Any:
        svc = describe(ecs)
        states = {d["id"]: (d["status"], d["rolloutState"]) for d in svc["deployments"]}
        return svc if states.get(new) == ("ACTIVE", "FAILED") else None

    svc = rolling_back_view = wait_for(rolling_back)
    failed = next(d for d in svc["deployments"] if d["id"] == new)
    assert failed["rolloutStateReason"] == BREAKER_FAILED_REASON
    assert failed["failedTasks"] == 3  # BOUNDED_PERCENT 50% of 2, clamped to the minimum 3
    revived = primary(rolling_back_view)
    assert revived["id"] == old and revived["rolloutState"] == "IN_PROGRESS"
    assert revived["rolloutStateReason"] == f"ECS deployment circuit breaker: rolling back to deploymentId {old}."
    assert svc["taskDefinition"].endswith("api:1")
    assert messages(svc)[:2] == [
        f"(service api) rolling back to deployment {old}.",
        f"(service api) (deployment {new}) deployment failed: tasks failed to start.",
    ]
    done = wait_for(steady_on(ecs, old))
    assert done["deployments"][0]["rolloutStateReason"] == f"ECS deployment {old} completed."
    failures = [t for t in stopped_tasks(ecs) if t["startedBy"] == new]
    assert len(failures) >= 3 and {t["stopCode"] for t in failures} == {"TaskFailedToStart"}
    reason = failures[0]["stoppedReason"]
    assert reason.startswith("CannotPullContainerError: pull image manifest has been retried")
    assert "api:v2: not found" in reason and failures[0]["containers"][0]["reason"] == reason
    assert "startedAt" not in failures[0]
    assert [o.rollout_state for o in sim.outcomes if o.deployment_id == new] == ["FAILED"]


def test_breaker_without_rollback_leaves_primary_failed(ecs: Any, stepped: RolloutSimulation) -> None:
    sim = stepped
    sim.script("api", "success", "tasks_fail_to_start", cluster=CLUSTER, failure="secrets")
    old = deployed(ecs, **BREAKER_ONLY)
    new = primary(ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")["service"])["id"]
    svc = wait_for(lambda: (s := describe(ecs)) and primary(s)["rolloutState"] == "FAILED" and s)
    sim.fast_forward(0.2)  # nothing moves after FAILED
    svc = describe(ecs)
    assert [(d["id"], d["status"], d["rolloutState"]) for d in svc["deployments"]] == [
        (new, "PRIMARY", "FAILED"),
        (old, "ACTIVE", "COMPLETED"),
    ]
    assert svc["deployments"][1]["runningCount"] == 2 and svc["runningCount"] == 2
    reason = stopped_tasks(ecs)[0]["stoppedReason"]
    assert reason.startswith("ResourceInitializationError: unable to pull secrets or registry auth:")
    assert "secret:tok" in reason


def test_breaker_disabled_keeps_failing_forever(ecs: Any, sim: RolloutSimulation) -> None:
    sim.script("api", "success", "tasks_fail_to_start", cluster=CLUSTER)
    deployed(ecs)
    ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")
    svc = wait_for(lambda: (s := describe(ecs)) and primary(s)["failedTasks"] >= 6 and s)
    assert primary(svc)["rolloutState"] == "IN_PROGRESS" and len(svc["deployments"]) == 2
    assert "(service api) is unable to consistently start tasks successfully." in messages(svc)


def test_first_deployment_failure_has_nothing_to_roll_back_to(ecs: Any, sim: RolloutSimulation) -> None:
    sim.script("api", "crash", cluster=CLUSTER)
    created = create(ecs, **BREAKER_ROLLBACK)
    dep_id = primary(created)["id"]
    assert created["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    svc = wait_for(lambda: (s := describe(ecs)) and primary(s)["rolloutState"] == "FAILED" and s)
    assert [d["id"] for d in svc["deployments"]] == [dep_id]
    crashed = stopped_tasks(ecs)
    assert {t["stopCode"] for t in crashed} == {"EssentialContainerExited"}
    assert crashed[0]["stoppedReason"] == "Essential container in task exited"
    assert crashed[0]["containers"][0]["exitCode"] == 1 and "startedAt" in crashed[0]


def test_oom_tasks(ecs: Any, sim: RolloutSimulation) -> None:
    sim.script("api", "oom", cluster=CLUSTER)
    create(ecs, **BREAKER_ONLY)
    wait_for(lambda: primary(describe(ecs))["rolloutState"] == "FAILED")
    container = stopped_tasks(ecs)[0]["containers"][0]
    assert container["exitCode"] == 137
    assert container["reason"] == "OutOfMemoryError: Container killed due to memory usage"


@pytest.fixture
def target_group(aws: Any) -> str:
    vpc = aws.client("ec2").create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    return aws.client("elbv2").create_target_group(
        Name="api", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip", HealthCheckPath="/health"
    )["TargetGroups"][0]["TargetGroupArn"]


def test_target_health_follows_the_rollout(aws: Any, ecs: Any, stepped: RolloutSimulation,
                                          target_group: str) -> None:
    sim = stepped
    elb = aws.client("elbv2")
    lbs = [{"targetGroupArn": target_group, "containerName": "web", "containerPort": 8080}]
    sim.script("api", "success", cluster=CLUSTER, healthy_s=0.6, drain_s=0.5)
    first = deployed(ecs, loadBalancers=lbs)
    health = elb.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]
    old_ips = {h["Target"]["Id"] for h in health}
    assert len(old_ips) == 2 and {h["TargetHealth"]["State"] for h in health} == {"healthy"}
    assert {h["Target"]["Port"] for h in health} == {8080}
    new = primary(ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")["service"])["id"]
    seen: set[tuple[bool, str, str]] = set()

    def observe() -> Any:
        for h in elb.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]:
            state = h["TargetHealth"]
            seen.add((h["Target"]["Id"] in old_ips, state["State"], state.get("Reason", "")))
        return steady_on(ecs, new)()

    svc = wait_for(observe)
    assert (False, "initial", "Elb.RegistrationInProgress") in seen
    assert (False, "healthy", "") in seen
    assert (True, "draining", "Target.DeregistrationInProgress") in seen
    assert not any(old and state != "healthy" and state != "draining" for old, state, _ in seen)
    assert first != new and svc["healthCheckGracePeriodSeconds"] == 0
    text = messages(svc)
    assert any(m.startswith(f"(service api) registered 1 targets in (target-group {target_group})") for m in text)
    assert f"(service api, taskSet {first}) has begun draining connections on 2 tasks." in text
    final = elb.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]
    assert len(final) == 2 and not {h["Target"]["Id"] for h in final} & old_ips
    one = final[0]["Target"]
    only = elb.describe_target_health(TargetGroupArn=target_group, Targets=[one, {"Id": "10.9.9.9", "Port": 8080}])
    assert [h["TargetHealth"]["State"] for h in only["TargetHealthDescriptions"]] == ["healthy", "unused"]


def test_unhealthy_targets_trip_the_breaker(aws: Any, ecs: Any, stepped: RolloutSimulation,
                                            target_group: str) -> None:
    sim = stepped
    elb = aws.client("elbv2")
    lbs = [{"targetGroupArn": target_group, "containerName": "web", "containerPort": 8080}]
    sim.script("api", "success", "unhealthy_targets", cluster=CLUSTER, drain_s=0.4)
    old = deployed(ecs, loadBalancers=lbs, **BREAKER_ROLLBACK)
    new = primary(ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")["service"])["id"]
    unhealthy = wait_for(
        lambda: [
            h
            for h in elb.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]
            if h["TargetHealth"]["State"] == "unhealthy"
        ]
    )
    assert unhealthy[0]["TargetHealth"]["Reason"] == "Target.ResponseCodeMismatch"
    assert unhealthy[0]["TargetHealth"]["Description"] == "Health checks failed with these codes: [502]"
    svc = wait_for(steady_on(ecs, old), timeout=8)
    text = messages(svc)
    assert f"(service api) (deployment {new}) deployment failed: tasks failed to start." in text
    assert any(
        m.endswith(
            f"is unhealthy in (target-group {target_group}) due to "
            "(reason Health checks failed with these codes: [502])."
        )
        and "(port 8080)" in m
        for m in text
    )
    failed = [t for t in stopped_tasks(ecs) if t["startedBy"] == new]
    elb_reason = f"Task failed ELB health checks in (target-group {target_group})"
    assert sum(t["stoppedReason"] == elb_reason for t in failed) >= 3
    # whatever was still starting when the breaker tripped is scaled away by the rollback
    assert {t["stoppedReason"] for t in failed} <= {elb_reason, f"Scaling activity initiated by (deployment {old})"}
    assert {t["stopCode"] for t in failed} == {"ServiceSchedulerInitiated"}
    assert sim.deployment(new).failed_tasks == 3


def exits(task: dict[str, Any]) -> list[int | None]:
    return [c.get("exitCode") for c in task["containers"]]


@pytest.mark.parametrize(("ignores_sigterm", "code"), [(False, 143), (True, 137)])
def test_tasks_drained_after_a_deployment_were_sent_sigterm(
    ecs: Any, sim: RolloutSimulation, ignores_sigterm: bool, code: int
) -> None:
    # The old deployment's containers get SIGTERM (exit 143), or SIGKILL after the stop timeout
    # when they ignore it (137): stopCode and stoppedReason of a replaced task as docs/ecs-rollouts.md
    # ("Service events and stopped tasks") gives them.
    sim.script("api", sim.scenario("success", ignores_sigterm=ignores_sigterm), "success", cluster=CLUSTER)
    old = deployed(ecs)
    new = primary(ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")["service"])["id"]
    wait_for(steady_on(ecs, new))
    drained = stopped_tasks(ecs)
    assert len(drained) == 2 and {t["startedBy"] for t in drained} == {old}
    for t in drained:
        assert (t["stopCode"], t["stoppedReason"]) == (
            "ServiceSchedulerInitiated",
            f"Scaling activity initiated by (deployment {new})",
        )
        assert exits(t) == [code] and "reason" not in t["containers"][0]
        assert "startedAt" in t and "stoppingAt" in t and "stoppedAt" in t


def test_tasks_of_a_superseded_deployment_are_scaled_in_by_the_newest(ecs: Any, sim: RolloutSimulation) -> None:
    sim.script("api", "success", sim.scenario("success", healthy_s=5.0), "success", cluster=CLUSTER)
    old = deployed(ecs)
    mid = primary(ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")["service"])["id"]
    wait_for(lambda: primary(describe(ecs))["runningCount"] == 2)  # running, not yet healthy
    last = primary(ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:1")["service"])["id"]
    wait_for(steady_on(ecs, last))
    assert {t["startedBy"] for t in stopped_tasks(ecs)} == {old, mid}
    superseded = [t for t in stopped_tasks(ecs) if t["startedBy"] == mid]
    assert len(superseded) == 2
    for t in superseded:
        assert (t["stopCode"], t["stoppedReason"]) == (
            "ServiceSchedulerInitiated",
            f"Scaling activity initiated by (deployment {last})",
        )
        assert exits(t) == [143]


def test_a_rollback_scales_in_the_failed_deployments_tasks_with_sigterm(
    aws: Any, ecs: Any, sim: RolloutSimulation, target_group: str
) -> None:
    # Desired 2, breaker threshold 3: tasks 1-3 fail ELB health checks, task 4 (launched with
    # task 3) turns healthy as the breaker trips; the rollback scales it in.
    lbs = [{"targetGroupArn": target_group, "containerName": "web", "containerPort": 8080}]
    bad = sim.scenario("unhealthy_targets", fail_tasks=3, ignores_sigterm=True)
    sim.script("api", "success", bad, cluster=CLUSTER)
    old = deployed(ecs, loadBalancers=lbs, **BREAKER_ROLLBACK)
    new = primary(ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")["service"])["id"]
    wait_for(steady_on(ecs, old), timeout=8)
    ours = [t for t in stopped_tasks(ecs) if t["startedBy"] == new]
    elb_reason = f"Task failed ELB health checks in (target-group {target_group})"
    scaled = [t for t in ours if t["stoppedReason"] == f"Scaling activity initiated by (deployment {old})"]
    assert len(ours) == 4 and sum(t["stoppedReason"] == elb_reason for t in ours) == 3 and len(scaled) == 1
    assert {t["stopCode"] for t in ours} == {"ServiceSchedulerInitiated"}
    assert {tuple(exits(t)) for t in ours} == {(137,)}  # every one ran, then ignored SIGTERM
    assert all("reason" not in c for t in ours for c in t["containers"])


def test_stall_never_completes(ecs: Any, stepped: RolloutSimulation) -> None:
    sim = stepped
    sim.script("api", "success", "stall", cluster=CLUSTER)
    old = deployed(ecs)
    new = primary(ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")["service"])["id"]
    sim.fast_forward(0.3)
    svc = describe(ecs)
    assert [(d["id"], d["rolloutState"]) for d in svc["deployments"]] == [(new, "IN_PROGRESS"), (old, "COMPLETED")]
    assert primary(svc)["runningCount"] == 2 and svc["deployments"][1]["runningCount"] == 2
    assert all(o.deployment_id != new for o in sim.outcomes)


def _alarm(aws: Any, name: str = "api-5xx") -> Any:
    cw = aws.client("cloudwatch")
    cw.put_metric_alarm(
        AlarmName=name,
        MetricName="HTTPCode_Target_5XX_Count",
        Namespace="AWS/ApplicationELB",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    return cw


ALARMS = {"alarms": {"alarmNames": ["api-5xx"], "enable": True, "rollback": True}}


def test_alarm_fails_the_deployment_and_rolls_back(aws: Any, ecs: Any, sim: RolloutSimulation) -> None:
    cw = _alarm(aws)
    sim.script("api", "success", sim.scenario("success", bake_s=3.0), cluster=CLUSTER)  # time to flip it
    old = deployed(ecs, **ALARMS)
    new = primary(ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")["service"])["id"]
    wait_for(lambda: primary(describe(ecs))["runningCount"] == 2)
    cw.set_alarm_state(AlarmName="api-5xx", StateValue="ALARM", StateReason="5xx spike")
    svc = wait_for(steady_on(ecs, old))
    text = messages(svc)
    assert f"(service api) (deployment {new}) deployment failed: alarm detected." in text
    assert f"(service api) rolling back to deployment {old}." in text
    assert sim.deployment(new).rollout_state_reason == ALARM_FAILED_REASON
    assert svc["taskDefinition"].endswith("api:1")


def test_alarm_already_firing_disables_alarm_checks(aws: Any, ecs: Any) -> None:
    cw = _alarm(aws)
    deployed(ecs, **ALARMS)
    cw.set_alarm_state(AlarmName="api-5xx", StateValue="ALARM", StateReason="already bad")
    new = primary(ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")["service"])["id"]
    wait_for(steady_on(ecs, new))


def test_throttling_is_aws_shaped_and_retryable(aws: Any, ecs: Any, sim: RolloutSimulation) -> None:
    create(ecs)
    no_retry = aws.client("ecs", config=Config(retries={"total_max_attempts": 1}))
    sim.throttle("DescribeServices", times=1)
    with pytest.raises(ClientError) as caught:
        no_retry.describe_services(cluster=CLUSTER, services=["api"])
    err = caught.value.response
    assert err["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    no_retry.describe_services(cluster=CLUSTER, services=["api"])  # only one was throttled

    before = len(sim.calls_of("DescribeServices"))
    sim.throttle("DescribeServices", times=1)
    retrying = aws.client("ecs", config=Config(retries={"mode": "standard", "max_attempts": 3}))
    retrying.describe_services(cluster=CLUSTER, services=["api"])  # botocore retried it as throttling
    assert len(sim.calls_of("DescribeServices")) == before + 2
    assert len(sim.throttled_calls) == 2

    sim.throttle("DescribeTargetHealth")
    with pytest.raises(ClientError) as caught:
        aws.client("elbv2", config=Config(retries={"total_max_attempts": 1})).describe_target_health(
            TargetGroupArn="arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/x/1"
        )
    assert caught.value.response["Error"]["Code"] == "Throttling"
    sim.throttle("DescribeAlarms")
    with pytest.raises(ClientError) as caught:
        aws.client("cloudwatch", config=Config(retries={"total_max_attempts": 1})).describe_alarms()
    assert caught.value.response["Error"]["Code"] == "Throttling"


def test_call_log_sees_every_service(aws: Any, sim: RolloutSimulation) -> None:
    start, start_wall = time.monotonic(), time.time()
    aws.client("ecs").list_clusters()
    aws.client("elbv2").describe_load_balancers()
    aws.client("cloudwatch").describe_alarms()
    aws.client("sts").get_caller_identity()
    aws.client("iam").list_roles()
    aws.client("ssm").put_parameter(Name="/app/x", Value="1", Type="String")
    aws.client("secretsmanager").list_secrets()
    aws.client("ecr").describe_repositories()
    aws.client("dynamodb").list_tables()
    aws.client("logs").describe_log_groups()
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="deploy-artifacts")
    s3.put_object(Bucket="deploy-artifacts", Key="a/b.json", Body=b"{}")
    s3.get_object(Bucket="deploy-artifacts", Key="a/b.json")
    s3.list_objects_v2(Bucket="deploy-artifacts")
    got = [(c.service, c.action) for c in sim.calls]
    assert got == [
        ("ecs", "ListClusters"),
        ("elbv2", "DescribeLoadBalancers"),
        ("cloudwatch", "DescribeAlarms"),
        ("sts", "GetCallerIdentity"),
        ("iam", "ListRoles"),
        ("ssm", "PutParameter"),
        ("secretsmanager", "ListSecrets"),
        ("ecr", "DescribeRepositories"),
        ("dynamodb", "ListTables"),
        ("logs", "DescribeLogGroups"),
        ("s3", "CreateBucket"),
        ("s3", "PutObject"),
        ("s3", "GetObject"),
        ("s3", "ListObjectsV2"),
    ]
    assert sim.calls[1].iam_action == "elasticloadbalancing:DescribeLoadBalancers"
    assert sim.calls[-1].iam_action == "s3:ListBucket" and sim.calls[2].iam_action == "cloudwatch:DescribeAlarms"
    service, action, mono, wall = sim.calls[0]
    assert start <= mono <= time.monotonic() and start_wall <= wall <= time.time()


def test_subprocess_clients_see_the_rollout(aws: Any, ecs: Any, sim: RolloutSimulation) -> None:
    first = deployed(ecs)
    new = primary(ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")["service"])["id"]
    code = (
        "import boto3, json, time\n"
        "ecs = boto3.client('ecs')\n"
        "seen = []\n"
        "for _ in range(300):\n"
        "    svc = ecs.describe_services(cluster='prod', services=['api'])['services'][0]\n"
        "    seen.append([(d['id'], d['status'], d['rolloutState']) for d in svc['deployments']])\n"
        "    if len(svc['deployments']) == 1 and svc['deployments'][0]['rolloutState'] == 'COMPLETED':\n"
        "        break\n"
        "    time.sleep(0.02)\n"
        "print(json.dumps(seen))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | aws.env
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen[-1] == [[new, "PRIMARY", "COMPLETED"]]
    assert [[new, "PRIMARY", "IN_PROGRESS"], [first, "ACTIVE", "COMPLETED"]] in seen or len(seen) == 1


def test_services_created_without_the_simulation_are_adopted(ecs: Any, sim: RolloutSimulation) -> None:
    sim.uninstall()
    created = create(ecs)
    sim.install()
    svc = describe(ecs)
    assert primary(svc)["id"] == primary(created)["id"] and primary(svc)["rolloutState"] == "COMPLETED"
    assert svc["runningCount"] == 2
    assert len(ecs.list_tasks(cluster=CLUSTER, serviceName="api")["taskArns"]) == 2
    new = primary(ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")["service"])["id"]
    wait_for(steady_on(ecs, new))


def test_uninstall_restores_moto(ecs: Any, sim: RolloutSimulation) -> None:
    from moto.ecs.responses import EC2ContainerServiceResponse
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    patched = EC2ContainerServiceResponse.update_service
    sim.uninstall()
    assert EC2ContainerServiceResponse.update_service is not patched
    assert "wrapped" not in repr(DomainDispatcherApplication.__dict__["__call__"])
    created = create(ecs)
    svc = ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")["service"]
    assert len(svc["deployments"]) == 1 and primary(svc)["id"] == primary(created)["id"]  # plain moto
    sim.install()


@pytest.mark.parametrize(
    ("desired", "breaker", "expected"),
    [
        (1, {}, 3),
        (2, {}, 3),
        (25, {}, 13),
        (400, {}, 200),
        (800, {}, 200),
        (10, {"thresholdConfiguration": {"type": "COUNT", "value": 7}}, 7),
        (800, {"thresholdConfiguration": {"type": "UNBOUNDED_PERCENT", "value": 50}}, 400),
    ],
)
def test_breaker_threshold(desired: int, breaker: dict[str, Any], expected: int) -> None:
    moto_service = SimpleNamespace(
        cluster_name="c",
        name="s",
        desired_count=desired,
        deployment_configuration={"deploymentCircuitBreaker": {"enable": True, **breaker}},
    )
    svc = SimService(RolloutSimulation(), "123456789012", "us-east-1", None, moto_service)
    assert svc.breaker_threshold() == expected


def test_scenario_validation() -> None:
    with pytest.raises(ValueError):
        Scenario(kind="explode")
    sim = RolloutSimulation(start_s=1.0)
    assert sim.scenario("crash", exit_code=2) == Scenario(kind="crash", start_s=1.0, exit_code=2)
    sim.script("a", "success", "crash")
    assert [sim.next_scenario("default", "a").kind for _ in range(3)] == ["success", "crash", "crash"]
    assert sim.next_scenario("default", "other") == sim.default


def test_the_simulation_refuses_a_moto_outside_the_range_its_patches_were_written_for() -> None:
    import importlib.metadata

    from tests.simulation.moto_patches import check_moto_version

    check_moto_version(importlib.metadata.version("moto"))  # the installed, pinned one is accepted
    check_moto_version("5.2.1")
    for other in ("5.0.28", "5.2.0", "5.3.0", "6.0.0", "5.3.0a1"):
        with pytest.raises(RuntimeError, match=r"supports moto>=5\.2\.1,<5\.3, but moto " + re.escape(other)):
            check_moto_version(other)


def test_freeze_on_holds_the_rollout_where_the_call_arrived_until_thawed(ecs: Any, sim: RolloutSimulation) -> None:
    old = deployed(ecs)
    reached = sim.freeze_on("UpdateService")
    assert not reached.is_set()
    new = primary(ecs.update_service(cluster=CLUSTER, service="api", taskDefinition="api:2")["service"])["id"]
    assert reached.is_set() and sim.frozen
    time.sleep(0.3)  # several phases of real time: a frozen rollout does not move
    svc = describe(ecs)
    assert [(d["id"], d["rolloutState"], d["runningCount"]) for d in svc["deployments"]] == [
        (new, "IN_PROGRESS", 0), (old, "COMPLETED", 2)]
    frozen_at = sim.now()
    sim.thaw()
    assert 0 <= sim.now() - frozen_at < 0.2  # runs on from where it stopped, no jump
    wait_for(steady_on(ecs, new))


def test_rewriting_an_alarm_keeps_its_state_as_cloudwatch_does(aws: Any, sim: RolloutSimulation) -> None:
    cw = _alarm(aws)
    cw.set_alarm_state(AlarmName="api-5xx", StateValue="ALARM", StateReason="5xx spike")
    since = cw.describe_alarms(AlarmNames=["api-5xx"])["MetricAlarms"][0]["StateUpdatedTimestamp"]
    _alarm(aws)  # PutMetricAlarm again, as a deploy that (re)writes its alarms does
    (alarm,) = cw.describe_alarms(AlarmNames=["api-5xx"])["MetricAlarms"]
    assert (alarm["StateValue"], alarm["StateReason"], alarm["StateUpdatedTimestamp"]) == ("ALARM", "5xx spike", since)
    assert alarm["Threshold"] == 1

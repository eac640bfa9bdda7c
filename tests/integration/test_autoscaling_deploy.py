"""Application Auto Scaling applied by the ECS deploy, against the moto server over HTTP with the
rollout simulation: the target and policies exactly as rendered, idempotent, removed with the
config; the desired count kept; scale-in suspended during the rollout and resumed after it,
also after a failed rollout and a Ctrl-C.
"""

from __future__ import annotations

import inspect
import os
import signal
from pathlib import Path
from typing import Any

from deployctl.render import autoscaling as render
from tests.integration.test_ecs_deploy import (
    API,
    CLUSTER,
    FAMILY_API,
    World,
    base_config,
    calls,
    calls_after,
    deploy,
    load,
    mid_rollout,
    when,
)

RID = f"service/{CLUSTER}/{API}"
SCALING = {"min": 2, "max": 6, "target_cpu": 50, "target_memory": 70, "requests_per_target": 300,
           "scale_in_cooldown": "120s", "scale_out_cooldown": "30s"}


def scaled_doc(world: World, **scaling: Any) -> dict[str, Any]:
    doc = base_config(world)
    doc["services"]["api"]["autoscaling"] = {**SCALING, **scaling}
    return doc


def target(world: World) -> dict[str, Any] | None:
    found = world.c("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="ecs", ResourceIds=[RID], ScalableDimension=render.DIMENSION)["ScalableTargets"]
    return found[0] if found else None


def policies(world: World) -> dict[str, dict[str, Any]]:
    found = world.c("application-autoscaling").describe_scaling_policies(
        ServiceNamespace="ecs", ResourceId=RID, ScalableDimension=render.DIMENSION)["ScalingPolicies"]
    return {p["PolicyName"]: p for p in found}


def scale_in_suspended(world: World) -> bool:
    t = target(world)
    assert t is not None, "no scalable target"
    return bool(t["SuspendedState"]["DynamicScalingInSuspended"])


def label(world: World) -> str:
    tg = world.c("elbv2").describe_target_groups(TargetGroupArns=[world.target_group_arn])["TargetGroups"][0]
    return render.resource_label(tg["TargetGroupArn"], tg["LoadBalancerArns"][0])


def test_deploy_registers_the_target_and_policies_exactly_as_rendered(world: World, sim: Any,
                                                                       tmp_path: Path) -> None:
    cfg = load(tmp_path, scaled_doc(world))
    res = deploy(cfg, world.push("v1"))

    assert res.exit_code == 0, res.text
    assert world.service()["desiredCount"] == 2  # created at min
    t = target(world)
    assert t is not None and (t["MinCapacity"], t["MaxCapacity"]) == (2, 6)
    assert t["SuspendedState"] == {"DynamicScalingInSuspended": False, "DynamicScalingOutSuspended": False,
                                   "ScheduledScalingSuspended": False}
    live = policies(world)
    wanted = render.policies(cfg, "api", render.Facts({"chat-api-tg": label(world)}))
    assert set(live) == {"deployctl-cpu", "deployctl-memory", "deployctl-requests"} == set(wanted)
    for name, request in wanted.items():
        assert live[name]["PolicyType"] == "TargetTrackingScaling"
        assert live[name]["TargetTrackingScalingPolicyConfiguration"] == \
            request["TargetTrackingScalingPolicyConfiguration"]
    spec = live["deployctl-requests"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert spec["ResourceLabel"].startswith("app/chat-api/") and "/targetgroup/chat-api-tg/" in spec["ResourceLabel"]
    assert "auto scaling: target created; put deployctl-cpu, deployctl-memory, deployctl-requests" in res.text
    assert "scale-in" not in res.text  # nothing was suspended on the first deploy: nothing to resume

    # Applied again on the next deploy, with nothing to change: no policy is put again.
    puts = calls(sim, "PutScalingPolicy")
    res = deploy(cfg, world.push("v2"))
    assert res.exit_code == 0, res.text
    assert "auto scaling: scale-in suspended for the rollout" in res.text
    assert "auto scaling: target unchanged; scale-in resumed; 3 policies unchanged" in res.text
    assert calls(sim, "PutScalingPolicy") == puts
    assert set(policies(world)) == set(wanted) and not scale_in_suspended(world)


def test_dropped_policies_and_autoscaling_are_removed_others_left_alone(world: World, sim: Any,
                                                                        tmp_path: Path) -> None:
    res = deploy(load(tmp_path, scaled_doc(world)), world.push("v1"))
    assert res.exit_code == 0, res.text
    # Someone else's scheduled-style policy on the same target: never deployctl's to delete.
    aas = world.c("application-autoscaling")
    aas.put_scaling_policy(PolicyName="team-step", ServiceNamespace="ecs", ResourceId=RID,
                           ScalableDimension=render.DIMENSION, PolicyType="StepScaling",
                           StepScalingPolicyConfiguration={"AdjustmentType": "ChangeInCapacity", "StepAdjustments": [
                               {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]})

    res = deploy(load(tmp_path, scaled_doc(world, target_memory=None, requests_per_target=None)), world.push("v2"))
    assert res.exit_code == 0, res.text
    assert set(policies(world)) == {"deployctl-cpu", "team-step"}
    assert "deleted deployctl-memory, deployctl-requests" in res.text

    res = deploy(load(tmp_path, base_config(world)), world.push("v3"))
    assert res.exit_code == 0, res.text
    assert set(policies(world)) == {"team-step"}
    assert target(world) is not None  # still scaled by team-step

    aas.delete_scaling_policy(PolicyName="team-step", ServiceNamespace="ecs", ResourceId=RID,
                              ScalableDimension=render.DIMENSION)
    deploy(load(tmp_path, scaled_doc(world)), world.push("v4"))
    assert target(world) is not None
    res = deploy(load(tmp_path, base_config(world)), world.push("v5"))
    assert res.exit_code == 0, res.text
    assert target(world) is None and policies(world) == {}
    assert "auto scaling: target deregistered; deleted deployctl-cpu, deployctl-memory, deployctl-requests" in res.text


def test_update_keeps_the_scalers_count_clamped_and_suspends_scale_in_while_rolling(world: World, sim: Any,
                                                                                     tmp_path: Path) -> None:
    cfg = load(tmp_path, scaled_doc(world))
    assert deploy(cfg, world.push("v1")).exit_code == 0
    world.c("ecs").update_service(cluster=CLUSTER, service=API, desiredCount=5)  # as the scaler would
    seen: list[bool] = []
    t = mid_rollout(sim, lambda: seen.append(scale_in_suspended(world)))
    res = deploy(cfg, world.push("v2"))
    t.join()

    assert res.exit_code == 0, res.text
    assert seen == [True]  # while the new deployment rolled out
    assert not scale_in_suspended(world)  # and resumed after it
    assert world.service()["desiredCount"] == 5  # the update did not reset the scaler's count
    assert calls_after(sim, "RegisterScalableTarget", "UpdateService") == 1  # the resume

    # A smaller max: the running count is brought within the new range by the update itself.
    res = deploy(load(tmp_path, scaled_doc(world, max=4)), world.push("v3"))
    assert res.exit_code == 0, res.text
    assert world.service()["desiredCount"] == 4
    assert "desired count 5 is outside auto scaling's 2..4: setting 4" in res.text
    assert target(world)["MaxCapacity"] == 4  # type: ignore[index]


def test_scale_in_is_resumed_after_a_failed_rollout(world: World, sim: Any, tmp_path: Path) -> None:
    cfg = load(tmp_path, scaled_doc(world))
    sim.script(API, "success", "tasks_fail_to_start", cluster=CLUSTER, failure="image")
    assert deploy(cfg, world.push("v1")).exit_code == 0
    seen: list[bool] = []
    t = mid_rollout(sim, lambda: seen.append(scale_in_suspended(world)))
    res = deploy(cfg, world.push("v2"))
    t.join()

    assert res.exit_code == 1 and "rolled back to" in res.message
    assert world.service()["taskDefinition"].endswith(f"{FAMILY_API}:1")
    assert seen == [True]
    assert not scale_in_suspended(world)


def test_scale_in_is_resumed_after_ctrl_c(world: World, sim: Any, tmp_path: Path) -> None:
    cfg = load(tmp_path, scaled_doc(world))
    assert deploy(cfg, world.push("v1")).exit_code == 0
    sim.script(API, sim.scenario("success", start_s=3.0, healthy_s=3.0), cluster=CLUSTER)
    seen: list[bool] = []
    polled = sim.freeze_on("UpdateService")

    def interrupt() -> None:
        seen.append(scale_in_suspended(world))
        os.kill(os.getpid(), signal.SIGINT)

    t = when(lambda: polled.is_set() and calls_after(sim, "DescribeServices", "UpdateService") >= 2, interrupt)
    res = deploy(cfg, world.push("v2"), handle_signals=True)
    t.join()

    assert res.exit_code == 130 and res.status == "interrupted"
    assert seen == [True]
    assert not scale_in_suspended(world)  # resumed although the run was interrupted
    assert world.service()["deployments"][0]["taskDefinition"].endswith(":2")  # the deployment goes on


def test_diff_shows_what_the_next_deploy_changes_in_auto_scaling(world: World, sim: Any, tmp_path: Path) -> None:
    from deployctl import service_diff
    from deployctl.app import diff as use

    assert deploy(load(tmp_path, scaled_doc(world)), world.push("v1")).exit_code == 0
    changed = load(tmp_path, scaled_doc(world, max=8, target_memory=None, target_cpu=40))
    # A deploy interrupted before its resume left scale-in suspended.
    world.c("application-autoscaling").register_scalable_target(
        ServiceNamespace="ecs", ResourceId=RID, ScalableDimension=render.DIMENSION,
        SuspendedState={"DynamicScalingInSuspended": True})
    puts = calls(sim, "PutScalingPolicy") + calls(sim, "RegisterScalableTarget")

    (api,) = use.diff(changed)
    text = "\n".join(service_diff.lines(api))
    assert "auto scaling range: 2..6 → 2..8" in text
    assert "auto scaling scale-in suspended: true → false" in text
    assert ("auto scaling policy deployctl-cpu: ECSServiceAverageCPUUtilization → 50 (scale-in cooldown 120s, "
            "scale-out cooldown 30s) → ECSServiceAverageCPUUtilization → 40") in text
    assert "auto scaling policy deployctl-memory: ECSServiceAverageMemoryUtilization → 70" in text
    assert "deployctl-requests" not in text  # unchanged (its label resolved as the deploy resolves it)
    assert calls(sim, "PutScalingPolicy") + calls(sim, "RegisterScalableTarget") == puts  # read-only

    assert deploy(changed, world.push("v2")).exit_code == 0
    (api,) = use.diff(changed)
    assert service_diff.lines(api) == [f"{API}: no service setting changes"]
    (api,) = use.diff(load(tmp_path, base_config(world)))
    assert [c.key for c in api.changes] == ["autoscaling.range", "autoscaling.policies.deployctl-cpu",
                                            "autoscaling.policies.deployctl-requests"]
    assert "warning: the service will no longer scale on its own" in "\n".join(service_diff.lines(api))


def test_dropping_autoscaling_keeps_the_scalers_count_then_count_applies(world: World, sim: Any,
                                                                         tmp_path: Path) -> None:
    from deployctl import service_diff
    from deployctl.app import diff as use

    assert deploy(load(tmp_path, scaled_doc(world)), world.push("v1")).exit_code == 0
    world.c("ecs").update_service(cluster=CLUSTER, service=API, desiredCount=5)  # as the scaler would
    plain = load(tmp_path, base_config(world))  # count 2, no autoscaling

    # diff says what the deploy that drops auto scaling does with the count.
    (api,) = use.diff(plain)
    text = "\n".join(service_diff.lines(api))
    assert "desired count" not in [c.setting for c in api.changes]  # 5 stays 5
    assert ("warning: the service will no longer scale on its own; auto scaling removed: desired count 5 → 5 "
            "(kept within count 2..the old max; later deploys set count 2)") in text

    res = deploy(plain, world.push("v2"))
    assert res.exit_code == 0, res.text
    assert world.service()["desiredCount"] == 5  # not reset to count 2 under load
    assert "auto scaling removed: desired count 5 → 5" in res.text
    assert target(world) is None

    # With auto scaling gone, deploy.yaml's count is the service's count again.
    (api,) = use.diff(plain)
    assert "desired count: 5 → 2" in "\n".join(service_diff.lines(api))
    res = deploy(plain, world.push("v3"))
    assert res.exit_code == 0, res.text
    assert world.service()["desiredCount"] == 2


def test_dropping_autoscaling_never_goes_below_count(world: World, sim: Any, tmp_path: Path) -> None:
    assert deploy(load(tmp_path, scaled_doc(world, min=1)), world.push("v1")).exit_code == 0
    world.c("ecs").update_service(cluster=CLUSTER, service=API, desiredCount=1)
    res = deploy(load(tmp_path, base_config(world)), world.push("v2"))
    assert res.exit_code == 0, res.text
    assert world.service()["desiredCount"] == 2
    assert "auto scaling removed: desired count 1 → 2" in res.text


def test_ctrl_c_twice_while_aws_hangs_the_resume_says_what_is_left(world: World, sim: Any, tmp_path: Path,
                                                                    monkeypatch: Any) -> None:
    """After Ctrl-C the stage engine waits kill_grace + stop_timeout (12 s) before it abandons the
    stage: the resume must end within that, and when Application Auto Scaling does not answer,
    say that scale-in is left suspended and how to resume it; a second Ctrl-C changes none of it."""
    import time

    from deployctl import pipeline
    from deployctl.targets import ecs_autoscaling
    from tests.integration.test_cancel_ecr_calls import StallingECR

    cfg = load(tmp_path, scaled_doc(world))
    assert deploy(cfg, world.push("v1")).exit_code == 0
    stall: set[str] = set()
    proxy = StallingECR(world.aws.endpoint, stall)  # forwards JSON-protocol calls, holds those in `stall`
    monkeypatch.setenv("AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING", proxy.url)
    sim.script(API, sim.scenario("success", start_s=3.0, healthy_s=3.0), cluster=CLUSTER)
    polled = sim.freeze_on("UpdateService")
    interrupted_at: list[float] = []

    def interrupt() -> None:
        assert "RegisterScalableTarget" in proxy.seen  # the suspension went through
        stall.add("RegisterScalableTarget")  # from now on Application Auto Scaling does not answer it
        interrupted_at.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    def again() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # the user is done waiting

    t = when(lambda: polled.is_set() and calls_after(sim, "DescribeServices", "UpdateService") >= 2, interrupt)
    t2 = when(lambda: proxy.seen.count("RegisterScalableTarget") >= 2, again)
    try:
        res = deploy(cfg, world.push("v2"), handle_signals=True)
        t.join()
        t2.join()
        took = time.monotonic() - interrupted_at[0]
        suspended = scale_in_suspended(world)  # before the held calls are let through
    finally:
        proxy.close()

    assert res.exit_code == 130 and res.status == "interrupted"
    assert "abandoned" not in res.message + res.text  # the stage ended on its own, in time, and said why
    engine_wait = (inspect.signature(pipeline.run_jobs).parameters["kill_grace"].default
                   + inspect.signature(pipeline.run_jobs).parameters["stop_timeout"].default)
    assert engine_wait / 2 > ecs_autoscaling.INTERRUPTED_RESUME_BUDGET
    assert took < engine_wait, took
    assert suspended  # what the message says is true
    assert "warning: scale-in of api is left suspended" in res.text
    assert ("aws application-autoscaling register-scalable-target --region us-east-1 --service-namespace ecs "
            f"--scalable-dimension ecs:service:DesiredCount --resource-id {RID} "
            "--suspended-state DynamicScalingInSuspended=false") in res.text

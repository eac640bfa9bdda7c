"""What the ECS target decides and records at the edges of a deploy (moto + rollout SIMULATION):
deployment alarms already firing when a deployment starts, settings-only updates, service
updates that AWS refuses, and unexpected errors inside one service's deploy.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from deployctl import diagnose
from deployctl.targets import ecs as ecs_target
from tests.integration.test_ecs_deploy import (  # the ECS deploy tests' world, fixtures and helpers
    ALARM,
    API,
    CLUSTER,
    FAMILY_API,
    WORKER,
    base_config,
    calls,
    first_deploy,
    load,
    mid_rollout,
)
from tests.integration.test_ecs_deploy import deploy as ecs_deploy

GENERATED = "chat-api-staging-api-error-rate"
OUTCOME_KEYS = ("deployctl:release", "deployctl:outcome", "deployctl:finished-at", "deployctl:duration-s",
                "deployctl:outcome-detail")


def _outcome(tags: dict[str, str]) -> dict[str, str | None]:
    return {k: tags.get(k) for k in OUTCOME_KEYS}


# ---------------------------------------------------------------------------------- alarms


def test_a_generated_alarm_firing_when_the_deployment_starts_does_not_roll_it_back(
        world, sim, tmp_path):  # noqa: F811
    """ECS turns alarm checks off for a deployment that starts with one of its alarms in ALARM
    (docs/ecs-rollouts.md, "Deployment alarms"); deployctl's own alarm gate must ignore that alarm too, whether it comes
    from deploy.alarms or from monitoring.roll_back_on."""
    doc = base_config(world, monitoring={"load_balancer": "chat-api", "error_rate": 5,
                                         "roll_back_on": ["error_rate"]})
    cfg, _ = first_deploy(world, tmp_path, doc)
    # Firing before the fix goes out; the deploy rewrites the alarm (PutMetricAlarm), which keeps
    # its state in CloudWatch (and in the simulation).
    world.c("cloudwatch").set_alarm_state(AlarmName=GENERATED, StateValue="ALARM",
                                          StateReason="5xx spike before the fix")
    sim.script(API, sim.scenario("success", start_s=1.0, healthy_s=1.0), cluster=CLUSTER)
    res = ecs_deploy(cfg, world.push("v2-fix"))

    assert res.exit_code == 0, res.text
    assert [o.rollout_state for o in sim.outcomes if o.service == API][-1] == "COMPLETED"
    assert world.service()["taskDefinition"].endswith(f"{FAMILY_API}:2")
    assert calls(sim, "UpdateService") == 1  # no rollback of deployctl's own
    assert f"alarm {GENERATED} already in ALARM as this deployment starts" in res.text
    assert world.td_tags(world.revisions()[-1])["deployctl:outcome"] == "succeeded"


def test_the_rollback_is_judged_with_alarm_states_read_when_it_starts(world, sim, tmp_path):  # noqa: F811
    """deployctl rolls back for an alarm ECS did not act on (ECS checks were off: another alarm
    fired at start). That alarm still fires when the rollback starts, so ECS ignores it for the
    rollback, and so must deployctl: the rollback succeeds."""
    other = "chat-api-latency"
    cw = world.c("cloudwatch")
    cw.put_metric_alarm(AlarmName=other, MetricName="TargetResponseTime", Namespace="AWS/ApplicationELB",
                        Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=5,
                        ComparisonOperator="GreaterThanThreshold")
    cw.set_alarm_state(AlarmName=other, StateValue="OK", StateReason="test")
    doc = base_config(world)
    doc["deploy"]["alarms"] = [ALARM, other]
    cfg, _ = first_deploy(world, tmp_path, doc)
    cw.set_alarm_state(AlarmName=other, StateValue="ALARM", StateReason="test")
    slow = sim.scenario("success", start_s=1.5, healthy_s=1.5)
    sim.script(API, slow, slow, cluster=CLUSTER)
    fire = mid_rollout(sim, lambda: world.set_alarm("ALARM"))
    res = ecs_deploy(cfg, world.push("v2"))
    fire.join()

    assert res.exit_code == 1, res.text
    assert "did not stop the deployment" in res.message
    assert f"deployctl rolled back to {FAMILY_API}:1" in res.message and "failed too" not in res.message
    assert calls(sim, "UpdateService") == 2
    svc = world.service()
    assert svc["taskDefinition"].endswith(f"{FAMILY_API}:1")
    assert [(d["status"], d["rolloutState"]) for d in svc["deployments"]] == [("PRIMARY", "COMPLETED")]
    assert world.td_tags(world.revisions()[-1])["deployctl:outcome"] == "rolled-back"
    # Alarm states were read again right before each UpdateService.
    describes = [c.monotonic for c in sim.calls_of("DescribeAlarms")]
    updates = [c.monotonic for c in sim.calls_of("UpdateService")]
    for update in updates:
        assert any(update - 5 < d < update for d in describes)


# ---------------------------------------------------------------------------------- settings only


def _scale_up_that_cannot_place_tasks(world, sim, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    """After a first deploy, ask for count 3 while the running deployment's new tasks cannot be
    placed (e.g. a subnet out of IPs). Returns (config doc, image ref, revision, its tags)."""
    doc = base_config(world)
    _cfg, ref = first_deploy(world, tmp_path, doc)
    arn1 = world.service()["taskDefinition"]
    before = world.td_tags(arn1)
    (running,) = [d for d in sim.deployments(API, cluster=CLUSTER) if d.status == "PRIMARY"]
    # The stuck task stops at once when the count goes back down: restoring the settings gets
    # half the timeout (3 s), and on a loaded runner every moment of it is needed for the polls.
    running.scenario = dataclasses.replace(running.scenario, kind="stall", stuck="pending", drain_s=0.0)
    doc["services"]["api"]["count"] = 3
    return doc, ref, arn1, before


def test_a_failed_settings_only_deploy_leaves_the_release_record_and_restores_the_settings(
        world, sim, tmp_path):  # noqa: F811
    doc, ref, arn1, before = _scale_up_that_cannot_place_tasks(world, sim, tmp_path)
    res = ecs_deploy(load(tmp_path, doc), ref, timeout=6)  # restoring the settings gets 3 s more

    assert res.exit_code == 1, res.text
    assert "timed out after 6s (running 2/3)" in res.message
    assert "deployctl restored the previous service settings" in res.message
    assert "nothing to roll back to" not in res.message
    assert world.revisions() == [arn1]  # nothing registered
    assert _outcome(world.td_tags(arn1)) == _outcome(before)  # the earlier release's record is intact
    svc = world.service()
    assert svc["taskDefinition"] == arn1 and svc["desiredCount"] == 2
    assert [(d["rolloutState"], d["runningCount"]) for d in svc["deployments"]] == [("COMPLETED", 2)]
    assert calls(sim, "TagResource") == 1  # the first deploy's outcome only


def test_a_settings_only_deploy_that_succeeds_records_no_release(world, sim, tmp_path):  # noqa: F811
    doc = base_config(world)
    cfg, ref = first_deploy(world, tmp_path, doc)
    arn1 = world.service()["taskDefinition"]
    before = world.td_tags(arn1)
    doc["services"]["api"]["count"] = 3
    res = ecs_deploy(load(tmp_path, doc), ref)

    assert res.exit_code == 0, res.text
    assert "updating service settings: desired count 2 → 3" in res.text
    assert world.revisions() == [arn1]
    assert world.td_tags(arn1) == before
    assert world.service()["desiredCount"] == 3


def test_a_run_that_registers_nothing_hands_on_no_release_id(world, sim, tmp_path):  # noqa: F811
    """No change, or settings only: no revision carries this run's release id, so it is not an
    output (GitHub `release`, the report), and promote has nothing to tag; the log names the
    release that stays live."""
    doc = base_config(world)
    cfg, ref = first_deploy(world, tmp_path, doc)
    arn1 = world.service()["taskDefinition"]
    live = world.td_tags(arn1)["deployctl:release"]

    same = ecs_deploy(cfg, ref)
    doc["services"]["api"]["count"] = 3
    scaled = ecs_deploy(load(tmp_path, doc), ref)

    for res in (same, scaled):
        assert res.exit_code == 0, res.text
        assert "release" not in res.outputs
        assert "no new release: no service registered a revision" in res.text
        assert f"release {live} stays live" in res.text
    assert world.revisions() == [arn1]

    new = ecs_deploy(load(tmp_path, doc), world.push("v2"))
    assert new.exit_code == 0, new.text
    arn2 = world.service()["taskDefinition"]
    assert arn2 != arn1
    assert new.outputs["release"] == world.td_tags(arn2)["deployctl:release"]
    assert "no new release" not in new.text


def test_a_failed_settings_only_deploy_with_no_rollback_keeps_the_new_settings(world, sim, tmp_path):  # noqa: F811
    doc, ref, arn1, before = _scale_up_that_cannot_place_tasks(world, sim, tmp_path)
    res = ecs_deploy(load(tmp_path, doc), ref, timeout=3.0, no_rollback=True)

    assert res.exit_code == 1
    assert "--no-rollback" in res.message and "keeps the new settings" in res.message
    assert world.td_tags(arn1) == before
    assert world.service()["desiredCount"] == 3
    assert calls(sim, "UpdateService") == 1


# ---------------------------------------------------------------------------------- errors


def test_an_update_service_that_keeps_failing_marks_the_new_revision_failed(world, sim, tmp_path):  # noqa: F811
    cfg, _ = first_deploy(world, tmp_path)
    sim.throttle("UpdateService", times=20)
    res = ecs_deploy(cfg, world.push("v2"))

    assert res.exit_code == 1, res.text
    assert calls(sim, "UpdateService") >= 2  # botocore retried before giving up
    arn1, arn2 = world.revisions()
    tags = world.td_tags(arn2)
    assert tags["deployctl:outcome"] == "failed"
    assert "Throttling" in tags["deployctl:outcome-detail"] or "throttl" in tags["deployctl:outcome-detail"].lower()
    assert world.td_tags(arn1)["deployctl:outcome"] == "succeeded"
    assert world.service()["taskDefinition"] == arn1
    assert calls(sim, "DeregisterTaskDefinition") == 0


def _two_services(w: Any) -> dict[str, Any]:
    doc = base_config(w)
    doc["services"]["worker"] = {"command": ["python", "-m", "worker"], "cpu": 512, "memory": 1024,
                                 "count": 1, "secrets": {"OPENAI_API_KEY": "chat-api/openai-key"}}
    return doc


def test_an_unexpected_error_in_one_services_deploy_fails_the_run(world, sim, tmp_path, monkeypatch):  # noqa: F811
    sim.script(WORKER, "success", "tasks_fail_to_start", cluster=CLUSTER)
    cfg, _ = first_deploy(world, tmp_path, _two_services(world))
    leaked = "sk-" + "a1B2c3D4e5F6g7H8i9J0"

    def boom(**facts: Any) -> list[Any]:
        raise RuntimeError(f"unexpected bug while diagnosing (token {leaked})")

    monkeypatch.setattr(diagnose, "diagnose", boom)  # a bug in the failed service's diagnosis
    res = ecs_deploy(cfg, world.push("v2"))

    assert res.exit_code == 1, res.text
    assert "(worker)" in res.message
    assert "worker: unexpected error: RuntimeError: unexpected bug while diagnosing" in res.message
    assert "summary: api succeeded; worker failed" in res.text
    assert leaked not in res.text and leaked not in res.message
    worker2 = world.revisions("chat-api-staging-worker")[-1]
    tags = world.td_tags(worker2)
    assert tags["deployctl:outcome"] == "failed" and leaked not in tags["deployctl:outcome-detail"]
    assert "RuntimeError" in tags["deployctl:outcome-detail"]
    assert world.td_tags(world.revisions()[-1])["deployctl:outcome"] == "succeeded"  # api


def test_a_service_without_an_outcome_fails_the_run(world, sim, tmp_path):  # noqa: F811
    cfg, _ = first_deploy(world, tmp_path, _two_services(world))

    def lose_worker(*args: Any, **kwargs: Any) -> dict[str, Any]:
        out = ecs_target.deploy_wave(*args, **kwargs)
        out.pop("worker", None)
        return out

    res = ecs_deploy(cfg, world.push("v2"), run_wave=lose_worker)

    assert res.exit_code == 1
    assert "worker: its deploy ended without an outcome" in res.message

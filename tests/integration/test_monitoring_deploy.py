"""Generated monitoring alarms as ECS deployment alarms, through a real deploy (moto + rollout simulation)."""

from __future__ import annotations

from tests.integration.test_ecs_deploy import (  # the ECS deploy tests' world, fixtures and helpers
    API,
    CLUSTER,
    FAMILY_API,
    base_config,
    first_deploy,
    mid_rollout,
)
from tests.integration.test_ecs_deploy import deploy as ecs_deploy


def test_a_deploy_creates_its_roll_back_alarms_first_and_one_firing_rolls_the_deploy_back(world, sim, tmp_path):  # noqa: F811
    doc = base_config(world, monitoring={"load_balancer": "chat-api", "error_rate": 5,
                                         "latency": {"p99": "10s"}, "roll_back_on": ["error_rate"]})
    cfg, _ = first_deploy(world, tmp_path, doc)
    cw = world.c("cloudwatch")
    assert {"chat-api-staging-api-error-rate", "chat-api-staging-api-latency-p99"} <= \
        {a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]}
    first_put = sim.calls_of("PutMetricAlarm")[0][2]
    first_create = sim.calls_of("CreateService")[0][2]
    assert first_put < first_create, "the service must never name an alarm that does not exist yet"
    service = world.c("ecs").describe_services(cluster=CLUSTER, services=[API])["services"][0]
    assert service["deploymentConfiguration"]["alarms"]["alarmNames"] == ["chat-api-5xx",
                                                                           "chat-api-staging-api-error-rate"]

    sim.script(API, sim.scenario("success", start_s=0.6, healthy_s=0.6), cluster=CLUSTER)
    fire = mid_rollout(sim, lambda: cw.set_alarm_state(AlarmName="chat-api-staging-api-error-rate",
                                                       StateValue="ALARM", StateReason="5xx rate 12% (test)"))
    res = ecs_deploy(cfg, world.push("v2"))
    fire.join()
    assert res.exit_code == 1, res.text
    assert f"rolled back to {FAMILY_API}:1" in res.message
    assert "chat-api-staging-api-error-rate" in res.text

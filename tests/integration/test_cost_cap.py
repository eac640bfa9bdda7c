"""The hourly cost cap (monitoring.cost_cap) applied by the ECS deploy, against the moto server over
HTTP with the rollout simulation: the cap alarms' actions are the stop policy and the SNS topic,
the subscriptions are those of deploy.yaml, everything is idempotent and removed with the config;
`status` says "stopped by cost cap" and `resume` brings the services back.

What moto cannot show: it never runs an alarm's actions, so no test here sees AWS stop a service.
The stop is simulated as Application Auto Scaling carries it out (an UpdateService to desired
count 0), with the alarm put in ALARM by SetAlarmState (docs/cost-cap.md, "What the tests prove").
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from deployctl.render import autoscaling as render
from deployctl.render import costcap
from tests.integration.test_ecs_deploy import API, CLUSTER, World, base_config, calls, deploy, load
from tests.support import cli as in_process

RID = f"service/{CLUSTER}/{API}"
TOPIC = "chat-api-staging-cost-cap"
TOKENS_ALARM = "chat-api-staging-api-tokens-hourly"
CALLS_ALARM = "chat-api-staging-api-api-calls-hourly"
EMAIL, HOOK = "oncall@example.com", "https://hooks.example.com/cost-cap"


def capped_doc(world: World, **cost_cap: Any) -> dict[str, Any]:
    doc = base_config(world)
    doc["monitoring"] = {
        "tokens": {"namespace": "ChatApi/LLM", "dimensions": {"Service": "{service}"}, "hourly_cap": 2_000_000},
        "api_calls_per_hour": {"namespace": "ChatApi/LLM", "metric": "OpenAICalls", "cap": 20_000},
        "cost_cap": {"notify": [EMAIL, HOOK], "on_cap": "stop", "services": ["api"], **cost_cap},
    }
    return doc


def alarms(world: World) -> dict[str, dict[str, Any]]:
    found = world.c("cloudwatch").describe_alarms(AlarmNames=[TOKENS_ALARM, CALLS_ALARM])["MetricAlarms"]
    return {a["AlarmName"]: a for a in found}


def stop_policy(world: World) -> dict[str, Any] | None:
    found = world.c("application-autoscaling").describe_scaling_policies(
        ServiceNamespace="ecs", ResourceId=RID, ScalableDimension=render.DIMENSION)["ScalingPolicies"]
    return next((p for p in found if p["PolicyName"] == costcap.STOP_POLICY), None)


def target(world: World) -> dict[str, Any] | None:
    found = world.c("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="ecs", ResourceIds=[RID], ScalableDimension=render.DIMENSION)["ScalableTargets"]
    return found[0] if found else None


def topic_arn(world: World) -> str | None:
    arns = [t["TopicArn"] for t in world.c("sns").list_topics()["Topics"]]
    return next((a for a in arns if a.endswith(f":{TOPIC}")), None)


def subscriptions(world: World) -> set[tuple[str, str]]:
    arn = topic_arn(world)
    assert arn is not None, "no cost-cap topic"
    subs = world.c("sns").list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    return {(s["Protocol"], s["Endpoint"]) for s in subs}


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return in_process.run(*args, "-f", str(tmp_path / "deploy.yaml"))


def fire(world: World) -> None:
    """A simulation of the cap alarm firing: moto never runs alarm actions, so the test does what
    AWS would — the alarm goes to ALARM, and Application Auto Scaling's ExactCapacity 0 reaches the
    ECS service as an UpdateService to desired count 0."""
    world.c("cloudwatch").set_alarm_state(AlarmName=TOKENS_ALARM, StateValue="ALARM",
                                          StateReason="simulated: tokens in one hour above the cap")
    world.c("ecs").update_service(cluster=CLUSTER, service=API, desiredCount=0)


def test_deploy_points_the_cap_alarms_at_the_stop_policy_and_the_topic(world: World, sim: Any,
                                                                       tmp_path: Path) -> None:
    cfg = load(tmp_path, capped_doc(world))
    res = deploy(cfg, world.push("v1"))

    assert res.exit_code == 0, res.text
    assert world.service()["desiredCount"] == 2  # the cap changes nothing while it is not hit
    t = target(world)
    assert t is not None and (t["MinCapacity"], t["MaxCapacity"]) == (0, 2)  # 0: the stop can act
    policy = stop_policy(world)
    assert policy is not None
    wanted = render.policies(cfg, "api")[costcap.STOP_POLICY]
    assert policy["PolicyType"] == "StepScaling"
    assert policy["StepScalingPolicyConfiguration"] == wanted["StepScalingPolicyConfiguration"]
    topic = topic_arn(world)
    assert topic is not None
    found = alarms(world)
    assert set(found) == {TOKENS_ALARM, CALLS_ALARM}
    for alarm in found.values():
        assert alarm["AlarmActions"] == [policy["PolicyARN"], topic]
        assert alarm["OKActions"] == [topic]
        assert (alarm["Period"], alarm["Statistic"], alarm["EvaluationPeriods"]) == (3600, "Sum", 1)
    assert found[CALLS_ALARM]["MetricName"] == "OpenAICalls" and found[CALLS_ALARM]["Threshold"] == 20_000
    assert subscriptions(world) == {("email", EMAIL), ("https", HOOK)}
    assert f"cost cap: topic created; subscribed {EMAIL}, {HOOK}; 2 alarms: 2 created" in res.text

    # Applied again with nothing to change: nothing is put or subscribed again.
    before = {op: calls(sim, op) for op in ("PutMetricAlarm", "Subscribe", "PutScalingPolicy", "CreateTopic")}
    res = deploy(cfg, world.push("v2"))
    assert res.exit_code == 0, res.text
    assert {op: calls(sim, op) for op in before} == before
    assert subscriptions(world) == {("email", EMAIL), ("https", HOOK)}
    assert world.service()["desiredCount"] == 2


def test_subscriptions_follow_the_config_and_removal_removes_everything(world: World, sim: Any,
                                                                        tmp_path: Path) -> None:
    assert deploy(load(tmp_path, capped_doc(world)), world.push("v1")).exit_code == 0

    res = deploy(load(tmp_path, capped_doc(world, notify=[EMAIL])), world.push("v2"))
    assert res.exit_code == 0, res.text
    assert subscriptions(world) == {("email", EMAIL)}
    assert f"unsubscribed {HOOK}" in res.text

    # cost_cap dropped, the hourly caps kept: alarms without actions again, nothing stops.
    kept = capped_doc(world)
    del kept["monitoring"]["cost_cap"]
    res = deploy(load(tmp_path, kept), world.push("v3"))
    assert res.exit_code == 0, res.text
    found = alarms(world)
    assert set(found) == {TOKENS_ALARM, CALLS_ALARM}
    assert all(a["AlarmActions"] == [] and a["OKActions"] == [] for a in found.values()), found
    assert stop_policy(world) is None and topic_arn(world) is None
    assert f"actions removed from {TOKENS_ALARM}, {CALLS_ALARM}" in res.text and "topic deleted" in res.text

    res = deploy(load(tmp_path, base_config(world)), world.push("v4"))
    assert res.exit_code == 0, res.text
    assert alarms(world) == {}
    assert stop_policy(world) is None and target(world) is None  # the api has no autoscaling of its own
    assert topic_arn(world) is None
    assert world.c("sns").list_subscriptions()["Subscriptions"] == []
    assert f"alarms deleted: {TOKENS_ALARM}, {CALLS_ALARM}" in res.text
    assert world.service()["desiredCount"] == 2


def test_a_capped_service_with_autoscaling_keeps_its_policies_and_count(world: World, sim: Any,
                                                                        tmp_path: Path) -> None:
    doc = capped_doc(world)
    doc["services"]["api"]["autoscaling"] = {"min": 2, "max": 5, "target_cpu": 60}
    cfg = load(tmp_path, doc)
    assert deploy(cfg, world.push("v1")).exit_code == 0
    world.c("ecs").update_service(cluster=CLUSTER, service=API, desiredCount=4)  # as the scaler would

    res = deploy(cfg, world.push("v2"))

    assert res.exit_code == 0, res.text
    assert world.service()["desiredCount"] == 4  # the deploy kept the scaler's count
    t = target(world)
    assert t is not None and (t["MinCapacity"], t["MaxCapacity"]) == (0, 5)
    policies = {p["PolicyName"] for p in world.c("application-autoscaling").describe_scaling_policies(
        ServiceNamespace="ecs", ResourceId=RID, ScalableDimension=render.DIMENSION)["ScalingPolicies"]}
    assert policies == {"deployctl-cpu", costcap.STOP_POLICY}


def test_status_says_stopped_by_cost_cap_and_resume_restores_the_counts(world: World, sim: Any,
                                                                        tmp_path: Path) -> None:
    assert deploy(load(tmp_path, capped_doc(world)), world.push("v1")).exit_code == 0
    fire(world)
    # Someone also pinned the range to 0..0 in the console: resume restores deploy.yaml's range too.
    world.c("application-autoscaling").register_scalable_target(
        ServiceNamespace="ecs", ResourceId=RID, ScalableDimension=render.DIMENSION, MinCapacity=0, MaxCapacity=0)

    status = cli(tmp_path, "status", "--env", "staging", "--json")
    assert status.returncode == 0, status.stderr
    (svc,) = json.loads(status.stdout)["services"]
    assert svc["stopped_by_cost_cap"] is True and svc["desired"] == 0
    text = cli(tmp_path, "status", "--env", "staging")
    assert f"stopped by cost cap (alarm {TOKENS_ALARM} in ALARM)" in text.stdout, text.stdout + text.stderr

    # While the alarm is in ALARM the stop policy would run again: refused, nothing changed.
    refused = cli(tmp_path, "resume", "--env", "staging", "--yes")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"the cost cap alarm {TOKENS_ALARM} is still in ALARM" in refused.stderr
    assert world.service()["desiredCount"] == 0

    world.c("cloudwatch").set_alarm_state(AlarmName=TOKENS_ALARM, StateValue="OK", StateReason="simulated: next hour")
    res = cli(tmp_path, "resume", "--env", "staging", "--yes", "--json")

    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["schema"] == "deployctl.resume/v1" and doc["done"] is True
    assert doc["services"] == {"api": {"ecs_service": API, "before": 0, "after": 2, "min_capacity": 0,
                                       "max_capacity": 2}}
    assert world.service()["desiredCount"] == 2
    t = target(world)
    assert t is not None and (t["MinCapacity"], t["MaxCapacity"]) == (0, 2)
    assert "api: desired count 0 → 2" in res.stderr
    after = json.loads(cli(tmp_path, "status", "--env", "staging", "--json").stdout)
    assert after["services"][0]["stopped_by_cost_cap"] is False

    # Now nothing is stopped: resume says so (exit 2) and changes nothing.
    again = cli(tmp_path, "resume", "--env", "staging", "--yes")
    assert again.returncode == 2
    assert "nothing is stopped in staging: api is not at 0 tasks" in again.stderr


def test_resume_refuses_without_a_cap_and_on_the_local_target(world: World, sim: Any, tmp_path: Path) -> None:
    doc = base_config(world)
    doc["environments"]["dev"] = {"target": "docker"}
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    res = cli(tmp_path, "resume", "--env", "staging", "--yes")
    assert res.returncode == 2
    assert "no cost cap stops services in staging: nothing to resume" in res.stderr
    assert "Traceback" not in res.stderr

    res = cli(tmp_path, "resume", "--env", "dev", "--yes")
    assert res.returncode == 2
    assert "the cost cap (and so `resume`) is an ECS feature" in res.stderr


def test_a_cap_naming_an_unknown_service_is_a_config_error(world: World, tmp_path: Path) -> None:
    doc = capped_doc(world, services=["apii"])
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    res = cli(tmp_path, "resume", "--env", "staging", "--yes")

    assert res.returncode == 2
    assert "monitoring.cost_cap.services[0]: unknown service 'apii': the cost cap cannot stop it " \
           "(did you mean 'api'?)" in res.stderr


def test_the_cap_can_count_tokens_from_the_access_logs(world: World, sim: Any, tmp_path: Path) -> None:
    """monitoring.tokens.source: logs: the hourly cap alarm reads the dimensionless Tokens total the
    access-log metric filter publishes, and acts on the stop policy and the topic all the same."""
    doc = capped_doc(world)
    doc["monitoring"]["tokens"] = {"source": "logs", "hourly_cap": 2_000_000}
    del doc["monitoring"]["api_calls_per_hour"]
    doc["monitoring"]["endpoints"] = {"fields": {"tokens": "tokens"}, "routes": ["/v1/chat"]}
    world.c("logs").create_log_group(logGroupName="/deployctl/chat-api/staging")  # the tasks' awslogs would
    cfg = load(tmp_path, doc)
    res = deploy(cfg, world.push("v1"))
    assert res.exit_code == 0, res.text
    applied = cli(tmp_path, "monitor", "apply", "--env", "staging")  # the metric filters
    assert applied.returncode == 0, applied.stdout + applied.stderr

    namespace = "deployctl/endpoints/chat-api-staging"
    filters = {f["filterName"]: f for f in world.c("logs").describe_metric_filters(
        logGroupName="/deployctl/chat-api/staging")["metricFilters"]}
    total = filters["chat-api-staging-endpoint-tokens-total"]["metricTransformations"][0]
    assert (total["metricNamespace"], total["metricName"], total.get("dimensions") or {}) == (namespace, "Tokens", {})
    alarm = alarms(world)[TOKENS_ALARM]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"]) == (namespace, "Tokens", [])
    assert (alarm["Period"], alarm["Statistic"], alarm["Threshold"]) == (3600, "Sum", 2_000_000)
    policy = stop_policy(world)
    assert policy is not None
    assert alarm["AlarmActions"] == [policy["PolicyARN"], topic_arn(world)]

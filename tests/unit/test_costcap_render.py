"""The hourly cost cap's requests (deployctl.render.costcap): the golden file of an environment
with both caps, a notify list and `on_cap: stop`; botocore's own validation of every request;
MinCapacity 0 on capped targets; and the lines `plan` shows.

Regenerate the golden file after an intended change, then review the diff by hand:
    DEPLOYCTL_UPDATE_GOLDEN=1 python -m pytest tests/unit/test_costcap_render.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import validate_parameters

from deployctl.adapters.git import GitFacts
from deployctl.config import ResolvedConfig, load_env, read
from deployctl.plan import make_plan
from deployctl.render import autoscaling, costcap, monitoring

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "costcap-prod.json"
GIT = GitFacts(sha="3f2a9c41d0b7e6f5a4c3b2a1908f7e6d5c4b3a29", branch="main")
TOPIC = "arn:aws:sns:us-east-1:123456789012:chat-api-prod-cost-cap"
POLICY = ("arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0:"
          "resource/ecs/service/ai-prod/chat-api-prod-{svc}:policyName/deployctl-cost-cap-stop")

DEPLOY_YAML = """\
version: 1
app: chat-api
region: us-east-1
image: {{repository: chat-api}}
services:
  api:
    port: 8000
    count: 2
    autoscaling: {{min: 2, max: 6, target_cpu: 60}}
  worker:
    command: [python, -m, worker]
    count: 3
monitoring:
  tokens: {{namespace: ChatApi, dimensions: {{Service: "{{service}}"}}, hourly_cap: 2000000, service: api}}
  api_calls_per_hour: {{namespace: ChatApi, metric: OpenAICalls, cap: 20000, service: worker}}
{cost_cap}
environments:
  prod:
    target: ecs
    cluster: ai-prod
    network: {{subnets: [subnet-1]}}
    roles: {{execution: arn:aws:iam::123456789012:role/exec}}
  dev: {{target: docker}}
"""
COST_CAP = ("  cost_cap: {notify: [oncall@example.com, 'https://hooks.example.com/cost-cap'], on_cap: stop, "
            "services: [api, worker]}")


def config(tmp_path: Path, cost_cap: str = COST_CAP, env: str = "prod") -> ResolvedConfig:
    path = tmp_path / "deploy.yaml"
    path.write_text(DEPLOY_YAML.format(cost_cap=cost_cap), encoding="utf-8")
    return load_env(read(path, environ={}), env)


def actions() -> costcap.CapActions:
    return costcap.CapActions(TOPIC, {s: POLICY.format(svc=s) for s in ("api", "worker")})


def requests(cfg: ResolvedConfig) -> dict[str, Any]:
    assert cfg.monitoring is not None
    return {
        "CreateTopic": {"Name": costcap.topic_name(cfg)},
        "Subscribe": [{"Protocol": p, "Endpoint": e} for p, e in costcap.subscriptions(cfg)],
        "RegisterScalableTarget": {s: autoscaling.scalable_target(cfg, s) for s in ("api", "worker")},
        "PutScalingPolicy": {s: autoscaling.policies(cfg, s)[costcap.STOP_POLICY] for s in ("api", "worker")},
        "PutMetricAlarm": [a.request for a in monitoring.alarms(cfg, cfg.monitoring, cap=actions())
                           if a.kind in costcap.CAP_KINDS],
    }


def test_requests_match_golden_file(tmp_path: Path) -> None:
    actual = requests(config(tmp_path))
    if os.environ.get("DEPLOYCTL_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(actual, indent=2) + "\n", encoding="utf-8")
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert actual == expected, f"{GOLDEN.name} differs; if intended, regenerate it and review the diff"


def test_every_request_is_valid_for_botocore(tmp_path: Path) -> None:
    session = botocore.session.get_session()
    req = requests(config(tmp_path))
    shapes = {"sns": ("CreateTopic", "Subscribe"), "application-autoscaling": (
        "RegisterScalableTarget", "PutScalingPolicy"), "cloudwatch": ("PutMetricAlarm",)}
    for service, ops in shapes.items():
        model = session.get_service_model(service)
        for op in ops:
            body = req[op]
            items = body if isinstance(body, list) else list(body.values()) if op != "CreateTopic" else [body]
            for item in items:
                extra = {"TopicArn": TOPIC} if op == "Subscribe" else {}  # known only after CreateTopic
                validate_parameters({**item, **extra}, model.operation_model(op).input_shape)


def test_cap_alarms_act_on_the_stop_policies_and_the_topic(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    alarms = requests(cfg)["PutMetricAlarm"]
    assert [a["AlarmName"] for a in alarms] == ["chat-api-prod-api-tokens-hourly",
                                                "chat-api-prod-worker-api-calls-hourly"]
    for alarm in alarms:
        # Either cap stops every named service, and tells the topic; OK only tells the topic.
        assert alarm["AlarmActions"] == [POLICY.format(svc="api"), POLICY.format(svc="worker"), TOPIC]
        assert alarm["OKActions"] == [TOPIC]
        assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["Statistic"]) == (3600, 1, "Sum")
    assert alarms[1]["MetricName"] == "OpenAICalls" and alarms[1]["Threshold"] == 20000.0


def test_the_stop_policy_sets_exactly_zero_and_min_capacity_allows_it(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    for svc in ("api", "worker"):
        policy = autoscaling.policies(cfg, svc)[costcap.STOP_POLICY]
        step = policy["StepScalingPolicyConfiguration"]
        assert policy["PolicyType"] == "StepScaling"
        assert step["AdjustmentType"] == "ExactCapacity"
        assert step["StepAdjustments"] == [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 0}]
        # Application Auto Scaling keeps capacity within min..max: min must be 0 for the stop to act.
        assert autoscaling.scalable_target(cfg, svc)["MinCapacity"] == 0
    assert autoscaling.scalable_target(cfg, "api")["MaxCapacity"] == 6  # autoscaling's max
    assert autoscaling.scalable_target(cfg, "worker")["MaxCapacity"] == 3  # its count
    # The api keeps its target tracking policy next to the stop
    assert set(autoscaling.policies(cfg, "api")) == {"deployctl-cpu", costcap.STOP_POLICY}


def test_without_stop_nothing_is_registered_and_min_stays(tmp_path: Path) -> None:
    cfg = config(tmp_path, "  cost_cap: {notify: [oncall@example.com]}")
    assert autoscaling.service_scaling(cfg, "worker") is None  # no autoscaling, nothing to stop
    assert autoscaling.scalable_target(cfg, "api")["MinCapacity"] == 2
    assert cfg.monitoring is not None
    alarm = next(a.request for a in monitoring.alarms(cfg, cfg.monitoring, cap=costcap.CapActions(TOPIC))
                 if a.kind == "tokens_hourly")
    assert alarm["AlarmActions"] == [TOPIC]


def test_without_cost_cap_the_hourly_cap_has_no_actions(tmp_path: Path) -> None:
    cfg = config(tmp_path, "")
    assert cfg.monitoring is not None
    for a in monitoring.alarms(cfg, cfg.monitoring):
        assert "AlarmActions" not in a.request


def test_topic_names_keep_environments_apart(tmp_path: Path) -> None:
    prod = config(tmp_path)
    staging = prod.model_copy(update={"env_name": "staging"})
    assert costcap.topic_name(prod) == "chat-api-prod-cost-cap"
    assert costcap.topic_name(staging) == "chat-api-staging-cost-cap"


@pytest.mark.parametrize("preview", ["pr-7"])
def test_a_preview_copy_is_never_capped(tmp_path: Path, preview: str) -> None:
    cfg = config(tmp_path)
    assert costcap.stopped_services(cfg, preview) == []
    assert autoscaling.service_scaling(cfg, "worker", preview=preview) is None


def test_plan_shows_the_caps_actions(tmp_path: Path) -> None:
    plan = make_plan(config(tmp_path), GIT)
    doc = plan.to_json_dict()["cost_cap"]
    assert doc["topic"] == "chat-api-prod-cost-cap"
    assert doc["subscriptions"] == [{"protocol": "email", "endpoint": "oncall@example.com"},
                                    {"protocol": "https", "endpoint": "https://hooks.example.com/cost-cap"}]
    assert doc["stops"] == ["api", "worker"]
    assert doc["alarms"][0]["AlarmActions"] == ["<deployctl-cost-cap-stop of api>",
                                                "<deployctl-cost-cap-stop of worker>",
                                                "<SNS topic chat-api-prod-cost-cap>"]
    lines = costcap.describe(plan.config, [a["AlarmName"] for a in doc["alarms"]])
    assert lines[1] == ("SNS topic chat-api-prod-cost-cap: email oncall@example.com, "
                        "https https://hooks.example.com/cost-cap")
    assert lines[2].startswith("on the cap: api → 0 tasks, worker → 0 tasks")
    # the local target has no cap
    assert make_plan(config(tmp_path, env="dev"), GIT).to_json_dict()["cost_cap"] is None

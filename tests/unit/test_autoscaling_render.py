"""Application Auto Scaling requests: the golden file for the reference deploy.yaml's prod (with
every policy kind: CPU, memory, ALB requests, queue backlog; and the rollout's suspension),
botocore's own validation of every request, the worker's queue-backlog metric math, and `plan`.

Regenerate the golden file after an intended change, then review the diff by hand:
    DEPLOYCTL_UPDATE_GOLDEN=1 python -m pytest tests/unit/test_autoscaling_render.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters

from deployctl.adapters.git import GitFacts
from deployctl.config import ResolvedConfig, load_env, read
from deployctl.plan import guardrail_violations, make_plan
from deployctl.render import autoscaling

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "autoscaling-prod.json"
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/chat-api-prod-tg/0123456789abcdef"
LB_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/chat-prod/50dc6c495c0c9188"
MODEL = botocore.session.get_session().get_service_model("application-autoscaling")
GIT = GitFacts(sha="3f2a9c41d0b7e6f5a4c3b2a1908f7e6d5c4b3a29", branch="main")


def root_config(env: str) -> ResolvedConfig:
    return load_env(read(ROOT / "deploy.yaml", environ={}), env)


def real_facts() -> autoscaling.Facts:
    return autoscaling.Facts({"chat-api-prod-tg": autoscaling.resource_label(TG_ARN, LB_ARN)})


def prod_api_requests() -> dict[str, Any]:
    cfg = root_config("prod")
    scaling = autoscaling.service_scaling(cfg, "api", real_facts())
    assert scaling is not None
    return {"RegisterScalableTarget": scaling.target, "PutScalingPolicy": list(scaling.policies.values())}


def worker_config(tmp_path: Path, scaling: str) -> ResolvedConfig:
    path = tmp_path / "deploy.yaml"
    path.write_text(f"""\
version: 1
app: chat-api
region: eu-west-1
image: {{repository: chat-api}}
services:
  worker:
    command: [python, -m, worker]
    autoscaling: {scaling}
environments:
  staging:
    target: ecs
    cluster: ai-staging
    network: {{subnets: [subnet-1]}}
    roles: {{execution: arn:aws:iam::123456789012:role/exec}}
    guardrails: {{max_tasks: 8}}
""", encoding="utf-8")
    return load_env(read(path, environ={}), "staging")


def every_policy_config(tmp_path: Path) -> ResolvedConfig:
    """The reference deploy.yaml's prod with every kind of policy: the api also tracks memory,
    the worker scales on its queue's backlog."""
    doc = yaml.safe_load((ROOT / "deploy.yaml").read_text(encoding="utf-8"))
    prod = doc["environments"]["prod"]["services"]
    prod["api"]["autoscaling"]["target_memory"] = 75
    prod["worker"]["autoscaling"] = {"min": 1, "max": 8, "queue": "chat-jobs",
                                     "queue_backlog_per_task": 20, "scale_in_cooldown": "10m"}
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return load_env(read(path, environ={}), "prod")


def golden_requests(cfg: ResolvedConfig) -> dict[str, Any]:
    """Every Application Auto Scaling request a prod deploy sends, by service, as rendered: the
    target suspended for the rollout, then the target and the policies applied after it."""
    out: dict[str, Any] = {}
    for svc in cfg.services:
        scaling = autoscaling.service_scaling(cfg, svc, real_facts())
        assert scaling is not None, svc
        out[svc] = {"RegisterScalableTarget (rollout)": autoscaling.scalable_target(cfg, svc, suspend_scale_in=True),
                    "RegisterScalableTarget": scaling.target, "PutScalingPolicy": list(scaling.policies.values())}
    return out


def test_prod_requests_match_golden_file(tmp_path: Path) -> None:
    actual = golden_requests(every_policy_config(tmp_path))
    # What the golden file holds: both services, every policy kind, the rollout's suspension.
    assert [p["PolicyName"] for p in actual["api"]["PutScalingPolicy"]] == \
        ["deployctl-cpu", "deployctl-memory", "deployctl-requests"]
    assert [p["PolicyName"] for p in actual["worker"]["PutScalingPolicy"]] == \
        ["deployctl-cpu", "deployctl-queue-backlog"]
    assert actual["api"]["RegisterScalableTarget (rollout)"]["SuspendedState"]["DynamicScalingInSuspended"] is True
    if os.environ.get("DEPLOYCTL_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(actual, indent=2) + "\n", encoding="utf-8")
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert actual == expected, f"{GOLDEN.name} differs; if intended, regenerate it and review the diff"


def test_prod_api_target_and_policies_say_what_deploy_yaml_says() -> None:
    requests = prod_api_requests()
    target = requests["RegisterScalableTarget"]
    assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == \
        ("service/ai-prod/chat-api-prod-api", 3, 10)
    assert target["SuspendedState"]["DynamicScalingInSuspended"] is False
    by_name = {p["PolicyName"]: p["TargetTrackingScalingPolicyConfiguration"] for p in requests["PutScalingPolicy"]}
    assert set(by_name) == {"deployctl-cpu", "deployctl-requests"}
    assert by_name["deployctl-cpu"]["TargetValue"] == 60.0
    requests_spec = by_name["deployctl-requests"]["PredefinedMetricSpecification"]
    assert requests_spec == {"PredefinedMetricType": "ALBRequestCountPerTarget",
                             "ResourceLabel": "app/chat-prod/50dc6c495c0c9188/targetgroup/chat-api-prod-tg/"
                                              "0123456789abcdef"}
    assert (by_name["deployctl-cpu"]["ScaleInCooldown"], by_name["deployctl-cpu"]["ScaleOutCooldown"]) == (300, 60)


def test_every_request_passes_botocore_validation(tmp_path: Path) -> None:
    requests = prod_api_requests()
    validate_parameters(requests["RegisterScalableTarget"],
                        MODEL.operation_model("RegisterScalableTarget").input_shape)
    worker = worker_config(tmp_path, "{min: 1, max: 8, target_memory: 70, queue: chat-jobs, "
                                     "queue_backlog_per_task: 20}")
    for request in [*requests["PutScalingPolicy"], *autoscaling.policies(worker, "worker").values()]:
        validate_parameters(request, MODEL.operation_model("PutScalingPolicy").input_shape)
    with pytest.raises(ParamValidationError):  # the validation is not a rubber stamp
        validate_parameters({**requests["RegisterScalableTarget"], "MinCapacity": "three"},
                            MODEL.operation_model("RegisterScalableTarget").input_shape)


def test_queue_worker_scales_on_visible_messages_per_running_task(tmp_path: Path) -> None:
    cfg = worker_config(tmp_path, "{min: 1, max: 8, target_cpu: null, queue: chat-jobs, queue_backlog_per_task: 20}")
    (name, policy), = autoscaling.policies(cfg, "worker").items()
    conf = policy["TargetTrackingScalingPolicyConfiguration"]
    assert name == "deployctl-queue-backlog" and conf["TargetValue"] == 20.0
    metrics = {m["Id"]: m for m in conf["CustomizedMetricSpecification"]["Metrics"]}
    assert metrics["e1"]["Expression"] == "m1 / m2" and metrics["e1"]["ReturnData"] is True
    assert [m["Id"] for m in metrics.values() if m["ReturnData"]] == ["e1"]  # exactly one result
    visible = metrics["m1"]["MetricStat"]["Metric"]
    assert (visible["Namespace"], visible["MetricName"], visible["Dimensions"]) == \
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", [{"Name": "QueueName", "Value": "chat-jobs"}])
    tasks = metrics["m2"]["MetricStat"]["Metric"]
    assert tasks["MetricName"] == "RunningTaskCount" and tasks["Dimensions"] == [
        {"Name": "ClusterName", "Value": "ai-staging"}, {"Name": "ServiceName", "Value": "chat-api-staging-worker"}]


def test_plan_carries_the_requests_and_places_a_readable_label_before_deploy() -> None:
    plan = make_plan(root_config("prod"), GIT)
    api = next(s for s in plan.services if s.name == "api")
    assert api.autoscaling is not None
    doc = plan.to_json_dict()["services"]["api"]["autoscaling"]
    assert doc["resource_id"] == "service/ai-prod/chat-api-prod-api"
    labels = [p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"].get("ResourceLabel")
              for p in doc["put_scaling_policy"]]
    assert "<app/lb/id/targetgroup/tg/id of target group chat-api-prod-tg>" in labels
    assert plan.to_json_dict()["services"]["worker"]["autoscaling"] is None
    lines = autoscaling.describe(api.autoscaling)
    assert lines[0] == "3..10 tasks (service/ai-prod/chat-api-prod-api)"
    assert lines[1] == ("  deployctl-cpu: ECSServiceAverageCPUUtilization → 60 "
                        "(scale-in cooldown 300s, scale-out cooldown 60s)")


def test_guardrails_refuse_a_max_over_max_tasks(tmp_path: Path) -> None:
    plan = make_plan(worker_config(tmp_path, "{min: 1, max: 9, target_cpu: 70}"), GIT)
    assert guardrail_violations(plan) == ["9 tasks is over the limit max_tasks 8"]
    fits = make_plan(worker_config(tmp_path, "{min: 1, max: 8, target_cpu: 70}"), GIT)
    assert guardrail_violations(fits) == []
    cost = fits.cost.services[0]
    assert (cost.tasks, cost.max_tasks) == (1, 8) and cost.monthly_usd_max == pytest.approx(8 * cost.monthly_usd)


def test_resource_label_joins_the_load_balancer_and_target_group_arns() -> None:
    assert autoscaling.resource_label(TG_ARN, LB_ARN) == \
        "app/chat-prod/50dc6c495c0c9188/targetgroup/chat-api-prod-tg/0123456789abcdef"


def test_clamp_keeps_the_scalers_count_within_the_range(tmp_path: Path) -> None:
    auto = worker_config(tmp_path, "{min: 2, max: 5}").services["worker"].autoscaling
    assert auto is not None
    assert [autoscaling.clamp(auto, n) for n in (0, 2, 4, 5, 9)] == [2, 2, 4, 5, 5]

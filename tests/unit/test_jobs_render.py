"""`jobs:` as plan shows them: runs per month from the schedule, the monthly cost at the Fargate
(Spot) price, the schedule request, and the cost advice (Savings Plans, cold starts)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployctl.adapters.git import GitFacts
from deployctl.config import fargate
from deployctl.config.model import ResolvedConfig
from deployctl.config.resolve import load_env, read
from deployctl.plan import make_plan
from deployctl.render import jobs


def _cfg(tmp_path: Path, jobs_doc: dict[str, Any], **api: Any) -> ResolvedConfig:
    doc = {
        "version": 1, "app": "chat-api", "region": "us-east-1", "image": {"repository": "chat-api"},
        "services": {"api": {"port": 8000, "cpu": 1024, "memory": 2048, "count": 2, **api}},
        "jobs": jobs_doc,
        "environments": {"staging": {
            "target": "ecs", "cluster": "ai", "network": {"subnets": ["subnet-1"], "security_groups": ["sg-1"]},
            "roles": {"execution": "arn:aws:iam::123456789012:role/x"},
            "jobs_role": "arn:aws:iam::123456789012:role/jobs"}},
    }
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_env(read(path, environ={}), "staging")


@pytest.mark.parametrize(("schedule", "runs"), [
    ("rate(1 hour)", 730.0),
    ("rate(6 hours)", 730 / 6),
    ("rate(15 minutes)", 730 * 4),
    ("rate(1 day)", 730 / 24),
    ("cron(0 3 * * ? *)", 730 / 24),  # daily at 03:00
    ("cron(0/30 * * * ? *)", 730 * 2),  # every 30 minutes
    ("cron(0 9-17 ? * MON-FRI *)", 9 * 5 * 730 / 24 / 7),  # hourly in office hours on weekdays
    ("cron(0 0 1 * ? *)", 1.0),  # monthly on the 1st
    ("cron(0 0 L * ? *)", 1.0),  # last day of the month
    ("cron(0 12 ? JAN,JUL MON *)", 730 / 24 / 7 * 2 / 12),
])
def test_runs_per_month(schedule: str, runs: float) -> None:
    assert jobs.runs_per_month(schedule) == pytest.approx(runs, rel=1e-6)


def test_a_spot_jobs_cost_is_runs_times_duration_times_the_spot_price(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, {
        "embed": {"command": ["python", "-m", "embed"], "schedule": "rate(6 hours)", "expected_duration": "30m"},
        "report": {"command": ["report"], "schedule": "rate(1 day)", "spot": False, "cpu": 2048, "memory": 8192,
                   "timeout": "2h"},
    })
    vcpu, gb = fargate.PRICES["X86_64"]
    runs, usd = jobs.monthly_cost(cfg, "embed")
    assert runs == pytest.approx(730 / 6)
    assert usd == pytest.approx(730 / 6 * 0.5 * (1 * vcpu + 2 * gb) * 0.3)  # Spot: 70% off
    # No expected_duration: the timeout is the duration; its own size; on demand.
    runs, usd = jobs.monthly_cost(cfg, "report")
    assert usd == pytest.approx(730 / 24 * 2 * (2 * vcpu + 8 * gb))

    plan = make_plan(cfg, GitFacts(sha="0" * 40, branch="main"))
    doc = plan.to_json_dict()["cost"]
    assert [j["job"] for j in doc["jobs"]] == ["embed", "report"]
    assert doc["jobs"][1] == {"job": "report", "schedule": "rate(1 day)", "runs_per_month": 30.4,
                              "duration_s": 7200.0, "vcpu": 2.0, "memory_gb": 8.0, "spot": False,
                              "monthly_usd": round(usd, 2)}
    services = sum(c.monthly_usd for c in plan.cost.services)
    assert plan.cost.monthly_usd == pytest.approx(services + plan.cost.jobs_usd, abs=0.01)  # jobs are in the total


def test_the_schedule_request(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, {"embed": {"command": ["python", "-m", "embed"], "schedule": "cron(0 3 * * ? *)",
                                    "retries": 5}})
    placement = {"networkConfiguration": {"awsvpcConfiguration": {
        "subnets": ["subnet-1"], "securityGroups": ["sg-1"], "assignPublicIp": "DISABLED"}}}
    req = jobs.schedule_request(cfg, "embed", task_definition="arn:td:7", container="api", placement=placement,
                                cluster="arn:aws:ecs:us-east-1:123456789012:cluster/ai", dlq_arn="arn:dlq")
    assert req["GroupName"] == "deployctl-chat-api-staging" and req["Name"] == "embed"
    assert req["ScheduleExpression"] == "cron(0 3 * * ? *)" and req["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = req["Target"]
    assert target["RoleArn"] == "arn:aws:iam::123456789012:role/jobs"
    assert target["EcsParameters"]["CapacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert target["EcsParameters"]["NetworkConfiguration"] == {"awsvpcConfiguration": {
        "Subnets": ["subnet-1"], "SecurityGroups": ["sg-1"], "AssignPublicIp": "DISABLED"}}
    overrides = {"containerOverrides": [{"name": "api", "command": ["python", "-m", "embed"]}]}
    assert json.loads(target["Input"]) == overrides
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 5 and target["DeadLetterConfig"] == {"Arn": "arn:dlq"}


def test_a_job_of_its_own_size_gets_its_own_family_without_container_limits() -> None:
    td = {"family": "chat-api-staging-api", "cpu": "1024", "memory": "2048",
          "containerDefinitions": [{"name": "api", "image": "x@sha256:1", "memory": 2048, "cpu": 1024}]}
    out = jobs.job_task_definition(td, "chat-api-staging-job-report", 2048, 8192)
    assert (out["family"], out["cpu"], out["memory"]) == ("chat-api-staging-job-report", "2048", "8192")
    assert out["containerDefinitions"] == [{"name": "api", "image": "x@sha256:1"}]
    assert td["containerDefinitions"][0]["memory"] == 2048  # the service's request is untouched


def test_cost_advice_savings_plans_and_cold_starts(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, {}, health={"path": "/health", "start_period": "2m"})
    plan = make_plan(cfg, GitFacts(sha="0" * 40, branch="main"))
    (advice,) = plan.cost.advice
    on_demand = plan.cost.services[0].monthly_usd
    assert advice.startswith("api: 2 always-on tasks")
    assert f"${on_demand * 0.2:,.2f}–${on_demand * 0.5:,.2f}/month" in advice and "2026-01" in advice

    # A service that may run no task, with a long start period: a cold start is flagged; Spot has no
    # Savings Plan line.
    cfg = _cfg(tmp_path, {}, count=0, spot=True, health={"path": "/health", "start_period": "2m"})
    (advice,) = make_plan(cfg, GitFacts(sha="0" * 40, branch="main")).cost.advice
    assert advice.startswith("api: may run 0 tasks and its health start_period is 2m")
    cfg = _cfg(tmp_path, {}, count=0, health={"path": "/health", "start_period": "20s"})
    assert make_plan(cfg, GitFacts(sha="0" * 40, branch="main")).cost.advice == ()


GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "golden" / "jobs-staging.json"
ACCOUNT = "123456789012"


def golden_config(tmp_path: Path) -> ResolvedConfig:
    """The reference deploy.yaml's staging with two jobs: a Spot job on the worker's release, and an
    on-demand one with its own size (its own family) on the api's."""
    root = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((root / "deploy.yaml").read_text(encoding="utf-8"))
    doc["jobs"] = {
        "embed": {"command": ["python", "-m", "jobs.embed"], "service": "worker", "schedule": "rate(6 hours)",
                  "retries": 3},
        "report": {"command": ["python", "-m", "jobs.report"], "service": "api", "schedule": "cron(0 3 * * ? *)",
                   "spot": False, "cpu": 2048, "memory": 8192},
    }
    doc["environments"]["staging"]["jobs_role"] = f"arn:aws:iam::{ACCOUNT}:role/chat-api-jobs"
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return load_env(read(path, environ={}), "staging")


def golden_requests(cfg: ResolvedConfig) -> dict[str, Any]:
    """What a first deploy creates (CreateSchedule, revisions :1) and the next release's deploy
    updates (UpdateSchedule, revisions :2), as deployctl.targets.ecs_jobs renders them."""
    plan = make_plan(cfg, GitFacts(sha="3f2a9c41d0b7e6f5a4c3b2a1908f7e6d5c4b3a29", branch="main"),
                     image_override=f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/chat-api@sha256:{'ab' * 32}")
    by_service = {sp.name: sp for sp in plan.services}
    dlq = f"arn:aws:sqs:us-east-1:{ACCOUNT}:{jobs.dlq_name(cfg.app, cfg.env_name)}"
    out: dict[str, Any] = {}
    for call, revision in (("CreateSchedule", 1), ("UpdateSchedule", 2)):
        out[call] = {}
        for name in cfg.jobs:
            sp = by_service[cfg.job_service(name)]
            family = jobs.family(cfg.app, cfg.env_name, name) if jobs.own_size(cfg, name) else sp.family
            out[call][name] = jobs.deploy_request(
                cfg, name, service_task_definition=sp.task_definition, create_service=sp.create_service,
                task_definition=f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/{family}:{revision}",
                account_id=ACCOUNT, dlq_arn=dlq)
    return out


def test_schedule_requests_match_golden_file(tmp_path: Path) -> None:
    import botocore.session
    from botocore.validate import validate_parameters

    actual = golden_requests(golden_config(tmp_path))
    model = botocore.session.get_session().get_service_model("scheduler")
    for call, requests in actual.items():
        for request in requests.values():
            validate_parameters(request, model.operation_model(call).input_shape)
    embed, report = actual["CreateSchedule"]["embed"], actual["CreateSchedule"]["report"]
    assert embed["Target"]["EcsParameters"]["CapacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT",
                                                                            "weight": 1}]
    assert report["Target"]["EcsParameters"]["LaunchType"] == "FARGATE"
    assert actual["UpdateSchedule"]["report"]["Target"]["EcsParameters"]["TaskDefinitionArn"].endswith(
        "task-definition/chat-api-staging-job-report:2")
    if os.environ.get("DEPLOYCTL_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(actual, indent=2) + "\n", encoding="utf-8")
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert actual == expected, f"{GOLDEN.name} differs; if intended, regenerate it and review the diff"

"""Monitoring against moto server over HTTP: alarms, deployment alarms, dashboards, metrics, guardrails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deployctl.adapters.git import GitFacts
from deployctl.config import load_env, read
from deployctl.monitoring import apply, current, resolve_facts
from deployctl.plan import make_plan
from deployctl.render import monitoring as render

DEPLOY_YAML = textwrap.dedent("""
    version: 1
    app: chat
    region: us-east-1
    image: {repository: chat, registry: ecr}
    services:
      api:
        port: 8000
        cpu: 1024
        memory: 4096
        health: {path: /health/ready, start_period: 60s}
        load_balancer: {target_group: chat-tg}
      worker: {cpu: 512, memory: 2048, spot: true}
    deploy: {alarms: [chat-external-5xx]}
    monitoring:
      load_balancer: chat-alb
      latency: {p50: 1s, p95: 4s, p99: 10s}
      error_rate: 5
      tokens: {namespace: Chat/LLM, metric: TokensPerRequest, dimensions: {Service: "{service}"},
               max_per_request: 4000, hourly_cap: 2000000, service: api}
      queue: {name: chat-jobs, max_visible: 500, service: worker}
      period: 60s
      evaluation_periods: 3
      roll_back_on: [error_rate, latency_p99]
    environments:
      staging:
        target: ecs
        cluster: ai-staging
        network: {subnets: [subnet-1]}
        roles: {execution: "arn:aws:iam::123456789012:role/exec"}
        guardrails: {max_monthly_usd: 40}
""")


QUEUE_DIMS = [{"Name": "QueueName", "Value": "chat-jobs"}]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "deploy.yaml").write_text(DEPLOY_YAML)
    return tmp_path


@pytest.fixture
def cfg(project: Path):
    return load_env(read(project / "deploy.yaml"), "staging")


@pytest.fixture
def alb(aws):
    """A real (moto) ALB and target group, so ARN suffixes are looked up, not invented."""
    ec2, elbv2 = aws.client("ec2"), aws.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}")
               ["Subnet"]["SubnetId"] for i, z in ((1, "a"), (2, "b"))]
    lb = elbv2.create_load_balancer(Name="chat-alb", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    tg = elbv2.create_target_group(Name="chat-tg", Protocol="HTTP", Port=8000, VpcId=vpc,
                                   TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    return lb.split(":loadbalancer/", 1)[1], tg.rsplit(":", 1)[1]


def _expected_alarms(lb: str, tg: str) -> list[dict]:
    """Every PutMetricAlarm request, written out by hand from deploy.yaml above and the
    CloudWatch / ALB / SQS metric documentation (namespaces, metric names, dimensions)."""
    alb = [{"Name": "LoadBalancer", "Value": lb}, {"Name": "TargetGroup", "Value": tg}]
    common = {"ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 3, "DatapointsToAlarm": 3,
              "TreatMissingData": "notBreaching"}

    def tags(service: str) -> list[dict]:
        return [{"Key": "deployctl:app", "Value": "chat"}, {"Key": "deployctl:env", "Value": "staging"},
                {"Key": "deployctl:service", "Value": service}]

    def latency(pct: str, seconds: float) -> dict:
        return {"AlarmName": f"chat-staging-api-latency-{pct}",
                "AlarmDescription": f"deployctl: api {pct} latency above {seconds:g}s", **common,
                "Tags": tags("api"), "Namespace": "AWS/ApplicationELB", "MetricName": "TargetResponseTime",
                "ExtendedStatistic": pct, "Dimensions": alb, "Period": 60, "Threshold": seconds, "Unit": "Seconds"}

    def alb_sum(metric: str) -> dict:
        return {"Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": metric, "Dimensions": alb},
                "Period": 60, "Stat": "Sum"}

    return [
        latency("p50", 1.0), latency("p95", 4.0), latency("p99", 10.0),
        {"AlarmName": "chat-staging-api-error-rate", "AlarmDescription": "deployctl: api 5xx rate above 5%",
         **common, "Tags": tags("api"), "Threshold": 5.0, "Metrics": [
             {"Id": "errors", "ReturnData": False, "MetricStat": alb_sum("HTTPCode_Target_5XX_Count")},
             {"Id": "requests", "ReturnData": False, "MetricStat": alb_sum("RequestCount")},
             {"Id": "error_rate", "Label": "5xx % of requests", "ReturnData": True,
              "Expression": "IF(requests > 0, 100 * FILL(errors, 0) / requests, 0)"}]},
        {"AlarmName": "chat-staging-api-tokens-per-request",
         "AlarmDescription": "deployctl: api average tokens per request above 4,000", **common,
         "Tags": tags("api"), "Namespace": "Chat/LLM", "MetricName": "TokensPerRequest", "Statistic": "Average",
         "Dimensions": [{"Name": "Service", "Value": "api"}], "Period": 60, "Threshold": 4000.0},
        {"AlarmName": "chat-staging-api-tokens-hourly",
         "AlarmDescription": "deployctl: api tokens in one hour above 2,000,000",
         **common, "EvaluationPeriods": 1, "DatapointsToAlarm": 1, "Tags": tags("api"),
         "Namespace": "Chat/LLM", "MetricName": "TokensPerRequest", "Statistic": "Sum",
         "Dimensions": [{"Name": "Service", "Value": "api"}], "Period": 3600, "Threshold": 2000000.0},
        {"AlarmName": "chat-staging-worker-queue-depth",
         "AlarmDescription": "deployctl: queue chat-jobs above 500 visible messages", **common,
         "Tags": tags("worker"), "Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
         "Statistic": "Maximum", "Dimensions": QUEUE_DIMS, "Period": 60, "Threshold": 500.0},
    ]


def test_alarms_are_created_with_exact_metric_statistic_period_threshold_and_dimensions(aws, cfg, alb):
    lb_suffix, tg_suffix = alb
    cw = aws.client("cloudwatch")
    facts = resolve_facts(cfg, cfg.monitoring, aws.client("elbv2"))
    expected = _expected_alarms(lb_suffix, tg_suffix)
    # The whole rendered requests, compared with the hand-written ones.
    assert [spec.request for spec in render.alarms(cfg, cfg.monitoring, facts)] == expected

    applied = apply(cfg, cw, aws.client("elbv2"), account_id="123456789012")
    assert list(applied.alarms) == [a["AlarmName"] for a in expected]
    # What CloudWatch (moto) stored: every field we sent, back unchanged; tags by their own API.
    stored = {a["AlarmName"]: a for a in cw.describe_alarms()["MetricAlarms"]}
    for request in expected:
        alarm = stored[request["AlarmName"]]
        for key, value in request.items():
            if key == "Tags":
                got = cw.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
                assert sorted(got, key=lambda t: t["Key"]) == value, request["AlarmName"]
            else:
                assert alarm.get(key) == value, (request["AlarmName"], key)
    # Applying twice updates in place rather than duplicating.
    apply(cfg, cw, aws.client("elbv2"), account_id="123456789012")
    assert len(cw.describe_alarms()["MetricAlarms"]) == 7


def test_roll_back_alarms_are_wired_into_the_ecs_deployment_configuration(aws, ecs_sim, cfg):
    plan = make_plan(cfg, GitFacts("a" * 40, "main"))
    api = next(s for s in plan.services if s.name == "api")
    alarms = api.update_service["deploymentConfiguration"]["alarms"]
    assert alarms == {"alarmNames": ["chat-external-5xx", "chat-staging-api-latency-p99",
                                     "chat-staging-api-error-rate"], "enable": True, "rollback": True}
    # The worker is not measured by the API's alarms: only the environment-wide one guards it.
    worker = next(s for s in plan.services if s.name == "worker")
    assert worker.update_service["deploymentConfiguration"]["alarms"]["alarmNames"] == ["chat-external-5xx"]
    # And ECS (moto, with the rollout simulation that keeps deploymentConfiguration, which plain
    # moto drops) accepts that deployment configuration on a real CreateService request.
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName="ai-staging", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    td = dict(api.task_definition)
    td["containerDefinitions"] = [dict(td["containerDefinitions"][0], image="127.0.0.1:5000/chat@sha256:" + "0" * 64)]
    arn = ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="chat", Description="tasks", VpcId=vpc)["GroupId"]
    request = dict(api.create_service, taskDefinition=arn,
                   networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}})
    request.pop("loadBalancers")
    ecs.create_service(**request)
    svc = ecs.describe_services(cluster="ai-staging", services=["chat-staging-api"])["services"][0]
    assert svc["deploymentConfiguration"]["alarms"]["alarmNames"] == alarms["alarmNames"]


def test_dashboard_body_is_accepted_by_put_dashboard_and_well_formed(aws, cfg, alb):
    cw = aws.client("cloudwatch")
    applied = apply(cfg, cw, aws.client("elbv2"), account_id="123456789012")
    body = json.loads(cw.get_dashboard(DashboardName=applied.dashboard)["DashboardBody"])
    # Shape per the CloudWatch dashboard body structure reference: every metric row is
    # [namespace, name, (dim name, dim value)*, {options}] and every widget has a position.
    metric_widgets = [w for w in body["widgets"] if w["type"] == "metric"]
    assert len(metric_widgets) == 4  # latency, requests/5xx, tokens, queue
    for widget in body["widgets"]:
        assert {"x", "y", "width", "height", "properties"} <= set(widget)
    for widget in metric_widgets:
        for row in widget["properties"]["metrics"]:
            assert isinstance(row[-1], dict) and "stat" in row[-1]
            assert len(row[:-1]) % 2 == 0  # namespace+name, then name/value pairs
    latency = metric_widgets[0]["properties"]["metrics"]
    assert [r[-1]["stat"] for r in latency] == ["p50", "p95", "p99"]
    alarm_widget = next(w for w in body["widgets"] if w["type"] == "alarm")
    assert "arn:aws:cloudwatch:us-east-1:123456789012:alarm:chat-staging-api-error-rate" in \
        alarm_widget["properties"]["alarms"]


def test_grafana_dashboard_round_trips_through_the_grafana_foundation_sdk_types(cfg):
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.cloudwatch import CloudWatchMetricsQuery
    from grafana_foundation_sdk.models.dashboard import Dashboard, Panel

    data = render.grafana_dashboard(cfg, cfg.monitoring)
    dashboard = Dashboard.from_json(data)
    assert dashboard.title == "chat (staging)"
    assert len(data["panels"]) == 4
    for panel in data["panels"]:
        typed = json.loads(json.dumps(Panel.from_json(panel), cls=JSONEncoder))
        for key in ("id", "type", "title", "gridPos", "datasource"):
            assert typed[key] == panel[key], key
        for target in panel["targets"]:
            # Every key we write is a field of the SDK's CloudWatch query type, with the same value.
            assert json.loads(json.dumps(CloudWatchMetricsQuery.from_json(target), cls=JSONEncoder)) == target


def test_metrics_reads_put_metric_data_and_percentiles_go_through_the_seam(aws, cfg, alb):
    """moto computes no percentiles (p50/p95/p99 come back empty), so percentile statistics are
    answered by a test seam computing nearest-rank percentiles over the samples we sent; Sum,
    Average and Maximum come from moto's real get_metric_data."""
    cw = aws.client("cloudwatch")
    facts = resolve_facts(cfg, cfg.monitoring, aws.client("elbv2"))
    dims = [{"Name": "LoadBalancer", "Value": facts.load_balancer_suffix},
            {"Name": "TargetGroup", "Value": facts.target_group_suffixes["api"]}]
    now = datetime.now(UTC)
    latencies = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 2.0, 12.0]
    cw.put_metric_data(Namespace="AWS/ApplicationELB", MetricData=[
        {"MetricName": "TargetResponseTime", "Dimensions": dims, "Value": v, "Timestamp": now} for v in latencies] + [
        {"MetricName": "RequestCount", "Dimensions": dims, "Value": 200, "Timestamp": now},
        {"MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": dims, "Value": 14, "Timestamp": now}])
    cw.put_metric_data(Namespace="Chat/LLM", MetricData=[
        {"MetricName": "TokensPerRequest", "Dimensions": [{"Name": "Service", "Value": "api"}], "Value": v,
         "Timestamp": now} for v in (1000, 3000, 5000)])
    cw.put_metric_data(Namespace="AWS/SQS", MetricData=[
        {"MetricName": "ApproximateNumberOfMessagesVisible", "Dimensions": QUEUE_DIMS,
         "Value": v, "Timestamp": now} for v in (10, 42, 7)])

    from deployctl.monitoring import cloudwatch_stats

    real = cloudwatch_stats(cw, minutes=15)

    def seam(namespace, metric, dimensions, stat, period):
        if stat.startswith("p"):
            values = sorted(latencies)
            rank = max(1, -(-int(stat[1:]) * len(values) // 100))
            return values[rank - 1]
        return real(namespace, metric, dimensions, stat, period)

    rows = {(r.service, r.name): r for r in current(cfg, cfg.monitoring, facts, seam)}
    assert rows[("api", "p50")].value == 0.6
    assert rows[("api", "p95")].value == 12.0 and rows[("api", "p95")].breaching
    assert rows[("api", "p99")].value == 12.0 and rows[("api", "p99")].breaching
    assert rows[("api", "error_rate")].value == pytest.approx(7.0) and rows[("api", "error_rate")].breaching
    assert rows[("api", "tokens_per_request")].value == pytest.approx(3000.0)
    assert not rows[("api", "tokens_per_request")].breaching
    assert rows[("worker", "queue_depth")].value == 42.0


def test_metrics_command_renders_a_table_from_moto(aws, project, alb):
    env = {**os.environ, **aws.env, "COLUMNS": "160"}
    cw = aws.client("cloudwatch")
    cw.put_metric_data(Namespace="AWS/SQS", MetricData=[
        {"MetricName": "ApproximateNumberOfMessagesVisible", "Dimensions": QUEUE_DIMS,
         "Value": 900, "Timestamp": datetime.now(UTC)}])
    out = subprocess.run([sys.executable, "-m", "deployctl", "metrics", "--env", "staging", "--json"],
                         cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    queue = next(m for m in data["metrics"] if m["metric"] == "queue_depth")
    assert queue == {"service": "worker", "metric": "queue_depth", "value": 900.0, "unit": "msgs",
                     "threshold": 500.0, "breaching": True}
    table = subprocess.run([sys.executable, "-m", "deployctl", "metrics", "--env", "staging"],
                           cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    assert "queue_depth" in table.stdout and "over" in table.stdout and "no data" in table.stdout


def test_a_plan_over_budget_exits_2_with_estimate_and_limit(project):
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x"],
                   cwd=project, check=True)
    out = subprocess.run([sys.executable, "-m", "deployctl", "plan", "--env", "staging"], cwd=project,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "$40.00" in out.stderr and "max_monthly_usd" in out.stderr
    estimate = out.stderr.split("estimated $", 1)[1].split("/month", 1)[0]
    assert float(estimate.replace(",", "")) > 40
    assert "Traceback" not in out.stderr


def test_run_publishes_its_own_stage_durations_and_outcome_when_enabled(aws, tmp_path):
    project = tmp_path
    (project / "deploy.yaml").write_text(DEPLOY_YAML.replace("  period: 60s\n",
                                                             "  period: 60s\n  publish_run_metrics: true\n")
                                         .replace("image: {repository: chat, registry: ecr}",
                                                  "image: {repository: chat, registry: ecr}\n"
                                                  "stages: {lint: {run: ['true']}, test: {run: ['exit 3']}}"))
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x"],
                   cwd=project, check=True)
    out = subprocess.run([sys.executable, "-m", "deployctl", "run", "--env", "staging", "--only", "lint,test"],
                         cwd=project, env={**os.environ, **aws.env}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr  # the test stage fails: that is what gets published
    cw = aws.client("cloudwatch")
    names = {(m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])))
             for m in cw.list_metrics(Namespace="deployctl")["Metrics"]}
    base = (("App", "chat"), ("Env", "staging"))
    assert ("RunSucceeded", base) in names and ("RunDuration", base) in names
    assert ("StageDuration", tuple(sorted((*base, ("Stage", "lint"))))) in names
    assert ("StageDuration", tuple(sorted((*base, ("Stage", "test"))))) in names
    now = datetime.now(UTC)
    from datetime import timedelta

    stats = cw.get_metric_statistics(Namespace="deployctl", MetricName="RunSucceeded",
                                     Dimensions=[{"Name": "App", "Value": "chat"}, {"Name": "Env", "Value": "staging"}],
                                     StartTime=now - timedelta(minutes=10), EndTime=now + timedelta(minutes=1),
                                     Period=60, Statistics=["Maximum"])
    assert [p["Maximum"] for p in stats["Datapoints"]] == [0.0]


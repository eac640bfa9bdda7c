"""monitoring.endpoints against moto server over HTTP: metric filters and per-route alarms exactly as
rendered (golden file), idempotent re-apply, removal, dashboards, `metrics`; and the rendered filter
patterns run over sample access-log lines.

moto has no TestMetricFilter, so the patterns are evaluated with tests/support/filter_pattern.py, a
small evaluator of the JSON filter-pattern subset deployctl generates, written from the AWS filter
pattern syntax documentation (and checked here against that page's own examples).

Regenerate the golden file after an intended change, then review the diff by hand:
    DEPLOYCTL_UPDATE_GOLDEN=1 python -m pytest tests/integration/test_endpoint_metrics.py
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from deployctl.config import load_env, read
from deployctl.render import monitoring as render
from tests.support import cli as in_process
from tests.support import filter_pattern

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "endpoints-staging.json"
LOG_GROUP = "/deployctl/chat/staging"
NAMESPACE = "deployctl/endpoints/chat-staging"

DEPLOY_YAML = textwrap.dedent("""
    version: 1
    app: chat
    region: us-east-1
    image: {repository: chat, registry: ecr}
    services:
      api: {port: 8000, cpu: 1024, memory: 4096}
    monitoring:
      endpoints:
        fields: {route: route, status: status, latency_ms: duration_ms, tokens: tokens}
        routes: [/v1/chat, /v1/embed, "/v1/items/{id}"]
        error_rate: 5
        per_route: {/v1/chat: {error_rate: 2}}
        min_requests: 20
      period: 60s
      evaluation_periods: 3
    environments:
      staging:
        target: ecs
        cluster: ai-staging
        network: {subnets: [subnet-1]}
        roles: {execution: "arn:aws:iam::123456789012:role/exec"}
""")

# Access-log lines as the uvicorn middleware / gunicorn format in docs/endpoint-metrics.md write them.
LINES = {
    "chat_ok": '{"route": "/v1/chat", "method": "POST", "status": 200, "duration_ms": 812.5, "tokens": 950}',
    "chat_500": '{"route": "/v1/chat", "method": "POST", "status": 500, "duration_ms": 30001, "tokens": 0}',
    "chat_503": '{"route": "/v1/chat", "method": "POST", "status": 503, "duration_ms": 5.2}',
    "item_404": '{"route": "/v1/items/{id}", "method": "GET", "status": 404, "duration_ms": 3}',
    "unlisted": '{"route": "/admin/debug", "method": "GET", "status": 500, "duration_ms": 2}',
    "raw_path": '{"route": "/v1/items/8f14e45f", "method": "GET", "status": 502, "duration_ms": 2}',
    "status_text": '{"route": "/v1/embed", "status": "500", "duration_ms": 9}',
    "no_json": 'INFO:     10.0.0.7:51234 - "POST /v1/chat HTTP/1.1" 500 Internal Server Error',
}


def cli(aws: Any, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return in_process.run(*args, cwd=project, env={**aws.env, "COLUMNS": "160"})


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "deploy.yaml").write_text(DEPLOY_YAML)
    return tmp_path


@pytest.fixture
def cfg(project: Path) -> Any:
    return load_env(read(project / "deploy.yaml", environ={}), "staging")


def rendered(cfg: Any) -> dict[str, Any]:
    ep = cfg.monitoring.endpoints
    return {"metric_filters": [f.request for f in render.metric_filters(cfg, ep)],
            "alarms": [a.request for a in render.endpoint_alarms(cfg, cfg.monitoring, ep)]}


def stored_like(sent: Any, stored: Any) -> Any:
    """`stored` cut down to the keys `sent` has (AWS adds ARNs, state, creation times)."""
    if isinstance(sent, dict) and isinstance(stored, dict):
        return {k: stored_like(v, stored.get(k)) for k, v in sent.items()}
    if isinstance(sent, list) and isinstance(stored, list):
        return [stored_like(a, b) for a, b in zip(sent, stored, strict=False)] + stored[len(sent):]
    return stored


# -- exactly as rendered --------------------------------------------------------------------------

def test_rendered_filters_and_alarms_match_the_golden_file(cfg: Any) -> None:
    actual = rendered(cfg)
    if os.environ.get("DEPLOYCTL_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(actual, indent=2) + "\n", encoding="utf-8")
    assert actual == json.loads(GOLDEN.read_text(encoding="utf-8")), \
        f"{GOLDEN.name} differs; if intended, regenerate it and review the diff"


def test_monitor_apply_puts_exactly_the_golden_filters_and_alarms(aws: Any, project: Path) -> None:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    out = cli(aws, project, "monitor", "apply", "--env", "staging", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    names = [f["filterName"] for f in golden["metric_filters"]]
    assert report["metric_filters"] == {"created": names, "updated": [], "unchanged": [], "removed": []}
    assert report["created"] == [a["AlarmName"] for a in golden["alarms"]]

    filters = aws.client("logs").describe_metric_filters(logGroupName=LOG_GROUP)["metricFilters"]
    assert sorted(f["filterName"] for f in filters) == sorted(names)
    by_name = {f["filterName"]: f for f in filters}
    for want in golden["metric_filters"]:
        assert stored_like(want, by_name[want["filterName"]]) == want

    alarms = aws.client("cloudwatch").describe_alarms(
        AlarmNames=[a["AlarmName"] for a in golden["alarms"]])["MetricAlarms"]
    by_alarm = {a["AlarmName"]: a for a in alarms}
    for want in golden["alarms"]:
        sent = {k: v for k, v in want.items() if k != "Tags"}  # DescribeAlarms returns no tags
        assert stored_like(sent, by_alarm[want["AlarmName"]]) == sent


def test_golden_file_says_what_the_config_asks() -> None:
    """Hand-checked facts of the golden file, so a regeneration cannot quietly change them."""
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    filters = {f["filterName"]: f for f in golden["metric_filters"]}
    assert set(filters) == {"chat-staging-endpoint-requests", "chat-staging-endpoint-5xx",
                            "chat-staging-endpoint-latency", "chat-staging-endpoint-tokens"}
    routes = '($.route = "/v1/chat" || $.route = "/v1/embed" || $.route = "/v1/items/{id}")'
    assert filters["chat-staging-endpoint-5xx"]["filterPattern"] == "{ " + routes + " && $.status >= 500 }"
    latency = filters["chat-staging-endpoint-latency"]["metricTransformations"][0]
    assert latency == {"metricName": "LatencyMs", "metricNamespace": NAMESPACE, "metricValue": "$.duration_ms",
                       "unit": "Milliseconds", "dimensions": {"Route": "$.route"}}
    assert all(f["logGroupName"] == LOG_GROUP for f in filters.values())
    thresholds = {a["AlarmName"]: a["Threshold"] for a in golden["alarms"]}
    assert thresholds == {"chat-staging-endpoint-error-rate-v1-chat": 2.0,
                          "chat-staging-endpoint-error-rate-v1-embed": 5.0,
                          "chat-staging-endpoint-error-rate-v1-items-id": 5.0}
    chat = golden["alarms"][0]
    assert chat["Metrics"][0]["MetricStat"]["Metric"] == {
        "Namespace": NAMESPACE, "MetricName": "Errors5xx", "Dimensions": [{"Name": "Route", "Value": "/v1/chat"}]}
    assert chat["Metrics"][2]["Expression"] == "IF(requests >= 20, 100 * FILL(errors, 0) / requests, 0)"


# -- idempotent, updated, removed ---------------------------------------------------------------

def test_second_apply_changes_nothing_and_a_config_change_updates_and_removes(aws: Any, project: Path) -> None:
    assert cli(aws, project, "monitor", "apply", "--env", "staging").returncode == 0
    again = json.loads(cli(aws, project, "monitor", "apply", "--env", "staging", "--json").stdout)
    assert again["metric_filters"]["created"] == again["metric_filters"]["updated"] == []
    assert len(again["metric_filters"]["unchanged"]) == 4
    assert again["created"] == again["updated"] == []

    # Tokens no longer logged, /v1/chat's threshold raised: one alarm updated, the tokens filter gone.
    text = DEPLOY_YAML.replace(", tokens: tokens}", "}").replace("{error_rate: 2}", "{error_rate: 3}")
    (project / "deploy.yaml").write_text(text)
    out = cli(aws, project, "monitor", "apply", "--env", "staging")
    assert out.returncode == 0, out.stderr
    assert "3 metric filters: 3 unchanged, 1 removed" in out.stdout
    assert "removed: chat-staging-endpoint-tokens" in out.stdout
    assert "updated: chat-staging-endpoint-error-rate-v1-chat" in out.stdout
    left = aws.client("logs").describe_metric_filters(logGroupName=LOG_GROUP)["metricFilters"]
    assert "chat-staging-endpoint-tokens" not in {f["filterName"] for f in left}
    alarm = aws.client("cloudwatch").describe_alarms(
        AlarmNames=["chat-staging-endpoint-error-rate-v1-chat"])["MetricAlarms"][0]
    assert alarm["Threshold"] == 3.0


def test_filters_that_are_not_deployctls_are_left_alone(aws: Any, project: Path) -> None:
    logs = aws.client("logs")
    logs.put_metric_filter(logGroupName=LOG_GROUP, filterName="team-oom-kills", filterPattern='"OutOfMemory"',
                           metricTransformations=[{"metricName": "Oom", "metricNamespace": "Team",
                                                   "metricValue": "1"}])
    assert cli(aws, project, "monitor", "apply", "--env", "staging").returncode == 0
    names = {f["filterName"] for f in logs.describe_metric_filters(logGroupName=LOG_GROUP)["metricFilters"]}
    assert "team-oom-kills" in names


# -- dashboards and the `metrics` read-out --------------------------------------------------------

def test_dashboards_show_the_top_routes(aws: Any, project: Path, tmp_path: Path) -> None:
    grafana = tmp_path / "grafana.json"
    out = cli(aws, project, "monitor", "apply", "--env", "staging", "--grafana", str(grafana))
    assert out.returncode == 0, out.stderr
    body = json.loads(aws.client("cloudwatch").get_dashboard(DashboardName="chat-staging")["DashboardBody"])
    expressions = [row[0]["expression"] for w in body["widgets"] if w["type"] == "metric"
                   for row in w["properties"]["metrics"] if isinstance(row[0], dict)]
    assert (f'SELECT SUM(Errors5xx) FROM SCHEMA("{NAMESPACE}", Route) GROUP BY Route ORDER BY SUM() DESC LIMIT 10'
            in expressions)
    alarms = next(w for w in body["widgets"] if w["type"] == "alarm")["properties"]["alarms"]
    assert any(a.endswith(":alarm:chat-staging-endpoint-error-rate-v1-chat") for a in alarms)
    panels = json.loads(grafana.read_text())["panels"]
    sql = [t["sqlExpression"] for p in panels for t in p["targets"] if t.get("metricQueryType") == 1]
    assert f'SELECT AVG(LatencyMs) FROM SCHEMA("{NAMESPACE}", Route) GROUP BY Route ORDER BY AVG() DESC LIMIT 10' \
        in sql
    assert len(sql) == 5  # requests, 5xx, latency avg and max, tokens


def test_metrics_reports_each_routes_error_rate(aws: Any, project: Path) -> None:
    cw = aws.client("cloudwatch")
    now = datetime.now(UTC)
    for metric, value in (("Requests", 200), ("Errors5xx", 10)):
        cw.put_metric_data(Namespace=NAMESPACE, MetricData=[{
            "MetricName": metric, "Dimensions": [{"Name": "Route", "Value": "/v1/chat"}], "Value": value,
            "Timestamp": now}])
    out = cli(aws, project, "metrics", "--env", "staging", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["metrics"]
    chat = next(r for r in rows if r.get("route") == "/v1/chat")
    assert chat == {"service": None, "route": "/v1/chat", "metric": "error_rate", "value": 5.0, "unit": "%",
                    "threshold": 2.0, "breaching": True}
    embed = next(r for r in rows if r.get("route") == "/v1/embed")
    assert embed["value"] is None  # no traffic: no data, not 0 %


# -- the filter patterns against sample access-log lines -------------------------------------------

def test_evaluator_agrees_with_the_aws_documentation_examples() -> None:
    """Patterns in the form of the AWS page's JSON examples (`{ $.eventType = "UpdateTrail" }` is
    quoted from it), with the results its rules give: equality, numeric comparison, &&, ||, nesting,
    a missing field never matching."""
    event = json.dumps({"eventType": "UpdateTrail", "sourceIPAddress": "111.111.111.111",
                        "user": {"id": 1, "email": "John.Stiles@example.com"}, "bandwidth": 75, "latency": 20})
    assert filter_pattern.matches('{ $.eventType = "UpdateTrail" }', event)
    assert filter_pattern.matches('{ $.bandwidth > 75 }', event) is False
    assert filter_pattern.matches('{ $.latency < 50 }', event)
    assert filter_pattern.matches('{ ($.user.id = 2) && ($.bandwidth = 75) }', event) is False
    assert filter_pattern.matches('{ ($.user.id = 1) || ($.bandwidth = 80) }', event)
    assert filter_pattern.matches('{ $.user.email = "John.Stiles@example.com" }', event)
    assert filter_pattern.matches('{ $.nothere = 1 }', event) is False
    with pytest.raises(ValueError):
        filter_pattern.parse('{ $.a = 1 && $.b = 2 || $.c = 3 }')  # precedence unstated: refused


def test_rendered_patterns_count_the_right_lines(cfg: Any) -> None:
    filters = {f.kind: f.request for f in render.metric_filters(cfg, cfg.monitoring.endpoints)}

    def matched(kind: str) -> set[str]:
        return {name for name, line in LINES.items() if filter_pattern.matches(filters[kind]["filterPattern"], line)}

    assert matched("requests") == {"chat_ok", "chat_500", "chat_503", "item_404", "status_text"}
    # Unlisted routes and raw paths never become metrics; "500" as a string is not a number.
    assert matched("errors") == {"chat_500", "chat_503"}
    assert matched("latency") == {"chat_ok", "chat_500", "chat_503", "item_404", "status_text"}
    assert matched("tokens") == {"chat_ok", "chat_500"}


def test_rendered_transformations_publish_value_and_route(cfg: Any) -> None:
    filters = {f.kind: f.request for f in render.metric_filters(cfg, cfg.monitoring.endpoints)}
    latency = filters["latency"]["metricTransformations"][0]
    assert filter_pattern.metric_datum(latency, LINES["chat_ok"]) == (812.5, {"Route": "/v1/chat"})
    assert filter_pattern.metric_datum(latency, LINES["item_404"]) == (3.0, {"Route": "/v1/items/{id}"})
    errors = filters["errors"]["metricTransformations"][0]
    assert filter_pattern.metric_datum(errors, LINES["chat_503"]) == (1.0, {"Route": "/v1/chat"})
    tokens = filters["tokens"]["metricTransformations"][0]
    assert filter_pattern.metric_datum(tokens, LINES["chat_ok"]) == (950.0, {"Route": "/v1/chat"})


def test_grafana_top_route_queries_round_trip_through_the_grafana_foundation_sdk_types(cfg: Any) -> None:
    """The Metrics Insights targets are CloudWatch queries Grafana knows: QUERY type, code editor."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.cloudwatch import CloudWatchMetricsQuery, MetricEditorMode, MetricQueryType

    panels = render.grafana_dashboard(cfg, cfg.monitoring)["panels"]
    targets = [t for p in panels for t in p["targets"] if "sqlExpression" in t]
    assert len(targets) == 5
    for target in targets:
        typed = CloudWatchMetricsQuery.from_json(target)
        assert typed.metric_query_type == MetricQueryType.QUERY
        assert typed.metric_editor_mode == MetricEditorMode.CODE
        assert json.loads(json.dumps(typed, cls=JSONEncoder)) == target


# -- monitoring.tokens from the access logs (source: logs) ---------------------------------------

LOGS_TOKENS = "  tokens: {source: logs, max_per_request: 4000, hourly_cap: 2000000}\n  period: 60s"
# An agent loop on a route nobody listed: its tokens cost the same.
UNLISTED_TOKENS = '{"route": "/internal/agent", "method": "POST", "status": 200, "duration_ms": 40, "tokens": 7000}'


@pytest.fixture
def logs_tokens(project: Path) -> Path:
    (project / "deploy.yaml").write_text(DEPLOY_YAML.replace("\n  period: 60s", "\n" + LOGS_TOKENS, 1))
    return project


def test_tokens_from_logs_publish_a_total_over_every_line_and_the_alarms_read_it(logs_tokens: Path) -> None:
    cfg = load_env(read(logs_tokens / "deploy.yaml", environ={}), "staging")
    filters = {f.kind: f.request for f in render.metric_filters(cfg, cfg.monitoring.endpoints)}
    total = filters["tokens_total"]
    assert total["filterName"] == "chat-staging-endpoint-tokens-total"
    (transformation,) = total["metricTransformations"]
    assert "dimensions" not in transformation  # the total: no Route
    lines = {**LINES, "unlisted_tokens": UNLISTED_TOKENS}
    counted = {n for n, line in lines.items() if filter_pattern.matches(total["filterPattern"], line)}
    assert counted == {"chat_ok", "chat_500", "unlisted_tokens"}  # every line with tokens, listed route or not
    assert filter_pattern.metric_datum(transformation, UNLISTED_TOKENS) == (7000.0, {})

    alarms = {a.kind: a.request for a in render.alarms(cfg, cfg.monitoring)}
    for kind, stat in (("tokens_per_request", "Average"), ("tokens_hourly", "Sum")):
        assert (alarms[kind]["Namespace"], alarms[kind]["MetricName"], alarms[kind]["Dimensions"],
                alarms[kind]["Statistic"]) == (NAMESPACE, "Tokens", [], stat)
    assert alarms["tokens_hourly"]["AlarmName"] == "chat-staging-api-tokens-hourly"
    assert alarms["tokens_hourly"]["Threshold"] == 2_000_000


def test_tokens_from_logs_on_moto_alarm_on_what_the_filter_publishes(aws: Any, logs_tokens: Path) -> None:
    out = cli(aws, logs_tokens, "monitor", "apply", "--env", "staging", "--json")
    assert out.returncode == 0, out.stderr
    stored = {f["filterName"]: f for f in
              aws.client("logs").describe_metric_filters(logGroupName=LOG_GROUP)["metricFilters"]}
    total = stored["chat-staging-endpoint-tokens-total"]["metricTransformations"][0]
    assert (total["metricName"], total["metricNamespace"], total.get("dimensions") or {}) == ("Tokens", NAMESPACE, {})
    alarm = aws.client("cloudwatch").describe_alarms(
        AlarmNames=["chat-staging-api-tokens-per-request"])["MetricAlarms"][0]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"]) == (NAMESPACE, "Tokens", [])

    # moto runs no metric filters: publish what the stored filter would for two log lines.
    cw = aws.client("cloudwatch")
    for line in (LINES["chat_ok"], UNLISTED_TOKENS):
        datum = filter_pattern.metric_datum(total, line)
        assert datum is not None
        cw.put_metric_data(Namespace=NAMESPACE, MetricData=[{
            "MetricName": "Tokens", "Value": datum[0], "Timestamp": datetime.now(UTC),
            "Dimensions": [{"Name": k, "Value": v} for k, v in datum[1].items()]}])
    out = cli(aws, logs_tokens, "metrics", "--env", "staging", "--json")
    assert out.returncode == 0, out.stderr
    row = next(r for r in json.loads(out.stdout)["metrics"] if r["metric"] == "tokens_per_request")
    assert (row["value"], row["threshold"], row["breaching"]) == (3975.0, 4000.0, False)

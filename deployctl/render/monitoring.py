"""CloudWatch alarms, a CloudWatch dashboard and a Grafana dashboard for one environment (pure).

AI services fail in ways CPU graphs miss: tail latency (a model swapping to disk shows in p99
first), 5xx from overloaded workers, runaway token usage (a looping agent burns API credit),
and queues that back up behind slow inference. Each gets an alarm with thresholds from
deploy.yaml; ALB dimensions (ARN suffixes) come in through `MonitoringFacts`, resolved at apply.
Per-route errors, latency and tokens (`monitoring.endpoints`) come from the service's JSON access
logs through CloudWatch Logs metric filters (`metric_filters`), alarmed per route.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deployctl.config.model import ResolvedConfig
from deployctl.config.monitoring import Endpoints, Monitoring, route_slug, routes_clause
from deployctl.render import costcap

ALB = "AWS/ApplicationELB"
KINDS = ("latency_p50", "latency_p95", "latency_p99", "error_rate", "tokens_per_request", "tokens_hourly",
         "api_calls_hourly", "queue_depth", "endpoint_error_rate")


@dataclass(frozen=True)
class MonitoringFacts:
    """Dimensions only AWS knows: ARN suffixes such as `app/chat-alb/50dc6c495c0c9188`."""

    load_balancer_suffix: str = "<load balancer ARN suffix>"
    target_group_suffixes: dict[str, str] = field(default_factory=dict)  # service → targetgroup/name/id


@dataclass(frozen=True)
class AlarmSpec:
    kind: str
    service: str | None
    request: dict[str, Any]  # PutMetricAlarm request
    route: str | None = None  # endpoint_error_rate: the path template it measures

    @property
    def name(self) -> str:
        return str(self.request["AlarmName"])


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,g}"


def alarm_name(cfg: ResolvedConfig, service: str | None, kind: str) -> str:
    middle = f"-{service}" if service else ""
    return f"{cfg.app}-{cfg.env_name}{middle}-{kind.replace('_', '-')}"


def arn_suffix(arn_or_name: str, kind: str) -> str:
    """`arn:aws:elasticloadbalancing:…:loadbalancer/app/x/123` → `app/x/123` (the metric dimension)."""
    marker = ":loadbalancer/" if kind == "lb" else ":"
    if arn_or_name.startswith("arn:"):
        return arn_or_name.split(marker, 1)[1] if kind == "lb" else arn_or_name.rsplit(":", 1)[1]
    return arn_or_name


def _lb_services(cfg: ResolvedConfig) -> list[str]:
    return [name for name, svc in cfg.services.items() if svc.load_balancer]


def _tags(cfg: ResolvedConfig, service: str | None) -> list[dict[str, str]]:
    tags = [{"Key": "deployctl:app", "Value": cfg.app}, {"Key": "deployctl:env", "Value": cfg.env_name}]
    if service:
        tags.append({"Key": "deployctl:service", "Value": service})
    return tags


def _alb_dimensions(svc: str, facts: MonitoringFacts) -> list[dict[str, str]]:
    return [
        {"Name": "LoadBalancer", "Value": facts.load_balancer_suffix},
        {"Name": "TargetGroup", "Value": facts.target_group_suffixes.get(svc, f"<target group of {svc}>")},
    ]


def _token_dimensions(cfg: ResolvedConfig, mon: Monitoring, svc: str) -> list[dict[str, str]]:
    assert mon.tokens is not None
    return [{"Name": k, "Value": v.format(service=svc, env=cfg.env_name, app=cfg.app)}
            for k, v in sorted(mon.tokens.dimensions.items())]


def _token_metric(cfg: ResolvedConfig, mon: Monitoring, svc: str) -> tuple[str, str, list[dict[str, str]]]:
    """(namespace, metric, dimensions) the token alarms and panels read: the app's metric, or with
    `source: logs` the dimensionless total the access-log filter publishes (metric_filters)."""
    tok = mon.tokens
    assert tok is not None
    if tok.source == "logs":
        return endpoint_namespace(cfg), ENDPOINT_METRICS["tokens"], []
    assert tok.namespace is not None  # validation: source metric needs it
    return tok.namespace, tok.metric, _token_dimensions(cfg, mon, svc)


def _token_services(cfg: ResolvedConfig, mon: Monitoring) -> list[str]:
    """Services the token alarms are per. The access logs' total covers the whole environment (one
    log group), so `source: logs` has one alarm of each kind, named after tokens.service or the
    first service with a port."""
    tok = mon.tokens
    assert tok is not None
    services = _publishers(cfg, tok.service)
    return (services or list(cfg.services))[:1] if tok.source == "logs" else services


def _base(cfg: ResolvedConfig, mon: Monitoring, svc: str | None, kind: str, description: str) -> dict[str, Any]:
    req: dict[str, Any] = {
        "AlarmName": alarm_name(cfg, svc, kind),
        "AlarmDescription": f"deployctl: {description}",
        "ComparisonOperator": "GreaterThanThreshold",
        "EvaluationPeriods": mon.evaluation_periods,
        "DatapointsToAlarm": mon.datapoints_to_alarm or mon.evaluation_periods,
        # No traffic is not an incident; a model that answers nobody shows up in other alarms.
        "TreatMissingData": "notBreaching",
        "Tags": _tags(cfg, svc),
    }
    return req


def _publishers(cfg: ResolvedConfig, service: str | None) -> list[str]:
    return [service] if service else [n for n, s in cfg.services.items() if s.port]


def alarms(cfg: ResolvedConfig, mon: Monitoring, facts: MonitoringFacts | None = None,
           cap: costcap.CapActions | None = None) -> list[AlarmSpec]:
    """Every alarm of the monitoring section. With monitoring.cost_cap the hourly caps carry its
    actions: `cap` (ARNs read at deploy), or readable placeholders for `plan`."""
    facts = facts or MonitoringFacts()
    actions = costcap.alarm_actions(cfg, cap or costcap.placeholders(cfg)) if mon.cost_cap else {}
    out: list[AlarmSpec] = []
    period = int(mon.period)
    for svc in _lb_services(cfg) if mon.load_balancer else []:
        for pct in ("p50", "p95", "p99"):
            threshold = getattr(mon.latency, pct) if mon.latency else None
            if threshold is None:
                continue
            req = _base(cfg, mon, svc, f"latency_{pct}", f"{svc} {pct} latency above {threshold:g}s")
            req.update({
                "Namespace": ALB, "MetricName": "TargetResponseTime", "ExtendedStatistic": pct,
                "Dimensions": _alb_dimensions(svc, facts), "Period": period, "Threshold": float(threshold),
                "Unit": "Seconds",
            })
            out.append(AlarmSpec(f"latency_{pct}", svc, req))
        if mon.error_rate is not None:
            dims = _alb_dimensions(svc, facts)
            req = _base(cfg, mon, svc, "error_rate", f"{svc} 5xx rate above {mon.error_rate:g}%")
            req.update({
                "Threshold": float(mon.error_rate),
                "Metrics": [
                    {"Id": "errors", "ReturnData": False, "MetricStat": {
                        "Metric": {"Namespace": ALB, "MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": dims},
                        "Period": period, "Stat": "Sum"}},
                    {"Id": "requests", "ReturnData": False, "MetricStat": {
                        "Metric": {"Namespace": ALB, "MetricName": "RequestCount", "Dimensions": dims},
                        "Period": period, "Stat": "Sum"}},
                    # Guard the division: a quiet minute (no requests) is 0 %, not missing data.
                    {"Id": "error_rate", "Label": "5xx % of requests", "ReturnData": True,
                     "Expression": "IF(requests > 0, 100 * FILL(errors, 0) / requests, 0)"},
                ],
            })
            out.append(AlarmSpec("error_rate", svc, req))
    if mon.tokens:
        tok = mon.tokens
        whose = " (access logs of the environment)" if tok.source == "logs" else ""
        for svc in _token_services(cfg, mon):
            namespace, metric, dims = _token_metric(cfg, mon, svc)
            if tok.max_per_request is not None:
                req = _base(cfg, mon, svc, "tokens_per_request",
                            f"{svc} average tokens per request above {_num(tok.max_per_request)}{whose}")
                req.update({"Namespace": namespace, "MetricName": metric, "Statistic": "Average",
                            "Dimensions": dims, "Period": period, "Threshold": float(tok.max_per_request)})
                out.append(AlarmSpec("tokens_per_request", svc, req))
            if tok.hourly_cap is not None:
                # One runaway agent can burn hundreds of dollars in an hour: cap the hourly sum.
                req = _base(cfg, mon, svc, "tokens_hourly",
                            f"{svc} tokens in one hour above {_num(tok.hourly_cap)}{whose}")
                req.update({"Namespace": namespace, "MetricName": metric, "Statistic": "Sum",
                            "Dimensions": dims, "Period": 3600, "EvaluationPeriods": 1, "DatapointsToAlarm": 1,
                            "Threshold": float(tok.hourly_cap), **actions})
                out.append(AlarmSpec("tokens_hourly", svc, req))
    if mon.api_calls_per_hour:
        calls = mon.api_calls_per_hour
        for svc in _publishers(cfg, calls.service):
            req = _base(cfg, mon, svc, "api_calls_hourly", f"{svc} API calls in one hour above {_num(calls.cap)}")
            dims = [{"Name": k, "Value": v.format(service=svc, env=cfg.env_name, app=cfg.app)}
                    for k, v in sorted(calls.dimensions.items())]
            req.update({"Namespace": calls.namespace, "MetricName": calls.metric, "Statistic": "Sum",
                        "Dimensions": dims, "Period": 3600, "EvaluationPeriods": 1, "DatapointsToAlarm": 1,
                        "Threshold": float(calls.cap), **actions})
            out.append(AlarmSpec("api_calls_hourly", svc, req))
    if mon.queue:
        req = _base(cfg, mon, mon.queue.service, "queue_depth",
                    f"queue {mon.queue.name} above {mon.queue.max_visible} visible messages")
        req.update({"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
                    "Statistic": "Maximum", "Dimensions": [{"Name": "QueueName", "Value": mon.queue.name}],
                    "Period": period, "Threshold": float(mon.queue.max_visible)})
        out.append(AlarmSpec("queue_depth", mon.queue.service, req))
    if mon.endpoints:
        out.extend(endpoint_alarms(cfg, mon, mon.endpoints))
    return out


def deployment_alarm_names(cfg: ResolvedConfig, mon: Monitoring | None, service: str | None = None) -> list[str]:
    """deploy.alarms plus the generated alarms in monitoring.roll_back_on that measure `service`
    (or the whole environment). Names only: no AWS lookup is needed to wire them into ECS."""
    names = list(cfg.deploy.alarms)
    if mon is None:
        return names
    for spec in alarms(cfg, mon):
        if spec.kind in mon.roll_back_on and spec.service in (service, None) and spec.name not in names:
            names.append(spec.name)
    return names


# -- endpoints: per-route metrics from the JSON access logs (CloudWatch Logs metric filters) ---------

ENDPOINT_METRICS = {"requests": "Requests", "errors": "Errors5xx", "latency": "LatencyMs", "tokens": "Tokens"}
# Metrics Insights answers "top N by" for the dashboards; percentiles are not among its functions.
TOP_ROUTES = 10


@dataclass(frozen=True)
class MetricFilterSpec:
    kind: str  # requests, errors, latency, tokens
    request: dict[str, Any]  # PutMetricFilter request

    @property
    def name(self) -> str:
        return str(self.request["filterName"])


def endpoint_namespace(cfg: ResolvedConfig) -> str:
    return f"deployctl/endpoints/{cfg.app}-{cfg.env_name}"


def endpoint_filter_prefix(cfg: ResolvedConfig) -> str:
    """Every metric filter deployctl owns on the log group starts with this (stale ones are removed)."""
    return f"{cfg.app}-{cfg.env_name}-endpoint-"


def log_group(cfg: ResolvedConfig) -> str:
    """The environment's CloudWatch Logs group: every service's awslogs (render.ecs) and the
    metric filters below. Here because render.ecs imports this module, not the other way."""
    return f"/deployctl/{cfg.app}/{cfg.env_name}"


def metric_filters(cfg: ResolvedConfig, ep: Endpoints) -> list[MetricFilterSpec]:
    """PutMetricFilter requests on the environment's log group: one metric per kind, with the
    Route dimension taken from the log line's route field (JSON log events only)."""
    f, routes = ep.fields, routes_clause(ep.fields.route, ep.routes)
    kinds: list[tuple[str, str, str, str]] = [
        ("requests", f"{{ {routes} }}", "1", "Count"),
        ("errors", f"{{ {routes} && $.{f.status} >= 500 }}", "1", "Count"),
        # A numeric comparison also skips lines where the field is missing or not a number.
        ("latency", f"{{ {routes} && $.{f.latency_ms} >= 0 }}", f"$.{f.latency_ms}", "Milliseconds"),
    ]
    if f.tokens:
        kinds.append(("tokens", f"{{ {routes} && $.{f.tokens} >= 0 }}", f"$.{f.tokens}", "Count"))
    out = []
    for kind, pattern, value, unit in kinds:  # lengths: checked against the limit by the config model
        out.append(MetricFilterSpec(kind, {
            "logGroupName": log_group(cfg),
            "filterName": endpoint_filter_prefix(cfg) + ("5xx" if kind == "errors" else kind),
            "filterPattern": pattern,
            "metricTransformations": [{
                "metricName": ENDPOINT_METRICS[kind], "metricNamespace": endpoint_namespace(cfg),
                "metricValue": value, "unit": unit, "dimensions": {"Route": f"$.{f.route}"}}],
        }))
    mon = cfg.monitoring
    if f.tokens and mon is not None and mon.tokens is not None and mon.tokens.source == "logs":
        # monitoring.tokens from the logs: the same metric without the Route dimension (a filter has
        # one transformation, so a second filter), over EVERY line with tokens, listed route or not:
        # a cap must count all spending. CloudWatch alarms read one metric's exact dimensions.
        out.append(MetricFilterSpec("tokens_total", {
            "logGroupName": log_group(cfg),
            "filterName": endpoint_filter_prefix(cfg) + "tokens-total",
            "filterPattern": f"{{ $.{f.tokens} >= 0 }}",
            "metricTransformations": [{
                "metricName": ENDPOINT_METRICS["tokens"], "metricNamespace": endpoint_namespace(cfg),
                "metricValue": f"$.{f.tokens}", "unit": "Count"}],
        }))
    return out


def endpoint_alarms(cfg: ResolvedConfig, mon: Monitoring, ep: Endpoints) -> list[AlarmSpec]:
    """One metric-math alarm per route with a threshold: 5xx ÷ requests of that route."""
    out = []
    period, ns = int(mon.period), endpoint_namespace(cfg)
    for route in ep.routes:
        threshold = ep.per_route[route].error_rate if route in ep.per_route else ep.error_rate
        if threshold is None:
            continue
        dims = [{"Name": "Route", "Value": route}]
        req = _base(cfg, mon, None, "endpoint_error_rate", f"{route} 5xx rate above {threshold:g}%")
        req["AlarmName"] = f"{req['AlarmName']}-{route_slug(route)}"
        req.update({
            "Threshold": float(threshold),
            "Metrics": [
                {"Id": "errors", "ReturnData": False, "MetricStat": {
                    "Metric": {"Namespace": ns, "MetricName": ENDPOINT_METRICS["errors"], "Dimensions": dims},
                    "Period": period, "Stat": "Sum"}},
                {"Id": "requests", "ReturnData": False, "MetricStat": {
                    "Metric": {"Namespace": ns, "MetricName": ENDPOINT_METRICS["requests"], "Dimensions": dims},
                    "Period": period, "Stat": "Sum"}},
                # A route with 1 request and 1 error is not 100 % broken: below min_requests it is 0.
                {"Id": "error_rate", "Label": f"{route} 5xx % of requests", "ReturnData": True,
                 "Expression": f"IF(requests >= {ep.min_requests}, 100 * FILL(errors, 0) / requests, 0)"},
            ],
        })
        out.append(AlarmSpec("endpoint_error_rate", None, req, route=route))
    return out


def _endpoint_panels(cfg: ResolvedConfig, ep: Endpoints) -> list[dict[str, Any]]:
    ns = endpoint_namespace(cfg)

    def top(fn: str, kind: str) -> str:
        return (f'SELECT {fn}({ENDPOINT_METRICS[kind]}) FROM SCHEMA("{ns}", Route) GROUP BY Route '
                f"ORDER BY {fn}() DESC LIMIT {TOP_ROUTES}")

    panels = [
        {"title": f"top {TOP_ROUTES} routes: requests", "unit": "short", "metrics": [],
         "queries": [("requests", top("SUM", "requests"))]},
        {"title": f"top {TOP_ROUTES} routes: 5xx", "unit": "short", "metrics": [],
         "queries": [("5xx", top("SUM", "errors"))]},
        {"title": f"slowest {TOP_ROUTES} routes: average / max latency (ms)", "unit": "ms", "metrics": [],
         "queries": [("avg", top("AVG", "latency")), ("max", top("MAX", "latency"))]},
    ]
    if ep.fields.tokens:
        panels.append({"title": f"top {TOP_ROUTES} routes: tokens per request", "unit": "short", "metrics": [],
                       "queries": [("avg", top("AVG", "tokens"))]})
    return panels


# -- dashboards -------------------------------------------------------------------------------

def _panels(cfg: ResolvedConfig, mon: Monitoring, facts: MonitoringFacts) -> list[dict[str, Any]]:
    """Neutral panel list: title, metric rows [(namespace, metric, dims, stat)], optional math."""
    panels: list[dict[str, Any]] = []
    for svc in _lb_services(cfg) if mon.load_balancer else []:
        dims = _alb_dimensions(svc, facts)
        panels.append({"title": f"{svc}: latency p50 / p95 / p99 (s)", "unit": "s", "metrics": [
            (ALB, "TargetResponseTime", dims, pct) for pct in ("p50", "p95", "p99")]})
        panels.append({"title": f"{svc}: requests and 5xx", "unit": "short", "metrics": [
            (ALB, "RequestCount", dims, "Sum"), (ALB, "HTTPCode_Target_5XX_Count", dims, "Sum")]})
    if mon.tokens:
        for svc in _token_services(cfg, mon):
            namespace, metric, dims = _token_metric(cfg, mon, svc)
            title = "all routes: tokens per request" if mon.tokens.source == "logs" else f"{svc}: tokens per request"
            panels.append({"title": title, "unit": "short", "metrics": [
                (namespace, metric, dims, "Average"), (namespace, metric, dims, "p95")]})
    if mon.queue:
        panels.append({"title": f"queue {mon.queue.name}: visible messages", "unit": "short", "metrics": [
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible", [{"Name": "QueueName", "Value": mon.queue.name}],
             "Maximum")]})
    if mon.endpoints:
        panels.extend(_endpoint_panels(cfg, mon.endpoints))
    return panels


def cloudwatch_dashboard(cfg: ResolvedConfig, mon: Monitoring, facts: MonitoringFacts | None = None
                         ) -> dict[str, Any]:
    """PutDashboard body (as a dict; json.dumps it for DashboardBody)."""
    facts = facts or MonitoringFacts()
    widgets = []
    for i, panel in enumerate(_panels(cfg, mon, facts)):
        rows = []
        for namespace, metric, dims, stat in panel["metrics"]:
            row: list[Any] = [namespace, metric]
            for d in dims:
                row += [d["Name"], d["Value"]]
            row.append({"stat": stat, "label": f"{metric} {stat}"})
            rows.append(row)
        for j, (label, sql) in enumerate(panel.get("queries", ())):
            rows.append([{"expression": sql, "label": label, "id": f"q{j + 1}"}])
        widgets.append({
            "type": "metric", "x": (i % 2) * 12, "y": (i // 2) * 6, "width": 12, "height": 6,
            "properties": {"title": panel["title"], "region": cfg.region, "view": "timeSeries",
                           "stacked": False, "period": int(mon.period), "metrics": rows},
        })
    names = [spec.name for spec in alarms(cfg, mon, facts)]
    if names:
        arns = [f"arn:aws:cloudwatch:{cfg.region}:{{account}}:alarm:{n}" for n in names]
        widgets.append({"type": "alarm", "x": 0, "y": ((len(widgets) + 1) // 2) * 6, "width": 24, "height": 4,
                        "properties": {"title": "deployctl alarms", "alarms": arns}})
    return {"start": "-PT6H", "periodOverride": "inherit", "widgets": widgets}


def dashboard_name(cfg: ResolvedConfig) -> str:
    return f"{cfg.app}-{cfg.env_name}"


def grafana_dashboard(cfg: ResolvedConfig, mon: Monitoring, facts: MonitoringFacts | None = None,
                      datasource_uid: str = "cloudwatch") -> dict[str, Any]:
    """A Grafana dashboard (schemaVersion 39) reading CloudWatch, for import."""
    facts = facts or MonitoringFacts()
    ds = {"type": "cloudwatch", "uid": datasource_uid}
    panels = []
    for i, panel in enumerate(_panels(cfg, mon, facts)):
        targets = []
        for j, (namespace, metric, dims, stat) in enumerate(panel["metrics"]):
            targets.append({
                "refId": chr(ord("A") + j), "datasource": ds, "queryMode": "Metrics", "region": cfg.region,
                "namespace": namespace, "metricName": metric, "statistic": stat,
                "dimensions": {d["Name"]: d["Value"] for d in dims}, "period": str(int(mon.period)),
                "metricQueryType": 0, "metricEditorMode": 0, "matchExact": True, "id": "", "expression": "",
                "label": f"{metric} {stat}",
            })
        for label, sql in panel.get("queries", ()):
            # Metrics Insights (metricQueryType 1) in code mode (metricEditorMode 1); the namespace is
            # in the SQL, and Grafana's query type wants the key (empty).
            targets.append({
                "refId": chr(ord("A") + len(targets)), "datasource": ds, "queryMode": "Metrics",
                "region": cfg.region, "namespace": "", "metricQueryType": 1, "metricEditorMode": 1,
                "sqlExpression": sql, "id": "", "label": label,
            })
        panels.append({
            "id": i + 1, "type": "timeseries", "title": panel["title"], "datasource": ds,
            "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
            "fieldConfig": {"defaults": {"unit": panel["unit"]}, "overrides": []},
            "options": {}, "targets": targets,
        })
    return {
        "uid": f"deployctl-{cfg.app}-{cfg.env_name}"[:40], "title": f"{cfg.app} ({cfg.env_name})",
        "tags": ["deployctl", cfg.app, cfg.env_name], "timezone": "browser", "editable": True,
        "schemaVersion": 39, "time": {"from": "now-6h", "to": "now"}, "refresh": "1m",
        "panels": panels,
    }

"""Apply monitoring (alarms, dashboards) and read current metrics. AWS clients are passed in.

Percentiles: CloudWatch computes p50/p95/p99 server-side (extended statistics). The `Stats`
seam lets tests supply percentile values, because moto computes none (said in those tests).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from deployctl.adapters import aws as awsa
from deployctl.adapters import cloudwatch_gateway as cw
from deployctl.adapters import network_gateway
from deployctl.config.model import ResolvedConfig
from deployctl.config.monitoring import Monitoring
from deployctl.errors import PreflightFailed, UsageError
from deployctl.render import costcap
from deployctl.render import monitoring as render
from deployctl.render.ecs import log_group


def require(cfg: ResolvedConfig) -> Monitoring:
    mon = getattr(cfg, "monitoring", None)
    if mon is None:
        raise UsageError(f"environment {cfg.env_name} has no monitoring section",
                         hint="add `monitoring:` to deploy.yaml (see docs/how-deploys-work.md, Monitoring)")
    return mon


def resolve_facts(cfg: ResolvedConfig, mon: Monitoring, elbv2: awsa.BotoClient) -> render.MonitoringFacts:
    """Look up the ALB and target group ARN suffixes the ALB metrics are keyed by."""
    if not mon.load_balancer:
        return render.MonitoringFacts()
    missing: list[str] = []
    lb_suffix = ""
    if mon.load_balancer.startswith("arn:"):
        lb_suffix = mon.load_balancer.split(":loadbalancer/", 1)[1]
    else:
        try:
            lb_suffix = network_gateway.load_balancer_arn(elbv2, mon.load_balancer).split(":loadbalancer/", 1)[1]
        except Exception as exc:  # noqa: BLE001 - any lookup failure is reported as missing
            missing.append(f"load balancer {mon.load_balancer} ({_short(exc)})")
    tgs: dict[str, str] = {}
    for name, svc in cfg.services.items():
        if not svc.load_balancer:
            continue
        tg = svc.load_balancer.target_group
        if tg.startswith("arn:"):
            tgs[name] = tg.rsplit(":", 1)[1]
            continue
        try:
            tgs[name] = network_gateway.target_groups(elbv2, names=[tg])[0].suffix
        except Exception as exc:  # noqa: BLE001
            missing.append(f"target group {tg} of service {name} ({_short(exc)})")
    if missing:
        raise PreflightFailed("cannot set up monitoring; missing: " + "; ".join(missing))
    return render.MonitoringFacts(load_balancer_suffix=lb_suffix, target_group_suffixes=tgs)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 120 else text[:117] + "..."


@dataclass(frozen=True)
class AlarmChanges:
    """What putting the rendered alarms did: each name in exactly one of the three."""

    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()  # not in this count: no longer rendered, deleted
    noun: str = "alarm"

    @property
    def names(self) -> tuple[str, ...]:
        return self.created + self.updated + self.unchanged

    def summary(self) -> str:
        """`7 alarms: 7 created`, `7 alarms: 1 updated, 6 unchanged`: what happened, not "up to date"."""
        parts = [f"{len(names)} {word}" for word, names in
                 (("created", self.created), ("updated", self.updated), ("unchanged", self.unchanged),
                  ("removed", self.removed)) if names]
        n = len(self.names)
        if not parts:  # nothing rendered and nothing to remove (e.g. roll_back_on names no alarm kind set)
            return f"no {self.noun}s"
        return f"{n} {self.noun}{'s' if n != 1 else ''}: {', '.join(parts)}"


def without_cap_alarms(mon: Monitoring, specs: list[render.AlarmSpec]) -> list[render.AlarmSpec]:
    """With monitoring.cost_cap the hourly cap alarms name ARNs (the stop policies) that exist only
    once the services are deployed: the ECS deploy puts them after its services
    (deployctl.targets.ecs_costcap), never with placeholder actions."""
    if mon.cost_cap is None:
        return specs
    return [s for s in specs if s.kind not in costcap.CAP_KINDS]


def put_alarms(cloudwatch: awsa.BotoClient, specs: list[render.AlarmSpec]) -> AlarmChanges:
    """Create the alarms that do not exist, update those that differ, leave the rest alone.

    DescribeAlarms first, so the caller can say truthfully what was created and what was
    already there. Tags are not compared: DescribeAlarms does not return them, and they only
    ever hold the app/env/service this alarm's name already encodes."""
    stored = cw.alarms(cloudwatch, [spec.name for spec in specs])
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    for spec in specs:
        have = stored.get(spec.name)
        wanted = {k: v for k, v in spec.request.items() if k != "Tags"}
        if have is not None and have.holds(wanted):
            unchanged.append(spec.name)
            continue
        cw.put_metric_alarm(cloudwatch, spec.request)
        (created if have is None else updated).append(spec.name)
    return AlarmChanges(tuple(created), tuple(updated), tuple(unchanged))


def put_metric_filters(logs: awsa.BotoClient, cfg: ResolvedConfig,
                       specs: list[render.MetricFilterSpec]) -> AlarmChanges:
    """Create, update or leave alone the endpoint metric filters, and delete deployctl's own filters
    (by name prefix) that are no longer rendered: removing `tokens` removes its filter.

    PutMetricFilter creates or replaces a filter by name, so it is sent only when the stored filter
    differs. The log group must exist: the tasks create it on their first start (awslogs-create-group)."""
    group, prefix = log_group(cfg), render.endpoint_filter_prefix(cfg)
    try:
        stored = cw.metric_filters(logs, group, prefix)
        created: list[str] = []
        updated: list[str] = []
        unchanged: list[str] = []
        for spec in specs:
            have = stored.get(spec.name)
            if have is not None and have.holds(spec.request):
                unchanged.append(spec.name)
                continue
            cw.put_metric_filter(logs, spec.request)
            (created if have is None else updated).append(spec.name)
        wanted = {spec.name for spec in specs}
        removed = [name for name in stored if name not in wanted]
        for name in removed:
            cw.delete_metric_filter(logs, group, name)
    except awsa.ClientError as exc:
        if awsa.error_code(exc) == "ResourceNotFoundException":
            raise PreflightFailed(f"log group {group} does not exist yet, so the endpoint metric filters have "
                                  "nothing to attach to; deploy the environment once (its tasks create the "
                                  "group) and run `deployctl monitor apply` again") from exc
        raise
    return AlarmChanges(tuple(created), tuple(updated), tuple(unchanged), tuple(removed), noun="metric filter")


@dataclass(frozen=True)
class Applied:
    alarms: tuple[str, ...]
    dashboard: str | None
    grafana_file: str | None
    changes: AlarmChanges = AlarmChanges()
    filters: AlarmChanges | None = None  # monitoring.endpoints: the metric filters


def apply(cfg: ResolvedConfig, cloudwatch: awsa.BotoClient, elbv2: awsa.BotoClient, *, account_id: str,
          grafana_path: str | None = None, logs: awsa.BotoClient | None = None) -> Applied:
    """Metric filters first (the endpoint alarms read their metrics), then alarms and dashboards.
    `logs` (a CloudWatch Logs client) is needed only with monitoring.endpoints."""
    mon = require(cfg)
    facts = resolve_facts(cfg, mon, elbv2)
    filters = None
    if mon.endpoints:
        if logs is None:
            raise ValueError("monitoring.endpoints needs a CloudWatch Logs client")
        filters = put_metric_filters(logs, cfg, render.metric_filters(cfg, mon.endpoints))
    specs = without_cap_alarms(mon, render.alarms(cfg, mon, facts))
    changes = put_alarms(cloudwatch, specs)
    dashboard = None
    if mon.dashboard:
        body = json.dumps(render.cloudwatch_dashboard(cfg, mon, facts)).replace("{account}", account_id)
        dashboard = render.dashboard_name(cfg)
        cw.put_dashboard(cloudwatch, dashboard, body)
    grafana_file = None
    if grafana_path:
        with open(grafana_path, "w", encoding="utf-8") as fh:
            json.dump(render.grafana_dashboard(cfg, mon, facts), fh, indent=2)
            fh.write("\n")
        grafana_file = grafana_path
    return Applied(tuple(s.name for s in specs), dashboard, grafana_file, changes, filters)


# -- reading metrics ----------------------------------------------------------------------------


def plain_number(value: float) -> str:
    """A value as people write it: `6,000`, `3,000,000`, `0.25`, `1.23` (never `6e+03`): three
    significant digits below 100, whole numbers in full."""
    if float(value).is_integer():
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    if abs(value) >= 0.001:
        return f"{value:,.3g}"
    return f"{value:.6f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class MetricRow:
    service: str | None
    name: str  # p50, p95, p99, error_rate, tokens_per_request, queue_depth
    value: float | None
    unit: str
    threshold: float | None
    route: str | None = None  # monitoring.endpoints: the path template measured

    @property
    def breaching(self) -> bool:
        return self.value is not None and self.threshold is not None and self.value > self.threshold


# A Stats function answers "this statistic of this metric over the window", or None (no data).
Stats = Callable[[str, str, list[dict[str, str]], str, int], float | None]


def cloudwatch_stats(cloudwatch: awsa.BotoClient, *, minutes: int = 15, now: datetime | None = None) -> Stats:
    # Whole minutes, ending after the current one, so the newest (partial) minute is included.
    end = (now or datetime.now(UTC)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=minutes)

    def stats(namespace: str, metric: str, dims: list[dict[str, str]], stat: str, period: int) -> float | None:
        return cw.metric_value(cloudwatch, {"Metric": {"Namespace": namespace, "MetricName": metric,
                                                       "Dimensions": dims},
                                            "Period": minutes * 60, "Stat": stat}, start, end)

    return stats


def current(cfg: ResolvedConfig, mon: Monitoring, facts: render.MonitoringFacts, stats: Stats) -> list[MetricRow]:
    rows: list[MetricRow] = []
    period = int(mon.period)
    latency = mon.latency
    for spec in render.alarms(cfg, mon, facts):
        req = spec.request
        if spec.kind in ("error_rate", "endpoint_error_rate"):
            metrics = {m["Id"]: m["MetricStat"]["Metric"] for m in req["Metrics"] if "MetricStat" in m}
            errors = stats(metrics["errors"]["Namespace"], metrics["errors"]["MetricName"],
                           metrics["errors"]["Dimensions"], "Sum", period)
            requests = stats(metrics["requests"]["Namespace"], metrics["requests"]["MetricName"],
                             metrics["requests"]["Dimensions"], "Sum", period)
            value = None if not requests else 100.0 * (errors or 0.0) / requests
            rows.append(MetricRow(spec.service, "error_rate", value, "%", req["Threshold"], route=spec.route))
            continue
        stat = req.get("ExtendedStatistic") or req.get("Statistic", "Average")
        value = stats(req["Namespace"], req["MetricName"], req["Dimensions"], stat, int(req["Period"]))
        unit = "s" if spec.kind.startswith("latency") else {"queue_depth": "msgs", "api_calls_hourly": "calls"}.get(
            spec.kind, "tokens")
        name = spec.kind.replace("latency_", "")
        rows.append(MetricRow(spec.service, name, value, unit, req["Threshold"]))
    # Latency percentiles without a threshold still deserve a row.
    if mon.load_balancer:
        for svc, s in cfg.services.items():
            if not s.load_balancer:
                continue
            have = {r.name for r in rows if r.service == svc}
            for pct in ("p50", "p95", "p99"):
                if pct not in have:
                    dims = [{"Name": "LoadBalancer", "Value": facts.load_balancer_suffix},
                            {"Name": "TargetGroup", "Value": facts.target_group_suffixes.get(svc, "")}]
                    value = stats(ALB, "TargetResponseTime", dims, pct, period)
                    rows.append(MetricRow(svc, pct, value, "s", getattr(latency, pct) if latency else None))
    return rows


ALB = render.ALB


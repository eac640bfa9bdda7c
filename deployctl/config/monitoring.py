"""The `monitoring:` section: alarms, dashboards and cost caps that matter for AI services."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from deployctl.config.model import Duration, Strict


class Latency(Strict):
    """ALB TargetResponseTime thresholds (seconds) per percentile; omit one to skip its alarm."""

    p50: Duration | None = None
    p95: Duration | None = None
    p99: Duration | None = None


class Tokens(Strict):
    """A custom metric the app publishes: tokens used per request (and, summed, per hour)."""

    namespace: str = Field(description="CloudWatch namespace the app publishes to")
    metric: str = Field("TokensPerRequest", description="Per-request token count metric")
    dimensions: dict[str, str] = Field(default_factory=dict, description="Extra dimensions; {service} and {env} expand")
    max_per_request: float | None = Field(None, gt=0, description="Alarm when the average per request exceeds this")
    hourly_cap: float | None = Field(None, gt=0, description="Alarm when tokens summed over an hour exceed this")
    service: str | None = Field(None, description="Service that publishes the metric (default: all with a port)")


class Queue(Strict):
    name: str = Field(description="SQS queue name")
    max_visible: int = Field(gt=0, description="Alarm above this many visible messages")
    service: str | None = Field(None, description="Worker service consuming the queue (for the dashboard)")


class Monitoring(Strict):
    load_balancer: str | None = Field(
        None, description="ALB name or ARN (its ARN suffix is the LoadBalancer dimension of latency/5xx metrics)")
    latency: Latency | None = None
    error_rate: float | None = Field(None, gt=0, le=100, description="Alarm when 5xx ÷ requests exceeds this percent")
    tokens: Tokens | None = None
    queue: Queue | None = None
    period: Duration = Field(60.0, description="Alarm period (multiple of 60s)")
    evaluation_periods: int = Field(5, ge=1, le=100)
    datapoints_to_alarm: int | None = Field(None, ge=1)
    roll_back_on: list[Literal["latency_p50", "latency_p95", "latency_p99", "error_rate", "tokens_per_request",
                               "queue_depth"]] = Field(
        default_factory=lambda: ["error_rate"],
        description="Generated alarms that also become ECS deployment alarms (a bad deploy rolls back)")
    dashboard: bool = True
    publish_run_metrics: bool = Field(False, description="Publish deployctl's own run metrics to CloudWatch")
    run_metrics_namespace: str = "deployctl"

    @model_validator(mode="after")
    def _periods(self) -> Monitoring:
        if self.period < 60 or int(self.period) % 60:
            raise ValueError("period must be a multiple of 60s")
        if self.datapoints_to_alarm and self.datapoints_to_alarm > self.evaluation_periods:
            raise ValueError("datapoints_to_alarm cannot exceed evaluation_periods")
        if self.latency and (self.latency.p50 or self.latency.p95 or self.latency.p99) and not self.load_balancer:
            raise ValueError("latency alarms need monitoring.load_balancer (the ALB whose metrics to watch)")
        if self.error_rate and not self.load_balancer:
            raise ValueError("error_rate needs monitoring.load_balancer")
        return self

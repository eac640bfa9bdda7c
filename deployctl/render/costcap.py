"""The hourly cost cap's actions, rendered purely (docs/cost-cap.md).

`monitoring.tokens.hourly_cap` and `monitoring.api_calls_per_hour` are CloudWatch alarms
(deployctl.render.monitoring). With `monitoring.cost_cap` their AlarmActions are:

- the environment's SNS topic `<app>-<env>-cost-cap` (email and https subscriptions from the
  config), which also gets the OK transition, so people learn when `resume` is possible;
- with `on_cap: stop`, one Application Auto Scaling step scaling policy per named service,
  `deployctl-cost-cap-stop`: ExactCapacity 0 for any breach. It is AWS that runs it when the
  alarm fires: deployctl need not be running.

A step policy cannot go below the scalable target's MinCapacity (Application Auto Scaling keeps
capacity within min..max), so a capped service's target is registered with MinCapacity 0
(deployctl.render.autoscaling.scalable_target).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deployctl.config.model import ResolvedConfig

STOP_POLICY = "deployctl-cost-cap-stop"
CAP_KINDS = ("tokens_hourly", "api_calls_hourly")
# After one stop, wait this long before the policy may act again (it sets 0 either way).
STOP_COOLDOWN = 60


@dataclass(frozen=True)
class CapActions:
    """ARNs only AWS knows: the topic's (CreateTopic) and each stop policy's (PutScalingPolicy)."""

    topic_arn: str
    stop_policy_arns: dict[str, str] = field(default_factory=dict)  # service → policy ARN


def topic_name(cfg: ResolvedConfig) -> str:
    """One topic per app and environment: staging's cap never pages or stops prod."""
    return f"{cfg.app}-{cfg.env_name}-cost-cap"


def topic_arn(cfg: ResolvedConfig, account: str, partition: str = "aws") -> str:
    return f"arn:{partition}:sns:{cfg.region}:{account}:{topic_name(cfg)}"


def stopped_services(cfg: ResolvedConfig, preview: str | None = None) -> list[str]:
    """Services `on_cap: stop` names (a preview copy has no cap: its alarms are the environment's)."""
    mon = cfg.monitoring
    cap = mon.cost_cap if mon is not None else None
    if preview is not None or cap is None or cap.on_cap != "stop" or cfg.environment.target != "ecs":
        return []
    return list(cap.services)


def placeholders(cfg: ResolvedConfig) -> CapActions:
    """What `plan` shows before the ARNs exist."""
    return CapActions(f"<SNS topic {topic_name(cfg)}>",
                      {s: f"<{STOP_POLICY} of {s}>" for s in stopped_services(cfg)})


def alarm_actions(cfg: ResolvedConfig, actions: CapActions) -> dict[str, list[str]]:
    """AlarmActions and OKActions of every cap alarm (each cap covers the environment's spending,
    so either one stops every named service)."""
    stops = [actions.stop_policy_arns[s] for s in stopped_services(cfg) if s in actions.stop_policy_arns]
    return {"AlarmActions": [*stops, actions.topic_arn], "OKActions": [actions.topic_arn]}


def stop_policy(key: dict[str, str]) -> dict[str, Any]:
    """PutScalingPolicy: set the service to exactly 0 tasks on any breach of the cap alarm (the
    interval starts at the alarm's threshold, 0 above it, and is open above)."""
    return {"PolicyName": STOP_POLICY, **key, "PolicyType": "StepScaling",
            "StepScalingPolicyConfiguration": {
                "AdjustmentType": "ExactCapacity",
                "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 0}],
                "Cooldown": STOP_COOLDOWN, "MetricAggregationType": "Maximum"}}


def subscriptions(cfg: ResolvedConfig) -> list[tuple[str, str]]:
    """(protocol, endpoint) of each cost_cap.notify entry, as SNS Subscribe takes them."""
    mon = cfg.monitoring
    cap = mon.cost_cap if mon is not None else None
    if cap is None:
        return []
    return [("https" if n.startswith("https://") else "email", n) for n in cap.notify]


def restore_count(cfg: ResolvedConfig, svc: str) -> int:
    """What `resume` sets: the service's count, or with auto scaling its min (at least 1), the
    count a deploy creates it with."""
    service = cfg.services[svc]
    auto = service.autoscaling
    if auto is not None:
        return max(auto.min, 1)
    return service.count


def describe(cfg: ResolvedConfig, alarm_names: list[str]) -> list[str]:
    """Plain lines for `plan`: which alarms, the topic and who hears it, what stops."""
    mon = cfg.monitoring
    cap = mon.cost_cap if mon is not None else None
    if cap is None:
        return []
    lines = [f"alarms: {', '.join(alarm_names) or 'none'}",
             f"SNS topic {topic_name(cfg)}: " + (", ".join(f"{p} {e}" for p, e in subscriptions(cfg))
                                                 or "no subscriptions")]
    stops = stopped_services(cfg)
    if stops:
        lines.append(f"on the cap: {', '.join(f'{s} → 0 tasks' for s in stops)} (step scaling policy "
                     f"{STOP_POLICY}; `deployctl resume --env {cfg.env_name}` brings them back)")
    else:
        lines.append("on the cap: notify only (nothing is stopped)")
    return lines

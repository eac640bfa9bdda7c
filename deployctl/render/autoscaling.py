"""Application Auto Scaling requests for ECS services, rendered purely from a resolved config.

One scalable target per auto-scaled service (ResourceId service/<cluster>/<service>, dimension
ecs:service:DesiredCount) and one target-tracking policy per metric deploy.yaml names. Policy
names start with `deployctl-`: those are the policies deployctl owns, puts on every deploy and
deletes when deploy.yaml drops them; anyone else's policies on the target are left alone.

The ALB request metric needs the target group's resource label
(app/<lb>/<id>/targetgroup/<tg>/<id>), known only at deploy time: it comes in through
`Facts.resource_labels`, whose default is a readable placeholder, so `plan` shows the shape
`run` sends. See docs/autoscaling.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deployctl.config.model import Autoscaling, ResolvedConfig
from deployctl.render import costcap, ecs

NAMESPACE = "ecs"
DIMENSION = "ecs:service:DesiredCount"
POLICY_PREFIX = "deployctl-"
CPU, MEMORY, REQUESTS, QUEUE = "cpu", "memory", "requests", "queue-backlog"


@dataclass(frozen=True)
class Facts:
    resource_labels: dict[str, str] = field(default_factory=dict)  # target group name or ARN → label


@dataclass(frozen=True)
class ServiceScaling:
    """What deploy.yaml wants for one service: the target, and its policies by name."""

    service: str  # deploy.yaml's name
    resource_id: str
    target: dict[str, Any]
    policies: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"resource_id": self.resource_id, "register_scalable_target": self.target,
                "put_scaling_policy": list(self.policies.values())}


def resource_id(cluster: str, service: str) -> str:
    return f"service/{cluster}/{service}"


def policy_name(kind: str) -> str:
    # Unique per scalable target, so the metric alone names it.
    return f"{POLICY_PREFIX}{kind}"


def owned(name: str) -> bool:
    return name.startswith(POLICY_PREFIX)


def resource_label(target_group_arn: str, load_balancer_arn: str) -> str:
    """ALBRequestCountPerTarget's label: `app/<lb>/<id>/targetgroup/<tg>/<id>`, the resource parts
    of the load balancer's and the target group's ARNs."""
    lb = load_balancer_arn.split(":", 5)[-1].removeprefix("loadbalancer/")
    tg = target_group_arn.split(":", 5)[-1]
    return f"{lb}/{tg}"


def _cluster(cfg: ResolvedConfig) -> str:
    return cfg.environment.cluster or "default"


def _key(cfg: ResolvedConfig, svc: str, preview: str | None) -> dict[str, str]:
    return {"ServiceNamespace": NAMESPACE,
            "ResourceId": resource_id(_cluster(cfg), ecs.service_name(cfg, svc, preview)),
            "ScalableDimension": DIMENSION}


def capped(cfg: ResolvedConfig, svc: str, preview: str | None = None) -> bool:
    """monitoring.cost_cap stops this service (deployctl.render.costcap)."""
    return svc in costcap.stopped_services(cfg, preview)


def scaled(cfg: ResolvedConfig, svc: str, preview: str | None = None) -> bool:
    """The service has a scalable target deployctl registers: auto scaling, or a cost cap's stop."""
    return cfg.services[svc].autoscaling is not None or capped(cfg, svc, preview)


def scalable_target(cfg: ResolvedConfig, svc: str, *, suspend_scale_in: bool = False,
                    preview: str | None = None) -> dict[str, Any]:
    """RegisterScalableTarget (create or update). `suspend_scale_in` during a rollout, so the
    scaler does not remove tasks while old and new run side by side; every other deploy sends
    all three suspensions off, which also resumes what an interrupted run left suspended.

    A service the cost cap stops gets MinCapacity 0: its stop policy sets ExactCapacity 0, and
    Application Auto Scaling never scales below MinCapacity. Without `autoscaling`, the target
    is 0..count and carries the stop policy alone."""
    service = cfg.services[svc]
    auto = service.autoscaling
    stop = capped(cfg, svc, preview)
    assert auto is not None or stop
    low, high = (auto.min, auto.max) if auto is not None else (service.count, service.count)
    return {**_key(cfg, svc, preview), "MinCapacity": 0 if stop else low, "MaxCapacity": high,
            "SuspendedState": {"DynamicScalingInSuspended": suspend_scale_in,
                               "DynamicScalingOutSuspended": False, "ScheduledScalingSuspended": False}}


def deregister(cfg: ResolvedConfig, svc: str, preview: str | None = None) -> dict[str, str]:
    return _key(cfg, svc, preview)


def _tracking(auto: Autoscaling, target: float, metric: dict[str, Any]) -> dict[str, Any]:
    conf: dict[str, Any] = {"TargetValue": float(target), **metric}
    if auto.scale_in_cooldown is not None:
        conf["ScaleInCooldown"] = int(auto.scale_in_cooldown)
    if auto.scale_out_cooldown is not None:
        conf["ScaleOutCooldown"] = int(auto.scale_out_cooldown)
    return conf


def _predefined(kind: str, label: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"PredefinedMetricType": kind}
    if label is not None:
        spec["ResourceLabel"] = label
    return {"PredefinedMetricSpecification": spec}


def queue_backlog_metric(cluster: str, service: str, queue: str) -> dict[str, Any]:
    """Visible messages per running task, by metric math (the AWS example "Create a target tracking
    scaling policy using metric math"): the queue's ApproximateNumberOfMessagesVisible over the
    service's RunningTaskCount (Container Insights)."""
    return {"CustomizedMetricSpecification": {"Metrics": [
        {"Id": "m1", "Label": f"visible messages in {queue}", "ReturnData": False,
         "MetricStat": {"Metric": {"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
                                   "Dimensions": [{"Name": "QueueName", "Value": queue}]},
                        "Stat": "Sum"}},
        {"Id": "m2", "Label": f"running tasks of {service}", "ReturnData": False,
         "MetricStat": {"Metric": {"Namespace": "ECS/ContainerInsights", "MetricName": "RunningTaskCount",
                                   "Dimensions": [{"Name": "ClusterName", "Value": cluster},
                                                  {"Name": "ServiceName", "Value": service}]},
                        "Stat": "Average"}},
        {"Id": "e1", "Label": "backlog per task", "Expression": "m1 / m2", "ReturnData": True},
    ]}}


def policies(cfg: ResolvedConfig, svc: str, facts: Facts | None = None,
             preview: str | None = None) -> dict[str, dict[str, Any]]:
    """PutScalingPolicy requests by policy name, in a fixed order (cpu, memory, requests, queue)."""
    facts = facts or Facts()
    service = cfg.services[svc]
    auto = service.autoscaling
    key = _key(cfg, svc, preview)
    stop = {costcap.STOP_POLICY: costcap.stop_policy(key)} if capped(cfg, svc, preview) else {}
    if auto is None:
        return stop
    wanted: list[tuple[str, float, dict[str, Any]]] = []
    if auto.target_cpu is not None:
        wanted.append((CPU, auto.target_cpu, _predefined("ECSServiceAverageCPUUtilization")))
    if auto.target_memory is not None:
        wanted.append((MEMORY, auto.target_memory, _predefined("ECSServiceAverageMemoryUtilization")))
    if auto.requests_per_target is not None and service.load_balancer is not None:
        tg = service.load_balancer.target_group
        label = facts.resource_labels.get(tg, f"<app/lb/id/targetgroup/tg/id of target group {tg}>")
        wanted.append((REQUESTS, auto.requests_per_target, _predefined("ALBRequestCountPerTarget", label)))
    if auto.queue is not None and auto.queue_backlog_per_task is not None:
        wanted.append((QUEUE, auto.queue_backlog_per_task,
                       queue_backlog_metric(_cluster(cfg), ecs.service_name(cfg, svc, preview), auto.queue)))
    return {**{policy_name(kind): {"PolicyName": policy_name(kind), **key, "PolicyType": "TargetTrackingScaling",
                                   "TargetTrackingScalingPolicyConfiguration": _tracking(auto, target, metric)}
               for kind, target, metric in wanted}, **stop}


def service_scaling(cfg: ResolvedConfig, svc: str, facts: Facts | None = None,
                    preview: str | None = None) -> ServiceScaling | None:
    if not scaled(cfg, svc, preview):
        return None
    return ServiceScaling(svc, _key(cfg, svc, preview)["ResourceId"], scalable_target(cfg, svc, preview=preview),
                          policies(cfg, svc, facts, preview))


def clamp(auto: Autoscaling, desired: int) -> int:
    """The desired count a deploy keeps: the running one, within min..max."""
    return max(auto.min, min(auto.max, desired))


def kept_on_removal(count: int, desired: int, live_max: int) -> int:
    """The desired count of the deploy that drops `autoscaling`: the count the scaler left, so
    removing auto scaling never scales a loaded service in mid-deploy, within count..the target's
    old MaxCapacity (never below what deploy.yaml asks, never above what the scaler was allowed).
    Later deploys set `count`."""
    return max(count, min(desired, live_max))


def removal_text(before: int, kept: int, count: int) -> str:
    """The count decision, said by `run` and `diff`."""
    later = "later deploys keep it" if kept == count else f"later deploys set count {count}"
    return f"auto scaling removed: desired count {before} → {kept} (kept within count {count}..the old max; {later})"


def describe(scaling: ServiceScaling) -> list[str]:
    """Plain lines for `plan`: the range and one line per policy."""
    t = scaling.target
    why = ", min 0 so the cost cap can stop it" if costcap.STOP_POLICY in scaling.policies else ""
    lines = [f"{t['MinCapacity']}..{t['MaxCapacity']} tasks ({scaling.resource_id}{why})"]
    for name, p in scaling.policies.items():
        lines.append(f"  {name}: {policy_text(p)}")
    return lines


def policy_text(policy: dict[str, Any]) -> str:
    """One policy (a PutScalingPolicy request or a DescribeScalingPolicies entry) in one line."""
    conf = policy.get("TargetTrackingScalingPolicyConfiguration")
    step = policy.get("StepScalingPolicyConfiguration")
    if step and step.get("AdjustmentType") == "ExactCapacity" and policy.get("PolicyName") == costcap.STOP_POLICY:
        return "cost cap: 0 tasks when an hourly cap alarm fires (docs/cost-cap.md)"
    if not conf:
        return str(policy.get("PolicyType"))
    return f"{_metric_text(conf)} → {conf['TargetValue']:g}{_cooldowns(conf)}"


def range_text(target: dict[str, Any] | None) -> str | None:
    return f"{target['MinCapacity']}..{target['MaxCapacity']}" if target else None


def _metric_text(conf: dict[str, Any]) -> str:
    pre = conf.get("PredefinedMetricSpecification")
    if pre:
        return str(pre["PredefinedMetricType"])
    return "SQS visible messages / running tasks"


def _cooldowns(conf: dict[str, Any]) -> str:
    parts = [f"{word} cooldown {conf[k]}s" for k, word in (("ScaleInCooldown", "scale-in"),
                                                            ("ScaleOutCooldown", "scale-out")) if k in conf]
    return f" ({', '.join(parts)})" if parts else ""

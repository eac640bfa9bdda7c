"""Application Auto Scaling for ECS services, typed: the one place that reads its answers.

Callers get ScalableTarget, ScalingPolicy and ScalingActivity, never a response dict. Every
function takes the service's client ("application-autoscaling"): the caller picks it (a
Bounded one during a deploy, so a call cannot outlive the deploy's time budget).

Shapes: https://docs.aws.amazon.com/autoscaling/application/APIReference/API_ScalableTarget.html,
API_ScalingPolicy.html and API_ScalingActivity.html.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deployctl.adapters.aws import BotoClient

CLIENT = "application-autoscaling"
# deployctl scales one thing: an ECS service's desired count.
NAMESPACE = "ecs"
DIMENSION = "ecs:service:DesiredCount"

# A policy's configuration key, by its PolicyType.
_CONFIGURATION = {"TargetTrackingScaling": "TargetTrackingScalingPolicyConfiguration",
                  "StepScaling": "StepScalingPolicyConfiguration"}


@dataclass(frozen=True)
class ScalableTarget:
    resource_id: str
    min_capacity: int
    max_capacity: int
    # SuspendedState as Application Auto Scaling reports it: the three flags by name.
    suspended: Mapping[str, bool] = field(default_factory=dict)

    @property
    def scale_in_suspended(self) -> bool:
        return bool(self.suspended.get("DynamicScalingInSuspended"))

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> ScalableTarget:
        return cls(resource_id=str(raw.get("ResourceId", "")), min_capacity=int(raw.get("MinCapacity") or 0),
                   max_capacity=int(raw.get("MaxCapacity") or 0),
                   suspended={str(k): bool(v) for k, v in (raw.get("SuspendedState") or {}).items()})


@dataclass(frozen=True)
class ScalingPolicy:
    name: str
    arn: str
    policy_type: str  # TargetTrackingScaling | StepScaling | PredictiveScaling
    # The configuration of its type, in PutScalingPolicy's shape (None: the answer had none):
    # deploy.yaml's rendered requests are compared with it as they are.
    configuration: Mapping[str, Any] | None = field(default=None, compare=False)

    def same_as(self, request: Mapping[str, Any]) -> bool:
        """True when this live policy is what the PutScalingPolicy `request` would put."""
        kind = str(request.get("PolicyType", ""))
        return self.policy_type == kind and self.configuration == request.get(_configuration_key(kind))

    def document(self) -> dict[str, Any]:
        """The policy in PutScalingPolicy's shape (what deployctl.render.autoscaling.policy_text reads)."""
        out: dict[str, Any] = {"PolicyName": self.name, "PolicyType": self.policy_type}
        if self.configuration is not None:
            out[_configuration_key(self.policy_type)] = dict(self.configuration)
        return out

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> ScalingPolicy:
        kind = str(raw.get("PolicyType", ""))
        conf = raw.get(_configuration_key(kind))
        return cls(name=str(raw.get("PolicyName", "")), arn=str(raw.get("PolicyARN", "")), policy_type=kind,
                   configuration=dict(conf) if isinstance(conf, Mapping) else None)


def _configuration_key(policy_type: str) -> str:
    return _CONFIGURATION.get(policy_type, f"{policy_type}PolicyConfiguration")


@dataclass(frozen=True)
class ScalingActivity:
    cause: str
    started_at: datetime | None = None


def key(resource_id: str) -> dict[str, str]:
    """The three values every call about one service's scaling names."""
    return {"ServiceNamespace": NAMESPACE, "ResourceId": resource_id, "ScalableDimension": DIMENSION}


def scalable_target(client: BotoClient, resource_id: str) -> ScalableTarget | None:
    found = client.describe_scalable_targets(ServiceNamespace=NAMESPACE, ResourceIds=[resource_id],
                                             ScalableDimension=DIMENSION).get("ScalableTargets") or []
    return ScalableTarget.from_api(found[0]) if found else None


def policies(client: BotoClient, resource_id: str, names: list[str] | None = None) -> dict[str, ScalingPolicy]:
    """The target's policies by name (every page); only `names` when given."""
    found: dict[str, ScalingPolicy] = {}
    token: str | None = None
    while True:
        page = client.describe_scaling_policies(**key(resource_id), **({"PolicyNames": names} if names else {}),
                                                **({"NextToken": token} if token else {}))
        for raw in page.get("ScalingPolicies") or []:
            policy = ScalingPolicy.from_api(raw)
            found[policy.name] = policy
        token = page.get("NextToken")
        if not token:
            return found


def latest_activity(client: BotoClient, resource_id: str) -> ScalingActivity | None:
    """The newest scaling activity of the target, or None."""
    found = client.describe_scaling_activities(**key(resource_id), MaxResults=1).get("ScalingActivities") or []
    if not found:
        return None
    started = found[0].get("StartTime")
    return ScalingActivity(cause=str(found[0].get("Cause", "") or ""),
                           started_at=started if isinstance(started, datetime) else None)


def register(client: BotoClient, request: Mapping[str, Any]) -> None:
    """RegisterScalableTarget (creates or updates) with a rendered request."""
    client.register_scalable_target(**request)


def deregister(client: BotoClient, resource_id: str) -> None:
    client.deregister_scalable_target(**key(resource_id))


def put_policy(client: BotoClient, request: Mapping[str, Any]) -> None:
    client.put_scaling_policy(**request)


def delete_policy(client: BotoClient, resource_id: str, name: str) -> None:
    client.delete_scaling_policy(PolicyName=name, **key(resource_id))

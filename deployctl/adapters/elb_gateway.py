"""Elastic Load Balancing v2 target health, typed: the one place that reads DescribeTargetHealth.

The rollout watcher, `status` and the diagnosis ask a `TargetHealth` for its target id, port,
state and reason. Shape: https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetHealthDescription.html
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # boto3 only where AWS is called: the views are read on paths that never call it
    from deployctl.adapters.aws import BotoClient


# States a target leaves the count of a rollout in (it is going away or not in use).
GONE_STATES = frozenset({"draining", "unused", "unhealthy.draining"})


@dataclass(frozen=True)
class TargetHealth:
    """One registered target and its health."""

    id: str  # an IP address (target type `ip`, what Fargate tasks register as) or an instance id
    port: int | None = None
    state: str = ""  # initial | healthy | unhealthy | unhealthy.draining | unused | draining | unavailable
    reason: str = ""  # e.g. Target.ResponseCodeMismatch
    description: str = ""

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> TargetHealth:
        target = d.get("Target") or {}
        health = d.get("TargetHealth") or {}
        port = target.get("Port")
        return cls(id=str(target.get("Id") or ""), port=int(port) if port is not None else None,
                   state=str(health.get("State") or ""), reason=str(health.get("Reason") or ""),
                   description=str(health.get("Description") or ""))

    @property
    def key(self) -> str:
        """`10.0.1.5:8080`, as the watcher logs a target."""
        return f"{self.id or '?'}:{'' if self.port is None else self.port}"

    def text(self) -> str:
        """`unhealthy (Target.ResponseCodeMismatch: Health checks failed with these codes: [502])`"""
        out = self.state or "?"
        if self.reason:
            out += f" ({self.reason}" + (f": {self.description}" if self.description else "") + ")"
        return out


def target_health(elbv2: BotoClient, target_group_arn: str) -> list[TargetHealth]:
    """Every target registered in one target group (DescribeTargetHealth: one call, no paging)."""
    resp = elbv2.describe_target_health(TargetGroupArn=target_group_arn)
    return [TargetHealth.from_api(d) for d in resp.get("TargetHealthDescriptions") or []]

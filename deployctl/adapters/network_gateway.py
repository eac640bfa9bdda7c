"""EC2 and Elastic Load Balancing reads, typed: subnets, security groups, target groups and
load balancers as preflight, monitoring and auto scaling need them.

Callers get TargetGroup (and plain answers: exists or not, an ARN), never a response dict.
Functions take the service's client ("ec2", "elbv2"), which the caller picks.

Shapes: https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetGroup.html
and API_LoadBalancer.html; https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
for the `InvalidSubnetID.NotFound` style error codes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from deployctl.adapters.aws import BotoClient, ClientError, error_code, is_not_found


@dataclass(frozen=True)
class TargetGroup:
    arn: str
    name: str = ""
    target_type: str | None = None  # instance | ip | lambda | alb (None: not reported)
    load_balancer_arns: tuple[str, ...] = ()

    @property
    def suffix(self) -> str:
        """`targetgroup/<name>/<id>`: how CloudWatch's ALB metrics name the group."""
        return self.arn.rsplit(":", 1)[1]

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> TargetGroup:
        kind = raw.get("TargetType")
        return cls(arn=str(raw.get("TargetGroupArn", "")), name=str(raw.get("TargetGroupName", "")),
                   target_type=str(kind) if kind is not None else None,
                   load_balancer_arns=tuple(str(a) for a in raw.get("LoadBalancerArns") or []))


def target_groups(elbv2: BotoClient, *, names: list[str] | None = None,
                  arns: list[str] | None = None) -> list[TargetGroup]:
    """DescribeTargetGroups by names or ARNs; an AWS error (a group not found too) is raised."""
    kwargs = {"TargetGroupArns": arns} if arns else {"Names": names or []}
    return [TargetGroup.from_api(g) for g in elbv2.describe_target_groups(**kwargs).get("TargetGroups") or []]


def find_target_group(elbv2: BotoClient, ref: str) -> TargetGroup | None:
    """The target group named `ref` (a name or an ARN), or None when it does not exist."""
    try:
        found = target_groups(elbv2, arns=[ref]) if ref.startswith("arn:") else target_groups(elbv2, names=[ref])
    except ClientError as exc:
        if is_not_found(exc) or error_code(exc) == "TargetGroupNotFound":
            return None
        raise
    return found[0] if found else None


def load_balancer_arn(elbv2: BotoClient, name: str) -> str:
    """The ARN of the load balancer named `name`; LookupError when it is not listed, an AWS error
    (LoadBalancerNotFound) as raised."""
    found = elbv2.describe_load_balancers(Names=[name]).get("LoadBalancers") or []
    if not found:
        raise LookupError(f"no load balancer named {name}")
    return str(found[0]["LoadBalancerArn"])


def subnet_exists(ec2: BotoClient, subnet: str) -> bool:
    return _exists(lambda: ec2.describe_subnets(SubnetIds=[subnet]))


def security_group_exists(ec2: BotoClient, group: str) -> bool:
    return _exists(lambda: ec2.describe_security_groups(GroupIds=[group]))


def _exists(describe: Callable[[], object]) -> bool:
    """EC2 answers an id that does not exist with an error (`InvalidSubnetID.NotFound`, …)."""
    try:
        describe()
    except ClientError as exc:
        if (error_code(exc) or "").endswith(".NotFound") or is_not_found(exc):
            return False
        raise
    return True

"""ECS clusters, typed, as preflight checks them: status, capacity providers and settings.

(ECS services and their deployments are deployctl.adapters.ecs_gateway.) Callers get a
ClusterView, never a DescribeClusters dict. Shape:
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Cluster.html.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deployctl.adapters.aws import BotoClient


@dataclass(frozen=True)
class ClusterView:
    name: str
    status: str | None = None  # ACTIVE | PROVISIONING | DEPROVISIONING | FAILED (None: not reported)
    capacity_providers: frozenset[str] = frozenset()
    settings: Mapping[str, str] = field(default_factory=dict)  # e.g. containerInsights → enabled

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> ClusterView:
        status = raw.get("status")
        return cls(name=str(raw.get("clusterName") or ""), status=str(status) if status is not None else None,
                   capacity_providers=frozenset(str(p) for p in raw.get("capacityProviders") or []),
                   settings={str(s.get("name")): str(s.get("value")) for s in raw.get("settings") or []
                             if s.get("value") is not None})


def describe_cluster(ecs: BotoClient, name: str) -> ClusterView | None:
    """The cluster with its settings, or None when it does not exist (MISSING or INACTIVE)."""
    resp = ecs.describe_clusters(clusters=[name], include=["SETTINGS"])
    found = [c for c in resp.get("clusters") or [] if c.get("status") != "INACTIVE"]
    return ClusterView.from_api(found[0]) if found else None

"""What an UpdateService request would change on a live ECS service, setting by setting. Pure.

The UpdateService that deploys a revision also sends the service's settings (deployment
configuration, deployment alarms, capacity providers, network, load balancers, desired count).
deploy.yaml is the truth for them, but nothing may change silently: `run` logs these changes
before the update, and `deployctl diff` shows them without changing anything.

Only what the request sends is compared: a key UpdateService does not carry is left as it is
by ECS (for example the desired count of an auto-scaled service). A deployment alarm on the
live service that deploy.yaml does not list is switched off by the update; that change is shown
with a warning, never dropped (docs/deploy-yaml.md, "Service settings").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SCHEMA = "deployctl.diff/v1"

# ECS's own values for a service created without these settings (the CreateService API reference).
_DEFAULT_MAX_PERCENT = 200
_DEFAULT_MIN_HEALTHY = 100


@dataclass(frozen=True)
class Change:
    """One setting that differs: `live` is what ECS shows, `planned` what deploy.yaml sends."""

    setting: str  # for people: "circuit breaker rollback"
    key: str  # the request's key path: "deploymentConfiguration.deploymentCircuitBreaker.rollback"
    live: object  # a JSON value: number, text, bool, list of text, or None (not set)
    planned: object
    warning: str = ""  # said out loud where the change takes something away

    def text(self) -> str:
        return f"{self.setting}: {show(self.live)} → {show(self.planned)}"

    def short(self) -> str:
        """For a list on one line: `desired count 2 → 3`."""
        return f"{self.setting} {show(self.live)} → {show(self.planned)}"

    def to_json(self) -> dict[str, Any]:
        return {"setting": self.setting, "key": self.key, "live": self.live, "planned": self.planned,
                "warning": self.warning or None}


@dataclass(frozen=True)
class ServiceDiff:
    service: str  # deploy.yaml's name
    ecs_service: str
    exists: bool  # False: the service would be created (every setting is new)
    changes: tuple[Change, ...] = ()

    @property
    def changed(self) -> bool:
        return not self.exists or bool(self.changes)

    def to_json(self) -> dict[str, Any]:
        return {"ecs_service": self.ecs_service, "exists": self.exists,
                "changes": [c.to_json() for c in self.changes]}


def show(value: object) -> str:
    """A setting's value as one short piece of text."""
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]" if value else "[]"
    return str(value)


def compare(request: Mapping[str, Any], live: Mapping[str, Any]) -> tuple[Change, ...]:
    """Every setting `request` (an UpdateService request) changes on `live` (DescribeServices)."""
    out: list[Change] = []
    if "desiredCount" in request:
        _add(out, "desired count", "desiredCount", live.get("desiredCount"), request["desiredCount"])
    if "deploymentConfiguration" in request:
        out += _deployment_configuration(request["deploymentConfiguration"] or {},
                                         live.get("deploymentConfiguration") or {})
    if "capacityProviderStrategy" in request:
        _add(out, "capacity providers", "capacityProviderStrategy", _providers_live(live),
             _providers(request["capacityProviderStrategy"]))
    if "networkConfiguration" in request:
        out += _network(request["networkConfiguration"] or {}, live.get("networkConfiguration") or {})
    if "loadBalancers" in request:
        _add(out, "load balancers", "loadBalancers", _balancers(live.get("loadBalancers")),
             _balancers(request["loadBalancers"]))
    if "healthCheckGracePeriodSeconds" in request:
        _add(out, "health check grace period (s)", "healthCheckGracePeriodSeconds",
             live.get("healthCheckGracePeriodSeconds", 0), request["healthCheckGracePeriodSeconds"])
    return tuple(out)


def _add(out: list[Change], setting: str, key: str, live: object, planned: object, warning: str = "") -> None:
    if live != planned:
        out.append(Change(setting, key, live, planned, warning))


def _deployment_configuration(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Change]:
    out: list[Change] = []
    key = "deploymentConfiguration"
    if "deploymentCircuitBreaker" in new:
        nb, ob = new["deploymentCircuitBreaker"] or {}, old.get("deploymentCircuitBreaker") or {}
        for part in ("enable", "rollback"):
            warning = ""
            if part == "rollback" and ob.get(part) and not nb.get(part):
                warning = "ECS will no longer roll a failed deployment back on its own"
            _add(out, f"circuit breaker {part}", f"{key}.deploymentCircuitBreaker.{part}",
                 bool(ob.get(part)), bool(nb.get(part)), warning)
    if "maximumPercent" in new:
        _add(out, "maximum percent", f"{key}.maximumPercent", old.get("maximumPercent", _DEFAULT_MAX_PERCENT),
             new["maximumPercent"])
    if "minimumHealthyPercent" in new:
        _add(out, "minimum healthy percent", f"{key}.minimumHealthyPercent",
             old.get("minimumHealthyPercent", _DEFAULT_MIN_HEALTHY), new["minimumHealthyPercent"])
    if "alarms" in new:
        na, oa = new["alarms"] or {}, old.get("alarms") or {}
        names_new, names_old = sorted(na.get("alarmNames") or []), sorted(oa.get("alarmNames") or [])
        dropped = [n for n in names_old if n not in names_new]
        warning = ""
        if dropped and oa.get("enable"):
            warning = (f"deployment alarm{'s' if len(dropped) > 1 else ''} {', '.join(dropped)} "
                       f"{'guard' if len(dropped) > 1 else 'guards'} the live service and "
                       f"{'are' if len(dropped) > 1 else 'is'} not in deploy.yaml: "
                       f"{'they' if len(dropped) > 1 else 'it'} will no longer stop or roll back a deployment "
                       "(list it in deploy.alarms to keep it)")
        _add(out, "deployment alarms", f"{key}.alarms.alarmNames", names_old, names_new, warning)
        for part in ("enable", "rollback"):
            _add(out, f"deployment alarms {part}", f"{key}.alarms.{part}", bool(oa.get(part)), bool(na.get(part)))
    return out


def _providers(strategy: Iterable[Mapping[str, Any]] | None) -> list[str]:
    return sorted(f"{p.get('capacityProvider')} weight {int(p.get('weight') or 0)} base {int(p.get('base') or 0)}"
                  for p in strategy or [])


def _providers_live(live: Mapping[str, Any]) -> list[str] | str | None:
    if live.get("capacityProviderStrategy"):
        return _providers(live["capacityProviderStrategy"])
    # A service made with a launch type has no strategy; the update replaces the launch type.
    launch = live.get("launchType")
    return f"launch type {launch}" if launch else None


def _network(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Change]:
    out: list[Change] = []
    nv, ov = new.get("awsvpcConfiguration") or {}, old.get("awsvpcConfiguration") or {}
    base = "networkConfiguration.awsvpcConfiguration"
    _add(out, "subnets", f"{base}.subnets", sorted(ov.get("subnets") or []), sorted(nv.get("subnets") or []))
    _add(out, "security groups", f"{base}.securityGroups", sorted(ov.get("securityGroups") or []),
         sorted(nv.get("securityGroups") or []))
    _add(out, "public IP", f"{base}.assignPublicIp", ov.get("assignPublicIp", "DISABLED"),
         nv.get("assignPublicIp", "DISABLED"))
    return out


def _balancers(lbs: Iterable[Mapping[str, Any]] | None) -> list[str]:
    return sorted(f"{lb.get('targetGroupArn')} → {lb.get('containerName')}:{lb.get('containerPort')}"
                  for lb in lbs or [])


def service_diff(service: str, ecs_service: str, request: Mapping[str, Any],
                 live: Mapping[str, Any] | None) -> ServiceDiff:
    """The diff of one service; `live` None (or INACTIVE) means the service would be created."""
    if not live or live.get("status") == "INACTIVE":
        return ServiceDiff(service, ecs_service, exists=False)
    return ServiceDiff(service, ecs_service, exists=True, changes=compare(request, live))


def scaling_changes(live_range: str | None, planned_range: str | None, live_policies: Mapping[str, str],
                    planned_policies: Mapping[str, str], *, scale_in_suspended: bool = False,
                    removal: str = "") -> tuple[Change, ...]:
    """What applying `autoscaling:` changes (deployctl.targets.ecs_autoscaling): the scalable
    target's range ("2..6", None: no target) and deployctl's policies, each as one line of text
    (None: not there). Policies that are not deployctl's are never passed in: they stay.
    `removal`: the desired count decision of the deploy that drops auto scaling."""
    out: list[Change] = []
    warning = f"the service will no longer scale on its own; {removal or 'it keeps its current desired count'}" \
        if live_range and not planned_range else ""
    _add(out, "auto scaling range", "autoscaling.range", live_range, planned_range, warning)
    if scale_in_suspended and planned_range:
        _add(out, "auto scaling scale-in suspended", "autoscaling.suspended.scale_in", True, False,
             "left suspended by a deploy that did not finish; the next deploy resumes it")
    for name in sorted(set(live_policies) | set(planned_policies)):
        _add(out, f"auto scaling policy {name}", f"autoscaling.policies.{name}", live_policies.get(name),
             planned_policies.get(name))
    return tuple(out)


def lines(diff: ServiceDiff) -> list[str]:
    """The diff for people: one line per change, warnings after the change they belong to."""
    if not diff.exists:
        return [f"{diff.ecs_service}: does not exist yet; the deploy creates it"]
    if not diff.changes:
        return [f"{diff.ecs_service}: no service setting changes"]
    out = [f"{diff.ecs_service}: {len(diff.changes)} service setting{'s' if len(diff.changes) > 1 else ''} change"]
    for c in diff.changes:
        out.append(f"  {c.text()}")
        if c.warning:
            out.append(f"    warning: {c.warning}")
    return out


def doc(app: str, env: str, diffs: Iterable[ServiceDiff]) -> dict[str, Any]:
    """`deployctl diff --json` (schema deployctl.diff/v1). Keys are only ever added."""
    found = list(diffs)
    return {"schema": SCHEMA, "app": app, "env": env, "changed": any(d.changed for d in found),
            "services": {d.service: d.to_json() for d in found}}

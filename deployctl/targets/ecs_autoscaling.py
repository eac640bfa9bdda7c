"""Application Auto Scaling on each ECS deploy: suspend scale-in for the rollout, then apply.

`during_rollout` wraps one service's deploy. Before it, when the service already runs with a
scalable target, the target is registered with DynamicScalingInSuspended, so the scaler does not
remove tasks while old and new tasks run side by side. Afterwards — also when the rollout failed,
raised or was interrupted (a finally, with a fresh short time budget, since the deploy's may be
spent) — `apply` makes Application Auto Scaling match deploy.yaml: the target registered with
min/max and nothing suspended, deployctl's policies (`deployctl-*`) put, the ones deploy.yaml no
longer has deleted, and, when deploy.yaml drops `autoscaling`, the target deregistered if
deployctl's policies were on it. Requests come from deployctl.render.autoscaling (pure).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from deployctl.adapters import autoscaling_gateway as gateway
from deployctl.adapters import aws as awsa
from deployctl.adapters import network_gateway
from deployctl.errors import DeployFailed
from deployctl.pipeline import Cancelled
from deployctl.render import autoscaling as render
from deployctl.render import ecs
from deployctl.rollout import WatchCancelled

if TYPE_CHECKING:
    from deployctl.config.model import ResolvedConfig

CLIENT = gateway.CLIENT
# Resuming scale-in must not depend on what is left of the deploy's time budget.
RESUME_BUDGET = 60.0
# After Ctrl-C, deployctl's stage engine (deployctl.pipeline.run_jobs) waits kill_grace 2 s +
# stop_timeout 10 s for a stage to end before it abandons it; the watch may take a few seconds
# to notice the cancel. The resume gets what is surely left (a handful of calls, well under 1 s
# on a healthy endpoint); past it, the warning says what is left suspended.
INTERRUPTED_RESUME_BUDGET = 5.0


@dataclass
class Changes:
    registered: str = ""  # "created" | "updated" | "unchanged" | "deregistered" | ""
    resumed: bool = False  # the live target had scale-in suspended; registered again without it
    put: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"target {self.registered}"] if self.registered else []
        parts += ["scale-in resumed"] if self.resumed else []
        parts += [f"put {', '.join(self.put)}"] if self.put else []
        parts += [f"deleted {', '.join(self.deleted)}"] if self.deleted else []
        parts += [f"{len(self.unchanged)} policies unchanged"] if self.unchanged else []
        return "; ".join(parts) or "nothing to do"


@dataclass(frozen=True)
class Live:
    target: gateway.ScalableTarget | None
    policies: dict[str, gateway.ScalingPolicy]  # every policy on the target, by name


def read(client: awsa.BotoClient, resource_id: str) -> Live:
    return Live(gateway.scalable_target(client, resource_id), gateway.policies(client, resource_id))


def resolve_facts(cfg: ResolvedConfig, svc: str, elbv2: awsa.BotoClient,
                  target_group_arns: Mapping[str, str]) -> render.Facts:
    """The resource label of the service's target group, for requests_per_target: the target
    group's ARN (preflight's) and the load balancer it is attached to."""
    service = cfg.services[svc]
    auto = service.autoscaling
    if auto is None or auto.requests_per_target is None or service.load_balancer is None:
        return render.Facts()
    tg = service.load_balancer.target_group
    arn = tg if tg.startswith("arn:") else target_group_arns.get(tg)
    groups = network_gateway.target_groups(elbv2, arns=[arn] if arn else None, names=[tg])
    group = groups[0] if groups else None
    if group is None or not group.load_balancer_arns:
        raise DeployFailed(f"target group {tg} is attached to no load balancer: requests_per_target scales on "
                           "ALBRequestCountPerTarget, which is measured per load balancer and target group",
                           hint=f"attach {tg} to a listener of its ALB, or drop autoscaling.requests_per_target")
    return render.Facts({tg: render.resource_label(group.arn, group.load_balancer_arns[0])})


def apply(client: awsa.BotoClient, cfg: ResolvedConfig, svc: str, facts: render.Facts,
          preview: str | None = None) -> Changes:
    """Make the service's scaling match deploy.yaml (idempotent)."""
    rid = render.resource_id(cfg.environment.cluster or "default", ecs.service_name(cfg, svc, preview))
    live = read(client, rid)
    changes = Changes()
    ours = {n for n in live.policies if render.owned(n)}
    if not render.scaled(cfg, svc, preview):
        for name in sorted(ours):
            gateway.delete_policy(client, rid, name)
            changes.deleted.append(name)
        # Only a target deployctl scaled (its policies were on it) and nobody else scales: a
        # target with someone else's policies is left to them.
        if live.target is not None and ours and not set(live.policies) - ours:
            gateway.deregister(client, rid)
            changes.registered = "deregistered"
        return changes
    target = render.scalable_target(cfg, svc, preview=preview)
    suspended = dict(live.target.suspended) if live.target else {}
    changes.resumed = live.target is not None and live.target.scale_in_suspended
    # Scale-in suspended by this deploy (or an interrupted one) is a resume, not a change of the target.
    suspended["DynamicScalingInSuspended"] = False
    same = live.target is not None and (live.target.min_capacity, live.target.max_capacity) == (
        target["MinCapacity"], target["MaxCapacity"]) and suspended == target["SuspendedState"]
    if not same or changes.resumed:
        gateway.register(client, target)
    changes.registered = "unchanged" if same else "updated" if live.target else "created"
    wanted = render.policies(cfg, svc, facts, preview)
    for name, request in wanted.items():
        if name in live.policies and live.policies[name].same_as(request):
            changes.unchanged.append(name)
            continue
        gateway.put_policy(client, request)
        changes.put.append(name)
    for name in sorted(ours - set(wanted)):
        gateway.delete_policy(client, rid, name)
        changes.deleted.append(name)
    return changes


def remove(client: awsa.BotoClient, cfg: ResolvedConfig, svc: str, preview: str | None = None) -> str | None:
    """Deregister the scalable target of a service being deleted; the resource id when there was
    one. AWS deletes a target's policies with it; they are deleted first all the same, so that
    nothing is left where that does not happen (moto keeps them)."""
    rid = render.resource_id(cfg.environment.cluster or "default", ecs.service_name(cfg, svc, preview))
    live = read(client, rid)
    if live.target is None:
        return None
    for name in sorted(live.policies):
        gateway.delete_policy(client, rid, name)
    gateway.deregister(client, rid)
    return rid


def removal_count(client: awsa.BotoClient, cfg: ResolvedConfig, svc: str, desired: int,
                  preview: str | None = None) -> int | None:
    """When this deploy drops deployctl's auto scaling from a running service (its target still
    carries deployctl's policies), the desired count the update sends instead of `count`
    (render.kept_on_removal); None otherwise."""
    if render.scaled(cfg, svc, preview):
        return None
    live = read(client, render.resource_id(cfg.environment.cluster or "default", ecs.service_name(cfg, svc, preview)))
    if live.target is None or not any(render.owned(n) for n in live.policies):
        return None
    return render.kept_on_removal(cfg.services[svc].count, desired, live.target.max_capacity)


def suspend_scale_in(client: awsa.BotoClient, cfg: ResolvedConfig, svc: str, preview: str | None = None) -> bool:
    """Suspend scale-in for a rollout when the service already has a scalable target; True if so."""
    rid = render.resource_id(cfg.environment.cluster or "default", ecs.service_name(cfg, svc, preview))
    if not render.scaled(cfg, svc, preview) or read(client, rid).target is None:
        return False
    gateway.register(client, render.scalable_target(cfg, svc, suspend_scale_in=True, preview=preview))
    return True


def left_suspended(cfg: ResolvedConfig, svc: str, reason: str, preview: str | None = None) -> str:
    """What to say when scale-in could not be resumed: what is left, and how to fix it now."""
    rid = render.resource_id(cfg.environment.cluster or "default", ecs.service_name(cfg, svc, preview))
    return (f"warning: scale-in of {svc} is left suspended ({reason}): the scaler adds tasks but removes none "
            f"until it is resumed. The next deploy resumes it; to resume it now: aws application-autoscaling "
            f"register-scalable-target --region {cfg.region} --service-namespace {render.NAMESPACE} "
            f"--scalable-dimension {render.DIMENSION} --resource-id {rid} "
            "--suspended-state DynamicScalingInSuspended=false")


@contextlib.contextmanager
def during_rollout(aws: awsa.Bounded, cfg: ResolvedConfig, svc: str, target_group_arns: Mapping[str, str],
                   log: Callable[[str], None], preview: str | None = None) -> Iterator[None]:
    """Scale-in suspended while the body (one service's deploy) runs; scaling applied after it,
    whatever the body did. A failure to apply fails the service's deploy (DeployFailed) unless
    the body already raised (its error is the one to report; this one is logged). Scale-in left
    suspended is always said, with the command that resumes it."""
    suspended = False
    if render.scaled(cfg, svc, preview):
        with awsa.aws_errors(f"suspending scale-in of {svc} for the rollout"):
            suspended = suspend_scale_in(aws.client(CLIENT), cfg, svc, preview)
        if suspended:
            log("auto scaling: scale-in suspended for the rollout")
    failed, interrupted = True, False
    try:
        yield
        failed = False
    except (Cancelled, WatchCancelled):
        interrupted = True
        raise
    finally:
        # After Ctrl-C the stage engine waits only so long before it abandons the stage (and the
        # process exits): the resume must fit in that, or say why it did not.
        budget = INTERRUPTED_RESUME_BUDGET if interrupted else RESUME_BUDGET
        after = awsa.Bounded(aws.base, time.monotonic() + budget)
        try:
            with awsa.aws_errors(f"applying auto scaling of {svc}"):
                facts = resolve_facts(cfg, svc, after.elbv2, target_group_arns)
                changes = apply(after.client(CLIENT), cfg, svc, facts, preview)
            if changes.registered or changes.deleted:
                log(f"auto scaling: {changes.summary()}")
        except Exception as exc:
            reason = str(getattr(exc, "message", exc)).splitlines()[0]
            if suspended:
                log(left_suspended(cfg, svc, reason, preview))
            if not failed:
                raise
            if not suspended:
                log(f"warning: auto scaling not applied ({reason}); the next deploy applies it")

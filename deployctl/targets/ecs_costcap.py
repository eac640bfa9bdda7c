"""The hourly cost cap on each ECS deploy, after the services (docs/cost-cap.md).

The stop policies are put with each service's auto scaling (deployctl.targets.ecs_autoscaling,
which needs the service to exist). Then `apply` makes the rest match deploy.yaml, idempotently:
the SNS topic `<app>-<env>-cost-cap` and its subscriptions, and the cap alarms with their actions
(the stop policies' ARNs and the topic's). Without `monitoring.cost_cap` it removes what an
earlier deploy created: cap alarms no longer configured, and the topic with its subscriptions.
Requests come from deployctl.render.costcap and deployctl.render.monitoring (pure).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from deployctl import monitoring
from deployctl.adapters import autoscaling_gateway as scaling
from deployctl.adapters import cloudwatch_gateway as cw
from deployctl.adapters import sns_gateway
from deployctl.adapters.aws import BotoClient
from deployctl.errors import DeployFailed
from deployctl.render import autoscaling as render_autoscaling
from deployctl.render import costcap as render
from deployctl.render import ecs as render_ecs
from deployctl.render import monitoring as render_monitoring

if TYPE_CHECKING:
    from deployctl.adapters import aws as awsa
    from deployctl.config.model import ResolvedConfig

AUTOSCALING = scaling.CLIENT


@dataclass
class CapChanges:
    topic: str = ""  # "created" | "unchanged" | "deleted" | ""
    subscribed: list[str] = field(default_factory=list)
    unsubscribed: list[str] = field(default_factory=list)
    alarms: monitoring.AlarmChanges | None = None
    alarms_deleted: list[str] = field(default_factory=list)
    actions_removed: list[str] = field(default_factory=list)  # cap alarms kept, cost_cap dropped
    in_alarm: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"topic {self.topic}"] if self.topic else []
        parts += [f"subscribed {', '.join(self.subscribed)}"] if self.subscribed else []
        parts += [f"unsubscribed {', '.join(self.unsubscribed)}"] if self.unsubscribed else []
        parts += [self.alarms.summary()] if self.alarms else []
        parts += [f"alarms deleted: {', '.join(self.alarms_deleted)}"] if self.alarms_deleted else []
        parts += [f"actions removed from {', '.join(self.actions_removed)}"] if self.actions_removed else []
        return "; ".join(parts) or "nothing to do"


def possible_alarm_names(cfg: ResolvedConfig) -> list[str]:
    """Every name a cap alarm of this environment can have (each service, each cap): what a
    removal looks for. Exact names, never a prefix: `chat-prod-` would also match prod-eu's."""
    return [render_monitoring.alarm_name(cfg, svc, kind) for svc in cfg.services for kind in render.CAP_KINDS]


def alarm_states(cloudwatch: BotoClient, names: list[str]) -> dict[str, str]:
    return cw.alarm_states(cloudwatch, names)


def stop_policy_arns(client: BotoClient, cfg: ResolvedConfig) -> dict[str, str]:
    """service → ARN of its deployctl-cost-cap-stop policy, for those that have one."""
    out = {}
    for svc in render.stopped_services(cfg):
        rid = render_autoscaling.resource_id(cfg.environment.cluster or "default", render_ecs.service_name(cfg, svc))
        found = scaling.policies(client, rid, [render.STOP_POLICY]).get(render.STOP_POLICY)
        if found:
            out[svc] = found.arn
    return out


def _sync_subscriptions(sns: BotoClient, cfg: ResolvedConfig, arn: str, changes: CapChanges) -> None:
    """Subscribe what deploy.yaml lists and is not there; unsubscribe the confirmed ones it no longer
    lists (SNS cannot unsubscribe a pending confirmation: it lapses after 3 days)."""
    wanted = render.subscriptions(cfg)
    have = sns_gateway.subscriptions(sns, arn)
    present = {(s.protocol, s.endpoint) for s in have}
    for protocol, endpoint in wanted:
        if (protocol, endpoint) not in present:
            sns_gateway.subscribe(sns, arn, protocol, endpoint)
            changes.subscribed.append(endpoint)
    for s in have:
        if (s.protocol, s.endpoint) not in wanted and s.confirmed:
            sns_gateway.unsubscribe(sns, s)
            changes.unsubscribed.append(s.endpoint)


def _delete_stale_alarms(cloudwatch: BotoClient, cfg: ResolvedConfig, keep: set[str], changes: CapChanges) -> None:
    stale = [n for n in alarm_states(cloudwatch, possible_alarm_names(cfg)) if n not in keep]
    if stale:
        cw.delete_alarms(cloudwatch, stale)
        changes.alarms_deleted += stale


def _drop_actions(cloudwatch: BotoClient, kept: list[render_monitoring.AlarmSpec], changes: CapChanges) -> None:
    """An hourly cap kept without cost_cap is an alarm without actions again: PutMetricAlarm
    replaces the whole alarm, so putting the rendered request (no actions) clears them. Needed
    because the monitoring step compares only the keys it sends, and it sends no actions."""
    if not kept:
        return
    acting = {name for name, alarm in cw.alarms(cloudwatch, [s.name for s in kept]).items() if alarm.has_actions}
    for spec in kept:
        if spec.name in acting:
            cw.put_metric_alarm(cloudwatch, spec.request)
            changes.actions_removed.append(spec.name)


def apply(cfg: ResolvedConfig, aws: awsa.Bounded, *, account_id: str, partition: str = "aws",
          log: Callable[[str], None] = lambda s: None) -> CapChanges:
    """Make the cost cap match deploy.yaml (idempotent); DeployFailed when a service the cap must
    stop has no stop policy (its deploy failed before auto scaling was applied)."""
    changes = CapChanges()
    mon = cfg.monitoring
    arn = render.topic_arn(cfg, account_id, partition)
    sns, cloudwatch = aws.client("sns"), aws.cloudwatch
    if mon is None or mon.cost_cap is None:
        kept = [s for s in render_monitoring.alarms(cfg, mon) if s.kind in render.CAP_KINDS] if mon else []
        _delete_stale_alarms(cloudwatch, cfg, {s.name for s in kept}, changes)
        _drop_actions(cloudwatch, kept, changes)
        if sns_gateway.topic_exists(sns, arn):
            sns_gateway.delete_topic(sns, arn)
            changes.topic = "deleted"
        return changes
    existed = sns_gateway.topic_exists(sns, arn)
    if not existed:
        arn = sns_gateway.create_topic(sns, render.topic_name(cfg),
                                       {"deployctl:app": cfg.app, "deployctl:env": cfg.env_name})
    changes.topic = "unchanged" if existed else "created"
    _sync_subscriptions(sns, cfg, arn, changes)
    policies = stop_policy_arns(aws.client(AUTOSCALING), cfg)
    facts = monitoring.resolve_facts(cfg, mon, aws.elbv2)
    specs = [s for s in render_monitoring.alarms(cfg, mon, facts, render.CapActions(arn, policies))
             if s.kind in render.CAP_KINDS]
    changes.alarms = monitoring.put_alarms(cloudwatch, specs)
    _delete_stale_alarms(cloudwatch, cfg, {s.name for s in specs}, changes)
    states = alarm_states(cloudwatch, [s.name for s in specs])
    changes.in_alarm = sorted(n for n, st in states.items() if st == "ALARM")
    missing = [s for s in render.stopped_services(cfg) if s not in policies]
    if missing:
        raise DeployFailed(f"the cost cap cannot stop {', '.join(missing)}: no {render.STOP_POLICY} policy on "
                           "its scalable target (its deploy did not get as far as auto scaling); the cap alarms "
                           "notify the topic only", hint="deploy again once the service is running")
    return changes


def stopped_by_cap(cloudwatch: BotoClient, autoscaling: BotoClient, cfg: ResolvedConfig,
                   desired: dict[str, int]) -> dict[str, str]:
    """service → why `status` says "stopped by cost cap", for the services it applies to.

    The rule (docs/cost-cap.md): the service is one `on_cap: stop` names, it wants 0 tasks while
    deploy.yaml would run some, and either a cap alarm is in ALARM now or the newest scaling
    activity of its scalable target was caused by the stop policy (the alarm may be back to OK
    an hour later; the service stays stopped until `resume`)."""
    candidates = [s for s in render.stopped_services(cfg)
                  if desired.get(s) == 0 and render.restore_count(cfg, s) > 0]
    if not candidates:
        return {}
    names = [s.name for s in render_monitoring.alarms(cfg, cfg.monitoring) if s.kind in render.CAP_KINDS] \
        if cfg.monitoring is not None else []
    firing = sorted(n for n, st in alarm_states(cloudwatch, names).items() if st == "ALARM") if names else []
    out = {}
    for svc in candidates:
        if firing:
            out[svc] = f"alarm {', '.join(firing)} in ALARM"
            continue
        rid = render_autoscaling.resource_id(cfg.environment.cluster or "default", render_ecs.service_name(cfg, svc))
        try:
            act = scaling.latest_activity(autoscaling, rid)
        except Exception:  # noqa: BLE001 - optional evidence (a role from before the cap may lack it): status goes on
            act = None
        if act is not None and render.STOP_POLICY in act.cause:
            out[svc] = f"scaling activity at {str(act.started_at or '')[:19]}: {act.cause}"
    return out

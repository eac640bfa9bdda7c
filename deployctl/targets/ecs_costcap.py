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
from typing import TYPE_CHECKING, Any

from deployctl import monitoring
from deployctl.errors import DeployFailed
from deployctl.render import autoscaling as render_autoscaling
from deployctl.render import costcap as render
from deployctl.render import ecs as render_ecs
from deployctl.render import monitoring as render_monitoring

if TYPE_CHECKING:
    from deployctl.adapters import aws as awsa
    from deployctl.config.model import ResolvedConfig

AUTOSCALING = "application-autoscaling"
PENDING = "PendingConfirmation"  # SubscriptionArn of an email/https subscription not yet confirmed


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


def alarm_states(cloudwatch: Any, names: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for i in range(0, len(names), 100):
        resp = cloudwatch.describe_alarms(AlarmNames=names[i:i + 100], AlarmTypes=["MetricAlarm"])
        found.update({str(a["AlarmName"]): str(a.get("StateValue", "")) for a in resp.get("MetricAlarms", [])})
    return found


def stop_policy_arns(client: Any, cfg: ResolvedConfig) -> dict[str, str]:
    """service → ARN of its deployctl-cost-cap-stop policy, for those that have one."""
    out = {}
    for svc in render.stopped_services(cfg):
        rid = render_autoscaling.resource_id(cfg.environment.cluster or "default", render_ecs.service_name(cfg, svc))
        found = client.describe_scaling_policies(
            ServiceNamespace=render_autoscaling.NAMESPACE, ResourceId=rid,
            ScalableDimension=render_autoscaling.DIMENSION, PolicyNames=[render.STOP_POLICY]).get("ScalingPolicies")
        if found:
            out[svc] = str(found[0]["PolicyARN"])
    return out


def _topic_exists(sns: Any, arn: str) -> bool:
    try:
        sns.get_topic_attributes(TopicArn=arn)
    except Exception as exc:
        if str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")) in ("NotFound", "NotFoundException"):
            return False
        raise
    return True


def _subscriptions(sns: Any, arn: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TopicArn": arn}
    while True:
        page = sns.list_subscriptions_by_topic(**kwargs)
        out += page.get("Subscriptions") or []
        if not page.get("NextToken"):
            return out
        kwargs["NextToken"] = page["NextToken"]


def _sync_subscriptions(sns: Any, cfg: ResolvedConfig, arn: str, changes: CapChanges) -> None:
    """Subscribe what deploy.yaml lists and is not there; unsubscribe the confirmed ones it no longer
    lists (SNS cannot unsubscribe a pending confirmation: it lapses after 3 days)."""
    wanted = render.subscriptions(cfg)
    have = _subscriptions(sns, arn)
    present = {(str(s.get("Protocol")), str(s.get("Endpoint"))) for s in have}
    for protocol, endpoint in wanted:
        if (protocol, endpoint) not in present:
            sns.subscribe(TopicArn=arn, Protocol=protocol, Endpoint=endpoint, ReturnSubscriptionArn=True)
            changes.subscribed.append(endpoint)
    for s in have:
        key = (str(s.get("Protocol")), str(s.get("Endpoint")))
        if key not in wanted and s.get("SubscriptionArn") not in (None, PENDING):
            sns.unsubscribe(SubscriptionArn=s["SubscriptionArn"])
            changes.unsubscribed.append(key[1])


def _delete_stale_alarms(cloudwatch: Any, cfg: ResolvedConfig, keep: set[str], changes: CapChanges) -> None:
    stale = [n for n in alarm_states(cloudwatch, possible_alarm_names(cfg)) if n not in keep]
    if stale:
        cloudwatch.delete_alarms(AlarmNames=stale)
        changes.alarms_deleted += stale


def _drop_actions(cloudwatch: Any, kept: list[render_monitoring.AlarmSpec], changes: CapChanges) -> None:
    """An hourly cap kept without cost_cap is an alarm without actions again: PutMetricAlarm
    replaces the whole alarm, so putting the rendered request (no actions) clears them. Needed
    because the monitoring step compares only the keys it sends, and it sends no actions."""
    if not kept:
        return
    resp = cloudwatch.describe_alarms(AlarmNames=[s.name for s in kept], AlarmTypes=["MetricAlarm"])
    acting = {str(a["AlarmName"]) for a in resp.get("MetricAlarms", []) if a.get("AlarmActions") or a.get("OKActions")}
    for spec in kept:
        if spec.name in acting:
            cloudwatch.put_metric_alarm(**spec.request)
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
        if _topic_exists(sns, arn):
            sns.delete_topic(TopicArn=arn)  # its subscriptions go with it
            changes.topic = "deleted"
        return changes
    existed = _topic_exists(sns, arn)
    if not existed:
        arn = str(sns.create_topic(Name=render.topic_name(cfg), Tags=[
            {"Key": "deployctl:app", "Value": cfg.app}, {"Key": "deployctl:env", "Value": cfg.env_name}])["TopicArn"])
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


def stopped_by_cap(cloudwatch: Any, autoscaling: Any, cfg: ResolvedConfig, desired: dict[str, int]) -> dict[str, str]:
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
            acts = autoscaling.describe_scaling_activities(
                ServiceNamespace=render_autoscaling.NAMESPACE, ResourceId=rid,
                ScalableDimension=render_autoscaling.DIMENSION, MaxResults=1).get("ScalingActivities") or []
        except Exception:  # noqa: BLE001 - optional evidence (a role from before the cap may lack it): status goes on
            acts = []
        if acts and render.STOP_POLICY in str(acts[0].get("Cause", "")):
            out[svc] = f"scaling activity at {str(acts[0].get('StartTime', ''))[:19]}: {acts[0].get('Cause')}"
    return out

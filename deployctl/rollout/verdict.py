"""The verdict on one rollout snapshot. Pure.

`assess()` answers "how is THE DEPLOYMENT WE STARTED doing?" from one DescribeServices entry
(a typed `ServiceState`; and, when known, target health and alarm states). It never looks at
"is the service stable": a circuit-breaker rollback leaves the service stable on the old
revision, and that is a failed deploy (exit 1), not a success. Success needs all of: our
deployment is PRIMARY and COMPLETED, running == desired, no other deployment left, and (behind
a load balancer) its targets healthy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from deployctl.adapters.alarm_gateway import AlarmInfo
from deployctl.adapters.ecs_gateway import COMPLETED, Deployment, ServiceState, Task
from deployctl.adapters.elb_gateway import GONE_STATES, TargetHealth

IN_PROGRESS = "in_progress"
SUCCEEDED = "succeeded"
FAILED = "failed"
# ECS is reverting to an older deployment: the outcome is already a failure, but we keep
# watching until the revert finishes so the report can say where the service ended up.
ROLLING_BACK = "rolling_back"

# Verdict causes (stable strings; tests and diagnose use them).
CAUSE_COMPLETED = "completed"
CAUSE_ECS_ROLLBACK = "ecs_rollback"  # circuit breaker or alarm rolled the service back
CAUSE_BREAKER = "circuit_breaker"  # FAILED by the breaker, no rollback by ECS
CAUSE_ALARM = "alarm"
CAUSE_FAILED = "failed"
CAUSE_VANISHED = "vanished"
CAUSE_REPLACED = "replaced"
CAUSE_TIMEOUT = "timeout"
CAUSE_SERVICE_GONE = "service_gone"
CAUSE_UNHEALTHY = "unhealthy_targets"
CAUSE_NO_ANSWER = "no_answer"  # AWS stopped answering DescribeServices: the rollout's state is unknown

# deployctl's own rollback (ECS did not roll back a failed rollout) gets this share of
# deploy.timeout on top of it: the whole deploy ends within timeout × (1 + ROLLBACK_SHARE) plus
# OUTCOME_GRACE for recording the outcome (docs/timeouts.md).
ROLLBACK_SHARE = 0.5
OUTCOME_GRACE = 5.0
# The rollout's AWS calls may end this long after its timeout, so the poll right after the
# deadline (and the reads for the diagnosis) still get an answer (taken out of the rollback
# budget, not added to the bound).
LAST_LOOK = 1.0


def rollback_budget(timeout: float) -> float:
    """Seconds deployctl's own rollback may take after the rollout's `timeout`."""
    return timeout * ROLLBACK_SHARE

def alarms_text(alarms: Iterable[AlarmInfo]) -> str:
    """What fired, for a failure reason: `deployment alarm X (metric) in ALARM: reason`."""
    firing = [a for a in alarms if a.state == "ALARM"]
    if not firing:
        return ""
    word = "alarm" if len(firing) == 1 else "alarms"
    return f"deployment {word} in ALARM: " + "; ".join(a.text() for a in firing)


# ------------------------------------------------------------------------------------------
# Pure part
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What was seen at one poll.

    service: what one `DescribeServices` entry showed, or None when the service is MISSING.
    targets: target health of the service's target group(s); None = not fetched.
    alarms:  deployment alarm name → StateValue (OK | ALARM | INSUFFICIENT_DATA).
    stopped_tasks: stopped tasks of our deployment (for logs/diagnosis).
    firing: the alarms in ALARM with their reason and metric, when read for a failure: an
            alarm failure then names them instead of ECS's bare "alarm detected".
    """

    service: ServiceState | None
    targets: tuple[TargetHealth, ...] | None = None
    alarms: Mapping[str, str] = field(default_factory=dict)
    stopped_tasks: tuple[Task, ...] = ()
    firing: tuple[AlarmInfo, ...] = ()


@dataclass(frozen=True)
class Timers:
    """Durations the watcher measured across polls (assess itself keeps no state)."""

    elapsed: float = 0.0  # since our update/create call
    failed_for: float = 0.0  # our deployment seen PRIMARY+FAILED for this long
    unhealthy_for: float = 0.0  # ours COMPLETED but its targets not all healthy for this long
    alarm_for: float = 0.0  # an alarm that was not in ALARM at the start has been in ALARM


@dataclass(frozen=True)
class Limits:
    timeout: float = 900.0
    # ECS needs a moment between marking our deployment FAILED and showing its rollback;
    # deployctl must not race it with its own rollback.
    ecs_rollback_grace: float = 15.0
    # COMPLETED but targets still unhealthy (ECS and the load balancer disagree): our own gate.
    health_gate: float = 120.0
    # A deployment alarm in ALARM that ECS did not act on (alarms not enabled on the service,
    # or ECS disabled the checks because the alarm was firing at start): our own gate.
    alarm_grace: float = 30.0
    load_balanced: bool = False
    # ECS can end the deployment itself at any poll (circuit breaker or deployment alarms on):
    # the watcher then polls fast throughout, so that end is seen within one fast interval.
    can_fail: bool = True


@dataclass(frozen=True)
class Verdict:
    status: str  # IN_PROGRESS | SUCCEEDED | FAILED | ROLLING_BACK
    message: str
    cause: str = ""
    deployment_id: str | None = None
    rolled_back_to: str | None = None  # "family:revision" ECS reverted to
    roll_back: bool = False  # deployctl should roll back itself (ECS did not and will not)
    waiting_for_ecs: bool = False  # FAILED is showing; giving ECS time to start its rollback

    @property
    def final(self) -> bool:
        return self.status in (SUCCEEDED, FAILED)

    @property
    def ok(self) -> bool:
        return self.status == SUCCEEDED


def td_label(arn: str | None) -> str:
    """`arn:aws:ecs:…:task-definition/family:7` → `family:7`."""
    if not arn:
        return "?"
    return arn.rsplit("/", 1)[-1]


def _is_rollback_reason(text: str | None) -> bool:
    return "rolling back" in (text or "").lower()


def failure_reason(svc: ServiceState, deployment_id: str, ours: Deployment | None = None,
                   firing: Iterable[AlarmInfo] = ()) -> str:
    """Why ECS failed our deployment: its rolloutStateReason, else the service event. An alarm
    failure names the alarms in ALARM (with reason and metric) when they are known."""
    reason = ""
    if ours is not None and ours.rollout_state == "FAILED" and ours.reason:
        reason = ours.reason
    else:
        marker = f"(deployment {deployment_id}) deployment failed:"
        for event in svc.events:
            msg = event.message
            if marker in msg:
                what = msg.split(marker, 1)[1].strip()
                # Rolling deployments fail only through the circuit breaker or a deployment alarm;
                # the event says which ("alarm detected." / "tasks failed to start.").
                who = "alarm" if "alarm" in what.lower() else "circuit breaker"
                reason = f"ECS deployment {who}: {what}"
                break
    if "alarm" in reason.lower():
        named = alarms_text(firing)
        if named:
            return named
    return reason


def _cause_of(reason: str) -> str:
    low = reason.lower()
    if "alarm" in low:
        return CAUSE_ALARM
    if "circuit breaker" in low or "tasks failed to start" in low or "task failed to start" in low:
        return CAUSE_BREAKER
    return CAUSE_FAILED


def task_ips(tasks: Iterable[Task]) -> set[str]:
    """Private IPv4 addresses of awsvpc tasks: the target ids of an `ip` target group."""
    return {ip for task in tasks for ip in task.ips}


def own_targets(targets: Iterable[TargetHealth], ips: set[str]) -> list[TargetHealth]:
    """The targets of a service's own tasks: a target group may be shared with another
    environment (`shared: true`) or hold other registrations, and those must not count."""
    return [t for t in targets if t.id in ips]


def target_counts(targets: Iterable[TargetHealth]) -> tuple[int, int, list[TargetHealth]]:
    """(healthy, settling, bad) among targets that are not draining/unused."""
    healthy = settling = 0
    bad: list[TargetHealth] = []
    for t in targets:
        if t.state == "healthy":
            healthy += 1
        elif t.state == "initial":
            settling += 1
        elif t.state in GONE_STATES:
            continue
        else:
            bad.append(t)
    return healthy, settling, bad


def counts_text(d: Deployment) -> str:
    return d.counts_text()


def assess(
    snapshot: Snapshot,
    started_deployment_id: str,
    *,
    before_ids: Iterable[str] = (),
    timers: Timers = Timers(),
    limits: Limits = Limits(),
) -> Verdict:
    """Verdict on our deployment from one snapshot. Pure.

    before_ids: ids of the deployments the service had before our update. ECS's rollback
    revives one of them with its old id, so a PRIMARY from this set means "rolled back".
    """
    our_id = started_deployment_id
    svc = snapshot.service
    if svc is None or svc.gone:
        gone = "missing" if svc is None else svc.status.lower()
        return Verdict(FAILED, f"the service is {gone} (deleted while deploying?)", CAUSE_SERVICE_GONE,
                       our_id)

    ours = svc.deployment(our_id)
    primary = svc.primary
    before = set(before_ids)

    # --- someone else is PRIMARY: a rollback by ECS, or a newer deploy
    if primary is not None and primary is not ours:
        reverted = (
            _is_rollback_reason(primary.reason)
            or primary.id in before
            or (ours is not None and ours.rollout_state == "FAILED")
        )
        to = td_label(primary.task_definition)
        if reverted:
            why = failure_reason(svc, our_id, ours, snapshot.firing)
            why_text = f" ({why.rstrip('.')})" if why else ""
            done = primary.rollout_state == COMPLETED and not svc.others(primary)
            if done:
                return Verdict(FAILED, f"rolled back to {to}{why_text}", CAUSE_ECS_ROLLBACK, our_id,
                               rolled_back_to=to)
            if primary.rollout_state == "FAILED":
                return Verdict(FAILED, f"ECS's rollback to {to} failed too{why_text}: "
                               f"{primary.reason}", CAUSE_ECS_ROLLBACK, our_id,
                               rolled_back_to=to)
            if timers.elapsed > limits.timeout:
                return Verdict(FAILED, f"rolling back to {to}{why_text}; the rollback had not finished "
                               f"after {limits.timeout:g}s", CAUSE_ECS_ROLLBACK, our_id, rolled_back_to=to)
            return Verdict(ROLLING_BACK, f"ECS is rolling back to {to}{why_text}: {primary.counts_text()}",
                           CAUSE_ECS_ROLLBACK, our_id, rolled_back_to=to)
        if ours is None:
            return Verdict(FAILED, f"our deployment {our_id} disappeared; the service now runs {to} "
                           f"(deployment {primary.id})", CAUSE_VANISHED, our_id)
        return Verdict(FAILED, f"deployment {primary.id} ({to}) replaced ours while it rolled out "
                       "(another deploy of this service?)", CAUSE_REPLACED, our_id)

    if ours is None:
        return Verdict(FAILED, f"our deployment {our_id} disappeared and the service has no PRIMARY "
                       "deployment", CAUSE_VANISHED, our_id)

    # --- ours is PRIMARY
    state = ours.rollout_state
    others = svc.others(ours)
    if state == "FAILED":
        reason = failure_reason(svc, our_id, ours, snapshot.firing) or "ECS marked the deployment FAILED"
        cause = _cause_of(reason)
        may_revert = svc.rollback_configured and bool(others or before)
        if may_revert and timers.failed_for < limits.ecs_rollback_grace:
            return Verdict(IN_PROGRESS, f"FAILED ({reason}); waiting for ECS to roll back", cause, our_id,
                           waiting_for_ecs=True)
        return Verdict(FAILED, f"{reason.rstrip('.')} and ECS did not roll back", cause, our_id,
                       roll_back=True)

    if state == "COMPLETED":
        running, desired = ours.running, ours.desired
        waiting = ""
        if others:
            waiting = "old deployment still draining"
        elif running < desired:
            waiting = f"running {running}/{desired}"
        elif limits.load_balanced:
            if snapshot.targets is None:
                waiting = "checking target health"
            else:
                healthy, settling, bad = target_counts(snapshot.targets)
                if bad or settling or healthy < desired:
                    if bad and timers.unhealthy_for >= limits.health_gate:
                        return Verdict(FAILED, f"ECS reports COMPLETED but {len(bad)} target(s) stayed "
                                       f"unhealthy for {timers.unhealthy_for:.0f}s", CAUSE_UNHEALTHY, our_id,
                                       roll_back=True)
                    waiting = f"targets healthy {healthy}/{desired}"
        if not waiting:
            lb = ", targets healthy" if limits.load_balanced else ""
            return Verdict(SUCCEEDED, f"{td_label(ours.task_definition)} is live: deployment "
                           f"completed, {running}/{desired} running{lb}", CAUSE_COMPLETED, our_id)
        if timers.elapsed > limits.timeout:
            return Verdict(FAILED, f"timed out after {_secs(limits.timeout)} ({waiting})", CAUSE_TIMEOUT, our_id,
                           roll_back=True)
        return Verdict(IN_PROGRESS, f"completed; {waiting}", "", our_id)

    # IN_PROGRESS (or a state this version does not know: treat as still going)
    if timers.alarm_for >= limits.alarm_grace and timers.alarm_for > 0:
        what = alarms_text(snapshot.firing) or "a deployment alarm in ALARM"
        return Verdict(FAILED, f"{what} (for {timers.alarm_for:.0f}s) and ECS did not stop the deployment",
                       CAUSE_ALARM, our_id, roll_back=True)
    if timers.elapsed > limits.timeout:
        return Verdict(FAILED, f"timed out after {_secs(limits.timeout)}: {ours.counts_text()}", CAUSE_TIMEOUT,
                       our_id, roll_back=True)
    return Verdict(IN_PROGRESS, ours.counts_text(), "", our_id)


def _secs(seconds: float) -> str:
    """A duration as people say it: whole seconds from 10 s up, else one decimal ("1.5s", "3s")."""
    return f"{round(seconds)}s" if seconds >= 10 else f"{round(seconds, 1):g}s"


def near_completion(svc: ServiceState | None) -> bool:
    """The PRIMARY deployment has all its tasks running; only old tasks are left to drain (or
    the alarm bake time to pass). COMPLETED can come at any poll now: poll fast."""
    primary = svc.primary if svc is not None else None
    if primary is None or primary.rollout_state == "FAILED":
        return False
    if primary.rollout_state == COMPLETED:
        return True  # still polling only for old tasks to go or targets to turn healthy
    return primary.desired > 0 and primary.running >= primary.desired and primary.pending == 0


def with_timeout(limits: Limits, timeout: float) -> Limits:
    return replace(limits, timeout=timeout)

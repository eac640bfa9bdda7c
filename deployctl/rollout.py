"""Rollout tracking: a pure verdict on one snapshot, plus the polling loop around it.

`assess()` answers "how is THE DEPLOYMENT WE STARTED doing?" from one DescribeServices entry
(and, when known, target health and alarm states). It never looks at "is the service stable":
a circuit-breaker rollback leaves the service stable on the old revision, and that is a failed
deploy (exit 1), not a success. Success needs all of: our deployment is PRIMARY and COMPLETED,
running == desired, no other deployment left, and (behind a load balancer) its targets healthy.

`watch()` polls a `Source` (the ECS target implements it with boto3; tests may use anything),
logs what a person needs while waiting, keeps API calls bounded, backs off on throttling and
returns the final verdict. It has no AWS imports: clock, sleep and randomness are injectable.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

from deployctl.adapters.ecs_gateway import COMPLETED, Deployment, ServiceEvent, ServiceState, timestamp

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
# The rollout's AWS calls may end this long after its timeout, so the watcher's last look at the
# timeout still gets an answer (taken out of the rollback budget, not added to the bound).
LAST_LOOK = 1.0


def rollback_budget(timeout: float) -> float:
    """Seconds deployctl's own rollback may take after the rollout's `timeout`."""
    return timeout * ROLLBACK_SHARE

_T = TypeVar("_T")

# DescribeTasks / DescribeTargetHealth entries (stopped tasks and targets are not typed yet).
Json = Mapping[str, Any]


# ------------------------------------------------------------------------------------------
# Pure part
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What was seen at one poll.

    service: what one `DescribeServices` entry showed, or None when the service is MISSING.
    targets: `TargetHealthDescriptions` of the service's target group(s); None = not fetched.
    alarms:  deployment alarm name → StateValue (OK | ALARM | INSUFFICIENT_DATA).
    stopped_tasks: `DescribeTasks` entries of stopped tasks of our deployment (for logs/diagnosis).
    """

    service: ServiceState | None
    targets: tuple[Json, ...] | None = None
    alarms: Mapping[str, str] = field(default_factory=dict)
    stopped_tasks: tuple[Json, ...] = ()


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


def failure_reason(svc: ServiceState, deployment_id: str, ours: Deployment | None = None) -> str:
    """Why ECS failed our deployment: its rolloutStateReason, else the service event."""
    if ours is not None and ours.rollout_state == "FAILED" and ours.reason:
        return ours.reason
    marker = f"(deployment {deployment_id}) deployment failed:"
    for event in svc.events:
        msg = event.message
        if marker in msg:
            what = msg.split(marker, 1)[1].strip()
            # Rolling deployments fail only through the circuit breaker or a deployment alarm.
            who = "deployment alarm" if "alarm" in what.lower() else "circuit breaker"
            return f"ECS deployment {who}: {what}"
    return ""


def _cause_of(reason: str) -> str:
    low = reason.lower()
    if "alarm" in low:
        return CAUSE_ALARM
    if "circuit breaker" in low or "tasks failed to start" in low or "task failed to start" in low:
        return CAUSE_BREAKER
    return CAUSE_FAILED


def task_ips(tasks: Iterable[Json]) -> set[str]:
    """Private IPv4 addresses of awsvpc tasks (DescribeTasks): the target ids of an `ip` target group."""
    out: set[str] = set()
    for task in tasks:
        for att in task.get("attachments") or []:
            if att.get("type") == "ElasticNetworkInterface":
                out.update(str(d["value"]) for d in att.get("details") or []
                           if d.get("name") == "privateIPv4Address" and d.get("value"))
        for c in task.get("containers") or []:
            out.update(str(n["privateIpv4Address"]) for n in c.get("networkInterfaces") or []
                       if n.get("privateIpv4Address"))
    return out


def own_targets(targets: Iterable[Json], ips: set[str]) -> list[Json]:
    """The targets of a service's own tasks: a target group may be shared with another
    environment (`shared: true`) or hold other registrations, and those must not count."""
    return [t for t in targets if str((t.get("Target") or {}).get("Id", "")) in ips]


def target_counts(targets: Iterable[Json]) -> tuple[int, int, list[Json]]:
    """(healthy, settling, bad) among targets that are not draining/unused."""
    healthy = settling = 0
    bad: list[Json] = []
    for t in targets:
        state = str((t.get("TargetHealth") or {}).get("State", ""))
        if state == "healthy":
            healthy += 1
        elif state == "initial":
            settling += 1
        elif state in ("draining", "unused", "unhealthy.draining"):
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
            why = failure_reason(svc, our_id, ours)
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
        reason = failure_reason(svc, our_id, ours) or "ECS marked the deployment FAILED"
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
            return Verdict(FAILED, f"timed out after {limits.timeout:g}s ({waiting})", CAUSE_TIMEOUT, our_id,
                           roll_back=True)
        return Verdict(IN_PROGRESS, f"completed; {waiting}", "", our_id)

    # IN_PROGRESS (or a state this version does not know: treat as still going)
    if timers.alarm_for >= limits.alarm_grace and timers.alarm_for > 0:
        return Verdict(FAILED, f"a deployment alarm has been in ALARM for {timers.alarm_for:.0f}s and ECS "
                       "did not stop the deployment", CAUSE_ALARM, our_id, roll_back=True)
    if timers.elapsed > limits.timeout:
        return Verdict(FAILED, f"timed out after {limits.timeout:g}s: {ours.counts_text()}", CAUSE_TIMEOUT,
                       our_id, roll_back=True)
    return Verdict(IN_PROGRESS, ours.counts_text(), "", our_id)


def near_completion(svc: ServiceState | None) -> bool:
    """The PRIMARY deployment has all its tasks running; only old tasks are left to drain (or
    the alarm bake time to pass). COMPLETED can come at any poll now: poll fast."""
    primary = svc.primary if svc is not None else None
    if primary is None or primary.rollout_state == "FAILED":
        return False
    if primary.rollout_state == COMPLETED:
        return True  # still polling only for old tasks to go or targets to turn healthy
    return primary.desired > 0 and primary.running >= primary.desired and primary.pending == 0


# ------------------------------------------------------------------------------------------
# Polling policy (pure)
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollPolicy:
    """Seconds between polls, and the API-call budget.

    Fast just after the update (early failures: bad image, missing secret) and when completion
    is near (so success is reported within ~`fast`); in between the interval grows from `base`
    to `max`. Every call first checks a hard cap of `budget` calls in any sliding `window`
    and paces calls window/budget apart (DescribeServices waits; optional calls wait a poll). Near
    completion behind a load balancer one slot per window is kept free for the target-health
    read that confirms success, so COMPLETED is confirmed without waiting. Auxiliary calls
    (stopped tasks, target health, alarms) happen when something changed or every `aux_every`
    polls, never periodically near completion; an optional call that finds no budget is put
    off by one poll at most.
    """

    base: float = 5.0
    fast: float = 2.0
    max: float = 15.0
    growth: float = 1.25
    warmup: float = 15.0
    jitter: float = 0.1
    aux_every: int = 6
    budget: int = 30
    window: float = 60.0
    throttle_base: float = 2.0
    throttle_max: float = 30.0
    ecs_rollback_grace: float = 15.0
    health_gate: float = 120.0
    alarm_grace: float = 30.0

    @classmethod
    def from_base(cls, base: float) -> PollPolicy:
        """Scale every duration with `base` (5 s is the real-world default); tests pass ~0.05."""
        k = base / 5.0
        return cls(base=base, fast=2.0 * k, max=15.0 * k, warmup=15.0 * k, window=60.0 * k,
                   throttle_base=2.0 * k, throttle_max=30.0 * k, ecs_rollback_grace=15.0 * k,
                   health_gate=120.0 * k, alarm_grace=30.0 * k)

    def interval(self, since_start: float, slow_polls: int, near: bool) -> float:
        if since_start < self.warmup or near:
            return self.fast
        return min(self.max, self.base * self.growth ** max(0, slow_polls))

    def jittered(self, seconds: float, rnd: float) -> float:
        """rnd in [0, 1): up to `jitter` shorter (so parallel watchers do not poll in step, and
        the nominal interval stays an upper bound on how late a change is seen)."""
        return max(0.0, seconds * (1.0 - self.jitter * rnd))

    def throttle_delay(self, streak: int, rnd: float) -> float:
        """Exponential backoff with full jitter in its upper half: streak 1 → ~base."""
        cap = min(self.throttle_max, self.throttle_base * 2 ** max(0, streak - 1))
        return cap * (0.5 + 0.5 * rnd)


# ------------------------------------------------------------------------------------------
# The watcher
# ------------------------------------------------------------------------------------------


class Throttled(Exception):
    """Raised by a Source when AWS answered with a throttling error (or, `transient=True`, a
    5xx / connection failure): the watcher backs off and tries again."""

    def __init__(self, operation: str = "", message: str = "", *, transient: bool = False,
                 out_of_time: bool = False) -> None:
        super().__init__(f"{operation}: {message}" if operation else message)
        self.operation = operation
        self.transient = transient
        self.out_of_time = out_of_time  # not sent: the time budget was spent (AWS was not asked)


class WatchCancelled(Exception):
    """The watch was cancelled (Ctrl-C). The ECS deployment continues on its own."""

    def __init__(self, last: Verdict | None) -> None:
        super().__init__("watch cancelled")
        self.last = last


class Source(Protocol):
    """What the watcher reads. Each method may raise Throttled. `calls` counts API calls made."""

    calls: int

    def service(self) -> ServiceState | None: ...

    def stopped_tasks(self, deployment_id: str, known: set[str]) -> list[Json]:
        """Stopped tasks of the deployment that are not in `known` (task ARNs)."""
        ...

    def target_health(self) -> list[Json] | None:
        """Target health of the service's target groups; None when it has none."""
        ...

    def alarm_states(self) -> dict[str, str]: ...


@dataclass
class WatchResult:
    verdict: Verdict
    polls: int = 0
    calls: int = 0
    throttled: int = 0
    started: float = 0.0  # clock() at start
    ended: float = 0.0
    stopped_tasks: list[Json] = field(default_factory=list)
    events: list[ServiceEvent] = field(default_factory=list)  # new events seen, oldest first
    targets: list[Json] | None = None
    alarms: dict[str, str] = field(default_factory=dict)
    last_service: ServiceState | None = None

    @property
    def duration(self) -> float:
        return self.ended - self.started


def describe_stopped_task(task: Json) -> str:
    """One line per stopped task: id, stopCode, stoppedReason, container exit codes/reasons/health."""
    tid = str(task.get("taskArn", "?")).rsplit("/", 1)[-1][:12]
    parts = [f"task {tid} stopped"]
    if task.get("stopCode"):
        parts[0] += f" ({task['stopCode']})"
    if task.get("stoppedReason"):
        parts.append(str(task["stoppedReason"]))
    for c in task.get("containers") or []:
        bits = []
        if c.get("exitCode") is not None:
            bits.append(f"exit {c['exitCode']}")
        if c.get("reason") and c.get("reason") != task.get("stoppedReason"):
            bits.append(str(c["reason"]))
        if c.get("healthStatus") and c.get("healthStatus") != "UNKNOWN":
            bits.append(f"health {c['healthStatus']}")
        if bits:
            parts.append(f"container {c.get('name', '?')}: " + ", ".join(bits))
    if task.get("healthStatus") == "UNHEALTHY":
        parts.append("task health UNHEALTHY")
    return "; ".join(parts)


def _target_key(t: Json) -> str:
    target = t.get("Target") or {}
    return f"{target.get('Id', '?')}:{target.get('Port', '')}"


def _target_text(t: Json) -> str:
    h = t.get("TargetHealth") or {}
    text = str(h.get("State", "?"))
    if h.get("Reason"):
        text += f" ({h['Reason']}" + (f": {h['Description']}" if h.get("Description") else "") + ")"
    return text


class _CallBudget:
    """The API-call budget of one watch: a hard cap of `budget` calls in any sliding `window`,
    and calls paced window/budget apart."""

    def __init__(self, source: Source, policy: PollPolicy, clock: Callable[[], float]) -> None:
        self.source, self.policy, self.clock = source, policy, clock
        self.call_times: deque[float] = deque()
        # Pacing: each call pushes the earliest next one window/budget seconds later; idle time
        # is not saved up, so bursts cannot fill a window and then stall the watch.
        self.next_free = clock()

    def count_calls(self, before: int) -> None:
        """Book the calls the source made since its counter read `before`."""
        now = self.clock()
        for _ in range(max(0, self.source.calls - before)):
            self.call_times.append(now)
            self.next_free = max(self.next_free, now) + self.policy.window / self.policy.budget

    def calls_in_window(self) -> int:
        cutoff = self.clock() - self.policy.window
        while self.call_times and self.call_times[0] < cutoff:
            self.call_times.popleft()
        return len(self.call_times)

    def wait(self, need: int) -> float:
        """Seconds to wait so that the next call keeps the pace, and `need` more calls stay
        within the window's cap."""
        return max(max(0.0, self.next_free - self.clock()), self.cap_wait(need))

    def cap_wait(self, need: int) -> float:
        """Seconds to wait so that `need` more calls stay within the window's hard cap."""
        over = self.calls_in_window() + need - self.policy.budget
        if over <= 0:
            return 0.0
        idx = min(len(self.call_times), over) - 1
        # A hair past the instant the old call leaves the window (the window is half-open).
        return max(0.0, self.call_times[idx] + self.policy.window - self.clock() + 1e-3)


# What one poll may read besides DescribeServices.
AuxKind = Literal["targets", "alarms", "tasks"]
AUX_KINDS: tuple[AuxKind, ...] = ("targets", "alarms", "tasks")


@dataclass(frozen=True)
class AuxPlan:
    """Which auxiliary reads a poll makes."""

    targets: bool = False
    alarms: bool = False
    tasks: bool = False
    # The verdict cannot be "succeeded" without a fresh target-health read: it goes out now.
    essential_targets: bool = False

    def wants(self, kind: AuxKind) -> bool:
        return bool(getattr(self, kind))


class _Watcher:
    """One watch() call. `run()` is the loop; each step of a poll is a method:

    read the service → extra reads (targets, alarms, stopped tasks) → report what changed →
    assess → (final: a last look on failure) or schedule the next poll. Throttling at any
    read goes to `_back_off`, which also ends the watch once the timeout has passed.
    """

    def __init__(self, source: Source, our_id: str, *, policy: PollPolicy, limits: Limits,
                 log: Callable[[str], None], before_ids: Iterable[str], seen_events: Iterable[str],
                 alarms_at_start: Mapping[str, str] | None, cancelled: threading.Event | None,
                 clock: Callable[[], float], sleep: Callable[[float], bool], rng: Callable[[], float],
                 first_service: ServiceState | None) -> None:
        self.source, self.our_id, self.policy, self.limits = source, our_id, policy, limits
        self.log, self.cancelled, self.clock, self.sleep, self.rng = log, cancelled, clock, sleep, rng
        self.before_ids = frozenset(before_ids)
        self.seen_events = set(seen_events)
        self.alarm_prev: dict[str, str] = dict(alarms_at_start or {})
        self.alarms_at_start = {k for k, v in (alarms_at_start or {}).items() if v == "ALARM"}
        self.budget = _CallBudget(source, policy, clock)
        self.start = clock()
        if first_service is not None:
            # The caller's create/update call just answered with this description: count it.
            self.budget.call_times.append(self.start)
            self.budget.next_free = self.start + policy.window / policy.budget
        self.result = WatchResult(verdict=Verdict(IN_PROGRESS, "starting", deployment_id=our_id),
                                  started=self.start)
        self.verdict = self.result.verdict
        self.calls0 = source.calls
        self.polls = 0
        self.slow_polls = 0
        self.throttle_streak = 0
        # What was seen so far.
        self.svc: ServiceState | None = first_service
        self.have_first = first_service is not None
        self.last_answer: float | None = self.start if first_service is not None else None
        self.unanswered = False  # a DescribeServices went out since the last answer and got none
        self.alarms: dict[str, str] = dict(alarms_at_start or {})
        self.targets: list[Json] | None = None
        self.known_tasks: set[str] = set()
        # Change tracking for the log and for deciding on extra reads.
        self.target_prev: dict[str, str] = {}
        self.counts_prev: tuple[tuple[str, str, str, int, int, int, int], ...] | None = None
        self.deferred: set[AuxKind] = set()
        self.announced: set[str] = set()
        self.last_failed_tasks = -1
        self.last_running = -1
        # Timers across polls (assess keeps no state).
        self.failed_since: float | None = None
        self.unhealthy_since: float | None = None
        self.alarm_since: float | None = None

    # ---- the loop ----
    def run(self) -> WatchResult:
        while True:
            self._check_cancelled()
            self.polls += 1
            try:
                self._read_service()
                self.throttle_streak = 0
                self._extra_reads()
            except Throttled as exc:
                ended = self._back_off(exc)
                if ended is not None:
                    return self._finish(ended)
                continue
            self._report_changes()
            self.verdict = self._assess()
            self._announce()
            if self.verdict.final:
                if self.verdict.status == FAILED:
                    self._last_look()
                return self._finish(self.verdict)
            self._wait_for_next_poll()

    def _check_cancelled(self) -> None:
        if self.cancelled is not None and self.cancelled.is_set():
            raise WatchCancelled(self.verdict)

    def _pause(self, seconds: float) -> None:
        """Sleep; a Ctrl-C during it ends the watch with the last verdict."""
        if self.sleep(seconds):
            raise WatchCancelled(self.verdict) from None

    def _counted(self, read: Callable[[], _T]) -> _T:
        """Make one source read, booking the API calls it made (also when it raised)."""
        before = self.source.calls
        try:
            return read()
        finally:
            self.budget.count_calls(before)

    # ---- steps of a poll ----
    def _read_service(self) -> None:
        """DescribeServices (or the answer the create/update call already gave)."""
        if self.have_first:
            self.have_first = False
            return
        self.svc = self._counted(self.source.service)
        self.last_answer = self.clock()
        self.unanswered = False

    def _extra_reads(self) -> None:
        """Target health, alarm states and stopped tasks, when the plan asks for them and the
        budget allows (an optional read that finds no budget is put off by one poll)."""
        plan = self._aux_plan()
        for kind in AUX_KINDS:
            if not plan.wants(kind):
                continue
            need = 2 if kind == "tasks" else 1  # ListTasks (+ DescribeTasks when new ones stopped)
            if kind == "targets" and plan.essential_targets:
                # Confirms success: goes out now (the slot kept free for it), cap permitting.
                wait = self.budget.cap_wait(need)
            else:
                wait = self.budget.wait(need)
                if wait > 0 and kind not in self.deferred:
                    self.deferred.add(kind)  # optional: put off by one poll at most
                    continue
            if wait > 0:
                self._pause(wait)
            self.deferred.discard(kind)
            self._counted(partial(self._read_aux, kind))

    def _read_aux(self, kind: AuxKind) -> None:
        if kind == "alarms":
            self.alarms = self.source.alarm_states()
            self._log_alarms(self.alarms)
        elif kind == "targets":
            self.targets = self.source.target_health()
            if self.targets is not None:
                self._log_targets(self.targets)
        else:
            self._log_stopped(self.source.stopped_tasks(self.our_id, self.known_tasks))

    def _report_changes(self) -> None:
        if self.svc is not None:
            self._log_events(self.svc)
            self._log_counts(self.svc)

    def _snapshot(self) -> Snapshot:
        return Snapshot(self.svc, tuple(self.targets) if self.targets is not None else None, self.alarms)

    def _assess(self) -> Verdict:
        return assess(self._snapshot(), self.our_id, before_ids=self.before_ids,
                      timers=self._timers(self.clock()), limits=self.limits)

    def _announce(self) -> None:
        """Say once that ECS is rolling back, and once that deployctl waits for it to."""
        v = self.verdict
        if v.status == ROLLING_BACK and "rollback" not in self.announced:
            self.announced.add("rollback")
            self.log(v.message)
        if v.waiting_for_ecs and "waiting" not in self.announced:
            self.announced.add("waiting")
            self.log(v.message)

    def _last_look(self) -> None:
        """One last look at what stopped, for the diagnosis (within the budget too)."""
        # Count from before the wait: a Ctrl-C during it leaves nothing to count.
        before = self.source.calls
        try:
            wait = self.budget.wait(4)
            if wait > 0:
                self._pause(wait)
            self._log_stopped(self.source.stopped_tasks(self.our_id, self.known_tasks))
            if self.limits.load_balanced and self.targets is None:
                self.targets = self.source.target_health()
            if self.alarm_prev:
                self.alarms = self.source.alarm_states()
                self._log_alarms(self.alarms)
        except Throttled:
            pass
        finally:
            self.budget.count_calls(before)

    def _wait_for_next_poll(self) -> None:
        near = near_completion(self.svc)
        since = self.clock() - self.start
        base = self.policy.interval(since, self.slow_polls, near)
        if not near and since >= self.policy.warmup:
            self.slow_polls += 1
        elif near:
            self.slow_polls = 0
        delay = self.policy.jittered(base, self.rng())
        # Budget: the next poll costs one DescribeServices; near completion behind a load
        # balancer keep a slot for the target-health read that confirms success.
        reserve = 1 if self.limits.load_balanced and near else 0
        delay = max(delay, self.budget.wait(1 + reserve))
        # Never sleep past the timeout: the last look and the verdict come when it runs out.
        self._pause(min(delay, _left(self.clock() - self.start, self.limits)))

    def _back_off(self, exc: Throttled) -> Verdict | None:
        """AWS throttled (or did not answer) a read: wait and retry. Past the timeout, the
        final verdict instead (None: keep polling)."""
        if exc.operation == "DescribeServices" and not exc.out_of_time:
            self.unanswered = True
        self.throttle_streak += 1
        self.result.throttled += 1
        delay = self.policy.throttle_delay(self.throttle_streak, self.rng())
        if exc.transient:
            self.log(f"AWS did not answer {exc.operation or 'a request'} ({exc}); retrying in {delay:.1f}s "
                     "(the deployment is not affected)")
        else:
            self.log(f"AWS is throttling {exc.operation or 'requests'}; retrying in {delay:.1f}s "
                     "(the deployment is not affected)")
        elapsed = self.clock() - self.start
        if elapsed > self.limits.timeout:
            if exc.operation == "DescribeServices" and self.unanswered:
                silent_for = self.clock() - (self.last_answer or self.start)
                return no_answer(exc, self.svc, self.our_id, silent_for, self.last_answer is not None,
                                 self.limits.timeout)
            return assess(self._snapshot(), self.our_id, before_ids=self.before_ids,
                          timers=Timers(elapsed=elapsed), limits=self.limits)
        self._pause(min(delay, _left(self.clock() - self.start, self.limits)))
        return None

    def _finish(self, verdict: Verdict) -> WatchResult:
        r = self.result
        r.verdict = verdict
        r.ended = self.clock()
        r.polls = self.polls
        r.calls = self.source.calls - self.calls0
        r.targets = self.targets
        r.alarms = dict(self.alarms)
        r.last_service = self.svc
        return r

    # ---- deciding on extra reads, and the timers ----
    def _aux_plan(self) -> AuxPlan:
        """Which auxiliary calls to make this poll: only when something changed, or every Nth poll
        (never periodically near completion: each call spent then delays noticing COMPLETED, what
        is left to happen - old tasks draining, bake time - shows in events, and ECS acts on
        alarms)."""
        svc = self.svc
        near = near_completion(svc)
        # Nothing extra on the first poll either: alarm states were read right before the
        # deployment started (alarms_at_start), target health matters once tasks run, stopped
        # tasks once something fails.
        every = not near and self.polls % max(1, self.policy.aux_every) == 0
        ours = svc.deployment(self.our_id) if svc is not None else None
        failed = ours.failed_tasks if ours else 0
        running = ours.running if ours else 0
        new_events = [e for e in (svc.events if svc is not None else ()) if e.id not in self.seen_events]
        text = " ".join(e.message for e in new_events)
        trouble = any(word in text for word in ("unhealthy", "failed", "unable"))
        in_progress = ours is not None and ours.rollout_state == "IN_PROGRESS"
        tasks = ours is not None and ((failed != self.last_failed_tasks and failed > 0) or trouble
                                      or (every and in_progress and not near))
        completed = ours is not None and ours.rollout_state == COMPLETED and ours.is_primary
        lb = self.limits.load_balanced
        targets = lb and (every or completed or running != self.last_running or "target" in text)
        alarms = bool(self.alarm_prev) and (every or "alarm" in text)
        self.last_failed_tasks = failed
        self.last_running = running
        return AuxPlan(targets=targets or (lb and "targets" in self.deferred),
                       alarms=alarms or "alarms" in self.deferred,
                       tasks=tasks or "tasks" in self.deferred,
                       essential_targets=completed and lb)

    def _timers(self, now: float) -> Timers:
        ours = self.svc.deployment(self.our_id) if self.svc is not None else None
        primary_failed = ours is not None and ours.is_primary and ours.rollout_state == "FAILED"
        self.failed_since = (self.failed_since or now) if primary_failed else None
        completed = ours is not None and ours.is_primary and ours.rollout_state == COMPLETED
        bad = False
        if completed and self.targets is not None:
            _, _, bad_list = target_counts(self.targets)
            bad = bool(bad_list)
        self.unhealthy_since = (self.unhealthy_since or now) if bad else None
        firing = any(state == "ALARM" and name not in self.alarms_at_start for name, state in self.alarms.items())
        self.alarm_since = (self.alarm_since or now) if firing and not primary_failed else None
        return Timers(
            elapsed=now - self.start,
            failed_for=0.0 if self.failed_since is None else now - self.failed_since,
            unhealthy_for=0.0 if self.unhealthy_since is None else now - self.unhealthy_since,
            alarm_for=0.0 if self.alarm_since is None else now - self.alarm_since,
        )

    # ---- logging of what changed ----
    def _log_events(self, svc: ServiceState) -> None:
        new = sorted((e for e in svc.events if e.id not in self.seen_events), key=lambda e: e.created_at)
        for e in new:
            self.seen_events.add(e.id)
            self.log(f"event: {e.message}")
        self.result.events.extend(new)

    def _log_counts(self, svc: ServiceState) -> None:
        key = tuple((d.id, d.status, d.rollout_state, d.desired, d.pending, d.running, d.failed_tasks)
                    for d in svc.deployments)
        if key == self.counts_prev:
            return
        self.counts_prev = key
        parts = []
        for d in svc.deployments:
            mark = "ours" if d.id == self.our_id else d.status.lower()
            parts.append(f"{td_label(d.task_definition)} [{mark}, {d.rollout_state or '?'}] " + d.counts_text())
        self.log("deployments: " + " | ".join(parts))

    def _log_targets(self, targets: list[Json]) -> None:
        now = {_target_key(t): _target_text(t) for t in targets}
        for key, text in now.items():
            if self.target_prev.get(key) != text:
                self.log(f"target {key}: {text}")
        for key in self.target_prev.keys() - now.keys():
            self.log(f"target {key}: deregistered")
        self.target_prev = now

    def _log_alarms(self, states: Mapping[str, str]) -> None:
        for name, state in sorted(states.items()):
            prev = self.alarm_prev.get(name)
            if prev != state:
                self.log(f"alarm {name}: {prev or '?'} → {state}")
        self.alarm_prev = dict(states)

    def _log_stopped(self, tasks: list[Json]) -> None:
        for task in sorted(tasks, key=lambda t: timestamp(t.get("stoppedAt"))):
            arn = str(task.get("taskArn"))
            if arn in self.known_tasks:
                continue
            self.known_tasks.add(arn)
            self.result.stopped_tasks.append(task)
            self.log(describe_stopped_task(task))


def watch(
    source: Source,
    started_deployment_id: str,
    *,
    policy: PollPolicy = PollPolicy(),
    limits: Limits | None = None,
    log: Callable[[str], None] = lambda line: None,
    before_ids: Iterable[str] = (),
    seen_events: Iterable[str] = (),
    alarms_at_start: Mapping[str, str] | None = None,
    cancelled: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], bool] | None = None,
    rng: Callable[[], float] = random.random,
    first_service: ServiceState | None = None,
) -> WatchResult:
    """Poll until our deployment's verdict is final; return it with what was seen.

    alarms_at_start: every deployment alarm's state when the deployment started. ECS ignores
    an alarm already in ALARM then, so the watcher's own alarm gate ignores those too; read
    them right before each deployment (a rollback included), never reuse older readings.
    sleep(seconds) returns True when cancelled (default: waits on `cancelled`). Raises
    WatchCancelled when cancelled; never raises for throttling (it backs off and retries).
    first_service: a description already fetched right after the update (saves a call).
    """
    if limits is None:
        limits = Limits(ecs_rollback_grace=policy.ecs_rollback_grace, health_gate=policy.health_gate,
                        alarm_grace=policy.alarm_grace)
    if sleep is None:
        sleep = cancelled.wait if cancelled is not None else _plain_sleep
    return _Watcher(source, started_deployment_id, policy=policy, limits=limits, log=log,
                    before_ids=before_ids, seen_events=seen_events, alarms_at_start=alarms_at_start,
                    cancelled=cancelled, clock=clock, sleep=sleep, rng=rng,
                    first_service=first_service).run()


def _plain_sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


def _left(elapsed: float, limits: Limits) -> float:
    """Seconds until just past the timeout (a poll then sees `elapsed > timeout`)."""
    return max(0.0, limits.timeout - elapsed) + 0.01


def no_answer(exc: Exception, last: ServiceState | None, our_id: str, silent_for: float, answered: bool,
              timeout: float) -> Verdict:
    """The verdict when the time ran out while AWS did not answer DescribeServices: nothing is
    known about the rollout since its last answer, so it says so (and what that answer showed)
    instead of guessing a cause from stale counts."""
    seen = ""
    if last is not None and answered:
        ours = last.deployment(our_id)
        if ours is not None:
            seen = (f"; its last answer, {silent_for:.0f}s ago, showed {td_label(ours.task_definition)} "
                    f"{ours.rollout_state or '?'} with {ours.counts_text()}")
    what = "throttled" if not getattr(exc, "transient", True) else "did not answer"
    return Verdict(FAILED, f"AWS {what} DescribeServices for {silent_for:.0f}s, until the {timeout:.0f}s "
                   f"timeout ran out: the state of the rollout is unknown{seen}", CAUSE_NO_ANSWER, our_id,
                   roll_back=True)


def with_timeout(limits: Limits, timeout: float) -> Limits:
    return replace(limits, timeout=timeout)

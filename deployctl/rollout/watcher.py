"""The polling loop around `assess()`: `watch()` polls a `Source` until the verdict is final.

The ECS target implements the Source with boto3; tests may use anything. It logs what a person
needs while waiting, keeps API calls bounded (policy.CallBudget), backs off on throttling and
returns the final verdict. `_Watcher` names each step of a poll (read, report, assess, extra
reads, back off, wait) and of its end (say the verdict, then the reads for the diagnosis). No AWS
imports: clock, sleep and randomness are injectable.

Why over 500 lines: the steps are `_Watcher` methods sharing one wait's state (deadlines, call
budget, what was already logged), and a fifth of it is the `_log_*` lines a person reads meanwhile.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, Protocol, TypeVar

from deployctl.adapters.ecs_gateway import COMPLETED, ServiceEvent, ServiceState, Task
from deployctl.adapters.elb_gateway import TargetHealth
from deployctl.rollout.policy import CallBudget, PollPolicy
from deployctl.rollout.verdict import (
    CAUSE_ALARM,
    CAUSE_NO_ANSWER,
    CAUSE_REPLACED,
    CAUSE_SERVICE_GONE,
    CAUSE_TIMEOUT,
    CAUSE_VANISHED,
    FAILED,
    IN_PROGRESS,
    ROLLING_BACK,
    AlarmInfo,
    Limits,
    Snapshot,
    Timers,
    Verdict,
    assess,
    near_completion,
    target_counts,
    td_label,
)

_T = TypeVar("_T")


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

    def stopped_tasks(self, deployment_id: str, known: set[str]) -> list[Task]:
        """Stopped tasks of the deployment that are not in `known` (task ARNs)."""
        ...

    def target_health(self) -> list[TargetHealth] | None:
        """Target health of the service's target groups; None when it has none."""
        ...

    def alarm_states(self) -> dict[str, str]: ...

    def alarm_details(self) -> dict[str, AlarmInfo]:
        """State, reason and metric of each alarm as the last alarm_states() call read them
        (no API call)."""
        ...


@dataclass
class WatchResult:
    verdict: Verdict
    polls: int = 0
    calls: int = 0
    throttled: int = 0
    started: float = 0.0  # clock() at start
    ended: float = 0.0
    stopped_tasks: list[Task] = field(default_factory=list)
    events: list[ServiceEvent] = field(default_factory=list)  # new events seen, oldest first
    targets: list[TargetHealth] | None = None
    alarms: dict[str, str] = field(default_factory=dict)
    # The alarms in ALARM when a failure involved one, as DescribeAlarms described them.
    alarms_firing: list[AlarmInfo] = field(default_factory=list)
    last_service: ServiceState | None = None
    decided: float = 0.0  # clock() when the verdict was known (before the reads for the diagnosis)
    # The stopped tasks were not read after the last failures (no call budget left before
    # deployctl's own rollback): the caller reads them once the rollback is out.
    tasks_unread: bool = False

    @property
    def duration(self) -> float:
        return self.ended - self.started


def describe_stopped_task(task: Task) -> str:
    """One line per stopped task: id, stopCode, stoppedReason, container exit codes/reasons/health."""
    tid = (task.arn or "?").rsplit("/", 1)[-1][:12]
    return f"task {tid} stopped{_stop_text(task)}"


def describe_stopped_tasks(tasks: Iterable[Task]) -> list[str]:
    """One line per distinct stop: tasks that stopped the same way (stopCode, reason, exit codes)
    are said once, counted ("4 tasks stopped (EssentialContainerExited); …"), in order of first stop."""
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        groups.setdefault(_stop_text(task), []).append(task)
    return [describe_stopped_task(same[0]) if len(same) == 1 else f"{len(same)} tasks stopped{text}"
            for text, same in groups.items()]


def _stop_text(task: Task) -> str:
    """How a task stopped, without its id: " (stopCode); reason; container …"."""
    parts = [f" ({task.stop_code})" if task.stop_code else ""]
    if task.stopped_reason:
        parts.append(task.stopped_reason)
    for c in task.containers:
        bits = []
        if c.exit_code is not None:
            bits.append(f"exit {c.exit_code}")
        if c.reason and c.reason != task.stopped_reason:
            bits.append(c.reason)
        if c.health_status and c.health_status != "UNKNOWN":
            bits.append(f"health {c.health_status}")
        if bits:
            parts.append(f"container {c.name or '?'}: " + ", ".join(bits))
    if task.health_status == "UNHEALTHY":
        parts.append("task health UNHEALTHY")
    return "; ".join(parts)


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

    read the service → report what changed → assess the newest answer → (final: tell the
    caller at once, then the few reads the diagnosis needs) or the extra reads this poll plans
    (targets, alarms, stopped tasks), assess again, and wait for the next poll. Throttling at
    any read goes to `_back_off`, which also ends the watch once the timeout has passed.
    """

    def __init__(self, source: Source, our_id: str, *, policy: PollPolicy, limits: Limits,
                 log: Callable[[str], None], before_ids: Iterable[str], seen_events: Iterable[str],
                 alarms_at_start: Mapping[str, str] | None, cancelled: threading.Event | None,
                 clock: Callable[[], float], sleep: Callable[[float], bool], rng: Callable[[], float],
                 first_service: ServiceState | None, started: float | None,
                 on_verdict: Callable[[Verdict], None] | None, budget: CallBudget | None) -> None:
        self.source, self.our_id, self.policy, self.limits = source, our_id, policy, limits
        self.log, self.cancelled, self.clock, self.sleep, self.rng = log, cancelled, clock, sleep, rng
        self.before_ids = frozenset(before_ids)
        self.seen_events = set(seen_events)
        self.alarm_prev: dict[str, str] = dict(alarms_at_start or {})
        self.alarms_at_start = {k for k, v in (alarms_at_start or {}).items() if v == "ALARM"}
        self.budget = budget if budget is not None else CallBudget(policy, clock)
        self.start = clock()
        # The timeout counts from `started` (a deploy's start, preflight and earlier waves
        # included), not from when this watch began.
        self.t0 = self.start if started is None else started
        self.on_verdict = on_verdict
        if first_service is not None and budget is None:
            # The caller's create/update call just answered with this description: count it (a
            # caller that shares its budget books its own calls).
            self.budget.book(1)
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
        self.targets: list[TargetHealth] | None = None
        self.known_tasks: set[str] = set()
        # Change tracking for the log and for deciding on extra reads.
        self.target_prev: dict[str, str] = {}
        self.counts_prev: tuple[tuple[str, str, str, int, int, int, int], ...] | None = None
        self.deferred: set[AuxKind] = set()
        self.announced: set[str] = set()
        self.last_failed_tasks = -1
        self.failed_seen = 0  # the most failed tasks our deployment showed
        self.last_running = -1
        self.tasks_read_at: int | None = None  # our failedTasks when stopped tasks were last read
        self._trouble_since_tasks = False  # an event spoke of failures since that read
        # Timers across polls (assess keeps no state).
        self.failed_since: float | None = None
        self.unhealthy_since: float | None = None
        self.alarm_since: float | None = None
        self.firing_seen: dict[str, AlarmInfo] = {}  # alarms seen in ALARM during the watch

    # ---- the loop ----
    def run(self) -> WatchResult:
        while True:
            self._check_cancelled()
            self.polls += 1
            try:
                self._read_service()
                self.throttle_streak = 0
                # Planned from what this answer shows new (events, counts), before it is logged.
                plan = self._aux_plan()
                self._report_changes()
                # The newest answer is judged first: a terminal state is reported at once,
                # never behind reads that only add detail.
                self.verdict = self._assess()
                if self._fast():
                    # Polls are 2 s apart now, the whole call budget: an optional read would push
                    # the next DescribeServices back. What the diagnosis needs is read after the
                    # verdict instead; only the read that confirms success goes out, and, once,
                    # the alarms when a failure involves one (they may be OK again by the end).
                    # Also the periodic alarm reads while deployctl's own alarm gate is the only
                    # one (ECS checks no alarm for a deployment that started with one in ALARM).
                    gate = bool(self.alarms_at_start) and plan.alarms
                    plan = AuxPlan(targets=plan.essential_targets, essential_targets=plan.essential_targets,
                                   alarms=gate or self._alarms_for_failure() or "alarms" in self.deferred)
                if not self.verdict.final and self._extra_reads(plan):
                    self.verdict = self._assess()  # e.g. the target-health read confirms success
            except Throttled as exc:
                ended = self._back_off(exc)
                if ended is not None:
                    return self._finish(ended)
                continue
            self._announce()
            if self.verdict.final:
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
        before, sent = self.source.calls, self.clock()
        try:
            return read()
        finally:
            self.budget.book(self.source.calls - before, at=sent)

    # ---- steps of a poll ----
    def _read_service(self) -> None:
        """DescribeServices (or the answer the create/update call already gave)."""
        if self.have_first:
            self.have_first = False
            return
        self.svc = self._counted(self.source.service)
        self.last_answer = self.clock()
        self.unanswered = False

    def _extra_reads(self, plan: AuxPlan) -> bool:
        """Target health, alarm states and stopped tasks, when the plan asks for them and the
        budget allows (an optional read that finds no budget is put off by one poll). Never
        waits past the timeout. True when something was read."""
        made = False
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
            if wait > 0 and wait >= self._left():
                self.deferred.add(kind)  # the timeout comes first: it decides, not this read
                continue
            if wait > 0:
                self._pause(wait)
            self.deferred.discard(kind)
            self._counted(partial(self._read_aux, kind))
            made = True
        return made

    def _read_aux(self, kind: AuxKind) -> None:
        if kind == "alarms":
            self.alarms = self.source.alarm_states()
            self._log_alarms(self.alarms)
            self._remember_firing()
        elif kind == "targets":
            self.targets = self.source.target_health()
            if self.targets is not None:
                self._log_targets(self.targets)
        else:
            self._read_stopped()

    def _read_stopped(self) -> None:
        ours = self.svc.deployment(self.our_id) if self.svc is not None else None
        failed = ours.failed_tasks if ours is not None else self.last_failed_tasks
        self._log_stopped(self.source.stopped_tasks(self.our_id, self.known_tasks))
        self.tasks_read_at = failed
        self._trouble_since_tasks = False

    def _report_changes(self) -> None:
        if self.svc is not None:
            self._log_events(self.svc)
            self._log_counts(self.svc)

    def _snapshot(self) -> Snapshot:
        return Snapshot(self.svc, tuple(self.targets) if self.targets is not None else None, self.alarms,
                        firing=tuple(self.result.alarms_firing))

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

    def _closing_reads(self, verdict: Verdict) -> None:
        """After a failure is known (and reported): only the reads its diagnosis still lacks -
        stopped tasks not read since our failed-task count last changed, the alarms when one
        was involved (to name it with its reason and metric), target health never read. Each
        goes out at once if the call cap allows; when deployctl must roll back itself nothing
        waits for budget (the rollback comes first), else a read waits at most one fast poll."""
        if verdict.cause in _NOTHING_TO_LEARN:
            return  # AWS is silent, or the deployment is someone else's now
        ours = self.svc.deployment(self.our_id) if self.svc is not None else None
        failed = ours.failed_tasks if ours is not None else max(self.last_failed_tasks, 0)
        reads: list[tuple[int, Callable[[], None]]] = []
        if self.tasks_read_at is None or failed != self.tasks_read_at or self._trouble_since_tasks:
            reads.append((2, self._read_stopped))
        if self.alarm_prev and not self.result.alarms_firing and _alarm_involved(verdict, self.result.events):
            reads.append((1, self._read_alarms_firing))
        if self.limits.load_balanced and self.targets is None:
            reads.append((1, self._read_targets))
        # The verdict is said already; deployctl's own rollback comes before any of these (the
        # caller reads what is left after its rollback went out: WatchResult.tasks_unread).
        patience = 0.0 if verdict.roll_back else 2.5 * self.policy.fast
        keep = 1 if verdict.roll_back else 0  # room for the rollback's UpdateService
        for need, read in reads:
            wait = self.budget.cap_wait(need + keep)
            if wait > patience:
                if read == self._read_stopped:
                    self.result.tasks_unread = True
                continue
            if wait > 0:
                self._pause(wait)
            try:
                self._counted(read)
            except Throttled:
                continue  # the verdict stands; the diagnosis goes by what was seen

    def _read_alarms_firing(self) -> None:
        self.alarms = self.source.alarm_states()
        self._log_alarms(self.alarms)
        self._remember_firing()
        self.result.alarms_firing = [self.firing_seen[name] for name in sorted(self.firing_seen)]

    def _remember_firing(self) -> None:
        """Keep every alarm seen in ALARM during the watch as DescribeAlarms described it then: an
        alarm that fired, made ECS roll back and went back to OK before the rollback ended is
        still the cause, named with its metric and reason."""
        details = self.source.alarm_details()
        for name, state in self.alarms.items():
            if state == "ALARM" and name not in self.alarms_at_start:
                self.firing_seen[name] = details.get(name) or AlarmInfo(name, state)

    def _alarms_for_failure(self) -> bool:
        """Read the alarms now (once): ECS is failing or rolling back our deployment because of
        an alarm, which is in ALARM now but may be OK again when the rollback ends."""
        v = self.verdict
        if not self.alarm_prev or self.firing_seen or "failure-alarms" in self.announced:
            return False
        if v.status != ROLLING_BACK and not v.waiting_for_ecs:
            return False
        if not _alarm_involved(v, self.result.events):
            return False
        self.announced.add("failure-alarms")
        return True

    def _read_targets(self) -> None:
        self.targets = self.source.target_health()

    def _wait_for_next_poll(self) -> None:
        near = self._fast()
        since = self.clock() - self.start
        base = self.policy.interval(since, self.slow_polls, near)
        if not near and since >= self.policy.warmup:
            self.slow_polls += 1
        elif near:
            self.slow_polls = 0
        delay = self.policy.jittered(base, self.rng())
        # Budget: the next poll costs one DescribeServices; near completion behind a load
        # balancer keep a slot for the target-health read that confirms success.
        reserve = 1 if self.limits.load_balanced and near_completion(self.svc) else 0
        delay = max(delay, self.budget.wait(1 + reserve))
        # Never sleep past the timeout: the poll right after it gives the verdict.
        self._pause(min(delay, self._left()))

    def _fast(self) -> bool:
        """Poll every fast interval, DescribeServices only: the rollout can end at any poll (ECS
        can fail it - breaker or alarms on -, it is failing, or completion is near)."""
        return self.limits.can_fail or near_completion(self.svc) or self._imminent()

    def _imminent(self) -> bool:
        """A failure can end the rollout at any poll now: ECS is rolling back, our deployment
        shows FAILED (ECS may start its rollback), or the circuit breaker is counting failed
        tasks. Poll fast, so the end is seen within one fast interval."""
        if self.verdict.status == ROLLING_BACK or self.verdict.waiting_for_ecs:
            return True
        ours = self.svc.deployment(self.our_id) if self.svc is not None else None
        return ours is not None and ours.failed_tasks > 0

    def _left(self) -> float:
        """Seconds until just past the timeout (a poll then sees `elapsed > timeout`)."""
        return _left(self.clock() - self.t0, self.limits)

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
        elapsed = self.clock() - self.t0
        if elapsed > self.limits.timeout:
            if exc.operation == "DescribeServices" and self.unanswered:
                silent_for = self.clock() - (self.last_answer or self.start)
                return no_answer(exc, self.svc, self.our_id, silent_for, self.last_answer is not None,
                                 self.limits.timeout)
            return assess(self._snapshot(), self.our_id, before_ids=self.before_ids,
                          timers=Timers(elapsed=elapsed), limits=self.limits)
        self._pause(min(delay, self._left()))
        return None

    def _finish(self, verdict: Verdict) -> WatchResult:
        r = self.result
        r.decided = self.clock()
        if verdict.status == FAILED:
            verdict = self._name_alarms(verdict)
        if self.on_verdict is not None:
            self.on_verdict(verdict)  # said now; the reads below only add to what was seen
        if verdict.status == FAILED:
            self._closing_reads(verdict)
        elif verdict.ok and self.failed_seen > (self.tasks_read_at or 0):
            # Some tasks failed on the way (not read while polls were fast): say why. Success is
            # already said; this waits for the call cap a little over two fast polls at most.
            wait = self.budget.cap_wait(2)
            if wait <= 2.5 * self.policy.fast:
                self._pause(wait)
                with contextlib.suppress(Throttled):
                    self._counted(self._read_stopped)
        r.verdict = verdict
        r.ended = self.clock()
        r.polls = self.polls
        r.calls = self.source.calls - self.calls0
        r.targets = self.targets
        r.alarms = dict(self.alarms)
        r.last_service = self.svc
        return r

    def _name_alarms(self, verdict: Verdict) -> Verdict:
        """An alarm failure names the alarms in ALARM (state reason, metric): one DescribeAlarms,
        sent only if the call cap allows it right now (it never delays the verdict)."""
        if verdict.cause in _NOTHING_TO_LEARN or not self.alarm_prev:
            return verdict
        if not _alarm_involved(verdict, self.result.events):
            return verdict
        if self.firing_seen:  # read while ECS rolled back: no call needed (it may be OK by now)
            self.result.alarms_firing = [self.firing_seen[name] for name in sorted(self.firing_seen)]
        elif self.budget.cap_wait(1) > 0:
            return verdict
        else:
            try:
                self._counted(self._read_alarms_firing)
            except Throttled:
                return verdict
        again = self._assess() if verdict.cause != CAUSE_TIMEOUT else verdict
        # Judged on the same answer, only the wording can change; keep the first verdict otherwise.
        if again.status == verdict.status and again.cause == verdict.cause:
            return again
        return verdict

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
        if trouble:
            self._trouble_since_tasks = True
        in_progress = ours is not None and ours.rollout_state == "IN_PROGRESS"
        tasks = ours is not None and ((failed != self.last_failed_tasks and failed > 0) or trouble
                                      or (every and in_progress and not near))
        completed = ours is not None and ours.rollout_state == COMPLETED and ours.is_primary
        lb = self.limits.load_balanced
        targets = lb and (every or completed or running != self.last_running or "target" in text)
        alarms = bool(self.alarm_prev) and (every or "alarm" in text)
        self.last_failed_tasks = failed
        self.failed_seen = max(self.failed_seen, failed)
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
            elapsed=now - self.t0,
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

    def _log_targets(self, targets: list[TargetHealth]) -> None:
        now = {t.key: t.text() for t in targets}
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

    def _log_stopped(self, tasks: list[Task]) -> None:
        new = []
        for task in sorted(tasks, key=lambda t: t.stopped_at):
            arn = task.arn
            if arn in self.known_tasks:
                continue
            self.known_tasks.add(arn)
            self.result.stopped_tasks.append(task)
            new.append(task)
        for line in describe_stopped_tasks(new):  # the same stop reason once, counted
            self.log(line)


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
    started: float | None = None,
    on_verdict: Callable[[Verdict], None] | None = None,
    budget: CallBudget | None = None,
) -> WatchResult:
    """Poll until our deployment's verdict is final; return it with what was seen.

    alarms_at_start: every deployment alarm's state when the deployment started. ECS ignores
    an alarm already in ALARM then, so the watcher's own alarm gate ignores those too; read
    them right before each deployment (a rollback included), never reuse older readings.
    sleep(seconds) returns True when cancelled (default: waits on `cancelled`). Raises
    WatchCancelled when cancelled; never raises for throttling (it backs off and retries).
    first_service: a description already fetched right after the update (saves a call).
    started: clock() value the timeout counts from (default: now).
    on_verdict(verdict): called the moment the final verdict is known, before the reads that
    only add to what was seen (a failure's stopped tasks and the alarms that fired), so it is
    said without delay.
    budget: the deploy's call budget, shared with what else it calls (the update, the diagnosis,
    its own rollback and that rollback's watch), which the caller books; default: a budget of
    this watch's own (the update that answered with first_service counted in it).
    """
    if limits is None:
        limits = Limits(ecs_rollback_grace=policy.ecs_rollback_grace, health_gate=policy.health_gate,
                        alarm_grace=policy.alarm_grace)
    if sleep is None:
        sleep = cancelled.wait if cancelled is not None else _plain_sleep
    return _Watcher(source, started_deployment_id, policy=policy, limits=limits, log=log,
                    before_ids=before_ids, seen_events=seen_events, alarms_at_start=alarms_at_start,
                    cancelled=cancelled, clock=clock, sleep=sleep, rng=rng,
                    first_service=first_service, started=started, on_verdict=on_verdict,
                    budget=budget).run()


def _plain_sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


# Failures after which reading more from AWS explains nothing.
_NOTHING_TO_LEARN = (CAUSE_NO_ANSWER, CAUSE_SERVICE_GONE, CAUSE_REPLACED, CAUSE_VANISHED)


def _alarm_involved(verdict: Verdict, events: Iterable[ServiceEvent]) -> bool:
    """The failure came from a deployment alarm (ECS's reason or event, or deployctl's gate)."""
    if verdict.cause == CAUSE_ALARM or "alarm" in verdict.message.lower():
        return True
    return any("alarm detected" in e.message for e in events)


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

"""A SIMULATION of Amazon ECS rolling-update rollouts, patched into moto's in-process backend.

This is not AWS and not a reimplementation of the ECS scheduler: it is a small, time-driven
model of what the ECS deployment controller shows through the API while it replaces tasks,
written from the AWS documentation summarised in ``docs/ecs-rollouts.md``:

- https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Deployment.html
- https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-circuit-breaker.html
- https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html
- https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-deployment.html
- https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-event-messages.html
- https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html
- https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-error-codes.html
- https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetHealth.html
- https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_HealthCheck.html
- https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html
- https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_StopTask.html (SIGTERM, then SIGKILL)

moto 5.2.1 never advances a rollout (UpdateService adds no deployment, no events, no tasks,
DescribeTargetHealth is always ``healthy``). ``RolloutSimulation.install()`` patches moto's ECS
responses, ELBv2 target health and the server's WSGI entry point (see ``moto_patches`` and
``api_hooks``) so that a real ``ThreadedMotoServer`` in the test process serves rollouts to any
boto3 client, including a CLI running in a subprocess. All state lives in the server process.

How time works: nothing runs in the background. Every service keeps a queue of timed steps
(task reaches RUNNING, passes health checks, fails, finishes draining, bake time ends). Each
DescribeServices / ListTasks / DescribeTasks / DescribeTargetHealth (and Create/Update/Delete
Service) first processes all steps due by ``now``, in time order, re-running the scheduler after
each. A step takes effect at its scheduled time, not at the time a client happens to look, so
``completed_at`` is the instant the simulated deployment reached COMPLETED/FAILED and a benchmark
can measure how late a watcher noticed. Phase durations come from ``Scenario`` (seconds; tests use
~0.1-0.3 s where AWS takes minutes).

The clock follows ``time.monotonic()`` unless it is frozen: ``freeze()`` stops it, ``step()``
moves it to the next scheduled step, ``run_until(condition)`` steps until a condition holds and
``thaw()`` lets it run on from where it stopped. A test whose assertion is about ORDER (a state
that lasts one phase, an event injected mid-rollout) steps the frozen clock, or freezes it at a
known point with ``freeze_on("UpdateService")``, instead of racing sub-second phases with sleeps:
on a loaded machine a sleep can outlast a whole phase.

Behaviours docs/ecs-rollouts.md marks "not confirmed" (no AWS source), and what this simulation does:

- INACTIVE deployments are not returned: fully drained ACTIVE/FAILED entries disappear from
  ``deployments[]`` (kept internally, still rollback targets).
- Crash-looping tasks (``EssentialContainerExited`` after RUNNING) are not listed by the breaker
  docs: the simulation counts each as a failed task (like a stage-2 health-check replacement).
- The alarm-failure ``rolloutStateReason`` is not confirmed: ``ALARM_FAILED_REASON`` below; the
  alarm rollback reason reuses the breaker wording (``ALARM_ROLLBACK_REASON``). Only the event
  ``deployment failed: alarm detected.`` is observed.
- Container health-check replacement stopCode: ``ServiceSchedulerInitiated`` (not confirmed).
- Multi-task separators in events: ``(task a) (task b)``.
- What a superseded PRIMARY shows when a new deployment starts mid-rollout: it becomes ACTIVE
  and keeps its rolloutState; an ACTIVE deployment that had COMPLETED stays COMPLETED.
- On rollback the revived deployment keeps its id and ``createdAt``, gets desiredCount = service
  desired; the failed one gets desiredCount 0 and drains; the service ``taskDefinition`` goes back
  to the revived one. A failure during a rollback, or with no COMPLETED deployment to revive (first
  deploy), leaves the failed deployment PRIMARY+FAILED launching nothing (the documented stall).
- Which ListServiceDeployments lifecycle stages a rolling update passes through is not confirmed;
  those APIs are not simulated (moto 5.2.1 lacks them).
- Bake time: ECS derives it from the alarm configuration; here it is ``Scenario.bake_s`` and
  only applies when ``deploymentConfiguration.alarms.enable`` is true. Alarms are watched during
  the rollout and the bake time; the failure is dated at the alarm's ``StateUpdatedTimestamp``
  (ECS polls, so real detection lags by up to a poll interval).
- ``thresholdConfiguration`` (not in botocore 1.43.11) is honoured if present in the stored
  ``deploymentCircuitBreaker`` dict; otherwise BOUNDED_PERCENT 50 (clamped [3, 200]).
- A FAILED deployment launches no new tasks and stops none of the old ones; failures reported
  after the FAILED transition no longer increase ``failedTasks``.

Tasks ECS stops while they run (old tasks drained after a deployment, new tasks a rollback scales
in, tasks of a superseded deployment, tasks replaced for failing health checks, StopTask,
DeleteService) go DEACTIVATING -> STOPPED after ``drain_s``. What they show, and on what basis:

- documented/observed (docs/ecs-rollouts.md, "Service events and stopped tasks"): a scheduler stop has stopCode
  ``ServiceSchedulerInitiated``; a task replaced by a deployment or scale-in has stoppedReason
  ``Scaling activity initiated by (deployment ecs-svc/N)``. Which deployment N names is not
  confirmed: here the one doing the scaling (the new PRIMARY, or the revived deployment during a
  rollback). StopTask gives ``UserInitiated`` and the caller's reason.
- documented (StopTask API reference, not in docs/ecs-rollouts.md): stopping a task is the equivalent
  of ``docker stop`` on its containers: SIGTERM, then SIGKILL once the stop timeout (default 30 s)
  has passed without the container exiting.
- assumed (no AWS source gives the exitCode of a stopped service task): every container that
  was running reports ``exitCode`` 143 (128 + SIGTERM: the signal ended it), or 137 (128 +
  SIGKILL) when ``Scenario.ignores_sigterm`` is set for the deployment the task belongs to. A
  real app may trap SIGTERM and exit with any code (often 0); the simulation never does. Ignoring
  SIGTERM does not lengthen the stop here (the stop timeout is not simulated; ``drain_s`` is the
  whole stop time), and a scheduler stop never sets a container ``reason``.

Deliberate simplifications: one ECS-scheduler decision per simulated step (min/max percent are
respected, placement always succeeds, no start back-off delay), task state visible as
PROVISIONING -> PENDING -> RUNNING -> DEACTIVATING -> STOPPED, target IDs are task private IPs
(``ip`` target type), events are not rate-suppressed except the once-per-deployment warnings.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

KINDS = ("success", "tasks_fail_to_start", "unhealthy_targets", "crash", "oom", "stall")

BREAKER_FAILED_REASON = "ECS deployment circuit breaker: tasks failed to start."
BREAKER_ROLLBACK_REASON = "ECS deployment circuit breaker: rolling back to deploymentId {target}."
# Not confirmed by any source (see module docstring): the simulation's choice.
ALARM_FAILED_REASON = "ECS deployment alarm: alarm detected."
ALARM_ROLLBACK_REASON = BREAKER_ROLLBACK_REASON

DEFAULT_DEPLOYMENT_CONFIGURATION: dict[str, Any] = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}

MAX_EVENTS = 100

# Exit codes of a container ECS stopped (assumed, see the module docstring): 128 + signal number.
SIGTERM_EXIT = 143
SIGKILL_EXIT = 137


@dataclass(frozen=True)
class Scenario:
    """How the tasks of one deployment behave. Durations are seconds of simulated time.

    kind:
      success             tasks start, pass health checks; the rollout completes.
      tasks_fail_to_start tasks stop before RUNNING (stopCode TaskFailedToStart); ``failure``
                          picks the reason: "image" (CannotPullContainerError) or "secrets"
                          (ResourceInitializationError); ``stopped_reason`` overrides the text.
      unhealthy_targets   tasks run but fail ELB health checks (``health_codes``), or container
                          health checks when the service has no load balancer.
      crash / oom         essential container exits after RUNNING (exit ``exit_code`` or 1 /
                          137 + OutOfMemoryError).
      stall               never finishes: ``stuck="health"`` tasks run but never turn healthy;
                          ``stuck="pending"`` tasks never leave PENDING.
    fail_tasks: only the first N tasks of the deployment misbehave, later ones succeed.
    ignores_sigterm: the deployment's containers ignore SIGTERM, so when ECS stops one of its
                     running tasks (scale-in, rollback, health-check replacement, StopTask) the
                     container is SIGKILLed: exitCode 137 instead of 143 (see module docstring).
    """

    kind: str = "success"
    start_s: float = 0.3  # launch -> RUNNING (PROVISIONING for the first half, then PENDING)
    healthy_s: float = 0.3  # RUNNING -> healthy (target healthy / container HEALTHY / grace)
    fail_s: float = 0.3  # launch -> TaskFailedToStart; RUNNING -> crash/oom exit
    drain_s: float = 0.2  # deregistration delay / stop time of a replaced task
    bake_s: float = 0.3  # steady state -> COMPLETED when deployment alarms are enabled
    failure: str = "image"
    stopped_reason: str | None = None
    exit_code: int | None = None
    health_codes: str = "502"
    fail_tasks: int | None = None
    stuck: str = "health"
    ignores_sigterm: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown scenario kind {self.kind!r}; expected one of {KINDS}")
        if self.failure not in ("image", "secrets"):
            raise ValueError("failure must be 'image' or 'secrets'")
        if self.stuck not in ("health", "pending"):
            raise ValueError("stuck must be 'health' or 'pending'")


class ApiCall(NamedTuple):
    """One request that reached the moto server while the simulation was installed."""

    service: str  # boto3 client name: ecs, elbv2, cloudwatch, s3, ...
    action: str  # API operation name: DescribeServices, ...
    monotonic: float
    wall: float

    @property
    def iam_action(self) -> str:
        """The IAM action that authorises this call (service prefix differs for ELB; a few S3
        operations map to differently named actions; everything else is prefix:Operation)."""
        prefix = {"elbv2": "elasticloadbalancing", "elb": "elasticloadbalancing"}.get(self.service, self.service)
        action = _IAM_RENAMES.get((self.service, self.action), self.action)
        return f"{prefix}:{action}"


_IAM_RENAMES = {
    ("s3", "ListObjectsV2"): "ListBucket",
    ("s3", "ListObjects"): "ListBucket",
    ("s3", "HeadBucket"): "ListBucket",
    ("s3", "HeadObject"): "GetObject",
    ("s3", "ListObjectVersions"): "ListBucketVersions",
}


class Outcome(NamedTuple):
    """A deployment reaching a terminal rollout state, at simulated time."""

    cluster: str
    service: str
    deployment_id: str
    rollout_state: str  # COMPLETED | FAILED
    reason: str
    monotonic: float
    wall: float


@dataclass
class SimTask:
    id: str
    arn: str
    deployment_id: str
    task_definition_arn: str
    fate: str  # ok | fail_start | unhealthy | crash | oom | stall_health | stall_pending
    created_at: float
    ip: str
    eni: str
    last_status: str = "PROVISIONING"
    desired_status: str = "RUNNING"
    healthy: bool = False
    unhealthy: bool = False
    fail_reason: str | None = None  # stoppedReason for a task already counted as failed
    target_state: str | None = None  # initial | healthy | unhealthy | draining | None
    started_at: float | None = None
    stopping_at: float | None = None
    stopped_at: float | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    container_reason: str | None = None
    exit_code: int | None = None
    signalled: bool = False  # stopped by ECS while running: every container got SIGTERM (+ SIGKILL)
    health_status: str = "UNKNOWN"
    version: int = 1

    @property
    def live(self) -> bool:
        return self.desired_status == "RUNNING"

    @property
    def gone(self) -> bool:
        return self.last_status == "STOPPED"


@dataclass
class SimDeployment:
    id: str
    task_definition: str
    scenario: Scenario
    created_at: float
    desired_count: int
    launch_type: str | None = None
    capacity_provider_strategy: list[dict[str, Any]] | None = None
    platform_version: str | None = None
    network_configuration: dict[str, Any] | None = None
    status: str = "PRIMARY"
    rollout_state: str = "IN_PROGRESS"
    rollout_state_reason: str = ""
    failed_tasks: int = 0
    updated_at: float = 0.0
    misbehaved: int = 0
    ever_completed: bool = False
    completed_at: float | None = None  # simulated monotonic time of COMPLETED/FAILED
    completed_wall: float | None = None
    failed_cause: str | None = None  # breaker | alarm
    is_rollback: bool = False
    alarm_checks_disabled: bool = False
    bake_until: float | None = None
    linger_until: float | None = None  # a FAILED deployment stays visible at least this long
    warned: set[str] = field(default_factory=set)

    def touch(self, t: float) -> None:
        self.updated_at = max(self.updated_at, t)

    def next_fate(self) -> str:
        sc = self.scenario
        if sc.kind == "success" or (sc.fail_tasks is not None and self.misbehaved >= sc.fail_tasks):
            return "ok"
        self.misbehaved += 1
        return {
            "tasks_fail_to_start": "fail_start",
            "unhealthy_targets": "unhealthy",
            "crash": "crash",
            "oom": "oom",
            "stall": "stall_" + sc.stuck,
        }[sc.kind]


def new_deployment_id() -> str:
    # Observed ids are ecs-svc/ followed by a 19-digit decimal (fits a signed 64-bit int).
    return f"ecs-svc/{random.randint(10**18, 2**63 - 1)}"


class SimService:
    """Simulated controller state of one ECS service (its deployments, tasks and events)."""

    def __init__(self, sim: RolloutSimulation, account: str, region: str, backend: Any, moto_service: Any):
        self.sim = sim
        self.account = account
        self.region = region
        self.backend = backend
        self.moto = moto_service
        self.cluster: str = moto_service.cluster_name
        self.name: str = moto_service.name
        self.deployments: list[SimDeployment] = []
        self.tasks: dict[str, SimTask] = {}
        self.events: list[dict[str, Any]] = []
        self.queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self.clock = sim.now()
        self.deleted = False
        self.steady = False

    # ---- configuration read from moto's Service object (UpdateService may change it) ----
    @property
    def desired(self) -> int:
        return int(self.moto.desired_count or 0)

    @property
    def dconf(self) -> dict[str, Any]:
        return getattr(self.moto, "deployment_configuration", None) or DEFAULT_DEPLOYMENT_CONFIGURATION

    @property
    def breaker(self) -> dict[str, Any]:
        return self.dconf.get("deploymentCircuitBreaker") or {}

    @property
    def alarms(self) -> dict[str, Any]:
        return self.dconf.get("alarms") or {}

    @property
    def load_balancers(self) -> list[dict[str, Any]]:
        return [lb for lb in (self.moto.load_balancers or []) if lb.get("targetGroupArn")]

    def breaker_threshold(self) -> int:
        cfg = self.breaker.get("thresholdConfiguration") or {}
        kind = cfg.get("type", "BOUNDED_PERCENT")
        value = float(cfg.get("value", 50))
        if kind == "COUNT":
            return max(1, int(value))
        n = math.ceil(value / 100.0 * self.desired)
        if kind == "UNBOUNDED_PERCENT":
            return max(1, n)
        return min(200, max(3, n))

    # ---- helpers ----
    @property
    def visible(self) -> list[SimDeployment]:
        shown = [d for d in self.deployments if d.status != "INACTIVE"]
        return sorted(shown, key=lambda d: (d.status != "PRIMARY", -d.created_at))

    def primary(self) -> SimDeployment | None:
        return next((d for d in self.deployments if d.status == "PRIMARY"), None)

    def deployment(self, deployment_id: str) -> SimDeployment | None:
        return next((d for d in self.deployments if d.id == deployment_id), None)

    def tasks_of(self, d: SimDeployment) -> list[SimTask]:
        return [t for t in self.tasks.values() if t.deployment_id == d.id]

    def schedule(self, at: float, fn: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self.queue, (at, next(self.sim._seq), fn, args))

    def event(self, t: float, message: str) -> None:
        self.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": self.sim.wall_dt(t), "message": message})
        del self.events[MAX_EVENTS:]

    def task_definition(self, arn: str) -> Any:
        try:
            return self.backend.describe_task_definition(arn)
        except Exception:  # deregistered/deleted revisions still run in ECS
            return None

    # ---- time ----
    def advance(self, now: float) -> None:
        while not self.deleted:
            next_t = self.queue[0][0] if self.queue else math.inf
            alarm_t = self.alarm_trip_time(now)
            if alarm_t is not None and alarm_t <= now and alarm_t <= next_t:
                self.clock = max(self.clock, alarm_t)
                primary = self.primary()
                assert primary is not None
                self.fail(primary, self.clock, "alarm")
                self.reconcile(self.clock)
                continue
            if next_t > now:
                break
            # Steps due at the same instant (tasks launched together) are one scheduler pass.
            self.clock = max(self.clock, next_t)
            while self.queue and self.queue[0][0] <= next_t:
                _, _, fn, args = heapq.heappop(self.queue)
                fn(self.clock, *args)
            self.reconcile(self.clock)
        self.clock = max(self.clock, now)

    def alarm_trip_time(self, now: float) -> float | None:
        primary = self.primary()
        cfg = self.alarms
        if (
            primary is None
            or primary.rollout_state != "IN_PROGRESS"
            or primary.alarm_checks_disabled
            or not cfg.get("enable")
        ):
            return None
        tripped = self.sim.alarms_in_alarm(self.account, self.region, cfg.get("alarmNames") or [])
        if not tripped:
            return None
        wall_now = time.time()
        first = min(now - max(0.0, wall_now - ts) for ts in tripped.values())
        return max(first, primary.updated_at if primary.is_rollback else primary.created_at, self.clock)

    # ---- deployments ----
    def start_deployment(self, t: float, task_definition: str, scenario: Scenario) -> SimDeployment:
        for d in self.deployments:
            if d.status == "PRIMARY":
                d.status = "ACTIVE"
                d.touch(t)
        d = SimDeployment(
            id=new_deployment_id(),
            task_definition=task_definition,
            scenario=scenario,
            created_at=t,
            updated_at=t,
            desired_count=self.desired,
            launch_type=None if self.moto_cps() else self.moto.launch_type,
            capacity_provider_strategy=self.moto_cps(),
            platform_version=getattr(self.moto, "platform_version", None),
            network_configuration=getattr(self.moto, "network_configuration", None) or None,
        )
        d.rollout_state_reason = f"ECS deployment {d.id} in progress."
        d.alarm_checks_disabled = self.alarms_already_firing()
        self.deployments.append(d)
        self.moto.task_definition = task_definition
        self.steady = False
        self.reconcile(t)
        return d

    def moto_cps(self) -> list[dict[str, Any]] | None:
        return getattr(self.moto, "capacity_provider_strategy", None) or None

    def alarms_already_firing(self) -> bool:
        # Docs: an alarm already in ALARM when the deployment starts disables alarm checks for it.
        cfg = self.alarms
        if not cfg.get("enable"):
            return False
        return bool(self.sim.alarms_in_alarm(self.account, self.region, cfg.get("alarmNames") or []))

    def complete(self, d: SimDeployment, t: float) -> None:
        d.rollout_state = "COMPLETED"
        d.rollout_state_reason = f"ECS deployment {d.id} completed."
        d.ever_completed = True
        d.bake_until = None
        d.touch(t)
        self.record(d, t)
        self.event(t, f"(service {self.name}) (deployment {d.id}) deployment completed.")

    def record(self, d: SimDeployment, t: float) -> None:
        d.completed_at = t
        d.completed_wall = self.sim.wall(t)
        self.sim.outcomes.append(
            Outcome(self.cluster, self.name, d.id, d.rollout_state, d.rollout_state_reason, t, d.completed_wall)
        )

    def fail(self, d: SimDeployment, t: float, cause: str) -> None:
        d.rollout_state = "FAILED"
        d.failed_cause = cause
        d.rollout_state_reason = BREAKER_FAILED_REASON if cause == "breaker" else ALARM_FAILED_REASON
        d.bake_until = None
        d.touch(t)
        d.linger_until = t + d.scenario.drain_s
        self.schedule(d.linger_until, self._wake)
        self.record(d, t)
        what = "tasks failed to start" if cause == "breaker" else "alarm detected"
        self.event(t, f"(service {self.name}) (deployment {d.id}) deployment failed: {what}.")
        rollback = (self.breaker if cause == "breaker" else self.alarms).get("rollback")
        if not rollback or d.is_rollback or d.status != "PRIMARY":
            return
        candidates = [x for x in self.deployments if x is not d and x.ever_completed]
        if not candidates:
            return  # first deployment: nothing to roll back to -> stays PRIMARY+FAILED (stall)
        target = max(candidates, key=lambda x: x.completed_at or 0.0)
        d.status = "ACTIVE"
        d.desired_count = 0
        target.status = "PRIMARY"
        target.rollout_state = "IN_PROGRESS"
        template = BREAKER_ROLLBACK_REASON if cause == "breaker" else ALARM_ROLLBACK_REASON
        target.rollout_state_reason = template.format(target=target.id)
        target.is_rollback = True
        target.failed_tasks = 0
        target.desired_count = self.desired
        target.scenario = dataclasses.replace(d.scenario, kind="success", fail_tasks=None)
        target.completed_at = target.completed_wall = None
        target.touch(t)
        target.alarm_checks_disabled = self.alarms_already_firing()
        self.moto.task_definition = target.task_definition
        self.steady = False
        self.event(t, f"(service {self.name}) rolling back to deployment {target.id}.")

    def task_failed(self, task: SimTask, t: float) -> None:
        d = self.deployment(task.deployment_id)
        if d is None or d.rollout_state != "IN_PROGRESS":
            return
        d.failed_tasks += 1
        d.touch(t)
        if d.status != "PRIMARY":
            return
        if self.breaker.get("enable"):
            if d.failed_tasks >= self.breaker_threshold():
                self.fail(d, t, "breaker")
        elif task.fate == "fail_start" and d.failed_tasks >= 3 and "backoff" not in d.warned:
            d.warned.add("backoff")
            self.event(t, f"(service {self.name}) is unable to consistently start tasks successfully.")

    # ---- tasks ----
    def launch(self, d: SimDeployment, t: float, n: int) -> None:
        sc = d.scenario
        started = []
        for _ in range(n):
            task_id = uuid.uuid4().hex
            ip = self.sim.next_ip()
            task = SimTask(
                id=task_id,
                arn=f"arn:aws:ecs:{self.region}:{self.account}:task/{self.cluster}/{task_id}",
                deployment_id=d.id,
                task_definition_arn=d.task_definition,
                fate=d.next_fate(),
                created_at=t,
                ip=ip,
                eni=f"eni-{uuid.uuid4().hex[:17]}",
            )
            self.tasks[task.arn] = task
            started.append(task)
            if task.fate == "fail_start":
                self.schedule(t + sc.fail_s / 2, self._pending, task)
                self.schedule(t + sc.fail_s, self._failed_to_start, task)
                continue
            self.schedule(t + sc.start_s / 2, self._pending, task)
            if task.fate == "stall_pending":
                continue
            running = t + sc.start_s
            self.schedule(running, self._running, task)
            if task.fate == "ok":
                self.schedule(running + sc.healthy_s, self._healthy, task)
            elif task.fate == "unhealthy":
                self.schedule(running + sc.healthy_s, self._unhealthy, task)
            elif task.fate in ("crash", "oom"):
                self.schedule(running + sc.fail_s, self._crashed, task)
        if started:
            d.touch(t)
            ids = " ".join(f"(task {x.id})" for x in started)
            self.event(t, f"(service {self.name}) has started {len(started)} tasks: {ids}.")

    def _pending(self, t: float, task: SimTask) -> None:
        if task.live and task.last_status == "PROVISIONING":
            task.last_status = "PENDING"
            task.version += 1

    def _running(self, t: float, task: SimTask) -> None:
        if not task.live:
            return
        task.last_status = "RUNNING"
        task.started_at = t
        task.version += 1
        self.touch_of(task, t)
        for lb in self.load_balancers:
            task.target_state = "initial"
            self.event(t, f"(service {self.name}) registered 1 targets in (target-group {lb['targetGroupArn']})")

    def _healthy(self, t: float, task: SimTask) -> None:
        if not task.live:
            return
        task.healthy = True
        task.version += 1
        self.touch_of(task, t)
        if self.container_health_checked(task):
            task.health_status = "HEALTHY"
        if task.target_state:
            task.target_state = "healthy"
        d = self.deployment(task.deployment_id)
        if d and d.rollout_state == "IN_PROGRESS" and self.breaker.get("resetOnHealthyTask", True):
            d.failed_tasks = 0

    def _unhealthy(self, t: float, task: SimTask) -> None:
        if not task.live:
            return
        task.unhealthy = True
        task.version += 1
        sc = self.scenario_of(task)
        if self.load_balancers:
            lb = self.load_balancers[0]
            tg = lb["targetGroupArn"]
            task.target_state = "unhealthy"
            self.event(
                t,
                f"(service {self.name}) (task {task.id}) (port {lb.get('containerPort')}) is unhealthy in "
                f"(target-group {tg}) due to (reason Health checks failed with these codes: "
                f"[{sc.health_codes}]).",
            )
            reason = f"Task failed ELB health checks in (target-group {tg})"
        else:
            task.health_status = "UNHEALTHY"
            self.event(t, f"(service {self.name}) (task {task.id}) failed container health checks.")
            reason = "Task failed container health checks"
        task.fail_reason = reason
        self.task_failed(task, t)
        # ECS reacts after the target has been seen unhealthy for a while; keep it visible.
        self.schedule(t + sc.drain_s, self._replace_unhealthy, task)

    def _replace_unhealthy(self, t: float, task: SimTask) -> None:
        self.stop(task, t, "ServiceSchedulerInitiated", task.fail_reason or "")

    def _failed_to_start(self, t: float, task: SimTask) -> None:
        if not task.live:
            return
        sc = self.scenario_of(task)
        reason = sc.stopped_reason or self.start_failure_reason(task, sc)
        self.finish(task, t, "TaskFailedToStart", reason)
        task.container_reason = reason
        self.task_failed(task, t)

    def _crashed(self, t: float, task: SimTask) -> None:
        if not task.live:
            return
        sc = self.scenario_of(task)
        self.finish(task, t, "EssentialContainerExited", sc.stopped_reason or "Essential container in task exited")
        if task.fate == "oom":
            task.exit_code = 137 if sc.exit_code is None else sc.exit_code
            task.container_reason = "OutOfMemoryError: Container killed due to memory usage"
        else:
            task.exit_code = 1 if sc.exit_code is None else sc.exit_code
        self.task_failed(task, t)

    def _wake(self, t: float) -> None:
        """Nothing to do but let the scheduler look again (reconcile runs after every step)."""

    def _bake_done(self, t: float, deployment_id: str) -> None:
        d = self.deployment(deployment_id)
        if d and d.bake_until is not None and d.bake_until <= t and d.rollout_state == "IN_PROGRESS":
            self.complete(d, t)

    def _drained(self, t: float, task: SimTask, announce: bool) -> None:
        self.finish(task, t, task.stop_code or "ServiceSchedulerInitiated", task.stopped_reason or "")
        if task.exit_code is None and task.started_at is not None:
            # `docker stop`: SIGTERM ends the process (128+15), or SIGKILL after the stop timeout
            # (128+9) when it ignores SIGTERM. Exit codes assumed, see the module docstring.
            task.signalled = True
            task.exit_code = SIGKILL_EXIT if self.scenario_of(task).ignores_sigterm else SIGTERM_EXIT
        if announce:
            self.event(t, f"(service {self.name}) has stopped 1 running tasks: (task {task.id}).")

    def finish(self, task: SimTask, t: float, code: str, reason: str) -> None:
        task.desired_status = "STOPPED"
        task.last_status = "STOPPED"
        task.stop_code = task.stop_code or code
        task.stopped_reason = task.stopped_reason or reason
        task.stopping_at = task.stopping_at or t
        task.stopped_at = t
        task.target_state = None
        task.version += 1
        self.touch_of(task, t)

    def stop(self, task: SimTask, t: float, code: str, reason: str, announce: bool = False) -> None:
        """ECS decides to stop a task: not yet started -> STOPPED now, running -> drain first."""
        if not task.live:
            return
        task.desired_status = "STOPPED"
        task.stop_code = code
        task.stopped_reason = task.fail_reason or reason
        task.stopping_at = t
        task.version += 1
        if task.last_status in ("PROVISIONING", "PENDING"):
            self.finish(task, t, code, reason)
            return
        task.last_status = "DEACTIVATING"
        if task.target_state:
            task.target_state = "draining"
        self.schedule(t + self.scenario_of(task).drain_s, self._drained, task, announce)

    def stop_batch(self, tasks: list[SimTask], t: float, primary: SimDeployment) -> None:
        if not tasks:
            return
        reason = f"Scaling activity initiated by (deployment {primary.id})"
        lbs = self.load_balancers
        if lbs:
            by_dep: dict[str, int] = {}
            for x in tasks:
                by_dep[x.deployment_id] = by_dep.get(x.deployment_id, 0) + 1
            for dep_id, n in by_dep.items():
                self.event(t, f"(service {self.name}, taskSet {dep_id}) has begun draining connections on {n} tasks.")
            for lb in lbs:
                self.event(
                    t,
                    f"(service {self.name}) deregistered {len(tasks)} targets in (target-group {lb['targetGroupArn']})",
                )
        else:
            ids = " ".join(f"(task {x.id})" for x in tasks)
            self.event(t, f"(service {self.name}) has stopped {len(tasks)} running tasks: {ids}.")
        for x in tasks:
            self.stop(x, t, "ServiceSchedulerInitiated", reason, announce=bool(lbs))

    def touch_of(self, task: SimTask, t: float) -> None:
        d = self.deployment(task.deployment_id)
        if d is not None:
            d.touch(t)

    def scenario_of(self, task: SimTask) -> Scenario:
        d = self.deployment(task.deployment_id)
        return d.scenario if d else self.sim.default

    def container_health_checked(self, task: SimTask) -> bool:
        td = self.task_definition(task.task_definition_arn)
        return bool(td and any(c.get("healthCheck") for c in td.container_definitions))

    def start_failure_reason(self, task: SimTask, sc: Scenario) -> str:
        td = self.task_definition(task.task_definition_arn)
        containers = td.container_definitions if td else []
        if sc.failure == "secrets":
            secret = next(
                (s.get("valueFrom") for c in containers for s in (c.get("secrets") or []) if s.get("valueFrom")),
                f"arn:aws:secretsmanager:{self.region}:{self.account}:secret:app-secret",
            )
            role = getattr(td, "execution_role_arn", None) or f"arn:aws:iam::{self.account}:role/ecsTaskExecutionRole"
            role_name = role.rsplit("/", 1)[-1]
            return (
                "ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
                "retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s): "
                f"failed to fetch secret {secret} from secrets manager: AccessDeniedException: User: "
                f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{task.id} is not authorized to perform: "
                f"secretsmanager:GetSecretValue on resource: {secret} because no identity-based policy allows "
                "the secretsmanager:GetSecretValue action"
            )
        image = next((c.get("image") for c in containers if c.get("image")), "app:latest")
        return (
            "CannotPullContainerError: pull image manifest has been retried 1 time(s): "
            f"failed to resolve ref {image}: {image}: not found"
        )

    # ---- the scheduler ----
    def reconcile(self, t: float) -> None:
        if self.deleted:
            return
        primary = self.primary()
        if primary is None:
            return
        desired = self.desired
        live = [x for x in self.tasks.values() if x.live]
        if primary.rollout_state != "FAILED":
            primary.desired_count = desired
            self._scale(primary, live, desired, t)
        self._retire_drained(t)
        self._check_steady(primary, desired, t)

    def _scale(self, primary: SimDeployment, live: list[SimTask], desired: int, t: float) -> None:
        conf = self.dconf
        min_healthy = math.ceil(desired * float(conf.get("minimumHealthyPercent", 100)) / 100)
        max_total = math.floor(desired * float(conf.get("maximumPercent", 200)) / 100)
        # Old tasks that are not serving (never healthy) do not protect availability: stop them.
        doomed = [x for x in live if x.deployment_id != primary.id and not x.healthy]
        for x in doomed:
            self.stop(x, t, "ServiceSchedulerInitiated", f"Scaling activity initiated by (deployment {primary.id})")
        live = [x for x in live if x.live]
        mine = [x for x in live if x.deployment_id == primary.id]
        if len(mine) > desired:  # scale in: drop not-yet-healthy tasks first, then the newest
            extra = sorted(mine, key=lambda x: (x.healthy, -x.created_at))[: len(mine) - desired]
            self.stop_batch(extra, t, primary)
            live = [x for x in live if x.live]
            mine = [x for x in mine if x.live]
        want = desired - len(mine)
        room = max_total - len(live)
        n = max(0, min(want, room))
        if n:
            self.launch(primary, t, n)
        healthy = [x for x in live if x.healthy]
        old_healthy = sorted((x for x in healthy if x.deployment_id != primary.id), key=lambda x: x.created_at)
        k = max(0, min(len(healthy) - min_healthy, len(old_healthy)))
        self.stop_batch(old_healthy[:k], t, primary)
        busy = any(
            x.last_status in ("PROVISIONING", "PENDING", "DEACTIVATING") or (x.live and not x.healthy)
            for x in self.tasks.values()
            if not x.gone
        )
        if want > 0 and n == 0 and k == 0 and not busy and "config" not in primary.warned:
            primary.warned.add("config")
            self.event(
                t,
                f"(service {self.name}) was unable to stop or start tasks during a deployment because of the "
                "service deployment configuration. Update the minimumHealthyPercent or maximumPercent value "
                "and try again.",
            )
        for d in self.deployments:
            if d is not primary and d.status == "ACTIVE":
                d.desired_count = sum(1 for x in self.tasks_of(d) if x.live)

    def _retire_drained(self, t: float) -> None:
        for d in self.deployments:
            if d.linger_until is not None and d.linger_until > t:
                continue
            if d.status == "ACTIVE" and all(x.gone for x in self.tasks_of(d)):
                d.status = "INACTIVE"
                d.touch(t)

    def _check_steady(self, primary: SimDeployment, desired: int, t: float) -> None:
        mine = [x for x in self.tasks_of(primary) if x.live]
        settled = (
            len(self.visible) == 1
            and len(mine) == desired
            and all(x.healthy for x in mine)
            and all(x.gone or x.live for x in self.tasks.values())
        )
        if primary.rollout_state == "IN_PROGRESS":
            if not settled:
                primary.bake_until = None
            elif self.alarms.get("enable") and primary.scenario.bake_s > 0 and not primary.is_rollback:
                if primary.bake_until is None:
                    primary.bake_until = t + primary.scenario.bake_s
                    self.schedule(primary.bake_until, self._bake_done, primary.id)
            else:
                self.complete(primary, t)
        steady = settled and primary.rollout_state == "COMPLETED"
        if steady and not self.steady:
            self.event(t, f"(service {self.name}) has reached a steady state.")
        self.steady = steady

    # ---- rendering into moto's Service object ----
    def counts(self, d: SimDeployment) -> tuple[int, int]:
        tasks = self.tasks_of(d)
        running = sum(1 for x in tasks if x.last_status == "RUNNING")
        pending = sum(1 for x in tasks if x.last_status in ("PROVISIONING", "PENDING"))
        return running, pending

    def render_deployment(self, d: SimDeployment) -> dict[str, Any]:
        running, pending = self.counts(d)
        out: dict[str, Any] = {
            "id": d.id,
            "status": d.status,
            "taskDefinition": d.task_definition,
            "desiredCount": d.desired_count,
            "pendingCount": pending,
            "runningCount": running,
            "failedTasks": d.failed_tasks,
            "createdAt": self.sim.wall_dt(d.created_at),
            "updatedAt": self.sim.wall_dt(max(d.updated_at, d.created_at)),
            "rolloutState": d.rollout_state,
            "rolloutStateReason": d.rollout_state_reason,
        }
        if d.capacity_provider_strategy:
            out["capacityProviderStrategy"] = d.capacity_provider_strategy
        elif d.launch_type:
            out["launchType"] = d.launch_type
        if d.launch_type == "FARGATE" or d.capacity_provider_strategy:
            out["platformVersion"] = d.platform_version or "1.4.0"
            out["platformFamily"] = "Linux"
        if d.network_configuration:
            out["networkConfiguration"] = d.network_configuration
        return out

    def sync(self) -> None:
        shown = self.visible
        self.moto.deployments = [self.render_deployment(d) for d in shown]
        self.moto.running_count = sum(self.counts(d)[0] for d in shown)
        self.moto.pending_count = sum(self.counts(d)[1] for d in shown)
        self.moto.events = list(self.events)
        primary = self.primary()
        if primary is not None:
            self.moto.task_definition = primary.task_definition


class RolloutSimulation:
    """Scripted ECS rollouts served by moto. See the module docstring.

    Typical use (with the ``ecs_sim`` fixture)::

        ecs_sim.configure(start_s=0.1, healthy_s=0.1, drain_s=0.1)
        ecs_sim.script("api", "success", "tasks_fail_to_start", cluster="prod", failure="secrets")
        # create_service -> 1st deployment succeeds; next update_service -> tasks fail to start
    """

    def __init__(self, **phase_seconds: float):
        self.lock = threading.RLock()
        self.default = Scenario(**phase_seconds)
        self.services: dict[tuple[str, str, str, str], SimService] = {}
        self.scripts: dict[tuple[str, str], list[Scenario]] = {}
        self.outcomes: list[Outcome] = []
        self.calls: list[ApiCall] = []
        self.throttled_calls: list[ApiCall] = []
        self._throttles: list[dict[str, Any]] = []
        self._seq = itertools.count()
        self._ips = itertools.count(4)
        self._offset = 0.0
        self._frozen_at: float | None = None
        self._freeze_rules: list[tuple[str, str | None, threading.Event]] = []
        self._mono0 = time.monotonic()
        self._wall0 = time.time()
        self.installed = False

    # ---- install ----
    def install(self) -> RolloutSimulation:
        from . import moto_patches

        moto_patches.install(self)
        self.installed = True
        return self

    def uninstall(self) -> None:
        from . import moto_patches

        moto_patches.uninstall(self)
        self.installed = False

    def __enter__(self) -> RolloutSimulation:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # ---- clock ----
    def now(self) -> float:
        """Simulated monotonic clock: time.monotonic() plus any fast_forward(), or the instant the
        clock was frozen at (moved on only by step/run_until/fast_forward)."""
        frozen = self._frozen_at
        return frozen if frozen is not None else time.monotonic() + self._offset

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def freeze(self) -> None:
        """Stop the simulated clock (after processing what is due): nothing moves until the test
        steps it, fast-forwards it or thaws it. API calls are still served, at the frozen instant."""
        with self.lock:
            if self._frozen_at is None:
                self.advance()
                self._frozen_at = self.now()

    def thaw(self) -> None:
        """Let the clock run again from where it was frozen (no jump over the frozen interval)."""
        with self.lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - time.monotonic()
                self._frozen_at = None

    def freeze_on(self, action: str, service: str | None = None) -> threading.Event:
        """Freeze the clock when the next ``action`` call reaches the server, before it is handled;
        the returned event is set once the call has been handled. A test acting "mid-rollout"
        waits on it, acts, and thaws: the rollout cannot have moved on in between, however
        loaded the machine is."""
        reached = threading.Event()
        with self.lock:
            self._freeze_rules.append((action, service, reached))
        return reached

    def next_step_at(self) -> float | None:
        """Simulated time of the earliest scheduled step of any service (None: nothing scheduled)."""
        with self.lock:
            due = [svc.queue[0][0] for svc in self.services.values() if svc.queue and not svc.deleted]
            return min(due) if due else None

    def step(self) -> bool:
        """Frozen clock only: move it to the next scheduled step and process that instant (a
        scheduler pass, like one DescribeServices would). False when nothing is scheduled."""
        with self.lock:
            if self._frozen_at is None:
                raise RuntimeError("step() needs a frozen clock: call freeze() first")
            at = self.next_step_at()
            if at is None:
                return False
            self._frozen_at = max(self._frozen_at, at)
            self.advance()
            return True

    def run_until(self, condition: Callable[[], Any], max_seconds: float = 600.0) -> Any:
        """Frozen clock only: step until ``condition()`` is truthy and return its value; checked
        after every step, so no state is skipped. Fails when the simulation runs out of steps or
        ``max_seconds`` of simulated time pass first."""
        with self.lock:
            if self._frozen_at is None:
                raise RuntimeError("run_until() needs a frozen clock: call freeze() first")
            limit = self._frozen_at + max_seconds
        while True:
            value = condition()
            if value:
                return value
            at = self.next_step_at()
            if at is None or at > limit:
                raise AssertionError(
                    f"condition not met: {'nothing left to simulate' if at is None else f'{max_seconds}s passed'}"
                )
            self.step()

    def wall(self, t: float) -> float:
        return self._wall0 + (t - self._mono0)

    def wall_dt(self, t: float) -> datetime:
        return datetime.fromtimestamp(self.wall(t), tz=UTC)

    def fast_forward(self, seconds: float) -> None:
        """Jump the simulated clock ahead (timestamps then lie in the future of the real clock)."""
        with self.lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
            else:
                self._offset += seconds
            self.advance()

    def advance(self) -> None:
        """Process every simulated step due by now, for all services."""
        with self.lock:
            now = self.now()
            for svc in list(self.services.values()):
                svc.advance(now)
                svc.sync()

    # ---- scripting ----
    def configure(self, **fields: Any) -> Scenario:
        """Change the default scenario (kind and/or phase durations) for unscripted deployments."""
        with self.lock:
            self.default = dataclasses.replace(self.default, **fields)
            return self.default

    def scenario(self, kind: str | Scenario = "success", **params: Any) -> Scenario:
        if isinstance(kind, Scenario):
            return dataclasses.replace(kind, **params) if params else kind
        return dataclasses.replace(self.default, kind=kind, **params)

    def script(self, service: str, *scenarios: str | Scenario, cluster: str = "default", **params: Any) -> None:
        """Script the next deployments of ``cluster/service``, one scenario per new deployment
        (CreateService, or UpdateService with a new task definition / forceNewDeployment);
        the last one repeats. String kinds take the default durations plus ``params``."""
        if not scenarios:
            raise ValueError("script() needs at least one scenario")
        with self.lock:
            self.scripts[(cluster, service)] = [self.scenario(s, **params) for s in scenarios]

    def next_scenario(self, cluster: str, service: str) -> Scenario:
        queue = self.scripts.get((cluster, service))
        if not queue:
            return self.default
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def throttle(
        self,
        action: str,
        times: int = 1,
        service: str | None = None,
        code: str | None = None,
        message: str = "Rate exceeded",
    ) -> None:
        """Make the next ``times`` calls of ``action`` fail with an AWS-shaped throttling error
        (HTTP 400; ``ThrottlingException`` for JSON APIs, ``Throttling`` for query APIs)."""
        with self.lock:
            self._throttles.append(
                {"action": action, "service": service, "times": times, "code": code, "message": message}
            )

    def unthrottle(self, action: str) -> None:
        """Drop the throttling rules of ``action`` that are still pending: its calls work again."""
        with self.lock:
            self._throttles = [rule for rule in self._throttles if rule["action"] != action]

    def take_throttle(self, service: str, action: str) -> dict[str, Any] | None:
        with self.lock:
            for rule in self._throttles:
                if rule["times"] > 0 and rule["action"] == action and rule["service"] in (None, service):
                    rule["times"] -= 1
                    return rule
        return None

    def record_call(self, service: str, action: str, throttled: bool = False) -> list[threading.Event]:
        """Count the call; freeze the clock for a matching ``freeze_on`` rule. Returns the rules'
        events: the caller sets them once the call has been handled, so a test acting "after
        UpdateService" acts on the new deployment, never before it exists (an alarm set before
        the deployment starts would disable its alarm checks, as on ECS)."""
        call = ApiCall(service, action, time.monotonic(), time.time())
        reached: list[threading.Event] = []
        with self.lock:
            for rule in list(self._freeze_rules):
                if not throttled and rule[0] == action and rule[1] in (None, service):
                    self._freeze_rules.remove(rule)
                    self.freeze()
                    reached.append(rule[2])
            self.calls.append(call)
            if throttled:
                self.throttled_calls.append(call)
        return reached

    def calls_of(self, action: str, service: str | None = None) -> list[ApiCall]:
        return [c for c in self.calls if c.action == action and service in (None, c.service)]

    # ---- inspection ----
    def service(self, service: str, cluster: str = "default") -> SimService:
        with self.lock:
            self.advance()
            for (_, _, c, s), svc in self.services.items():
                if c == cluster and s == service:
                    return svc
        raise KeyError(f"service {cluster}/{service} is not simulated")

    def deployments(self, service: str, cluster: str = "default") -> list[SimDeployment]:
        """All deployments of the service, oldest first, INACTIVE ones included."""
        return list(self.service(service, cluster).deployments)

    def deployment(self, deployment_id: str) -> SimDeployment:
        with self.lock:
            self.advance()
            for svc in self.services.values():
                d = svc.deployment(deployment_id)
                if d:
                    return d
        raise KeyError(deployment_id)

    def tasks(self, service: str, cluster: str = "default") -> list[SimTask]:
        return sorted(self.service(service, cluster).tasks.values(), key=lambda x: x.created_at)

    # ---- hooks called by moto_patches (under self.lock) ----
    def next_ip(self) -> str:
        n = next(self._ips)
        return f"10.0.{n // 250}.{n % 250 + 4}"

    def alarms_in_alarm(self, account: str, region: str, names: Iterable[str]) -> dict[str, float]:
        """Named CloudWatch alarms currently in ALARM -> epoch seconds they entered it."""
        from moto.cloudwatch.models import cloudwatch_backends

        alarms = cloudwatch_backends[account][region].alarms
        out = {}
        for name in names:
            alarm = alarms.get(name)
            if alarm is not None and alarm.state_value == "ALARM":
                ts = alarm.state_updated_timestamp
                if ts.tzinfo is None:
                    ts = ts.replace(tzinfo=UTC)
                out[name] = ts.timestamp()
        return out

    def lookup(self, account: str, region: str, backend: Any, cluster: str, name: str) -> SimService | None:
        """The simulated service for moto's service, adopting services created without the sim."""
        moto_service = backend.services.get(f"{cluster}:{name}")
        if moto_service is None:
            return None
        key = (account, region, cluster, name)
        svc = self.services.get(key)
        if svc is not None and svc.moto is moto_service:
            return svc
        if (moto_service.deployment_controller or {}).get("type", "ECS") != "ECS":
            return None
        return self.adopt(account, region, backend, moto_service)

    def adopt(self, account: str, region: str, backend: Any, moto_service: Any) -> SimService:
        """Take over a service moto created on its own: treat it as already steady."""
        svc = SimService(self, account, region, backend, moto_service)
        self.services[(account, region, svc.cluster, svc.name)] = svc
        t = self.now()
        old = (moto_service.deployments or [{}])[0]
        d = SimDeployment(
            id=old.get("id") or new_deployment_id(),
            task_definition=moto_service.task_definition,
            scenario=dataclasses.replace(self.default, kind="success"),
            created_at=t,
            updated_at=t,
            desired_count=svc.desired,
            launch_type=moto_service.launch_type,
            platform_version=moto_service.platform_version,
        )
        d.rollout_state = "COMPLETED"
        d.rollout_state_reason = f"ECS deployment {d.id} completed."
        d.ever_completed = True
        d.completed_at, d.completed_wall = t, self.wall(t)
        svc.deployments.append(d)
        svc.launch(d, t, svc.desired)
        for task in svc.tasks.values():
            task.last_status, task.started_at, task.healthy = "RUNNING", t, True
            task.target_state = "healthy" if svc.load_balancers else None
        svc.queue.clear()
        svc.events.clear()
        svc.steady = True
        svc.sync()
        return svc

    def create(self, account: str, region: str, backend: Any, moto_service: Any) -> SimService:
        svc = SimService(self, account, region, backend, moto_service)
        self.services[(account, region, svc.cluster, svc.name)] = svc
        scenario = self.next_scenario(svc.cluster, svc.name)
        svc.start_deployment(self.now(), moto_service.task_definition, scenario)
        svc.sync()
        return svc

    def find_task(self, ref: str) -> tuple[SimService, SimTask] | None:
        for svc in self.services.values():
            task = svc.tasks.get(ref)
            if task is not None:
                return svc, task
            for task in svc.tasks.values():
                if task.id == ref:
                    return svc, task
        return None

"""Deploy target `ecs`: rolling updates on ECS Fargate, each rollout watched to an honest verdict.

For one `deployctl run` (the deploy stage):
1. preflight (deployctl.preflight): everything the deploy needs exists; nothing is changed
   otherwise. It resolves full secret ARNs, target group ARNs and the image digest, and the
   plan is re-rendered with them (same pure make_plan as `plan` and `--dry-run`).
2. per service, wave by wave (`after:`), services of a wave concurrently:
   - compare the live task definition with the new one after normalising what AWS adds; equal
     (and not --force) → register nothing, skip the update ("no change"), or, when only service
     settings changed, update the service in place on the revision it runs: that revision's
     tags belong to the release that registered it and are left alone, and a failure is undone
     by restoring the previous settings;
   - read the states of the service's deployment alarms right before each create/update (ECS
     ignores an alarm already in ALARM when a deployment starts, and so does the watcher);
   - register the task definition (tagged with the release), create or update the service,
     capture THE DEPLOYMENT WE STARTED (the new PRIMARY on our task definition);
   - watch it (deployctl.rollout) until the verdict is final; when ECS did not roll back and
     a rollback is warranted, update the service back to the revision it ran before, and watch
     that too (`--no-rollback` turns this off). Nothing is ever deregistered here.
3. the release outcome goes onto the task definition as tags; any failed service fails the run.
   A service whose deploy raises (AWS refused the update, a bug) is failed with the message,
   and the revision it registered is tagged failed; the other services' deploys go on.

Why one long module: one service's deploy (_ServiceDeploy: register, update, watch, roll back,
record) is a single state machine whose steps share its fields; split, they would pass them all.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from deployctl import adoption, diagnose, monitoring, preflight, releases, releases_tags, rollout, service_diff
from deployctl.adapters import alarm_gateway, ecs_gateway, elb_gateway
from deployctl.adapters import aws as awsa
from deployctl.adapters.ecs_gateway import ServiceState, Task
from deployctl.adapters.elb_gateway import TargetHealth
from deployctl.errors import DeployctlError, DeployFailed, ExternalError
from deployctl.pipeline import Cancelled
from deployctl.plan import Plan, ServicePlan, make_plan
from deployctl.redact import Redactor
from deployctl.render import autoscaling as render_autoscaling
from deployctl.render import ecs as render
from deployctl.render import monitoring as render_monitoring
from deployctl.render.ecs import Facts
from deployctl.rollout import report
from deployctl.targets import ecs_app_logs, ecs_autoscaling, ecs_before_deploy, ecs_costcap, ecs_jobs
from deployctl.targets.base import DeployOptions
from deployctl.targets.ecs_taskdef import (  # re-exported: callers say ecs.same_task_definition
    record_outcome,
    same_task_definition,
    td_differences,
)

if TYPE_CHECKING:
    from deployctl.config.model import ResolvedConfig

_T = TypeVar("_T")

# Statuses of one service's deploy.
SUCCEEDED = "succeeded"
NO_CHANGE = "no change"
FAILED = "failed"
ROLLED_BACK = "rolled back"
INTERRUPTED = "interrupted"
NOT_DEPLOYED = "not deployed"
_OK = (SUCCEEDED, NO_CHANGE)


# ------------------------------------------------------------------------------------------
# Pure helpers: task definition comparison, previous revision
# ------------------------------------------------------------------------------------------

def previous_revision(live: ServiceState | None) -> str | None:
    """The task definition the service ran before this deploy: its COMPLETED deployment's, else
    the PRIMARY's (a service stuck mid-rollout has no better answer), else the service's."""
    if live is None:
        return None
    done = [d for d in live.deployments if d.rollout_state == "COMPLETED"]
    if done:
        return done[0].task_definition
    primary = live.primary
    if primary is not None and primary.rollout_state != "FAILED":
        return primary.task_definition
    return live.task_definition or None


def find_started_deployment(svc: ServiceState, td_arn: str, before_ids: set[str]) -> str | None:
    """Our deployment: the PRIMARY on our task definition that did not exist before the call."""
    for d in svc.deployments:
        if d.is_primary and d.task_definition == td_arn and d.id not in before_ids:
            return d.id
    return None


# ------------------------------------------------------------------------------------------
# The watcher's view of AWS (rollout.Source)
# ------------------------------------------------------------------------------------------


class EcsSource:
    """rollout.Source over boto3: counts calls, turns throttling/transient errors into
    rollout.Throttled (the watcher backs off; a deploy never fails for throttling)."""

    def __init__(self, aws: awsa.AwsClients, cluster: str, service: str, alarms: list[str], *,
                 shared_target_group: bool = True) -> None:
        self.ecs = aws.watch("ecs")
        self.elbv2 = aws.watch("elbv2")
        self.cloudwatch = aws.watch("cloudwatch")
        self.cluster, self.name, self.alarm_names = cluster, service, alarms
        # validate refuses a target group used by two environments (or preview copies) unless
        # every use says `shared: true`: only then can the group hold targets that are not ours.
        self.shared_target_group = shared_target_group
        self.target_groups: list[str] = []
        self.own_ips: set[str] = set()  # every task IP of this service seen in this watch
        self.foreign_ips: set[str] = set()  # target IPs that were not ours when we looked
        self.alarm_info: dict[str, rollout.AlarmInfo] = {}
        self.calls = 0

    def _call(self, op: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        self.calls += 1
        try:
            return fn(*args, **kwargs)
        except awsa.ClientError as exc:
            status = awsa.http_status(exc)
            if awsa.is_throttle(exc):
                raise rollout.Throttled(op, awsa.error_message(exc)) from None
            if status >= 500:
                raise rollout.Throttled(op, awsa.error_message(exc), transient=True) from None
            err = awsa.translate(exc, f"watching {self.name}")
            raise (err or exc) from None
        except (awsa.BotoCoreError, OSError) as exc:
            if isinstance(exc, awsa.NoCredentialsError):
                raise awsa.translate(exc, f"watching {self.name}") or ExternalError(str(exc)) from None
            # Connection hiccups while watching: retry with backoff, the rollout goes on anyway.
            raise rollout.Throttled(op, str(exc), transient=True,
                                    out_of_time=isinstance(exc, awsa.OutOfTime)) from None

    def service(self) -> ServiceState | None:
        states = self._call("DescribeServices", ecs_gateway.describe_services, self.ecs, self.cluster,
                            [self.name])
        for svc in states:
            self.target_groups = svc.target_groups
            return svc
        return None

    def stopped_tasks(self, deployment_id: str, known: set[str]) -> list[Task]:
        arns = self._call("ListTasks", ecs_gateway.task_arns, self.ecs, self.cluster, started_by=deployment_id,
                          desired_status="STOPPED", first_page=True)
        arns = [a for a in arns if a not in known]
        if not arns:
            return []
        tasks = self._call("DescribeTasks", ecs_gateway.describe_tasks, self.ecs, self.cluster, arns[:100])
        return [t for t in tasks if t.stopped]

    def target_health(self) -> list[TargetHealth] | None:
        """Health of this service's own tasks' targets only (their awsvpc IPs): another
        environment's tasks in a shared target group are not this rollout's."""
        if not self.target_groups:
            return None
        found: list[TargetHealth] = []
        for arn in self.target_groups:
            found += self._call("DescribeTargetHealth", elb_gateway.target_health, self.elbv2, arn)
        if not self.shared_target_group:
            return found
        # The watcher's call budget is counted per read: the tasks are listed again only when a
        # target shows up that we have not placed yet (a new task of ours, or another
        # environment's). Kept across polls: a stopped task's target still drains, and is ours.
        seen = {t.id for t in found}
        unknown = seen - self.own_ips - self.foreign_ips
        if unknown:
            self.own_ips |= self._task_ips()
            self.foreign_ips |= unknown - self.own_ips
        return rollout.own_targets(found, self.own_ips)

    def _task_ips(self) -> set[str]:
        arns = self._call("ListTasks", ecs_gateway.task_arns, self.ecs, self.cluster, service=self.name,
                          first_page=True)
        if not arns:
            return set()
        return rollout.task_ips(self._call("DescribeTasks", ecs_gateway.describe_tasks, self.ecs, self.cluster,
                                           arns[:100]))

    def alarm_states(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(self.alarm_names), alarm_gateway.MAX_NAMES):  # one call per 100 names
            for a in self._call("DescribeAlarms", alarm_gateway.describe_alarms, self.cloudwatch,
                                self.alarm_names[i:i + alarm_gateway.MAX_NAMES]):
                out[a.name] = a.state
                self.alarm_info[a.name] = a
        return out

    def alarm_details(self) -> dict[str, rollout.AlarmInfo]:
        return dict(self.alarm_info)


# ------------------------------------------------------------------------------------------
# Deploy
# ------------------------------------------------------------------------------------------


@dataclass
class ServiceOutcome:
    service: str
    status: str
    message: str
    task_definition: str | None = None
    previous: str | None = None
    diagnosis: list[str] = field(default_factory=list)
    watch: rollout.WatchResult | None = None
    # Filled in by deploy_wave from the service's deploy: the revision it registered (this
    # release), or, when it registered none (no change, settings only), the release the running
    # revision carries ("" when that revision has no deployctl release).
    registered: str | None = None
    kept_release: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in _OK


@dataclass(frozen=True)
class Settings:
    timeout: float
    poll: rollout.PollPolicy
    force: bool
    no_rollback: bool
    release_id: str
    actor: str
    started_at: datetime
    # time.monotonic() values: the rollout (preflight and every wave included) ends by
    # `rollout_deadline`, deployctl's own rollback by `deadline` (rollout.rollback_budget later).
    rollout_deadline: float = float("inf")
    deadline: float = float("inf")
    # `rollback`: service → an earlier revision, still ACTIVE, to run again as it is (nothing
    # registered; the release is recorded on it in a rerun tag, releases_tags.rerun_key).
    reuse: Mapping[str, str] = field(default_factory=dict)
    # service → the revision before_deploy registered for this release: its deploy rolls that out.
    preregistered: Mapping[str, str] = field(default_factory=dict)
    # target group name → ARN (preflight's): auto scaling's requests_per_target label is read from it.
    target_group_arns: Mapping[str, str] = field(default_factory=dict)


class StageLog(Protocol):
    """What a deploy needs of its stage context (pipeline.StageContext): somewhere to log. Its
    `note`, `outputs`, `cancelled` and `add_detail` are used when it has them."""

    def log(self, line: str) -> None: ...


class _Log:
    """Thread-safe, service-prefixed logging into the stage context."""

    def __init__(self, ctx: StageLog) -> None:
        self.ctx = ctx
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self.lock:
            self.ctx.log(line)

    def for_service(self, name: str) -> Callable[[str], None]:
        return lambda line: self(f"[{name}] {line}")

    def note(self, text: str) -> None:
        note = getattr(self.ctx, "note", None)
        if callable(note):
            with self.lock:
                note(text)

    def changes(self, diff: service_diff.ServiceDiff) -> None:
        """Publish a service's setting changes in the run's outputs (`service_changes`: JSON text,
        service → [{setting, key, live, planned, warning}], for --json and the report)."""
        outputs = getattr(self.ctx, "outputs", None)
        if outputs is None or not diff.changes:
            return
        with self.lock:
            found = json.loads(outputs.get("service_changes") or "{}")
            found[diff.service] = [c.to_json() for c in diff.changes]
            outputs["service_changes"] = json.dumps(found, sort_keys=True, separators=(",", ":"))


def run_preflight(plan: Plan, image_ref: str, ctx: StageLog, options: DeployOptions | None = None
                  ) -> preflight.PreflightResult:
    """deployctl.preflight for this deploy, on its own (EcsTarget.lock runs it before the lock is taken)."""
    options = options or DeployOptions()
    aws = awsa.Bounded(awsa.clients(plan.config.region), time.monotonic() + options.effective_timeout(plan.config))
    return preflight.run(plan.config, aws, image_ref, log=_Log(ctx), preview=options.preview_name)


# Deploys one wave of services: (plan, wave, aws, settings, log, cancelled, alarm_states) →
# service → outcome. `deploy_wave` is the real one; `deploy(run_wave=…)` takes another.
WaveRunner = Callable[..., dict[str, ServiceOutcome]]


def deploy(plan: Plan, image_ref: str, ctx: StageLog, options: DeployOptions | None = None,
           pre: preflight.PreflightResult | None = None, *, run_wave: WaveRunner | None = None) -> None:
    """Deploy `plan` to ECS with `image_ref`. Returns when every service is healthy on the new
    release (or unchanged); raises DeployFailed otherwise (a rollback is a failure too),
    PreflightFailed when something is missing, ExternalError when AWS is unreachable.
    `pre`: the preflight already run for this deploy (before its lock), else it runs now.

    `run_wave` deploys one wave of services (default `deploy_wave`); a test passes in one that
    loses or alters outcomes to check what the run makes of them."""
    run_wave = run_wave or deploy_wave
    cfg = plan.config
    options = options or DeployOptions()  # all as deploy.yaml says
    log = _Log(ctx)
    timeout, poll = options.effective_timeout(cfg), options.effective_poll(cfg)
    cancelled: threading.Event = getattr(ctx, "cancelled", None) or threading.Event()
    t0 = time.monotonic()
    rollout_deadline = t0 + timeout
    deadline = rollout_deadline + rollout.rollback_budget(timeout)
    # Every AWS call of the rollout ends by its deadline, however AWS behaves (docs/timeouts.md).
    aws = awsa.Bounded(awsa.clients(cfg.region), min(rollout_deadline + rollout.LAST_LOOK, deadline))
    preview = options.preview_name
    if pre is None:
        pre = preflight.run(cfg, aws, image_ref, log=log, preview=preview)
    digest = pre.image_digest or (image_ref.split("@", 1)[1] if "@" in image_ref else None)
    outputs = getattr(ctx, "outputs", {})
    release_id = outputs.get("release") or releases_tags.new_release_id(git_sha=plan.git.sha)
    facts = Facts(account_id=pre.account_id, secret_arns=pre.secret_arns,
                  target_group_arns=pre.target_group_arns, image_digest=digest, release_id=release_id,
                  git_sha=plan.git.sha, preview_name=preview)
    real = make_plan(cfg, plan.git, facts=facts, image_override=pre.image_ref)
    pinned = options.task_definitions
    if pinned:
        # `deployctl rollback`: only these services, each with an earlier release's task
        # definition as it was (deployctl.releases.register_request), re-registered as this release.
        real = dataclasses.replace(real, services=tuple(
            dataclasses.replace(sp, task_definition=dict(pinned[sp.name]))
            for sp in real.services if sp.name in pinned))
    outputs["release"] = release_id
    _ensure_monitoring_alarms(cfg, aws, log)
    settings = Settings(timeout=timeout, poll=rollout.PollPolicy.from_base(poll),
                        force=options.force, no_rollback=options.no_rollback,
                        release_id=release_id, actor=releases_tags.actor(), started_at=datetime.now(UTC),
                        rollout_deadline=rollout_deadline, deadline=deadline,
                        reuse=dict(options.reuse_revisions or {}), target_group_arns=dict(pre.target_group_arns))
    log(f"release {release_id}: {pre.image_ref} → cluster {cfg.environment.cluster} "
        f"({', '.join(s.name for s in real.services)})")
    log(f"time budget: {timeout:g}s for the rollout, then up to {rollout.rollback_budget(timeout):g}s for "
        "deployctl's own rollback if one is needed")
    if cfg.before_deploy is not None and not pinned:  # a rollback runs no migrations
        settings, aws = _before_deploy(real, aws, settings, log, cancelled, outputs)

    outcomes: dict[str, ServiceOutcome] = {}
    for wave in real.waves():
        blocked = [o for o in outcomes.values() if not o.ok]
        if blocked or cancelled.is_set():
            for sp in wave:
                why = "run interrupted" if cancelled.is_set() else \
                    f"waits for {', '.join(sorted(o.service for o in blocked))}"
                outcomes[sp.name] = ServiceOutcome(sp.name, NOT_DEPLOYED, why)
            continue
        outcomes.update(run_wave(real, wave, aws, settings, log, cancelled, pre.alarm_states))

    if not any(o.registered for o in outcomes.values()):
        _no_new_release(outcomes, outputs, log, release_id)
    if preview is None and outcomes and all(o.ok for o in outcomes.values()) and not cancelled.is_set():
        _apply_jobs(real, aws, pre.account_id, outcomes, log)
    cap_error: DeployctlError | None = None
    if preview is None and cancelled.is_set():
        log("cost cap: not applied (interrupted); the next deploy applies it")
    elif preview is None:
        try:
            _apply_cost_cap(cfg, aws, pre.account_id, log)
        except DeployctlError as exc:  # the services' verdicts come first; then this fails the run
            cap_error = exc
            log(f"cost cap not applied: {exc.message}")
    _finish(real, outcomes, log, outputs)
    if cap_error is not None:
        raise cap_error


def _apply_cost_cap(cfg: ResolvedConfig, aws: awsa.Bounded, account_id: str, log: _Log) -> None:
    """monitoring.cost_cap after the services, whatever their outcome: a cap is a safety net, and
    its stop policies were put with each service's auto scaling (deployctl.targets.ecs_costcap).
    A fresh short time budget: the deploy's may be spent."""
    after = awsa.Bounded(aws.base, time.monotonic() + ecs_autoscaling.RESUME_BUDGET)
    with awsa.aws_errors("applying the cost cap (monitoring.cost_cap)"):
        change = ecs_costcap.apply(cfg, after, account_id=account_id, log=log)
    if change.topic or change.alarms_deleted or change.actions_removed:
        log(f"cost cap: {change.summary()}")
    for name in change.in_alarm:
        log(f"warning: cost cap alarm {name} is in ALARM: its stop policy sets the capped services to 0 "
            "again while it stays there (docs/cost-cap.md)")


def _apply_jobs(plan: Plan, aws: awsa.Bounded, account_id: str, outcomes: Mapping[str, ServiceOutcome],
                log: _Log) -> None:
    """`jobs:` follow the release the services now run (deployctl.targets.ecs_jobs)."""
    revisions = {n: o.task_definition for n, o in outcomes.items() if o.task_definition}
    missing = sorted({plan.config.job_service(j) for j in plan.config.jobs} - set(revisions))
    if missing:  # a rollback of some services only: the others' jobs keep what they run
        log(f"jobs: unchanged (this deploy did not touch {', '.join(missing)})")
        return
    with awsa.aws_errors("updating the job schedules (the services are deployed)"):
        change = ecs_jobs.apply(plan, aws, account_id=account_id, revisions=revisions, log=log)
    if change.created or change.updated or change.deleted:
        log(f"jobs: {change.summary()}")


def _before_deploy(plan: Plan, aws: awsa.Bounded, settings: Settings, log: _Log, cancelled: threading.Event,
                   outputs: dict[str, str]) -> tuple[Settings, awsa.Bounded]:
    """Run before_deploy (deployctl.targets.ecs_before_deploy); the rollout's time budget starts
    after it. Raises (nothing rolled) when it fails."""
    try:
        took, registered = ecs_before_deploy.run(
            plan, aws.base, force=settings.force, actor=settings.actor, started_at=settings.started_at,
            release_id=settings.release_id, log=log, cancelled=cancelled,
            add_detail=getattr(log.ctx, "add_detail", None))
    except BaseException:
        outputs.pop("release", None)  # no service carries it
        raise
    settings = dataclasses.replace(settings, rollout_deadline=settings.rollout_deadline + took,
                                   deadline=settings.deadline + took, preregistered=registered)
    return settings, aws.until(min(settings.rollout_deadline + rollout.LAST_LOOK, settings.deadline))


def _no_new_release(outcomes: Mapping[str, ServiceOutcome], outputs: dict[str, str], log: _Log,
                    release_id: str) -> None:
    """No service registered a revision (no change, or service settings only), so no revision
    carries `release_id`: the run must not hand it on (GitHub output `release`, the report) as
    a release that happened, nor may promote tag provenance onto it. The log names what runs."""
    outputs.pop("release", None)
    kept = {o.kept_release for o in outcomes.values() if o.status != NOT_DEPLOYED}
    live = next(iter(kept)) if len(kept) == 1 else None
    log(f"no new release: no service registered a revision ({release_id} was not recorded)"
        + (f"; release {live} stays live" if live else ""))


def _ensure_monitoring_alarms(cfg: ResolvedConfig, aws: awsa.Bounded, log: _Log) -> None:
    """Generated alarms named in monitoring.roll_back_on are ECS deployment alarms of this
    deploy, so they must exist before the service update names them: create or update every
    monitoring alarm first (PutMetricAlarm is idempotent). Dashboards stay with `monitor apply`."""
    mon = getattr(cfg, "monitoring", None)
    if mon is None or not mon.roll_back_on:
        return

    with awsa.aws_errors("creating the monitoring alarms this deploy rolls back on"):
        facts = monitoring.resolve_facts(cfg, mon, aws.elbv2)
        changes = monitoring.put_alarms(aws.cloudwatch, monitoring.without_cap_alarms(
            mon, render_monitoring.alarms(cfg, mon, facts)))
    log(f"monitoring: {changes.summary()} (roll back on: {', '.join(mon.roll_back_on)})")


def deploy_wave(plan: Plan, wave: list[ServicePlan], aws: awsa.Bounded, settings: Settings, log: _Log,
                cancelled: threading.Event, alarm_states: dict[str, str]) -> dict[str, ServiceOutcome]:
    """Deploy the services of one wave side by side; service name → its outcome."""
    results: dict[str, ServiceOutcome] = {}

    def run(sp: ServicePlan) -> None:
        job: _ServiceDeploy | None = None
        try:
            job = _ServiceDeploy(plan, sp, aws, settings, log, cancelled, alarm_states)
            # Scale-in suspended for the rollout, auto scaling applied after it, however it ends.
            with ecs_autoscaling.during_rollout(aws, plan.config, sp.name, settings.target_group_arns,
                                                log.for_service(sp.name), plan.preview_name):
                results[sp.name] = job.run()
        except rollout.WatchCancelled:
            # The ECS deployment goes on: its revision stays in-progress (`status --watch` resumes).
            # Interrupted while deployctl's own rollback rolled out: that is what goes on.
            back = job is not None and job.rollback_requested
            results[sp.name] = ServiceOutcome(sp.name, INTERRUPTED, "rollback interrupted" if back else
                                              "watch interrupted", job.previous if back and job else
                                              job.td_arn if job else None)
        except Exception as exc:  # noqa: BLE001 - any error fails this service, never the others' verdicts
            results[sp.name] = _crashed(sp, job, exc, log)
        if job is not None:
            results[sp.name] = dataclasses.replace(results[sp.name], registered=job.registered,
                                                   kept_release=job.kept_release)

    if len(wave) == 1:
        run(wave[0])
    else:
        threads = [threading.Thread(target=run, args=(sp,), name=f"deploy-{sp.name}", daemon=True)
                   for sp in wave]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return results


def _crashed(sp: ServicePlan, job: _ServiceDeploy | None, exc: Exception, log: _Log) -> ServiceOutcome:
    """The outcome of a service whose deploy raised: failed, with a message fit to print and to
    store in a tag, and the revision it registered (if any) tagged failed rather than left
    in-progress forever (which would block promote). Nothing is deregistered."""
    if isinstance(exc, DeployctlError):
        message = exc.message
    elif isinstance(exc, (awsa.ClientError, awsa.BotoCoreError)):
        message = (awsa.translate(exc, f"deploying {sp.name}") or ExternalError(str(exc))).message
    else:
        message = f"unexpected error: {type(exc).__name__}: {exc}"
    message = Redactor().redact(message)
    log.for_service(sp.name)(f"FAILED: {message}")
    if job is not None:
        job.record_failure(message)
    return ServiceOutcome(sp.name, FAILED, message, job.td_arn if job else None,
                          job.previous if job else None)


class _ServiceDeploy:
    def __init__(self, plan: Plan, sp: ServicePlan, aws: awsa.Bounded, settings: Settings, log: _Log,
                 cancelled: threading.Event, alarm_states: dict[str, str]) -> None:
        self.plan, self.sp, self.aws, self.s = plan, sp, aws, settings
        self.cfg = plan.config
        self.cluster = self.cfg.environment.cluster or "default"
        self.log = log.for_service(sp.name)
        self.root_log = log
        self.cancelled = cancelled
        # Preflight's reading (deploy.alarms only): the fallback when the states cannot be read
        # again right before a deployment starts.
        self.preflight_alarms = dict(alarm_states)
        self.td_arn: str | None = None
        self.previous: str | None = None
        self.registered: str | None = None  # the revision this deploy registered (its release)
        self.kept_release: str | None = None  # registering none: the running revision's release
        self.recorded = False  # its outcome tag has been written (or attempted)
        self.rerun_start: dict[str, str] = {}  # reusing a revision (Settings.reuse): its start tags
        self.last_seen: ServiceState | None = None  # the rollout watch's last DescribeServices answer
        self.rollback_requested = False  # ECS accepted deployctl's rollback UpdateService
        self.started = time.monotonic()
        # One API-call budget for the whole deploy of this service: the watch, the reads for the
        # diagnosis, deployctl's own rollback and its watch (≤ poll.budget calls in any window).
        self.budget = rollout.CallBudget(settings.poll, time.monotonic)

    # -- steps --------------------------------------------------------------------------------
    def _alarm_names(self) -> list[str]:
        """The deployment alarms this service's update names (deploy.alarms plus its generated
        roll_back_on alarms): the ones deployctl watches alongside ECS."""
        conf = self.sp.update_service.get("deploymentConfiguration", {})
        return list((conf.get("alarms") or {}).get("alarmNames") or [])

    def _alarms_at_start(self, fallback: Mapping[str, str], aws: awsa.Bounded | None = None, *,
                         budgeted: bool = False) -> dict[str, str]:
        """States of every deployment alarm of this service, read right before a deployment
        starts (ours, or deployctl's rollback). ECS turns its alarm checks off for a deployment
        that starts with one of its alarms in ALARM (docs/ecs-rollouts.md, "Deployment alarms"),
        so deployctl's own alarm gate ignores exactly those too. Unreadable → `fallback` (older
        readings)."""
        names = self._alarm_names()
        if not names:
            return {}
        aws = aws or self.aws
        source = EcsSource(aws, self.cluster, self.sp.ecs_service, names)
        states: dict[str, str] | None = None
        problem = ""
        calls = (len(names) + 99) // 100
        for attempt in range(3):
            if attempt and getattr(aws, "remaining", lambda: 1.0)() <= 0:
                break  # the time budget is spent: go by the last known states
            if budgeted and self.budget.cap_wait(calls) > 0:
                # deployctl's rollback is out already and the deploy's call budget is spent for
                # now: the watch's own readings are seconds old (not worth a warning).
                return {n: fallback[n] for n in names if n in fallback}
            try:
                states = source.alarm_states()
                break
            except rollout.Throttled as exc:
                problem = str(exc)
                if self.cancelled.wait(0.5 * 2 ** attempt):
                    break
            except (DeployctlError, awsa.ClientError, awsa.BotoCoreError) as exc:
                problem = getattr(exc, "message", None) or str(exc)
                break
            finally:
                if budgeted:
                    self.budget.book(source.calls)
                    source.calls = 0
        if states is None:
            known = {n: fallback[n] for n in names if n in fallback}
            self.log(f"warning: could not read the deployment alarms' states ({problem}); going by the "
                     f"last known states ({len(known)} of {len(names)} alarms)")
            return known
        firing = sorted(n for n, v in states.items() if v == "ALARM")
        if firing:
            self.log(f"alarm {', '.join(firing)} already in ALARM as this deployment starts: ECS does not "
                     "check alarms for such a deployment, and deployctl does not roll back for "
                     f"{'it' if len(firing) == 1 else 'them'} either")
        return states

    def run(self) -> ServiceOutcome:
        ecs = self.aws.ecs
        sp = self.sp
        # Drift and the settings to restore compare the service's whole entry (state.settings)
        # with request dicts; everything else reads the typed state.
        state = ecs_gateway.describe_service(ecs, self.cluster, sp.ecs_service)
        if state is not None and state.status == "DRAINING":
            raise DeployFailed(f"service {sp.ecs_service} is being deleted (DRAINING); wait and deploy again")
        live = state.settings if state is not None else None
        if state is not None:
            self.settle_previous(state)
        previous = previous_revision(state)
        self.previous = previous
        td_arn: str | None = None
        drift: list[str] = []
        # Every service setting the update changes, said before it is sent (never silently).
        changes = service_diff.service_diff(sp.name, sp.ecs_service, sp.update_service, live)
        if state is not None:
            live_td = ecs_gateway.describe_task_definition(ecs, state.task_definition)
            if same_task_definition(sp.task_definition, live_td.definition):
                live_release = releases_tags.parse(live_td.tags).release
                drift = [c.short() for c in changes.changes]
                if not self.s.force:
                    self.kept_release = live_release or ""
                if not self.s.force and not drift:
                    label = rollout.td_label(state.task_definition)
                    msg = f"no change: {label} already runs this image and configuration" + \
                        (f" (release {live_release})" if live_release else "")
                    self.log(msg)
                    return ServiceOutcome(sp.name, NO_CHANGE, msg, state.task_definition, previous)
                if not self.s.force:
                    # Settings only: the running revision stays, and so does its release record
                    # (history, promote and rollback go by revisions); nothing new is registered.
                    td_arn = state.task_definition
                    self.log(f"task definition unchanged; updating service settings: {', '.join(drift)} "
                             f"({rollout.td_label(td_arn)} keeps its release"
                             f"{f' {live_release}' if live_release else ''}; no new release is recorded)")
            else:
                diffs = td_differences(sp.task_definition, live_td.definition)
                self.log(f"task definition changed ({', '.join(diffs[:6])}{'…' if len(diffs) > 6 else ''})")
        if td_arn is None:
            if sp.name in self.s.reuse:
                td_arn = self._reuse()
            else:
                if previous is not None:
                    self._adopt(previous)
                td_arn = self._register()
        self.td_arn = td_arn
        settings_only = td_arn != self.registered

        before_ids = state.deployment_ids if state is not None else set()
        seen_events = state.event_ids if state is not None else set()
        alarms = self._alarms_at_start(self.preflight_alarms)
        started = time.monotonic()
        if state is None:
            req = {**sp.create_service, "taskDefinition": td_arn}
            self.log(f"creating service {sp.ecs_service} ({req['desiredCount']} tasks, "
                     f"{rollout.td_label(td_arn)})")
            svc = ecs_gateway.create_service(ecs, req)
            self.budget.book(1)
        else:
            req = {**sp.update_service, "taskDefinition": td_arn, **self._clamped_count(state)}
            self._show_changes(changes, listed=bool(drift))
            self.log(f"updating service {sp.ecs_service}: {rollout.td_label(state.task_definition)} → "
                     f"{rollout.td_label(td_arn)}")
            svc = ecs_gateway.update_service(ecs, req)
            self.budget.book(1)
        our_id, started_state = self._started_id(svc, td_arn, before_ids,
                                                 allow_existing=settings_only)
        if our_id in before_ids:
            before_ids.discard(our_id)
        # deploy.timeout counts from the start of the deploy (preflight and earlier waves included).
        deploy_start = self.s.rollout_deadline - self.s.timeout
        self.log(f"watching deployment {our_id} ({max(0.0, self.s.rollout_deadline - time.monotonic()):.0f}s "
                 f"left of the {self.s.timeout:g}s timeout)")
        result = self._watch(our_id, before_ids, seen_events, self.s.timeout, deploy_start, alarms,
                             first=started_state)
        verdict = result.verdict
        if verdict.ok:  # already said (_say_verdict)
            if not settings_only:
                self._tag(td_arn, releases_tags.SUCCEEDED, result.duration)
            return ServiceOutcome(sp.name, SUCCEEDED, verdict.message, td_arn, previous, watch=result)
        if settings_only:
            return self._settings_failed(verdict, result, td_arn, live or {}, previous)
        return self._failed(verdict, result, td_arn, previous, started)

    def _clamped_count(self, state: ServiceState) -> dict[str, int]:
        """With auto scaling the update keeps the running desired count (the scaler's), brought
        within min..max when deploy.yaml's range no longer holds it."""
        auto = self.cfg.services[self.sp.name].autoscaling
        if auto is None:
            return self._count_on_removal(state)
        if "desiredCount" in self.sp.update_service:
            return {}
        kept = render_autoscaling.clamp(auto, state.desired)
        if kept == state.desired:
            return {}
        self.log(f"desired count {state.desired} is outside auto scaling's {auto.min}..{auto.max}: setting {kept}")
        return {"desiredCount": kept}

    def _count_on_removal(self, state: ServiceState) -> dict[str, int]:
        """The deploy that drops `autoscaling` keeps the scaler's count (docs/autoscaling.md)."""
        with awsa.aws_errors(f"reading the auto scaling of {self.sp.name}"):
            kept = ecs_autoscaling.removal_count(self.aws.client(ecs_autoscaling.CLIENT), self.cfg, self.sp.name,
                                                 state.desired, self.plan.preview_name)
        if kept is None:
            return {}
        self.log(render_autoscaling.removal_text(state.desired, kept, self.cfg.services[self.sp.name].count))
        return {"desiredCount": kept}

    def _show_changes(self, diff: service_diff.ServiceDiff, *, listed: bool = False) -> None:
        """Every setting the update changes, once (`listed`: the settings-only line named them
        already, so only their warnings are left to say), and into the run's outputs."""
        if listed:
            for c in diff.changes:
                if c.warning:
                    self.log(f"warning: {c.warning}")
        else:
            for line in service_diff.lines(diff):
                self.log(line)
        self.root_log.changes(diff)

    def _adopt(self, previous: str) -> None:
        """The first deploy of a service deployctl did not create (docs/environments.md): record
        the revision it ran as a succeeded release, so `rollback` can return to it. Best effort:
        without the record the deploy itself is as good, only that rollback target is missing."""
        ecs = self.aws.ecs
        try:
            described = ecs_gateway.describe_task_definition(ecs, previous)
            if not adoption.needs_record(described):
                return
            release = adoption.release_id(self.s.release_id, self.s.started_at)
            tags = adoption.release_tags(described, release=release, app=self.cfg.app, env=self.cfg.env_name,
                                         service=self.sp.name, now=self.s.started_at)
            label = rollout.td_label(previous)
            if described.family == self.sp.family:
                ecs.tag_resource(resourceArn=previous, tags=releases_tags.to_list(tags))
                self.log(f"adopted {label}: recorded as release {release} (succeeded), what `rollback` "
                         "returns to after this deploy")
                return
            req = adoption.copy_request(described, family=self.sp.family, tags=tags)
            arn = ecs_gateway.register_task_definition(ecs, req)
            self.log(f"adopted {label} (family {described.family}): registered as "
                     f"{rollout.td_label(arn)} in {self.sp.family} and recorded as release {release} (succeeded), "
                     "what `rollback` returns to after this deploy")
        except (awsa.ClientError, awsa.BotoCoreError) as exc:
            self.log(f"warning: could not record {rollout.td_label(previous)}, which ran before deployctl, as a "
                     f"release ({awsa.error_code(exc) or exc}): `rollback` right after this deploy will not "
                     "find it")

    def _register(self) -> str:
        pre = self.s.preregistered.get(self.sp.name)
        if pre:  # before_deploy registered it, tagged with this release, and ran it
            self.registered = pre
            return pre
        req = dict(self.sp.task_definition)
        req["tags"] = releases_tags.merge(req.get("tags") or [], releases_tags.start_tags(
            who=self.s.actor, started_at=self.s.started_at))
        arn = ecs_gateway.register_task_definition(self.aws.ecs, req)
        self.registered = arn
        self.log(f"registered {rollout.td_label(arn)} (release {self.s.release_id})")
        return arn

    def _reuse(self) -> str:
        """`rollback` of a revision still ACTIVE: run it again as it is, and record this release
        on it (its rerun tag, in progress) instead of registering a copy."""
        arn = self.s.reuse[self.sp.name]
        source = releases_tags.to_dict(self.sp.task_definition.get("tags")).get(releases.SOURCE, "")
        self.rerun_start = {**releases_tags.start_tags(who=self.s.actor, started_at=self.s.started_at),
                            releases.SOURCE: source, releases_tags.RERUN_AT: f"{time.time():.3f}"}
        held = ecs_gateway.resource_tags(self.aws.ecs, arn)
        drop = releases_tags.reruns_to_drop(held)
        if drop:  # room under ECS's 50 tags: the oldest rollbacks to this revision leave history
            self.aws.ecs.untag_resource(resourceArn=arn, tagKeys=drop)
            self.log(f"{rollout.td_label(arn)} holds {len(held)} tags (ECS allows {releases_tags.MAX_TAGS}): "
                     f"dropped the record of {len(drop)} oldest rollback(s) to it")
        self.aws.ecs.tag_resource(resourceArn=arn, tags=releases_tags.to_list(
            {releases_tags.rerun_key(self.s.release_id): releases_tags.record_value(self.rerun_start)}))
        self.registered = arn
        self.log(f"runs {rollout.td_label(arn)} again as it is (still ACTIVE: nothing registered), "
                 f"as release {self.s.release_id}")
        return arn

    def record_failure(self, message: str) -> None:
        """The deploy raised before recording an outcome: the revision it registered must not
        stay `in-progress` (promote refuses an environment whose latest release is)."""
        if self.registered and not self.recorded:
            self._tag(self.registered, releases_tags.FAILED, time.monotonic() - self.started, message)

    def _started_id(self, svc: ServiceState, td_arn: str, before_ids: set[str], *,
                    allow_existing: bool) -> tuple[str, ServiceState]:
        """Capture our deployment from the create/update answer, or a describe right after.
        Returns its id and the service description that shows it."""
        for attempt in range(4):
            found = find_started_deployment(svc, td_arn, before_ids)
            if found:
                return found, svc
            if allow_existing:  # a settings-only change may just rescale the current deployment
                primary = svc.primary
                if primary is not None and primary.task_definition == td_arn:
                    return primary.id, svc
            time.sleep(0.2 * (attempt + 1))
            self.budget.book(1)
            svc = (ecs_gateway.describe_service(self.aws.ecs, self.cluster, self.sp.ecs_service)
                   or ServiceState(name="", status=""))
        raise DeployFailed(f"ECS accepted the update of {self.sp.ecs_service} but started no deployment of "
                           f"{rollout.td_label(td_arn)}",
                           hint="run `deployctl status` and check the service events")

    def _watch(self, our_id: str, before_ids: set[str], seen_events: set[str], timeout: float,
               started: float, alarms_at_start: Mapping[str, str],
               first: ServiceState | None = None, aws: awsa.Bounded | None = None,
               announce: bool = True) -> rollout.WatchResult:
        svc = self.cfg.services[self.sp.name]
        conf = self.sp.update_service.get("deploymentConfiguration") or {}
        breaker = conf.get("deploymentCircuitBreaker") or {}
        alarms = conf.get("alarms") or {}
        limits = rollout.Limits(timeout=timeout, ecs_rollback_grace=self.s.poll.ecs_rollback_grace,
                                health_gate=self.s.poll.health_gate, alarm_grace=self.s.poll.alarm_grace,
                                load_balanced=svc.load_balancer is not None,
                                can_fail=bool(breaker.get("enable") or (alarms.get("enable")
                                                                        and alarms.get("alarmNames"))))
        source = EcsSource(aws or self.aws, self.cluster, self.sp.ecs_service, self._alarm_names(),
                           shared_target_group=bool(svc.load_balancer and svc.load_balancer.shared))
        # The timeout counts from `started` (the deploy's start: preflight and earlier waves
        # included), on the same clock as the watch.
        return rollout.watch(source, our_id, policy=self.s.poll, limits=limits, log=self.log,
                             before_ids=before_ids, seen_events=seen_events,
                             alarms_at_start=dict(alarms_at_start),
                             cancelled=self.cancelled, clock=time.monotonic, started=started,
                             first_service=first if first is not None and first.deployments else None,
                             on_verdict=self._say_verdict if announce else None, budget=self.budget)

    def _say_verdict(self, verdict: rollout.Verdict) -> None:
        """The rollout's verdict, said the moment it is known (the diagnosis follows)."""
        self.log(f"{'succeeded' if verdict.ok else 'FAILED'}: {verdict.message}")

    def _failed(self, verdict: rollout.Verdict, result: rollout.WatchResult, td_arn: str,
                previous: str | None, started: float) -> ServiceOutcome:
        sp = self.sp
        self.last_seen = result.last_service
        message = verdict.message
        if (verdict.cause != rollout.CAUSE_ECS_ROLLBACK and verdict.roll_back and not self.s.no_rollback
                and previous and previous != td_arn):
            # deployctl rolls back itself: the rollback goes out first, the diagnosis (the app's
            # log read included) is read while ECS rolls back.
            return self._roll_back(message, td_arn, previous, verdict, result, started)
        diag = self._diagnose(verdict, result)
        if verdict.cause == rollout.CAUSE_ECS_ROLLBACK:
            self._tag(td_arn, releases_tags.ROLLED_BACK, result.duration, verdict.message,
                      verdict.rolled_back_to)
            return ServiceOutcome(sp.name, ROLLED_BACK, verdict.message, td_arn, previous, diag, result)
        if not verdict.roll_back:
            self._tag(td_arn, releases_tags.FAILED, result.duration, message)
            return ServiceOutcome(sp.name, FAILED, message, td_arn, previous, diag, result)
        if self.s.no_rollback:
            message += "; not rolled back (--no-rollback): the service stays on the failed revision"
            self.log(message)
            self._tag(td_arn, releases_tags.FAILED, result.duration, message)
            return ServiceOutcome(sp.name, FAILED, message, td_arn, previous, diag, result)
        message += "; nothing to roll back to (no earlier revision ran this service)"
        self.log(message)
        self._tag(td_arn, releases_tags.FAILED, result.duration, message)
        return ServiceOutcome(sp.name, FAILED, message, td_arn, previous, diag, result)

    def _settings_failed(self, verdict: rollout.Verdict, result: rollout.WatchResult, td_arn: str,
                         live: Mapping[str, Any], previous: str | None) -> ServiceOutcome:
        """A settings-only update failed. The revision's tags describe the release that
        registered it, so they stay as they are; undoing the update means restoring the
        service settings it changed (the task definition never changed)."""
        sp = self.sp
        message = verdict.message
        restore = self._previous_settings(live, td_arn)
        diag: list[str] = []

        def diagnose_once() -> None:
            if not diag:
                diag.extend(self._diagnose(verdict, result))

        if verdict.cause == rollout.CAUSE_ECS_ROLLBACK:
            diagnose_once()
            return ServiceOutcome(sp.name, ROLLED_BACK, message, td_arn, previous, diag, result)
        if not verdict.roll_back or self.s.no_rollback or restore is None:
            diagnose_once()
            if verdict.roll_back:
                message += ("; not rolled back (--no-rollback): the service keeps the new settings"
                            if self.s.no_rollback else "; the previous service settings are unknown")
                self.log(message)
            return ServiceOutcome(sp.name, FAILED, message, td_arn, previous, diag, result)
        self.log(f"restoring the previous service settings of {sp.ecs_service} ({rollout.td_label(td_arn)} "
                 "keeps running)")
        try:
            again = self._revert(restore, td_arn, allow_existing=True, fallback=result.alarms,
                                 after_update=diagnose_once)
        finally:
            diagnose_once()
        if again.verdict.ok:
            text = f"{message}; deployctl restored the previous service settings"
            self.log(f"restored the previous service settings: {again.verdict.message}")
            return ServiceOutcome(sp.name, ROLLED_BACK, text, td_arn, previous, diag, result)
        text = f"{message}; restoring the previous service settings failed too: {again.verdict.message}"
        self.log(text)
        return ServiceOutcome(sp.name, FAILED, text, td_arn, previous, diag, result)

    def _previous_settings(self, live: Mapping[str, Any], td_arn: str) -> dict[str, Any] | None:
        """UpdateService request that puts back what a settings-only update changed."""
        if not live:
            return None
        req: dict[str, Any] = {"cluster": self.cluster, "service": self.sp.ecs_service, "taskDefinition": td_arn}
        for key in ("desiredCount", "deploymentConfiguration", "capacityProviderStrategy",
                    "healthCheckGracePeriodSeconds", "networkConfiguration", "loadBalancers"):
            if key in self.sp.update_service and live.get(key) is not None:
                req[key] = copy.deepcopy(live[key])
        return req

    def _revert(self, request: Mapping[str, Any], td_arn: str, *, allow_existing: bool,
                fallback: Mapping[str, str], describe: bool = True,
                after_update: Callable[[], None] | None = None) -> rollout.WatchResult:
        """deployctl's own undo: one UpdateService, watched like any deployment (with alarm
        states read again as it starts: the alarm that failed the deploy may still be firing),
        all within the rollback budget. Raises (UpdateService refused or not answered) when
        nothing was changed; `self.rollback_requested` says whether ECS accepted the update.
        The update goes out first, within the deploy's call budget and without waiting for it:
        a fresh description only when the budget has room (else what the watch saw last, at most
        one poll old), the alarm states right after the update. `after_update` (the diagnosis)
        runs once ECS accepted the update, while it rolls back."""
        aws = self.aws.until(self.s.deadline)
        live = self.last_seen  # what the watch saw last
        # Not when DescribeServices just went unanswered: it would eat the time budget.
        if describe and self.budget.cap_wait(2) == 0:  # it and the update
            with contextlib.suppress(awsa.ClientError, awsa.BotoCoreError):
                self.budget.book(1)
                found = ecs_gateway.describe_service(aws.client("ecs", attempts=1), self.cluster, self.sp.ecs_service)
                if found is not None:
                    live = found
        before_ids = live.deployment_ids if live is not None else set()
        seen = live.event_ids if live is not None else set()
        again = time.monotonic()
        svc = ecs_gateway.update_service(aws.ecs, request)
        self.budget.book(1)
        self.rollback_requested = True
        # ECS ignores an alarm already in ALARM as a deployment starts: read right after the
        # update (one poll of the budget), else the last known states.
        alarms = self._alarms_at_start({**self.preflight_alarms, **fallback}, aws, budgeted=True)
        if after_update is not None:
            after_update()
        rb_id, svc = self._started_id(svc, td_arn, before_ids, allow_existing=allow_existing)
        before_ids.discard(rb_id)
        timeout = min(rollout.rollback_budget(self.s.timeout), self.s.deadline - again)
        self.log(f"watching the rollback deployment {rb_id} (timeout {timeout:.0f}s)")
        return self._watch(rb_id, before_ids, seen, timeout, again, alarms, first=svc, aws=aws, announce=False)

    def _roll_back(self, message: str, td_arn: str, previous: str, verdict: rollout.Verdict,
                   first: rollout.WatchResult, started: float) -> ServiceOutcome:
        sp = self.sp
        label = rollout.td_label(previous)
        self.log(f"rolling back to {label} (the revision that ran before this deploy)")
        env = self.cfg.env_name
        diag: list[str] = []

        def diagnose_once() -> None:  # after the rollback's UpdateService (or its failure)
            if not diag:
                diag.extend(self._diagnose(verdict, first))

        try:
            result = self._revert({"cluster": self.cluster, "service": sp.ecs_service, "taskDefinition": previous},
                                  previous, allow_existing=False, fallback=first.alarms,
                                  describe=first.verdict.cause != rollout.CAUSE_NO_ANSWER,
                                  after_update=diagnose_once)
        except (awsa.ClientError, awsa.BotoCoreError, DeployctlError) as exc:
            diagnose_once()
            why = exc.message if isinstance(exc, DeployctlError) else \
                (awsa.translate(exc, f"rolling {sp.ecs_service} back") or ExternalError(str(exc))).message
            if self.rollback_requested:
                text = (f"{message}; the rollback to {label} was requested (ECS accepted the update) but could "
                        f"not be followed: {why}. What runs now is unknown: ECS goes on rolling back on its "
                        f"own. Next: `deployctl status --env {env}`")
            else:
                text = (f"{message}; the rollback to {label} was NOT done: {why}. "
                        f"{self._live_text(td_arn)} Next: `deployctl status --env {env}`, then "
                        f"`deployctl rollback --env {env}` if {rollout.td_label(td_arn)} is still live")
            self.log(text)
            self._tag(td_arn, releases_tags.FAILED, time.monotonic() - started, text)
            return ServiceOutcome(sp.name, FAILED, text, td_arn, previous, diag, first)
        diagnose_once()
        duration = time.monotonic() - started
        if result.verdict.cause == rollout.CAUSE_NO_ANSWER:
            text = (f"{message}; the rollback to {label} was requested (ECS accepted the update), but "
                    f"{result.verdict.message}, so whether {label} serves now is unknown: ECS goes on "
                    f"rolling back on its own. Next: `deployctl status --env {env}` shows what runs")
            self.log(text)
            self._tag(td_arn, releases_tags.FAILED, duration, text)
            return ServiceOutcome(sp.name, FAILED, text, td_arn, previous, diag, first)
        if result.verdict.ok:
            text = f"{message}; deployctl rolled back to {label}"
            self.log(f"rolled back to {label}: {result.verdict.message}")
            self._tag(td_arn, releases_tags.ROLLED_BACK, duration, message, label)
            return ServiceOutcome(sp.name, ROLLED_BACK, text, td_arn, previous, diag, first)
        text = f"{message}; the rollback to {label} failed too: {result.verdict.message}"
        self.log(text)
        self._tag(td_arn, releases_tags.FAILED, duration, text)
        return ServiceOutcome(sp.name, FAILED, text, td_arn, previous, diag, first)

    def _live_text(self, td_arn: str) -> str:
        """What the last DescribeServices answer showed running (AWS may not be answering now)."""
        deps = self.last_seen.deployments if self.last_seen is not None else ()
        if not deps:
            return "What runs now is unknown: AWS did not answer."
        parts = [f"{rollout.td_label(d.task_definition)} {d.status.lower()} "
                 f"({d.rollout_state or '?'}, {d.counts_text()})" for d in deps]
        return f"Last seen: {'; '.join(parts)}."

    def _diagnose(self, verdict: rollout.Verdict, result: rollout.WatchResult) -> list[str]:
        svc = self.cfg.services[self.sp.name]
        roles = self.cfg.environment.roles
        context = diagnose.Context(
            service=self.sp.name, env=self.cfg.env_name, memory_mib=svc.memory, port=svc.port,
            health_path=svc.health.path if svc.health else None,
            start_period=svc.health.start_period if svc.health else None,
            log_group=render.log_group(self.cfg),
            log_stream_prefix=f"{self.sp.name}/{render.container_name(self.cfg, self.sp.name)}",
            execution_role=roles.execution if roles else None, image=self.plan.image_ref,
            region=self.cfg.region, alarms=tuple(self._alarm_names()))
        findings = diagnose.diagnose(stopped_tasks=result.stopped_tasks, events=result.events,
                                     targets=result.targets, cause=verdict.cause, context=context,
                                     alarms_firing=result.alarms_firing)
        # Said once, in the deploy's failure block at the end of the run (not in the log too).
        self._late_stopped_tasks(result)
        self._app_log(result)
        return diagnose.render(findings)

    def _late_stopped_tasks(self, result: rollout.WatchResult) -> None:
        """The stopped tasks the watch left unread to get deployctl's rollback out first: read now
        (ListTasks + DescribeTasks), within the deploy's call budget, waiting at most READ_GRACE."""
        our_id = result.verdict.deployment_id
        if not result.tasks_unread or not our_id:
            return
        wait = self.budget.cap_wait(2)
        if wait > ecs_app_logs.READ_GRACE or (wait > 0 and self.cancelled.wait(wait)):
            return
        aws = self.aws.until(min(time.monotonic() + ecs_app_logs.READ_GRACE, self.s.deadline))
        source = EcsSource(aws, self.cluster, self.sp.ecs_service, [])
        known = {t.arn for t in result.stopped_tasks}
        try:
            found = source.stopped_tasks(our_id, known)
        except (rollout.Throttled, DeployctlError, awsa.ClientError, awsa.BotoCoreError):
            return  # the diagnosis goes by what the watch saw
        finally:
            self.budget.book(source.calls)
        result.stopped_tasks.extend(found)
        result.tasks_unread = False
        for line in rollout.describe_stopped_tasks(found):
            self.log(line)

    def _app_log(self, result: rollout.WatchResult) -> None:
        """The failing container's last lines, in the stage's `app_logs` detail: --json, the step
        summary, and the failure block a terminal prints under the stop reason. One GetLogEvents,
        within the deploy's call budget (it waits for room at most until READ_GRACE is spent)."""
        if diagnose.failing_container(result.stopped_tasks) is None:
            return
        until = min(time.monotonic() + ecs_app_logs.READ_GRACE, self.s.deadline)
        wait = self.budget.cap_wait(1)
        if wait > 0 and (time.monotonic() + wait >= until or self.cancelled.wait(wait)):
            return
        self.budget.book(1)
        app_log = ecs_app_logs.read_app_log(self.aws.until(until), self.sp.task_definition, result.stopped_tasks)
        if app_log is None:
            return
        add_detail = getattr(self.root_log.ctx, "add_detail", None)
        if callable(add_detail):
            add_detail("app_logs", {"service": self.sp.name, **app_log.to_json()})

    def _tag(self, td_arn: str, outcome: str, duration: float, detail: str = "",
             rolled_back_to: str | None = None) -> None:
        tags = releases_tags.outcome_tags(outcome, finished_at=datetime.now(UTC), duration_s=duration,
                                          detail=detail, rolled_back_to=rolled_back_to)
        if td_arn == self.registered:
            self.recorded = True
            if self.rerun_start:  # a revision run again: the outcome goes to this release's rerun tag
                tags = {releases_tags.rerun_key(self.s.release_id):
                        releases_tags.record_value({**self.rerun_start, **tags})}
        # In the deploy's call budget: the verdict is said already, so the record waits for room
        # (at most a few fast polls: after a burst of reads for the diagnosis).
        wait = self.budget.cap_wait(1)
        if 0 < wait <= 5 * self.s.poll.fast:
            self.cancelled.wait(wait)
        self.budget.book(1)
        # Recording the outcome gets rollout.OUTCOME_GRACE from now, never more past the deadline.
        started = time.monotonic()
        budget = self.aws.until(min(started, self.s.deadline) + rollout.OUTCOME_GRACE)
        attempts, error = record_outcome(budget, td_arn, tags)
        if error is not None:
            # The deploy itself is done: its verdict stands, only its record is missing.
            label = rollout.td_label(td_arn)
            self.log(f"warning: the outcome ({outcome}) of release {self.s.release_id} could NOT be recorded "
                     f"on {label} ({attempts} attempt{'s' if attempts != 1 else ''} in "
                     f"{time.monotonic() - started:.1f}s: {awsa.error_code(error) or error}). `deployctl "
                     f"history` shows it in-progress until `status`, `history` or the next deploy records "
                     f"it from what ECS shows")

    def settle_previous(self, live: ServiceState) -> None:
        """Record the verdict ECS shows for the family's newest revision when its release is still
        `in-progress` (its deploy was killed, or could not write its outcome tag). This deploy
        holds the lock and is about to supersede that release, which would then show as
        `interrupted` for good. Best effort: a failure here only leaves history as it was."""
        family = str(self.sp.task_definition.get("family") or "")
        try:
            described = ecs_gateway.describe_task_definition(self.aws.ecs, family)
        except (awsa.ClientError, awsa.BotoCoreError) as exc:
            if awsa.error_code(exc) != "ClientException":  # that one: no revision of the family yet
                self.log(f"warning: could not read the newest {family} revision: {awsa.error_code(exc) or exc}")
            return
        newest = releases.revision_from(described)
        if newest is not None and newest.arn == self.s.preregistered.get(self.sp.name):
            return  # this release's own revision (before_deploy registered it): not an earlier deploy's
        found = releases.settle_revision(self.sp.name, newest, live) if newest else None
        if newest is None or found is None:
            return
        _, error = record_outcome(self.aws.until(time.monotonic() + rollout.OUTCOME_GRACE), newest.arn,
                                  found.tags(datetime.now(UTC)))
        what = f"release {newest.parsed.release} ({newest.label})"
        if error is not None:
            self.log(f"warning: {what} ended without a recorded outcome; ECS shows it {found.outcome}, but "
                     f"recording that failed: {awsa.error_code(error) or error}")
        else:
            self.log(f"recorded {what} as {found.outcome}, from what ECS shows (its deploy ended without "
                     "recording the outcome)")


def _finish(plan: Plan, outcomes: dict[str, ServiceOutcome], log: _Log, outputs: dict[str, str]) -> None:
    order = [sp.name for sp in plan.services]
    for name in order:
        # A service whose deploy ended without a verdict (a bug) must not pass for a success.
        outcomes.setdefault(name, ServiceOutcome(name, FAILED, "its deploy ended without an outcome"))
    tds = [f"{n}={rollout.td_label(outcomes[n].task_definition)}" for n in order
           if n in outcomes and outcomes[n].task_definition]
    if tds:
        outputs["task_definitions"] = ",".join(tds)
    parts = [f"{n} {outcomes[n].status}" for n in order if n in outcomes]
    log("summary: " + "; ".join(parts))
    log.note(", ".join(parts))
    interrupted = [o for o in outcomes.values() if o.status == INTERRUPTED]
    env = plan.env
    ended = [_ended(outcomes[n]) for n in order if n in outcomes]
    if interrupted:
        log(f"stopped watching {', '.join(o.service for o in interrupted)}: the ECS deployment continues on "
            f"its own (ECS still rolls back on failure if the circuit breaker is on). Resume watching with "
            f"`deployctl status --env {env} --watch`.")
        raise Cancelled(f"interrupted while watching; resume with `deployctl status --env {env} --watch`",
                        done=report.interrupted(env, ended))
    if all(o.ok for o in outcomes.values()):
        return
    block, short = report.failure(plan.app, env, ended)
    raise DeployFailed(block, short=short)


def _ended(o: ServiceOutcome) -> report.Ended:
    """A service's outcome as the end-of-deploy summary says it, with what serves now: the new
    revision, the one a rollback returned to, or what the watch last saw PRIMARY."""
    live = rollout.td_label(o.task_definition) if o.task_definition else ""
    kind = report.OK if o.ok else {ROLLED_BACK: report.ROLLED_BACK, NOT_DEPLOYED: report.NOT_DEPLOYED,
                                   INTERRUPTED: report.INTERRUPTED}.get(o.status, report.FAILED)
    if kind == report.ROLLED_BACK:
        to = o.watch.verdict.rolled_back_to if o.watch is not None else None
        live = to or (rollout.td_label(o.previous) if o.previous else "")
    elif kind == report.FAILED and "the rollback to" in o.message:
        live = ""  # deployctl's rollback went wrong: what serves is unknown (`status` tells)
    elif kind == report.FAILED:
        seen = o.watch.last_service if o.watch is not None else None
        primary = seen.primary if seen is not None else None
        live = f"{rollout.td_label(primary.task_definition)} ({primary.rollout_state or '?'})" if primary else ""
    elif kind == report.NOT_DEPLOYED:
        live = ""
    return report.Ended(o.service, kind, o.message, live, tuple(o.diagnosis),
                        rolling_back=o.message == "rollback interrupted")

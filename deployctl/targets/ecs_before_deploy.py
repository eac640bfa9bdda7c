"""`before_deploy:` on ECS: one one-off task with the NEW image before any service rolls
(database migrations and the like). It fails → the deploy stops (exit 1) and no service is
created or updated.

The task runs the service's new task definition (same image digest, secrets, roles, log
configuration) with the command overridden, on the service's network and capacity. When the
live service already runs an identical task definition, that revision is used as it is;
otherwise the new revision is registered here, tagged with the release like any deploy's, and
the service's deploy then rolls out that same revision instead of registering another one
(deployctl.targets.ecs, Settings.preregistered). If the task fails, that revision is tagged
`failed` so history shows the release and why it stopped (promote never picks it).

Its time limit (before_deploy.timeout) is its own: the rollout's deploy.timeout starts after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deployctl import releases_tags
from deployctl.adapters import aws as awsa
from deployctl.adapters import ecs_gateway
from deployctl.adapters import logs as cwlogs
from deployctl.errors import DeployFailed
from deployctl.pipeline import Cancelled
from deployctl.render import task as render_task
from deployctl.rollout import td_label
from deployctl.targets import ecs_task, ecs_taskdef

if TYPE_CHECKING:
    import threading

    from deployctl.plan import Plan, ServicePlan


def run(plan: Plan, clients: awsa.Clients, *, force: bool, actor: str, started_at: datetime, release_id: str,
        log: Callable[[str], None], cancelled: threading.Event,
        add_detail: Callable[[str, Any], None] | None = None) -> tuple[float, dict[str, str]]:
    """Run before_deploy. Returns (seconds it took, {service: revision ARN registered here})."""
    bd = plan.config.before_deploy
    assert bd is not None  # the caller checks
    t0 = time.monotonic()
    sp = next(s for s in plan.services if s.name == plan.config.before_deploy_service)
    cluster = plan.config.environment.cluster or "default"
    budget = awsa.Bounded(clients, time.monotonic() + bd.timeout + 120)  # + RunTask/stop/drain calls
    registered: dict[str, str] = {}
    with awsa.aws_errors("starting before_deploy"):
        td_arn = None if force else _live_same(budget, cluster, sp, ecs_taskdef.same_task_definition)
        if td_arn is None:
            req = dict(sp.task_definition)
            req["tags"] = releases_tags.merge(req.get("tags") or [], releases_tags.start_tags(
                who=actor, started_at=started_at))
            td_arn = ecs_gateway.register_task_definition(budget.ecs, req)
            registered[sp.name] = td_arn
            log(f"registered {td_label(td_arn)} (release {release_id}) for before_deploy; {sp.name} rolls out "
                "this same revision")
    container = render_task.main_container(sp.task_definition, sp.name)
    request = render_task.run_task_request(cluster=cluster, task_definition=td_arn, container=container,
                                           command=bd.run, placement=sp.create_service,
                                           app=plan.app, env=plan.config.env_name,
                                           started_by=render_task.STARTED_BY_BEFORE_DEPLOY)
    where = cwlogs.container_logs(sp.task_definition).get(container)
    shown = " ".join(bd.run)
    log(f"before_deploy: running `{shown}` in a one-off task of {sp.name} ({td_label(td_arn)}), "
        f"time limit {bd.timeout:g}s; no service changes until it succeeds")

    def emit(line: str) -> None:
        log(f"before_deploy | {line}")

    try:
        with awsa.aws_errors("running before_deploy"):
            outcome = ecs_task.run(budget, request, container=container, logs=where, emit=emit,
                                   timeout=bd.timeout, cancelled=cancelled,
                                   on_started=lambda arn: log(f"before_deploy: task {cwlogs.task_id(arn)} started"))
    except ecs_task.Interrupted:
        _fail(budget, registered, "before_deploy interrupted", time.monotonic() - t0)
        raise Cancelled("interrupted during before_deploy: its task was stopped; no service was updated") from None
    except DeployFailed as exc:
        _fail(budget, registered, f"before_deploy: {exc.message}", time.monotonic() - t0)
        raise DeployFailed(f"before_deploy failed: {exc.message}; no service was updated", hint=exc.hint) from None
    took = time.monotonic() - t0
    if add_detail is not None:
        add_detail("before_deploy", {"service": sp.name, "command": list(bd.run), "task_id": outcome.task_id,
                                     "task_definition": td_arn, "exit_code": outcome.exit_code,
                                     "timed_out": outcome.timed_out, "ok": outcome.ok, "duration_s": round(took, 3)})
    if not outcome.ok:
        text = f"before_deploy failed: {outcome.describe()}; no service was updated"
        _fail(budget, registered, text, took)
        raise DeployFailed(text, hint=f"its output is above; `deployctl logs --env {plan.env} {sp.name} --since 1h` "
                                      "shows it again")
    log(f"before_deploy: succeeded in {took:.1f}s ({outcome.describe()})")
    return took, registered


def _live_same(aws: awsa.Bounded, cluster: str, sp: ServicePlan,
               same: Callable[[Mapping[str, Any], Mapping[str, Any]], bool]) -> str | None:
    """The live service's revision when it is identical to the new one (nothing to register)."""
    live = ecs_gateway.describe_service(aws.ecs, cluster, sp.ecs_service)
    if live is None:
        return None
    arn = live.task_definition
    td = ecs_gateway.describe_task_definition(aws.ecs, arn, tags=False)
    return arn if same(sp.task_definition, td.definition) else None


def _fail(aws: awsa.Bounded, registered: dict[str, str], detail: str, duration: float) -> None:
    """The revision registered for this release goes `failed` (never left in-progress)."""
    tags = releases_tags.outcome_tags(releases_tags.FAILED, finished_at=datetime.now(UTC), duration_s=duration,
                                      detail=detail)
    for arn in registered.values():
        ecs_taskdef.record_outcome(aws.until(time.monotonic() + 10), arn, tags)

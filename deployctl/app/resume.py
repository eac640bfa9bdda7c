"""The `resume` use case: start the services the hourly cost cap stopped (docs/cost-cap.md).

Plan, then apply: `plan` reads what runs and refuses (UsageError, exit 2, nothing changed) when
the environment has no cap that stops services, when none of them is stopped, or while a cap
alarm is still in ALARM: Application Auto Scaling keeps running the stop policy while its alarm
stays in ALARM, so the services would stop again within a minute. `execute` takes the deploy
lock, checks nothing moved in between, registers each scalable target with deploy.yaml's
range again and sets the desired count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deployctl import lock, targets
from deployctl.adapters import autoscaling_gateway, aws
from deployctl.adapters.ecs_gateway import ServiceState
from deployctl.config.model import ResolvedConfig
from deployctl.errors import DeployFailed, UsageError
from deployctl.render import autoscaling as render_autoscaling
from deployctl.render import costcap
from deployctl.render import ecs as render_ecs
from deployctl.render import monitoring as render_monitoring
from deployctl.targets import ecs_costcap, ecs_scale
from deployctl.targets.base import FEATURE_COST_CAP


@dataclass(frozen=True)
class Restore:
    service: str
    ecs_service: str
    after: int  # the desired count it gets back
    min_capacity: int  # the scalable target's range, as a deploy registers it
    max_capacity: int


@dataclass(frozen=True)
class ResumePlan:
    app: str
    env: str
    services: tuple[Restore, ...]
    running: tuple[str, ...]  # capped services that are not stopped

    @property
    def summary(self) -> list[str]:
        out = [f"resume {self.app}/{self.env} (stopped by the cost cap):"]
        out += [f"  {r.service} ({r.ecs_service}): 0 → {r.after} tasks (scalable target "
                f"{r.min_capacity}..{r.max_capacity})" for r in self.services]
        out += [f"  {name}: running, left alone" for name in self.running]
        return out

    @property
    def question(self) -> str:
        return f"Start {', '.join(f'{r.service} ({r.after} tasks)' for r in self.services)} in {self.env} again?"

    def to_json(self, done: bool) -> dict[str, Any]:
        """deployctl.resume/v1. Keys are only ever added."""
        return {"schema": "deployctl.resume/v1", "app": self.app, "env": self.env, "done": done,
                "services": {r.service: {"ecs_service": r.ecs_service, "before": 0, "after": r.after,
                                         "min_capacity": r.min_capacity, "max_capacity": r.max_capacity}
                             for r in self.services},
                "running": list(self.running)}


def _desired(live: ServiceState | None) -> int | None:
    return live.desired if live is not None else None


def cap_alarm_names(cfg: ResolvedConfig) -> list[str]:
    mon = cfg.monitoring
    if mon is None:
        return []
    return [s.name for s in render_monitoring.alarms(cfg, mon) if s.kind in costcap.CAP_KINDS]


def plan(cfg: ResolvedConfig, clients: aws.AwsClients | None = None) -> ResumePlan:
    """What `resume` would do; UsageError (exit 2, nothing changed) when it must not."""
    if not targets.supports(cfg, FEATURE_COST_CAP):
        raise UsageError(f"environment '{cfg.env_name}' deploys to {cfg.environment.target}: the cost cap (and "
                         "so `resume`) is an ECS feature (CloudWatch alarms and Application Auto Scaling)",
                         hint="on the local engine, `deployctl run` starts the services again")
    if cfg.environment.preview:
        raise UsageError(f"'{cfg.env_name}' is a preview environment: the cost cap stops only the environment's "
                         "own services")
    stoppable = costcap.stopped_services(cfg)
    if not stoppable:
        raise UsageError(f"no cost cap stops services in {cfg.env_name}: nothing to resume",
                         hint="`monitoring.cost_cap` with `on_cap: stop` and `services` sets that up "
                              "(docs/cost-cap.md)")
    clients = clients or aws.clients(cfg.region)
    with aws.aws_errors(f"reading the ECS services and cost cap alarms of {cfg.env_name}"):
        live = ecs_scale.read(clients.ecs, cfg)
        states = ecs_costcap.alarm_states(clients.cloudwatch, cap_alarm_names(cfg))
    firing = sorted(n for n, st in states.items() if st == "ALARM")
    stopped = [s for s in stoppable if _desired(live.get(s)) == 0 and costcap.restore_count(cfg, s) > 0]
    if not stopped:
        missing = [s for s in stoppable if live.get(s) is None]
        why = f" ({', '.join(missing)} not deployed)" if missing else ""
        raise UsageError(f"nothing is stopped in {cfg.env_name}: {', '.join(stoppable)} "
                         f"{'is' if len(stoppable) == 1 else 'are'} not at 0 tasks{why}",
                         hint=f"`deployctl status --env {cfg.env_name}` shows what runs")
    if firing:
        raise UsageError(f"the cost cap alarm {', '.join(firing)} is still in ALARM: while it is, Application Auto "
                         f"Scaling runs the stop policy again (about once a minute), so {', '.join(stopped)} "
                         "would stop again; nothing was changed",
                         hint="wait until the alarm returns to OK (the topic is told; at most an hour after the "
                              "spending stopped), or raise the cap in deploy.yaml and deploy")
    restores = []
    for s in stopped:
        target = render_autoscaling.scalable_target(cfg, s)
        restores.append(Restore(s, render_ecs.service_name(cfg, s), costcap.restore_count(cfg, s),
                                int(target["MinCapacity"]), int(target["MaxCapacity"])))
    return ResumePlan(cfg.app, cfg.env_name, tuple(restores),
                      tuple(s for s in stoppable if s not in stopped and live.get(s) is not None))


def execute(cfg: ResolvedConfig, p: ResumePlan, *, lock_wait: float = 0.0, clients: aws.AwsClients | None = None,
            log: Callable[[str], None] = lambda s: None) -> None:
    """Under the deploy lock: check they are still stopped, register the targets, set the counts."""
    clients = clients or aws.clients(cfg.region)
    table = lock.LockTable(clients.client("dynamodb"))
    with lock.hold(table, cfg.app, cfg.env_name, wait=lock_wait, log=log), \
            aws.aws_errors(f"resuming the ECS services of {cfg.env_name}"):
        live = ecs_scale.read(clients.ecs, cfg)
        moved = [f"{r.service} now wants {_desired(live.get(r.service))}" for r in p.services
                 if _desired(live.get(r.service)) != 0]
        if moved:
            raise DeployFailed(f"the services changed while waiting for the lock: {'; '.join(moved)}; nothing "
                               "was resumed", hint=f"look again with `deployctl status --env {cfg.env_name}`")
        scaling = clients.client(ecs_costcap.AUTOSCALING)
        for r in p.services:
            # The range a deploy registers (MinCapacity 0 lets the stop policy act again), then the count.
            autoscaling_gateway.register(scaling, render_autoscaling.scalable_target(cfg, r.service))
            ecs_scale.set_count(clients.ecs, cfg, r.service, r.after)
            log(f"{r.service}: desired count 0 → {r.after}")

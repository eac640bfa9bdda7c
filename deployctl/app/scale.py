"""The `scale` use case: set services' desired counts within the guardrails, under the deploy
lock, recorded on the service (deployctl.scale_record) so `history` shows it.

Plan, then apply: `plan` reads what runs and refuses what the guardrails or auto scaling
forbid, changing nothing; `execute` takes the lock, checks nobody changed the counts in
between, sets them and records them. The next `run` sets deploy.yaml's `count` again (and
`diff` shows it): a scale is for now, deploy.yaml is for good.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from deployctl import lock, scale_record, targets
from deployctl import releases_tags as rt
from deployctl.adapters import aws
from deployctl.adapters.ecs_gateway import ServiceState
from deployctl.adapters.git import GitFacts
from deployctl.config.model import ResolvedConfig
from deployctl.errors import DeployFailed, UsageError
from deployctl.plan import Plan, guardrail_violations, make_plan
from deployctl.releases import Release
from deployctl.render import ecs as render
from deployctl.targets import ecs_scale
from deployctl.targets.base import FEATURE_SCALE

MAX_COUNT = 1000  # the limit of services.<name>.count
_PAIR = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]*)=(\S+)$")


@dataclass(frozen=True)
class Change:
    service: str
    ecs_service: str
    before: int
    after: int


@dataclass(frozen=True)
class ScalePlan:
    app: str
    env: str
    changes: tuple[Change, ...]  # only the services whose count changes
    unchanged: tuple[str, ...]  # asked for, already at that count
    monthly_usd: float  # the estimate with the counts running now
    monthly_usd_after: float

    @property
    def summary(self) -> list[str]:
        out = [f"scale {self.app}/{self.env}:"]
        out += [f"  {c.service} ({c.ecs_service}): {c.before} → {c.after} tasks" for c in self.changes]
        out += [f"  {name}: already at that count" for name in self.unchanged]
        if self.changes:
            out.append(f"  estimated ${self.monthly_usd:,.2f}/month → ${self.monthly_usd_after:,.2f}/month "
                       "(Fargate on-demand list prices)")
        return out

    @property
    def question(self) -> str:
        return f"Scale {', '.join(f'{c.service} to {c.after}' for c in self.changes)} in {self.env}?"

    def to_json(self, done: bool) -> dict[str, Any]:
        """deployctl.scale/v1. Keys are only ever added."""
        return {"schema": "deployctl.scale/v1", "app": self.app, "env": self.env, "done": done,
                "services": {c.service: {"ecs_service": c.ecs_service, "before": c.before, "after": c.after}
                             for c in self.changes},
                "unchanged": list(self.unchanged),
                "monthly_usd": self.monthly_usd, "monthly_usd_after": self.monthly_usd_after}


def parse_counts(cfg: ResolvedConfig, pairs: Sequence[str]) -> dict[str, int]:
    """`SERVICE=N` arguments → {service: N}; UsageError (exit 2) naming what is wrong."""
    if not pairs:
        raise UsageError("name at least one SERVICE=N", hint=f"e.g. `deployctl scale --env {cfg.env_name} "
                                                            f"{next(iter(cfg.services))}=3`")
    out: dict[str, int] = {}
    for pair in pairs:
        m = _PAIR.match(pair)
        if not m:
            raise UsageError(f"'{pair}' is not SERVICE=N", hint="e.g. api=3 (a service of deploy.yaml, a whole number)")
        name, raw = m.groups()
        if name not in cfg.services:
            raise UsageError(f"'{name}' is not a service of {cfg.env_name}",
                             hint=f"services: {', '.join(cfg.services)}")
        if not raw.isdigit() or int(raw) > MAX_COUNT:
            raise UsageError(f"{name}={raw}: the count must be a whole number from 0 to {MAX_COUNT}")
        if name in out and out[name] != int(raw):
            raise UsageError(f"{name} is given twice ({out[name]} and {raw})")
        out[name] = int(raw)
    return out


def _desired(live: ServiceState | None) -> int | None:
    return live.desired if live is not None else None


def plan(cfg: ResolvedConfig, pairs: Sequence[str], clients: aws.AwsClients | None = None) -> ScalePlan:
    """What `scale` would do; UsageError (exit 2, nothing changed) when it must not."""
    if not targets.supports(cfg, FEATURE_SCALE):
        raise UsageError(f"environment '{cfg.env_name}' deploys to {cfg.environment.target}: `scale` sets the "
                         "desired count of ECS services",
                         hint="change `count` in deploy.yaml and run `deployctl run` for this environment")
    if cfg.environment.preview:
        raise UsageError(f"'{cfg.env_name}' is a preview environment: a preview copy runs deploy.yaml's counts",
                         hint=f"change services.<name>.count for {cfg.env_name} in deploy.yaml")
    wanted = parse_counts(cfg, pairs)
    for name, count in wanted.items():
        auto = cfg.services[name].autoscaling
        if auto is not None and not auto.min <= count <= auto.max:
            raise UsageError(f"{name}={count} is outside its autoscaling range {auto.min}..{auto.max}: the "
                             "scaler would undo it", hint=f"scale within {auto.min}..{auto.max}, or change "
                                                          f"services.{name}.autoscaling in deploy.yaml")
    clients = clients or aws.clients(cfg.region)
    with aws.aws_errors(f"reading the ECS services of {cfg.env_name}"):
        live = ecs_scale.read(clients.ecs, cfg)
    missing = [n for n in wanted if live.get(n) is None]
    if missing:
        raise UsageError(f"{', '.join(render.service_name(cfg, n) for n in missing)} does not exist in cluster "
                         f"{cfg.environment.cluster}: nothing to scale",
                         hint=f"deploy it first with `deployctl run --env {cfg.env_name}`")
    now = {n: c for n, c in ((n, _desired(s)) for n, s in live.items()) if c is not None}
    after = {**now, **wanted}
    violations = guardrail_violations(_plan_with(cfg, after))
    if violations:
        raise UsageError("scale refused by guardrails: " + "; ".join(violations),
                         hint="ask for fewer tasks, or raise the environment's guardrails in deploy.yaml")
    changes = tuple(Change(n, render.service_name(cfg, n), now[n], c) for n, c in wanted.items() if now[n] != c)
    return ScalePlan(cfg.app, cfg.env_name, changes, tuple(n for n, c in wanted.items() if now[n] == c),
                     _plan_with(cfg, now).cost.monthly_usd, _plan_with(cfg, after).cost.monthly_usd)


def _plan_with(cfg: ResolvedConfig, counts: dict[str, int]) -> Plan:
    """The environment's plan with these counts (the running ones for services not named): the
    guardrails and the cost estimate then see what would run."""
    services = {n: s.model_copy(update={"count": counts[n]}) if n in counts and s.autoscaling is None else s
                for n, s in cfg.services.items()}
    return make_plan(cfg.model_copy(update={"services": services}), GitFacts(sha="scale", branch="scale"))


def execute(cfg: ResolvedConfig, p: ScalePlan, *, lock_wait: float = 0.0, clients: aws.AwsClients | None = None,
            log: Callable[[str], None] = lambda s: None, who: str | None = None) -> None:
    """Under the deploy lock: check the counts are still those shown, set them, record them."""
    if not p.changes:
        return
    clients = clients or aws.clients(cfg.region)
    who = who or rt.actor()
    table = lock.LockTable(clients.client("dynamodb"))
    with lock.hold(table, cfg.app, cfg.env_name, wait=lock_wait, log=log), \
            aws.aws_errors(f"scaling the ECS services of {cfg.env_name}"):
        live = ecs_scale.read(clients.ecs, cfg)
        moved = [f"{c.service} now wants {_desired(live.get(c.service))} (was {c.before})"
                 for c in p.changes if _desired(live.get(c.service)) != c.before]
        if moved:
            raise DeployFailed(f"the services changed while waiting for the lock: {'; '.join(moved)}; nothing "
                               "was scaled", hint=f"look again with `deployctl status --env {cfg.env_name}` and "
                                                  "run scale again")
        at = scale_record.stamp(datetime.now(UTC))
        for c in p.changes:
            ecs_scale.set_count(clients.ecs, cfg, c.service, c.after)
            log(f"{c.service}: desired count {c.before} → {c.after}")
            service = live[c.service]
            assert service is not None  # read() above; plan() refused missing services
            ecs_scale.record(clients.ecs, cfg, c.service, service, at=at, before=c.before, after=c.after, who=who)


def history_entries(cfg: ResolvedConfig, clients: aws.AwsClients | None = None) -> list[Release]:
    """The scale records of an ECS environment as history entries of kind `scale`, one per
    `deployctl scale` (its services together), newest first."""
    if not targets.supports(cfg, FEATURE_SCALE):
        return []
    clients = clients or aws.clients(cfg.region)
    with aws.aws_errors(f"reading the scale records of {cfg.env_name}"):
        found = ecs_scale.events(clients.ecs, cfg)
    groups: dict[tuple[str, str], list[scale_record.ScaleEvent]] = {}
    for e in found:
        groups.setdefault((e.at, e.who), []).append(e)
    out = []
    for (at, who), evs in groups.items():
        evs.sort(key=lambda e: e.service)
        when = evs[0].iso
        out.append(Release(
            id=f"scale-{at}", app=cfg.app, env=cfg.env_name, outcome=rt.SUCCEEDED, git_sha="", image_digest="",
            image="", who=who, started_at=when, finished_at=when, duration_s=None,
            detail=", ".join(f"{e.service} {e.before} → {e.after} tasks" for e in evs),
            kind=scale_record.KIND, services=tuple(e.service for e in evs)))
    return sorted(out, key=lambda r: r.started_at, reverse=True)

"""Pure planning: (config, git facts, options) → Plan. `plan`, `--dry-run` and `run` share it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deployctl.adapters.git import GitFacts
from deployctl.adapters.registry import ImageRef
from deployctl.config import fargate
from deployctl.config.model import ResolvedConfig
from deployctl.config.units import format_duration
from deployctl.errors import UsageError
from deployctl.render import autoscaling, costcap, ecs, monitoring
from deployctl.render import jobs as render_jobs
from deployctl.render.autoscaling import ServiceScaling
from deployctl.render.ecs import Facts
from deployctl.rollout import rollback_budget


@dataclass(frozen=True)
class Stage:
    name: str
    needs: tuple[str, ...]
    detail: str


@dataclass(frozen=True)
class ServiceCost:
    service: str
    tasks: int
    max_tasks: int
    vcpu: float
    memory_gb: float
    spot: bool
    monthly_usd: float
    monthly_usd_max: float


@dataclass(frozen=True)
class JobCost:
    """A `jobs:` entry at its schedule: runs per month × expected duration × Fargate (Spot) price."""

    job: str
    schedule: str
    runs_per_month: float
    duration_s: float
    vcpu: float
    memory_gb: float
    spot: bool
    monthly_usd: float


@dataclass(frozen=True)
class CostEstimate:
    services: tuple[ServiceCost, ...]
    price_date: str = fargate.PRICE_DATE
    price_region: str = fargate.PRICE_REGION
    jobs: tuple[JobCost, ...] = ()
    # Cost advice (Compute Savings Plans for always-on services, cold starts), one line each.
    advice: tuple[str, ...] = ()

    @property
    def monthly_usd(self) -> float:
        return round(sum(s.monthly_usd for s in self.services) + self.jobs_usd, 2)

    @property
    def monthly_usd_max(self) -> float:
        return round(sum(s.monthly_usd_max for s in self.services) + self.jobs_usd, 2)

    @property
    def jobs_usd(self) -> float:
        return sum(j.monthly_usd for j in self.jobs)

    @property
    def tasks(self) -> int:
        return sum(s.tasks for s in self.services)


@dataclass(frozen=True)
class ServicePlan:
    name: str
    ecs_service: str
    family: str
    wave: int
    task_definition: dict[str, Any]
    create_service: dict[str, Any]
    update_service: dict[str, Any]
    # Application Auto Scaling requests (deployctl.render.autoscaling); None without `autoscaling`.
    autoscaling: ServiceScaling | None = None

    @property
    def deployment_alarms(self) -> tuple[str, ...]:
        """Every alarm that rolls this service back, read from the UpdateService request itself:
        deploy.alarms plus the generated monitoring.roll_back_on alarms of this service."""
        conf = self.update_service.get("deploymentConfiguration") or {}
        alarms = conf.get("alarms") or {}
        return tuple(alarms.get("alarmNames") or ()) if alarms.get("rollback") else ()


@dataclass(frozen=True)
class Plan:
    app: str
    env: str
    target: str
    region: str
    git: GitFacts
    image_repository: str
    image_registry: str
    image_tag: str
    image_ref: str
    stages: tuple[Stage, ...]
    services: tuple[ServicePlan, ...]
    alarms: tuple[str, ...]
    cost: CostEstimate
    config: ResolvedConfig = field(repr=False, compare=False)
    # `promote_from` of the environment: it is deployed by `deployctl promote`, never built.
    promote_from: str | None = None
    preview_name: str | None = None

    @property
    def on_ecs(self) -> bool:
        return self.target == "ecs"

    def waves(self) -> list[list[ServicePlan]]:
        out: dict[int, list[ServicePlan]] = {}
        for svc in self.services:
            out.setdefault(svc.wave, []).append(svc)
        return [out[k] for k in sorted(out)]

    def to_json_dict(self) -> dict[str, Any]:
        """Stable machine-readable form (`deployctl plan --json`). Keys are only ever added."""
        return {
            "schema": "deployctl.plan/v1",
            "app": self.app,
            "env": self.env,
            "target": self.target,
            "region": self.region,
            "git": {"sha": self.git.sha, "branch": self.git.branch, "dirty": self.git.dirty},
            # tag is null when the image is named by digest only (`--image repo@sha256:…`, promote).
            "image": {"registry": self.image_registry, "repository": self.image_repository,
                      "tag": self.image_tag or None, "ref": self.image_ref},
            "stages": [{"name": s.name, "needs": list(s.needs), "detail": s.detail} for s in self.stages],
            "promote_from": self.promote_from,
            "preview": self.preview_name,
            "services": {s.name: self._service_json(s) for s in self.services},
            # Every alarm that can roll back any service; per service under services.*.deployment_alarms.
            "alarms": list(self.alarms),
            "cost_cap": self._cost_cap_json() if self.on_ecs else None,
            "cost": None if not self.on_ecs else {
                "monthly_usd": self.cost.monthly_usd,
                "monthly_usd_max": self.cost.monthly_usd_max,
                "tasks": self.cost.tasks,
                "price_date": self.cost.price_date,
                "price_region": self.cost.price_region,
                "assumptions": "Fargate on-demand Linux prices, 730 h/month; Spot assumed 70% off",
                "services": [{
                    "service": c.service, "tasks": c.tasks, "max_tasks": c.max_tasks, "vcpu": c.vcpu,
                    "memory_gb": c.memory_gb, "spot": c.spot, "monthly_usd": round(c.monthly_usd, 2),
                    "monthly_usd_max": round(c.monthly_usd_max, 2),
                } for c in self.cost.services],
                "jobs": [{
                    "job": j.job, "schedule": j.schedule, "runs_per_month": round(j.runs_per_month, 1),
                    "duration_s": j.duration_s, "vcpu": j.vcpu, "memory_gb": j.memory_gb, "spot": j.spot,
                    "monthly_usd": round(j.monthly_usd, 2),
                } for j in self.cost.jobs],
                "advice": list(self.cost.advice),
            },
        }

    def cost_cap_alarms(self) -> list[dict[str, Any]]:
        """The hourly cap alarms with monitoring.cost_cap: PutMetricAlarm requests with their actions
        (placeholders for the ARNs a deploy reads; docs/cost-cap.md)."""
        mon = self.config.monitoring
        if mon is None or mon.cost_cap is None or self.preview_name:
            return []
        return [a.request for a in monitoring.alarms(self.config, mon) if a.kind in costcap.CAP_KINDS]

    def _cost_cap_json(self) -> dict[str, Any] | None:
        alarms = self.cost_cap_alarms()
        if not alarms:
            return None
        cfg = self.config
        return {"topic": costcap.topic_name(cfg),
                "subscriptions": [{"protocol": p, "endpoint": e} for p, e in costcap.subscriptions(cfg)],
                "stops": costcap.stopped_services(cfg), "stop_policy": costcap.STOP_POLICY,
                "alarms": alarms}

    def _service_json(self, s: ServicePlan) -> dict[str, Any]:
        if not self.on_ecs:
            # The local engine: no ECS service, task definition or deployment alarms exist there.
            svc = self.config.services[s.name]
            return {"wave": s.wave, "count": svc.count, "port": svc.port, "local_port": svc.local_port}
        return {
            "ecs_service": s.ecs_service,
            "family": s.family,
            "wave": s.wave,
            "task_definition": s.task_definition,
            "create_service": s.create_service,
            "update_service": s.update_service,
            "deployment_alarms": list(s.deployment_alarms),
            "autoscaling": s.autoscaling.to_json() if s.autoscaling else None,
        }


def image_tag(cfg: ResolvedConfig, git: GitFacts) -> str:
    tag = cfg.image.tag.format(git_sha=git.tag, branch=_tag_safe(git.branch), env=cfg.env_name)
    # {git_sha} carries the dirty suffix. A template without it must still never give a dirty
    # tree a clean tree's tag (the push would re-point it), so the suffix goes on the end, and
    # the 128-character cut never takes it off.
    suffix = ""
    if git.dirty and git.dirty_hash and "{git_sha}" not in cfg.image.tag:
        suffix = f"-dirty-{git.dirty_hash[:12]}"
    return tag[:128 - len(suffix)] + suffix


def _tag_safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text)


def registry_host(cfg: ResolvedConfig, account_id: str) -> str:
    if cfg.image.registry == "ecr":
        return f"{account_id}.dkr.ecr.{cfg.region}.amazonaws.com"
    return cfg.image.registry


def estimate_cost(cfg: ResolvedConfig) -> CostEstimate:
    rows = []
    for name, svc in cfg.services.items():
        tasks = svc.autoscaling.min if svc.autoscaling else svc.count
        max_tasks = svc.autoscaling.max if svc.autoscaling else svc.count
        one = fargate.monthly_cost(svc.cpu, svc.memory, 1, arch=cfg.image.arch, spot=svc.spot)
        rows.append(ServiceCost(name, tasks, max_tasks, svc.cpu / 1024, svc.memory / 1024, svc.spot,
                                one * tasks, one * max_tasks))
    jobs = []
    for name, job in cfg.jobs.items():
        runs, usd = render_jobs.monthly_cost(cfg, name)
        cpu, memory = render_jobs.size(cfg, name)
        jobs.append(JobCost(name, job.schedule, runs, job.duration, cpu / 1024, memory / 1024, job.spot, usd))
    return CostEstimate(tuple(rows), jobs=tuple(jobs), advice=tuple(cost_advice(cfg, rows)))


# A health start_period this long on a service that scales to zero means every first request after
# idle waits for it (model loading): worth a line in the plan.
COLD_START_PERIOD = 60.0


def cost_advice(cfg: ResolvedConfig, rows: list[ServiceCost]) -> list[str]:
    """Compute Savings Plans for the always-on (on-demand) part of each service; cold starts of
    services that may run zero tasks while their start_period is long."""
    out = []
    lo, hi = fargate.SAVINGS_PLAN_RANGE
    for c in rows:
        if c.tasks > 0 and not c.spot:
            out.append(f"{c.service}: {c.tasks} always-on task{'s' if c.tasks != 1 else ''} "
                       f"(${c.monthly_usd:,.2f}/month on demand); a Compute Savings Plan would save about "
                       f"${c.monthly_usd * lo:,.2f}–${c.monthly_usd * hi:,.2f}/month ({lo:.0%}–{hi:.0%}, "
                       f"1-year no upfront to 3-year all upfront, published rates of {fargate.SAVINGS_PLAN_DATE})")
    for name, svc in cfg.services.items():
        low = svc.autoscaling.min if svc.autoscaling else svc.count
        start = svc.health.start_period if svc.health else 0.0
        if low == 0 and start >= COLD_START_PERIOD:
            out.append(f"{name}: may run 0 tasks and its health start_period is {format_duration(start)}: "
                       f"the first request after idle waits for a cold start of about that long; "
                       f"keep a minimum of 1 task if that matters")
    return out


def waves(cfg: ResolvedConfig) -> dict[str, int]:
    """Deploy wave per service: services with no `after` go first, dependents after them."""
    level: dict[str, int] = {}
    for name in cfg.services:
        # An explicit stack, not recursion: a long `after` chain must not hit the recursion limit.
        # Validation has ruled out cycles and unknown names.
        stack = [name]
        while stack:
            top = stack[-1]
            if top in level:
                stack.pop()
                continue
            pending = [d for d in cfg.services[top].after if d not in level]
            if pending:
                stack.extend(pending)
                continue
            level[top] = 1 + max((level[d] for d in cfg.services[top].after), default=-1)
            stack.pop()
    return level


def stages(cfg: ResolvedConfig, image_ref: str, *, image_given: bool = False) -> tuple[Stage, ...]:
    """The stages of `run` (or, for an environment with promote_from, of `promote`). With
    `--image` there is nothing to build or push: deploy waits for lint and test only, as in `run`."""
    out: list[Stage] = []
    checks: list[str] = []
    source = cfg.environment.promote_from
    if source:
        # `run` refuses this environment; `promote` reads what the source runs and deploys that.
        out.append(Stage("promote", (), f"take the image {source} runs now, by digest, from its newest "
                         f"succeeded release (`deployctl promote {source} {cfg.env_name}`); nothing is built"))
        checks.append("promote")
    else:
        for name in ("lint", "test"):
            stage = getattr(cfg.stages, name)
            if stage:
                # In the built image (in: image without a Dockerfile target of its own): after build.
                in_built = stage.where == "image" and not stage.target
                where = "" if stage.where == "host" else \
                    f" (in the {'built image' if in_built else f'image target {stage.target}'})"
                out.append(Stage(name, ("build",) if in_built else (), "; ".join(stage.run) + where))
                checks.append(name)
    if not source and not image_given:
        out.append(Stage("build", (), f"docker build {cfg.image.context}"
                         + (f" --target {cfg.image.target}" if cfg.image.target else "")))
        out.append(Stage("push", (*checks, "build"), f"push {image_ref}"))
        checks = ["push"]
    where = f"ECS cluster {cfg.environment.cluster}" if cfg.environment.target == "ecs" else "local Docker engine"
    detail = f"rolling deploy to {where}"
    if cfg.environment.target == "ecs":
        # The bound on the whole deploy (docs/timeouts.md): people plan CI job timeouts with it.

        timeout = cfg.deploy.timeout
        detail += (f"; at most {format_duration(timeout)}, plus {format_duration(rollback_budget(timeout))} "
                   "for deployctl's own rollback")
    out.append(Stage("deploy", tuple(checks), detail))
    return tuple(out)


def check_image_override(ref: str | None) -> str | None:
    """`--image REF` as given, after checking it is a full reference; None when not given.

    An empty or malformed value is a usage error (exit 2): silently planning the image this
    commit would build instead is the one thing --image must never do."""
    if ref is None:
        return None

    if not ref.strip():
        raise UsageError("--image is empty", hint="give a full image reference, e.g. "
                                                 "127.0.0.1:5000/app:3f2a9c1d0b7e, or leave --image out to build")
    ImageRef.parse(ref)  # raises UsageError naming what is wrong
    return ref.strip()


def make_plan(cfg: ResolvedConfig, git: GitFacts, *, facts: Facts | None = None,
              image_override: str | None = None) -> Plan:
    facts = facts or Facts(git_sha=git.sha)
    if facts.git_sha is None:
        facts = Facts(**{**facts.__dict__, "git_sha": git.sha})
    tag = image_tag(cfg, git)
    host, repository = registry_host(cfg, facts.account_id), cfg.image.repository
    repo_ref = f"{host}/{repository}"
    source = cfg.environment.promote_from
    if image_override:
        # The plan names the image given, not the one this commit would build.
        given = ImageRef.parse(image_override)
        host, repository, tag = given.registry, given.repository, given.tag or ""
        image_ref = image_override
    elif facts.image_digest:
        image_ref = f"{repo_ref}@{facts.image_digest}"
    elif source:
        # Promotion deploys the digest the source runs, known only when `promote` reads it.
        tag, image_ref = "", f"{repo_ref}@<digest {source} runs>"
    else:
        image_ref = f"{repo_ref}:{tag}"
    wave_of = waves(cfg)
    services = []
    for name in cfg.services:
        td = ecs.task_definition(cfg, name, image_ref, facts)
        fam = str(td["family"])
        services.append(ServicePlan(
            name=name,
            ecs_service=ecs.service_name(cfg, name, facts.preview_name),
            family=fam,
            wave=wave_of[name],
            task_definition=td,
            create_service=ecs.create_service(cfg, name, fam, facts),
            update_service=ecs.update_service(cfg, name, fam, facts),
            autoscaling=autoscaling.service_scaling(cfg, name, preview=facts.preview_name)
            if cfg.environment.target == "ecs" else None,
        ))
    return Plan(
        app=cfg.app, env=cfg.env_name, target=cfg.environment.target, region=cfg.region, git=git,
        image_repository=repository, image_registry=host, image_tag=tag, image_ref=image_ref,
        stages=stages(cfg, image_ref, image_given=image_override is not None), services=tuple(services),
        alarms=tuple(dict.fromkeys(a for sp in services for a in sp.deployment_alarms)) if cfg.environment.target
        == "ecs" else (), cost=estimate_cost(cfg), config=cfg, promote_from=source, preview_name=facts.preview_name,
    )


def guardrail_violations(plan: Plan) -> list[str]:
    """Messages for every guardrail the plan breaks (exit 2 in the CLI)."""
    g = plan.config.environment.guardrails
    if g is None:
        return []
    out = []
    if g.max_monthly_usd is not None and plan.cost.monthly_usd_max > g.max_monthly_usd:
        out.append(f"estimated ${plan.cost.monthly_usd_max:,.2f}/month is over the limit "
                   f"max_monthly_usd ${g.max_monthly_usd:,.2f}")
    max_tasks = sum(c.max_tasks for c in plan.cost.services)
    if g.max_tasks is not None and max_tasks > g.max_tasks:
        out.append(f"{max_tasks} tasks is over the limit max_tasks {g.max_tasks}")
    if g.max_memory is not None:
        for name, svc in plan.config.services.items():
            if svc.memory > g.max_memory:
                out.append(f"service {name} memory {svc.memory} MiB is over the limit max_memory {g.max_memory} MiB")
    return out

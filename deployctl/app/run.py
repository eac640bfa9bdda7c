"""The `run` use case: which stages run, the Job of each, and the outside world they need.

deployctl.commands.run_cmd parses flags and renders; this module builds what the stage engine
(deployctl.pipeline) runs. Stages live in deployctl.stages, deploys behind deployctl.targets.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from deployctl.adapters import docker_config
from deployctl.adapters.registry import ImageRef
from deployctl.app.deploy_stage import hinted
from deployctl.errors import UsageError
from deployctl.pipeline import Job
from deployctl.plan import make_plan
from deployctl.redact import Redactor
from deployctl.run_metrics import metric_data
from deployctl.stages import EngineHandle, ImageSpec, ImageState, commands, in_image
from deployctl.stages import build as build_stage
from deployctl.stages import push as push_stage
from deployctl.stages.access import (
    ECR_HOST,
    ENV_PASSWORD,
    ENV_USER,
    ImageMissing,
    RegistryAccess,
    resolve_digest,
)
from deployctl.stages.build import record_image
from deployctl.stages.cancel import cancellable
from deployctl.targets import for_config
from deployctl.targets.base import DeployOptions

if TYPE_CHECKING:
    from deployctl.adapters.aws import AwsClients, Clients
    from deployctl.adapters.docker_config import Credentials
    from deployctl.adapters.engine import Client
    from deployctl.config.model import ResolvedConfig
    from deployctl.pipeline import RunReport, StageContext
    from deployctl.plan import Plan, Stage
    from deployctl.render.ecs import Facts

StageFn = Callable[["StageContext"], None]

STAGE_ORDER = ("lint", "test", "build", "push", "deploy")


def _names(text: str | None, flag: str, known: tuple[str, ...]) -> list[str]:
    if text is None:
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"{flag} needs stage names", hint=f"stages: {', '.join(known)}")
    for name in names:
        if name not in STAGE_ORDER:
            raise UsageError(f"{flag}: unknown stage {name!r}", hint=f"stages: {', '.join(STAGE_ORDER)}")
    return names


def select_stages(cfg: ResolvedConfig, *, only: str | None = None, skip: str | None = None,
                  from_stage: str | None = None, image: str | None = None) -> tuple[str, ...]:
    """The stages this run executes, in pipeline order. Pure; UsageError for nonsense."""
    configured = tuple(n for n in STAGE_ORDER if n not in ("lint", "test") or getattr(cfg.stages, n))
    only_names = _names(only, "--only", configured)
    skip_names = _names(skip, "--skip", configured)
    from_names = _names(from_stage, "--from", configured)
    if len(from_names) > 1:
        raise UsageError("--from takes one stage")
    selected = list(configured)
    if only_names:
        missing = [n for n in only_names if n not in configured]
        if missing:
            raise UsageError(f"--only: stage {missing[0]} has no commands configured in deploy.yaml",
                             hint=f"add stages.{missing[0]}.run, or leave it out")
        selected = [n for n in selected if n in only_names]
    if from_names:
        start = STAGE_ORDER.index(from_names[0])
        selected = [n for n in selected if STAGE_ORDER.index(n) >= start]
    selected = [n for n in selected if n not in skip_names]
    if image is not None:
        asked = [n for n in ("build", "push") if n in only_names]
        if asked:
            raise UsageError(f"--image deploys an existing image, so it cannot be combined with "
                             f"--only {asked[0]}")
        selected = [n for n in selected if n not in ("build", "push")]
    if not selected:
        raise UsageError("no stages left to run", hint=f"stages: {', '.join(configured)}")
    return tuple(selected)


# --- jobs -----------------------------------------------------------------------------------


def build_jobs(
    cfg: ResolvedConfig,
    plan: Plan,
    facts: Facts,
    selected: tuple[str, ...],
    *,
    root: str,
    clients: AwsClients | None = None,
    redactor: Redactor | None = None,
    image_override: str | None = None,
    options: DeployOptions | None = None,
) -> list[Job]:
    """A Job per selected stage. A stage left out of the run passes on what it needed: with
    push skipped, deploy waits for lint, test and build, so a failing test still stops it
    (see effective_needs)."""

    project = Path(root)
    spec = ImageSpec(project_dir=project, image=cfg.image, registry=plan.image_registry,
                     repository=plan.image_repository, tag=plan.image_tag, app=cfg.app,
                     git_sha=plan.git.sha, branch=plan.git.branch, dirty=plan.git.dirty)
    state = ImageState()
    engine = EngineHandle(_connect)
    access = registry_access(cfg, spec.registry, clients, redactor)
    ecr = clients.ecr if clients is not None and cfg.image.registry == "ecr" else None

    fns: dict[str, StageFn] = {}
    for name in ("lint", "test"):
        stage_cfg = getattr(cfg.stages, name)
        if stage_cfg is not None:
            fns[name] = in_image.job_fn(stage_cfg, spec, engine) if stage_cfg.where == "image" else \
                commands.job_fn(stage_cfg, project)
    fns["build"] = build_stage.job_fn(spec, state, engine, access, check_registry="push" in selected)
    fns["push"] = push_stage.job_fn(spec, state, engine, access, ecr=ecr)
    fns["deploy"] = _deploy_fn(cfg, plan, facts, spec, access, clients, image_override, options)

    needs = effective_needs(plan.stages, selected)
    return [Job(stage.name, needs[stage.name], hinted(fns[stage.name]))
            for stage in plan.stages if stage.name in selected]


def effective_needs(stages: Sequence[Stage], selected: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """stage name → the selected stages it waits for. Pure.

    A need on a stage left out of the run is replaced by that stage's own needs, transitively:
    skipping push must not let deploy start before lint and test have passed. Stages that are
    not configured at all (no lint commands) are simply not waited for.
    """
    declared = {stage.name: tuple(stage.needs) for stage in stages}

    def resolve(name: str, seen: frozenset[str]) -> list[str]:
        out: list[str] = []
        for need in declared.get(name, ()):
            if need in seen:
                continue  # a cycle is the engine's to report; never recurse forever here
            found = [need] if need in selected else resolve(need, seen | {need})
            out.extend(n for n in found if n not in out)
        return out

    return {name: tuple(resolve(name, frozenset({name}))) for name in declared if name in selected}


def _deploy_fn(cfg: ResolvedConfig, plan: Plan, facts: Facts, spec: ImageSpec, access: RegistryAccess,
               clients: AwsClients | None, image_override: str | None, options: DeployOptions | None) -> StageFn:
    chosen = options or DeployOptions()  # none given: all as deploy.yaml says

    def run(ctx: StageContext) -> None:
        target = for_config(cfg)
        image_ref = image_override or ctx.outputs.get("image_ref")
        if not image_ref:
            # Push was not part of this run: deploy what the registry holds for this commit.
            ecr = clients.ecr if clients is not None else None
            found = cancellable(ctx, lambda: resolve_digest(ImageRef.parse(spec.ref), access, ecr))
            record_image(ctx.outputs, spec, found)
            image_ref = ctx.outputs["image_ref"]
        # No digest: `--image` named an image the registry does not have; preflight says so.
        digest = image_ref.rsplit("@", 1)[1] if "@" in image_ref else None
        deploy_plan = make_plan(cfg, plan.git, facts=dataclasses.replace(facts, image_digest=digest),
                                image_override=image_ref)
        ctx.outputs.setdefault("image_ref", image_ref)
        if digest:
            ctx.outputs.setdefault("digest", digest)
        with target.lock(deploy_plan, chosen, ctx):
            target.deploy(deploy_plan, image_ref, ctx, chosen)

    return run


# --- outside world, created lazily ----------------------------------------------------------


def _connect() -> Client:
    from deployctl.adapters import engine  # lazy: the docker SDK stays off the plan and skip paths

    return engine.connect()


def _docker_config_credentials(host: str) -> Credentials | None:
    return docker_config.credentials(host)


def registry_access(cfg: ResolvedConfig, host: str, clients: AwsClients | None,
                    redactor: Redactor | None) -> RegistryAccess:
    ecr = clients.ecr if clients is not None and cfg.image.registry == "ecr" else None
    if redactor is None:
        return RegistryAccess(host, ecr=ecr, docker_config=_docker_config_credentials)
    return RegistryAccess(host, ecr=ecr, docker_config=_docker_config_credentials,
                          on_credentials=redactor.add_credentials)


def is_ecr(image: str | None) -> bool:
    return bool(image) and bool(ECR_HOST.match(str(image).split("/", 1)[0]))


def aws_clients(cfg: ResolvedConfig) -> Clients:
    from deployctl.adapters import aws  # lazy: boto3 stays off the local and --help paths

    return aws.clients(cfg.region)


def resolve_image(image: str, clients: AwsClients | None, redactor: Redactor, *, defer_missing: bool = False) -> str:
    """`image` by digest. An image the registry does not have is refused here (ImageMissing),
    unless `defer_missing`: the target's preflight checks the image, so it is handed on as given."""
    ref = ImageRef.parse(image)
    ecr = clients.ecr if clients is not None and is_ecr(image) else None
    access = RegistryAccess(ref.registry, docker_config=_docker_config_credentials,
                            on_credentials=redactor.add_credentials)
    try:
        return ref.with_digest(resolve_digest(ref, access, ecr))
    except ImageMissing:
        if not defer_missing:
            raise
        # Not refused on its own: the deploy's preflight reports it together with every other
        # missing thing, before the lock is taken or anything is registered.
        return image


def run_redactor(cfg: ResolvedConfig | None = None, environ: Mapping[str, str] | None = None) -> Redactor:
    """The run's redactor, knowing every secret value the run can know before any stage runs:
    the registry password from the environment and the secret values the target reads from
    that same environment (the local target's services' secrets), which lint and test inherit."""

    environ = os.environ if environ is None else environ
    redactor = Redactor()
    redactor.add_credentials(environ.get(ENV_USER), environ.get(ENV_PASSWORD))
    if cfg is not None:
        for value in for_config(cfg).secret_values(environ):
            redactor.add(value)
    return redactor


def publish_run_metrics(cfg: ResolvedConfig, plan: Plan, result: RunReport) -> None:
    """With monitoring.publish_run_metrics, send stage durations and the outcome to CloudWatch.
    Best effort: a metrics hiccup must never turn a good deploy into a failed run."""
    mon = cfg.monitoring
    if mon is None or not mon.publish_run_metrics:
        return
    from deployctl.adapters import aws  # lazy: boto3 stays off the local and --help paths

    try:
        cloudwatch = aws.clients(cfg.region).cloudwatch
        cloudwatch.put_metric_data(Namespace=mon.run_metrics_namespace, MetricData=metric_data(plan, result))
    except Exception as exc:  # noqa: BLE001 - reported, never fatal
        print(f"warning: could not publish run metrics to CloudWatch: {exc}", file=sys.stderr)




def with_account_id(cfg: ResolvedConfig, facts: Facts, clients: AwsClients) -> Facts:
    """`facts` with the AWS account id, which names the ECR registry host."""
    from deployctl.adapters import aws  # lazy: boto3 stays off the local and --help paths

    with aws.aws_errors("reading the AWS account id for the ECR registry"):
        return dataclasses.replace(facts, account_id=aws.account_id(clients))

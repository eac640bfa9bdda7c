"""`deployctl run`: the pipeline of one environment, lint → test → build → push → deploy.

This module only wires: config → git facts → Plan → a Job per selected stage → the engine
(deployctl.pipeline) → report and exit code. The stages live in deployctl.stages, deploys in
deployctl.targets.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import TYPE_CHECKING, Any

import typer

from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, git_facts, load, project_dir
from deployctl.commands.release_cmds import parse_lock_wait

if TYPE_CHECKING:
    from deployctl.config.model import ResolvedConfig
    from deployctl.pipeline import Job
    from deployctl.plan import Plan

STAGE_ORDER = ("lint", "test", "build", "push", "deploy")


def run(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    only: str | None = typer.Option(None, "--only", help="Run only these stages, e.g. lint,test."),
    skip: str | None = typer.Option(None, "--skip", help="Leave out these stages, e.g. lint."),
    from_stage: str | None = typer.Option(None, "--from", help="Start at this stage, e.g. build."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and the stages to run, then stop."),
    as_json: bool = JSON_OPTION,
    report: str | None = typer.Option(None, "--report", help="Also write the JSON run report to this file."),
    image: str | None = typer.Option(None, "--image",
                                     help="Deploy this image (host/repo:tag or @sha256:…) instead of "
                                          "building; build and push are skipped."),
    force: bool = typer.Option(False, "--force", help="Deploy even when nothing changed."),
    no_rollback: bool = typer.Option(False, "--no-rollback", help="Leave a failed deploy in place."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Answer yes to confirmations (CI)."),
    lock_wait: str | None = typer.Option(None, "--lock-wait", metavar="DURATION",
                                         help="Wait this long (e.g. 10m) for another deploy of this "
                                              "environment to finish instead of failing at once."),
    name: str | None = typer.Option(None, "--name",
                                    help="Preview copy name, for environments with preview: true (e.g. pr-42)."),
) -> None:
    """Run the pipeline for one environment: lint, test and build at once, then push, then deploy.

    A second run on an unchanged commit finds the image in the registry and skips build and
    push. Exit codes: 0 ok, 1 a stage failed, 2 usage/config, 130 interrupted.

    Examples:  deployctl run --env dev
               deployctl run --env staging --only lint,test --json
               deployctl run --env staging --image 127.0.0.1:5000/app:3f2a9c1d0b7e
               deployctl run --env preview --name pr-42
    """
    from deployctl.errors import UsageError
    from deployctl.plan import check_image_override, guardrail_violations, make_plan
    from deployctl.preview import check_name
    from deployctl.render.ecs import Facts

    cfg = load(file, env)
    if report is not None:
        _check_report(report)
    preview_name = check_name(cfg, name)
    image = check_image_override(image)  # "" or "not a ref" is exit 2, as for `plan`
    source = cfg.environment.promote_from
    if source:
        raise UsageError(
            f"`run --env {env}` is refused: {env} is only deployed by promotion from "
            f"{source}, so it runs exactly the image that was tested there",
            hint=f"deploy to {source} with `deployctl run --env {source}`, then "
                 f"`deployctl promote {source} {env}`",
        )
    selected = select_stages(cfg, only=only, skip=skip, from_stage=from_stage, image=image)
    git = git_facts(file)
    root = project_dir(file)
    redactor = _redactor(cfg)
    needs_registry = bool({"build", "push", "deploy"} & set(selected)) or image is not None
    uses_ecr = cfg.image.registry == "ecr" or _is_ecr(image)
    clients = _aws_clients(cfg) if needs_registry and uses_ecr else None
    facts = Facts(git_sha=git.sha, preview_name=preview_name)
    if clients is not None and cfg.image.registry == "ecr" and not dry_run:
        # A dry run shows `<account-id>` as `plan` does: it needs no AWS credentials at all.
        from deployctl.adapters import aws

        with aws.aws_errors("reading the AWS account id for the ECR registry"):
            facts = dataclasses.replace(facts, account_id=aws.account_id(clients))

    # Guardrails first: a plan over budget is refused before any registry or AWS call.
    plan = make_plan(cfg, git, facts=facts, image_override=image)
    violations = guardrail_violations(plan) if "deploy" in selected else []
    if violations and not dry_run:
        raise UsageError("plan refused by guardrails: " + "; ".join(violations),
                         hint="lower count/cpu/memory or raise the environment's guardrails")
    override = image
    if image is not None and not dry_run:
        override = _resolve_image(image, clients, redactor)
        plan = make_plan(cfg, git, facts=facts, image_override=override)

    if dry_run:
        _print_dry_run(plan, selected, as_json, violations)
        if violations:
            raise UsageError("plan refused by guardrails: " + "; ".join(violations))
        return
    from deployctl.targets import DeployOptions

    options = DeployOptions(force=force, no_rollback=no_rollback, timeout=cfg.deploy.timeout,
                            poll_interval=cfg.deploy.poll_interval, yes=yes,
                            lock_wait=parse_lock_wait(lock_wait), preview_name=preview_name)
    jobs = build_jobs(cfg, plan, facts, selected, root=str(root), clients=clients, redactor=redactor,
                      image_override=override, options=options)

    from deployctl.pipeline import run_jobs
    from deployctl.ui import make_reporter
    from deployctl.ui.report import report_json

    if "deploy" in selected and not as_json:
        # Every run that deploys says what it will cost: AI services are big and mistakes costly.
        typer.echo(_cost_line(plan))
    result = run_jobs(jobs, make_reporter(json_mode=as_json), redactor=redactor)
    _publish_run_metrics(cfg, plan, result)
    if report is not None:
        _write_report(result, report)
    if as_json:
        sys.stdout.write(report_json(result))
        sys.stdout.flush()
    else:
        url = result.outputs.get("url")
        if url and result.exit_code == 0:
            typer.echo(f"{plan.app} ({plan.env}) is reachable at {url}")
    _maybe_tracebacks(result)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


# --- the --report file ----------------------------------------------------------------------


def _check_report(path: str) -> None:
    """Refuse (exit 2) before any stage runs a --report path that cannot take a report file."""
    from deployctl.errors import UsageError
    from deployctl.ui.report import ReportPathError, check_report_path

    try:
        check_report_path(path)
    except ReportPathError as exc:
        raise UsageError(f"--report {path}: {exc}",
                         hint="name a regular file in an existing, writable directory") from None


def _write_report(result: Any, path: str) -> None:
    """Write the report after the run. The run itself is over by now: a report that cannot be
    written (the disk filled, the directory went read-only) is a warning, never a new outcome."""
    from deployctl.ui.report import write_report

    try:
        write_report(result, path)
    except OSError as exc:
        why = exc.strerror or str(exc)
        print(f"warning: the run report was not written to {path}: {why} (the run's outcome and exit "
              f"code {result.exit_code} are unchanged)", file=sys.stderr)


# --- stage selection ------------------------------------------------------------------------


def _names(text: str | None, flag: str, known: tuple[str, ...]) -> list[str]:
    from deployctl.errors import UsageError

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
    from deployctl.errors import UsageError

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
    facts: Any,
    selected: tuple[str, ...],
    *,
    root: str,
    clients: Any = None,
    redactor: Any = None,
    image_override: str | None = None,
    options: Any = None,
) -> list[Job]:
    """A Job per selected stage. A stage left out of the run passes on what it needed: with
    push skipped, deploy waits for lint, test and build, so a failing test still stops it
    (see effective_needs)."""
    from pathlib import Path

    from deployctl.pipeline import Job
    from deployctl.stages import EngineHandle, ImageSpec, ImageState, commands
    from deployctl.stages import build as build_stage
    from deployctl.stages import push as push_stage

    project = Path(root)
    spec = ImageSpec(project_dir=project, image=cfg.image, registry=plan.image_registry,
                     repository=plan.image_repository, tag=plan.image_tag, app=cfg.app,
                     git_sha=plan.git.sha, branch=plan.git.branch, dirty=plan.git.dirty)
    state = ImageState()
    engine = EngineHandle(_connect)
    access = _access(cfg, spec.registry, clients, redactor)
    ecr = clients.ecr if clients is not None and cfg.image.registry == "ecr" else None

    fns: dict[str, Any] = {}
    for name in ("lint", "test"):
        stage_cfg = getattr(cfg.stages, name)
        if stage_cfg is not None:
            fns[name] = commands.job_fn(stage_cfg, project)
    fns["build"] = build_stage.job_fn(spec, state, engine, access, check_registry="push" in selected)
    fns["push"] = push_stage.job_fn(spec, state, engine, access, ecr=ecr)
    fns["deploy"] = _deploy_fn(cfg, plan, facts, spec, access, clients, image_override, options)

    needs = effective_needs(plan.stages, selected)
    return [Job(stage.name, needs[stage.name], _hinted(fns[stage.name]))
            for stage in plan.stages if stage.name in selected]


def effective_needs(stages: Any, selected: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
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


def _hinted(fn: Any) -> Any:
    """The engine records an error's message only; fold the hint in so the summary and the
    JSON report carry the "what to do" part too."""
    from deployctl.errors import DeployctlError

    def run(ctx: Any) -> None:
        try:
            fn(ctx)
        except DeployctlError as exc:
            if exc.hint:
                exc.message = f"{exc.message} — hint: {exc.hint}"
                exc.hint = None
            raise

    return run


def _deploy_fn(cfg: ResolvedConfig, plan: Plan, facts: Any, spec: Any, access: Any, clients: Any,
               image_override: str | None, options: Any) -> Any:
    def run(ctx: Any) -> None:
        from deployctl.adapters.registry import ImageRef
        from deployctl.plan import make_plan
        from deployctl.stages.access import resolve_digest
        from deployctl.stages.build import record_image
        from deployctl.stages.cancel import cancellable
        from deployctl.targets import deploy_guard, get_target

        target = get_target(plan.target)
        image_ref = image_override or ctx.outputs.get("image_ref")
        if not image_ref:
            # Push was not part of this run: deploy what the registry holds for this commit.
            ecr = clients.ecr if clients is not None else None
            digest = cancellable(ctx, lambda: resolve_digest(ImageRef.parse(spec.ref), access, ecr))
            record_image(ctx.outputs, spec, digest)
            image_ref = ctx.outputs["image_ref"]
        digest = image_ref.rsplit("@", 1)[1]
        deploy_plan = make_plan(cfg, plan.git, facts=dataclasses.replace(facts, image_digest=digest),
                                image_override=image_ref)
        ctx.outputs.setdefault("image_ref", image_ref)
        ctx.outputs.setdefault("digest", digest)
        with deploy_guard(deploy_plan, options, ctx):
            target.deploy(deploy_plan, image_ref, ctx, options)

    return run


# --- outside world, created lazily ----------------------------------------------------------


def _connect() -> Any:
    from deployctl.adapters import engine

    return engine.connect()


def _docker_config_credentials(host: str) -> Any:
    from deployctl.adapters import docker_config

    return docker_config.credentials(host)


def _access(cfg: ResolvedConfig, host: str, clients: Any, redactor: Any) -> Any:
    from deployctl.stages.access import RegistryAccess

    ecr = clients.ecr if clients is not None and cfg.image.registry == "ecr" else None
    if redactor is None:
        return RegistryAccess(host, ecr=ecr, docker_config=_docker_config_credentials)
    return RegistryAccess(host, ecr=ecr, docker_config=_docker_config_credentials,
                          on_credentials=redactor.add_credentials)


def _is_ecr(image: str | None) -> bool:
    from deployctl.stages.access import ECR_HOST

    return bool(image) and bool(ECR_HOST.match(str(image).split("/", 1)[0]))


def _aws_clients(cfg: ResolvedConfig) -> Any:
    from deployctl.adapters import aws

    return aws.clients(cfg.region)


def _resolve_image(image: str, clients: Any, redactor: Any) -> str:
    from deployctl.adapters.registry import ImageRef
    from deployctl.stages.access import RegistryAccess, resolve_digest

    ref = ImageRef.parse(image)
    ecr = clients.ecr if clients is not None and _is_ecr(image) else None
    access = RegistryAccess(ref.registry, docker_config=_docker_config_credentials,
                            on_credentials=redactor.add_credentials)
    return ref.with_digest(resolve_digest(ref, access, ecr))


def _redactor(cfg: ResolvedConfig | None = None, environ: Any = None) -> Any:
    """The run's redactor, knowing every secret value the run can know before any stage runs:
    the registry password from the environment and, for the local Docker target, the services'
    secrets, which are read from the same environment that lint and test commands inherit."""
    from deployctl.redact import Redactor
    from deployctl.stages.access import ENV_PASSWORD, ENV_USER

    environ = os.environ if environ is None else environ
    redactor = Redactor()
    redactor.add_credentials(environ.get(ENV_USER), environ.get(ENV_PASSWORD))
    if cfg is not None and cfg.environment.target == "docker":
        from deployctl.targets.docker import local_secret_values

        for value in local_secret_values(cfg, environ):
            redactor.add(value)
    return redactor


def _print_dry_run(plan: Plan, selected: tuple[str, ...], as_json: bool, violations: list[str]) -> None:
    from deployctl.commands.common import print_json
    from deployctl.commands.config_cmds import render_plan

    if as_json:
        data = plan.to_json_dict()
        data["run"] = {"stages": list(selected), "dry_run": True}
        data["guardrails"] = {"violations": violations}
        print_json(data)
        return
    render_plan(plan)
    typer.echo(f"dry run: would run {', '.join(selected)}; nothing was changed")


def _cost_line(plan: Plan) -> str:
    cost = plan.cost
    if plan.target != "ecs":
        return f"cost: local Docker engine (the same services on Fargate: ~${cost.monthly_usd:,.2f}/month)"
    text = f"estimated Fargate cost: ${cost.monthly_usd:,.2f}/month for {cost.tasks} task(s)"
    if cost.monthly_usd_max != cost.monthly_usd:
        text += f", up to ${cost.monthly_usd_max:,.2f}/month at autoscaling max"
    return text + f" (on-demand {cost.price_region} prices of {cost.price_date})"


def _publish_run_metrics(cfg: ResolvedConfig, plan: Plan, result: Any) -> None:
    """With monitoring.publish_run_metrics, send stage durations and the outcome to CloudWatch.
    Best effort: a metrics hiccup must never turn a good deploy into a failed run."""
    mon = cfg.monitoring
    if mon is None or not mon.publish_run_metrics:
        return
    from deployctl.adapters import aws
    from deployctl.run_metrics import metric_data

    try:
        cloudwatch = aws.clients(cfg.region).cloudwatch
        cloudwatch.put_metric_data(Namespace=mon.run_metrics_namespace, MetricData=metric_data(plan, result))
    except Exception as exc:  # noqa: BLE001 - reported, never fatal
        print(f"warning: could not publish run metrics to CloudWatch: {exc}", file=sys.stderr)


def _maybe_tracebacks(result: Any) -> None:
    """Internal errors inside stages keep their traceback out of normal output (`--verbose`)."""
    from deployctl.cli import STATE

    if not STATE.get("verbose"):
        return
    for record in result.stages:
        if record.traceback:
            print(f"--- traceback of stage {record.name} ---\n{record.traceback}", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command()(run)

"""`deployctl run`: the pipeline of one environment, lint → test → build → push → deploy.

This module parses flags and renders; the use case (which stages, their Jobs, the outside
world they need) is deployctl.app.run, stages live in deployctl.stages, deploys in
deployctl.targets.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import typer

from deployctl.app.session import SESSION
from deployctl.commands.common import (
    ENV_OPTION,
    FILE_OPTION,
    JSON_OPTION,
    LOCK_WAIT_OPTION,
    YES_OPTION,
    git_facts,
    load,
    notify,
    parse_lock_wait,
    print_json,
    print_tracebacks,
    project_dir,
)
from deployctl.commands.config_cmds import render_plan
from deployctl.errors import UsageError

if TYPE_CHECKING:
    from deployctl.plan import Plan


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
    yes: bool = YES_OPTION,
    lock_wait: str | None = LOCK_WAIT_OPTION,
    name: str | None = typer.Option(None, "--name",
                                    help="Preview copy name, for environments with preview: true (e.g. pr-42)."),
    build_arg: list[str] = typer.Option([], "--build-arg", metavar="NAME=VALUE",
                                        help="Build arg over image.build_args (repeatable); never a secret: "
                                             "see docs/build-secrets.md."),
) -> None:
    """Run the pipeline for one environment: lint, test and build at once, then push, then deploy.

    A second run on an unchanged commit finds the image in the registry and skips build and
    push. Exit codes: 0 ok, 1 a stage failed, 2 usage/config, 130 interrupted.

    \b
    Examples:  deployctl run --env dev
               deployctl run --env staging --only lint,test --json
               deployctl run --env staging --image 127.0.0.1:5000/app:3f2a9c1d0b7e
               deployctl run --env preview --name pr-42
    """
    # lazy: pydantic and the config stay off --help
    from deployctl.app import run as use
    from deployctl.app.deploy_stage import stage_tracebacks
    from deployctl.plan import check_image_override, guardrail_violations, make_plan
    from deployctl.preview import check_name
    from deployctl.render.ecs import Facts
    from deployctl.targets import DeployOptions, for_config

    cfg = load(file, env)
    if build_arg:
        from deployctl.stages.build import with_build_args  # lazy: --help loads only what it needs

        cfg = with_build_args(cfg, build_arg, os.environ)
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
    selected = use.select_stages(cfg, only=only, skip=skip, from_stage=from_stage, image=image)
    git = git_facts(file)
    root = project_dir(file)
    redactor = use.run_redactor(cfg)
    needs_registry = bool({"build", "push", "deploy"} & set(selected)) or image is not None
    uses_ecr = cfg.image.registry == "ecr" or use.is_ecr(image)
    clients = use.aws_clients(cfg) if needs_registry and uses_ecr else None
    facts = Facts(git_sha=git.sha, preview_name=preview_name)
    if clients is not None and cfg.image.registry == "ecr" and not dry_run:
        # A dry run shows `<account-id>` as `plan` does: it needs no AWS credentials at all.
        facts = use.with_account_id(cfg, facts, clients)

    # Guardrails first: a plan over budget is refused before any registry or AWS call.
    plan = make_plan(cfg, git, facts=facts, image_override=image)
    violations = guardrail_violations(plan) if "deploy" in selected else []
    if violations and not dry_run:
        raise UsageError("plan refused by guardrails: " + "; ".join(violations),
                         hint="lower count/cpu/memory or raise the environment's guardrails")
    override = image
    if image is not None and not dry_run:
        # A target whose preflight checks the image reports a missing one with every other problem.
        override = use.resolve_image(image, clients, redactor,
                                     defer_missing=getattr(for_config(cfg), "preflight_checks_image", False))
        plan = make_plan(cfg, git, facts=facts, image_override=override)

    if dry_run:
        _print_dry_run(plan, selected, as_json, violations)
        if violations:
            raise UsageError("plan refused by guardrails: " + "; ".join(violations))
        return
    options = DeployOptions(force=force, no_rollback=no_rollback, yes=yes,
                            lock_wait=parse_lock_wait(lock_wait), preview_name=preview_name,
                            project_dir=str(root))
    jobs = use.build_jobs(cfg, plan, facts, selected, root=str(root), clients=clients, redactor=redactor,
                      image_override=override, options=options)

    # lazy: --help loads only what it needs
    from deployctl.pipeline import run_jobs
    from deployctl.ui import make_reporter
    from deployctl.ui.report import report_json

    if "deploy" in selected and not as_json:
        # Every run that deploys says what it will cost: AI services are big and mistakes costly.
        typer.echo(for_config(cfg).cost_line(plan))
    # A target that can check this machine first (the local engine: ports, secrets, base images)
    # does so before any stage runs, and names every problem at once.
    preflight = getattr(for_config(cfg), "preflight_before_stages", None)
    if preflight is not None:
        preflight(plan, selected, root, log=lambda line: None if as_json else typer.echo(line))
    result = run_jobs(jobs, make_reporter(json_mode=as_json), redactor=redactor)
    use.publish_run_metrics(cfg, plan, result)
    if "deploy" in selected:  # a lint-and-test run is not a deploy: nothing to tell the team
        notify(cfg, "run", result, git_sha=plan.git.sha, redactor=redactor)
    if report is not None:
        _write_report(result, report)
    if as_json:
        sys.stdout.write(report_json(result))
        sys.stdout.flush()
    else:
        url = result.outputs.get("url")
        if url and result.exit_code == 0:
            typer.echo(f"{plan.app} ({plan.env}) is reachable at {url}")
        front = result.outputs.get("frontend_url")
        if front and result.exit_code == 0:
            typer.echo(f"{plan.app} ({plan.env}) frontend is at {front}")
    print_tracebacks(stage_tracebacks(result, SESSION.verbose))
    if result.exit_code:
        raise typer.Exit(result.exit_code)


# --- the --report file ----------------------------------------------------------------------


def _check_report(path: str) -> None:
    """Refuse (exit 2) before any stage runs a --report path that cannot take a report file."""
    from deployctl.ui.report import ReportPathError, check_report_path  # lazy: --help loads only what it needs

    try:
        check_report_path(path)
    except ReportPathError as exc:
        raise UsageError(f"--report {path}: {exc}",
                         hint="name a regular file in an existing, writable directory") from None


def _write_report(result: Any, path: str) -> None:
    """Write the report after the run. The run itself is over by now: a report that cannot be
    written (the disk filled, the directory went read-only) is a warning, never a new outcome."""
    from deployctl.ui.report import write_report  # lazy: --help loads only what it needs

    try:
        write_report(result, path)
    except OSError as exc:
        why = exc.strerror or str(exc)
        print(f"warning: the run report was not written to {path}: {why} (the run's outcome and exit "
              f"code {result.exit_code} are unchanged)", file=sys.stderr)


def _print_dry_run(plan: Plan, selected: tuple[str, ...], as_json: bool, violations: list[str]) -> None:
    if as_json:
        data = plan.to_json_dict()
        data["run"] = {"stages": list(selected), "dry_run": True}
        data["guardrails"] = {"violations": violations}
        print_json(data)
        return
    render_plan(plan)
    typer.echo(f"dry run: would run {', '.join(selected)}; nothing was changed")


def register(app: typer.Typer) -> None:
    app.command()(run)

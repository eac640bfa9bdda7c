"""validate, config, plan, schema: read-only commands that touch neither Docker nor AWS."""

from __future__ import annotations

import io
import os
import sys
from typing import Any

import typer

from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, console, git_facts, load, print_json
from deployctl.errors import UsageError


def validate(file: str = FILE_OPTION) -> None:
    """Check deploy.yaml: syntax, keys, types, Fargate sizes, references. Exit 2 on any problem.

    \b
    Example:  deployctl validate -f deploy.yaml
    """
    from deployctl.config import read, validate_all  # lazy: pydantic and the config stay off --help

    envs = validate_all(read(file))
    typer.echo(f"{file}: ok ({len(envs)} environment{'s' if len(envs) != 1 else ''}: {', '.join(envs)})")


def config(file: str = FILE_OPTION, env: str = ENV_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Show the merged, interpolated config of one environment (secrets by reference only).

    \b
    Example:  deployctl config --env prod --json
    """
    from deployctl.app.stack import resolve_for_display  # lazy: boto3 only for environments that need it

    cfg, origins, note = resolve_for_display(load(file, env, from_stack=False))
    if note:
        typer.echo(f"note: {note}", err=True)
    # Interpolated env values and build args can hold credentials (`API_KEY: ${OPENAI_KEY}`, a
    # database URL with its password): masked by key name and value shape, as in every output.
    redactor = output_redactor(cfg)
    data = cfg.model_dump(mode="json")
    # Where each value deploy.yaml leaves out came from (null without from_stack: every key is
    # always present in --json).
    data["from_stack_outputs"] = {o.setting: o.output for o in origins} if cfg.environment.from_stack else None
    if as_json:
        print_json({"schema": "deployctl.config/v1", **data}, redactor)
        return
    import yaml  # lazy: PyYAML stays off --help

    masked = redactor.redact_data(data)
    masked.pop("from_stack_outputs", None)
    typer.echo(yaml.safe_dump(masked, sort_keys=False, default_flow_style=False).rstrip())
    if origins:
        typer.echo(f"# from stack {cfg.environment.from_stack} (outputs):")
        for o in origins:
            typer.echo(f"#   {o.setting} ← {o.output} = {redactor.redact(o.value)}")


def plan(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    as_json: bool = JSON_OPTION,
    image: str | None = typer.Option(None, "--image", help="Deploy this image reference instead of building."),
    name: str | None = typer.Option(None, "--name",
                                    help="Preview copy name, for environments with preview: true (e.g. pr-42)."),
) -> None:
    """Show everything `run` (or, for a promote_from environment, `promote`) would do, without
    touching Docker or AWS.

    Stages in order, the image reference, the ECS task definition and service request of each
    service, every alarm that can roll a service back and the estimated monthly Fargate cost.

    \b
    Examples:  deployctl plan --env staging
               deployctl plan --env preview --name pr-42
               deployctl plan --env prod --json | jq .services.api.task_definition
    """
    # lazy: pydantic and the config stay off --help
    from deployctl.app.stack import resolve_for_display
    from deployctl.plan import check_image_override, guardrail_violations, make_plan
    from deployctl.preview import validate_name
    from deployctl.render.ecs import Facts

    image = check_image_override(image)
    cfg, _, note = resolve_for_display(load(file, env, from_stack=False))
    if note:
        typer.echo(f"note: {note}", err=True)
    if name is not None and not cfg.environment.preview:
        raise UsageError(f"--name is only for preview environments, and '{env}' is not one",
                         hint="mark an environment `preview: true` in deploy.yaml to use named previews")
    if image is not None and cfg.environment.promote_from:
        raise UsageError(f"--image does not apply to {env}: it is deployed only by promotion from "
                         f"{cfg.environment.promote_from}, with the image that runs there",
                         hint=f"`deployctl plan --env {env}` shows the promotion")
    git = git_facts(file)
    preview = validate_name(name) if name is not None else None
    the_plan = make_plan(cfg, git, facts=Facts(git_sha=git.sha, preview_name=preview), image_override=image)
    violations = guardrail_violations(the_plan)
    redactor = output_redactor(cfg)
    if as_json:
        data = the_plan.to_json_dict()
        data["guardrails"] = {"violations": violations}
        print_json(data, redactor)
    else:
        render_plan(the_plan, redactor)
    if violations:
        raise UsageError("plan refused by guardrails: " + "; ".join(violations),
                         hint="lower count/cpu/memory or raise the environment's guardrails")


def schema() -> None:
    """Print the JSON Schema of deploy.yaml, for editors (yaml-language-server) and tools.

    \b
    Example:  deployctl schema > deploy.schema.json
    """
    from deployctl.config.schema import json_schema  # lazy: pydantic and the config stay off --help

    print_json(json_schema())


# Piped into a file or a CI log there is no terminal width to respect; rich's 80-column
# default would wrap "4096 MiB" over two lines and cut names to "chat-a…".
PIPE_WIDTH = 160


def plan_console() -> Any:
    out = console()
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out.width = PIPE_WIDTH
    return out


def output_redactor(cfg: Any) -> Any:
    """The redactor `run` would use for this config (registry login, the local target's secret
    values from the environment), so `config`/`plan` mask exactly what a run masks."""
    from deployctl.app.run import run_redactor  # lazy: pydantic and the config stay off --help

    return run_redactor(cfg)


def render_plan(plan: Any, redactor: Any = None) -> None:
    """Print the plan for people. It is rendered into a buffer first and written through the
    redactor: a registry URL with a password, or a secret in a stage command, never reaches the
    terminal (a line with a secret in it loses its colours, see deployctl.redact)."""
    from deployctl.redact import Redactor  # lazy: --help loads only what it needs

    screen = plan_console()
    buffer = io.StringIO()
    out = screen.__class__(file=buffer, width=screen.width, force_terminal=screen.is_terminal,
                           color_system=screen.color_system, highlight=False, soft_wrap=False)
    redactor = redactor or Redactor()
    _render_plan(plan, out, redactor.redact)
    sys.stdout.write(redactor.redact(buffer.getvalue()))
    sys.stdout.flush()


def _render_plan(plan: Any, out: Any, redact: Any) -> None:
    from rich.table import Table  # lazy: rich stays off --help

    # Cells are redacted before rich lays them out: a folded cell splits a secret over two lines,
    # where no pattern could find it in the rendered text.

    where = f"{plan.target}, {plan.region}" if plan.on_ecs else "local Docker engine"
    copy = f" copy [bold]{plan.preview_name}[/]" if plan.preview_name else ""
    out.print(f"[bold]Plan[/] {plan.app} → [bold]{plan.env}[/]{copy} ({where})")
    if plan.promote_from:
        out.print(f"deployed by promotion: `deployctl promote {plan.promote_from} {plan.env}` deploys exactly "
                  f"the image {plan.promote_from} runs; `run --env {plan.env}` is refused")
    else:
        dirty = " (dirty tree)" if plan.git.dirty else ""
        out.print(f"commit {plan.git.short} on {plan.git.branch}{dirty}")
    # Long references must stay copy-pasteable: never wrap them mid-word or cut them.
    out.print(f"image  {redact(plan.image_ref)}", soft_wrap=True)
    stages = Table(title="Stages", title_justify="left")
    for col in ("stage", "after", "does"):
        stages.add_column(col, overflow="fold")
    for s in plan.stages:
        stages.add_row(s.name, ", ".join(s.needs) or "-", redact(s.detail))
    out.print(stages)
    if plan.on_ecs:
        _render_ecs_services(plan, out, redact)
        out.print("[dim]full task definitions and service requests: deployctl plan --json[/]")
    else:
        _render_local_services(plan, out)


def _render_ecs_services(plan: Any, out: Any, redact: Any) -> None:
    from rich.table import Table  # lazy: rich stays off --help

    services = Table(title="Services", title_justify="left")
    for col in ("service", "ecs service", "wave", "vCPU", "memory", "tasks", "spot", "health", "$/month"):
        numeric = col in ("vCPU", "memory", "tasks", "$/month")
        services.add_column(col, justify="right" if numeric else "left", overflow="fold", no_wrap=numeric)
    cost = {c.service: c for c in plan.cost.services}
    for s in plan.services:
        cfg = plan.config.services[s.name]
        c = cost[s.name]
        health = cfg.health.path or "command" if cfg.health else "-"
        tasks = f"{c.tasks}" if c.tasks == c.max_tasks else f"{c.tasks}–{c.max_tasks}"
        money = f"{c.monthly_usd:,.2f}" if c.tasks == c.max_tasks else f"{c.monthly_usd:,.0f}–{c.monthly_usd_max:,.0f}"
        services.add_row(s.name, s.ecs_service, str(s.wave + 1), f"{c.vcpu:g}", f"{cfg.memory} MiB", tasks,
                         "yes" if cfg.spot else "no", health, money)
    out.print(services)
    # Every alarm the UpdateService request carries, per service: any one in ALARM rolls it back.
    guarded = [s for s in plan.services if s.deployment_alarms]
    if guarded:
        out.print("deployment alarms (an ALARM rolls the service back):")
        for s in plan.services:
            names = ", ".join(s.deployment_alarms) or "none"
            out.print(redact(f"  {s.name}: {names}"), soft_wrap=True)
    scaled = [s for s in plan.services if s.autoscaling]
    if scaled:
        from deployctl.render.autoscaling import describe  # lazy: --help loads only what it needs

        out.print("auto scaling (applied on every deploy; deployctl-* policies are deployctl's):")
        for s in scaled:
            for i, line in enumerate(describe(s.autoscaling)):
                out.print(redact(f"  {s.name}: {line}" if i == 0 else f"  {line}"), soft_wrap=True)
    cap = plan.cost_cap_alarms()
    if cap:
        from deployctl.render.costcap import describe as describe_cap  # lazy: --help loads only what it needs

        out.print("cost cap (applied on every deploy, acts without deployctl running):")
        for line in describe_cap(plan.config, [str(a["AlarmName"]) for a in cap]):
            out.print(redact(f"  {line}"), soft_wrap=True)
    _render_jobs(plan, out)
    total = f"${plan.cost.monthly_usd:,.2f}/month"
    if plan.cost.monthly_usd_max != plan.cost.monthly_usd:
        total += f" (up to ${plan.cost.monthly_usd_max:,.2f}/month at autoscaling max)"
    out.print(f"estimated Fargate cost: {total} "
              f"[dim](on-demand {plan.cost.price_region} prices of {plan.cost.price_date}; Spot assumed 70% off)[/]")
    if plan.cost.advice:
        out.print("cost advice:")
        for line in plan.cost.advice:
            out.print(f"  {line}", soft_wrap=True)


def _render_jobs(plan: Any, out: Any) -> None:
    """`jobs:`: schedule, size, capacity and monthly cost at the schedule (docs/jobs.md)."""
    from rich.table import Table  # lazy: rich stays off --help

    from deployctl.config.units import format_duration  # lazy: with the rest of this command's rendering

    if not plan.cost.jobs:
        return
    table = Table(title="Jobs (EventBridge Scheduler, UTC)", title_justify="left")
    for col in ("job", "service", "schedule", "runs/month", "each", "vCPU", "memory", "spot", "$/month"):
        numeric = col in ("runs/month", "each", "vCPU", "memory", "$/month")
        table.add_column(col, justify="right" if numeric else "left", overflow="fold", no_wrap=numeric)
    for j in plan.cost.jobs:
        table.add_row(j.job, plan.config.job_service(j.job), j.schedule, f"{j.runs_per_month:,.0f}",
                      format_duration(j.duration_s), f"{j.vcpu:g}", f"{j.memory_gb * 1024:g} MiB",
                      "yes" if j.spot else "no", f"{j.monthly_usd:,.2f}")
    out.print(table)


def _render_local_services(plan: Any, out: Any) -> None:
    from rich.table import Table  # lazy: rich stays off --help

    services = Table(title="Services", title_justify="left")
    for col in ("service", "wave", "containers", "port", "local port", "health"):
        services.add_column(col, overflow="fold")
    for s in plan.services:
        cfg = plan.config.services[s.name]
        health = cfg.health.path or "command" if cfg.health else "-"
        services.add_row(s.name, str(s.wave + 1), str(cfg.count), str(cfg.port or "-"),
                         str(cfg.local_port or "-"), health)
    out.print(services)
    out.print("[dim]runs on this machine's Docker engine: no cloud resources, no Fargate cost[/]")


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(config)
    app.command()(plan)
    app.command()(schema)

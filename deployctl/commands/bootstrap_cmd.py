"""`deployctl bootstrap --env ENV`: create or update the AWS resources an environment needs."""

from __future__ import annotations

import sys
from typing import Any

import typer

from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, YES_OPTION, confirm, load, print_json
from deployctl.errors import Interrupted

SCHEMA = "deployctl.bootstrap/v1"


def bootstrap(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    plan_only: bool = typer.Option(False, "--plan", help="Render the stacks and stop; no AWS call."),
    destroy: bool = typer.Option(False, "--destroy", help="Delete the environment's stack."),
    create_secrets: bool = typer.Option(False, "--create-secrets",
                                        help="Create missing Secrets Manager secrets as empty placeholders "
                                             "(also bootstrap.secret_placeholders)."),
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create or update, through CloudFormation change sets, what `run --env ENV` needs: network,
    load balancer, cluster, roles, log group, queues (stack deployctl-<app>-<env>), and the ECR
    repository, lock table and GitHub OIDC provider (stack deployctl-<app>).

    Shows each change set and asks before applying (--yes for CI). Exit codes: 0 ok (or nothing
    to change), 1 a stack failed (CloudFormation rolled it back), 2 usage or refused, 130
    interrupted.

    \b
    Examples:  deployctl bootstrap --env staging --plan
               deployctl bootstrap --env staging --yes
               deployctl bootstrap --env staging --destroy
    """
    from deployctl.app import bootstrap as use  # lazy: pydantic and boto3 stay off --help

    cfg = load(file, env, from_stack=False)
    all_cfgs = _all(file)
    log = _log(as_json)
    if destroy:
        _destroy(use, cfg, all_cfgs, yes, as_json, log)
        return
    if plan_only:
        bp = use.plan(cfg, all_cfgs)
        if as_json:
            print_json({"schema": "deployctl.bootstrap-plan/v1", "env": env,
                        "stacks": [{"name": s.name, "kind": s.kind, "termination_protection": s.protect,
                                    "parameters": sorted(s.template.get("Parameters", {})),
                                    "template": s.template} for s in bp.stacks]})
            return
        _print_plan(bp)
        return

    from deployctl.adapters import aws  # lazy: boto3 stays off --help

    clients = aws.clients(cfg.region)
    with aws.aws_errors(f"bootstrapping {env}"):
        facts, params = use.read_facts(cfg, all_cfgs, clients)
        bp = use.plan(cfg, all_cfgs, facts, params)
        prep = use.prepare(bp, clients, log)
    for stack in bp.stacks:
        changes = prep.changes[stack.name]
        verb = "create" if stack.name in prep.creating else "update"
        log(f"stack {stack.name}: " + (f"{verb}, {len(changes)} change(s)" if changes else "no changes"))
        for line in use.change_lines(changes, {logical: name for logical, _, name in stack.resources()}):
            log(line)
    if prep.anything:
        try:
            confirm(f"Apply these changes to {cfg.region}?", yes)
        except BaseException:
            with aws.aws_errors("removing the change sets"):
                use.discard(prep, clients)
            raise
        try:
            with aws.aws_errors(f"applying the stacks of {env}"):
                results = use.execute(prep, clients, log)
        except KeyboardInterrupt:
            raise Interrupted("stopped following the stacks: a stack whose change set had started goes on in "
                              "CloudFormation (which rolls it back by itself if it fails); change sets that had not "
                              "started were deleted",
                              hint=f"`aws cloudformation describe-stacks --stack-name {bp.stacks[-1].name}`") from None
    else:
        with aws.aws_errors("reading the stacks"):
            results = use.execute(prep, clients, log)
    with aws.aws_errors("checking the secrets deploy.yaml references"):
        steps = use.secret_steps(bp, clients, create=create_secrets or cfn_secret_placeholders(cfg), log=log)
    env_result = results[-1]
    if as_json:
        print_json({"schema": SCHEMA, "env": env, "stacks": [
            {"name": r.name, "status": r.status, "outputs": r.outputs,
             "changes": [{"action": c.action, "logical_id": c.logical_id, "type": c.resource_type,
                          "replacement": c.replacement,
                          "properties": [{"property": pc.path, "live": pc.live, "planned": pc.planned}
                                         for pc in c.properties]} for c in r.changes]} for r in results],
            "secret_steps": steps})
        return
    typer.echo(f"{env}: ready ({', '.join(f'{r.name} {r.status}' for r in results)})")
    for key, value in sorted(env_result.outputs.items()):
        typer.echo(f"  {key:<22} {value}")
    if steps:
        typer.echo("Set the values of these secrets (bootstrap never writes a secret value):")
        for step in steps:
            typer.echo(f"  {step}")
    if cfg.environment.from_stack != bp.stacks[-1].name:
        typer.echo(f"Next: add `from_stack: {bp.stacks[-1].name}` to environments.{env} in deploy.yaml (and drop "
                   "the cluster, network and roles it gives), then `deployctl run --env " + env + "`")
    else:
        typer.echo(f"Next: deployctl run --env {env}")


def cfn_secret_placeholders(cfg: Any) -> bool:
    return bool(cfg.bootstrap and cfg.bootstrap.secret_placeholders)


def _destroy(use: Any, cfg: Any, all_cfgs: Any, yes: bool, as_json: bool, log: Any) -> None:
    from deployctl.adapters import aws  # lazy: boto3 stays off --help

    clients = aws.clients(cfg.region)
    with aws.aws_errors(f"checking the stack of {cfg.env_name}"):
        view = use.check_destroy(cfg, clients, all_cfgs)
    log(f"stack {view.name} ({view.status}) and every resource in it will be deleted; the ECR repository, "
        "lock table and OIDC provider (stack deployctl-" + cfg.app + ") and the secrets stay")
    confirm(f"Delete stack {view.name}?", yes)
    with aws.aws_errors(f"deleting stack {view.name}"):
        status = use.destroy(cfg, clients, log)
    if as_json:
        print_json({"schema": "deployctl.bootstrap-destroy/v1", "env": cfg.env_name, "stack": view.name,
                    "status": status})
    else:
        typer.echo(f"{cfg.env_name}: stack {view.name} deleted")


def _all(file: str) -> dict[str, Any]:
    """Every environment of the file, in file order (a name shared with an earlier environment
    is created by that environment's stack)."""
    from deployctl.config import load_env, read  # lazy: pydantic stays off --help

    loaded = read(file)
    return {name: load_env(loaded, name) for name in loaded.env_names()}


def _log(as_json: bool) -> Any:
    def log(line: str) -> None:
        print(line, file=sys.stderr if as_json else sys.stdout, flush=True)

    return log


def _print_plan(bp: Any) -> None:
    for stack in bp.stacks:
        note = " (termination protection on)" if stack.protect else ""
        typer.echo(f"stack {stack.name} [{stack.kind}]{note}")
        for logical, kind, name in stack.resources():
            typer.echo(f"  + {kind:<42} {logical}{' ' + name if name else ''}")
        for key in stack.template.get("Parameters", {}):
            typer.echo(f"  parameter {key}: looked up when applied")
        outputs = stack.template.get("Outputs", {})
        if outputs:
            typer.echo(f"  outputs: {', '.join(outputs)}")
    typer.echo("plan only: nothing was changed. `deployctl bootstrap --env " + bp.cfg.env_name
               + " --json --plan` prints the templates")


def register(app: typer.Typer) -> None:
    app.command()(bootstrap)

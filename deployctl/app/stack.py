"""Read an environment's `from_stack` outputs into its config (deployctl.config.stack_refs)."""

from __future__ import annotations

from typing import Any

from deployctl.adapters import aws
from deployctl.adapters import cfn_gateway as cfn_api
from deployctl.config import stack_refs
from deployctl.config.model import ResolvedConfig
from deployctl.errors import ExternalError, UsageError


def resolve(cfg: ResolvedConfig, clients: Any = None) -> tuple[ResolvedConfig, list[stack_refs.Origin]]:
    """cfg with the stack's outputs filled in, and where each value came from; unchanged (and
    no AWS call) for an environment without `from_stack`."""
    name = cfg.environment.from_stack
    if not name:
        return cfg, []
    outputs = _outputs(cfg, name, clients)
    if outputs is None:
        raise UsageError(f"stack {name} (environments.{cfg.env_name}.from_stack) does not exist in {cfg.region}",
                         hint=f"create it with `deployctl bootstrap --env {cfg.env_name}`")
    return stack_refs.apply(cfg, name, outputs)


def resolve_for_display(cfg: ResolvedConfig, clients: Any = None) -> tuple[
        ResolvedConfig, list[stack_refs.Origin], str | None]:
    """What `plan` and `config` show: cfg with the stack's outputs (and their origins); while the
    stack cannot be read (not bootstrapped yet, no AWS credentials here) its outputs as readable
    placeholders, and a note that says so. `run` and preflight use resolve(), which refuses."""
    name = cfg.environment.from_stack
    if not name:
        return cfg, [], None
    try:
        outputs = _outputs(cfg, name, clients)
    except ExternalError as exc:
        why = f"could not be read: {exc.message.split(' while ')[0]}"
    else:
        if outputs is not None:
            return (*stack_refs.apply(cfg, name, outputs), None)
        why = f"does not exist yet (`deployctl bootstrap --env {cfg.env_name}` creates it)"
    public = "ENABLED" if cfg.bootstrap and cfg.bootstrap.network in ("public", "default") else "DISABLED"
    stand_in = {key: f"<{key} of {name}>" for key in (
        stack_refs.CLUSTER, stack_refs.SUBNETS, stack_refs.SECURITY_GROUPS, stack_refs.EXECUTION_ROLE,
        stack_refs.TASK_ROLE)}
    stand_in[stack_refs.PUBLIC_IP] = public
    if not cfg.environment.preview:
        for svc_name, svc in cfg.services.items():
            if svc.port is not None:
                key = stack_refs.target_group_output(svc_name)
                stand_in[key] = f"<{key} of {name}>"
    return (*stack_refs.apply(cfg, name, stand_in), (
        f"stack {name} (environments.{cfg.env_name}.from_stack) {why}: shown are <placeholders> for its outputs"))


def _outputs(cfg: ResolvedConfig, name: str, clients: Any) -> dict[str, str] | None:
    with aws.aws_errors(f"reading the outputs of stack {name} (environments.{cfg.env_name}.from_stack)"):
        clients = clients or aws.clients(cfg.region)
        view = cfn_api.describe(clients, name, resources=False)
    return view.outputs if view is not None else None

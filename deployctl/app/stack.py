"""Read an environment's `from_stack` outputs into its config (deployctl.config.stack_refs)."""

from __future__ import annotations

from typing import Any

from deployctl.adapters import aws
from deployctl.adapters import cfn_gateway as cfn_api
from deployctl.config import stack_refs
from deployctl.config.model import ResolvedConfig
from deployctl.errors import UsageError


def resolve(cfg: ResolvedConfig, clients: Any = None) -> tuple[ResolvedConfig, list[stack_refs.Origin]]:
    """cfg with the stack's outputs filled in, and where each value came from; unchanged (and
    no AWS call) for an environment without `from_stack`."""
    name = cfg.environment.from_stack
    if not name:
        return cfg, []
    clients = clients or aws.clients(cfg.region)
    with aws.aws_errors(f"reading the outputs of stack {name} (environments.{cfg.env_name}.from_stack)"):
        view = cfn_api.describe(clients, name, resources=False)
    if view is None:
        raise UsageError(f"stack {name} (environments.{cfg.env_name}.from_stack) does not exist in {cfg.region}",
                         hint=f"create it with `deployctl bootstrap --env {cfg.env_name}`")
    return stack_refs.apply(cfg, name, view.outputs)

"""`environments.<env>.from_stack`: fill what deploy.yaml leaves out from the stack's outputs.

deploy.yaml stays the one file: ids that AWS chooses (subnets, security groups) and names that
bootstrap chose (cluster, roles, target groups) come from the outputs of the stack that
`deployctl bootstrap` made (deployctl.render.cfn names the outputs). A value written in
deploy.yaml always wins over the stack's. Pure: the outputs are read by deployctl.app.stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from deployctl.config.model import LoadBalancer, Network, ResolvedConfig, Roles, Service
from deployctl.errors import UsageError

# Output keys, as deployctl.render.cfn writes them.
CLUSTER = "Cluster"
SUBNETS = "Subnets"
SECURITY_GROUPS = "SecurityGroups"
PUBLIC_IP = "AssignPublicIp"
EXECUTION_ROLE = "ExecutionRoleArn"
TASK_ROLE = "TaskRoleArn"


def _camel(service: str) -> str:
    return "".join(p.capitalize() for p in service.replace("_", "-").split("-"))


def target_group_output(service: str) -> str:
    return "TargetGroup" + _camel(service)


def security_group_output(service: str) -> str:
    """The group of one service's tasks that the stack's load balancer may reach (on its port)."""
    return "SecurityGroup" + _camel(service)


@dataclass(frozen=True)
class Origin:
    setting: str  # e.g. environment.cluster
    output: str  # the stack output it came from
    value: str


def apply(cfg: ResolvedConfig, stack: str, outputs: Mapping[str, str]) -> tuple[ResolvedConfig, list[Origin]]:
    """cfg with every value deploy.yaml leaves out taken from `outputs`; and where each came from."""
    env = cfg.environment
    origins: list[Origin] = []

    def take(setting: str, key: str) -> str:
        if key not in outputs:
            raise UsageError(f"stack {stack} has no output {key}, which {setting} needs "
                             f"(environments.{cfg.env_name}.from_stack)",
                             hint=f"run `deployctl bootstrap --env {cfg.env_name}` to create or update it, "
                                  f"or set {setting} in deploy.yaml")
        origins.append(Origin(setting, key, outputs[key]))
        return outputs[key]

    update: dict[str, object] = {}
    if env.cluster is None:
        update["cluster"] = take("environment.cluster", CLUSTER)
    if env.network is None:
        subnets = [s for s in take("environment.network.subnets", SUBNETS).split(",") if s]
        groups = [g for g in take("environment.network.security_groups", SECURITY_GROUPS).split(",") if g]
        public = take("environment.network.public_ip", PUBLIC_IP) == "ENABLED"
        update["network"] = Network(subnets=subnets, security_groups=groups, public_ip=public)
    if env.roles is None:
        update["roles"] = Roles(execution=take("environment.roles.execution", EXECUTION_ROLE),
                                task=take("environment.roles.task", TASK_ROLE))
    services: dict[str, Service] = {}
    # A preview's copies run in the stack of the environment they copy but never join its load
    # balancer: in its target group they would answer that environment's traffic.
    behind_alb = not env.preview
    for name, svc in cfg.services.items():
        key = target_group_output(name)
        if behind_alb and svc.port is not None and svc.load_balancer is None and key in outputs:
            lb = LoadBalancer.model_validate({"target_group": take(f"services.{name}.load_balancer.target_group", key)})
            svc = svc.model_copy(update={"load_balancer": lb})
        key = security_group_output(name)
        # Added to the environment's groups, named in deploy.yaml or not: without it the stack's
        # load balancer cannot reach the service's tasks.
        if behind_alb and not svc.security_groups and key in outputs:
            svc = svc.model_copy(update={"security_groups": [take(f"services.{name}.security_groups", key)]})
        services[name] = svc
    new_env = env.model_copy(update=update)
    return cfg.model_copy(update={"environment": new_env, "services": services}), origins

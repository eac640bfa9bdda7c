"""The `diff` use case: each service's settings in deploy.yaml against the live ECS service.

Read-only: the same UpdateService request `run` would send (deployctl.render.ecs), compared
setting by setting with DescribeServices (deployctl.service_diff). The task definition is not
part of it: `plan` shows that, and `run` says which of its keys changed.
"""

from __future__ import annotations

import dataclasses

from deployctl import service_diff, targets
from deployctl.adapters import aws, network_gateway
from deployctl.config.model import ResolvedConfig
from deployctl.errors import UsageError
from deployctl.render import autoscaling as render_autoscaling
from deployctl.render import ecs as render
from deployctl.render.ecs import Facts
from deployctl.targets import ecs_autoscaling, ecs_releases
from deployctl.targets.base import FEATURE_DIFF


def diff(cfg: ResolvedConfig, clients: aws.AwsClients | None = None) -> list[service_diff.ServiceDiff]:
    """One ServiceDiff per service of deploy.yaml, in its order."""
    if not targets.supports(cfg, FEATURE_DIFF):
        raise UsageError(f"environment '{cfg.env_name}' deploys to {cfg.environment.target}: `diff` compares ECS "
                         "service settings", hint=f"use `deployctl plan --env {cfg.env_name}` to see what it deploys")
    if cfg.environment.preview:
        raise UsageError(f"'{cfg.env_name}' is a preview environment: its copies are made and removed whole by "
                         "`run --name` and `destroy`", hint="diff the environment the copies are made from")
    clients = clients or aws.clients(cfg.region)
    with aws.aws_errors(f"reading the ECS services of {cfg.env_name}"):
        facts = Facts(target_group_arns=_target_groups(cfg, clients.elbv2))
        live = ecs_releases.read_services(clients.ecs, cfg)
    out = []
    for name in cfg.services:
        request = render.update_service(cfg, name, render.family(cfg, name), facts)
        kept = None
        state = live.get(name)
        running = state.desired if state is not None else 0
        if state is not None:
            with aws.aws_errors(f"reading the auto scaling of {name}"):
                # The deploy that drops `autoscaling` keeps the scaler's count, as `run` does.
                kept = ecs_autoscaling.removal_count(clients.client(ecs_autoscaling.CLIENT), cfg, name, running)
            if kept is not None:
                request = {**request, "desiredCount": kept}
        found = service_diff.service_diff(name, render.service_name(cfg, name), request,
                                          state.settings if state is not None else None)
        if found.exists:
            removal = render_autoscaling.removal_text(running, kept, cfg.services[name].count) \
                if kept is not None else ""
            with aws.aws_errors(f"reading the auto scaling of {name}"):
                found = dataclasses.replace(found, changes=found.changes + _scaling(cfg, name, clients, facts,
                                                                                    removal))
        out.append(found)
    return out


def _scaling(cfg: ResolvedConfig, name: str, clients: aws.AwsClients, facts: Facts,
             removal: str = "") -> tuple[service_diff.Change, ...]:
    """What the next deploy's auto scaling step changes (deployctl.targets.ecs_autoscaling.apply)."""
    live = ecs_autoscaling.read(clients.client(ecs_autoscaling.CLIENT),
                                render_autoscaling.resource_id(cfg.environment.cluster or "default",
                                                               render.service_name(cfg, name)))
    wanted = render_autoscaling.service_scaling(
        cfg, name, ecs_autoscaling.resolve_facts(cfg, name, clients.elbv2, facts.target_group_arns))
    ours = {n: render_autoscaling.policy_text(p.document()) for n, p in live.policies.items()
            if render_autoscaling.owned(n)}
    # With no deployctl policy on it, a target is someone else's: the deploy leaves it.
    live_range = f"{live.target.min_capacity}..{live.target.max_capacity}" if live.target and (wanted or ours) \
        else None
    suspended = live.target is not None and live.target.scale_in_suspended
    return service_diff.scaling_changes(
        live_range, render_autoscaling.range_text(wanted.target if wanted else None), ours,
        {n: render_autoscaling.policy_text(p) for n, p in (wanted.policies if wanted else {}).items()},
        scale_in_suspended=suspended, removal=removal)


def _target_groups(cfg: ResolvedConfig, elbv2: aws.BotoClient) -> dict[str, str]:
    """Target group name → ARN (the load balancer block names its group by ARN); a group that
    does not exist keeps its placeholder, and the diff shows it (preflight refuses it in `run`)."""
    names = sorted({s.load_balancer.target_group for s in cfg.services.values()
                    if s.load_balancer and not s.load_balancer.target_group.startswith("arn:")})
    found: dict[str, str] = {}
    for name in names:
        group = network_gateway.find_target_group(elbv2, name)
        if group is not None:
            found[name] = group.arn
    return found


def doc(cfg: ResolvedConfig, diffs: list[service_diff.ServiceDiff]) -> dict[str, object]:
    return service_diff.doc(cfg.app, cfg.env_name, diffs)

"""Preflight's checks of what a deploy runs on: the cluster (capacity providers, Container
Insights), the network, the image, target groups, roles, deployment alarms and SQS queues.
Each check appends to a Report; AWS answers come typed from the adapters' gateways.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from deployctl.adapters import aws as awsa
from deployctl.adapters import (
    cloudwatch_gateway,
    cluster_gateway,
    iam_gateway,
    network_gateway,
    registry,
    sqs_gateway,
)
from deployctl.config.model import ResolvedConfig
from deployctl.errors import ExternalError, UsageError
from deployctl.preflight.findings import PreflightResult, Report, bootstrap_hint, guard

ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


def role_name(arn: str) -> str:
    """`arn:aws:iam::123:role/path/name` → `name` (GetRole takes the name without the path)."""
    return arn.rsplit("/", 1)[-1]


def check_cluster(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: Report) -> None:
    name = cfg.environment.cluster or "default"

    def check() -> None:
        cluster = cluster_gateway.describe_cluster(aws.ecs, name)
        if cluster is None:
            rep.problems.append(f"ECS cluster {name} does not exist in {cfg.region}: create it, or fix "
                                "environment.cluster" + bootstrap_hint(cfg))
            return
        if cluster.status not in ("ACTIVE", None):
            rep.problems.append(f"ECS cluster {name} is {cluster.status}, not ACTIVE: wait until it is, "
                                "or fix environment.cluster")
        # Every service asks for a capacity provider (FARGATE, or FARGATE_SPOT with spot: true), and ECS
        # takes only providers associated with the cluster, so a cluster without any fails them all.
        # A Spot job's schedule asks for FARGATE_SPOT too (a job without Spot uses the FARGATE launch
        # type, which needs no provider): its runs would fail at RunTask, long after the deploy.
        providers = set(cluster.capacity_providers)
        need: dict[str, list[str]] = {}
        for svc_name, svc in cfg.services.items():
            need.setdefault("FARGATE_SPOT" if svc.spot else "FARGATE", []).append(f"service {svc_name}")
        for job_name, job in (getattr(cfg, "jobs", None) or {}).items():
            if job.spot:
                need.setdefault("FARGATE_SPOT", []).append(f"job {job_name}")
        for p in sorted(set(need) - providers):
            has = f"it has {', '.join(sorted(providers))}" if providers else "it has none"
            keys = [f"{'services' if n.startswith('service ') else 'jobs'}.{n.split(' ', 1)[1]}" for n in need[p]]
            fix = f" or set spot: false on {', '.join(keys)}" if p == "FARGATE_SPOT" else ""
            rep.problems.append(
                f"ECS cluster {name} lacks the {p} capacity provider that "
                f"{', '.join(need[p])} need{'' if len(need[p]) > 1 else 's'} ({has}): add it with `aws ecs "
                f"put-cluster-capacity-providers --cluster {name} --capacity-providers "
                f"{' '.join(sorted(providers | {p}))} --default-capacity-provider-strategy "
                f"capacityProvider=FARGATE,weight=1`{fix}" + bootstrap_hint(cfg))
        _check_container_insights(cfg, cluster, rep)

    guard(rep, f"ECS cluster {name}", check)


def _backlog_queues(cfg: ResolvedConfig) -> dict[str, str]:
    """Service → the SQS queue its queue-backlog policy scales on (autoscaling.queue)."""
    return {name: svc.autoscaling.queue for name, svc in cfg.services.items()
            if svc.autoscaling is not None and svc.autoscaling.queue is not None
            and svc.autoscaling.queue_backlog_per_task is not None}


def _check_container_insights(cfg: ResolvedConfig, cluster: cluster_gateway.ClusterView, rep: Report) -> None:
    """The queue-backlog policy divides by RunningTaskCount, a Container Insights metric: with
    Container Insights off it has no data and the policy never scales (docs/autoscaling.md)."""
    users = sorted(_backlog_queues(cfg))
    if not users:
        return
    name = cluster.name or cfg.environment.cluster or "default"
    value = cluster.settings.get("containerInsights")
    if value is None:
        rep.notes.append(f"could not read Container Insights of ECS cluster {name}: the queue-backlog policy of "
                         f"{', '.join(users)} scales only if it is on (docs/autoscaling.md)")
        return
    if value not in ("enabled", "enhanced"):
        rep.problems.append(
            f"ECS cluster {name} has Container Insights {value}: the queue-backlog policy of service"
            f"{'s' if len(users) > 1 else ''} {', '.join(users)} divides by RunningTaskCount (ECS/ContainerInsights), "
            f"which has no data without it, so it would never scale: turn it on with `aws ecs "
            f"update-cluster-settings --cluster {name} --settings name=containerInsights,value=enabled`, or drop "
            f"{', '.join(f'services.{u}.autoscaling.queue' for u in users)} (clusters `deployctl bootstrap` "
            "creates have it on)")


def check_network(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: Report) -> None:
    net = cfg.environment.network
    if net is None:
        return
    for kind, ids, exists in (
        ("subnet", net.subnets, network_gateway.subnet_exists),
        ("security group", net.security_groups, network_gateway.security_group_exists),
    ):
        for ident in ids:
            def check(ident: str = ident, kind: str = kind,
                      exists: Callable[[awsa.BotoClient, str], bool] = exists) -> None:
                if not exists(aws.ec2, ident):
                    rep.problems.append(f"{kind} {ident} does not exist in {cfg.region}: create it, or fix "
                                        "environment.network" + bootstrap_hint(cfg))

            guard(rep, f"{kind} {ident}", check)


def _default_registry_check(image_ref: str) -> tuple[str | None, str | None]:
    ref = registry.ImageRef.parse(image_ref)
    try:
        digest = registry.RegistryClient(ref.registry).manifest_digest(ref.repository, ref.reference)
    except ExternalError as exc:
        return None, f"could not ask {ref.registry} about the image ({exc.message}); not checked"
    return digest, None if digest else "absent"


def check_image(cfg: ResolvedConfig, aws: awsa.AwsClients, image_ref: str, rep: Report, result: PreflightResult,
                 registry_check: Callable[[str], tuple[str | None, str | None]] | None) -> None:
    try:
        ref = registry.ImageRef.parse(image_ref)
        host, repo, tag, digest = ref.registry, ref.repository, ref.tag, ref.digest
    except UsageError as exc:
        rep.problems.append(str(exc.message))
        return
    m = ECR_HOST.match(host)
    if m:
        registry_id, region = m.group(1), m.group(2)

        def check() -> None:
            ecr = aws.ecr if region == cfg.region else awsa.clients(region).ecr
            found = awsa.ecr_image_digest(ecr, repo, tag=tag, digest=digest, registry_id=registry_id)
            if found is None:
                rep.problems.append(f"image {image_ref} is not in ECR (repository {repo} in {region}, "
                                    f"account {registry_id}): push it (`deployctl run` builds and pushes), or "
                                    "fix the image reference")
                return
            result.image_digest = found
            result.image_ref = f"{host}/{repo}@{found}"

        guard(rep, f"image {image_ref}", check)
        return
    found, note = (registry_check or _default_registry_check)(image_ref)
    if found:
        result.image_digest = found
        result.image_ref = f"{host}/{repo}@{found}"
    elif note == "absent":
        rep.problems.append(f"image {image_ref} is not in registry {host}: push it (`deployctl run` builds and "
                            "pushes), or fix the image reference")
    elif note:
        rep.notes.append(note)
        result.image_digest = digest


def check_target_groups(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: Report, result: PreflightResult) -> None:
    seen: set[str] = set()
    for svc_name, svc in cfg.services.items():
        if not svc.load_balancer or svc.load_balancer.target_group in seen:
            continue
        tg = svc.load_balancer.target_group
        seen.add(tg)

        def check(tg: str = tg, svc_name: str = svc_name) -> None:
            group = network_gateway.find_target_group(aws.elbv2, tg)
            if group is None:
                rep.problems.append(f"target group {tg} does not exist (service {svc_name}): create it (target "
                                    f"type ip), or fix services.{svc_name}.load_balancer.target_group"
                                    + bootstrap_hint(cfg))
                return
            result.target_group_arns[tg] = group.arn
            if group.target_type not in (None, "ip"):
                rep.problems.append(f"target group {tg} has target type {group.target_type}; "
                                    "Fargate tasks (awsvpc) need target type ip")
            if not group.load_balancer_arns:
                rep.problems.append(f"target group {tg} is not attached to a load balancer (add a "
                                    "listener rule); ECS refuses services on a detached target group"
                                    + bootstrap_hint(cfg))

        guard(rep, f"target group {tg}", check)


def check_roles(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: Report) -> None:
    roles = cfg.environment.roles
    if roles is None:
        return
    for kind, arn in (("execution", roles.execution), ("task", roles.task)):
        if not arn:
            continue
        name = role_name(arn)

        def check(kind: str = kind, arn: str = arn, name: str = name) -> None:
            if not iam_gateway.role_exists(aws.iam, name):
                rep.problems.append(f"IAM {kind} role {name} does not exist ({arn}): create it (`deployctl "
                                    f"iam-policy` shows the CI role; see docs/security.md), or fix "
                                    f"environment.roles.{kind}" + bootstrap_hint(cfg))

        guard(rep, f"IAM {kind} role {name}", check)


def check_alarms(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: Report, result: PreflightResult) -> None:
    names = list(dict.fromkeys(cfg.deploy.alarms))
    if not names:
        return

    def check() -> None:
        # No AlarmTypes: deploy.alarms may name composite alarms too.
        found = cloudwatch_gateway.alarm_states(aws.cloudwatch, names, types=None)
        for name in names:
            if name not in found:
                rep.problems.append(f"CloudWatch alarm {name} does not exist: create it, or remove it from "
                                    "deploy.alarms")
            elif found[name] == "ALARM":
                rep.notes.append(f"alarm {name} is already in ALARM: ECS ignores an alarm that is firing "
                                 "when the deployment starts, so it will not protect this rollout")
        result.alarm_states = found

    guard(rep, "deployment alarms", check)


def check_queue(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: Report) -> None:
    """The SQS queues deploy.yaml names must exist. monitoring.queue: an alarm on a queue that does
    not exist never fires (no data is `notBreaching`), so a typo would silently guard nothing.
    services.<name>.autoscaling.queue: a backlog policy on a missing queue has no data and never
    scales. Each queue is asked once; its line names every key that uses it."""
    users: dict[str, list[str]] = {}
    mon = getattr(cfg, "monitoring", None)
    if mon is not None and mon.queue is not None:
        users.setdefault(mon.queue.name, []).append("monitoring.queue.name")
    for svc, queue in _backlog_queues(cfg).items():
        users.setdefault(queue, []).append(f"services.{svc}.autoscaling.queue")
    for name, keys in users.items():
        # bootstrap creates monitoring.queue's queue and bootstrap.queues; autoscaling.queue alone, not.
        hint = bootstrap_hint(cfg) if "monitoring.queue.name" in keys else \
            f" (or list it in bootstrap.queues and run `deployctl bootstrap --env {cfg.env_name}`)"

        def check(name: str = name, keys: list[str] = keys, hint: str = hint) -> None:
            if not sqs_gateway.queue_exists(aws.client("sqs"), name):
                rep.problems.append(f"SQS queue {name} does not exist in {cfg.region} ({', '.join(keys)}): "
                                    f"create it (`aws sqs create-queue --queue-name {name}`), or fix "
                                    f"{' / '.join(keys)}" + hint)

        guard(rep, f"SQS queue {name}", check)

"""CloudFormation templates for `deployctl bootstrap`, rendered purely from deploy.yaml.

Two stacks per app:

- the account stack `deployctl-<app>` (once per account and region): the ECR repository with a
  lifecycle policy, the deploy-lock table and the GitHub OIDC provider — each only when it
  does not exist yet (`BootstrapFacts` says what the account already has) — and the CI role of
  every environment, each with exactly `deployctl iam-policy --env ENV`'s policy;
- the environment stack `deployctl-<app>-<env>`: network, security groups, ALB, listeners and
  target groups, the ECS cluster, the execution and task roles, the log group and SQS queues.

Names come from deploy.yaml where it gives them (cluster, role ARNs, target group names, the
ALB name in monitoring.load_balancer), else from deployctl's conventions (`names`). Resources
whose ids AWS chooses (VPC, subnets, security groups) reach deploy.yaml through the stack's
outputs: `environments.<env>.from_stack` (deployctl.config.stack_refs).

Nothing here calls AWS; deployctl.app.bootstrap reads the facts and applies the template.

Why over 500 lines: both templates are built from the same naming (`names`), tagging and
ownership rules (`created`/`used`/`check_owned`), and one stack's resources refer to each other
by logical id; split apart, each half would import the other's private helpers.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deployctl.config import stack_refs
from deployctl.config.model import Bootstrap, ResolvedConfig, Roles
from deployctl.errors import UsageError
from deployctl.render import ecs, iam

FORMAT_VERSION = "2010-09-09"
TG_NAME_MAX = 32  # elbv2 target group and load balancer names
ROLE_NAME_MAX = 64
ECS_TASKS = "ecs-tasks.amazonaws.com"
# Output keys: deployctl.config.stack_refs reads them back into deploy.yaml's settings.
OUT_CLUSTER = stack_refs.CLUSTER
OUT_SUBNETS = stack_refs.SUBNETS
OUT_SECURITY_GROUPS = stack_refs.SECURITY_GROUPS
OUT_PUBLIC_IP = stack_refs.PUBLIC_IP
OUT_EXECUTION_ROLE = stack_refs.EXECUTION_ROLE
OUT_TASK_ROLE = stack_refs.TASK_ROLE
target_group_output = stack_refs.target_group_output
security_group_output = stack_refs.security_group_output
OUT_CI_ROLE = "CiRoleArn"
OUT_URL = "Url"
OUT_LOAD_BALANCER = "LoadBalancer"


ACCOUNT = "${AWS::AccountId}"  # templates hold no account id: CloudFormation substitutes it
# Parameters whose values bootstrap looks up (network: existing or default).
PARAM_VPC = "VpcId"
PARAM_SUBNETS = "DefaultSubnets"


@dataclass(frozen=True)
class BootstrapFacts:
    """What the account already has (read by deployctl.app.bootstrap; nothing for --plan)."""

    lock_table_exists: bool = False
    oidc_provider_exists: bool = False
    repository_exists: bool = False
    # Pieces an earlier environment's stack creates under the same name (a cluster or roles that
    # staging and preview share): "cluster", "execution_role", "task_role", "tg:<service>".
    elsewhere: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Names:
    """The names deploy.yaml gives, or deployctl's conventions: what the stacks create."""

    cluster: str
    execution_role: str
    task_role: str
    ci_role: str
    load_balancer: str
    target_groups: dict[str, str] = field(default_factory=dict)  # HTTP services behind the ALB
    log_group: str = ""
    queues: tuple[str, ...] = ()


def settings(cfg: ResolvedConfig) -> Bootstrap:
    return cfg.bootstrap or Bootstrap.model_validate({})


def network_mode(cfg: ResolvedConfig) -> str:
    mode = settings(cfg).network
    if mode is not None:
        return mode
    return "existing" if cfg.environment.network is not None else "new"


def env_stack_name(cfg: ResolvedConfig) -> str:
    return f"deployctl-{cfg.app}-{cfg.env_name}"


def account_stack_name(cfg: ResolvedConfig) -> str:
    return f"deployctl-{cfg.app}"


def _short(name: str, limit: int) -> str:
    """`name` if it fits, else cut with a stable hash suffix (two long names stay distinct)."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[: limit - 7].rstrip('-')}-{digest}"


def _role_name(arn_or_name: str) -> str:
    return arn_or_name.rsplit("/", 1)[-1]


def http_services(cfg: ResolvedConfig) -> list[str]:
    """Services the ALB routes to: those with a port and a load_balancer, or — in an environment
    that takes its target groups from the stack — every service with a port."""
    out = []
    for name, svc in cfg.services.items():
        if svc.port is None:
            continue
        if svc.load_balancer is not None or (cfg.environment.from_stack and "load_balancer" not in
                                             svc.model_fields_set):
            out.append(name)
    return out


def names(cfg: ResolvedConfig) -> Names:
    env, app = cfg.env_name, cfg.app
    roles = cfg.environment.roles or Roles(execution=f"{app}-{env}-execution", task=f"{app}-{env}-task")
    tgs: dict[str, str] = {}
    for svc_name in http_services(cfg):
        lb = cfg.services[svc_name].load_balancer
        tgs[svc_name] = (lb.target_group.rsplit("/", 2)[-2] if lb and lb.target_group.startswith("arn:")
                         else lb.target_group if lb else _short(f"{app}-{env}-{svc_name}", TG_NAME_MAX))
    mon = cfg.monitoring
    # The queues deploy.yaml names for this environment: bootstrap.queues, the one monitoring
    # watches and those the services scale on (their task role is granted them).
    wanted = [*settings(cfg).queues, *([mon.queue.name] if mon and mon.queue else []),
              *(svc.autoscaling.queue for svc in cfg.services.values() if svc.autoscaling and svc.autoscaling.queue)]
    queues = list(dict.fromkeys(wanted))
    return Names(
        cluster=cfg.environment.cluster or f"{app}-{env}",
        execution_role=_role_name(roles.execution),
        task_role=_role_name(roles.task or f"{app}-{env}-task"),
        ci_role=_short(f"{app}-{env}-deployctl-ci", ROLE_NAME_MAX),
        # Always per environment: prod's metrics must never come from staging's ALB. Point
        # monitoring.load_balancer at this name.
        load_balancer=_short(f"{app}-{env}", TG_NAME_MAX),
        target_groups=tgs,
        log_group=ecs.log_group(cfg),
        queues=tuple(queues),
    )


# --- the environment stack --------------------------------------------------------------------


def env_template(cfg: ResolvedConfig, facts: BootstrapFacts | None = None, *,
                 others: Mapping[str, ResolvedConfig] | None = None) -> dict[str, Any]:
    """The environment's stack. `others`: every environment of deploy.yaml (a name another
    environment uses too is refused: check_owned)."""
    facts = facts or BootstrapFacts()
    check_owned(cfg, others or {})
    n, boot = names(cfg), settings(cfg)
    existing = set(boot.existing)
    res: dict[str, Any] = {}
    out: dict[str, Any] = {}
    params: dict[str, Any] = {}
    subnets, public_ip, vpc = _network(cfg, res, params)
    out[OUT_SUBNETS] = _output(_join(subnets), "Subnets the services run in")
    out[OUT_PUBLIC_IP] = _output("ENABLED" if public_ip else "DISABLED", "Whether tasks get public IPs")

    # Every task's group: no ingress at all (workers get only this one). Each HTTP service behind
    # the stack's load balancer also gets its own group, reachable on its own port (_load_balancer).
    res["ServiceSecurityGroup"] = _resource("AWS::EC2::SecurityGroup", {
        "GroupDescription": f"{cfg.app} {cfg.env_name} tasks: no inbound traffic",
        "VpcId": vpc,
        "Tags": _tags(cfg, f"{cfg.app}-{cfg.env_name}-tasks"),
    })
    out[OUT_SECURITY_GROUPS] = _output({"Ref": "ServiceSecurityGroup"},
                                       "Security group of every task (no inbound traffic)")
    mine = {s: tg for s, tg in n.target_groups.items()
            if "target_groups" not in existing and f"tg:{s}" not in facts.elsewhere}
    if mine and "load_balancer" not in existing:
        _load_balancer(cfg, n, mine, boot, subnets_public=_public_subnets(cfg), vpc=vpc, res=res, out=out)

    if "cluster" not in existing and "cluster" not in facts.elsewhere:
        res["Cluster"] = _resource("AWS::ECS::Cluster", {
            "ClusterName": n.cluster,
            "CapacityProviders": ["FARGATE", "FARGATE_SPOT"],
            "DefaultCapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": 1}],
            "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}],
            "Tags": _tags(cfg, n.cluster),
        })
    out[OUT_CLUSTER] = _output(n.cluster, "ECS cluster")

    previews = previews_of(cfg, others or {})
    if "log_group" not in existing:
        res["LogGroup"] = _resource("AWS::Logs::LogGroup", {
            "LogGroupName": n.log_group, "RetentionInDays": boot.log_retention_days})
        for p in previews:  # the copies' logs, kept as long as the environment's
            res["LogGroup" + _camel(p.env_name)] = _resource("AWS::Logs::LogGroup", {
                "LogGroupName": ecs.log_group(p), "RetentionInDays": boot.log_retention_days})
    if "queues" not in existing:
        for i, queue in enumerate(n.queues):
            _queue(cfg, queue, i, res)
    if "roles" not in existing and "execution_role" not in facts.elsewhere:
        res["ExecutionRole"] = _role(n.execution_role, f"{cfg.app} {cfg.env_name}: pulls the image, writes logs, "
                                                       "reads exactly the secrets deploy.yaml names",
                                     _trust_ecs_tasks(), _execution_policy([cfg, *previews], ACCOUNT), cfg)
    if "roles" not in existing and "task_role" not in facts.elsewhere:
        res["TaskRole"] = _role(n.task_role, f"{cfg.app} {cfg.env_name}: what the application code may do",
                                _trust_ecs_tasks(), _task_policy([cfg, *previews], ACCOUNT), cfg)
    part = iam._partition(cfg.region)
    out[OUT_EXECUTION_ROLE] = _output(f"arn:{part}:iam::{ACCOUNT}:role/{n.execution_role}", "Execution role")
    out[OUT_TASK_ROLE] = _output(f"arn:{part}:iam::{ACCOUNT}:role/{n.task_role}", "Task role")
    for svc_name, tg in n.target_groups.items():
        out[target_group_output(svc_name)] = _output(
            {"Ref": _tg_id(svc_name)} if _tg_id(svc_name) in res else tg, f"Target group of {svc_name}")
    if boot.github_repository:  # the role is the account stack's; its ARN is known before it exists
        out[OUT_CI_ROLE] = _output(f"arn:{part}:iam::{ACCOUNT}:role/{n.ci_role}",
                                   f"Role GitHub Actions assumes for {cfg.env_name} (stack {account_stack_name(cfg)})")
    return _template(f"deployctl bootstrap: {cfg.app} {cfg.env_name} ({network_mode(cfg)} network)", res, out,
                     params)


def created(cfg: ResolvedConfig) -> dict[str, set[str]]:
    """What the environment's stack creates by a name deploy.yaml may also give another
    environment: kind → names (kinds as an error names them)."""
    n, existing = names(cfg), set(settings(cfg).existing)
    out: dict[str, set[str]] = {}
    if "cluster" not in existing:
        out["ECS cluster"] = {n.cluster}
    if "roles" not in existing:
        out["IAM role"] = {n.execution_role, n.task_role}
    if "target_groups" not in existing and "load_balancer" not in existing:
        out["target group"] = set(n.target_groups.values())
    if "queues" not in existing:
        out["SQS queue"] = set(n.queues)
    return out


def used(cfg: ResolvedConfig) -> dict[str, set[str]]:
    """What the environment uses under those names, whoever creates it."""
    n = names(cfg)
    return {"ECS cluster": {n.cluster}, "IAM role": {n.execution_role, n.task_role},
            "target group": set(n.target_groups.values()), "SQS queue": set(n.queues)}


def check_owned(cfg: ResolvedConfig, others: Mapping[str, ResolvedConfig]) -> None:
    """Each environment's stack owns what it creates. A name another bootstrapped environment
    uses too would be created by both stacks (the second fails), or by one only, which then
    holds the other's roles or queue (scoped to the wrong secrets and log group) and deletes
    them when it is destroyed: refused before any AWS call."""
    mine = created(cfg)
    clashes: dict[str, list[str]] = {}
    for other in others.values():
        if other.env_name == cfg.env_name or not bootstrappable(other):
            continue
        for kind, theirs in used(other).items():
            if kind != "IAM role" and other.region != cfg.region:  # IAM names are global, the rest regional
                continue
            clashes.setdefault(other.env_name, []).extend(
                f"{kind} {name}" for name in sorted(mine.get(kind, set()) & theirs))
    said = "; ".join(f"{', '.join(found)} (which {env} uses too)" for env, found in clashes.items() if found)
    if said:
        raise UsageError(
            f"{cfg.env_name}'s stack would create {said}. Each environment's stack owns its roles, queues, "
            "cluster and target groups: scoped to that environment's secrets and log group, and deleted with it "
            "by `bootstrap --destroy`",
            hint=f"give {cfg.env_name} its own names (leave environments.{cfg.env_name}.roles out with from_stack: "
                 f"the stack names them {cfg.app}-{cfg.env_name}-execution/-task; queues per environment in "
                 f"environments.{cfg.env_name}.bootstrap.queues or monitoring.queue), or create the shared one "
                 "outside bootstrap and list it in bootstrap.existing")


def _network(cfg: ResolvedConfig, res: dict[str, Any], params: dict[str, Any]) -> tuple[Any, bool, Any]:
    """(subnet ids or refs the services use, public IPs?, VPC id or ref)."""
    mode = network_mode(cfg)
    if mode in ("existing", "default"):
        params[PARAM_VPC] = {"Type": "AWS::EC2::VPC::Id",
                             "Description": "The VPC of the subnets (bootstrap looks it up)"}
    if mode == "existing":
        net = cfg.environment.network
        assert net is not None, "validated: network existing needs environment.network"
        return list(net.subnets), net.public_ip, {"Ref": PARAM_VPC}
    if mode == "default":
        params[PARAM_SUBNETS] = {"Type": "List<AWS::EC2::Subnet::Id>",
                                 "Description": "The default VPC's subnets (bootstrap looks them up)"}
        return {"Ref": PARAM_SUBNETS}, True, {"Ref": PARAM_VPC}
    boot = settings(cfg)
    base = boot.cidr.split(".")[1]
    label = f"{cfg.app}-{cfg.env_name}"
    res["Vpc"] = _resource("AWS::EC2::VPC", {"CidrBlock": boot.cidr, "EnableDnsHostnames": True,
                                              "EnableDnsSupport": True, "Tags": _tags(cfg, label)})
    res["InternetGateway"] = _resource("AWS::EC2::InternetGateway", {"Tags": _tags(cfg, label)})
    res["GatewayAttachment"] = _resource("AWS::EC2::VPCGatewayAttachment", {
        "VpcId": {"Ref": "Vpc"}, "InternetGatewayId": {"Ref": "InternetGateway"}})
    res["PublicRouteTable"] = _resource("AWS::EC2::RouteTable", {"VpcId": {"Ref": "Vpc"}})
    res["PublicRoute"] = _resource("AWS::EC2::Route", {
        "RouteTableId": {"Ref": "PublicRouteTable"}, "DestinationCidrBlock": "0.0.0.0/0",
        "GatewayId": {"Ref": "InternetGateway"}}, depends_on="GatewayAttachment")
    for i, az in enumerate("AB"):
        res[f"PublicSubnet{az}"] = _subnet(cfg, f"10.{base}.{i * 16}.0/20", i, public=True)
        res[f"PublicSubnet{az}Routes"] = _resource("AWS::EC2::SubnetRouteTableAssociation", {
            "SubnetId": {"Ref": f"PublicSubnet{az}"}, "RouteTableId": {"Ref": "PublicRouteTable"}})
    if mode == "public":
        return [{"Ref": "PublicSubnetA"}, {"Ref": "PublicSubnetB"}], True, {"Ref": "Vpc"}
    res["NatAddress"] = _resource("AWS::EC2::EIP", {"Domain": "vpc"}, depends_on="GatewayAttachment")
    res["NatGateway"] = _resource("AWS::EC2::NatGateway", {
        "AllocationId": {"Fn::GetAtt": ["NatAddress", "AllocationId"]}, "SubnetId": {"Ref": "PublicSubnetA"},
        "Tags": _tags(cfg, f"{cfg.app}-{cfg.env_name}")})
    res["PrivateRouteTable"] = _resource("AWS::EC2::RouteTable", {"VpcId": {"Ref": "Vpc"}})
    res["PrivateRoute"] = _resource("AWS::EC2::Route", {
        "RouteTableId": {"Ref": "PrivateRouteTable"}, "DestinationCidrBlock": "0.0.0.0/0",
        "NatGatewayId": {"Ref": "NatGateway"}})
    for i, az in enumerate("AB"):
        res[f"PrivateSubnet{az}"] = _subnet(cfg, f"10.{base}.{128 + i * 16}.0/20", i, public=False)
        res[f"PrivateSubnet{az}Routes"] = _resource("AWS::EC2::SubnetRouteTableAssociation", {
            "SubnetId": {"Ref": f"PrivateSubnet{az}"}, "RouteTableId": {"Ref": "PrivateRouteTable"}})
    return [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}], False, {"Ref": "Vpc"}


def _public_subnets(cfg: ResolvedConfig) -> Any:
    mode = network_mode(cfg)
    if mode in ("new", "public"):
        return [{"Ref": "PublicSubnetA"}, {"Ref": "PublicSubnetB"}]
    if mode == "default":
        return {"Ref": PARAM_SUBNETS}
    net = cfg.environment.network
    assert net is not None
    return list(net.subnets)


def _subnet(cfg: ResolvedConfig, cidr: str, index: int, *, public: bool) -> dict[str, Any]:
    kind = "public" if public else "private"
    return _resource("AWS::EC2::Subnet", {
        "VpcId": {"Ref": "Vpc"}, "CidrBlock": cidr,
        "AvailabilityZone": {"Fn::Select": [index, {"Fn::GetAZs": ""}]},
        "MapPublicIpOnLaunch": public,
        "Tags": _tags(cfg, f"{cfg.app}-{cfg.env_name}-{kind}-{'ab'[index]}"),
    })


def _load_balancer(cfg: ResolvedConfig, n: Names, mine: dict[str, str], boot: Bootstrap, *, subnets_public: Any,
                   vpc: Any, res: dict[str, Any], out: dict[str, Any]) -> None:
    """The ALB, its listeners and the target groups this stack owns (`mine`: service → name)."""
    https = boot.certificate_arn is not None
    ingress = [{"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "CidrIp": "0.0.0.0/0"}
               for port in ((80, 443) if https else (80,))]
    # One group per service: the load balancer reaches each service's tasks on that service's port
    # only, and (its egress) nothing else. Ingress rules are separate resources: the load
    # balancer's group names the services' groups in its egress, the rules name it back.
    egress = []
    for svc_name in mine:
        port, group = _container_port(cfg, svc_name), security_group_output(svc_name)
        res[group] = _resource("AWS::EC2::SecurityGroup", {
            "GroupDescription": f"{cfg.app} {cfg.env_name} {svc_name}: from the load balancer on port {port} only",
            "VpcId": vpc, "Tags": _tags(cfg, f"{cfg.app}-{cfg.env_name}-{svc_name}")})
        res[f"{group}Ingress"] = _resource("AWS::EC2::SecurityGroupIngress", {
            "GroupId": {"Ref": group}, "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
            "SourceSecurityGroupId": {"Ref": "LoadBalancerSecurityGroup"},
            "Description": "from the load balancer"})
        egress.append({"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                       "DestinationSecurityGroupId": {"Ref": group}, "Description": f"to {svc_name}"})
        out[group] = _output({"Ref": group}, f"Security group of {svc_name}'s tasks (the load balancer reaches "
                                             f"them on port {port})")
    res["LoadBalancerSecurityGroup"] = _resource("AWS::EC2::SecurityGroup", {
        "GroupDescription": f"{cfg.app} {cfg.env_name} load balancer: HTTP(S) from anywhere, to the service "
                            "ports only",
        "VpcId": vpc, "SecurityGroupIngress": ingress, "SecurityGroupEgress": egress,
        "Tags": _tags(cfg, f"{cfg.app}-{cfg.env_name}-alb")})
    res["LoadBalancer"] = _resource("AWS::ElasticLoadBalancingV2::LoadBalancer", {
        "Name": n.load_balancer, "Scheme": "internet-facing", "Type": "application",
        "Subnets": subnets_public, "SecurityGroups": [{"Ref": "LoadBalancerSecurityGroup"}],
        "Tags": _tags(cfg, n.load_balancer)}, depends_on="GatewayAttachment" if "GatewayAttachment" in res else None)
    for svc_name, tg in mine.items():
        health = cfg.services[svc_name].health
        props: dict[str, Any] = {
            "Name": tg, "Port": _container_port(cfg, svc_name), "Protocol": "HTTP", "TargetType": "ip",
            "VpcId": vpc, "HealthCheckPath": health.path if health and health.path else "/",
            "Matcher": {"HttpCode": "200-399"},
            "TargetGroupAttributes": [{"Key": "deregistration_delay.timeout_seconds",
                                       "Value": str(int(boot.deregistration_delay))}],
            "Tags": _tags(cfg, tg),
        }
        if health and health.path:
            props.update(HealthCheckIntervalSeconds=max(5, min(300, int(health.interval))),
                         HealthCheckTimeoutSeconds=max(2, min(120, int(health.timeout))))
        res[_tg_id(svc_name)] = _resource("AWS::ElasticLoadBalancingV2::TargetGroup", props)
    first, *others = list(mine)
    forward = [{"Type": "forward", "TargetGroupArn": {"Ref": _tg_id(first)}}]
    redirect = [{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443",
                                                         "StatusCode": "HTTP_301"}}]
    res["HttpListener"] = _resource("AWS::ElasticLoadBalancingV2::Listener", {
        "LoadBalancerArn": {"Ref": "LoadBalancer"}, "Port": 80, "Protocol": "HTTP",
        "DefaultActions": redirect if https else forward})
    listener = "HttpListener"
    if https:
        res["HttpsListener"] = _resource("AWS::ElasticLoadBalancingV2::Listener", {
            "LoadBalancerArn": {"Ref": "LoadBalancer"}, "Port": 443, "Protocol": "HTTPS",
            "Certificates": [{"CertificateArn": boot.certificate_arn}],
            "SslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06", "DefaultActions": forward})
        listener = "HttpsListener"
    for i, svc_name in enumerate(others):  # the first HTTP service answers /, the others /<service>/*
        res[f"{_tg_id(svc_name)}Rule"] = _resource("AWS::ElasticLoadBalancingV2::ListenerRule", {
            "ListenerArn": {"Ref": listener}, "Priority": 10 + i,
            "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": [f"/{svc_name}/*"]}}],
            "Actions": [{"Type": "forward", "TargetGroupArn": {"Ref": _tg_id(svc_name)}}]})
    scheme = "https" if https else "http"
    out[OUT_URL] = _output({"Fn::Join": ["", [f"{scheme}://", {"Fn::GetAtt": ["LoadBalancer", "DNSName"]}]]},
                           "Where the first HTTP service answers")
    out[OUT_LOAD_BALANCER] = _output({"Ref": "LoadBalancer"}, f"ALB ARN (monitoring.load_balancer: {n.load_balancer})")


def _container_port(cfg: ResolvedConfig, svc_name: str) -> int:
    svc = cfg.services[svc_name]
    port = (svc.load_balancer.container_port if svc.load_balancer else None) or svc.port
    assert port is not None, "http_services has only services with a port"
    return port


def _tg_id(svc_name: str) -> str:
    return target_group_output(svc_name)


def _queue(cfg: ResolvedConfig, queue: str, index: int, res: dict[str, Any]) -> None:
    fifo = queue.endswith(".fifo")
    dlq_name = f"{queue[:-5]}-dlq.fifo" if fifo else f"{queue}-dlq"
    extra = {"FifoQueue": True} if fifo else {}
    res[f"Queue{index}DeadLetters"] = _resource("AWS::SQS::Queue", {
        "QueueName": dlq_name, "MessageRetentionPeriod": 1209600, **extra, "Tags": _tags(cfg, dlq_name)})
    res[f"Queue{index}"] = _resource("AWS::SQS::Queue", {
        "QueueName": queue, **extra,
        # A job that fails 5 times goes to the dead-letter queue instead of burning tokens forever.
        "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [f"Queue{index}DeadLetters", "Arn"]},
                          "maxReceiveCount": 5},
        "Tags": _tags(cfg, queue)})


def _trust_ecs_tasks() -> dict[str, Any]:
    return {"Version": iam.VERSION, "Statement": [{
        "Effect": "Allow", "Principal": {"Service": ECS_TASKS}, "Action": "sts:AssumeRole"}]}


def _execution_policy(served: list[ResolvedConfig], account: str) -> dict[str, Any]:
    """Exactly what ECS needs to start the tasks of `served` (the environment and its previews):
    pull their repository, write their log groups, read the secrets and parameters deploy.yaml
    names for them (and nothing else)."""
    arns = [iam.Arns(c, account) for c in served]
    refs = sorted({(i, ref) for i, c in enumerate(served) for svc in c.services.values()
                   for ref in svc.secrets.values()})
    logs = [arn for a in arns for arn in (a.log_group(), a.log_group() + ":*")]
    stmts = [
        {"Sid": "RegistryLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Sid": "PullImage", "Effect": "Allow", "Resource": _one_or_list(sorted({a.repository() for a in arns})),
         "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]},
        {"Sid": "WriteLogs", "Effect": "Allow", "Resource": list(dict.fromkeys(logs)),
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]},
    ]
    secrets = sorted({arns[i].secret(r) for i, r in refs if not ecs.is_ssm_ref(r)})
    params = sorted({arns[i].parameter(r) for i, r in refs if ecs.is_ssm_ref(r)})
    if secrets:
        stmts.append({"Sid": "ReadSecrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                      "Resource": secrets})
    if params:
        stmts.append({"Sid": "ReadParameters", "Effect": "Allow", "Action": "ssm:GetParameters", "Resource": params})
    return {"Version": iam.VERSION, "Statement": stmts}


def _one_or_list(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def _task_policy(served: list[ResolvedConfig], account: str) -> dict[str, Any] | None:
    """The app's own permissions that bootstrap knows of: its queues (the environment's and its
    previews'). Anything else (S3 buckets, Bedrock models) is the team's to add: deployctl cannot
    guess what the code calls."""
    cfg = served[0]
    queues = list(dict.fromkeys(q for c in served for q in names(c).queues))
    if not queues:
        return None
    arns = [f"arn:{iam._partition(cfg.region)}:sqs:{cfg.region}:{account}:{q}" for q in queues]
    return {"Version": iam.VERSION, "Statement": [{
        "Sid": "UseQueues", "Effect": "Allow", "Resource": arns,
        "Action": ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                   "sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:SendMessage"]}]}


def previews_of(cfg: ResolvedConfig, others: Mapping[str, ResolvedConfig]) -> list[ResolvedConfig]:
    """Preview environments whose copies run with this environment's roles: their from_stack is
    this stack, or they name its roles. Its roles must write their log groups and read their
    secrets too."""
    n = names(cfg)
    return [p for p in others.values()
            if p.environment.preview and p.environment.target == "ecs" and p.region == cfg.region
            and (p.environment.from_stack == env_stack_name(cfg)
                 or (p.environment.roles is not None and names(p).execution_role == n.execution_role))]


def _role(name: str, description: str, trust: dict[str, Any], policy: dict[str, Any] | None,
          cfg: ResolvedConfig) -> dict[str, Any]:
    props: dict[str, Any] = {"RoleName": name, "Description": description, "AssumeRolePolicyDocument": trust,
                             "Tags": _tags(cfg, name)}
    if policy is not None:
        props["Policies"] = [{"PolicyName": "deployctl", "PolicyDocument": policy}]
    return _resource("AWS::IAM::Role", props)


def _ci_role(cfg: ResolvedConfig, repo: str, account: str, all_cfgs: Mapping[str, ResolvedConfig],
             depends_on: str | None) -> dict[str, Any]:
    """The role GitHub Actions assumes for one environment: exactly the policy and trust policy
    `deployctl iam-policy --env ENV --repo REPO` prints once the environment's stack exists."""
    origin = cfg.environment.promote_from
    source = all_cfgs.get(origin) if origin else None
    effective = effective_config(cfg, account, all_cfgs)
    trust = iam.trust_policy(account, iam.subjects(effective, repo), partition=iam._partition(cfg.region))
    role = _role(names(cfg).ci_role, f"GitHub Actions ({repo}) deploying {cfg.app} {cfg.env_name} with deployctl",
                 trust, iam.ci_policy(effective, account,
                                      source=effective_config(source, account, all_cfgs) if source else None),
                 cfg)
    role["Properties"]["MaxSessionDuration"] = 3600
    if depends_on:
        role["DependsOn"] = depends_on
    return role


def effective_config(cfg: ResolvedConfig, account: str,
                     all_cfgs: Mapping[str, ResolvedConfig] | None = None) -> ResolvedConfig:
    """cfg as `deployctl iam-policy` and `run` see it once its from_stack exists: what deploy.yaml
    leaves out taken from the outputs that stack will have (stack_refs.apply, the code `run`
    uses) — a preview's stack is the environment's it copies (owner). Ids AWS chooses (subnets,
    security groups) are placeholders: the CI policy names none of them."""
    stack = cfg.environment.from_stack
    if not stack:
        return cfg
    return stack_refs.apply(cfg, stack, expected_outputs(owner(cfg, all_cfgs or {}) or cfg, account))[0]


def owner(cfg: ResolvedConfig, all_cfgs: Mapping[str, ResolvedConfig]) -> ResolvedConfig | None:
    """The bootstrapped environment whose stack cfg's from_stack names (itself, or for a preview
    the environment it copies)."""
    if bootstrappable(cfg):
        return cfg
    return next((c for c in all_cfgs.values() if bootstrappable(c) and c.region == cfg.region
                 and env_stack_name(c) == cfg.environment.from_stack), None)


def expected_outputs(cfg: ResolvedConfig, account: str) -> dict[str, str]:
    """The outputs of the environment's stack, with placeholders for the ids AWS chooses."""
    n = names(cfg)
    part = iam._partition(cfg.region)
    out = {OUT_CLUSTER: n.cluster, OUT_SUBNETS: "subnet-chosen-by-the-stack",
           OUT_SECURITY_GROUPS: "sg-chosen-by-the-stack", OUT_PUBLIC_IP: "ENABLED" if _public_ip(cfg) else "DISABLED",
           OUT_EXECUTION_ROLE: f"arn:{part}:iam::{account}:role/{n.execution_role}",
           OUT_TASK_ROLE: f"arn:{part}:iam::{account}:role/{n.task_role}"}
    out.update({target_group_output(svc): tg for svc, tg in n.target_groups.items()})
    out.update({security_group_output(svc): f"sg-{svc}-chosen-by-the-stack" for svc in n.target_groups})
    return out


def _public_ip(cfg: ResolvedConfig) -> bool:
    mode = network_mode(cfg)
    if mode == "existing":
        return cfg.environment.network is not None and cfg.environment.network.public_ip
    return mode != "new"


def ci_environments(cfg: ResolvedConfig, all_cfgs: Mapping[str, ResolvedConfig]) -> list[ResolvedConfig]:
    """The environments whose CI role the account stack of cfg's region holds: every ECS
    environment of that region with a github_repository — bootstrapped ones, and previews whose
    from_stack is a bootstrapped environment's (or that name everything themselves)."""
    return [other for other in all_cfgs.values()
            if other.environment.target == "ecs" and other.region == cfg.region
            and settings(other).github_repository
            and (not other.environment.from_stack or owner(other, all_cfgs) is not None)]


def bootstrappable(cfg: ResolvedConfig) -> bool:
    """bootstrap makes a stack for ECS environments; previews run in the stack of the one they copy."""
    return cfg.environment.target == "ecs" and not cfg.environment.preview


def ci_role_output(env_name: str) -> str:
    return OUT_CI_ROLE + _camel(env_name)


def _camel(name: str) -> str:
    return "".join(p.capitalize() for p in name.replace("_", "-").split("-"))


# --- the account stack --------------------------------------------------------------------------


def account_template(cfg: ResolvedConfig, facts: BootstrapFacts | None = None, *,
                     all_cfgs: Mapping[str, ResolvedConfig] | None = None) -> dict[str, Any]:
    """The stack every environment of the app in this region shares. It holds the GitHub OIDC
    provider and the CI roles — once per account, one role per environment (a staging job must
    not be able to deploy prod) — so destroying one environment never takes another's role."""
    facts = facts or BootstrapFacts()
    all_cfgs = all_cfgs or {cfg.env_name: cfg}
    boot = settings(cfg)
    existing = set(boot.existing)
    res: dict[str, Any] = {}
    out: dict[str, Any] = {}
    if cfg.image.registry == "ecr" and "repository" not in existing and not facts.repository_exists:
        res["Repository"] = _resource("AWS::ECR::Repository", {
            "RepositoryName": cfg.image.repository,
            "ImageScanningConfiguration": {"ScanOnPush": True},
            # As the push stage creates it (stages/access.py): a tag, once pushed, names those bytes.
            "ImageTagMutability": "IMMUTABLE",
            "LifecyclePolicy": {"LifecyclePolicyText": json.dumps(
                lifecycle_policy(boot.keep_images, disposable_tags(cfg, all_cfgs)), separators=(",", ":"))},
            "Tags": _tags(cfg, cfg.image.repository, env=False)}, retain=True)
        out["Repository"] = _output({"Fn::GetAtt": ["Repository", "RepositoryUri"]}, "ECR repository")
    if "lock_table" not in existing and not facts.lock_table_exists:
        res["LockTable"] = _resource("AWS::DynamoDB::Table", {
            "TableName": iam.LOCK_TABLE, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}, retain=True)
    ci = ci_environments(cfg, all_cfgs)
    if ci and not facts.oidc_provider_exists:
        res["GitHubOidc"] = _resource("AWS::IAM::OIDCProvider", {
            "Url": f"https://{iam.GITHUB_OIDC}", "ClientIdList": ["sts.amazonaws.com"]}, retain=True)
    for env_cfg in ci:
        repo = settings(env_cfg).github_repository
        assert repo is not None, "ci_environments has only environments with a github_repository"
        logical = "CiRole" + _camel(env_cfg.env_name)
        res[logical] = _ci_role(env_cfg, repo, ACCOUNT, all_cfgs, "GitHubOidc" if "GitHubOidc" in res else None)
        out[ci_role_output(env_cfg.env_name)] = _output(
            {"Fn::GetAtt": [logical, "Arn"]}, f"Role GitHub Actions assumes for {env_cfg.env_name} (AWS_ROLE_ARN)")
    if not res:  # CloudFormation refuses a template without resources; this one says "all exists"
        res["Nothing"] = {"Type": "AWS::CloudFormation::WaitConditionHandle"}
    return _template(f"deployctl bootstrap: {cfg.app}, shared by its environments in {cfg.region}", res, out)


def lifecycle_policy(keep: int, disposable: list[str] | None = None) -> dict[str, Any]:
    """What the repository may forget. Every release runs an image deployctl pushed under its
    image.tag (tags are immutable, so never moved off it); staging, previews and prod share the
    repository, and rollback may go back to any revision ECS keeps: no tagged image is expired
    by count, whatever pushed after it. Untagged images (never what a release runs) go after 14
    days; tags only previews push (`disposable`, see disposable_tags) beyond the newest `keep`."""
    rules: list[dict[str, Any]] = [
        {"rulePriority": 1, "description": "untagged images older than 14 days",
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                       "countNumber": 14},
         "action": {"type": "expire"}}]
    if disposable:
        rules.append({"rulePriority": 2, "description": f"preview images beyond the newest {keep}",
                      "selection": {"tagStatus": "tagged", "tagPatternList": disposable,
                                    "countType": "imageCountMoreThan", "countNumber": keep},
                      "action": {"type": "expire"}})
    return {"rules": rules}


_SAMPLE = {"git_sha": "0123456789ab", "branch": "main"}


def disposable_tags(cfg: ResolvedConfig, all_cfgs: Mapping[str, ResolvedConfig]) -> list[str]:
    """ECR tag patterns (wildcards) that only preview environments push to cfg's repository:
    their image.tag starts with {env}, and no other environment's tags can match. Without
    {env} a preview's tag looks like staging's (a git sha) and nothing is disposable."""
    same = [c for c in all_cfgs.values() if c.image.registry == "ecr" and c.region == cfg.region
            and c.image.repository == cfg.image.repository and c.environment.target == "ecs"]
    releases = [c for c in same if not c.environment.preview]
    out: list[str] = []
    for c in same:
        tpl = c.image.tag
        if not c.environment.preview or not tpl.startswith("{env}"):
            continue
        pattern = tpl.replace("{env}", c.env_name).replace("{git_sha}", "*").replace("{branch}", "*")
        while "**" in pattern:
            pattern = pattern.replace("**", "*")
        sample = [r.image.tag.format(env=r.env_name, **_SAMPLE) for r in releases]
        if pattern.count("*") <= 4 and all(r.image.tag.startswith("{env}") for r in releases) \
                and not any(fnmatch.fnmatchcase(t, pattern) for t in sample):
            out.append(pattern)
    return sorted(set(out))


# --- helpers -------------------------------------------------------------------------------------


def _template(description: str, resources: dict[str, Any], outputs: dict[str, Any],
              params: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"AWSTemplateFormatVersion": FORMAT_VERSION, "Description": description}
    if params:
        doc["Parameters"] = params
    doc["Resources"] = resources
    if outputs:
        doc["Outputs"] = outputs
    return _substituted(doc)


def _substituted(node: Any) -> Any:
    """Strings naming ${AWS::AccountId} become Fn::Sub, so one template serves any account."""
    if isinstance(node, str):
        return {"Fn::Sub": node} if "${AWS::" in node else node
    if isinstance(node, list):
        return [_substituted(v) for v in node]
    if isinstance(node, dict):
        if "Fn::Sub" in node:
            return node
        return {k: _substituted(v) for k, v in node.items()}
    return node


def _resource(kind: str, props: dict[str, Any], *, depends_on: str | None = None,
              retain: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"Type": kind, "Properties": props}
    if depends_on:
        out["DependsOn"] = depends_on
    if retain:  # images, the lock table and the OIDC provider outlive a stack that is deleted
        out["DeletionPolicy"] = out["UpdateReplacePolicy"] = "Retain"
    return out


def _output(value: Any, description: str) -> dict[str, Any]:
    return {"Description": description, "Value": value}


def _join(values: Any) -> Any:
    if isinstance(values, dict):  # a list parameter
        return {"Fn::Join": [",", values]}
    if all(isinstance(v, str) for v in values):
        return ",".join(values)
    return {"Fn::Join": [",", values]}


def _tags(cfg: ResolvedConfig, name: str, *, env: bool = True) -> list[dict[str, str]]:
    tags = [{"Key": "Name", "Value": name}, {"Key": "deployctl:app", "Value": cfg.app}]
    if env:
        tags.append({"Key": "deployctl:env", "Value": cfg.env_name})
    return tags


def render_json(template: dict[str, Any]) -> str:
    return json.dumps(template, indent=2, sort_keys=False) + "\n"

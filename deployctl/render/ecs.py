"""ECS task definition and service requests, rendered purely from a resolved config.

Anything only known at deploy time (account id, secret ARNs with their random suffix, target
group ARNs, the image digest, the release id) comes in through `Facts`, whose defaults are
readable placeholders, so `plan` shows the same shape `run` sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deployctl.config.model import ResolvedConfig, Service
from deployctl.render import probe
from deployctl.render.monitoring import deployment_alarm_names, log_group

TAG_PREFIX = "deployctl:"
ACCOUNT_PLACEHOLDER = "<account-id>"


@dataclass(frozen=True)
class Facts:
    account_id: str = ACCOUNT_PLACEHOLDER
    # deploy.yaml reference → the full ARN of its secret/parameter (a json-key/version suffix in the
    # reference is added back by secret_arn)
    secret_arns: dict[str, str] = field(default_factory=dict)
    target_group_arns: dict[str, str] = field(default_factory=dict)  # name → ARN
    image_digest: str | None = None
    release_id: str | None = None
    git_sha: str | None = None
    preview_name: str | None = None


# ECS service names hold the environment: two environments (or preview copies) in one cluster
# must never update each other's services. deploy.service_name overrides the template, e.g.
# "{app}-{service}" to keep the names of services created before the environment was in them.
SERVICE_NAME = "{app}-{env}-{service}"
PREVIEW_SERVICE_NAME = "{app}-{env}-{name}-{service}"


def service_name_template(cfg: ResolvedConfig) -> str:
    if cfg.deploy.service_name:
        return cfg.deploy.service_name
    return PREVIEW_SERVICE_NAME if cfg.environment.preview else SERVICE_NAME


def service_name(cfg: ResolvedConfig, svc: str, preview: str | None = None) -> str:
    own = cfg.services[svc].ecs_service if svc in cfg.services else None
    if own and not preview:  # an adopted service keeps its name (validate refuses it in previews)
        return own
    return service_name_template(cfg).format(app=cfg.app, env=cfg.env_name, service=svc, name=preview or "")


def family(cfg: ResolvedConfig, svc: str, preview: str | None = None) -> str:
    """Task-definition family: account- and region-wide, so always per environment (and per
    preview copy), whatever deploy.service_name says; release history is read from it. An
    adopted service may keep its own family (`services.<name>.family`)."""
    own = cfg.services[svc].family if svc in cfg.services else None
    if own and not preview:
        return own
    return f"{cfg.app}-{cfg.env_name}-{preview}-{svc}" if preview else f"{cfg.app}-{cfg.env_name}-{svc}"


def container_name(cfg: ResolvedConfig, svc: str) -> str:
    """The service's container in its task definition: the service's name unless deploy.yaml
    keeps an adopted service's own (`services.<name>.container`)."""
    return cfg.services[svc].container or svc


def is_ssm_ref(ref: str) -> bool:
    return ref.startswith("ssm:") or (ref.startswith("arn:") and ":ssm:" in ref)


# arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf — seven fields; ECS's valueFrom may
# add :json-key:version-stage:version-id after them (any may be empty, e.g. `…:password::`).
_SECRET_ARN_FIELDS = 7


def split_secret_ref(ref: str) -> tuple[str, str]:
    """(the secret, the suffix ECS reads after it) for a Secrets Manager reference.

    `arn:…:secret:db-AbCdEf:password::` → (`arn:…:secret:db-AbCdEf`, `:password::`); by name,
    `db:password::` → (`db`, `:password::`) (secret names cannot contain a colon). The suffix is
    "" when the reference names the whole secret, and always "" for SSM references.
    """
    if is_ssm_ref(ref):
        return ref, ""
    if ref.startswith("arn:"):
        parts = ref.split(":")
        if len(parts) <= _SECRET_ARN_FIELDS or parts[2] != "secretsmanager":
            return ref, ""
        return ":".join(parts[:_SECRET_ARN_FIELDS]), ":" + ":".join(parts[_SECRET_ARN_FIELDS:])
    name, colon, rest = ref.partition(":")
    return name, colon + rest


def secret_arn(cfg: ResolvedConfig, ref: str, facts: Facts) -> str:
    """valueFrom for a secret reference; values are never read, only pointed to."""
    if is_ssm_ref(ref):
        if ref in facts.secret_arns:
            return facts.secret_arns[ref]
        if ref.startswith("arn:"):
            return ref
        name = ref[len("ssm:"):]
        return f"arn:aws:ssm:{cfg.region}:{facts.account_id}:parameter/{name.lstrip('/')}"
    secret, suffix = split_secret_ref(ref)
    found = facts.secret_arns.get(ref) or facts.secret_arns.get(secret)
    if found:
        # Preflight resolves the secret's full ARN; the user's json-key/version suffix stays on it
        # (split again, so a resolved value that already carries the suffix is not doubled).
        return split_secret_ref(found)[0] + suffix
    if secret.startswith("arn:"):
        return ref
    # A partial ARN (no random suffix): ECS accepts it; preflight swaps in the full ARN.
    return f"arn:aws:secretsmanager:{cfg.region}:{facts.account_id}:secret:{secret}{suffix}"


def target_group_arn(cfg: ResolvedConfig, name: str, facts: Facts) -> str:
    if name.startswith("arn:"):
        return name
    return facts.target_group_arns.get(name, f"<arn of target group {name}>")


def container_ports(svc: Service) -> list[int]:
    """The service port, plus the load balancer's container port when it differs: ECS refuses a
    load balancer whose containerPort has no port mapping in the task definition."""
    ports = [svc.port] if svc.port else []
    lb_port = svc.load_balancer.container_port if svc.load_balancer else None
    if lb_port and lb_port not in ports:
        ports.append(lb_port)
    return ports


def health_check(svc: Service) -> dict[str, object] | None:
    if svc.health is None:
        return None
    h = svc.health
    # The same probe as the local target's (wget, curl or the image's python): see render/probe.py.
    command = probe.http_probe(int(svc.port or 0), h.path, h.timeout) if h.path else \
        probe.command_probe(h.command or [])
    return {
        "command": command,
        "interval": int(h.interval),
        "timeout": int(h.timeout),
        "retries": h.retries,
        "startPeriod": int(h.start_period),
    }


def tags(cfg: ResolvedConfig, svc: str, facts: Facts) -> list[dict[str, str]]:
    values = {
        "app": cfg.app,
        "env": cfg.env_name,
        "service": svc,
        "git-sha": facts.git_sha,
        "image-digest": facts.image_digest,
        "release": facts.release_id,
        "preview": facts.preview_name,
    }
    return [{"key": TAG_PREFIX + k, "value": v} for k, v in values.items() if v]


def task_definition(cfg: ResolvedConfig, svc_name: str, image: str, facts: Facts) -> dict[str, object]:
    """RegisterTaskDefinition request for one service."""
    svc = cfg.services[svc_name]
    env = cfg.environment
    container: dict[str, object] = {
        "name": container_name(cfg, svc_name),
        "image": image,
        "essential": True,
        "environment": [{"name": k, "value": v} for k, v in sorted(svc.env.items())],
        "secrets": [{"name": k, "valueFrom": secret_arn(cfg, v, facts)} for k, v in sorted(svc.secrets.items())],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group(cfg),
                "awslogs-region": cfg.region,
                "awslogs-stream-prefix": svc_name,
                "awslogs-create-group": "true",
            },
        },
        "dockerLabels": {"deployctl.app": cfg.app, "deployctl.env": cfg.env_name, "deployctl.service": svc_name},
        # Model servers need time to finish in-flight requests on SIGTERM.
        "stopTimeout": 30,
    }
    if svc.command:
        container["command"] = list(svc.command)
    ports = container_ports(svc)
    if ports:
        # Port mapping names are lowercase in ECS (Service Connect); service names may not be.
        container["portMappings"] = [
            {"containerPort": port, "protocol": "tcp",
             "name": f"{svc_name.lower()}-http" if i == 0 else f"{svc_name.lower()}-{port}"}
            for i, port in enumerate(ports)
        ]
    check = health_check(svc)
    if check:
        container["healthCheck"] = check
    request: dict[str, object] = {
        "family": family(cfg, svc_name, facts.preview_name),
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": str(svc.cpu),
        "memory": str(svc.memory),
        "runtimePlatform": {"cpuArchitecture": cfg.image.arch, "operatingSystemFamily": "LINUX"},
        "containerDefinitions": [container],
        "tags": tags(cfg, svc_name, facts),
    }
    if env.roles:
        request["executionRoleArn"] = env.roles.execution
        if env.roles.task:
            request["taskRoleArn"] = env.roles.task
    return request


def deployment_configuration(cfg: ResolvedConfig, svc_name: str | None = None) -> dict[str, object]:
    d = cfg.deploy
    # deploy.alarms guard every service; generated monitoring alarms listed in
    # monitoring.roll_back_on guard the service they measure.
    names = deployment_alarm_names(cfg, cfg.monitoring, svc_name)
    conf: dict[str, object] = {
        "deploymentCircuitBreaker": {"enable": d.circuit_breaker.enable, "rollback": d.circuit_breaker.rollback},
        "maximumPercent": d.max_percent,
        "minimumHealthyPercent": d.min_healthy_percent,
        "alarms": {"alarmNames": names, "enable": bool(names), "rollback": bool(names)},
    }
    return conf


def capacity_provider_strategy(svc: Service) -> list[dict[str, object]]:
    return [{"capacityProvider": "FARGATE_SPOT" if svc.spot else "FARGATE", "weight": 1, "base": 0}]


def _network(cfg: ResolvedConfig, svc_name: str) -> dict[str, object]:
    net = cfg.environment.network
    if net is None:
        return {}
    return {"awsvpcConfiguration": {
        "subnets": list(net.subnets),
        "securityGroups": list(dict.fromkeys([*net.security_groups, *cfg.services[svc_name].security_groups])),
        "assignPublicIp": "ENABLED" if net.public_ip else "DISABLED",
    }}


def _load_balancers(cfg: ResolvedConfig, svc_name: str, facts: Facts) -> list[dict[str, object]]:
    svc = cfg.services[svc_name]
    if not svc.load_balancer:
        return []
    return [{
        "targetGroupArn": target_group_arn(cfg, svc.load_balancer.target_group, facts),
        "containerName": container_name(cfg, svc_name),
        "containerPort": svc.load_balancer.container_port or svc.port,
    }]


def _grace(svc: Service) -> int | None:
    # Without a grace period the load balancer can fail a task that is still loading its model.
    if svc.load_balancer and svc.health:
        return int(svc.health.start_period)
    return None


def create_service(cfg: ResolvedConfig, svc_name: str, task_def: str, facts: Facts) -> dict[str, object]:
    svc = cfg.services[svc_name]
    request: dict[str, object] = {
        "cluster": cfg.environment.cluster,
        "serviceName": service_name(cfg, svc_name, facts.preview_name),
        "taskDefinition": task_def,
        "desiredCount": svc.autoscaling.min if svc.autoscaling else svc.count,
        "capacityProviderStrategy": capacity_provider_strategy(svc),
        "platformVersion": "LATEST",
        "deploymentController": {"type": "ECS"},
        "deploymentConfiguration": deployment_configuration(cfg, svc_name),
        "schedulingStrategy": "REPLICA",
        "enableECSManagedTags": True,
        "propagateTags": "SERVICE",
        "tags": tags(cfg, svc_name, Facts(preview_name=facts.preview_name)),
    }
    request.update(_optional_blocks(cfg, svc_name, facts))
    return request


def _optional_blocks(cfg: ResolvedConfig, svc_name: str, facts: Facts) -> dict[str, object]:
    """Blocks create and update share, sent only when they say something (an empty network or
    load-balancer block would be rejected)."""
    out: dict[str, object] = {}
    network = _network(cfg, svc_name)
    if network:
        out["networkConfiguration"] = network
    lbs = _load_balancers(cfg, svc_name, facts)
    if lbs:
        out["loadBalancers"] = lbs
    grace = _grace(cfg.services[svc_name])
    if grace is not None:
        out["healthCheckGracePeriodSeconds"] = grace
    return out


def update_service(cfg: ResolvedConfig, svc_name: str, task_def: str, facts: Facts) -> dict[str, object]:
    svc = cfg.services[svc_name]
    request: dict[str, object] = {
        "cluster": cfg.environment.cluster,
        "service": service_name(cfg, svc_name, facts.preview_name),
        "taskDefinition": task_def,
        "capacityProviderStrategy": capacity_provider_strategy(svc),
        "deploymentConfiguration": deployment_configuration(cfg, svc_name),
        "forceNewDeployment": False,
    }
    # With autoscaling the scaler owns desiredCount; resetting it on every deploy would fight it.
    if not svc.autoscaling:
        request["desiredCount"] = svc.count
    request.update(_optional_blocks(cfg, svc_name, facts))
    return request

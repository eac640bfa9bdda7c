"""deploy.yaml v1 as frozen, typed models (pydantic v2).

Every section forbids unknown keys so a typo is an error, not a silently ignored setting.
Environment overlays are applied before these models are built (see resolve.py), so each
model here always describes one complete, merged environment.

One module although it is long: the models are deploy.yaml's reference, read top to bottom in
the file's own order (docs/deploy-yaml.md follows it), and pydantic resolves the forward
references between sections within one module.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from deployctl.config.target_names import TARGETS
from deployctl.config.units import parse_duration, parse_size

Duration = Annotated[float, BeforeValidator(parse_duration),
                     Field(json_schema_extra={"type": ["string", "number"]})]


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be longer than 0s")
    return value


# Timeouts and polling intervals: 0 would never wait (or spin).
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive),
                             Field(json_schema_extra={"type": ["string", "number"]})]
Size = Annotated[int, BeforeValidator(parse_size), Field(json_schema_extra={"type": ["string", "integer"]})]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")]
ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Docker's tag grammar, checked on the template with every placeholder filled in.
DOCKER_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
TAG_PLACEHOLDERS = ("git_sha", "branch", "env")


def _env_var_name(name: str) -> str:
    if not ENV_VAR.match(name):
        raise ValueError(f"'{name}' is not a valid environment variable name (letters, digits and _, "
                         "not starting with a digit)")
    return name


# As a dict key type, so an error points at the offending name rather than the whole map.
EnvVarName = Annotated[str, AfterValidator(_env_var_name)]


def _no_bool(value: object) -> object:
    # pydantic's lax mode reads `memory: true` as 1; a boolean is never a count or a size here.
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {str(value).lower()}")
    return value


def _env_value(value: object) -> object:
    """Environment values are strings. Whole numbers are written as they read (WORKERS: 4);
    floats and booleans are refused because YAML has already changed them: 3.10 became 3.1,
    and yes/no/on/off became true/false."""
    if isinstance(value, bool):
        raise ValueError(f"YAML read this as the boolean {str(value).lower()}; quote it, e.g. \"true\" or \"yes\"")
    if isinstance(value, float):
        raise ValueError(f"YAML read this as the number {value!r}; quote it to keep it exact, e.g. \"3.10\"")
    if isinstance(value, int):
        return str(value)
    return value


def _no_bool_number(value: object) -> object:
    if isinstance(value, bool):  # `error_rate: true` would be 1.0 in pydantic's lax mode
        raise ValueError(f"expected a number, got {str(value).lower()}")
    return value


def _not_blank(value: str) -> str:
    # An empty cluster made preflight look for `default`; an empty role or subnet fails only in AWS.
    if not value.strip():
        raise ValueError("must not be empty")
    return value


# AWS region names: us-east-1, eu-central-2, us-gov-west-1, cn-north-1, eu-isoe-west-1. The region
# becomes part of endpoint URLs and file names: nothing else (../../etc, escapes) gets through.
REGION = r"^[a-z]{2}(-[a-z]+){1,3}-[0-9]{1,2}$"


def _registry(value: str) -> str:
    """`ecr` or a registry host, never credentials: they would be printed in plans and logs."""
    if "@" in value.split("://", 1)[-1].split("/", 1)[0]:  # https://user:pass@host, user:pass@host, token@host
        raise ValueError("must not hold credentials (user:password@…); they would be printed in plans and "
                         "logs. Give only the host, and log in with `docker login HOST` or a Docker "
                         "credential helper")
    if "://" in value:
        raise ValueError("expected a registry host without a scheme, such as localhost:5000 or ghcr.io/org")
    if value != "ecr" and not REGISTRY_HOST.match(value):
        raise ValueError("expected `ecr` or a registry host such as localhost:5000 or ghcr.io/org")
    return value


REGISTRY_HOST = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:]+\])(:[0-9]{1,5})?"
                           r"(/[a-z0-9]+([._-][a-z0-9]+)*)*$")

Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool_number)]
NonEmpty = Annotated[str, Field(min_length=1), AfterValidator(_not_blank)]
Registry = Annotated[str, Field(min_length=1), AfterValidator(_registry)]
EnvValue = Annotated[str, BeforeValidator(_env_value), Field(json_schema_extra={"type": ["string", "integer"]})]


def _in_range(value: float, lo: float, hi: float, what: str) -> float:
    if not lo <= value <= hi:
        raise ValueError(f"{what} must be between {lo:g}s and {hi:g}s (ECS limit), got {value:g}s")
    return value


class Strict(BaseModel):
    # No NaN or infinity anywhere (YAML's .nan/.inf): they mean nothing here and break JSON output.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class ImageConfig(Strict):
    repository: str = Field(pattern=r"^[a-z0-9][a-z0-9._/-]*$", description="Image repository name")
    registry: Registry = Field("ecr", description="`ecr` (the account's ECR) or a registry host such as "
                                             "localhost:5000")
    context: str = Field(".", description="Build context, relative to deploy.yaml")
    dockerfile: str = Field("Dockerfile", description="Dockerfile path, relative to the context")
    target: str | None = Field(None, description="Build stage to stop at (multi-stage builds)")
    build_args: dict[str, EnvValue] = Field(default_factory=dict)
    platform: Literal["linux/amd64", "linux/arm64"] = "linux/amd64"
    max_size: Size | None = Field(None, description="Fail the build when the image is larger (e.g. 600MB)")
    tag: str = Field("{git_sha}", description="Tag template; placeholders {git_sha}, {branch}, {env}")
    keep: Int = Field(5, ge=1, le=100, description="Local target: images kept for rollback")
    allow_secret_files: list[str] = Field(
        default_factory=list,
        description="Paths (relative to the context, or absolute inside the image) that may hold "
                    "secret-looking files; a directory covers what is below it. See docs/build-secrets.md")

    @field_validator("allow_secret_files")
    @classmethod
    def _allow_paths(cls, value: list[str]) -> list[str]:
        for entry in value:
            parts = entry.strip("/").split("/")
            if not entry.strip("/") or any(p in ("", ".", "..") for p in parts):
                raise ValueError(f"'{entry}' is not a plain path: give the file or directory as "
                                 "it appears in the context (e.g. certs/test-only.key)")
        return value

    @field_validator("tag")
    @classmethod
    def _tag_placeholders(cls, value: str) -> str:
        unknown = set(re.findall(r"{([^}]*)}", value)) - set(TAG_PLACEHOLDERS)
        if unknown:
            raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}; "
                             "use {git_sha}, {branch} or {env}")
        try:  # plan fills it with str.format: catch what would only break there (a lone `{`)
            filled = value.format(**{k: "x" for k in TAG_PLACEHOLDERS})
        except (ValueError, IndexError, KeyError):
            raise ValueError("unbalanced { or } in the tag template") from None
        if not DOCKER_TAG.match(filled):
            raise ValueError(f"'{value}' does not make a valid image tag: use letters, digits, '_', '.' "
                             "and '-', not starting with '.' or '-', at most 128 characters")
        return value

    @property
    def arch(self) -> str:
        return "ARM64" if self.platform == "linux/arm64" else "X86_64"


class CommandStage(Strict):
    run: list[str] = Field(min_length=1, description="Shell commands, run in order")
    timeout: PositiveDuration = 600.0
    workdir: str = "."
    env: dict[EnvVarName, EnvValue] = Field(default_factory=dict)
    # `in` is a Python keyword: the field is `where`, the key in deploy.yaml is `in`.
    where: Literal["host", "image"] = Field(
        "host", alias="in", description="Where the commands run: `host` (this machine's shell, in workdir) or "
                                        "`image` (a container of the image, built from the same context)")
    target: str | None = Field(
        None, description="With in: image, the Dockerfile stage to build and run in (e.g. test); "
                          "default: the image the build stage makes")

    @model_validator(mode="after")
    def _target_needs_image(self) -> CommandStage:
        if self.target and self.where != "image":
            raise ValueError("target names the Dockerfile stage to run in; it needs `in: image`")
        return self


class Stages(Strict):
    lint: CommandStage | None = None
    test: CommandStage | None = None


class Health(Strict):
    path: str | None = Field(None, pattern=r"^/", description="HTTP readiness path, e.g. /health/ready")
    command: list[str] | str | None = Field(None, description="Health command instead of an HTTP path")
    start_period: Duration = Field(0.0, description="Grace for model loading; failures inside it don't count")
    interval: Duration = 30.0
    timeout: Duration = 5.0
    retries: Int = Field(3, ge=1, le=10)

    # Field validators (not one model validator) so each error points at the value that is wrong.
    @field_validator("command")
    @classmethod
    def _not_both(cls, value: list[str] | str | None, info: ValidationInfo) -> list[str] | str | None:
        if value and info.data.get("path"):
            raise ValueError("give either path or command, not both")
        return value

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: float) -> float:
        return _in_range(value, 5, 300, "interval")

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        return _in_range(value, 2, 60, "timeout")

    @field_validator("start_period")
    @classmethod
    def _start_period(cls, value: float) -> float:
        return _in_range(value, 0, 300, "start_period")

    @model_validator(mode="after")
    def _one_probe(self) -> Health:
        if not self.path and not self.command:
            raise ValueError("give a path (HTTP check) or a command")
        return self


class EnvHealth(Strict):
    """environments.<name>.health: timings that replace every service's own in one environment
    (e.g. a short start_period in dev, so a broken release fails in seconds, not minutes)."""

    start_period: Duration | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    retries: Int | None = Field(None, ge=1, le=10)

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: float | None) -> float | None:
        return None if value is None else _in_range(value, 5, 300, "interval")

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float | None) -> float | None:
        return None if value is None else _in_range(value, 2, 60, "timeout")

    @field_validator("start_period")
    @classmethod
    def _start_period(cls, value: float | None) -> float | None:
        return None if value is None else _in_range(value, 0, 300, "start_period")

    def given(self) -> dict[str, float | int]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class LoadBalancer(Strict):
    target_group: NonEmpty = Field(description="Target group name or ARN")
    container_port: Int | None = Field(None, ge=1, le=65535)
    shared: bool = Field(False, description="Allow other environments (or preview copies) to register in "
                                            "this target group too; each still counts only its own targets")


# SQS queue names: up to 80 letters, digits, '-' and '_' (a FIFO queue's ends in .fifo).
_SQS_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,75}(\.fifo|[A-Za-z0-9_-]{0,5})$")


class Autoscaling(Strict):
    """Application Auto Scaling of one ECS service (deployctl.render.autoscaling, docs/autoscaling.md).
    Every target below is one target-tracking policy; the service scales out on whichever needs most."""

    min: Int = Field(ge=0)
    max: Int = Field(ge=1)
    target_cpu: Int | None = Field(60, ge=10, le=95, description="Target average CPU utilisation, percent "
                                                                 "(null: no CPU policy)")
    target_memory: Int | None = Field(None, ge=10, le=95, description="Target average memory utilisation, percent")
    requests_per_target: Int | None = Field(None, ge=1, le=1_000_000,
                                            description="Target ALB requests per task per minute "
                                                        "(needs the service's load_balancer)")
    queue: str | None = Field(None, description="SQS queue name whose backlog the service works off")
    queue_backlog_per_task: Int | None = Field(None, ge=1, le=1_000_000,
                                               description="Target visible messages in `queue` per running task")
    scale_in_cooldown: Duration | None = Field(None, description="Wait after a scale-in before the next "
                                                                 "(AWS default 300s)")
    scale_out_cooldown: Duration | None = Field(None, description="Wait after a scale-out before the next "
                                                                  "(AWS default 300s)")

    @field_validator("max")
    @classmethod
    def _bounds(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min")
        if low is not None and low > value:
            raise ValueError(f"max ({value}) is below min ({low})")
        return value

    @field_validator("queue")
    @classmethod
    def _queue_name(cls, value: str | None) -> str | None:
        if value is not None and not _SQS_QUEUE_NAME.match(value):
            raise ValueError(f"'{value}' is not an SQS queue name (up to 80 letters, digits, '-' and '_'; "
                             "give the name, not the URL or ARN)")
        return value

    @field_validator("scale_in_cooldown", "scale_out_cooldown")
    @classmethod
    def _cooldown(cls, value: float | None) -> float | None:
        if value is not None and not 0 <= value <= 3600:
            raise ValueError("must be between 0s and 1h")
        return value

    @model_validator(mode="after")
    def _queue_pair(self) -> Autoscaling:
        if (self.queue is None) != (self.queue_backlog_per_task is None):
            raise ValueError("queue and queue_backlog_per_task go together: the queue to watch and the "
                             "visible messages per running task to keep")
        if self.queue_backlog_per_task is not None and self.min < 1:
            raise ValueError("queue_backlog_per_task needs min ≥ 1: the backlog per task is divided by the "
                             "running tasks, so with none running it is undefined and never scales out")
        if not any((self.target_cpu, self.target_memory, self.requests_per_target, self.queue_backlog_per_task)):
            raise ValueError("no scaling metric: set target_cpu, target_memory, requests_per_target or "
                             "queue_backlog_per_task")
        return self


# ECS service names: up to 255 letters, digits, hyphens and underscores.
_ECS_NAME_CHARS = re.compile(r"^[A-Za-z0-9_-]+$")


def _ecs_name(value: str) -> str:
    if not _ECS_NAME_CHARS.match(value) or len(value) > 255:
        raise ValueError(f"'{value}' is not a valid ECS name: up to 255 letters, digits, '-' and '_'")
    return value


# ECS service, task-definition family and container names: the same characters.
EcsName = Annotated[str, AfterValidator(_ecs_name)]


class Service(Strict):
    command: list[str] | None = None
    port: Int | None = Field(None, ge=1, le=65535)
    cpu: Int = Field(256, description="Fargate CPU units (256 = 0.25 vCPU)")
    memory: Int = Field(512, description="MiB; must be allowed for the cpu value")
    health: Health | None = None
    env: dict[EnvVarName, EnvValue] = Field(default_factory=dict)
    secrets: dict[EnvVarName, NonEmpty] = Field(
        default_factory=dict,
        description="ENV_NAME → Secrets Manager name/ARN, or ssm:/parameter/name, or an SSM ARN",
    )
    load_balancer: LoadBalancer | None = None
    security_groups: list[NonEmpty] = Field(
        default_factory=list, description="Security groups this service's tasks get in addition to "
                                          "environment.network.security_groups (from_stack: the group the stack's "
                                          "load balancer reaches on this service's port)")
    spot: bool = Field(False, description="Run on Fargate Spot")
    count: Int = Field(1, ge=0, le=1000)
    autoscaling: Autoscaling | None = None
    after: list[str] = Field(default_factory=list, description="Deploy this service after these ones")
    local_port: Int | None = Field(None, ge=1, le=65535, description="Local target: stable port on 127.0.0.1")
    # Adopting a service deployctl did not create (docs/environments.md): its existing names.
    ecs_service: EcsName | None = Field(None, description="ECS service name to deploy to, instead of "
                                                          "deploy.service_name's (adopting an existing service)")
    family: EcsName | None = Field(None, description="Task-definition family, instead of {app}-{env}-{service}")
    container: EcsName | None = Field(None, description="Container name in the task definition, instead of the "
                                                        "service's name")

    # `port` and `env` come before these fields, so info.data has them when they are valid.
    @field_validator("secrets")
    @classmethod
    def _not_in_env(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        overlap = set(info.data.get("env") or {}) & set(value)
        if overlap:
            raise ValueError(f"{sorted(overlap)[0]} is in both env and secrets")
        return value

    @field_validator("health")
    @classmethod
    def _health_port(cls, value: Health | None, info: ValidationInfo) -> Health | None:
        if value and value.path and not info.data.get("port") and "port" in info.data:
            raise ValueError("an HTTP health path needs the service's port (or use a health command)")
        return value

    @field_validator("load_balancer")
    @classmethod
    def _lb_port(cls, value: LoadBalancer | None, info: ValidationInfo) -> LoadBalancer | None:
        if value and not (info.data.get("port") or value.container_port) and "port" in info.data:
            raise ValueError("a load_balancer needs the service's port")
        return value

    @field_validator("autoscaling")
    @classmethod
    def _requests_need_lb(cls, value: Autoscaling | None, info: ValidationInfo) -> Autoscaling | None:
        # ALBRequestCountPerTarget is measured on the service's target group.
        if value and value.requests_per_target and "load_balancer" in info.data and not info.data["load_balancer"]:
            raise ValueError("requests_per_target needs the service's load_balancer (ALB requests are counted "
                             "per target of its target group)")
        return value


SERVICE_NAME_PLACEHOLDERS = ("app", "env", "service", "name")


def check_service_name_template(value: str) -> str:
    """A deploy.service_name template: known placeholders, {service} present (else every service
    of an environment gets one name), and only characters ECS allows once filled in."""
    found = re.findall(r"{([^}]*)}", value)
    unknown = sorted(set(found) - set(SERVICE_NAME_PLACEHOLDERS))
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use {{app}}, {{env}}, {{service}} or {{name}}")
    try:
        filled = value.format(**dict.fromkeys(SERVICE_NAME_PLACEHOLDERS, "x"))
    except (ValueError, IndexError, KeyError):
        raise ValueError("unbalanced { or } in the service name template") from None
    if "service" not in found:
        raise ValueError("the template must contain {service}: each service needs its own ECS service name")
    if not _ECS_NAME_CHARS.match(filled):
        raise ValueError(f"'{value}' does not make a valid ECS service name: use letters, digits, '-' and '_' "
                         "around the placeholders")
    return value


class CircuitBreaker(Strict):
    """ECS deployment circuit breaker. `circuit_breaker: true|false` sets both keys."""

    enable: bool = Field(True, description="Fail a deployment whose tasks keep failing to start")
    rollback: bool = Field(True, description="ECS rolls a failed deployment back to the last completed one")

    @model_validator(mode="after")
    def _rollback_needs_enable(self) -> CircuitBreaker:
        if self.rollback and not self.enable:
            raise ValueError("rollback: true needs enable: true (ECS rolls back only what the breaker failed)")
        return self


def _breaker(value: object) -> object:
    if isinstance(value, bool):  # the old form: the breaker and its rollback together
        return {"enable": value, "rollback": value}
    if not isinstance(value, dict | CircuitBreaker):
        raise ValueError("expected true, false or {enable: true|false, rollback: true|false}")
    return value


class Deploy(Strict):
    strategy: Literal["rolling"] = "rolling"
    min_healthy_percent: Int = Field(default=100, ge=0, le=100)
    max_percent: Int = Field(default=200, ge=100, le=400)
    circuit_breaker: Annotated[CircuitBreaker, BeforeValidator(_breaker), WithJsonSchema({"anyOf": [
        {"type": "boolean"},
        {"type": "object", "additionalProperties": False,
         "properties": {"enable": {"type": "boolean", "default": True},
                        "rollback": {"type": "boolean", "default": True}}}]})] = Field(
        default_factory=lambda: CircuitBreaker(enable=True, rollback=True),
        description="true/false, or {enable, rollback}: ECS deployment circuit breaker and its rollback")
    alarms: list[str] = Field(default_factory=list, description="CloudWatch alarms that roll a deploy back")
    timeout: PositiveDuration = 900.0
    poll_interval: PositiveDuration = Field(default=5.0, description="Watcher's base polling interval")
    settle: Duration | None = Field(
        default=None, description="Local (docker) target: how long a new release must stay up and healthy before "
                          "the previous one is stopped; 0s turns it off. Default: 3 health intervals")
    drain: Duration | None = Field(
        default=None, description="Local (docker) target: how long connections still open to the previous release "
                          "may finish before it is stopped ($DEPLOYCTL_DRAIN overrides). Default 10s. On ECS the "
                          "load balancer drains: bootstrap.deregistration_delay")
    service_name: str | None = Field(
        default=None, description="ECS service name template: {app}, {env}, {service}, and {name} (preview copies). "
                          "Default {app}-{env}-{service}; previews {app}-{env}-{name}-{service}")

    @field_validator("service_name")
    @classmethod
    def _service_name(cls, value: str | None) -> str | None:
        return None if value is None else check_service_name_template(value)


class Network(Strict):
    subnets: list[NonEmpty] = Field(min_length=1)
    security_groups: list[NonEmpty] = Field(default_factory=list)
    public_ip: bool = False


class Roles(Strict):
    execution: NonEmpty = Field(description="Task execution role (pulls images, reads secrets)")
    task: NonEmpty | None = Field(None, description="Role the application code runs as")


class Guardrails(Strict):
    max_monthly_usd: Float | None = Field(None, gt=0)
    max_tasks: Int | None = Field(None, ge=1)
    max_memory: Int | None = Field(None, ge=512, description="Largest task memory, MiB")


def _registered_target(value: object) -> str:
    """A target name from the registry (deployctl.config.target_names): a new target is accepted
    here by its registry entry alone; the error reads like a Literal's."""
    if isinstance(value, str) and value in TARGETS:
        return value
    names = [repr(n) for n in TARGETS]
    expected = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})


# The published JSON Schema lists the targets deployctl ships with.
TargetName = Annotated[str, PlainValidator(_registered_target),
                       WithJsonSchema({"enum": ["docker", "ecs"], "type": "string"})]


class Environment(Strict):
    target: TargetName
    cluster: NonEmpty | None = None
    deploy_on: str | None = Field(None, description="Branch that auto-deploys this environment")
    promote_from: str | None = Field(None, description="Only reachable by `deployctl promote <from> <this>`")
    preview: bool = Field(False, description="Per-name preview copies in this environment's cluster")
    network: Network | None = None
    roles: Roles | None = None
    guardrails: Guardrails | None = None
    from_stack: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$")] | None = Field(
        None, description="CloudFormation stack (from `deployctl bootstrap`) whose outputs give this environment's "
                          "cluster, network, roles and target groups where deploy.yaml leaves them out")
    health: EnvHealth | None = Field(
        None, description="Health-check timings for every service in this environment (e.g. start_period: 5s "
                          "in dev); the local target applies them to an image's own HEALTHCHECK too")
    jobs_role: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$")] | None = \
        Field(None, description="IAM role ARN EventBridge Scheduler assumes to run the `jobs:` tasks "
                                "(ecs:RunTask, iam:PassRole; see docs/jobs.md)")


# -- before_deploy: a one-off task with the new image before any service rolls (migrations) -
class BeforeDeploy(Strict):
    run: list[NonEmpty] = Field(min_length=1, description="Command (argv list) run in a one-off task with the "
                                                          "new image, e.g. [python, manage.py, migrate]")
    service: str | None = Field(None, description="Service whose task definition (image, secrets, roles, "
                                                  "network) the task uses; may be left out with one service")
    timeout: PositiveDuration = Field(600.0, description="Stop the task and fail the deploy after this long")


# -- jobs: scheduled one-off tasks (EventBridge Scheduler → Fargate (Spot)), docs/jobs.md ----
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\(([^()]*)\)$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?,/#LW-]+$")


def _schedule(value: str) -> str:
    """EventBridge Scheduler's recurring forms: rate(N unit) and cron(6 fields), checked here so a
    typo fails in `validate`, not halfway through a deploy (after the services rolled)."""
    rate = _RATE.match(value)
    if rate:
        n, unit = int(rate.group(1)), rate.group(2)
        if n < 1:
            raise ValueError("a rate must be at least 1, e.g. rate(1 hour)")
        if (n == 1) != (not unit.endswith("s")):
            raise ValueError(f"write rate({n} {unit.rstrip('s') + ('' if n == 1 else 's')}): "
                             "EventBridge wants the singular for 1 and the plural otherwise")
        return value
    cron = _CRON.match(value)
    if cron:
        fields = cron.group(1).split()
        if len(fields) != 6 or not all(_CRON_FIELD.match(f) for f in fields):
            raise ValueError("cron(...) takes 6 fields: minutes hours day-of-month month day-of-week year, "
                             "e.g. cron(0 3 * * ? *)")
        if (fields[2] == "?") == (fields[4] == "?"):
            raise ValueError("in cron(...) exactly one of day-of-month (3rd field) and day-of-week (5th) "
                             "must be ?, e.g. cron(0 3 * * ? *) or cron(0 3 ? * MON-FRI *)")
        return value
    raise ValueError(f"expected cron(...) or rate(...) as EventBridge Scheduler writes them, e.g. "
                     f"rate(1 hour) or cron(0 3 * * ? *), got {value!r}")


JobName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")]


class Job(Strict):
    """A command run on a schedule in a one-off Fargate task of one service's release."""

    command: list[NonEmpty] = Field(min_length=1, description="Command (argv list), e.g. [python, -m, jobs.embed]")
    service: str | None = Field(None, description="Service whose task definition (image, secrets, roles, network) "
                                                  "the job uses; may be left out with one service")
    schedule: Annotated[str, AfterValidator(_schedule)] = Field(
        description="EventBridge Scheduler expression: rate(6 hours) or cron(0 3 * * ? *) (UTC)")
    cpu: Int | None = Field(None, description="Fargate CPU units for the job's own task definition "
                                              "(default: the service's)")
    memory: Int | None = Field(None, description="MiB for the job's own task definition (default: the service's)")
    spot: bool = Field(True, description="Run on Fargate Spot (interruptible; retried)")
    retries: Int = Field(2, ge=0, le=185, description="EventBridge Scheduler retry attempts when RunTask fails")
    timeout: PositiveDuration = Field(3600.0, description="Time limit of `task run --job`; also the default "
                                                          "expected_duration")
    expected_duration: PositiveDuration | None = Field(
        None, description="How long one run takes, for the cost estimate (default: timeout)")

    @property
    def duration(self) -> float:
        return self.expected_duration if self.expected_duration is not None else self.timeout


# -- monitoring: alarms, dashboards and cost caps that matter for AI services ----------------
class Latency(Strict):
    """ALB TargetResponseTime thresholds (seconds) per percentile; omit one to skip its alarm."""

    p50: Duration | None = None
    p95: Duration | None = None
    p99: Duration | None = None


class Tokens(Strict):
    """Tokens used per request (and, summed, per hour): a custom metric the app publishes, or
    (`source: logs`) the `tokens` field of the JSON access logs (docs/endpoint-metrics.md)."""

    source: Literal["metric", "logs"] = Field(
        "metric", description="metric: the app publishes namespace/metric; logs: the access logs' tokens field "
                              "(monitoring.endpoints.fields.tokens), through a metric filter")
    namespace: str | None = Field(None, description="CloudWatch namespace the app publishes to (source: metric)")
    metric: str = Field("TokensPerRequest", description="Per-request token count metric (source: metric)")
    dimensions: dict[str, str] = Field(default_factory=dict, description="Extra dimensions; {service} and {env} "
                                                                         "expand (source: metric)")
    max_per_request: Float | None = Field(None, gt=0, description="Alarm when the average per request exceeds this")
    hourly_cap: Float | None = Field(None, gt=0, description="Alarm when tokens summed over an hour exceed this")
    service: str | None = Field(None, description="Service that publishes the metric (default: all with a port); "
                                                  "source: logs: the one service the alarms are named after")

    @model_validator(mode="after")
    def _source(self) -> Tokens:
        if self.source == "metric" and not self.namespace:
            raise ValueError("tokens needs the namespace the app publishes its metric to, or `source: logs` to "
                             "count the tokens field of the JSON access logs")
        if self.source == "logs" and (self.namespace or self.dimensions or "metric" in self.model_fields_set):
            raise ValueError("with source: logs the metric is the access logs' Tokens (a metric filter): drop "
                             "namespace, metric and dimensions, or use source: metric")
        return self


class ApiCalls(Strict):
    """A custom metric the app publishes: one data point per call to a paid API (value = calls)."""

    namespace: str = Field(description="CloudWatch namespace the app publishes to")
    metric: str = Field("ApiCalls", description="Metric counting the calls (summed per hour)")
    dimensions: dict[str, str] = Field(default_factory=dict, description="Extra dimensions; {service} and {env} expand")
    cap: Float = Field(gt=0, description="Alarm when the calls summed over an hour exceed this")
    service: str | None = Field(None, description="Service that publishes the metric (default: all with a port)")


# -- monitoring.cost_cap: what the hourly caps do (docs/cost-cap.md) ----------------------------
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_HTTPS = re.compile(r"^https://[^\s/]+(/\S*)?$")


def _cap_subscriber(value: str) -> str:
    if _EMAIL.match(value) or _HTTPS.match(value):
        return value
    if value.startswith("http://"):
        raise ValueError(f"{value!r}: use an https:// URL (SNS would send the alarm in clear text over http)")
    raise ValueError(f"{value!r} is neither an email address nor an https:// URL")


CapSubscriber = Annotated[str, AfterValidator(_cap_subscriber)]


class CostCap(Strict):
    """What happens when monitoring.tokens.hourly_cap or monitoring.api_calls_per_hour is exceeded:
    an SNS topic notifies, and with `on_cap: stop` a step scaling policy sets services to 0 tasks."""

    notify: list[CapSubscriber] = Field(
        default_factory=list, description="Email addresses and https:// URLs subscribed to the cap's SNS topic")
    on_cap: Literal["notify", "stop"] = Field("notify", description="stop: also set `services` to 0 tasks")
    services: list[str] = Field(default_factory=list,
                                description="ECS services the cap stops (with on_cap: stop); `deployctl resume` "
                                            "starts them again")

    @model_validator(mode="after")
    def _consistent(self) -> CostCap:
        if self.on_cap == "stop" and not self.services:
            raise ValueError("on_cap: stop needs `services`: the services to stop when the cap is exceeded")
        if self.on_cap == "notify" and self.services:
            raise ValueError("`services` are stopped only with on_cap: stop (on_cap is notify)")
        for seen in (self.notify, self.services):
            twice = sorted({x for x in seen if seen.count(x) > 1})
            if twice:
                raise ValueError(f"{twice[0]} is listed twice")
        if not self.notify and self.on_cap == "notify":
            raise ValueError("a cost cap that notifies nobody and stops nothing does nothing: add `notify` "
                             "addresses or on_cap: stop")
        return self


class Queue(Strict):
    name: str = Field(description="SQS queue name")
    max_visible: Int = Field(gt=0, description="Alarm above this many visible messages")
    service: str | None = Field(None, description="Worker service consuming the queue (for the dashboard)")


# -- monitoring.endpoints: per-route metrics from the service's JSON access logs ----------------
# A JSON field reference as CloudWatch Logs filter patterns write it after `$.`: `status`, `http.route`.
LOG_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# A path segment that is a raw value rather than a template: a number, a UUID, a long hex id.
RAW_SEGMENT = re.compile(r"^([0-9]+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
                         r"|[0-9a-fA-F]{16,})$")
# Each route becomes a dimension value of every endpoint metric (a custom metric each) and one alarm;
# CloudWatch Logs disables a filter at 1,000 dimension values an hour. 50 keeps the filter patterns
# under their 1,024-character limit with ordinary route names.
MAX_ROUTES_LIMIT = 50


def _log_field(name: str) -> str:
    if not LOG_FIELD.match(name):
        raise ValueError(f"'{name}' is not a JSON log field name (letters, digits and _, dots for nesting, "
                         "e.g. duration_ms or http.route)")
    return name


LogField = Annotated[str, AfterValidator(_log_field)]


def _route(route: str) -> str:
    """A path template (`/v1/items/{id}`): it becomes a metric dimension value and sits inside a
    quoted filter-pattern string, so no quotes, backslashes, spaces or raw ids."""
    if not route.startswith("/") or len(route) > 200:
        raise ValueError(f"'{route}' is not a path template (starts with /, at most 200 characters)")
    if any(c in route for c in '"\\*') or any(c.isspace() for c in route):
        raise ValueError(f"'{route}' may not contain quotes, backslashes, * or spaces")
    raw = [seg for seg in route.split("/") if RAW_SEGMENT.match(seg)]
    if raw:
        raise ValueError(f"'{route}' looks like a raw path ({raw[0]!r} is an id): use the route template the "
                         "app logs, e.g. /v1/items/{id}, so each route is one metric")
    return route


Route = Annotated[str, AfterValidator(_route)]


class LogFields(Strict):
    """Names of the JSON access-log fields (docs/endpoint-metrics.md)."""

    route: LogField = Field("route", description="Route template of the request, e.g. /v1/items/{id}")
    status: LogField = Field("status", description="HTTP status code (a JSON number)")
    latency_ms: LogField = Field("duration_ms", description="Request duration in milliseconds (a JSON number)")
    tokens: LogField | None = Field(None, description="Tokens used by the request (optional; a JSON number)")


class RouteSettings(Strict):
    error_rate: Float = Field(gt=0, le=100, description="Alarm when this route's 5xx ÷ requests exceeds this percent")


def _default_log_fields() -> LogFields:
    return LogFields.model_validate({})


class Endpoints(Strict):
    """Per-route requests, 5xx, latency (and tokens) from JSON access logs: CloudWatch Logs metric filters."""

    fields: LogFields = Field(default_factory=_default_log_fields)
    routes: list[Route] = Field(min_length=1, description="Path templates to measure (raw paths are never metrics)")
    error_rate: Float | None = Field(None, gt=0, le=100,
                                     description="Default 5xx-percent alarm threshold for every route")
    per_route: dict[str, RouteSettings] = Field(default_factory=dict, description="Per-route thresholds")
    min_requests: Int = Field(10, ge=1, description="A period with fewer requests than this never alarms")
    max_routes: Int = Field(20, ge=1, le=MAX_ROUTES_LIMIT,
                            description="Cardinality cap: at most this many routes (each is a custom metric)")

    @model_validator(mode="after")
    def _routes(self) -> Endpoints:
        if len(self.routes) > self.max_routes:
            raise ValueError(f"{len(self.routes)} routes exceed max_routes ({self.max_routes}); each route is a "
                             "custom metric and an alarm: measure the routes that matter, or raise max_routes "
                             f"(at most {MAX_ROUTES_LIMIT})")
        seen: dict[str, str] = {}
        for route in self.routes:
            slug = route_slug(route)
            if slug in seen:
                raise ValueError(f"routes {seen[slug]} and {route} would share the alarm name "
                                 f"…-endpoint-error-rate-{slug}")
            seen[slug] = route
        # per_route names that are not in routes: reported with their line by resolve.py.
        # The longest filter pattern rendered (render.monitoring.metric_filters) must fit.
        fields = [f for f in (self.fields.status, self.fields.latency_ms, self.fields.tokens) if f]
        longest = max(len(f"{{ {routes_clause(self.fields.route, self.routes)} && $.{f} >= 500 }}") for f in fields)
        if longest > FILTER_PATTERN_LIMIT:
            raise ValueError(f"the routes make a {longest}-character filter pattern, over CloudWatch Logs' limit "
                             f"of {FILTER_PATTERN_LIMIT}: list fewer or shorter routes")
        return self


FILTER_PATTERN_LIMIT = 1024  # PutMetricFilter filterPattern maximum length


def routes_clause(field: str, routes: list[str]) -> str:
    """`($.route = "/v1/chat" || $.route = "/v1/embed")`: only listed routes ever become metrics, so
    a raw path or a scanner's junk URL never adds a dimension value (cost, and the 1,000-values cap)."""
    return "(" + " || ".join(f'$.{field} = "{r}"' for r in routes) + ")"


def route_slug(route: str) -> str:
    """`/v1/items/{id}` → `v1-items-id`: the route as it appears in an alarm name."""
    return re.sub(r"[^a-z0-9]+", "-", route.lower()).strip("-") or "root"


RollBackMetric = Literal["latency_p50", "latency_p95", "latency_p99", "error_rate", "tokens_per_request",
                         "queue_depth"]


def _default_roll_back_on() -> list[RollBackMetric]:
    return ["error_rate"]


class Monitoring(Strict):
    load_balancer: str | None = Field(
        None, description="ALB name or ARN (its ARN suffix is the LoadBalancer dimension of latency/5xx metrics)")
    latency: Latency | None = None
    error_rate: Float | None = Field(None, gt=0, le=100, description="Alarm when 5xx ÷ requests exceeds this percent")
    tokens: Tokens | None = None
    api_calls_per_hour: ApiCalls | None = Field(None, description="Hourly cap on calls to a paid API "
                                                                  "(a metric the app publishes)")
    cost_cap: CostCap | None = Field(None, description="Notify and stop services when an hourly cap is "
                                                       "exceeded (docs/cost-cap.md)")
    queue: Queue | None = None
    endpoints: Endpoints | None = Field(None, description="Per-route metrics and alarms from JSON access logs")
    period: Duration = Field(60.0, description="Alarm period (multiple of 60s)")
    evaluation_periods: Int = Field(5, ge=1, le=100)
    datapoints_to_alarm: Int | None = Field(None, ge=1)
    roll_back_on: list[RollBackMetric] = Field(
        default_factory=_default_roll_back_on,
        description="Generated alarms that also become ECS deployment alarms (a bad deploy rolls back)")
    dashboard: bool = True
    publish_run_metrics: bool = Field(False, description="Publish deployctl's own run metrics to CloudWatch")
    run_metrics_namespace: str = "deployctl"

    @model_validator(mode="after")
    def _periods(self) -> Monitoring:
        if self.period < 60 or int(self.period) % 60:
            raise ValueError("period must be a multiple of 60s")
        if self.datapoints_to_alarm and self.datapoints_to_alarm > self.evaluation_periods:
            raise ValueError("datapoints_to_alarm cannot exceed evaluation_periods")
        if self.latency and (self.latency.p50 or self.latency.p95 or self.latency.p99) and not self.load_balancer:
            raise ValueError("latency alarms need monitoring.load_balancer (the ALB whose metrics to watch)")
        if self.error_rate and not self.load_balancer:
            raise ValueError("error_rate needs monitoring.load_balancer")
        if self.cost_cap and not (self.tokens and self.tokens.hourly_cap) and not self.api_calls_per_hour:
            raise ValueError("cost_cap acts on an hourly cap: set tokens.hourly_cap or api_calls_per_hour")
        if self.tokens and self.tokens.source == "logs" and not (self.endpoints and self.endpoints.fields.tokens):
            raise ValueError("`source: logs` under monitoring.tokens counts the tokens field of the JSON access "
                             "logs: name it in monitoring.endpoints.fields (docs/endpoint-metrics.md)")
        return self


# -- notify: where the outcome of run, promote and rollback is posted --------------------------
NotifyEvent = Literal["succeeded", "failed", "interrupted"]
SNS_TOPIC_ARN = r"^arn:aws[a-z-]*:sns:[a-z]{2}(-[a-z]+){1,3}-[0-9]{1,2}:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$"


def _sns_topic_arn(value: str) -> str:
    if not re.match(SNS_TOPIC_ARN, value):
        raise ValueError(f"expected an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME), got {value!r}")
    return value


def _all_notify_events() -> list[NotifyEvent]:
    return ["succeeded", "failed", "interrupted"]


class Webhook(Strict):
    """Where the webhook URL comes from. Never the URL itself: a Slack incoming-webhook URL is a
    credential (anyone holding it can post to the channel), so it lives in a secret or the
    environment, like every other secret deployctl handles."""

    env: EnvVarName | None = Field(None, description="Environment variable holding the webhook URL")
    secret: NonEmpty | None = Field(None, description="Secrets Manager name or ARN holding the webhook URL")

    @model_validator(mode="after")
    def _one_source(self) -> Webhook:
        if (self.env is None) == (self.secret is None):
            raise ValueError("give the webhook URL's source: exactly one of `env` (a variable name) or "
                             "`secret` (a Secrets Manager name/ARN)")
        return self


class Notify(Strict):
    webhook: Webhook | None = Field(None, description="Slack-compatible incoming webhook (JSON `text` + `blocks`)")
    sns_topic: Annotated[str, AfterValidator(_sns_topic_arn)] | None = Field(
        None, description="SNS topic ARN; the message is JSON (schema deployctl.notification/v1)")
    on: list[NotifyEvent] = Field(default_factory=_all_notify_events,
                                  description="Outcomes that are posted (default: all)")

    @model_validator(mode="after")
    def _somewhere(self) -> Notify:
        if self.webhook is None and self.sns_topic is None:
            raise ValueError("notify needs a `webhook` or an `sns_topic` (or `notify: null` to turn it off)")
        return self


# -- bootstrap: what `deployctl bootstrap` creates (deployctl.render.cfn) -----------------------
BootstrapPiece = Literal["cluster", "roles", "target_groups", "repository", "lock_table", "log_group",
                         "load_balancer", "queues"]
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)
GITHUB_REPOSITORY = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"


def _retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(f"CloudWatch Logs keeps logs for one of {', '.join(map(str, LOG_RETENTION_DAYS))} days, "
                         f"not {value}")
    return value


class Bootstrap(Strict):
    network: Literal["new", "public", "default", "existing"] | None = Field(
        None, description="new: VPC with public+private subnets in 2 AZs and a NAT gateway; public: same VPC, no NAT, "
                          "tasks get public IPs; default: the account's default VPC; existing: environment.network. "
                          "Default: existing when environment.network is given, else new")
    cidr: Annotated[str, Field(pattern=r"^10\.[0-9]{1,3}\.0\.0/16$")] = Field(
        "10.0.0.0/16", description="The new VPC's range (a 10.x.0.0/16)")
    certificate_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:acm:")] | None = Field(
        None, description="ACM certificate for the HTTPS listener; HTTP then redirects to HTTPS")
    log_retention_days: Annotated[int, AfterValidator(_retention)] = 30
    deregistration_delay: Duration = Field(30.0, description="Target groups' connection draining time")
    keep_images: Int = Field(50, ge=5, le=1000,
                             description="ECR lifecycle: newest preview images kept, when the previews' image.tag "
                                         "starts with {env}; images staging and prod may run never expire")
    queues: list[NonEmpty] = Field(default_factory=list,
                                   description="SQS queues to create (monitoring.queue.name is added)")
    secret_placeholders: bool = Field(False, description="Create missing Secrets Manager secrets as empty "
                                                         "placeholders (never with a value)")
    github_repository: Annotated[str, Field(pattern=GITHUB_REPOSITORY)] | None = Field(
        None, description="owner/name: create the GitHub OIDC provider and this environment's CI role")
    existing: list[BootstrapPiece] = Field(
        default_factory=list, description="Pieces that already exist under the names deploy.yaml gives: not created")


# -- frontend: the app's web frontend on Vercel, deployed after the backend (docs/frontend-vercel.md)
FRONTEND_URL_PLACEHOLDERS = ("app", "env", "name")


class Frontend(Strict):
    """A Vercel project deployed with every deploy of the environment, after the backend."""

    path: str = Field("frontend", description="The frontend app's directory, relative to deploy.yaml")
    project_id: NonEmpty = Field(description="Vercel project id (prj_…) or name")
    team_id: NonEmpty | None = Field(None, description="Vercel team id (team_…); leave out for a personal account")
    framework: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")] | None = Field(
        None, description="Vercel framework preset, e.g. nextjs (default: Vercel detects it)")
    build_env: dict[EnvVarName, EnvValue] = Field(
        default_factory=dict, description="Environment variables of the build (and of the functions at run time)")
    api_url_env: EnvVarName | None = Field(
        None, description="Variable that gets the backend's URL for this environment or preview, "
                          "e.g. NEXT_PUBLIC_API_URL")
    api_url: str | None = Field(
        None, description="The backend's URL when the backend target publishes none (ECS behind your own "
                          "domain); placeholders {app}, {env}, {name}")
    health_path: str = Field("/", pattern=r"^/", description="Path that must answer 2xx/3xx before the "
                                                             "release is good")
    production: bool = Field(False, description="This environment is the Vercel project's production "
                                                "(reached by promote, rolled back with Vercel's instant rollback)")
    custom_environment: bool = Field(False, description="Deploy to the Vercel custom environment named after "
                                                        "this environment instead of a preview deployment")
    timeout: PositiveDuration = Field(900.0, description="How long to wait for the build to be READY")
    allow_secret_files: list[str] = Field(
        default_factory=list, description="Paths under `path` that may be uploaded although they look secret")

    @field_validator("build_env")
    @classmethod
    def _no_token(cls, value: dict[str, str]) -> dict[str, str]:
        if "VERCEL_TOKEN" in value:
            raise ValueError("VERCEL_TOKEN must not be in build_env: it would be readable by the build and "
                             "every function; deployctl reads it from the environment")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        unknown = set(re.findall(r"{([^}]*)}", value)) - set(FRONTEND_URL_PLACEHOLDERS)
        if unknown:
            raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}; use {{app}}, {{env}} or {{name}}")
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("expected an http(s) URL such as https://api-{env}.example.com")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Frontend:
        if self.production and self.custom_environment:
            raise ValueError("production and custom_environment do not go together: production is Vercel's "
                             "own environment")
        return self


class ResolvedConfig(Strict):
    """One environment after overlays: what plan and apply work from."""

    version: Literal[1]
    app: Name
    region: Annotated[str, Field(pattern=REGION)]
    env_name: str
    environment: Environment
    image: ImageConfig
    stages: Stages
    services: dict[str, Service]
    deploy: Deploy
    monitoring: Monitoring | None = None
    notify: Notify | None = None
    bootstrap: Bootstrap | None = None
    frontend: Frontend | None = None
    before_deploy: BeforeDeploy | None = None
    jobs: dict[JobName, Job] = Field(default_factory=dict)

    def job_service(self, name: str) -> str:
        """The service a job runs as (validation made sure it exists)."""
        return self.jobs[name].service or next(iter(self.services))

    @property
    def before_deploy_service(self) -> str | None:
        """The service before_deploy runs as (validation made sure it exists)."""
        if self.before_deploy is None:
            return None
        return self.before_deploy.service or next(iter(self.services))

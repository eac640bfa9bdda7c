"""After a failed rollout: the likely cause and what to try, from what ECS showed. Pure.

Input is what the watcher collected: stopped tasks of our deployment (typed DescribeTasks
entries), the service events seen while watching, target health, and the verdict cause.
Output is a short list of findings, most specific first. Strings matched here are the ones
AWS documents for stopped tasks and service events (docs/ecs-rollouts.md, "Service events and
stopped tasks" and "Target health and health checks").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deployctl.adapters.alarm_gateway import AlarmInfo
from deployctl.adapters.ecs_gateway import Container, ServiceEvent, Task
from deployctl.adapters.elb_gateway import TargetHealth


@dataclass(frozen=True)
class Context:
    """Facts about the service that make advice concrete. All optional."""

    service: str = ""  # deploy.yaml service name
    env: str = ""
    memory_mib: int | None = None
    port: int | None = None
    health_path: str | None = None
    start_period: float | None = None
    log_group: str | None = None
    log_stream_prefix: str | None = None
    execution_role: str | None = None
    image: str | None = None
    region: str | None = None
    alarms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    # stable id: image_pull, registry_auth, network, secrets, init, oom, killed, crash, container_health,
    # elb_health, ...
    key: str
    cause: str  # the likely cause, one sentence
    advice: str  # what to try
    evidence: str = ""  # the AWS text that pointed here (trimmed)
    count: int = 1  # how many stopped tasks showed it


def _trim(text: str, limit: int = 220) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _task_texts(task: Task) -> list[str]:
    out = [task.stopped_reason, *(c.reason for c in task.containers)]
    return [t for t in out if t]


def _exit_codes(task: Task) -> list[int]:
    return [c.exit_code for c in task.containers if c.exit_code is not None]


def _scaled_in(task: Task) -> bool:
    if not task.stopped_reason.startswith("Scaling activity initiated by"):
        return False
    # An OOM kill racing the scale-in is still an OOM: keep it when the container says so.
    low = " ".join(_task_texts(task)).lower()
    return "outofmemory" not in low and "memory usage" not in low


def _classify_task(task: Task, ctx: Context) -> Finding | None:
    texts = _task_texts(task)
    joined = " | ".join(texts)
    low = joined.lower()
    code = task.stop_code
    role = f"the execution role {ctx.execution_role.rsplit('/', 1)[-1]}" if ctx.execution_role else \
        "the task execution role"
    if "cannotpullcontainererror" in low or "pull image manifest" in low:
        return Finding(
            "image_pull",
            "ECS could not pull the image: it is missing from the registry, or the execution role may "
            "not pull it.",
            f"check the image exists ({ctx.image or 'the deployed digest'}); {role} needs "
            "ecr:GetAuthorizationToken, ecr:BatchGetImage and ecr:GetDownloadUrlForLayer; tasks in "
            "private subnets need a NAT gateway or ECR VPC endpoints (ecr.api, ecr.dkr, s3)",
            _trim(joined),
        )
    if "resourceinitializationerror" in low and "unable to pull secrets or registry auth" in low:
        # Every message of this family names "secrets or registry auth", whichever failed: read
        # what was being retrieved (ECR registry auth, a Secrets Manager secret, an SSM parameter)
        # and why (no network path, access denied, not found) from the detail after it.
        return _resource_retrieval(joined, low, role, ctx)
    if "resourceinitializationerror" in low and any(w in low for w in ("secret", "asm", "ssm", "parameter")):
        return _secrets_finding(joined, role, ctx)
    if "resourceinitializationerror" in low:
        return Finding(
            "init",
            "The task could not be initialised (network, log group or registry auth).",
            f"{role} needs logs:CreateLogStream/PutLogEvents (and logs:CreateLogGroup, since the "
            "task definition sets awslogs-create-group); check subnets have a route to AWS APIs",
            _trim(joined),
        )
    codes = _exit_codes(task)
    if "outofmemory" in low or "memory usage" in low:
        mem = f" (now {ctx.memory_mib} MiB)" if ctx.memory_mib else ""
        return Finding(
            "oom",
            "The container ran out of memory and was killed (exit 137).",
            f"raise services.{ctx.service or '<service>'}.memory{mem} — model weights plus the runtime "
            "must fit with headroom — or load a smaller/quantised model; Fargate needs a matching cpu",
            _trim(joined),
        )
    if "failed container health checks" in low or (
        task.health_status == "UNHEALTHY" and code != "EssentialContainerExited"
    ):
        evidence = _trim(joined or "health UNHEALTHY")
        return Finding("container_health", *_container_health_advice(ctx), evidence)
    if "elb health checks" in low:
        return Finding("elb_health", *_elb_advice(ctx), _trim(joined))
    if code == "EssentialContainerExited" or (codes and any(c != 0 for c in codes)):
        nonzero = [c for c in codes if c != 0]
        if 137 in nonzero:
            return Finding(
                "killed",
                "The container was killed (exit 137, SIGKILL): usually memory, or it ignored SIGTERM.",
                f"check memory use{' (now ' + str(ctx.memory_mib) + ' MiB)' if ctx.memory_mib else ''} and "
                f"read the logs: {_logs_hint(ctx)}",
                _trim(joined or "exit 137"),
            )
        shown = nonzero[0] if nonzero else "?"
        return Finding(
            "crash",
            f"The container exited with code {shown} shortly after starting (a crash at start-up).",
            f"read the logs: {_logs_hint(ctx)}; common causes: a missing environment variable or secret "
            "name, a wrong command, a model file not found",
            _trim(joined or f"exit {shown}"),
        )
    return None


# Transport failures of the AWS SDK inside the ECS agent: the task has no network path to the API.
_NETWORK = ("i/o timeout", "dial tcp", "send request failed", "no such host", "connection refused",
            "connection reset", "context deadline exceeded", "network is unreachable")
_ENDPOINTS_HINT = ("tasks in private subnets need a NAT gateway or VPC endpoints (ecr.api, ecr.dkr, the s3 "
                   "gateway, secretsmanager and ssm when secrets are used, logs); tasks in public subnets need "
                   "environment.network.public_ip: true; the security group must allow outbound HTTPS (443)")


def _resource_retrieval(joined: str, low: str, role: str, ctx: Context) -> Finding:
    """`unable to pull secrets or registry auth: execution resource retrieval failed: …`."""
    # The task and its container may both carry the message: drop the family's name everywhere.
    detail = low.replace("unable to pull secrets or registry auth", "")
    registry = "registry auth" in detail or "getauthorizationtoken" in detail
    secret = any(w in detail for w in ("retrieve secret", "from asm", "from ssm", "parameter"))
    if any(w in detail for w in _NETWORK):
        what = "ECR (registry auth)" if registry else "Secrets Manager / SSM" if secret else \
            "ECR, Secrets Manager or SSM"
        return Finding(
            "network",
            f"The task could not reach {what}: no network path from its subnets to the AWS APIs "
            "(a timeout, not a missing secret or image).",
            f"{_ENDPOINTS_HINT}; check the route tables of environment.network.subnets",
            _trim(joined),
        )
    if registry:
        denied = "accessdenied" in detail or "not authorized" in detail
        return Finding(
            "registry_auth",
            "ECS could not get registry auth from ECR for the image"
            + (": the execution role is not allowed to." if denied else "."),
            f"{role} needs ecr:GetAuthorizationToken (on \"*\"), ecr:BatchGetImage and "
            f"ecr:GetDownloadUrlForLayer (the AmazonECSTaskExecutionRolePolicy managed policy has them); "
            f"{_ENDPOINTS_HINT}",
            _trim(joined),
        )
    if secret:
        return _secrets_finding(joined, role, ctx)
    return Finding(
        "init",
        "The task could not fetch its registry auth or secrets (the reason AWS gave is cut short).",
        f"{role} needs ecr:GetAuthorizationToken and GetSecretValue on services.{ctx.service or '<service>'}"
        f".secrets; {_ENDPOINTS_HINT}",
        _trim(joined),
    )


def _secrets_finding(joined: str, role: str, ctx: Context) -> Finding:
    return Finding(
        "secrets",
        "ECS could not read a secret for the container: the secret/parameter is missing, or the "
        "execution role may not read it.",
        f"check every entry under services.{ctx.service or '<service>'}.secrets exists in this "
        f"region; {role} needs the Secrets Manager GetSecretValue permission on it (SSM "
        "GetParameters for parameters, KMS Decrypt for a customer-managed key); private subnets "
        "need a route or VPC endpoint to Secrets Manager/SSM",
        _trim(joined),
    )


def _logs_hint(ctx: Context) -> str:
    group = ctx.log_group or "<awslogs group>"
    prefix = f" --log-stream-name-prefix {ctx.log_stream_prefix}" if ctx.log_stream_prefix else ""
    region = f" --region {ctx.region}" if ctx.region else ""
    return f"`aws logs tail {group}{prefix} --since 30m{region}`"


def _container_health_advice(ctx: Context) -> tuple[str, str]:
    start = f" (now {ctx.start_period:g}s)" if ctx.start_period is not None else ""
    return (
        "The container's own health check kept failing, so ECS replaced the tasks.",
        f"run the health check inside the image (is wget or curl installed?); check it hits port "
        f"{ctx.port or '<port>'}{' and ' + ctx.health_path if ctx.health_path else ''}; raise "
        f"health.start_period{start} to cover model loading; read the logs: {_logs_hint(ctx)}",
    )


def _elb_advice(ctx: Context) -> tuple[str, str]:
    start = f" (now {ctx.start_period:g}s)" if ctx.start_period is not None else ""
    return (
        "The load balancer's health checks failed on the new tasks, so ECS replaced them.",
        f"check the target group's health check path and port match the service (port "
        f"{ctx.port or '<port>'}{', path ' + ctx.health_path if ctx.health_path else ''}) and expect HTTP "
        f"200; raise health.start_period{start} (it sets healthCheckGracePeriodSeconds) to cover model "
        "loading; the security group must let the load balancer reach the port",
    )


_PLACEMENT = re.compile(r"was unable to place a task", re.I)


def diagnose(
    *,
    stopped_tasks: Sequence[Task] = (),
    events: Iterable[ServiceEvent] = (),
    targets: Sequence[TargetHealth] | None = None,
    cause: str = "",
    context: Context = Context(),
    alarms_firing: Sequence[AlarmInfo] = (),
) -> list[Finding]:
    """Findings, most specific first. Never empty: falls back to where to look next.
    alarms_firing: the deployment alarms DescribeAlarms showed in ALARM when the failure was
    known (name, state reason, metric); an alarm failure names them."""
    found: dict[str, Finding] = {}

    def add(f: Finding) -> None:
        if f.key in found:
            old = found[f.key]
            found[f.key] = Finding(old.key, old.cause, old.advice, old.evidence, old.count + 1)
        else:
            found[f.key] = f

    for task in stopped_tasks:
        # Tasks a deployment scaled in (a rollout replacing old tasks, or a rollback replacing ours)
        # were stopped by ECS: SIGTERM, then SIGKILL after stopTimeout. Their exit code (143, 137,
        # or whatever the app returns on SIGTERM) is its answer to that, not a crash or an OOM.
        if _scaled_in(task):
            continue
        finding = _classify_task(task, context)
        if finding:
            add(finding)

    messages = [e.message for e in events]
    for msg in messages:
        if "failed container health checks" in msg and "container_health" not in found:
            add(Finding("container_health", *_container_health_advice(context), _trim(msg)))
        elif " is unhealthy in " in msg and "elb_health" not in found:
            add(Finding("elb_health", *_elb_advice(context), _trim(msg)))
        elif _PLACEMENT.search(msg) and "placement" not in found:
            add(Finding(
                "placement",
                "ECS could not place tasks (capacity, subnets or Fargate Spot availability).",
                "check the subnets have free IP addresses, the cluster has the FARGATE/FARGATE_SPOT "
                "capacity providers, and Fargate quotas in this region; for spot services retry or "
                "fall back to on-demand",
                _trim(msg),
            ))
        elif "deployment configuration" in msg and "minimumHealthyPercent" in msg and "config" not in found:
            add(Finding(
                "deploy_config",
                "min_healthy_percent/max_percent leave ECS no room to start or stop tasks.",
                "with count 1 use min_healthy_percent 0 or max_percent 200 (ECS needs room for one "
                "extra task)",
                _trim(msg),
            ))

    if targets and "elb_health" not in found:
        bad = [t for t in targets if t.state == "unhealthy"]
        if bad:
            add(Finding("elb_health", *_elb_advice(context),
                        _trim(f"{bad[0].reason}: {bad[0].description}"), len(bad)))

    firing = [a for a in alarms_firing if a.state == "ALARM"]
    if firing or cause == "alarm" or any("alarm detected" in m for m in messages):
        if firing:
            names = ", ".join(a.name + (f" ({a.metric})" if a.metric else "") for a in firing)
            what = f"The deployment alarm {names} went" if len(firing) == 1 else \
                f"The deployment alarms {names} went"
            evidence = _trim("; ".join(f"{a.name}: {a.reason}" for a in firing if a.reason))
        else:  # the alarms could not be read: say which ones could have been
            known = context.alarms
            what = (f"{known[0]} went" if len(known) == 1 else
                    f"One of the deployment alarms ({', '.join(known)}) went" if known else "A deployment alarm went")
            evidence = ""
        add(Finding(
            "alarm",
            f"{what} into ALARM while the new release was rolling out.",
            "look at the alarm's metric around the deploy time (errors, latency); the new release "
            "likely misbehaves under real traffic even though its health checks pass",
            evidence,
        ))

    if cause == "no_answer":
        # Nothing ECS showed explains anything: the watch was cut off by AWS's silence, and stale
        # counts (tasks PENDING at the last answer) must not be read as the cause.
        env = context.env or "<env>"
        add(Finding(
            "no_answer",
            "AWS did not answer the ECS API (DescribeServices) before the deploy's time ran out; "
            "nothing is known about the rollout since its last answer.",
            f"check the network path to AWS (proxy, VPC endpoint, AWS Health Dashboard), then run "
            f"`deployctl status --env {env}` to see what runs; if the new release is live and "
            f"unwanted, `deployctl rollback --env {env}`",
        ))

    if not found:
        if cause == "timeout":
            add(Finding(
                "timeout",
                "The rollout did not finish in time and nothing failed outright (slow start or stuck "
                "pending tasks).",
                "check the events above: tasks stuck in PENDING point to image size or networking; "
                "slow model loading needs a longer deploy.timeout and health.start_period",
            ))
        else:
            add(Finding(
                "unknown",
                "ECS gave no stopped-task reason or event that explains the failure.",
                f"run `deployctl status --env {context.env or '<env>'}` and read the service events; "
                f"then the logs: {_logs_hint(context)}",
            ))

    order = ["no_answer", "image_pull", "registry_auth", "network", "secrets", "init", "oom", "killed", "crash",
             "container_health", "elb_health", "placement", "deploy_config", "alarm", "timeout", "unknown"]
    return sorted(found.values(), key=lambda f: order.index(f.key) if f.key in order else len(order))


def render(findings: Sequence[Finding], *, limit: int = 3) -> list[str]:
    """Lines for the log: 'likely cause: …' / 'what to try: …' / 'seen: …'."""
    lines: list[str] = []
    for f in findings[:limit]:
        times = f" ({f.count} tasks)" if f.count > 1 else ""
        lines.append(f"likely cause{times}: {f.cause}")
        lines.append(f"  what to try: {f.advice}")
        if f.evidence:
            lines.append(f"  seen: {f.evidence}")
    return lines


# ------------------------------------------------------------------------------------------------
# The app's own words: the last lines its failing container wrote (CloudWatch Logs, awslogs).
# ------------------------------------------------------------------------------------------------

LOG_LINES = 30  # how many of the failing container's last lines are shown


@dataclass(frozen=True)
class AppLog:
    """The last lines one stopped task's failing container wrote, already redacted.

    `log_lines` is empty with `missing` set when there was nothing to read: the stream does not
    exist (the container never started), the container does not log with awslogs, or the read
    failed (e.g. AccessDenied on logs:GetLogEvents)."""

    task_id: str
    container: str
    log_group: str = ""
    log_stream: str = ""
    exit_code: int | None = None
    stopped_reason: str = ""
    log_lines: tuple[str, ...] = ()
    missing: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "container": self.container, "log_group": self.log_group,
                "log_stream": self.log_stream, "exit_code": self.exit_code,
                "stopped_reason": self.stopped_reason, "log_lines": list(self.log_lines),
                "missing": self.missing}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AppLog:
        """The inverse of to_json (a stage's `app_logs` detail; other keys, e.g. service, ignored)."""
        code = data.get("exit_code")
        return cls(task_id=str(data.get("task_id") or ""), container=str(data.get("container") or ""),
                   log_group=str(data.get("log_group") or ""), log_stream=str(data.get("log_stream") or ""),
                   exit_code=int(code) if code is not None else None,
                   stopped_reason=str(data.get("stopped_reason") or ""),
                   log_lines=tuple(str(x) for x in data.get("log_lines") or ()),
                   missing=str(data.get("missing") or ""))


def failing_container(stopped_tasks: Sequence[Task]) -> tuple[Task, str, int | None] | None:
    """The stopped task and container whose output best explains a failure: (task, container
    name, its exit code). A container that exited non-zero on its own beats one that only has a
    reason; tasks a deployment scaled in (ECS stopped them, see `diagnose`) are passed over.
    Among equals the task that stopped last is taken (it shows the newest attempt)."""
    best: tuple[int, float, Task, Container] | None = None
    for task in stopped_tasks:
        if _scaled_in(task):
            continue
        for c in task.containers:
            rank = 2 if c.exit_code not in (None, 0) else 1 if c.reason else 0
            if best is None or (rank, task.stopped_at) > best[:2]:
                best = (rank, task.stopped_at, task, c)
    if best is None or not best[3].name:
        return None
    return best[2], best[3].name, best[3].exit_code


def render_app_log(log: AppLog) -> list[str]:
    """Lines for the terminal under the stop reason: a heading, then the container's lines."""
    code = f", exit {log.exit_code}" if log.exit_code is not None else ""
    head = f"last lines of {log.container} in task {log.task_id}{code}"
    if not log.log_lines:
        return [f"{head}: {log.missing or 'it wrote nothing'}"]
    where = f" ({log.log_group} {log.log_stream})" if log.log_group else ""
    return [f"{head}{where}:", *(f"  | {line}" for line in log.log_lines)]

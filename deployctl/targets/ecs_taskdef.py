"""ECS task definitions compared, and a release's outcome recorded on its revision.

Shared by the deploy (deployctl.targets.ecs), the steps it runs before the services
(ecs_before_deploy) and the scheduled jobs (ecs_jobs), which is why it is a module of its own:
those import it, not each other.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from deployctl import releases_tags
from deployctl.adapters import aws as awsa

# Set by AWS on every revision, or describing it rather than defining it.
_TD_READ_ONLY = frozenset({
    "taskDefinitionArn", "revision", "status", "registeredAt", "registeredBy", "deregisteredAt",
    "requiresAttributes", "compatibilities", "tags",
})
# Fields AWS fills in with a default value when the request did not set them.
_TD_DEFAULTS: dict[str, Any] = {"enableFaultInjection": False}
_CONTAINER_DEFAULTS: dict[str, Any] = {"cpu": 0, "essential": True}
_NAMED_LISTS = ("environment", "secrets", "portMappings", "ulimits", "environmentFiles")


def _prune(value: Any) -> Any:
    """Drop None, empty lists and empty dicts, recursively."""
    if isinstance(value, Mapping):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _sort_key(x: Any) -> str:
    return repr(sorted(x.items())) if isinstance(x, dict) else repr(x)


def normalise_task_definition(td: Mapping[str, Any]) -> dict[str, Any]:
    """A task definition (request or DescribeTaskDefinition) reduced to what defines it."""
    out = {k: copy.deepcopy(v) for k, v in td.items() if k not in _TD_READ_ONLY}
    for key, default in _TD_DEFAULTS.items():
        if out.get(key) == default:
            out.pop(key)
    for key in ("cpu", "memory"):
        if key in out and out[key] is not None:
            out[key] = str(out[key])
    containers = []
    for c in out.get("containerDefinitions") or []:
        c = dict(c)
        for key, default in _CONTAINER_DEFAULTS.items():
            if c.get(key, default) == default:
                c.pop(key, None)
        ports = []
        for p in c.get("portMappings") or []:
            p = dict(p)
            if p.get("hostPort") == p.get("containerPort"):  # awsvpc: AWS copies containerPort
                p.pop("hostPort", None)
            if p.get("protocol", "tcp") == "tcp":
                p.pop("protocol", None)
            ports.append(p)
        c["portMappings"] = ports
        for key in _NAMED_LISTS:
            if isinstance(c.get(key), list):
                c[key] = sorted(c[key], key=_sort_key)
        containers.append(c)
    out["containerDefinitions"] = sorted(containers, key=lambda c: str(c.get("name")))
    for key in ("requiresCompatibilities",):
        if isinstance(out.get(key), list):
            out[key] = sorted(out[key])
    return _prune(out)


def same_task_definition(request: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    return normalise_task_definition(request) == normalise_task_definition(live)


def td_differences(request: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """Top-level/container keys that differ (for the log line saying why we register)."""
    a, b = normalise_task_definition(request), normalise_task_definition(live)
    diffs = [k for k in sorted(set(a) | set(b)) if k != "containerDefinitions" and a.get(k) != b.get(k)]
    ca = {c.get("name"): c for c in a.get("containerDefinitions", [])}
    cb = {c.get("name"): c for c in b.get("containerDefinitions", [])}
    for name in sorted(set(ca) | set(cb), key=str):
        x, y = ca.get(name, {}), cb.get(name, {})
        diffs += [f"{name}.{k}" for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
    return diffs


def _retryable(exc: BaseException) -> bool:
    """Throttling, a 5xx or a connection problem: worth another try. Not a refusal (access denied,
    validation), nor a call not made because the time budget is spent."""
    if isinstance(exc, awsa.OutOfTime | awsa.NoCredentialsError):
        return False
    if isinstance(exc, awsa.ClientError):
        status = awsa.http_status(exc)
        return awsa.is_throttle(exc) or status >= 500
    return isinstance(exc, awsa.BotoCoreError)


def record_outcome(aws: awsa.Bounded, td_arn: str, tags: Mapping[str, str], *,
                   sleep: Callable[[float], None] = time.sleep) -> tuple[int, BaseException | None]:
    """TagResource with a release's outcome tags, one attempt per call, retried with jittered
    backoff (0.1 s doubling to 1 s) on throttling, 5xx and connection errors until `aws`'s
    deadline. Returns the number of attempts and the last error (None: recorded)."""
    delay, attempts = 0.1, 0
    while True:
        attempts += 1
        try:
            aws.client("ecs", attempts=1).tag_resource(resourceArn=td_arn, tags=releases_tags.to_list(tags))
            return attempts, None
        except (awsa.ClientError, awsa.BotoCoreError) as exc:
            pause = delay * random.uniform(0.5, 1.0)
            if not _retryable(exc) or aws.remaining() <= pause + 0.1:
                return attempts, exc
            sleep(pause)
            delay = min(1.0, delay * 2)

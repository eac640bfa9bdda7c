"""Preview environments, pure: per-name names, validation, and what `destroy` may touch.

An environment with `preview: true` (target ecs) holds any number of named copies of the app in
its cluster: services `{app}-{env}-{name}-{svc}` (or its deploy.service_name template) and
task-definition families `{app}-{env}-{name}-{svc}`, every resource tagged
`deployctl:preview=<name>`. `deployctl run --env preview --name pr-42` deploys one;
`deployctl destroy --env preview --name pr-42` removes exactly what that run created. A
resource is selected for removal only when BOTH its name is one of the preview's (or has its
prefix) AND its tags name this app, this environment and the preview, so neither a look-alike
name nor a stray tag is enough to lose something. Copies made before names held the
environment (`{app}-{name}-{svc}`) are found by the same tags.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from deployctl.adapters.ecs_gateway import ServiceState
from deployctl.config.model import ResolvedConfig
from deployctl.errors import UsageError
from deployctl.render import ecs

PREVIEW_TAG = ecs.TAG_PREFIX + "preview"
APP_TAG = ecs.TAG_PREFIX + "app"
ENV_TAG = ecs.TAG_PREFIX + "env"
MAX_NAME = 20
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


def validate_name(name: str) -> str:
    """A preview name: DNS-safe (lowercase letters, digits, inner hyphens), at most 20 characters."""
    if not name:
        raise UsageError("the preview name is empty", hint="e.g. --name pr-42")
    if len(name) > MAX_NAME:
        raise UsageError(f"preview name '{name}' is {len(name)} characters; the limit is {MAX_NAME}",
                         hint="use a short name such as pr-<number>")
    if not _NAME.match(name):
        raise UsageError(f"preview name '{name}' is not DNS-safe",
                         hint="lowercase letters, digits and inner hyphens only, e.g. pr-42")
    return name


def check_name(cfg: ResolvedConfig, name: str | None) -> str | None:
    """The validated preview name for this environment: required for preview environments,
    refused for the others (a typo must not deploy a copy next to staging)."""
    if cfg.environment.preview:
        if cfg.environment.target != "ecs":
            raise UsageError(f"environment '{cfg.env_name}' has preview: true but target "
                             f"{cfg.environment.target}", hint="previews need target: ecs")
        if name is None:
            raise UsageError(f"environment '{cfg.env_name}' is a preview environment: --name is required",
                             hint=f"e.g. --env {cfg.env_name} --name pr-42")
        return validate_name(name)
    if name is not None:
        raise UsageError(f"--name is only for preview environments, and '{cfg.env_name}' is not one",
                         hint="mark an environment `preview: true` in deploy.yaml to use named previews")
    return None


def prefix(cfg: ResolvedConfig, name: str) -> str:
    """Every task-definition family of preview `name` starts with this."""
    return f"{cfg.app}-{cfg.env_name}-{name}-"


def legacy_prefix(cfg: ResolvedConfig, name: str) -> str:
    """Names of preview copies made before service and family names held the environment."""
    return f"{cfg.app}-{name}-"


def service_prefixes(cfg: ResolvedConfig, name: str) -> tuple[str, ...]:
    """Name prefixes of preview `name`'s services: the template's part before {service} when it
    names the preview (a service since removed from deploy.yaml is still found), and the legacy one."""
    head = ecs.service_name_template(cfg).split("{service}", 1)[0]
    out = [head.format(app=cfg.app, env=cfg.env_name, name=name)] if "{name}" in head else []
    return tuple(dict.fromkeys([*out, legacy_prefix(cfg, name)]))


def family_prefixes(cfg: ResolvedConfig, name: str) -> tuple[str, ...]:
    return prefix(cfg, name), legacy_prefix(cfg, name)


def service_names(cfg: ResolvedConfig, name: str) -> list[str]:
    return [ecs.service_name(cfg, svc, name) for svc in cfg.services]


def families(cfg: ResolvedConfig, name: str) -> list[str]:
    return [ecs.family(cfg, svc, name) for svc in cfg.services]


def is_candidate_service(cfg: ResolvedConfig, name: str, service: str) -> bool:
    return service in service_names(cfg, name) or service.startswith(service_prefixes(cfg, name))


def _owned(cfg: ResolvedConfig, name: str, tags: Mapping[str, str]) -> bool:
    return (tags.get(PREVIEW_TAG) == name
            and tags.get(APP_TAG, cfg.app) == cfg.app
            and tags.get(ENV_TAG) == cfg.env_name)


def service_name_of(arn_or_name: str) -> str:
    return arn_or_name.rsplit("/", 1)[-1]


def family_of(task_definition_arn: str) -> str:
    """'arn:…:task-definition/app-pr-1-api:3' → 'app-pr-1-api'."""
    return task_definition_arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]


def _not_owned_why(cfg: ResolvedConfig, name: str, tags: Mapping[str, str]) -> str:
    if tags.get(PREVIEW_TAG) != name:
        return f"not tagged {PREVIEW_TAG}={name}"
    if tags.get(APP_TAG, cfg.app) != cfg.app:
        return f"tagged {APP_TAG}={tags.get(APP_TAG)}, not {cfg.app}"
    return f"tagged {ENV_TAG}={tags.get(ENV_TAG, '(none)')}, not {cfg.env_name}"


@dataclass(frozen=True)
class Selected:
    services: tuple[str, ...]  # service names to scale to 0 and delete
    task_definitions: tuple[str, ...]  # task-definition ARNs to deregister
    skipped: tuple[str, ...]  # look-alikes left alone, with the reason, for the report


def select_services(cfg: ResolvedConfig, name: str,
                    described: Sequence[ServiceState]) -> tuple[list[str], list[str]]:
    """(services to remove, skipped look-alikes) among DescribeServices results (with TAGS)."""
    keep, skipped = [], []
    for svc in described:
        sname = svc.name or service_name_of(svc.arn)
        if svc.status == "INACTIVE" or not is_candidate_service(cfg, name, sname):
            continue
        tags = svc.tags
        if _owned(cfg, name, tags):
            keep.append(sname)
        else:
            skipped.append(f"service {sname}: {_not_owned_why(cfg, name, tags)}")
    return sorted(keep), skipped


def select_task_definitions(cfg: ResolvedConfig, name: str,
                            described: Mapping[str, Mapping[str, str]]) -> tuple[list[str], list[str]]:
    """(task-definition ARNs to deregister, skipped look-alikes) given ARN → its tags."""
    keep, skipped = [], []
    for arn, found in described.items():
        fam = family_of(arn)
        if not fam.startswith(family_prefixes(cfg, name)):
            continue
        if _owned(cfg, name, found):
            keep.append(arn)
        else:
            skipped.append(f"task definition {fam}: {_not_owned_why(cfg, name, found)}")
    return sorted(keep), skipped

"""Preflight for an ECS deploy: check everything the deploy needs exists, before changing anything.

Every check runs even when an earlier one failed, so one run lists every missing thing at once
(PreflightFailed, exit 1, nothing changed). What the checks resolve on the way (the account id,
the image digest, full secret ARNs with their random suffix, target group ARNs, alarm states)
is returned so the plan can be re-rendered with real values.

The checks: this module (who owns the services), preflight.resources (cluster, network, image,
target groups, roles, alarms, queues) and preflight.secrets (secrets, never their values);
preflight.findings collects what they find. AWS answers come typed from the adapters'
gateways, so no module here reads a response dict or imports boto3.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from deployctl.adapters import aws as awsa
from deployctl.adapters import ecs_gateway
from deployctl.config.model import ResolvedConfig
from deployctl.errors import EXIT_USAGE, DeployctlError, PreflightFailed
from deployctl.preflight.findings import PreflightResult as PreflightResult
from deployctl.preflight.findings import Report, guard
from deployctl.preflight.findings import bootstrap_hint as bootstrap_hint
from deployctl.preflight.resources import (
    check_alarms,
    check_cluster,
    check_image,
    check_network,
    check_queue,
    check_roles,
    check_target_groups,
)
from deployctl.preflight.resources import role_name as role_name
from deployctl.preflight.secrets import check_secrets
from deployctl.preflight.secrets import ssm_name as ssm_name
from deployctl.render.ecs import TAG_PREFIX, service_name


class ServiceOwnedElsewhere(DeployctlError):
    """An ECS service this deploy would update is tagged as another app's or environment's."""

    exit_code = EXIT_USAGE


def run(cfg: ResolvedConfig, aws: awsa.AwsClients, image_ref: str, *, log: Callable[[str], None] = lambda s: None,
        registry_check: Callable[[str], tuple[str | None, str | None]] | None = None,
        preview: str | None = None) -> PreflightResult:
    """Check the services belong to this environment, then the cluster, image, secrets, target
    groups, roles and alarms. Raises ServiceOwnedElsewhere (exit 2) when a service is another
    app's or environment's, PreflightFailed listing every other problem; ExternalError when AWS
    itself cannot be reached or credentials are bad.

    registry_check(image_ref) → (digest or None if absent, note) for non-ECR registries; the
    default asks the registry through deployctl.adapters.registry. `preview`: the preview copy deployed.
    """
    with awsa.aws_errors("checking the AWS account (preflight)"):
        account = awsa.account_id(aws)
    rep = Report()
    result = PreflightResult(account_id=account, image_ref=image_ref, image_digest=None)
    _check_ownership(cfg, aws, rep, preview)
    check_cluster(cfg, aws, rep)
    check_network(cfg, aws, rep)
    check_image(cfg, aws, image_ref, rep, result, registry_check)
    check_secrets(cfg, aws, rep, result)
    check_target_groups(cfg, aws, rep, result)
    check_roles(cfg, aws, rep)
    check_alarms(cfg, aws, rep, result)
    check_queue(cfg, aws, rep)
    result.notes = rep.notes
    for note in rep.notes:
        log(f"preflight: {note}")
    if rep.problems:
        raise failed(cfg, rep.problems)
    log(f"preflight: ok (cluster {cfg.environment.cluster}, image {result.image_ref}, "
        f"{_count(len(result.secret_arns), 'secret')}, {_count(len(result.target_group_arns), 'target group')}, "
        f"{len(result.alarm_states)} alarms)")
    return result


def owner_conflict(cfg: ResolvedConfig, svc: str, preview: str | None, tags: Mapping[str, str]) -> str | None:
    """Why an existing ECS service is not this deploy's to update (from its deployctl tags), or None.

    A service without any deployctl tag (made by hand or by other tooling) is taken over: that
    is how existing services are adopted (docs/environments.md)."""
    mine = {"app": cfg.app, "env": cfg.env_name, "preview": preview or "", "service": svc}
    found = {k: tags.get(TAG_PREFIX + k, "") for k in mine}
    if not any(k.startswith(TAG_PREFIX) for k in tags):
        return None
    wrong = [k for k in ("app", "env", "preview") if found[k] != mine[k]]
    if found["service"] and found["service"] != svc:
        wrong.append("service")
    if not wrong:
        return None
    owner = f"app {found['app'] or '?'}, environment {found['env'] or '?'}"
    if found["preview"]:
        owner += f", preview {found['preview']}"
    if found["service"] and found["service"] != svc:
        owner += f", service {found['service']}"
    return owner


def _check_ownership(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: Report, preview: str | None) -> None:
    """Refuse, before anything is registered, to update a service another environment deployed:
    two environments whose names meet in one cluster must not overwrite each other's release."""
    cluster = cfg.environment.cluster or "default"
    names = {service_name(cfg, svc, preview): svc for svc in cfg.services}
    conflicts: list[str] = []

    def check() -> None:
        listed = list(names)
        for i in range(0, len(listed), 10):  # DescribeServices takes at most 10 services
            for found in ecs_gateway.describe_services(aws.ecs, cluster, listed[i:i + 10], tags=True):
                if found.status == "INACTIVE" or found.name not in names:
                    continue
                owner = owner_conflict(cfg, names[found.name], preview, found.tags)
                if owner:
                    conflicts.append(f"{found.name} (tagged {owner})")

    guard(rep, f"who owns the ECS services in {cluster}", check)
    if not conflicts:
        return
    me = f"{cfg.app}/{cfg.env_name}" + (f" preview {preview}" if preview else "")
    raise ServiceOwnedElsewhere(
        f"refusing to deploy {me}: ECS service{'s' if len(conflicts) > 1 else ''} {', '.join(conflicts)} in "
        f"cluster {cluster} belong{'s' if len(conflicts) == 1 else ''} to another app or environment, "
        "according to deployctl's tags; updating it would replace that environment's release. "
        "Nothing was registered or changed.",
        hint="give this environment its own ECS service names (keep {env} in deploy.service_name) or its own "
             "cluster; see docs/environments.md")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def failed(cfg: ResolvedConfig, problems: list[str]) -> PreflightFailed:
    """The one error for every problem found: the message lists them one per line, `problems`
    carries them as a list for renderers that lay them out themselves."""
    n = len(problems)
    lines = "\n".join(f"  - {p}" for p in problems)
    return PreflightFailed(
        f"preflight found {n} problem{'s' if n != 1 else ''} in {cfg.region} for env {cfg.env_name}; "
        f"nothing was changed:\n{lines}",
        hint="create or fix each one as it says, then run again", problems=problems)

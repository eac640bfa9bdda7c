"""ECS reads of one environment's releases, and the one write they may need: settling the
newest release from what ECS shows when its deploy stopped watching before the verdict.

Releases are ECS task-definition revisions and their tags (deployctl.releases builds them);
these functions fetch them and hand the pure parts what ECS says.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from deployctl import lock, releases
from deployctl import releases_tags as rt
from deployctl.adapters import aws, ecs_gateway
from deployctl.adapters.aws import BotoClient
from deployctl.adapters.ecs_gateway import ServiceState
from deployctl.errors import DeployctlError
from deployctl.render import ecs as render
from deployctl.render.text import outcome_text

if TYPE_CHECKING:
    from deployctl.config.model import ResolvedConfig
    from deployctl.releases import Release, Revision


def families(cfg: ResolvedConfig, preview: str | None = None) -> dict[str, str]:
    """service → task-definition family of the environment (or of its preview copy `preview`)."""
    return {name: render.family(cfg, name, preview) for name in cfg.services}


def _revision_number(arn: str) -> int:
    try:
        return int(arn.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def read_revisions(ecs: BotoClient, cfg: ResolvedConfig, per_family: int | None = None,
                   preview: str | None = None, also: Iterable[str] = ()) -> list[Revision]:
    """deployctl's revisions of the environment's families, newest `per_family` of each, and the
    revisions `also` (what the services run: a rollback may run an old one again). Each comes
    once per release it belongs to (releases.revisions_from). ListTaskDefinitions' sort is not
    relied on (moto ignores it): revisions are sorted here."""
    arns: list[str] = []
    for family in families(cfg, preview).values():
        # familyPrefix is a prefix: app-prod-api would also match app-prod-api2.
        found = [a for a in ecs_gateway.task_definition_arns(ecs, family) if _family_of(a) == family]
        found.sort(key=_revision_number, reverse=True)
        arns += found[:per_family] if per_family else found
    arns += [a for a in dict.fromkeys(also) if a and a not in arns and _family_of(a) in families(cfg, preview).values()]

    def describe(arn: str) -> list[Revision]:
        return releases.revisions_from(ecs_gateway.describe_task_definition(ecs, arn))

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [r for found_ in pool.map(describe, arns) for r in found_]


def _family_of(arn: str) -> str:
    return arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]


def running_arns(described: Mapping[str, ServiceState | None]) -> list[str]:
    """The task definitions the described services run (their PRIMARY deployment's)."""
    return [str(releases.service_view(n, d).task_definition) for n, d in described.items() if d]


def read_settled_releases(clients: aws.AwsClients, cfg: ResolvedConfig,
                          described: Mapping[str, ServiceState | None], per_family: int | None = None,
                          preview: str | None = None) -> list[Release]:
    """The releases of cfg's environment (ECS task-definition tags), the newest one settled from
    what ECS shows when its deploy stopped watching before the verdict (settle_revisions)."""
    revs = settle_revisions(clients, cfg, read_revisions(clients.ecs, cfg, per_family, preview,
                                                         also=running_arns(described)),
                            described, preview=preview)
    return releases.build(revs, app=cfg.app, env=cfg.env_name)


def read_services(ecs: BotoClient, cfg: ResolvedConfig, preview: str | None = None, *,
                  tags: bool = False) -> dict[str, ServiceState | None]:
    """service name (deploy.yaml) → what DescribeServices says of it, None when missing or INACTIVE."""
    names = {render.service_name(cfg, name, preview): name for name in cfg.services}
    out: dict[str, ServiceState | None] = dict.fromkeys(cfg.services)
    ecs_names = list(names)
    for i in range(0, len(ecs_names), 10):  # DescribeServices takes at most 10
        for svc in ecs_gateway.describe_services(ecs, cfg.environment.cluster, ecs_names[i:i + 10], tags=tags):
            if svc.status != "INACTIVE" and svc.name in names:
                out[names[svc.name]] = svc
    return out


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


def settle_revisions(clients: aws.AwsClients, cfg: ResolvedConfig, revs: list[Revision],
                     described: Mapping[str, ServiceState | None],
                     log: Callable[[str], None] = _warn, preview: str | None = None) -> list[Revision]:
    """`revs` with a verdict for the newest release when its deploy's watch ended without one
    (Ctrl-C, a killed runner) and ECS has since finished the rollout (releases.settle).

    The verdict is recorded on the revisions with the outcome tags a run writes, unless a
    deploy holds the environment's lock: a running deploy owns its release and records its
    own verdict. A verdict that cannot be recorded (no ecs:TagResource, as for `promote`
    reading the source environment with the destination's role) is still used, with a warning."""
    built = releases.build(revs, app=cfg.app, env=cfg.env_name)
    pending = releases.settle(built[0] if built else None, described)
    if not pending or _deploy_in_flight(clients, cfg, log, preview):
        return revs
    now = datetime.now(UTC)
    settled: list[Revision] = []
    for item in pending:
        arn = item.revision.arn
        try:
            fresh = next((r for r in releases.revisions_from(ecs_gateway.describe_task_definition(clients.ecs, arn))
                          if r.record == item.revision.record), None)
        except (aws.ClientError, aws.BotoCoreError) as exc:
            log(f"could not re-read {item.revision.label}: {aws.error_code(exc) or exc}")
            continue
        if fresh is not None and fresh.outcome != rt.IN_PROGRESS:
            settled.append(fresh)  # its deploy recorded the verdict just before letting go of the lock
            continue
        tags = item.tags(now)
        try:
            clients.ecs.tag_resource(resourceArn=arn, tags=rt.to_list(releases.record_for(item.revision, tags)))
        except (aws.ClientError, aws.BotoCoreError) as exc:
            log(f"release {item.revision.parsed.release}: {item.service} {outcome_text(item.outcome)} "
                f"(ECS shows it) but the outcome could not be recorded on {item.revision.label}: "
                f"{aws.error_code(exc) or exc}")
        else:
            log(f"release {item.revision.parsed.release}: recorded {item.service} as "
                f"{outcome_text(item.outcome)} on {item.revision.label}, from what ECS shows "
                "(its deploy stopped watching before the verdict)")
        settled.append(item.settled_revision(now))
    return releases.apply_settlements(revs, settled)


def _deploy_in_flight(clients: aws.AwsClients, cfg: ResolvedConfig, log: Callable[[str], None],
                      preview: str | None = None) -> bool:
    """True when a live deploy holds the environment's lock (or the lock cannot be read); each
    preview copy deploys under its own lock (deployctl.lock)."""
    env = f"{cfg.env_name}/{preview}" if preview else cfg.env_name
    try:
        holder = lock.LockTable(clients.client("dynamodb")).read(lock.lock_key(cfg.app, env))
    except DeployctlError as exc:
        log(f"not settling the latest release of {cfg.env_name}: could not read the deploy lock ({exc})")
        return True
    return holder is not None and holder.expires_at > time.time()


def tag_release(ecs: BotoClient, cfg: ResolvedConfig, release_id: str | None, tags: dict[str, str],
                 log: Callable[[str], None]) -> None:
    """Add `tags` to the revisions registered by release `release_id` (newest of each family)."""
    if not release_id:
        return
    try:
        for rev in read_revisions(ecs, cfg, per_family=3):
            if rev.parsed.release == release_id:
                ecs.tag_resource(resourceArn=rev.arn, tags=rt.to_list(tags))
    except (aws.ClientError, aws.BotoCoreError) as exc:
        log(f"warning: could not record where release {release_id} came from: {aws.error_code(exc) or exc}")


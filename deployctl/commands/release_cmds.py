"""promote, rollback, status, history, unlock: releases of one environment.

Everything is read from the platform (ECS services and task-definition revisions with their
tags; Docker labels for the local target, via deployctl.targets.docker). The pure parts
(release records, what to promote, what to roll back to) live in deployctl.releases; deploys
go through the same stage engine, ECS target and deploy lock as `deployctl run`, so output and
exit codes are the same: 0 ok, 1 failed (a rollback by ECS included), 2 usage, 130 interrupted.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, YES_OPTION, confirm, load, print_json

if TYPE_CHECKING:
    from deployctl.config.model import ResolvedConfig
    from deployctl.releases import Release, Revision

LOCK_WAIT_OPTION = typer.Option(None, "--lock-wait", metavar="DURATION",
                                help="Wait this long (e.g. 10m) for another deploy of the environment "
                                     "to finish instead of failing at once.")


def parse_lock_wait(text: str | None) -> float:
    """Seconds from --lock-wait (e.g. 90s, 10m); UsageError (exit 2) for nonsense."""
    if text is None:
        return 0.0
    from deployctl.config.units import parse_duration
    from deployctl.errors import UsageError

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--lock-wait: {exc}") from None


# ------------------------------------------------------------------------------------------
# Reading ECS
# ------------------------------------------------------------------------------------------


def _clients(cfg: ResolvedConfig) -> Any:
    from deployctl.adapters import aws

    return aws.clients(cfg.region)


def _errors(doing: str) -> Any:
    from deployctl.adapters import aws

    return aws.aws_errors(doing)


def families(cfg: ResolvedConfig) -> dict[str, str]:
    from deployctl.render import ecs as render

    return {name: render.family(cfg, name) for name in cfg.services}


def _revision_number(arn: str) -> int:
    try:
        return int(arn.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def read_revisions(ecs: Any, cfg: ResolvedConfig, per_family: int | None = None) -> list[Revision]:
    """deployctl's revisions of the environment's families, newest `per_family` of each.
    ListTaskDefinitions' sort is not relied on (moto ignores it): revisions are sorted here."""
    from deployctl import releases

    arns: list[str] = []
    for family in families(cfg).values():
        found = []
        for page in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, status="ACTIVE"):
            # familyPrefix is a prefix: app-prod-api would also match app-prod-api2.
            found += [a for a in page.get("taskDefinitionArns", [])
                      if a.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family]
        found.sort(key=_revision_number, reverse=True)
        arns += found[:per_family] if per_family else found

    def describe(arn: str) -> Any:
        return releases.revision_from(ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"]))

    from concurrent.futures import ThreadPoolExecutor  # ~10 ms at import: only history needs it

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [r for r in pool.map(describe, arns) if r is not None]


def read_settled_releases(clients: Any, cfg: ResolvedConfig, described: Mapping[str, Mapping[str, Any] | None],
                          per_family: int | None = None) -> list[Release]:
    """The releases of cfg's environment (ECS task-definition tags), the newest one settled from
    what ECS shows when its deploy stopped watching before the verdict (settle_revisions)."""
    from deployctl import releases

    revs = settle_revisions(clients, cfg, read_revisions(clients.ecs, cfg, per_family), described)
    return releases.build(revs, app=cfg.app, env=cfg.env_name)


def read_services(ecs: Any, cfg: ResolvedConfig) -> dict[str, dict[str, Any] | None]:
    """service name (deploy.yaml) → DescribeServices entry, None when missing or INACTIVE."""
    from deployctl.render import ecs as render

    names = {render.service_name(cfg, name): name for name in cfg.services}
    out: dict[str, dict[str, Any] | None] = dict.fromkeys(cfg.services)
    ecs_names = list(names)
    for i in range(0, len(ecs_names), 10):  # DescribeServices takes at most 10
        resp = ecs.describe_services(cluster=cfg.environment.cluster, services=ecs_names[i:i + 10])
        for svc in resp.get("services", []):
            if svc.get("status") != "INACTIVE" and svc.get("serviceName") in names:
                out[names[svc["serviceName"]]] = dict(svc)
    return out


def _warn(text: str) -> None:
    typer.echo(f"warning: {text}", err=True)


def settle_revisions(clients: Any, cfg: ResolvedConfig, revs: list[Revision],
                     described: Mapping[str, Mapping[str, Any] | None],
                     log: Callable[[str], None] = _warn) -> list[Revision]:
    """`revs` with a verdict for the newest release when its deploy's watch ended without one
    (Ctrl-C, a killed runner) and ECS has since finished the rollout (releases.settle).

    The verdict is recorded on the revisions with the outcome tags a run writes, unless a
    deploy holds the environment's lock: a running deploy owns its release and records its
    own verdict. A verdict that cannot be recorded (no ecs:TagResource, as for `promote`
    reading the source environment with the destination's role) is still used, with a warning."""
    from datetime import UTC, datetime

    from deployctl import releases
    from deployctl import releases_tags as rt
    from deployctl.adapters import aws

    built = releases.build(revs, app=cfg.app, env=cfg.env_name)
    pending = releases.settle(built[0] if built else None, described)
    if not pending or _deploy_in_flight(clients, cfg, log):
        return revs
    now = datetime.now(UTC)
    settled: list[Revision] = []
    for item in pending:
        arn = item.revision.arn
        try:
            fresh = releases.revision_from(clients.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"]))
        except (aws.ClientError, aws.BotoCoreError) as exc:
            log(f"could not re-read {item.revision.label}: {aws.error_code(exc) or exc}")
            continue
        if fresh is not None and fresh.outcome != rt.IN_PROGRESS:
            settled.append(fresh)  # its deploy recorded the verdict just before letting go of the lock
            continue
        tags = item.tags(now)
        try:
            clients.ecs.tag_resource(resourceArn=arn, tags=rt.to_list(tags))
        except (aws.ClientError, aws.BotoCoreError) as exc:
            log(f"release {item.revision.parsed.release}: {item.service} {_outcome_text(item.outcome)} "
                f"(ECS shows it) but the outcome could not be recorded on {item.revision.label}: "
                f"{aws.error_code(exc) or exc}")
        else:
            log(f"release {item.revision.parsed.release}: recorded {item.service} as "
                f"{_outcome_text(item.outcome)} on {item.revision.label}, from what ECS shows "
                "(its deploy stopped watching before the verdict)")
        settled.append(item.settled_revision(now))
    return releases.apply_settlements(revs, settled)


def _deploy_in_flight(clients: Any, cfg: ResolvedConfig, log: Callable[[str], None]) -> bool:
    """True when a live deploy holds the environment's lock (or the lock cannot be read)."""
    from deployctl import lock
    from deployctl.errors import DeployctlError

    try:
        holder = lock.LockTable(clients.client("dynamodb")).read(lock.lock_key(cfg.app, cfg.env_name))
    except DeployctlError as exc:
        log(f"not settling the latest release of {cfg.env_name}: could not read the deploy lock ({exc})")
        return True
    return holder is not None and holder.expires_at > time.time()


def _require_ecs(cfg: ResolvedConfig, command: str) -> None:
    from deployctl.errors import UsageError

    if cfg.environment.target != "ecs":
        raise UsageError(f"`{command}` works on ECS environments; {cfg.env_name} has target "
                         f"{cfg.environment.target}")


# ------------------------------------------------------------------------------------------
# Deploying through the stage engine (same output and exit codes as `run`)
# ------------------------------------------------------------------------------------------


def _options(cfg: ResolvedConfig, *, yes: bool, lock_wait: str | None, no_rollback: bool = False,
             task_definitions: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    from deployctl.targets import DeployOptions

    base: dict[str, Any] = dict(no_rollback=no_rollback, timeout=cfg.deploy.timeout,
                                poll_interval=cfg.deploy.poll_interval, yes=yes,
                                lock_wait=parse_lock_wait(lock_wait))
    if task_definitions is None:
        return DeployOptions(**base)
    return _pinned_options(DeployOptions)(**base, task_definitions=dict(task_definitions))


def _pinned_options(base: type) -> type:
    from dataclasses import dataclass as dc

    @dc(frozen=True)
    class RollbackOptions(base):  # type: ignore[misc,valid-type]
        """DeployOptions plus the task definitions to run again (read by the ECS target)."""

        task_definitions: dict[str, Any] = field(default_factory=dict)

    return RollbackOptions


def _deploy(plan: Any, image_ref: str, options: Any, *, as_json: bool, release_id: str | None = None,
            before: Callable[[Any], None] | None = None, after: Callable[[Any], None] | None = None) -> None:
    """One `deploy` stage in the engine: lock, target.deploy, report; typer.Exit(code) on failure.
    `before` runs once the lock is held, before anything changes (it may refuse by raising)."""
    from deployctl.commands.run_cmd import _hinted, _maybe_tracebacks, _redactor
    from deployctl.pipeline import Job, run_jobs
    from deployctl.targets import deploy_guard, get_target
    from deployctl.ui import make_reporter
    from deployctl.ui.report import report_json

    target = get_target(plan.target)

    def deploy(ctx: Any) -> None:
        if release_id:
            ctx.outputs["release"] = release_id
        ctx.outputs["image_ref"] = image_ref
        ctx.outputs["digest"] = image_ref.rsplit("@", 1)[-1]
        try:
            with deploy_guard(plan, options, ctx):
                if before is not None:
                    before(ctx)
                target.deploy(plan, image_ref, ctx, options)
        finally:
            if after is not None:
                after(ctx)

    result = run_jobs([Job("deploy", (), _hinted(deploy))], make_reporter(json_mode=as_json), redactor=_redactor())
    if as_json:
        sys.stdout.write(report_json(result))
        sys.stdout.flush()
    _maybe_tracebacks(result)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


# ------------------------------------------------------------------------------------------
# promote
# ------------------------------------------------------------------------------------------


def promote(
    source: str = typer.Argument(..., help="Environment to take the image from, e.g. staging."),
    dest: str = typer.Argument(..., help="Environment to deploy it to, e.g. prod."),
    file: str = FILE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
    lock_wait: str | None = LOCK_WAIT_OPTION,
    no_rollback: bool = typer.Option(False, "--no-rollback", help="Leave a failed deploy in place."),
) -> None:
    """Deploy to DEST exactly the image (by digest) that SOURCE runs, with DEST's settings.

    SOURCE must be DEST's `promote_from`, and SOURCE's latest release must have succeeded
    and be settled. The deploy is watched like `deployctl run`. Exit codes: 0 ok, 1 refused
    or failed, 2 usage, 130 interrupted.

    Example:  deployctl promote staging prod --yes
    """
    from deployctl import releases
    from deployctl.adapters.git import GitFacts
    from deployctl.errors import UsageError
    from deployctl.plan import guardrail_violations, make_plan
    from deployctl.render.ecs import Facts

    dst_cfg = load(file, dest)
    src_cfg = load(file, source)
    origin = dst_cfg.environment.promote_from
    if origin != source:
        if origin is None:
            raise UsageError(f"{dest} is not a promotion target (it has no promote_from)"
                             if source != dest else f"cannot promote {dest} to itself",
                             hint=_promote_hint(file, source, dest))
        raise UsageError(f"{dest} is promoted only from {origin}, not from {source}",
                         hint=f"`deployctl promote {origin} {dest}`")
    for cfg in (src_cfg, dst_cfg):
        _require_ecs(cfg, "promote")
    releases.same_services(source, src_cfg.services, dest, dst_cfg.services)

    clients = _clients(src_cfg)
    with _errors(f"reading what {source} runs"):
        src_services = read_services(clients.ecs, src_cfg)
        views = [releases.service_view(name, described) for name, described in src_services.items()]
        src_releases = read_settled_releases(clients, src_cfg, src_services)
    chosen = releases.promotable(source, src_releases, views)
    rel = chosen.release

    git = GitFacts(sha=rel.git_sha or "unknown", branch=f"promote-{source}")
    plan = make_plan(dst_cfg, git, facts=Facts(git_sha=rel.git_sha or None, image_digest=chosen.digest),
                     image_override=chosen.image)
    violations = guardrail_violations(plan)
    if violations:
        raise UsageError("plan refused by guardrails: " + "; ".join(violations),
                         hint=f"lower count/cpu/memory or raise {dest}'s guardrails")
    out = sys.stderr if as_json else sys.stdout
    print(f"promote {plan.app} {source} → {dest}: release {rel.id} (git {rel.git_sha[:12] or '?'}, "
          f"by {rel.who or '?'})", file=out)
    print(f"  image {chosen.image}", file=out)
    for sp in plan.services:
        print(f"  {sp.name}: {source} runs {chosen.revisions[sp.name].label}; {dest} gets a new revision "
              f"of {sp.family}", file=out)
    confirm(f"Deploy this image to {dest}?", yes)

    options = _options(dst_cfg, yes=yes, lock_wait=lock_wait, no_rollback=no_rollback)
    ecs = _clients(dst_cfg).ecs

    def record_source(ctx: Any) -> None:
        _tag_release(ecs, dst_cfg, ctx.outputs.get("release"),
                     {releases.KIND: releases.PROMOTE, releases.SOURCE: f"{source}/{rel.id}"}, ctx.log)

    _deploy(plan, chosen.image, options, as_json=as_json, after=record_source)


def _promote_hint(file: str, source: str, dest: str) -> str:
    """What to do instead of a refused promotion. A promote_from is suggested only when
    `validate` accepts it and promote can use it: two different ECS environments that are not
    preview environments (their copies are named per run), and no promote_from cycle."""
    from deployctl.errors import DeployctlError

    run = f"deploy {dest} with `deployctl run --env {dest}`"
    cfgs = {}
    for name in dict.fromkeys((source, dest)):
        cfgs[name] = load(file, name)
    chain, at = {dest}, cfgs[source].environment.promote_from
    cyclic = source in chain
    while at and not cyclic:  # would dest → source → … lead back to dest?
        cyclic = at in chain
        chain.add(at)
        try:
            at = load(file, at).environment.promote_from
        except DeployctlError:  # an unloadable link: validate reports it; suggest nothing
            cyclic = True
    if cyclic or any(c.environment.target != "ecs" or c.environment.preview for c in cfgs.values()):
        return f"{run}; promote copies a release between two different ECS environments (not previews)"
    return f"{run}, or set environments.{dest}.promote_from: {source} in deploy.yaml"


def _tag_release(ecs: Any, cfg: ResolvedConfig, release_id: str | None, tags: dict[str, str],
                 log: Callable[[str], None]) -> None:
    """Add `tags` to the revisions registered by release `release_id` (newest of each family)."""
    from deployctl import releases_tags as rt
    from deployctl.adapters import aws

    if not release_id:
        return
    try:
        for rev in read_revisions(ecs, cfg, per_family=3):
            if rev.parsed.release == release_id:
                ecs.tag_resource(resourceArn=rev.arn, tags=rt.to_list(tags))
    except (aws.ClientError, aws.BotoCoreError) as exc:
        log(f"warning: could not record where release {release_id} came from: {aws.error_code(exc) or exc}")


# ------------------------------------------------------------------------------------------
# rollback
# ------------------------------------------------------------------------------------------


def rollback(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    to: str | None = typer.Option(None, "--to", help="Release id to go back to (see `deployctl history`)."),
    steps: int = typer.Option(1, "--steps", min=1, help="Go back this many succeeded releases."),
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
    lock_wait: str | None = LOCK_WAIT_OPTION,
) -> None:
    """Run an earlier succeeded release again (by default the previous one), watched like a deploy.

    On ECS the earlier release's task definitions are registered again, unchanged, as a new
    release (so history shows the rollback); service settings (count, deployment configuration)
    come from today's deploy.yaml. Nothing to roll back to, or an unknown/failed --to release,
    is exit 2 and changes nothing.

    Examples:  deployctl rollback --env staging
               deployctl rollback --env prod --to 20260315T101500Z-1a2b3c4d5e6f-9f3c --yes
    """
    from deployctl.errors import UsageError

    if to is not None and steps != 1:
        raise UsageError("--to and --steps do not go together", hint="pick a release with --to, or count with --steps")
    cfg = load(file, env)
    if cfg.environment.target == "docker":
        _docker_rollback(cfg, to, steps, yes, lock_wait)
        return
    from deployctl import releases, releases_tags
    from deployctl.adapters.git import GitFacts
    from deployctl.plan import make_plan
    from deployctl.render.ecs import Facts

    clients = _clients(cfg)
    with _errors(f"reading the releases of {env}"):
        described = read_services(clients.ecs, cfg)
        running = {name: str(releases.service_view(name, d).task_definition)
                   for name, d in described.items() if d is not None}
        # Settled first, as for status/history/promote: once our release is the newest, a cut-off
        # one shows `interrupted` for good and is never a target again. While a deploy holds the
        # lock nothing is recorded and rollback goes on: _deploy stops at that lock (or waits,
        # --lock-wait) like any deploy.
        history_ = read_settled_releases(clients, cfg, described)
    choice = releases.choose_rollback(env, history_, running, to=to, steps=steps)
    target = choice.target
    out = sys.stderr if as_json else sys.stdout
    now = f"release {choice.current.id}" if choice.current else "no deployctl release"
    print(f"rollback {cfg.app}/{env}: {now} → release {target.id} (git {target.git_sha[:12] or '?'}, "
          f"{target.who or '?'}, {target.started_at or '?'})", file=out)
    for name, before, after in choice.changes():
        print(f"  {name}: {before} → {after}", file=out)
    confirm(f"Roll {env} back to release {target.id}?", yes)

    release_id = releases_tags.new_release_id(git_sha=target.git_sha or None)
    with _errors("reading the task definitions to run again"):
        pinned = {name: releases.register_request(
            clients.ecs.describe_task_definition(taskDefinition=rev.arn, include=["TAGS"]),
            release_id=release_id, restores=target.id) for name, rev in choice.revisions.items()}
    image = next(iter(choice.revisions.values())).image
    digest = image.rsplit("@", 1)[-1] if "@" in image else None
    git = GitFacts(sha=target.git_sha or "unknown", branch=f"rollback-{env}")
    plan = make_plan(cfg, git, facts=Facts(git_sha=target.git_sha or None, image_digest=digest,
                                           release_id=release_id), image_override=image)
    options = _options(cfg, yes=yes, lock_wait=lock_wait, task_definitions=pinned)

    def still_as_chosen(ctx: Any) -> None:
        # The target was chosen from what ran before the lock was ours; with --lock-wait another
        # deploy (or rollback) may have changed that meanwhile, and rolling back from a state
        # nobody looked at could undo the wrong release. Refuse before anything changes.
        from deployctl.errors import DeployFailed
        from deployctl.rollout import td_label

        with _errors(f"reading the services of {env} again"):
            now = {name: str(releases.service_view(name, d).task_definition)
                   for name, d in read_services(clients.ecs, cfg).items() if d is not None}
        moved = [f"{name} now runs {td_label(now.get(name))} (was {td_label(was)})"
                 for name, was in sorted(running.items()) if now.get(name) != was]
        if moved:
            raise DeployFailed(f"{env} changed while this rollback waited for the lock: {'; '.join(moved)}; "
                               "nothing was changed", hint=f"run `deployctl rollback --env {env}` again to choose "
                               "from what runs now (`deployctl history` shows it)")

    _deploy(plan, image, options, as_json=as_json, release_id=release_id, before=still_as_chosen)


def _docker_rollback(cfg: ResolvedConfig, to: str | None, steps: int, yes: bool, lock_wait: str | None) -> None:
    from deployctl.targets import docker

    wait = parse_lock_wait(lock_wait)
    choice = docker.plan_rollback(cfg, to, steps)
    now = (choice.current.id if choice.current else
           f"{choice.deployed.id} (failing)" if choice.deployed else "nothing")
    t = choice.target
    typer.echo(f"rollback {cfg.app}/{cfg.env_name} (local): {now} → {t.id} (git {t.git_sha[:12]}, {t.image})")
    confirm(f"Roll {cfg.env_name} back to {t.id}?", yes)
    release = docker.rollback(cfg, choice=choice, log=typer.echo, timeout=cfg.deploy.timeout, lock_wait=wait)
    typer.echo(f"{cfg.app}/{cfg.env_name} now runs {release.id} (rollback to {t.id})")


# ------------------------------------------------------------------------------------------
# history
# ------------------------------------------------------------------------------------------


def history(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Show at most this many releases."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Releases of one environment, newest first: outcome, git sha, image digest, who, when, duration.

    Read from ECS task-definition tags (Docker labels for the local target): no state file.
    JSON (schema deployctl.history/v1): {schema, app, env, releases: [{id, outcome, kind, source,
    git_sha, image_digest, image, who, started_at, finished_at, duration_s, detail, current,
    services: {name: {task_definition, revision, family, outcome}}}]}.

    Examples:  deployctl history --env staging
               deployctl history --env prod --limit 5 --json
    """
    cfg = load(file, env)
    if cfg.environment.target == "docker":
        _docker_history(cfg, limit, as_json)
        return
    from deployctl import releases

    clients = _clients(cfg)
    with _errors(f"reading the releases of {env}"):
        described = read_services(clients.ecs, cfg)
        found = read_settled_releases(clients, cfg, described, per_family=limit)[:limit]
    running = {n: str(releases.service_view(n, d).task_definition) for n, d in described.items() if d}
    cur = releases.current(found, running)
    if as_json:
        print_json({"schema": "deployctl.history/v1", "app": cfg.app, "env": env,
                    "releases": [r.to_json(current=cur is not None and r.id == cur.id) for r in found]})
        return
    if not found:
        typer.echo(f"{cfg.app}/{env}: no releases yet (deploy with `deployctl run --env {env}`)")
        return
    rows = [[("* " if cur is not None and r.id == cur.id else "  ") + r.id, _outcome_text(r.outcome),
             r.kind, (r.git_sha or "")[:12], _short(r.image_digest), r.who, r.started_at,
             _duration(r.duration_s)] for r in found]
    _table(["release", "outcome", "kind", "git", "digest", "who", "started", "took"], rows)
    if cur is not None:
        typer.echo("* = running now")


def _docker_history(cfg: ResolvedConfig, limit: int, as_json: bool) -> None:
    from deployctl.targets import docker

    found = docker.history(cfg, limit=limit)
    if as_json:
        print_json({"schema": "deployctl.history/v1", "app": cfg.app, "env": cfg.env_name, "releases": [{
            "id": r.id, "outcome": _docker_outcome(r.outcome), "kind": r.kind, "source": r.rollback_of or None,
            "git_sha": r.git_sha or None, "image_digest": r.digest or None, "image": r.image or None,
            "who": r.who or None, "started_at": r.created or None, "finished_at": r.ended or None,
            "duration_s": r.duration_s, "detail": r.message or None, "current": r.current,
            "services": {name: {} for name in r.services}} for r in found]})
        return
    if not found:
        typer.echo(f"{cfg.app}/{cfg.env_name}: no releases yet")
        return
    rows = [[("* " if r.current else "  ") + r.id, r.outcome, r.kind, r.git_sha[:12], _short(r.digest), r.who,
             r.created, _duration(r.duration_s)] for r in found]
    _table(["release", "outcome", "kind", "git", "digest", "who", "started", "took"], rows)


def _outcome_text(outcome: str) -> str:
    return outcome.replace("-", " ")


def _short(digest: str | None) -> str:
    return (digest or "")[:19]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    for row in [headers, *rows]:
        typer.echo("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)).rstrip())


# ------------------------------------------------------------------------------------------
# status
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    ecs_service: str
    exists: bool
    release: str = ""
    outcome: str = ""
    image_digest: str = ""
    image: str = ""
    git_sha: str = ""
    task_definition: str = ""
    revision: int | None = None
    running: int = 0
    desired: int = 0
    pending: int = 0
    rollout_state: str = ""
    rollout_reason: str = ""
    deployments: tuple[dict[str, Any], ...] = ()
    targets: dict[str, int] | None = None
    events: tuple[dict[str, str], ...] = ()
    # Set when the newest release of this service is not what runs (ECS or deployctl rolled it back).
    superseded_by_rollback: str = ""

    @property
    def settled(self) -> bool:
        if not self.exists:
            return True
        if self.rollout_state == "FAILED":
            return True
        return self.rollout_state == "COMPLETED" and len(self.deployments) == 1

    @property
    def ok(self) -> bool:
        return self.exists and self.rollout_state == "COMPLETED" and not self.superseded_by_rollback

    def to_json(self) -> dict[str, Any]:
        return status_service_doc(
            service=self.service, exists=self.exists, release=self.release or None, outcome=self.outcome or None,
            image_digest=self.image_digest or None, image=self.image or None, git_sha=self.git_sha or None,
            running=self.running, desired=self.desired,
            healthy=self.targets.get("healthy", 0) if self.targets is not None else None,
            rolled_back=self.superseded_by_rollback or None,
            ecs_service=self.ecs_service, task_definition=self.task_definition or None, revision=self.revision,
            pending=self.pending, rollout_state=self.rollout_state or None,
            rollout_reason=self.rollout_reason or None, deployments=list(self.deployments), targets=self.targets,
            events=list(self.events))


# deployctl.status/v1: one shape for every target (README, "--json output"). Keys are only ever
# added; a key that does not apply to a target is present with null.
STATUS_KEYS = ("schema", "app", "env", "target", "cluster", "settled", "ok", "current", "services")
STATUS_CURRENT_KEYS = ("id", "outcome", "kind", "git_sha", "image_digest", "started_at", "finished_at")
STATUS_SERVICE_KEYS = (
    # every target
    "service", "exists", "release", "outcome", "image_digest", "image", "git_sha", "running", "desired",
    "healthy", "rolled_back",
    # ECS only (null for the local Docker target)
    "ecs_service", "task_definition", "revision", "pending", "rollout_state", "rollout_reason", "deployments",
    "targets", "events",
    # local Docker target only (null for ECS)
    "url", "containers",
)


def _only(keys: tuple[str, ...], fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(keys)
    if unknown:  # a programming error: the schema is the tuple above
        raise ValueError(f"not in deployctl.status/v1: {', '.join(sorted(unknown))}")
    return {k: fields.get(k) for k in keys}


def status_service_doc(**fields: Any) -> dict[str, Any]:
    """One entry of `services` in deployctl.status/v1, every key present (null when not given)."""
    return _only(STATUS_SERVICE_KEYS, fields)


def status_doc(**fields: Any) -> dict[str, Any]:
    return {**_only(STATUS_KEYS, fields), "schema": "deployctl.status/v1"}


def status_current_doc(**fields: Any) -> dict[str, Any]:
    return _only(STATUS_CURRENT_KEYS, fields)


@dataclass(frozen=True)
class EcsStatus:
    services: list[ServiceStatus]
    current: Release | None = None  # the newest release among the revisions the services run

    @property
    def settled(self) -> bool:
        return all(s.settled for s in self.services)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.services)


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")


def read_status(clients: Any, cfg: ResolvedConfig) -> EcsStatus:
    from deployctl import releases
    from deployctl import releases_tags as rt
    from deployctl.render import ecs as render

    described = read_services(clients.ecs, cfg)
    revs = settle_revisions(clients, cfg, read_revisions(clients.ecs, cfg, per_family=3), described)
    by_arn = {r.arn: r for r in revs}
    out = []
    running: dict[str, Revision] = {}
    for name, svc in described.items():
        ecs_name = render.service_name(cfg, name)
        if svc is None:
            out.append(ServiceStatus(name, ecs_name, exists=False))
            continue
        view = releases.service_view(name, svc)
        arn = str(view.task_definition or "")
        rev = by_arn.get(arn)
        if rev is None and arn:
            rev = releases.revision_from(clients.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"]))
        if rev is not None:
            running[name] = rev
        deps = svc.get("deployments") or []
        primary: Mapping[str, Any] = next((d for d in deps if d.get("status") == "PRIMARY"), {}) or {}
        newest = max((r for r in revs if r.service == name), key=lambda r: r.number, default=None)
        rolled = ""
        if newest is not None and newest.arn != arn and newest.outcome in (rt.IN_PROGRESS, rt.ROLLED_BACK, rt.FAILED):
            rolled = (f"release {newest.parsed.release} ({newest.label}, {_outcome_text(newest.outcome)}) "
                      f"is not what runs: the service went back to {arn.rsplit('/', 1)[-1]}")
        out.append(ServiceStatus(
            service=name, ecs_service=ecs_name, exists=True,
            release=(rev.parsed.release or "") if rev else "", outcome=rev.outcome if rev else "",
            image_digest=(rev.parsed.image_digest or "") if rev else "",
            image=rev.image if rev else "", git_sha=(rev.parsed.git_sha or "") if rev else "",
            task_definition=arn, revision=rev.number if rev else None,
            running=int(primary.get("runningCount") or 0), desired=int(primary.get("desiredCount") or 0),
            pending=int(primary.get("pendingCount") or 0), rollout_state=str(primary.get("rolloutState") or ""),
            rollout_reason=str(primary.get("rolloutStateReason") or ""),
            deployments=tuple({"id": d.get("id"), "status": d.get("status"),
                               "task_definition": str(d.get("taskDefinition", "")).rsplit("/", 1)[-1],
                               "rollout_state": d.get("rolloutState"), "running": d.get("runningCount"),
                               "desired": d.get("desiredCount"), "failed_tasks": d.get("failedTasks")}
                              for d in deps),
            targets=_target_health(clients, cfg.environment.cluster, svc),
            events=tuple({"at": _iso(e.get("createdAt")), "message": str(e.get("message", ""))}
                         for e in (svc.get("events") or [])[:5]),
            superseded_by_rollback=rolled,
        ))
    known = releases.build([*revs, *(r for r in running.values() if r.arn not in by_arn)], app=cfg.app,
                           env=cfg.env_name)
    return EcsStatus(out, releases.current(known, {n: r.arn for n, r in running.items()}))


def _target_health(clients: Any, cluster: str | None, svc: Mapping[str, Any]) -> dict[str, int] | None:
    """Target states of this service's own tasks (by their awsvpc IPs): a target group shared
    with another environment must not make one environment count the other's targets."""
    from deployctl import rollout

    groups = [lb["targetGroupArn"] for lb in svc.get("loadBalancers") or [] if lb.get("targetGroupArn")]
    if not groups:
        return None
    arns: list[str] = []
    pages = clients.ecs.get_paginator("list_tasks").paginate(cluster=cluster, serviceName=svc.get("serviceName"))
    for page in pages:
        arns += page.get("taskArns", [])
    tasks: list[Any] = []
    for i in range(0, len(arns), 100):  # DescribeTasks takes at most 100
        tasks += clients.ecs.describe_tasks(cluster=cluster, tasks=arns[i:i + 100]).get("tasks", [])
    ips = rollout.task_ips(tasks)
    counts: dict[str, int] = {}
    for arn in groups:
        found = clients.elbv2.describe_target_health(TargetGroupArn=arn).get("TargetHealthDescriptions", [])
        for t in rollout.own_targets(found, ips):
            state = str((t.get("TargetHealth") or {}).get("State", "unknown"))
            counts[state] = counts.get(state, 0) + 1
    return counts


def render_status(cfg: ResolvedConfig, rows: list[ServiceStatus]) -> list[str]:
    lines = [f"{cfg.app}/{cfg.env_name} on cluster {cfg.environment.cluster}"]
    for s in rows:
        if not s.exists:
            lines.append(f"{s.service}: service {s.ecs_service} does not exist (never deployed)")
            continue
        targets = ""
        if s.targets is not None:
            targets = ", targets " + (", ".join(f"{n} {k}" for k, n in sorted(s.targets.items())) or "none")
        lines.append(f"{s.service}: release {s.release or '?'} ({_outcome_text(s.outcome) or 'no tags'}), "
                     f"{s.task_definition.rsplit('/', 1)[-1]}, {_short(s.image_digest)}")
        lines.append(f"  running {s.running}/{s.desired} (pending {s.pending}), rollout "
                     f"{(s.rollout_state or '?').lower()}{targets}"
                     + (f" — {s.rollout_reason}" if s.rollout_reason else ""))
        if len(s.deployments) > 1:
            for d in s.deployments:
                lines.append(f"  deployment {d['id']}: {str(d['status']).lower()} {d['task_definition']} "
                             f"{str(d['rollout_state']).lower()} {d['running']}/{d['desired']}")
        if s.superseded_by_rollback:
            lines.append(f"  {s.superseded_by_rollback}")
        for e in s.events:
            lines.append(f"  {e['at'][:19]}  {e['message']}")
    return lines


def status(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    watch: bool = typer.Option(False, "--watch", "-w",
                               help="Refresh until every service's rollout is COMPLETED (exit 0) or "
                                    "FAILED/rolled back (exit 1)."),
    interval: float = typer.Option(5.0, "--interval", min=0.01, help="Seconds between refreshes with --watch."),
    timeout: str | None = typer.Option(None, "--timeout", metavar="DURATION",
                                       help="Give up watching after this long (exit 1)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Per service: running release, image digest, task definition revision, running/desired,
    rollout state, target health and the last 5 events.

    JSON (schema deployctl.status/v1, the same keys for every target; docs/cli.md "--json output"):
    {schema, app, env, target, cluster, settled, ok, current, services: [...]}.

    Examples:  deployctl status --env staging
               deployctl status --env prod --watch --interval 2
    """
    cfg = load(file, env)
    if cfg.environment.target == "docker":
        _docker_status(cfg, as_json, watch=watch, interval=interval, timeout=timeout)
        return
    clients = _clients(cfg)

    def snapshot() -> EcsStatus:
        with _errors(f"reading the status of {env}"):
            return read_status(clients, cfg)

    def as_doc(st: EcsStatus) -> dict[str, Any]:
        cur = st.current
        return status_doc(app=cfg.app, env=env, target="ecs", cluster=cfg.environment.cluster,
                          settled=st.settled, ok=st.ok,
                          current=status_current_doc(
                              id=cur.id, outcome=cur.outcome, kind=cur.kind, git_sha=cur.git_sha or None,
                              image_digest=cur.image_digest or None, started_at=cur.started_at or None,
                              finished_at=cur.finished_at or None) if cur else None,
                          services=[s.to_json() for s in st.services])

    if not watch:
        st = snapshot()
        if as_json:
            print_json(as_doc(st))
        else:
            typer.echo("\n".join(render_status(cfg, st.services)))
        return
    from deployctl.errors import DeployFailed

    limit = parse_lock_wait(timeout) if timeout else None
    st, settled = _watch(cfg, snapshot, interval, limit, as_json)
    rows = st.services
    if as_json:
        # Always the document, a timed-out watch included (settled: false): CI reads stdout.
        print_json(as_doc(st))
    if not settled:
        raise DeployFailed(f"{env}: rollouts still not settled after {limit:g}s",
                           hint=f"keep watching with `deployctl status --env {env} --watch`")
    bad = [s for s in rows if not s.ok]
    if bad:
        raise DeployFailed(f"{env}: " + "; ".join(
            f"{s.service} " + (s.superseded_by_rollback or f"rollout {(s.rollout_state or 'unknown').lower()}"
                               + (f" ({s.rollout_reason})" if s.rollout_reason else ""))
            for s in bad))
    if not as_json:
        typer.echo(f"{cfg.app}/{env}: every rollout completed")


def _watch(cfg: ResolvedConfig, snapshot: Callable[[], EcsStatus], interval: float,
           limit: float | None, as_json: bool) -> tuple[EcsStatus, bool]:
    """Refresh until every rollout settled or `limit` seconds passed: (last status, settled)."""
    from deployctl.ui import _is_tty

    started = time.monotonic()
    stream = sys.stderr if as_json else sys.stdout
    live = None
    if _is_tty(stream):
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        live = Live(Text(""), console=Console(file=stream), refresh_per_second=4, transient=False)
        live.start()
    last: list[str] = []
    try:
        while True:
            st = snapshot()
            lines = render_status(cfg, st.services)
            if live is not None:
                from rich.text import Text

                live.update(Text("\n".join(lines)))
            elif lines != last:
                print("\n".join(lines), file=stream, flush=True)
            last = lines
            if st.settled:
                return st, True
            if limit is not None and time.monotonic() - started > limit:
                return st, False
            time.sleep(interval)
    finally:
        if live is not None:
            live.stop()


def _docker_status(cfg: ResolvedConfig, as_json: bool, *, watch: bool = False, interval: float = 5.0,
                   timeout: str | None = None) -> None:
    """`status` of a local environment: a report (exit 0) without --watch; with --watch the same
    verdict as for ECS: exit 0 once settled and ok, 1 if not ok or still not settled at --timeout."""
    from deployctl.errors import DeployFailed
    from deployctl.targets import docker

    limit = parse_lock_wait(timeout) if watch and timeout else None
    stream = sys.stderr if as_json else sys.stdout
    started = time.monotonic()
    last: list[str] = []
    while True:
        st = docker.status(cfg)
        doc = docker_status_doc(st)
        lines = render_docker_status(st, doc)
        if not watch:
            if as_json:
                print_json(doc)
            else:
                typer.echo("\n".join(lines))
            return
        if lines != last:
            print("\n".join(lines), file=stream, flush=True)
        last = lines
        if doc["settled"] or (limit is not None and time.monotonic() - started > limit):
            break
        time.sleep(interval)
    if as_json:
        print_json(doc)  # always the document, a timed-out watch included (settled: false)
    env = cfg.env_name
    if not doc["settled"]:
        raise DeployFailed(f"{env}: still not settled after {limit:g}s", hint=f"keep watching with "
                           f"`deployctl status --env {env} --watch`")
    if not doc["ok"]:
        problems = [p for p in (_docker_problem(svc) for svc in doc["services"]) if p]
        raise DeployFailed(f"{env}: " + ("; ".join(problems) or "not every service is ok"))
    if not as_json:
        typer.echo(f"{cfg.app}/{env}: every service runs its newest release, healthy")


def _docker_problem(svc: Mapping[str, Any]) -> str:
    """Why one service of deployctl.status/v1 (local target) is not ok, "" when it is."""
    name = svc["service"]
    if svc["rolled_back"]:
        return f"{name}: {svc['rolled_back']}"
    if not svc["exists"]:
        return f"{name}: never deployed"
    if not svc["release"]:
        return f"{name}: no release serves (" + ", ".join(_container_words(c) for c in svc["containers"]) + ")"
    if svc["outcome"] != "succeeded":
        return f"{name}: release {svc['release']} is {svc['outcome'] or 'unrecorded'}"
    restarted = [c for c in svc["containers"] if c.get("restarts") and c["release"] == svc["release"]]
    if (svc["healthy"] or 0) < svc["desired"] or restarted:
        return f"{name}: {svc['healthy']}/{svc['desired']} healthy (" + ", ".join(
            _container_words(c) for c in svc["containers"]) + ")" + (
            "; a container Docker restarted crashed: deploy a fix or roll back" if restarted else "")
    return ""


def _container_words(c: Mapping[str, Any]) -> str:
    words = f"{c['name']} {c['state']}"
    if c.get("exit_code") is not None:
        words += f" (exit code {c['exit_code']})"
    elif c["state"] == "running" and c["health"] not in ("healthy", "none"):
        words += f", {c['health']}"
    if c.get("restarts"):
        words += f", restarted {c['restarts']} time{'s' if c['restarts'] != 1 else ''}"
    return words


def render_docker_status(st: Any, doc: Mapping[str, Any]) -> list[str]:
    """`status` text for the local target: what serves, and what went wrong with the newest release."""
    cur, latest = st.current, st.latest
    head = f"{st.app}/{st.env} on the local Docker engine"
    if cur is not None:
        head += f": release {cur.id} ({cur.outcome})"
    elif latest is not None:
        head += f": no release is serving; the newest, {latest.id}, {_outcome_text(latest.outcome)}"
    else:
        head += ": nothing deployed"
    lines = [head]
    if getattr(st, "deploying", ""):
        lines.append(f"  a deploy is running: {st.deploying}")
    if latest is not None and (cur is None or latest.number > cur.number) and latest.message:
        lines.append(f"  {latest.id}: {latest.message}")
    for s, svc in zip(st.services, doc["services"], strict=True):
        lines.append(f"{s.service}: release {s.release or '-'}, {s.running}/{s.desired} running, "
                     f"{s.healthy} healthy" + (f", {s.url}" if s.url else "")
                     + (f", {_short(s.digest)}" if s.digest else ""))
        for c in svc["containers"]:
            if c["state"] != "running" or c["restarts"] or c["health"] not in ("healthy", "none"):
                lines.append(f"  {_container_words(c)}")
    problems = [p for p in (_docker_problem(svc) for svc in doc["services"]) if p]
    if problems:
        lines.append("not ok: " + "; ".join(problems))
    return lines


def _docker_outcome(outcome: str) -> str:
    """The local target's outcomes in the words of ECS releases ("in progress" → "in-progress")."""
    return outcome.replace(" ", "-")


def docker_status_doc(st: Any) -> dict[str, Any]:
    """deployctl.status/v1 for the local Docker target (a docker.LocalStatus).

    Nothing rolls out in the background locally (a deploy replaces containers under its own
    lock and waits for them), so a service has settled when every running container is of the
    release it serves and none is starting or being restarted; it is ok when as many as desired
    are healthy, none was restarted after a crash, and the newest release is what it serves (a
    failed or rolled-back deploy leaves the older release serving)."""
    from dataclasses import asdict

    latest = st.latest
    services, settled, ok = [], True, True
    for s in st.services:
        exists = bool(s.containers)
        running = [c for c in s.containers if c.state == "running"]
        rolled = ""
        if latest is not None and s.service in latest.services and latest.id != s.release \
                and latest.outcome in ("failed", "interrupted", "rolled-back"):
            rolled = (f"release {latest.id} ({latest.outcome}) is not what runs: the service went back to "
                      f"{s.release or 'nothing'}")
        # Settled: nothing is changing. A rollout (running containers of another release), a
        # container starting or being restarted by Docker is change; a container that exited
        # for good is not (it is not ok, and waiting would not change that).
        svc_settled = all(c.release == s.release and c.health != "starting" for c in running) and not any(
            c.state in ("restarting", "created") for c in s.containers)
        # A restart is a crash Docker covered up: not ok until a deploy or rollback replaces it.
        restarted = any(c.restarts for c in s.containers if c.release == s.release)
        info = next((r for r in (st.current, latest) if r is not None and r.id == s.release), None)
        # A deploy holding the lock may still switch, settle or roll back: nothing is final yet.
        svc_settled = svc_settled and not getattr(st, "deploying", "")
        svc_ok = exists and bool(s.release) and svc_settled and s.healthy >= s.desired and not rolled \
            and not restarted and info is not None and info.outcome == "succeeded"
        settled, ok = settled and svc_settled, ok and svc_ok
        services.append(status_service_doc(
            service=s.service, exists=exists, release=s.release or None,
            outcome=_docker_outcome(info.outcome) if info else None, image_digest=s.digest or None,
            image=s.image or None, git_sha=s.git_sha or None, running=s.running, desired=s.desired,
            healthy=s.healthy, rolled_back=rolled or None, url=s.url or None,
            containers=[asdict(c) for c in s.containers]))
    cur = st.current
    return status_doc(app=st.app, env=st.env, target="docker", cluster=None, settled=settled, ok=ok,
                      current=status_current_doc(
                          id=cur.id, outcome=_docker_outcome(cur.outcome), kind=cur.kind,
                          git_sha=cur.git_sha or None, image_digest=cur.digest or None,
                          started_at=cur.created or None, finished_at=cur.ended or None) if cur else None,
                      services=services)


# ------------------------------------------------------------------------------------------
# unlock
# ------------------------------------------------------------------------------------------


def unlock(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Break the deploy lock of an environment left by a deploy that died.

    Only for a stale lock: a live holder keeps deploying, and another deploy may now start
    alongside it. A dead holder's lock also expires by itself one lease (60 s) after it died.

    Example:  deployctl unlock --env prod
    """
    cfg = load(file, env)
    if cfg.environment.target != "ecs":
        typer.echo(f"{cfg.app}/{env} deploys to the local engine, whose lock is a flock the kernel releases "
                   "when its holder dies: nothing to unlock")
        return
    from deployctl import lock

    table = lock.LockTable(_clients(cfg).client("dynamodb"))
    holder = table.read(lock.lock_key(cfg.app, env))
    if holder is None:
        typer.echo(f"{cfg.app}/{env} is not locked")
        return
    typer.echo(f"warning: {cfg.app}/{env} is locked by {holder.describe()}", err=True)
    typer.echo("warning: if that deploy is still running, breaking its lock lets a second deploy run "
               "alongside it", err=True)
    confirm(f"Break the deploy lock of {cfg.app}/{env}?", yes)
    lock.break_lock(table, holder)
    typer.echo(f"deploy lock of {cfg.app}/{env} broken (it was held by {holder.who}, pid {holder.pid} "
               f"on {holder.host})")


def register(app: typer.Typer) -> None:
    app.command()(promote)
    app.command()(rollback)
    app.command()(status)
    app.command()(history)
    app.command()(unlock)

"""Target `ecs`: the release lifecycle of one environment on ECS Fargate.

Deploys are deployctl.targets.ecs; release reads and the settle write path are
deployctl.targets.ecs_releases; status is deployctl.targets.ecs_status; preview teardown is
deployctl.targets.ecs_preview. This class puts them behind deployctl.targets.base.Target.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from deployctl import lock as locks
from deployctl import preview, releases, releases_tags
from deployctl.adapters import aws, ecs_gateway
from deployctl.adapters.git import GitFacts
from deployctl.errors import DeployFailed, UsageError
from deployctl.plan import Plan, make_plan
from deployctl.render.ecs import Facts
from deployctl.rollout import td_label
from deployctl.targets import ecs, ecs_autoscaling, ecs_logs, ecs_preview, ecs_releases, ecs_status
from deployctl.targets.base import (
    FEATURE_COST_CAP,
    FEATURE_DIFF,
    FEATURE_SCALE,
    FEATURE_STACK,
    FEATURE_TASK,
    DeployOptions,
    DeployRunner,
    History,
    LivePreview,
    RollbackChoice,
    StatusView,
)

if TYPE_CHECKING:
    from deployctl import preflight as preflight_checks
    from deployctl.config.model import ResolvedConfig
    from deployctl.redact import Redactor
    from deployctl.targets.log_lines import Request


class EcsTarget:
    name: ClassVar[str] = "ecs"
    needs_ci_role: ClassVar[bool] = True
    unlock_note: ClassVar[str] = ""
    features: ClassVar[frozenset[str]] = frozenset({FEATURE_DIFF, FEATURE_SCALE, FEATURE_TASK, FEATURE_COST_CAP,
                                                    FEATURE_STACK})
    # Preflight (deployctl.preflight) checks the image exists: `run --image` leaves a missing one to it.
    preflight_checks_image: ClassVar[bool] = True

    def __init__(self, cfg: ResolvedConfig, preview: str | None = None) -> None:
        self.cfg = cfg
        self.preview = preview  # a named copy of a `preview: true` environment (base.WithPreviews)
        self._clients: aws.AwsClients | None = None
        # (image ref, its preflight), run by lock()
        self._preflight: tuple[str, preflight_checks.PreflightResult] | None = None

    @property
    def clients(self) -> aws.AwsClients:
        if self._clients is None:
            self._clients = aws.clients(self.cfg.region)
        return self._clients

    # --- logs (base.WithLogs) -------------------------------------------------------------------

    def open_logs(self, req: Request, redactor: Redactor) -> tuple[ecs_logs.Reader, list[str]]:
        found = ecs_logs.sources(self.cfg, self.clients, req)
        return ecs_logs.Reader(self.clients.logs, found, redactor), [s.service for s in found]

    # --- deploy and its lock ------------------------------------------------------------------

    def deploy(self, plan: Plan, image_ref: str, ctx: ecs.StageLog, options: DeployOptions) -> None:
        pre, self._preflight = self._preflight, None
        ecs.deploy(plan, image_ref, ctx, options, pre=pre[1] if pre and pre[0] == image_ref else None)

    @contextlib.contextmanager
    def lock(self, plan: Plan, options: DeployOptions, ctx: Any = None) -> Iterator[Any]:
        # Preflight first: a deploy that cannot work is refused with every problem at once, before
        # it takes the lock (or creates the lock table) and before anything is registered.
        self._preflight = (plan.image_ref, ecs.run_preflight(plan, plan.image_ref, ctx, options))
        with locks.deploy_lock(plan, options, ctx) as holder:
            yield holder

    def lock_holder(self) -> locks.Holder | None:
        return self._lock_table().read(locks.lock_key(self.cfg.app, self.cfg.env_name))

    def break_lock(self, holder: locks.Holder) -> None:
        locks.break_lock(self._lock_table(), holder)

    def _lock_table(self) -> locks.LockTable:
        return locks.LockTable(self.clients.client("dynamodb"))

    # --- reading --------------------------------------------------------------------------------

    def status(self) -> StatusView:
        with aws.aws_errors(f"reading the status of {self.cfg.env_name}"):
            return ecs_status.view(self.cfg, ecs_status.read_status(self.clients, self.cfg, self.preview))

    def history(self, limit: int | None = 20) -> History:
        cfg = self.cfg
        with aws.aws_errors(f"reading the releases of {cfg.env_name}"):
            described = ecs_releases.read_services(self.clients.ecs, cfg, self.preview)
            found = ecs_releases.read_settled_releases(self.clients, cfg, described, per_family=limit,
                                                       preview=self.preview)[:limit]
        running = {n: str(releases.service_view(n, d).task_definition) for n, d in described.items() if d is not None}
        cur = releases.current(found, running)
        return History(tuple(found), cur.id if cur else None)

    def _running(self) -> dict[str, str]:
        return {name: str(releases.service_view(name, d).task_definition)
                for name, d in ecs_releases.read_services(self.clients.ecs, self.cfg, self.preview).items()
                if d is not None}

    # --- rollback -------------------------------------------------------------------------------

    def choose_rollback(self, to: str | None = None, steps: int = 1) -> RollbackChoice:
        cfg, env = self.cfg, self.cfg.env_name
        with aws.aws_errors(f"reading the releases of {env}"):
            described = ecs_releases.read_services(self.clients.ecs, cfg, self.preview)
            running = {name: str(releases.service_view(name, d).task_definition)
                       for name, d in described.items() if d is not None}
            # Settled first, as for status/history/promote: once our release is the newest, a cut-off
            # one shows `interrupted` for good and is never a target again. While a deploy holds the
            # lock nothing is recorded and rollback goes on: the deploy stops at that lock (or waits,
            # --lock-wait) like any deploy.
            found = ecs_releases.read_settled_releases(self.clients, cfg, described, preview=self.preview)
            choice = releases.choose_rollback(env, found, running, to=to, steps=steps)
            active, same = self._inspect(choice)
        if same:
            # The deploy would find nothing to change for these (same definition, another number):
            # leave them out, and say so when nothing is left.
            choice = dataclasses.replace(choice, revisions={n: r for n, r in choice.revisions.items() if n not in same})
            if not choice.revisions:
                labels = ", ".join(f"{td_label(running[n])} = {r.label}" for n, r in sorted(same.items()))
                raise UsageError(f"{env} already runs what release {choice.target.id} deployed: the same task "
                                 f"definitions under other revision numbers ({labels}); nothing to roll back",
                                 hint=f"`deployctl history --env {env}` shows its releases")
        target = choice.target
        now = f"release {choice.current.id}" if choice.current else "no deployctl release"
        summary = [f"rollback {cfg.app}/{env}: {now} → release {target.id} (git {target.git_sha[:12] or '?'}, "
                   f"{target.who or '?'}, {target.started_at or '?'})"]
        for name, before, after in choice.changes():
            rev = choice.revisions[name]
            # Name exactly what goes live: the revision itself while ECS still has it ACTIVE, else a
            # copy registered as a new revision (its number is ECS's to give).
            summary.append(f"  {name}: {before} → {after}" if name in active else
                           f"  {name}: {before} → a new revision of {rev.family}, a copy of {after} "
                           f"({rev.label} is deregistered)")
        return RollbackChoice(current=choice.current, target=target, summary=tuple(summary),
                              question=f"Roll {env} back to release {target.id}?", detail=choice)

    def _inspect(self, choice: releases.RollbackChoice) -> tuple[set[str], dict[str, releases.Revision]]:
        """(services whose revision to run again is still ACTIVE, so it runs as it is; services
        whose revision is the very task definition they run now, under another number)."""
        active: set[str] = set()
        same: dict[str, releases.Revision] = {}
        for name, rev in choice.revisions.items():
            then = ecs_gateway.describe_task_definition(self.clients.ecs, rev.arn, tags=False)
            if then.status == "ACTIVE":
                active.add(name)
            now = choice.running.get(name)
            if now and ecs.same_task_definition(
                    then.definition,
                    ecs_gateway.describe_task_definition(self.clients.ecs, now, tags=False).definition):
                same[name] = rev
        return active, same

    def rollback(self, choice: RollbackChoice, options: DeployOptions, *, run: DeployRunner,
                 log: Callable[[str], None], as_json: bool = False) -> int:
        """The earlier release's task definitions run again as a new release (so history shows
        the rollback), deployed through `run` like any deploy: each revision as it is while ECS has
        it ACTIVE (the release is recorded on it, releases_tags.rerun_key), else registered again,
        unchanged, as a new revision (a deregistered one cannot run)."""
        cfg, env = self.cfg, self.cfg.env_name
        chosen: releases.RollbackChoice = choice.detail
        target = chosen.target
        release_id = releases_tags.new_release_id(git_sha=target.git_sha or None)
        with aws.aws_errors("reading the task definitions to run again"):
            described = {name: ecs_gateway.describe_task_definition(self.clients.ecs, rev.arn)
                         for name, rev in chosen.revisions.items()}
        pinned = {name: releases.register_request(d, release_id=release_id, restores=target.id)
                  for name, d in described.items()}
        reuse = {name: chosen.revisions[name].arn for name, d in described.items() if d.status == "ACTIVE"}
        for name in sorted(set(described) - set(reuse)):
            log(f"{name}: {chosen.revisions[name].label} is deregistered (INACTIVE): it runs again as a copy, "
                "registered as a new revision")
        image = next(iter(chosen.revisions.values())).image
        digest = image.rsplit("@", 1)[-1] if "@" in image else None
        git = GitFacts(sha=target.git_sha or "unknown", branch=f"rollback-{env}")
        plan = make_plan(cfg, git, facts=Facts(git_sha=target.git_sha or None, image_digest=digest,
                                               release_id=release_id, preview_name=self.preview),
                         image_override=image)
        pinned_options = dataclasses.replace(options, task_definitions=pinned, reuse_revisions=reuse,
                                             preview_name=self.preview or options.preview_name)

        def still_as_chosen(ctx: Any) -> None:
            # The target was chosen from what ran before the lock was ours; with --lock-wait another
            # deploy (or rollback) may have changed that meanwhile, and rolling back from a state
            # nobody looked at could undo the wrong release. Refuse before anything changes.
            with aws.aws_errors(f"reading the services of {env} again"):
                now = self._running()
            moved = [f"{name} now runs {td_label(now.get(name))} (was {td_label(was)})"
                     for name, was in sorted(chosen.running.items()) if now.get(name) != was]
            if moved:
                raise DeployFailed(f"{env} changed while this rollback waited for the lock: {'; '.join(moved)}; "
                                   "nothing was changed", hint=f"run `deployctl rollback --env {env}` again to "
                                   "choose from what runs now (`deployctl history` shows it)")

        return run(plan, image, pinned_options, release_id=release_id, before=still_as_chosen)

    # --- promote (this environment as the source, or as the destination) ------------------------

    def promote_source(self) -> releases.PromoteSource:
        """What promote takes from this environment; DeployFailed saying why when it must not."""
        cfg = self.cfg
        with aws.aws_errors(f"reading what {cfg.env_name} runs"):
            described = ecs_releases.read_services(self.clients.ecs, cfg)
            views = [releases.service_view(name, d) for name, d in described.items()]
            found = ecs_releases.read_settled_releases(self.clients, cfg, described)
        return releases.promotable(cfg.env_name, found, views)

    def tag_release(self, release_id: str | None, tags: dict[str, str], log: Callable[[str], None]) -> None:
        """Add `tags` to the revisions release `release_id` registered (where a promotion came from)."""
        ecs_releases.tag_release(self.clients.ecs, self.cfg, release_id, tags, log)

    # --- the rest of the lifecycle --------------------------------------------------------------

    def previews(self) -> list[LivePreview]:
        with aws.aws_errors(f"listing the previews of {self.cfg.env_name}"):
            return ecs_preview.live_previews(self.clients.ecs, self.cfg)

    def teardown(self, name: str, *, dry_run: bool = False) -> ecs_preview.DestroyReport:
        with aws.aws_errors(f"destroying preview {name}"):
            return ecs_preview.destroy_preview(self.clients.ecs, self.cfg, name, dry_run=dry_run,
                                               scaling=self.clients.client(ecs_autoscaling.CLIENT))

    def teardown_question(self, name: str) -> str:
        return (f"Remove preview '{name}' from cluster {self.cfg.environment.cluster}: delete "
                f"{', '.join(preview.service_names(self.cfg, name))} and deregister their task definitions?")

    def secret_values(self, environ: Mapping[str, str]) -> list[str]:
        return []  # ECS secrets stay in Secrets Manager/SSM: the run never holds their values

    def cost_line(self, plan: Plan) -> str:
        cost = plan.cost
        text = f"estimated Fargate cost: ${cost.monthly_usd:,.2f}/month for {cost.tasks} task(s)"
        if cost.monthly_usd_max != cost.monthly_usd:
            text += f", up to ${cost.monthly_usd_max:,.2f}/month at autoscaling max"
        return text + f" (on-demand {cost.price_region} prices of {cost.price_date})"

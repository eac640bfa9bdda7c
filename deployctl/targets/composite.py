"""An environment of several targets: its own (the backend) plus companions (the frontend, …).

A companion is made for a section of deploy.yaml (deployctl.config.target_names.COMPANIONS,
e.g. `frontend:` → the Vercel frontend) and follows the environment's target through the whole
lifecycle, in order: its checks run before anything changes; it deploys after the backend is
healthy (so it can be given the backend's URL); promote and rollback move both halves in the
same deploy stage, under the backend's lock; status, history and destroy show and remove both.
Commands and use cases see one Target and never ask what it is made of.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from deployctl.config.model import ResolvedConfig
from deployctl.config.target_names import COMPANIONS
from deployctl.errors import DeployFailed
from deployctl.plan import Plan
from deployctl.targets.base import (
    DeployOptions,
    DeployRunner,
    DestroyReport,
    History,
    Promotable,
    RollbackChoice,
    StatusView,
    Target,
)
from deployctl.targets.vercel_target import RollbackPick, VercelFrontend

if TYPE_CHECKING:
    from deployctl.adapters.lock_table import Holder
    from deployctl.pipeline import StageContext


@dataclass(frozen=True)
class _Detail:
    primary: RollbackChoice
    picks: Mapping[str, RollbackPick]


class Composite:
    """The environment's target with its companions; implements deployctl.targets.base.Target."""

    # The primary's, set on the class compose() makes for it (the protocol has them as ClassVars).
    name: ClassVar[str] = ""
    needs_ci_role: ClassVar[bool] = False
    unlock_note: ClassVar[str] = ""

    def __init__(self, primary: Target, companions: list[VercelFrontend]) -> None:
        self.primary, self.companions = primary, companions
        self.cfg: ResolvedConfig = primary.cfg
        self._picks: Mapping[str, RollbackPick] | None = None  # set while a rollback deploys

    # --- deploy -------------------------------------------------------------------------------

    def deploy(self, plan: Plan, image_ref: str, ctx: StageContext, options: DeployOptions) -> None:
        picks, source = self._picks, self.cfg.environment.promote_from
        building = picks is None and not source
        for c in self.companions:
            c.prepare(options.project_dir, building=building)
        if source and picks is None:
            # A promotion: what the source built against this image must exist before anything moves.
            digest = image_ref.rsplit("@", 1)[-1]
            for c in self.companions:
                c.promote_check(digest, source)
        self.primary.deploy(plan, image_ref, ctx, options)
        for c in self.companions:
            if picks is not None:
                c.rollback(ctx, picks[c.label])
            elif source:
                c.promote(ctx, image_ref.rsplit("@", 1)[-1], source)
            else:
                c.deploy(ctx, git_sha=plan.git.sha, preview_name=options.preview_name, force=options.force)

    def lock(self, plan: Plan, options: DeployOptions,
             ctx: StageContext | None = None) -> contextlib.AbstractContextManager[object]:
        return self.primary.lock(plan, options, ctx)

    def lock_holder(self) -> Holder | None:
        return self.primary.lock_holder()

    def break_lock(self, holder: Holder) -> None:
        self.primary.break_lock(holder)

    # --- reading ------------------------------------------------------------------------------

    def status(self) -> StatusView:
        view = self.primary.status()
        current = view.doc.get("current") or {}
        digest = current.get("image_digest") if isinstance(current, Mapping) else None
        doc, lines, problems = dict(view.doc), list(view.lines), list(view.problems)
        settled, ok = view.settled, view.ok
        for c in self.companions:
            part = c.status(digest)
            doc[c.label] = part.doc
            lines += part.lines
            problems += part.problems
            settled, ok = settled and part.settled, ok and part.ok
        doc["settled"], doc["ok"] = settled, ok
        return replace(view, doc=doc, lines=tuple(lines), problems=tuple(problems))

    def history(self, limit: int | None = 20) -> History:
        found = self.primary.history(limit)
        attached: dict[str, dict[str, Any]] = {r.id: dict(found.attached.get(r.id, {})) for r in found.releases}
        for c in self.companions:
            for rid, part in c.attach(found.releases).items():
                attached.setdefault(rid, {}).update(part)
        return replace(found, attached=attached)

    # --- rollback -----------------------------------------------------------------------------

    def choose_rollback(self, to: str | None = None, steps: int = 1) -> RollbackChoice:
        choice = self.primary.choose_rollback(to, steps)
        digest = choice.current.image_digest if choice.current is not None else None
        picks = {c.label: c.choose_rollback(choice.target, digest) for c in self.companions}
        summary = (*choice.summary, *(p.summary() for p in picks.values()))
        return replace(choice, summary=summary, detail=_Detail(choice, picks))

    def rollback(self, choice: RollbackChoice, options: DeployOptions, *, run: DeployRunner,
                 log: Callable[[str], None], as_json: bool = False) -> int:
        detail: _Detail = choice.detail
        self._picks = detail.picks
        try:
            return self.primary.rollback(detail.primary, options, run=run, log=log, as_json=as_json)
        finally:
            self._picks = None

    # --- the rest -----------------------------------------------------------------------------

    def teardown(self, name: str, *, dry_run: bool = False) -> DestroyReport:
        report = self.primary.teardown(name, dry_run=dry_run)
        for c in self.companions:
            report.others_deleted.extend(c.teardown(name, dry_run=dry_run))
        return report

    def teardown_question(self, name: str) -> str:
        question = self.primary.teardown_question(name)
        labels = " and ".join(c.label for c in self.companions)
        return f"{question.rstrip('?')}, and its {labels} deployments?"

    def secret_values(self, environ: Mapping[str, str]) -> list[str]:
        return [*self.primary.secret_values(environ), *(v for c in self.companions for v in c.secret_values(environ))]

    def cost_line(self, plan: Plan) -> str:
        return self.primary.cost_line(plan)


class PromotableComposite(Composite):
    """A composite whose own target promotes (Promotable): the companions follow the promotion."""

    def check_promotion(self, source_env: str, digest: str, *, allow_frontend_api_url_mismatch: bool = False) -> None:
        """As the destination of a promotion, before anything moves: each companion can take
        what `source_env` built against `digest` (raises why not)."""
        for c in self.companions:
            c.promote_check(digest, source_env, allow_api_url_mismatch=allow_frontend_api_url_mismatch)

    def promote_source(self) -> Any:
        chosen = self.primary.promote_source()  # type: ignore[attr-defined]
        for c in self.companions:
            c.source_deployment(chosen.digest)  # refuses (nothing changed) when the half is missing
        return chosen

    def tag_release(self, release_id: str | None, tags: dict[str, str], log: Callable[[str], None]) -> None:
        self.primary.tag_release(release_id, tags, log)  # type: ignore[attr-defined]


def companion_class(entry: str) -> type[Any]:
    module_name, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]


def compose(primary: Target, cfg: ResolvedConfig) -> Target:
    """`primary` alone, or with the companions deploy.yaml configures for this environment."""
    companions = [companion_class(entry)(cfg) for section, entry in COMPANIONS.items()
                  if getattr(cfg, section, None) is not None]
    if not companions:
        return primary
    if cfg.environment.preview and cfg.frontend is not None and cfg.frontend.production:
        raise DeployFailed(f"{cfg.env_name} is a preview environment and its frontend is Vercel production",
                           hint=f"set frontend.production: false for {cfg.env_name} in deploy.yaml")
    base = PromotableComposite if isinstance(primary, Promotable) else Composite
    cls = type(f"{type(primary).__name__}With{''.join(type(c).__name__ for c in companions)}", (base,),
               {"name": primary.name, "needs_ci_role": primary.needs_ci_role, "unlock_note": primary.unlock_note})
    return cls(primary, companions)  # type: ignore[no-any-return]

"""A deploy target that keeps its releases in memory: the smallest complete implementation of
deployctl.targets.base.Target.

It exists to prove the protocol: registered with one entry in deployctl.targets.TARGETS, it
is driven through the real `run`, `status`, `history` and `rollback` commands, which know
nothing about it. A release "becomes healthy" unless its image reference is in `UNHEALTHY`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from deployctl.adapters.git import GitFacts
from deployctl.config.model import ResolvedConfig
from deployctl.errors import DeployFailed, UsageError
from deployctl.plan import Plan, make_plan
from deployctl.releases import DEPLOY, ROLLBACK, LiveState, Release, choose
from deployctl.render.ecs import Facts
from deployctl.render.status_doc import status_current_doc, status_doc, status_service_doc
from deployctl.targets.base import (
    DeployOptions,
    DeployRunner,
    DestroyReport,
    History,
    RollbackChoice,
    StatusView,
)

ENTRY = "tests.support.memory_target:MemoryTarget"  # its registry entry


@dataclass
class Store:
    """What the platform would hold: every release of every app/env, newest last."""

    releases: dict[tuple[str, str], list[Release]] = field(default_factory=dict)
    unhealthy: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, cfg: ResolvedConfig) -> list[Release]:
        return self.releases.setdefault((cfg.app, cfg.env_name), [])


STORE = Store()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MemoryTarget:
    name: ClassVar[str] = "memory"
    needs_ci_role: ClassVar[bool] = False
    unlock_note: ClassVar[str] = ""
    features: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, cfg: ResolvedConfig) -> None:
        self.cfg = cfg
        self._restores: str = ""  # set by rollback for the deploy it runs

    # --- deploy ---------------------------------------------------------------------------------

    def deploy(self, plan: Plan, image_ref: str, ctx: Any, options: DeployOptions) -> None:
        found = STORE.of(self.cfg)
        rid = ctx.outputs.get("release") or f"m{len(found) + 1}"
        ctx.outputs["release"] = rid
        healthy = image_ref not in STORE.unhealthy
        release = Release(
            id=rid, app=self.cfg.app, env=self.cfg.env_name, outcome="succeeded" if healthy else "failed",
            git_sha=plan.git.sha, image_digest=image_ref.rsplit("@", 1)[-1], image=image_ref, who="tester",
            started_at=_now(), finished_at=_now(), duration_s=0.0, kind=ROLLBACK if self._restores else DEPLOY,
            source=self._restores, services=tuple(s.name for s in plan.services), number=len(found) + 1)
        found.append(release)
        ctx.log(f"release {rid}: {image_ref} {'is healthy' if healthy else 'did not become healthy'}")
        if not healthy:
            raise DeployFailed(f"release {rid} did not become healthy; the previous release keeps serving")

    @contextlib.contextmanager
    def lock(self, plan: Plan, options: DeployOptions, ctx: Any = None) -> Iterator[None]:
        with STORE.lock:
            yield

    def lock_holder(self) -> None:
        return None

    def break_lock(self, holder: Any) -> None:
        raise UsageError("nothing to break")

    # --- reading --------------------------------------------------------------------------------

    def _current(self) -> Release | None:
        return next((r for r in reversed(STORE.of(self.cfg)) if r.succeeded), None)

    def status(self) -> StatusView:
        cur, found = self._current(), STORE.of(self.cfg)
        latest = found[-1] if found else None
        services = []
        for name in self.cfg.services:
            rolled = f"release {latest.id} ({latest.outcome}) is not what runs" if latest and cur and \
                latest.id != cur.id else None
            services.append(status_service_doc(
                service=name, exists=cur is not None, release=cur.id if cur else None,
                outcome=cur.outcome if cur else None, image_digest=cur.image_digest if cur else None,
                image=cur.image if cur else None, git_sha=cur.git_sha if cur else None,
                running=1 if cur else 0, desired=1, healthy=1 if cur else 0, rolled_back=rolled))
        ok = cur is not None and all(not s["rolled_back"] for s in services)
        doc = status_doc(app=self.cfg.app, env=self.cfg.env_name, target=self.name, cluster=None, settled=True,
                         ok=ok, current=status_current_doc(
                             id=cur.id, outcome=cur.outcome, kind=cur.kind, git_sha=cur.git_sha,
                             image_digest=cur.image_digest, started_at=cur.started_at,
                             finished_at=cur.finished_at) if cur else None,
                         services=services)
        lines = [f"{self.cfg.app}/{self.cfg.env_name} in memory: " + (f"release {cur.id}" if cur else "nothing")]
        lines += [f"{s['service']}: release {s['release'] or '-'}" for s in services]
        problems = tuple(f"{s['service']}: {s['rolled_back'] or 'never deployed'}" for s in services
                         if s["rolled_back"] or not s["exists"])
        return StatusView(doc=doc, lines=tuple(lines), problems=problems,
                          done=f"{self.cfg.app}/{self.cfg.env_name}: in memory, healthy")

    def history(self, limit: int | None = 20) -> History:
        found = list(reversed(STORE.of(self.cfg)))[:limit]
        cur = self._current()
        return History(tuple(found), cur.id if cur else None)

    # --- rollback -------------------------------------------------------------------------------

    def choose_rollback(self, to: str | None = None, steps: int = 1) -> RollbackChoice:
        # The one chooser of every target; what is particular to this one (a release is its
        # image) is data.
        found = list(reversed(STORE.of(self.cfg)))
        cur = self._current()
        live = LiveState(where=self.cfg.env_name, env=self.cfg.env_name, current=cur,
                         images={r.id: {"image": r.image} for r in found},
                         running={"image": cur.image} if cur else {}, nothing="nothing is in memory")
        target = choose(found, live, to=to, steps=steps)
        return RollbackChoice(current=cur, target=target,
                              summary=(f"rollback {self.cfg.env_name}: {cur.id if cur else '-'} → {target.id}",),
                              question=f"Roll back to {target.id}?")

    def rollback(self, choice: RollbackChoice, options: DeployOptions, *, run: DeployRunner,
                 log: Callable[[str], None], as_json: bool = False) -> int:
        target = choice.target
        plan = make_plan(self.cfg, GitFacts(sha=target.git_sha, branch="rollback"),
                         facts=Facts(git_sha=target.git_sha, image_digest=target.image_digest),
                         image_override=target.image)
        self._restores = target.id
        try:
            return run(plan, target.image, options)
        finally:
            self._restores = ""

    # --- the rest -------------------------------------------------------------------------------

    def teardown(self, name: str, *, dry_run: bool = False) -> DestroyReport:
        removed = STORE.releases.get((self.cfg.app, f"{self.cfg.env_name}/{name}"), [])
        report = DestroyReport(env=self.cfg.env_name, name=name, cluster=None, dry_run=dry_run,
                               services_deleted=sorted({s for r in removed for s in r.services}))
        if not dry_run:
            STORE.releases.pop((self.cfg.app, f"{self.cfg.env_name}/{name}"), None)
        return report

    def teardown_question(self, name: str) -> str:
        return f"Forget preview {name}?"

    def secret_values(self, environ: Mapping[str, str]) -> list[str]:
        return []

    def cost_line(self, plan: Plan) -> str:
        return "cost: nothing, it is all in memory"


def reset() -> None:
    STORE.releases.clear()
    STORE.unhealthy.clear()

"""Target `docker`: the release lifecycle of one environment on the local Docker engine.

Deploys, rollbacks and release records are deployctl.targets.docker; status documents are
deployctl.targets.docker_status. This class puts them behind deployctl.targets.base.Target.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from deployctl.errors import UsageError
from deployctl.targets import docker, docker_logs, docker_preflight, docker_status, log_lines
from deployctl.targets.base import DeployOptions, DeployRunner, DestroyReport, History, RollbackChoice, StatusView

if TYPE_CHECKING:
    from deployctl.adapters.lock_table import Holder
    from deployctl.config.model import ResolvedConfig
    from deployctl.pipeline import StageContext
    from deployctl.plan import Plan
    from deployctl.redact import Redactor


class DockerTarget:
    name: ClassVar[str] = "docker"
    needs_ci_role: ClassVar[bool] = False
    unlock_note: ClassVar[str] = ("deploys to the local engine, whose lock is a flock the kernel releases "
                                  "when its holder dies: nothing to unlock")
    features: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, cfg: ResolvedConfig) -> None:
        self.cfg = cfg

    def deploy(self, plan: Plan, image_ref: str, ctx: StageContext, options: DeployOptions) -> None:
        docker.deploy(plan, image_ref, ctx, options)

    def open_logs(self, req: log_lines.Request, redactor: Redactor) -> tuple[docker_logs.LocalReader, list[str]]:
        """base.WithLogs: the output of the environment's service containers."""
        from deployctl.adapters import engine  # lazy: the docker SDK stays off validate and plan

        names = log_lines.pick_services(self.cfg, req.service)
        reader = docker_logs.LocalReader(engine.connect(), self.cfg.app, self.cfg.env_name, names,
                                         release=req.release, redactor=redactor)
        reader.check()
        return reader, names

    @contextlib.contextmanager
    def lock(self, plan: Plan, options: DeployOptions, ctx: StageContext | None = None) -> Iterator[None]:
        yield  # the deploy itself takes the environment's flock (docker._env_lock), rollback too

    def lock_holder(self) -> None:
        return None

    def break_lock(self, holder: Holder) -> None:
        raise UsageError(f"{self.cfg.app}/{self.cfg.env_name} {self.unlock_note}")

    def status(self) -> StatusView:
        return docker_status.view(docker.status(self.cfg))

    def history(self, limit: int | None = 20) -> History:
        found = docker.history(self.cfg, limit=limit)
        return History(tuple(found), next((r.id for r in found if r.current), None))

    def choose_rollback(self, to: str | None = None, steps: int = 1) -> RollbackChoice:
        cfg = self.cfg
        choice = docker.plan_rollback(cfg, to, steps)
        now = (choice.current.id if choice.current else
               f"{choice.deployed.id} (failing)" if choice.deployed else "nothing")
        t = choice.target
        line = f"rollback {cfg.app}/{cfg.env_name} (local): {now} → {t.id} (git {t.git_sha[:12]}, {t.image})"
        return RollbackChoice(current=choice.current, target=t, summary=(line,),
                              question=f"Roll {cfg.env_name} back to {t.id}?", detail=choice)

    def rollback(self, choice: RollbackChoice, options: DeployOptions, *, run: DeployRunner,
                 log: Callable[[str], None], as_json: bool = False) -> int:
        """The earlier release's image, with the same health-gated switch as a deploy (outside
        the stage engine: its progress goes straight to `log`)."""
        cfg = self.cfg
        release = docker.rollback(cfg, choice=choice.detail, log=log, timeout=options.effective_timeout(cfg),
                                  drain=options.drain, lock_wait=options.lock_wait)
        log(f"{cfg.app}/{cfg.env_name} now runs {release.id} (rollback to {choice.target.id})")
        return 0

    def preflight_before_stages(self, plan: Plan, selected: tuple[str, ...], root: Path,
                                log: Callable[[str], None]) -> None:
        """Before any stage of a `run` that deploys here (docker_preflight): every problem at once,
        nothing changed. A run that does not deploy keeps its lean path (no engine needed when
        the registry already has the image)."""
        if "deploy" not in selected:
            return
        from deployctl.adapters import engine  # lazy: the docker SDK stays off validate, plan and lean runs

        cfg = self.cfg
        docker_preflight.check(cfg, builds="build" in selected, deploys=True, image_ref=plan.image_ref,
                               context_dir=root / cfg.image.context, environ=os.environ,
                               connect=lambda: engine.connect(timeout=10), log=log)

    def plan_down(self, images: bool) -> docker.DownPlan:
        return docker.plan_down(self.cfg, images=images)

    def down(self, plan: docker.DownPlan, log: Callable[[str], None]) -> docker.DownReport:
        return docker.down(self.cfg, plan, log=log)

    def teardown(self, name: str, *, dry_run: bool = False) -> DestroyReport:
        raise UsageError(f"environment '{self.cfg.env_name}' deploys to the local Docker engine, which has no "
                         "previews to destroy", hint="previews need target: ecs; `deployctl down --env "
                         f"{self.cfg.env_name}` takes this local environment down")

    def teardown_question(self, name: str) -> str:
        return f"Remove preview '{name}'?"

    def secret_values(self, environ: Mapping[str, str]) -> list[str]:
        # The services' secrets come from the same environment lint and test inherit: a command
        # printing one must already see it masked.
        return docker.local_secret_values(self.cfg, environ)

    def cost_line(self, plan: Plan) -> str:
        # A dev plan is not an ECS plan: no Fargate figure for services that never run there.
        return "cost: local Docker engine, no cloud charges"

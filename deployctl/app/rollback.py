"""The `rollback` use case: choose an earlier succeeded release, then deploy it again."""

from __future__ import annotations

from collections.abc import Callable

from deployctl.app import previews
from deployctl.config.model import ResolvedConfig
from deployctl.targets import DeployOptions
from deployctl.targets.base import DeployRunner, RollbackChoice, Target


def choose(cfg: ResolvedConfig, *, to: str | None, steps: int,
           name: str | None = None) -> tuple[Target, RollbackChoice]:
    """What rollback would deploy (in preview copy `name`, for a preview environment); UsageError
    (exit 2, nothing changed) when there is none."""
    if name is None and cfg.environment.preview:
        raise previews.name_required(cfg, "rollback")
    target = previews.target_for(cfg, name)
    return target, target.choose_rollback(to, steps)


def execute(target: Target, choice: RollbackChoice, options: DeployOptions, *, run: DeployRunner,
            log: Callable[[str], None], as_json: bool = False) -> int:
    """Deploy the chosen release again; the exit code (0 ok, 1 failed, 130 interrupted)."""
    return target.rollback(choice, options, run=run, log=log, as_json=as_json)

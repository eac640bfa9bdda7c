"""The `rollback` use case: choose an earlier succeeded release, then deploy it again."""

from __future__ import annotations

from collections.abc import Callable

from deployctl.config.model import ResolvedConfig
from deployctl.targets import DeployOptions, for_config
from deployctl.targets.base import DeployRunner, RollbackChoice, Target


def choose(cfg: ResolvedConfig, *, to: str | None, steps: int) -> tuple[Target, RollbackChoice]:
    """What rollback would deploy; UsageError (exit 2, nothing changed) when there is none."""
    target = for_config(cfg)
    return target, target.choose_rollback(to, steps)


def execute(target: Target, choice: RollbackChoice, options: DeployOptions, *, run: DeployRunner,
            log: Callable[[str], None], as_json: bool = False) -> int:
    """Deploy the chosen release again; the exit code (0 ok, 1 failed, 130 interrupted)."""
    return target.rollback(choice, options, run=run, log=log, as_json=as_json)

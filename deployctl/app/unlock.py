"""The `unlock` use case: find, and break, a deploy lock left by a deploy that died."""

from __future__ import annotations

from deployctl.adapters.lock_table import Holder
from deployctl.config.model import ResolvedConfig
from deployctl.targets import for_config
from deployctl.targets.base import Target


def holder(cfg: ResolvedConfig) -> tuple[Target, Holder | None]:
    """The environment's target and who holds its deploy lock (None: nobody)."""
    target = for_config(cfg)
    return target, (None if target.unlock_note else target.lock_holder())


def break_lock(target: Target, found: Holder) -> None:
    target.break_lock(found)

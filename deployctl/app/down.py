"""The `down` use case: take a local environment off this machine (containers, proxies,
networks; its images only when asked). Plan first, so the command can show it and confirm."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from deployctl.config.model import ResolvedConfig
from deployctl.errors import UsageError
from deployctl.targets import for_config


@runtime_checkable
class LocalTeardown(Protocol):
    """A target whose environments run on this machine and can be taken down whole."""

    def plan_down(self, images: bool) -> Any: ...

    def down(self, plan: Any, log: Callable[[str], None]) -> Any: ...


def prepare(cfg: ResolvedConfig, *, images: bool) -> tuple[LocalTeardown, Any]:
    """The target and what `down` would remove; UsageError for an environment that is not local."""
    target = for_config(cfg)
    if not isinstance(target, LocalTeardown):
        raise UsageError(
            f"environment '{cfg.env_name}' deploys to {getattr(target, 'name', 'a remote target')}; `down` "
            "takes down environments on this machine (target: docker) and nothing else",
            hint="a preview copy on ECS is removed with `deployctl destroy --env ENV --name NAME`")
    return target, target.plan_down(images)


def down(target: LocalTeardown, plan: Any, log: Callable[[str], None]) -> Any:
    return target.down(plan, log)

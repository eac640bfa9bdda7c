"""Deploy targets: loading them from the registry. A target is one module with one class
implementing deployctl.targets.base.Target, and one entry in deployctl.config.target_names.

The registry names classes as "module:Class" and imports a target only when an environment
uses it: `deployctl --help` and `validate` never load boto3 or the docker SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from deployctl.config.target_names import COMPANIONS, TARGETS
from deployctl.errors import DeployFailed
from deployctl.targets.base import DeployOptions, Target

if TYPE_CHECKING:
    from deployctl.config.model import ResolvedConfig

__all__ = ["TARGETS", "DeployOptions", "Target", "for_config", "supports", "target_class"]


def target_class(name: str) -> type[Target]:
    """The class implementing target `name`; DeployFailed (exit 1) if it is not available."""
    entry = TARGETS.get(name)
    if entry is None:
        raise DeployFailed(f"unknown deploy target {name!r}", hint=f"known targets: {', '.join(TARGETS)}")
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise DeployFailed(f"the {name} deploy target is not available in this deployctl "
                           f"({module_name} is missing)",
                           hint="run the other stages with `--skip deploy`, or install a deployctl with "
                                f"the {name} target") from None
    cls = getattr(module, attr, None)
    if not isinstance(cls, type) or not callable(getattr(cls, "deploy", None)):
        raise DeployFailed(f"{entry} is not a deploy target class")
    return cls


def for_config(cfg: ResolvedConfig, preview: str | None = None) -> Target:
    """The target of cfg's environment, made for it (for its preview copy `preview`, if given:
    only targets with previews, deployctl.targets.base.WithPreviews, take one); with the
    companions its deploy.yaml sections configure (a `frontend:` on Vercel), one composite
    target (deployctl.targets.composite)."""
    cls = target_class(cfg.environment.target)
    primary = cls(cfg, preview=preview) if preview is not None else cls(cfg)  # type: ignore[call-arg]
    if not any(getattr(cfg, section, None) is not None for section in COMPANIONS):
        return primary
    from deployctl.targets.composite import compose  # lazy: environments without companions never load it

    return compose(primary, cfg)


def supports(cfg: ResolvedConfig, feature: str) -> bool:
    """Whether cfg's target does `feature` (one of deployctl.targets.base.FEATURE_*). Loads the
    target's class only, makes nothing: a use case asks this instead of which target it is."""
    return feature in getattr(target_class(cfg.environment.target), "features", frozenset())

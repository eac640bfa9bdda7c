"""The `destroy` use case: tear down one named preview of an environment with `preview: true`."""

from __future__ import annotations

from deployctl import preview
from deployctl.config.model import ResolvedConfig
from deployctl.errors import UsageError
from deployctl.targets import for_config
from deployctl.targets.base import DestroyReport, Target


def prepare(cfg: ResolvedConfig, name: str) -> tuple[Target, str]:
    """The target and the checked preview name; UsageError for an environment without previews."""
    env = cfg.env_name
    if not cfg.environment.preview:
        raise UsageError(f"refusing to destroy in '{env}': it is not a preview environment",
                         hint="destroy only removes named previews of an environment with `preview: true`")
    return for_config(cfg), preview.check_name(cfg, name) or name


def destroy(target: Target, name: str, *, dry_run: bool) -> DestroyReport:
    return target.teardown(name, dry_run=dry_run)

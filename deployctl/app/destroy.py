"""The `destroy` use case: tear down one named preview of an environment with `preview: true`."""

from __future__ import annotations

from deployctl import preview
from deployctl.app.down import LocalTeardown
from deployctl.config.model import ResolvedConfig
from deployctl.errors import UsageError
from deployctl.targets import for_config
from deployctl.targets.base import DestroyReport, Target


def prepare(cfg: ResolvedConfig, name: str | None) -> tuple[Target, str]:
    """The target and the checked preview name; UsageError for an environment without previews
    or without --name (pointing a local environment at `down`)."""
    env = cfg.env_name
    target = for_config(cfg)
    if not cfg.environment.preview:
        local = isinstance(target, LocalTeardown)
        raise UsageError(f"refusing to destroy in '{env}': it is not a preview environment",
                         hint=f"a local environment is removed with `deployctl down --env {env}`" if local else
                         "destroy only removes named previews of an environment with `preview: true`")
    if not name:
        raise UsageError(f"destroy removes one preview of '{env}': name it with --name (e.g. --name pr-42)",
                         hint=f"`deployctl status --env {env}` lists what runs")
    return target, preview.check_name(cfg, name) or name


def destroy(target: Target, name: str, *, dry_run: bool) -> DestroyReport:
    return target.teardown(name, dry_run=dry_run)

"""Preview copies in `status`, `history` and `previews`: which target a command reads (the
environment's, or one named copy's) and the live copies of a `preview: true` environment."""

from __future__ import annotations

from typing import Any

from deployctl import preview
from deployctl.config.model import ResolvedConfig
from deployctl.errors import UsageError
from deployctl.targets import for_config
from deployctl.targets.base import LivePreview, Target, WithPreviews


def target_for(cfg: ResolvedConfig, name: str | None) -> Target:
    """The target to read: the named preview copy's (--name), else the environment's. --name on
    an environment without previews is a usage error (exit 2), as for `run`."""
    if name is None:
        return for_config(cfg)
    return for_config(cfg, preview=preview.check_name(cfg, name))


def live(cfg: ResolvedConfig) -> list[LivePreview]:
    """The preview copies of cfg's environment that have live services."""
    env = cfg.env_name
    if not cfg.environment.preview:
        raise UsageError(f"'{env}' is not a preview environment: it has no named previews",
                         hint=f"`deployctl status --env {env}` shows what it runs")
    target = for_config(cfg)
    if not isinstance(target, WithPreviews):
        raise UsageError(f"environment '{env}' deploys to target {cfg.environment.target}, which has no previews")
    return target.previews()


def name_required(cfg: ResolvedConfig, command: str) -> UsageError:
    """The error for a per-copy command without --name on a preview environment: it names the
    live copies, and the command to run for one of them."""
    env = cfg.env_name
    names = [p.name for p in live(cfg)]
    which = f"live previews: {', '.join(names)}" if names else "no preview is live"
    example = names[0] if names else "pr-42"
    return UsageError(f"'{env}' is a preview environment: {command} needs --name ({which})",
                      hint=f"e.g. `deployctl {command} --env {env} --name {example}`; "
                           f"`deployctl previews --env {env}` lists them")


def previews_doc(cfg: ResolvedConfig, found: list[LivePreview]) -> dict[str, Any]:
    """deployctl.previews/v1."""
    return {"schema": "deployctl.previews/v1", "app": cfg.app, "env": cfg.env_name,
            "cluster": cfg.environment.cluster, "previews": [p.to_json() for p in found]}


def previews_lines(cfg: ResolvedConfig, found: list[LivePreview]) -> list[str]:
    env = cfg.env_name
    where = f"{cfg.app}/{env} on cluster {cfg.environment.cluster}"
    if not found:
        return [f"{where}: no live previews (deploy one with `deployctl run --env {env} --name pr-42`)"]
    lines = [f"{where}: {len(found)} live preview{'s' if len(found) != 1 else ''}"]
    width = max(len(s.task_definition) for p in found for s in p.services)
    for p in found:
        lines.append(f"  {p.name}: release {p.release or '? (none by deployctl)'}")
        lines += [f"    {s.task_definition:<{width}}  {(s.rollout_state or '?').lower():<11}  "
                  f"{s.running}/{s.desired} running" for s in p.services]
    lines.append(f"one of them: `deployctl status --env {env} --name {found[0].name}` "
                 f"(history, destroy: the same --name)")
    return lines

"""The `history` use case: releases of one environment, newest first, from the platform."""

from __future__ import annotations

from deployctl.config.model import ResolvedConfig
from deployctl.targets.base import History, Target


def history(target: Target, limit: int) -> History:
    return target.history(limit)


def history_doc(cfg: ResolvedConfig, found: History) -> dict[str, object]:
    """deployctl.history/v1."""
    return {"schema": "deployctl.history/v1", "app": cfg.app, "env": cfg.env_name,
            "releases": [r.to_json(current=r.id == found.current) for r in found.releases]}

"""The `history` use case: releases of one environment, newest first, from the platform."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from deployctl.app import scale
from deployctl.config.model import ResolvedConfig
from deployctl.releases import Release
from deployctl.targets.base import History, Target


def history(target: Target, limit: int, cfg: ResolvedConfig | None = None) -> History:
    """`target`'s releases; with `cfg` (an environment, not a preview copy) the `deployctl scale`
    records too: a scale registers no release, so its records (on the ECS services) become
    entries of kind `scale` between the releases they came between."""
    found = target.history(limit)
    if cfg is None:
        return found
    entries = merge(found.releases, scale.history_entries(cfg))[:limit]
    return dataclasses.replace(found, releases=tuple(entries))


def merge(releases: Sequence[Release], scales: Sequence[Release]) -> list[Release]:
    """Both lists newest first → one list newest first; the releases keep their own order."""
    out: list[Release] = []
    pending = sorted(scales, key=lambda r: r.started_at, reverse=True)
    for rel in releases:
        while pending and rel.started_at and pending[0].started_at > rel.started_at:
            out.append(pending.pop(0))
        out.append(rel)
    return out + pending


def history_doc(cfg: ResolvedConfig, found: History) -> dict[str, object]:
    """deployctl.history/v1."""
    return {"schema": "deployctl.history/v1", "app": cfg.app, "env": cfg.env_name,
            "releases": [{**r.to_json(current=r.id == found.current), **found.attached.get(r.id, {})}
                         for r in found.releases]}

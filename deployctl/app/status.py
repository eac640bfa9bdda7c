"""The `status` use case: what runs now, and with --watch, refreshing until it settles."""

from __future__ import annotations

import time
from collections.abc import Callable

from deployctl.errors import DeployFailed
from deployctl.targets.base import StatusView, Target


def watch(target: Target, *, interval: float, limit: float | None,
          show: Callable[[StatusView], None]) -> tuple[StatusView, bool]:
    """Refresh until every service settled or `limit` seconds passed: (last view, settled).
    `show` gets every view, to draw it."""
    started = time.monotonic()
    while True:
        view = target.status()
        show(view)
        if view.settled:
            return view, True
        if limit is not None and time.monotonic() - started > limit:
            return view, False
        time.sleep(interval)


def verdict(view: StatusView, env: str, *, settled: bool, limit: float | None) -> None:
    """DeployFailed (exit 1) unless the watch ended settled and ok."""
    if not settled:
        raise DeployFailed(f"{env}: {view.unsettled} after {limit:g}s",
                           hint=f"keep watching with `deployctl status --env {env} --watch`")
    if not view.ok:
        raise DeployFailed(f"{env}: " + ("; ".join(view.problems) or "not every service is ok"))

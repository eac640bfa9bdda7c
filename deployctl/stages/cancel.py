"""Blocking calls a cancelled run does not wait for: registry HTTP (build's skip check) and
the ECR API (login, ensure-repository), used by build.py and access.py alike.

Its own module because access.py cannot import build.py (build imports access).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_POLL_S = 0.1


def cancellable(ctx: Any, fn: Callable[[], T]) -> T:
    """fn() in a helper thread, given up on (ctx.raise_if_cancelled) as soon as the run is
    cancelled: a registry that accepts connections and never answers would otherwise hold a
    cancelled run for its whole socket timeout. The abandoned thread ends on that timeout.

    Without a ctx (no `cancelled` event) fn() simply runs here. fn must not write shared state
    itself: its result reaches the caller only when the run was not cancelled, so state is
    written from what this returns, never by an abandoned call.
    """
    cancelled = getattr(ctx, "cancelled", None)
    if not isinstance(cancelled, threading.Event):
        return fn()
    ctx.raise_if_cancelled()  # a cancelled run starts no new call
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            box["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=target, name="registry-call", daemon=True)
    worker.start()
    # Wait on the answer, not on the cancel flag: the answer usually comes in milliseconds and
    # must not wait out a polling interval (the skip path is this one call).
    while not done.wait(_POLL_S):
        ctx.raise_if_cancelled()
    ctx.raise_if_cancelled()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]

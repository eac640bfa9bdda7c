"""Acting on a simulated rollout from a test: count the API calls it made, run something once a
condition holds, or act at a known point of the rollout with the simulated clock frozen there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def calls(sim: Any, action: str) -> int:
    return len(sim.calls_of(action))


def calls_after(sim: Any, action: str, after: str) -> int:
    """How many `action` calls reached the server after the last `after` call."""
    marks = sim.calls_of(after)
    return sum(1 for c in sim.calls_of(action) if marks and c.monotonic > marks[-1].monotonic)


def when(condition: Callable[[], bool], then: Callable[[], None], timeout: float = 20.0) -> threading.Thread:
    """Run `then` in a thread as soon as `condition` holds (used to act mid-rollout)."""

    def loop() -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                then()
                return
            time.sleep(0.01)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def mid_rollout(sim: Any, act: Callable[[], object], action: str = "UpdateService") -> threading.Thread:
    """Run `act` in a thread while the simulated clock is frozen at the deploy's `action` call:
    the new deployment exists and has not moved on, however loaded the machine is (a sleep after
    the call can outlast a sub-second phase). The clock runs on once `act` returns."""
    reached = sim.freeze_on(action)

    def run() -> None:
        if reached.wait(60):
            try:
                act()
            finally:
                sim.thaw()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll `condition` until it holds: a barrier on something the test can observe, where a fixed
    sleep would only guess how long it takes on a loaded machine."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout:g}s for {what}"
        time.sleep(0.02)

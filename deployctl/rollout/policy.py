"""How often the watcher polls, and how many API calls it may make. Pure."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PollPolicy:
    """Seconds between polls, and the API-call budget.

    Fast just after the update (early failures: bad image, missing secret) and when completion
    is near (so success is reported within ~`fast`); in between the interval grows from `base`
    to `max`. Every call first checks a hard cap of `budget` calls in any sliding `window`
    and paces calls window/budget apart (DescribeServices waits; optional calls wait a poll). Near
    completion behind a load balancer one slot per window is kept free for the target-health
    read that confirms success, so COMPLETED is confirmed without waiting. Auxiliary calls
    (stopped tasks, target health, alarms) happen when something changed or every `aux_every`
    polls, never periodically near completion; an optional call that finds no budget is put
    off by one poll at most.
    """

    base: float = 5.0
    fast: float = 2.0
    max: float = 15.0
    growth: float = 1.25
    warmup: float = 15.0
    jitter: float = 0.1
    aux_every: int = 6
    budget: int = 30
    window: float = 60.0
    throttle_base: float = 2.0
    throttle_max: float = 30.0
    ecs_rollback_grace: float = 15.0
    health_gate: float = 120.0
    alarm_grace: float = 30.0

    @classmethod
    def from_base(cls, base: float) -> PollPolicy:
        """Scale every duration with `base` (5 s is the real-world default); tests pass ~0.05."""
        k = base / 5.0
        return cls(base=base, fast=2.0 * k, max=15.0 * k, warmup=15.0 * k, window=60.0 * k,
                   throttle_base=2.0 * k, throttle_max=30.0 * k, ecs_rollback_grace=15.0 * k,
                   health_gate=120.0 * k, alarm_grace=30.0 * k)

    def interval(self, since_start: float, slow_polls: int, near: bool) -> float:
        if since_start < self.warmup or near:
            return self.fast
        return min(self.max, self.base * self.growth ** max(0, slow_polls))

    def jittered(self, seconds: float, rnd: float) -> float:
        """rnd in [0, 1): up to `jitter` shorter (so parallel watchers do not poll in step, and
        the nominal interval stays an upper bound on how late a change is seen)."""
        return max(0.0, seconds * (1.0 - self.jitter * rnd))

    def throttle_delay(self, streak: int, rnd: float) -> float:
        """Exponential backoff with full jitter in its upper half: streak 1 → ~base."""
        cap = min(self.throttle_max, self.throttle_base * 2 ** max(0, streak - 1))
        return cap * (0.5 + 0.5 * rnd)


class CallBudget:
    """The API-call budget of one deploy of a service: a hard cap of `budget` calls in any sliding
    `window`, and calls paced window/budget apart. One budget spans the whole deploy - the watch,
    the reads for the diagnosis, deployctl's own rollback and its watch - so a rollback does not
    start a fresh minute of calls."""

    def __init__(self, policy: PollPolicy, clock: Callable[[], float]) -> None:
        self.policy, self.clock = policy, clock
        self.call_times: deque[float] = deque()
        # Pacing: each call pushes the earliest next one window/budget seconds later; idle time
        # is not saved up, so bursts cannot fill a window and then stall the watch.
        self.next_free = clock()

    def book(self, calls: int = 1, at: float | None = None) -> None:
        """Book `calls` API calls sent at `at` (default: now). Pacing counts from when a call was
        sent, not answered: a poll's round trip does not push the next poll later."""
        now = self.clock() if at is None else at
        for _ in range(max(0, calls)):
            self.call_times.append(now)
            self.next_free = max(self.next_free, now) + self.policy.window / self.policy.budget

    def calls_in_window(self) -> int:
        cutoff = self.clock() - self.policy.window
        while self.call_times and self.call_times[0] < cutoff:
            self.call_times.popleft()
        return len(self.call_times)

    def wait(self, need: int) -> float:
        """Seconds to wait so that the next call keeps the pace, and `need` more calls stay
        within the window's cap."""
        return max(max(0.0, self.next_free - self.clock()), self.cap_wait(need))

    def cap_wait(self, need: int) -> float:
        """Seconds to wait so that `need` more calls stay within the window's hard cap."""
        over = self.calls_in_window() + need - self.policy.budget
        if over <= 0:
            return 0.0
        idx = min(len(self.call_times), over) - 1
        # A little past the instant the old call leaves the window: calls are booked when sent,
        # and AWS sees them a varying network delay later (0.05 % of the window: 30 ms a minute).
        margin = self.policy.window * 0.0005
        return max(0.0, self.call_times[idx] + self.policy.window - self.clock() + margin)

"""One API-call budget for the whole deploy of a service: the rollout's watch, the reads for its
diagnosis (the app's log included), deployctl's own rollback and the watch of that rollback
together make at most 30 calls in any window (the policy's minute, scaled down here with the
poll interval). The rollout is the ECS rollout SIMULATION over moto's HTTP server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deployctl.rollout import PollPolicy
from tests.integration.test_ecs_deploy import deploy, first_deploy
from tests.support.aws_world import API, CLUSTER, FAMILY_API, base_config

# The poll interval every duration of the policy scales with: a 6-s "minute", 0.2-s fast polls
# (well above a moto round trip, so the pacing, not the HTTP latency, sets the pace).
POLL = 0.5


def _max_in_window(times: list[float], window: float) -> int:
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


def test_deployctls_own_rollback_does_not_start_a_fresh_call_budget(world: Any, sim: Any, tmp_path: Path) -> None:
    world.c("logs").create_log_group(logGroupName="/deployctl/chat-api/staging")
    doc = base_config(world)
    doc["deploy"]["circuit_breaker"] = {"enable": True, "rollback": False}  # deployctl rolls back
    # The failing rollout lasts longer than the window, so its watch fills the budget; then
    # deployctl's rollback and its watch follow at once.
    crash = sim.scenario("crash", start_s=3.0, fail_s=3.0, exit_code=1)
    back = sim.scenario("success", start_s=1.5, healthy_s=1.5, drain_s=1.0, bake_s=1.0)
    sim.script(API, "success", crash, back, cluster=CLUSTER)
    cfg, _ = first_deploy(world, tmp_path, doc)
    before = len(sim.calls)
    res = deploy(cfg, world.push("v2"), poll_interval=POLL, timeout=120.0)

    assert res.exit_code == 1 and f"deployctl rolled back to {FAMILY_API}:1" in res.message, res.text
    calls = sim.calls[before:]
    updates = [i for i, c in enumerate(calls) if c.action == "UpdateService"]
    assert len(updates) == 2  # the rollout, then deployctl's rollback
    # Every call from the rollout's UpdateService to the end of the service's deploy (its
    # outcome tag; what follows - auto scaling, notifications - is not the rollout's).
    end = max(i for i, c in enumerate(calls) if c.action == "TagResource")
    calls = calls[updates[0]:end + 1]
    times = [c.monotonic for c in calls]
    policy = PollPolicy.from_base(POLL)
    # The times are when the server saw each call; deployctl paces by when it sent them. Under
    # load one call's trip can take a tenth of a second longer than the next one's, which at this
    # scale (a 6 s window, calls 0.2 s apart) moves a call into the window; on AWS's 60 s window
    # at 2 s polls it cannot. So the window is counted 0.3 s short (5%).
    assert _max_in_window(times, policy.window - 0.3) <= policy.budget, " ".join(
        f"{c.monotonic - times[0]:.2f}:{c.action}" for c in calls)

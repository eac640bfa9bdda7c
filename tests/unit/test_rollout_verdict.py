"""rollout.assess on describe_services sequences (tests/unit/data/rollouts/*.json), and the
watcher loop with a fake source, a fake clock and no sleeping.

The JSON sequences are modelled on the shapes in docs/ecs-rollouts.md (observed ids,
reasons and event texts); there is no AWS account here, so they are not live recordings. Each
step also says whether boto3's stock `services_stable` waiter would call it a success; that is
evaluated with the waiter's own acceptors from botocore's model, to show where deployctl's
verdict and the waiter disagree (a finished rollback).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import jmespath
import pytest
from botocore.loaders import Loader

from deployctl import rollout
from deployctl.adapters.ecs_gateway import ServiceState, Task
from deployctl.adapters.elb_gateway import TargetHealth
from deployctl.rollout import AlarmInfo, Limits, PollPolicy, Snapshot, Throttled, Timers, WatchCancelled, assess

DATA = Path(__file__).parent / "data" / "rollouts"
FILES = sorted(DATA.glob("*.json"))


def _steps() -> list[tuple[str, int, dict[str, Any], dict[str, Any]]]:
    out = []
    for path in FILES:
        doc = json.loads(path.read_text())
        for i, step in enumerate(doc["steps"]):
            out.append((path.stem, i, doc, step))
    return out


def _snapshot(step: dict[str, Any]) -> Snapshot:
    services = step["describe_services"]["services"]
    targets = step.get("target_health", {}).get("TargetHealthDescriptions")
    return Snapshot(ServiceState.from_api(services[0]) if services else None,
                    tuple(TargetHealth.from_api(t) for t in targets) if targets is not None else None,
                    step.get("alarms", {}))


def _verdict(doc: dict[str, Any], step: dict[str, Any]) -> rollout.Verdict:
    timers = Timers(elapsed=step["elapsed"], **step.get("timers", {}))
    limits = Limits(timeout=doc["timeout"], load_balanced=doc["load_balanced"])
    return assess(_snapshot(step), doc["started_deployment_id"], before_ids=doc["before_deployment_ids"],
                  timers=timers, limits=limits)


def test_there_are_recorded_sequences() -> None:
    assert len(FILES) >= 8


@pytest.mark.parametrize(("name", "index", "doc", "step"), _steps(), ids=lambda v: v if isinstance(v, str) else None)
def test_verdict_on_recorded_step(name: str, index: int, doc: dict[str, Any], step: dict[str, Any]) -> None:
    v = _verdict(doc, step)
    want = step["expect"]
    assert v.status == want["status"], (name, index, v)
    for key in ("cause", "rolled_back_to", "roll_back", "waiting_for_ecs"):
        if key in want:
            assert getattr(v, key) == want[key], (name, index, key, v)
    for text in want.get("message_contains", []):
        assert text in v.message, (name, index, v.message)


def _waiter_acceptors() -> list[dict[str, Any]]:
    model = Loader().load_service_model("ecs", "waiters-2")
    return model["waiters"]["ServicesStable"]["acceptors"]


def _waiter_outcome(response: dict[str, Any]) -> str | None:
    """The stock waiter's decision on one DescribeServices response (botocore's own acceptors)."""
    for acc in _waiter_acceptors():
        found = jmespath.search(acc["argument"], response)
        if acc["matcher"] == "path" and found == acc["expected"]:
            return acc["state"]
        if acc["matcher"] == "pathAny" and isinstance(found, list) and acc["expected"] in found:
            return acc["state"]
    return None


@pytest.mark.parametrize(("name", "index", "doc", "step"),
                         [s for s in _steps() if "services_stable_waiter_would_succeed" in s[3]],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_stock_waiter_semantics_recorded_correctly(name: str, index: int, doc: dict[str, Any],
                                                   step: dict[str, Any]) -> None:
    success = _waiter_outcome(step["describe_services"]) == "success"
    assert success == step["services_stable_waiter_would_succeed"]


def test_finished_rollback_fools_the_waiter_but_not_assess() -> None:
    doc = json.loads((DATA / "breaker_rollback.json").read_text())
    last = doc["steps"][-1]
    assert _waiter_outcome(last["describe_services"]) == "success"
    v = _verdict(doc, last)
    assert v.status == rollout.FAILED and v.message.startswith("rolled back to chat-api-prod-api:7")


# ------------------------------------------------------------------------------ pure edge cases


def _svc(*deps: dict[str, Any], events: list[dict[str, Any]] | None = None, rollback: bool = True) -> ServiceState:
    return ServiceState.from_api(
        {"status": "ACTIVE", "deployments": list(deps), "events": events or [],
         "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True, "rollback": rollback}}})


def _dep(i: str, status: str, rev: int, running: int, desired: int = 2, state: str = "IN_PROGRESS",
         reason: str = "", pending: int = 0, failed: int = 0) -> dict[str, Any]:
    return {"id": i, "status": status, "taskDefinition": f"arn:aws:ecs:r:1:task-definition/fam:{rev}",
            "runningCount": running, "desiredCount": desired, "pendingCount": pending, "failedTasks": failed,
            "rolloutState": state, "rolloutStateReason": reason}


def test_completed_with_old_deployment_still_listed_is_not_success() -> None:
    snap = Snapshot(_svc(_dep("n", "PRIMARY", 2, 2, state="COMPLETED"), _dep("o", "ACTIVE", 1, 1, state="COMPLETED")))
    assert assess(snap, "n", before_ids=["o"]).status == rollout.IN_PROGRESS


def test_completed_short_of_desired_is_not_success() -> None:
    snap = Snapshot(_svc(_dep("n", "PRIMARY", 2, 1, state="COMPLETED")))
    assert assess(snap, "n").status == rollout.IN_PROGRESS


def test_completed_needs_target_health_when_load_balanced() -> None:
    snap = Snapshot(_svc(_dep("n", "PRIMARY", 2, 2, state="COMPLETED")))
    lb = Limits(load_balanced=True)
    assert assess(snap, "n", limits=lb).message == "completed; checking target health"
    healthy = tuple(TargetHealth.from_api({"Target": {"Id": f"10.0.0.{i}", "Port": 80},
                                           "TargetHealth": {"State": "healthy"}}) for i in (1, 2))
    assert assess(Snapshot(snap.service, healthy), "n", limits=lb).ok
    one = healthy[:1]
    assert not assess(Snapshot(snap.service, one), "n", limits=lb).final  # 1 healthy of 2 desired


def test_vanished_deployment_is_a_failure() -> None:
    snap = Snapshot(_svc(_dep("x", "PRIMARY", 3, 2, state="COMPLETED")))
    v = assess(snap, "n", before_ids=["o"])
    assert v.status == rollout.FAILED and v.cause == rollout.CAUSE_VANISHED


def test_rollback_detected_from_revived_old_id_even_without_reason() -> None:
    snap = Snapshot(_svc(_dep("o", "PRIMARY", 1, 1, reason="ECS deployment o in progress.")))
    v = assess(snap, "n", before_ids=["o"])
    assert v.status == rollout.ROLLING_BACK and v.rolled_back_to == "fam:1"


def test_failure_reason_falls_back_to_the_service_event() -> None:
    events = [{"id": "1", "message": "(service s) (deployment n) deployment failed: alarm detected."}]
    snap = Snapshot(_svc(_dep("o", "PRIMARY", 1, 2, state="COMPLETED", reason="ECS deployment o completed."),
                         events=events))
    v = assess(snap, "n", before_ids=["o"])
    assert v.status == rollout.FAILED and "deployment alarm: alarm detected" in v.message


def test_alarm_that_ecs_ignores_trips_our_own_gate() -> None:
    snap = Snapshot(_svc(_dep("n", "PRIMARY", 2, 1)), alarms={"a": "ALARM"})
    assert assess(snap, "n", timers=Timers(alarm_for=5), limits=Limits(alarm_grace=30)).status == rollout.IN_PROGRESS
    v = assess(snap, "n", timers=Timers(alarm_for=31), limits=Limits(alarm_grace=30))
    assert v.status == rollout.FAILED and v.cause == rollout.CAUSE_ALARM and v.roll_back


def test_timeout_during_ecs_rollback_does_not_ask_deployctl_to_roll_back() -> None:
    snap = Snapshot(_svc(_dep("o", "PRIMARY", 1, 0, reason="ECS deployment circuit breaker: rolling back to "
                                                          "deploymentId o."),
                         _dep("n", "ACTIVE", 2, 0, state="FAILED")))
    v = assess(snap, "n", before_ids=["o"], timers=Timers(elapsed=1000), limits=Limits(timeout=900))
    assert v.status == rollout.FAILED and not v.roll_back and "had not finished" in v.message


def test_poll_policy_fast_then_slower_then_fast_near_completion() -> None:
    p = PollPolicy()
    assert p.interval(1, 0, near=False) == p.fast
    later = [p.interval(100, n, near=False) for n in range(12)]
    assert later[0] == p.base and later == sorted(later) and later[-1] == p.max
    assert p.interval(100, 11, near=True) == p.fast
    assert 0.9 * p.base <= p.jittered(p.base, 0.999) <= p.jittered(p.base, 0.0) == p.base
    delays = [p.throttle_delay(n, 1.0) for n in range(1, 10)]
    assert delays == sorted(delays) and delays[-1] == p.throttle_max


# ------------------------------------------------------------------------------ the watcher loop


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> bool:
        self.sleeps.append(seconds)
        self.t += seconds
        return False


class ScriptedSource:
    """Serves service descriptions by fake time: [(from_t, description)], plus throttles."""

    def __init__(self, clock: FakeClock, timeline: list[tuple[float, ServiceState]],
                 throttle_at: set[int] | None = None) -> None:
        self.clock, self.timeline = clock, timeline
        self.throttle_at = throttle_at or set()
        self.calls = 0
        self.describe_calls = 0
        self.times: list[float] = []
        self.stopped: list[Task] = []
        self.alarms: list[AlarmInfo] = []

    def service(self) -> ServiceState | None:
        self.calls += 1
        self.describe_calls += 1
        self.times.append(self.clock.t)
        if self.describe_calls in self.throttle_at:
            raise Throttled("DescribeServices", "Rate exceeded")
        current = self.timeline[0][1]
        for start, svc in self.timeline:
            if self.clock.t >= start:
                current = svc
        return current

    def stopped_tasks(self, deployment_id: str, known: set[str]) -> list[Task]:
        self.calls += 2
        self.times += [self.clock.t] * 2
        return [t for t in self.stopped if t.arn not in known]

    def target_health(self) -> list[TargetHealth] | None:
        return None

    def alarm_states(self) -> dict[str, str]:
        self.calls += 1
        self.times.append(self.clock.t)
        return {a.name: a.state for a in self.alarms}

    def alarm_details(self) -> dict[str, AlarmInfo]:
        return {a.name: a for a in self.alarms}


def _ev(i: int, msg: str) -> dict[str, Any]:
    return {"id": f"e{i}", "createdAt": float(i), "message": msg}


def _rollout(done_at: float) -> list[tuple[float, ServiceState]]:
    old = _dep("o", "ACTIVE", 1, 2, state="COMPLETED")
    return [
        (0.0, _svc(_dep("n", "PRIMARY", 2, 0, pending=2), old, events=[_ev(1, "started 2 tasks")])),
        (20.0, _svc(_dep("n", "PRIMARY", 2, 2), old, events=[_ev(2, "registered"), _ev(1, "started 2 tasks")])),
        (done_at, _svc(_dep("n", "PRIMARY", 2, 2, state="COMPLETED"),
                       events=[_ev(3, "deployment completed."), _ev(2, "registered"), _ev(1, "started 2 tasks")])),
    ]


def test_watch_reports_success_soon_after_completion_within_the_call_budget() -> None:
    clock = FakeClock()
    timeline = _rollout(done_at=300.0)
    src = ScriptedSource(clock, timeline)
    lines: list[str] = []
    res = rollout.watch(src, "n", policy=PollPolicy(), log=lines.append, before_ids=["o"], clock=clock,
                        sleep=clock.sleep, rng=lambda: 0.5, first_service=timeline[0][1])
    assert res.verdict.ok
    # On average over the watch and in any 60 s: ≤ 30 calls.
    assert src.calls / clock.t * 60 <= 30.0
    # Near completion it polls every `fast` (2 s: 30 calls/min exactly), so success is seen ≤2 s late.
    assert 300.0 <= clock.t <= 300.0 + PollPolicy().fast + 1e-9
    # No 60-second window holds more than 30 calls.
    times = src.times
    assert max(sum(1 for u in times if t <= u < t + 60) for t in times) <= 30
    # Events only once each, oldest first; the counts line only when counts change.
    events = [line for line in lines if line.startswith("event:")]
    assert events == ["event: started 2 tasks", "event: registered", "event: deployment completed."]
    assert len([line for line in lines if line.startswith("deployments:")]) == 3


def test_watch_backs_off_on_throttling_and_never_fails_for_it() -> None:
    clock = FakeClock()
    src = ScriptedSource(clock, _rollout(done_at=30.0), throttle_at={2, 3, 4, 5})
    lines: list[str] = []
    res = rollout.watch(src, "n", policy=PollPolicy(), log=lines.append, before_ids=["o"], clock=clock,
                        sleep=clock.sleep, rng=lambda: 1.0)
    assert res.verdict.ok and res.throttled == 4
    backoffs = clock.sleeps[1:5]
    assert backoffs == sorted(backoffs) and backoffs[0] == PollPolicy().throttle_base
    assert sum("throttling DescribeServices" in line for line in lines) == 4


def test_watch_times_out_with_a_verdict_asking_for_rollback() -> None:
    clock = FakeClock()
    src = ScriptedSource(clock, _rollout(done_at=10_000.0))
    res = rollout.watch(src, "n", policy=PollPolicy(), limits=Limits(timeout=120), before_ids=["o"], clock=clock,
                        sleep=clock.sleep, rng=lambda: 0.5)
    assert res.verdict.status == rollout.FAILED and res.verdict.cause == rollout.CAUSE_TIMEOUT
    assert res.verdict.roll_back and 120 < clock.t < 140


def test_watch_cancelled_raises_with_the_last_verdict() -> None:
    clock = FakeClock()
    src = ScriptedSource(clock, _rollout(done_at=300.0))
    cancel = threading.Event()

    def sleep(seconds: float) -> bool:
        clock.sleep(seconds)
        if clock.t > 50:
            cancel.set()
        return cancel.is_set()

    with pytest.raises(WatchCancelled) as info:
        rollout.watch(src, "n", before_ids=["o"], cancelled=cancel, clock=clock, sleep=sleep, rng=lambda: 0.5)
    assert info.value.last is not None and info.value.last.status == rollout.IN_PROGRESS


def test_watch_logs_stopped_tasks_of_our_deployment_once() -> None:
    clock = FakeClock()
    timeline = _rollout(done_at=60.0)
    failing = _svc(_dep("n", "PRIMARY", 2, 0, failed=1), _dep("o", "ACTIVE", 1, 2, state="COMPLETED"),
                   events=[_ev(5, "(service s) has stopped 1 running tasks")])
    timeline.insert(1, (10.0, failing))
    src = ScriptedSource(clock, timeline)
    src.stopped = [Task.from_api({"taskArn": "arn:aws:ecs:r:1:task/c/0123456789abcdef",
                                  "stopCode": "EssentialContainerExited",
                                  "stoppedReason": "Essential container in task exited",
                                  "containers": [{"name": "api", "exitCode": 137, "reason":
                                                  "OutOfMemoryError: Container killed due to memory usage"}]})]
    lines: list[str] = []
    res = rollout.watch(src, "n", log=lines.append, before_ids=["o"], clock=clock, sleep=clock.sleep,
                        rng=lambda: 0.5)
    stopped = [line for line in lines if "stopped (EssentialContainerExited)" in line]
    assert len(stopped) == 1 and "exit 137" in stopped[0] and "OutOfMemoryError" in stopped[0]
    assert len(res.stopped_tasks) == 1


def test_watch_cancelled_while_the_diagnosis_reads_wait_for_the_call_cap_is_an_interruption() -> None:
    # The update call's own answer already shows ECS's rollback finished: the verdict is final at
    # once and said at once; the reads for the diagnosis (stopped tasks) then wait for the hard
    # call cap (full here). Ctrl-C during that wait must surface as WatchCancelled with the failed
    # verdict (the deploy is reported interrupted), not as an internal error.
    clock = FakeClock()
    done = _svc(_dep("o", "PRIMARY", 1, 2, state="COMPLETED"),
                events=[_ev(4, "(service s) (deployment n) deployment failed: tasks failed to start.")])
    src = ScriptedSource(clock, [(0.0, done)])
    cancel = threading.Event()
    waits: list[float] = []
    said: list[str] = []

    def sleep(seconds: float) -> bool:
        waits.append(seconds)
        cancel.set()  # Ctrl-C arrives while waiting
        return True

    with pytest.raises(WatchCancelled) as info:
        rollout.watch(src, "n", before_ids=["o"], policy=PollPolicy(budget=2, window=1.0), cancelled=cancel,
                      clock=clock, sleep=sleep, rng=lambda: 0.5, first_service=done,
                      on_verdict=lambda v: said.append(v.message))
    assert waits, "the diagnosis reads should have waited for the call cap"
    assert said and "rolled back to fam:1" in said[0]  # the verdict was said before that wait
    assert info.value.last is not None and info.value.last.status == rollout.FAILED
    assert src.calls == 0  # nothing was asked of AWS after Ctrl-C

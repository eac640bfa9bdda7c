"""How soon the watcher gives a failure verdict, on a fake clock (no sleeping, no races).

Each rollout below ends at an instant off the poll grid. The verdict must come within one fast
interval (2 s) of that instant, at most 30 calls in any 60 s, and the reads that only add to the
diagnosis (stopped tasks, the alarm that fired) must come after the verdict, not before it.
A timeout must end the watch within 2 s of the deadline, counted from when the deploy started.
"""

from __future__ import annotations

from typing import Any

from deployctl import rollout
from deployctl.adapters.ecs_gateway import Task
from deployctl.rollout import AlarmInfo, Limits, PollPolicy
from tests.unit.test_rollout_verdict import FakeClock, ScriptedSource, _dep, _ev, _svc

FAST = PollPolicy().fast
STOPPED = Task.from_api({
    "taskArn": "arn:aws:ecs:r:1:task/c/0123456789abcdef", "stopCode": "TaskFailedToStart",
    "stoppedReason": "CannotPullContainerError: pull image manifest has been retried 1 time(s): not found",
    "lastStatus": "STOPPED"})


class Recorder:
    """on_verdict: when the failure was said, and how many calls had been made by then."""

    def __init__(self, clock: FakeClock, src: ScriptedSource) -> None:
        self.clock, self.src = clock, src
        self.at: float | None = None
        self.calls_then = 0
        self.message = ""

    def __call__(self, verdict: rollout.Verdict) -> None:
        self.at, self.calls_then, self.message = self.clock.t, self.src.calls, verdict.message


class AlarmSource(ScriptedSource):
    """Its alarms are OK until `firing_from` (fake time), then as given until `firing_until`."""

    firing_from = 0.0
    firing_until = float("inf")

    def alarm_states(self) -> dict[str, str]:
        states = super().alarm_states()
        firing = self.firing_from <= self.clock.t < self.firing_until
        return states if firing else {name: "OK" for name in states}


def _watch(timeline: list[tuple[float, Any]], **kw: Any) -> tuple[rollout.WatchResult, Recorder, ScriptedSource]:
    clock = FakeClock()
    src = AlarmSource(clock, timeline)
    src.firing_from = kw.pop("firing_from", 0.0)
    src.firing_until = kw.pop("firing_until", float("inf"))
    src.stopped = kw.pop("stopped", [])
    src.alarms = kw.pop("alarms", [])
    rec = Recorder(clock, src)
    res = rollout.watch(src, "n", policy=PollPolicy(), before_ids=["o"], clock=clock, sleep=clock.sleep,
                        rng=lambda: 0.5, first_service=timeline[0][1], on_verdict=rec, **kw)
    return res, rec, src


def _max_in_60s(times: list[float]) -> int:
    return max((sum(1 for u in times if t <= u < t + 60) for t in times), default=0)


def _failing_then(rest: list[tuple[float, Any]], *, rollback: bool = True) -> list[tuple[float, Any]]:
    old = _dep("o", "ACTIVE", 1, 2, state="COMPLETED")
    return [
        (0.0, _svc(_dep("n", "PRIMARY", 2, 0, pending=2), old, events=[_ev(1, "has started 2 tasks")],
                   rollback=rollback)),
        # A quiet stretch: the watcher has backed off to long intervals by the time things fail.
        (70.3, _svc(_dep("n", "PRIMARY", 2, 0, pending=2, failed=1), old, rollback=rollback,
                    events=[_ev(2, "has stopped 1 running tasks"), _ev(1, "has started 2 tasks")])),
        *rest,
    ]


def test_circuit_breaker_rollback_is_reported_within_a_fast_poll_of_its_end() -> None:
    rolling = _svc(_dep("o", "PRIMARY", 1, 2, reason="ECS deployment circuit breaker: rolling back to "
                        "deploymentId o."), _dep("n", "ACTIVE", 2, 0, state="FAILED", failed=3),
                   events=[_ev(3, "(service s) rolling back to deployment o.")])
    done_at = 127.37
    done = _svc(_dep("o", "PRIMARY", 1, 2, state="COMPLETED", reason="ECS deployment o completed."),
                events=[_ev(5, "(service s) (deployment o) deployment completed."),
                        _ev(4, "(service s) (deployment n) deployment failed: tasks failed to start."),
                        _ev(3, "(service s) rolling back to deployment o.")])
    res, rec, src = _watch(_failing_then([(81.9, rolling), (done_at, done)]), stopped=[STOPPED])

    assert res.verdict.cause == rollout.CAUSE_ECS_ROLLBACK and "rolled back to fam:1" in res.verdict.message
    assert rec.at is not None and done_at <= rec.at <= done_at + FAST
    assert _max_in_60s(src.times) <= 30
    # The stopped task that explains it was read (while failing or after the verdict), never late.
    assert len(res.stopped_tasks) == 1


def test_breaker_without_rollback_is_reported_within_a_fast_poll() -> None:
    failed_at = 93.71
    failed = _svc(_dep("n", "PRIMARY", 2, 0, state="FAILED", failed=3,
                       reason="ECS deployment circuit breaker: tasks failed to start."),
                  _dep("o", "ACTIVE", 1, 2, state="COMPLETED"), rollback=False,
                  events=[_ev(4, "(service s) (deployment n) deployment failed: tasks failed to start.")])
    res, rec, src = _watch(_failing_then([(failed_at, failed)], rollback=False), stopped=[STOPPED])

    assert res.verdict.status == rollout.FAILED and res.verdict.roll_back
    assert rec.at is not None and failed_at <= rec.at <= failed_at + FAST
    assert _max_in_60s(src.times) <= 30


def _alarm_rollback(old: Any, done_at: float) -> list[tuple[float, Any]]:
    """New tasks healthy at 40.2 s, ECS rolls back for a deployment alarm at 61.5 s, done at `done_at`."""
    return [
        (0.0, _svc(_dep("n", "PRIMARY", 2, 0, pending=2), old)),
        (40.2, _svc(_dep("n", "PRIMARY", 2, 2), old)),
        (61.5, _svc(_dep("o", "PRIMARY", 1, 2, reason="ECS deployment circuit breaker: rolling back to "
                         "deploymentId o."), _dep("n", "ACTIVE", 2, 2, state="FAILED",
                                                  reason="ECS deployment alarm: alarm detected."))),
        (done_at, _svc(_dep("o", "PRIMARY", 1, 2, state="COMPLETED"),
                       events=[_ev(4, "(service s) (deployment n) deployment failed: alarm detected.")])),
    ]


def test_alarm_rollback_names_the_alarm_and_reads_it_after_the_newest_answer() -> None:
    alarm = AlarmInfo("chat-api-5xx", "ALARM", "Threshold Crossed: 1 datapoint [12.0] was greater than the "
                      "threshold (5.0).", "AWS/ApplicationELB HTTPCode_Target_5XX_Count Sum > 5")
    old = _dep("o", "ACTIVE", 1, 2, state="COMPLETED")
    done_at = 88.43
    timeline = _alarm_rollback(old, done_at)
    res, rec, src = _watch(timeline, alarms=[alarm], alarms_at_start={"chat-api-5xx": "OK"}, firing_from=61.0)

    assert rec.at is not None and done_at <= rec.at <= done_at + FAST
    message = res.verdict.message
    assert "deployment deployment" not in message
    assert "chat-api-5xx" in message and "HTTPCode_Target_5XX_Count" in message and "Threshold Crossed" in message
    assert rec.message == message  # the failure is said once, already naming the alarm
    assert [a.name for a in res.alarms_firing] == ["chat-api-5xx"]
    assert _max_in_60s(src.times) <= 30


def test_a_timeout_ends_the_watch_at_the_deadline_even_after_backing_off() -> None:
    # Nothing happens for minutes: polls have backed off to 15 s apart when the deadline comes.
    stuck = [(0.0, _svc(_dep("n", "PRIMARY", 2, 0, pending=2), _dep("o", "ACTIVE", 1, 2, state="COMPLETED")))]
    for timeout in (20.0, 90.0, 137.0):
        res, rec, _ = _watch(stuck, limits=Limits(timeout=timeout))
        assert res.verdict.cause == rollout.CAUSE_TIMEOUT and res.verdict.roll_back
        # Said at the deadline, and the watch hands over (deployctl's rollback starts) at once.
        assert rec.at is not None and timeout < rec.at <= timeout + 0.1, (timeout, rec.at)
        assert res.ended <= timeout + 0.1


def test_the_timeout_counts_from_the_deploys_start_not_the_watchs() -> None:
    stuck = [(0.0, _svc(_dep("n", "PRIMARY", 2, 0, pending=2), _dep("o", "ACTIVE", 1, 2, state="COMPLETED")))]
    # Preflight, registering and an earlier wave took 7 s of the 30-s timeout.
    res, rec, _ = _watch(stuck, limits=Limits(timeout=30.0), started=-7.0)
    assert res.verdict.cause == rollout.CAUSE_TIMEOUT
    assert rec.at is not None and 23.0 < rec.at <= 23.1


ALARM_5XX = AlarmInfo("chat-api-5xx", "ALARM", "Threshold Crossed: 1 datapoint [12.0] was greater than the "
                      "threshold (5.0).", "AWS/ApplicationELB HTTPCode_Target_5XX_Count Sum > 5")


def _pending_for_long() -> tuple[dict[str, Any], list[tuple[float, Any]]]:
    """New tasks stay PENDING for a long while (slow image pull): nothing fails, nothing changes."""
    old = _dep("o", "ACTIVE", 1, 2, state="COMPLETED")
    return old, [(0.0, _svc(_dep("n", "PRIMARY", 2, 0, pending=2), old, events=[_ev(1, "has started 2 tasks")]))]


def test_an_alarm_that_fires_while_tasks_are_pending_is_reported_within_a_fast_poll() -> None:
    # No task failed, nothing changed for 95 s: ECS's alarm rollback and its end must still be
    # seen within one fast interval (no slow polls while ECS can end the rollout at any moment).
    old, timeline = _pending_for_long()
    rolling_at, done_at = 95.13, 118.37
    timeline += [
        (rolling_at, _svc(_dep("o", "PRIMARY", 1, 2, reason="ECS deployment circuit breaker: rolling back to "
                               "deploymentId o."),
                          _dep("n", "ACTIVE", 2, 0, pending=2, state="FAILED",
                               reason="ECS deployment alarm: alarm detected."),
                          events=[_ev(2, "(service s) (deployment n) deployment failed: alarm detected.")])),
        (done_at, _svc(_dep("o", "PRIMARY", 1, 2, state="COMPLETED"),
                       events=[_ev(3, "(service s) (deployment o) deployment completed."),
                               _ev(2, "(service s) (deployment n) deployment failed: alarm detected.")])),
    ]
    res, rec, src = _watch(timeline, alarms=[ALARM_5XX], alarms_at_start={"chat-api-5xx": "OK"},
                           firing_from=94.0)

    assert res.verdict.cause == rollout.CAUSE_ECS_ROLLBACK
    assert rec.at is not None and done_at <= rec.at <= done_at + FAST, rec.at
    assert _max_in_60s(src.times) <= 30
    # No gap between two DescribeServices while ECS could end the rollout was over a fast poll.
    described = [t for t in src.times if t <= rec.at]
    assert max(b - a for a, b in zip(described, described[1:], strict=False)) <= 2 * FAST


def test_a_breaker_trip_while_tasks_are_pending_is_reported_within_a_fast_poll() -> None:
    # The breaker trips between two polls (failedTasks 0 → 3 and FAILED at once, rollback off):
    # deployctl's own rollback must not wait for a slow poll.
    old, timeline = _pending_for_long()
    failed_at = 101.77
    timeline.append((failed_at, _svc(_dep("n", "PRIMARY", 2, 0, state="FAILED", failed=3,
                                          reason="ECS deployment circuit breaker: tasks failed to start."),
                                     old, rollback=False,
                                     events=[_ev(2, "(service s) (deployment n) deployment failed: tasks "
                                                 "failed to start.")])))
    res, rec, src = _watch(timeline, stopped=[STOPPED])

    assert res.verdict.status == rollout.FAILED and res.verdict.roll_back
    assert rec.at is not None and failed_at <= rec.at <= failed_at + FAST, rec.at
    assert _max_in_60s(src.times) <= 30


def test_without_breaker_or_alarms_polls_still_back_off() -> None:
    # Nothing but completion can end such a rollout, and completion is not near: polls slow down.
    _, timeline = _pending_for_long()
    res, _, src = _watch(timeline, limits=Limits(timeout=120.0, can_fail=False))
    assert res.verdict.cause == rollout.CAUSE_TIMEOUT
    assert len([t for t in src.times if t > 30]) < 90 / FAST / 2


def test_an_alarm_that_went_back_to_ok_before_the_rollback_ended_is_still_named() -> None:
    # The alarm fires, ECS rolls back, and the alarm is OK again long before the rollback ends:
    # the failure names it (metric, reason) from what was read while ECS rolled back.
    old = _dep("o", "ACTIVE", 1, 2, state="COMPLETED")
    done_at = 131.2
    timeline = _alarm_rollback(old, done_at)
    res, rec, src = _watch(timeline, alarms=[ALARM_5XX], alarms_at_start={"chat-api-5xx": "OK"},
                           firing_from=61.0, firing_until=75.0)

    assert rec.at is not None and done_at <= rec.at <= done_at + FAST
    message = res.verdict.message
    assert "chat-api-5xx" in message and "HTTPCode_Target_5XX_Count" in message and "Threshold Crossed" in message
    assert [a.name for a in res.alarms_firing] == ["chat-api-5xx"]
    assert _max_in_60s(src.times) <= 30


def test_a_timeout_says_its_length_rounded() -> None:
    # The deploy's timeout counts from its start, so the watch's own limit is fractional.
    _, timeline = _pending_for_long()
    res, _, _ = _watch(timeline, limits=Limits(timeout=45.7448))
    assert res.verdict.message.startswith("timed out after 46s"), res.verdict.message
    res, _, _ = _watch(timeline, limits=Limits(timeout=1.53))
    assert res.verdict.message.startswith("timed out after 1.5s"), res.verdict.message

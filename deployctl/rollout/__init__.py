"""Rollout tracking: a pure verdict on one snapshot, plus the polling loop around it.

  verdict.py  assess(snapshot) → Verdict: how is THE DEPLOYMENT WE STARTED doing? (pure)
  policy.py   how often to poll and the API-call budget (pure)
  watcher.py  watch(source, …): poll until the verdict is final, log what changed

Callers use the names re-exported here (`from deployctl import rollout`; `rollout.watch`).
"""

from deployctl.rollout.policy import CallBudget, PollPolicy
from deployctl.rollout.verdict import (
    CAUSE_ALARM,
    CAUSE_BREAKER,
    CAUSE_COMPLETED,
    CAUSE_ECS_ROLLBACK,
    CAUSE_FAILED,
    CAUSE_NO_ANSWER,
    CAUSE_REPLACED,
    CAUSE_SERVICE_GONE,
    CAUSE_TIMEOUT,
    CAUSE_UNHEALTHY,
    CAUSE_VANISHED,
    FAILED,
    IN_PROGRESS,
    LAST_LOOK,
    OUTCOME_GRACE,
    ROLLBACK_SHARE,
    ROLLING_BACK,
    SUCCEEDED,
    AlarmInfo,
    Limits,
    Snapshot,
    Timers,
    Verdict,
    alarms_text,
    assess,
    counts_text,
    failure_reason,
    near_completion,
    own_targets,
    rollback_budget,
    target_counts,
    task_ips,
    td_label,
    with_timeout,
)
from deployctl.rollout.watcher import (
    Source,
    Throttled,
    WatchCancelled,
    WatchResult,
    describe_stopped_task,
    describe_stopped_tasks,
    no_answer,
    watch,
)

__all__ = [
    "CAUSE_ALARM", "CAUSE_BREAKER", "CAUSE_COMPLETED", "CAUSE_ECS_ROLLBACK", "CAUSE_FAILED", "CAUSE_NO_ANSWER",
    "CAUSE_REPLACED", "CAUSE_SERVICE_GONE", "CAUSE_TIMEOUT", "CAUSE_UNHEALTHY", "CAUSE_VANISHED", "FAILED",
    "IN_PROGRESS", "LAST_LOOK", "OUTCOME_GRACE", "ROLLBACK_SHARE", "ROLLING_BACK", "SUCCEEDED", "AlarmInfo",
    "CallBudget", "Limits", "PollPolicy", "Snapshot", "Source", "Throttled", "Timers", "Verdict",
    "WatchCancelled", "WatchResult", "alarms_text", "assess", "counts_text", "describe_stopped_task",
    "describe_stopped_tasks", "failure_reason", "near_completion", "no_answer", "own_targets", "rollback_budget",
    "target_counts", "task_ips", "td_label", "watch", "with_timeout",
]

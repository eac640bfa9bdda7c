"""Run one one-off ECS task to its end: RunTask, stream its container's log, read its exit code.

Used by `deployctl task run` and by `before_deploy`. The task's lifecycle (PROVISIONING →
PENDING → RUNNING → … → STOPPED) is read with DescribeTasks; the container's exit code is
`containers[].exitCode` once the task is STOPPED, and absent when the container never ran
(stopCode TaskFailedToStart: the image could not be pulled, a secret could not be read…),
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-lifecycle-explanation.html.
While it runs, the container's awslogs stream is read forward with GetLogEvents; after it
stops the stream is read until it brings nothing new (CloudWatch Logs can lag a few seconds).

Interruption (Ctrl-C, a cancelled run) and the time limit both stop the task with StopTask:
a one-off task nobody waits for any more would go on changing things unseen.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from deployctl.adapters import aws, ecs_gateway
from deployctl.adapters import logs as cwlogs
from deployctl.adapters.aws import BotoClient
from deployctl.adapters.ecs_gateway import Task
from deployctl.errors import DeployFailed

POLL = 2.0  # seconds between DescribeTasks calls while the task runs
DRAIN_READS = 3  # reads of the stream after the task stopped, until one brings nothing new


@dataclass(frozen=True)
class TaskOutcome:
    task_arn: str
    container: str
    exit_code: int | None  # None: the container never ran, or ECS does not say
    stop_code: str = ""
    stopped_reason: str = ""
    container_reason: str = ""
    timed_out: bool = False

    @property
    def task_id(self) -> str:
        return cwlogs.task_id(self.task_arn)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def describe(self) -> str:
        """One line: how the task ended."""
        if self.timed_out:
            return f"task {self.task_id} ran out of time and was stopped"
        if self.exit_code is not None:
            return f"task {self.task_id}: {self.container} exited with code {self.exit_code}"
        why = "; ".join(x for x in (self.stopped_reason, self.container_reason) if x) or "no reason given"
        return f"task {self.task_id} stopped before {self.container} ran ({self.stop_code or 'stopped'}: {why})"


class Interrupted(Exception):
    """The caller stopped waiting (cancelled); the task was stopped."""

    def __init__(self, outcome: TaskOutcome | None) -> None:
        super().__init__("interrupted")
        self.outcome = outcome


def run(clients: aws.AwsClients, request: Mapping[str, Any], *, container: str, logs: cwlogs.AwsLogs | None,
        emit: Callable[[str], None], timeout: float, cancelled: threading.Event | None = None,
        poll: float = POLL, clock: Callable[[], float] = time.monotonic,
        on_started: Callable[[str], None] | None = None) -> TaskOutcome:
    """Start the task, stream its log lines to `emit` (raw: the caller redacts) and return how
    it ended. Raises DeployFailed when ECS does not start it (RunTask `failures`), Interrupted
    when `cancelled` is set, and lets KeyboardInterrupt through, the task stopped in both."""
    ecs = clients.ecs
    started, why = ecs_gateway.run_task(ecs, request)
    if started is None:
        raise DeployFailed(f"ECS did not start the task: {why or 'no task and no reason'}",
                           hint="check the cluster has FARGATE capacity and the subnets have free addresses")
    arn = started
    if on_started is not None:
        on_started(arn)
    cluster = str(request.get("cluster") or "default")
    stream = logs.stream(arn) if logs is not None else ""
    token: str | None = None
    deadline = clock() + timeout

    def read_log() -> int:
        nonlocal token
        if not stream or logs is None:
            return 0
        try:
            events, token = cwlogs.follow_stream(clients.logs, logs.group, stream, token)
        except (aws.ClientError, aws.BotoCoreError) as exc:  # the task's verdict does not depend on it
            emit(f"(could not read the log: {aws.error_code(exc) or exc})")
            return 0
        for e in events:
            emit(e.message)
        return len(events)

    try:
        while True:
            task = ecs_gateway.describe_task(ecs, cluster, arn)
            if task is not None and task.stopped:
                for _ in range(DRAIN_READS):
                    if not read_log():
                        break
                return _outcome(arn, container, task)
            read_log()
            if clock() >= deadline:
                _stop(ecs, cluster, arn, f"deployctl: the task ran longer than its {timeout:g}s limit")
                last = _wait_stopped(ecs, cluster, arn, clock)
                read_log()
                out = _outcome(arn, container, last or Task(arn=arn))
                return TaskOutcome(out.task_arn, container, out.exit_code, out.stop_code, out.stopped_reason,
                                   out.container_reason, timed_out=True)
            if cancelled is not None and cancelled.wait(poll):
                raise Interrupted(None)
            if cancelled is None:
                time.sleep(poll)
    except (KeyboardInterrupt, Interrupted):
        _stop(ecs, cluster, arn, "deployctl: interrupted")
        raise


def _stop(ecs: BotoClient, cluster: str, arn: str, reason: str) -> None:
    # Already stopped, or AWS does not answer: the caller says the task may still run.
    with contextlib.suppress(aws.ClientError, aws.BotoCoreError):
        ecs.stop_task(cluster=cluster, task=arn, reason=reason[:255])


def _wait_stopped(ecs: BotoClient, cluster: str, arn: str, clock: Callable[[], float],
                  limit: float = 30.0) -> Task | None:
    end = clock() + limit
    task = None
    while clock() < end:
        task = ecs_gateway.describe_task(ecs, cluster, arn)
        if task is not None and task.stopped:
            return task
        time.sleep(1.0)
    return task


def _outcome(arn: str, container: str, task: Task) -> TaskOutcome:
    found = task.container(container)
    return TaskOutcome(arn, container, found.exit_code if found else None, task.stop_code,
                       " ".join(task.stopped_reason.split()), " ".join(found.reason.split()) if found else "")

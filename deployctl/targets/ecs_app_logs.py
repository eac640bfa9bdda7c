"""After a failed ECS rollout: the last lines the failing container wrote, in the app's own words.

The stopped task and container are chosen by deployctl.diagnose.failing_container; where that
container logs comes from the task definition the deploy registered (its awslogs options); one
GetLogEvents call reads the stream's newest lines (deployctl.adapters.logs). The lines are
redacted before anyone sees them. Reading logs never changes a verdict: any failure to read
them becomes the `missing` text of the result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from deployctl import diagnose
from deployctl.adapters import aws as awsa
from deployctl.adapters import logs as logs_adapter
from deployctl.adapters.ecs_gateway import Task
from deployctl.redact import Redactor

# Seconds the read may take after a failed rollout (one GetLogEvents call, one attempt): the
# rollback that may follow keeps the rest of its budget.
READ_GRACE = 3.0


def read_app_log(aws: awsa.AwsClients, task_definition: Mapping[str, Any],
                 stopped_tasks: Sequence[Task], *, redactor: Redactor | None = None,
                 limit: int = diagnose.LOG_LINES) -> diagnose.AppLog | None:
    """The failing container's last `limit` lines, or None when no stopped task of the rollout
    has a container that failed (e.g. an alarm rollback with healthy tasks)."""
    found = diagnose.failing_container(stopped_tasks)
    if found is None:
        return None
    task, container, code = found
    arn = task.arn
    base = diagnose.AppLog(task_id=logs_adapter.task_id(arn), container=container, exit_code=code,
                           stopped_reason=" ".join(task.stopped_reason.split()))
    where = logs_adapter.container_logs(task_definition).get(container)
    if where is None:
        return _with(base, missing=f"container {container} does not log with the awslogs driver")
    stream = where.stream(arn)
    if not stream:
        return _with(base, log_group=where.group,
                     missing="its awslogs options set no awslogs-stream-prefix, so the stream cannot be named")
    try:
        events = logs_adapter.last_lines(aws.client("logs", attempts=1), where.group, stream, limit)
    except (awsa.ClientError, awsa.BotoCoreError) as exc:
        why = awsa.error_code(exc) or type(exc).__name__
        return _with(base, log_group=where.group, log_stream=stream,
                     missing=f"its log could not be read ({why}: {awsa.error_message(exc)[:160]})")
    if events is None:
        return _with(base, log_group=where.group, log_stream=stream,
                     missing=f"no log stream {stream} in {where.group} (the container may never have started)")
    line = (redactor or Redactor()).stream()
    lines = tuple(line(e.message) for e in events)
    return _with(base, log_group=where.group, log_stream=stream, log_lines=lines,
                 missing="" if lines else "it wrote nothing")


def _with(log: diagnose.AppLog, **changes: Any) -> diagnose.AppLog:
    return dataclasses.replace(log, **changes)

"""CloudWatch Logs for containers that log with the awslogs driver: where a container's lines
go, and the two reads deployctl makes of them.

Where: a container definition's `logConfiguration` (driver `awslogs`) names the log group
(`awslogs-group`), region and stream prefix; each task's container writes to the stream
`<prefix>/<container name>/<task id>`
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using_awslogs.html).

Reads (clients are passed in, e.g. `Clients.logs` or a `Bounded` client, so every call keeps
its caller's time budget):
- `last_lines`: GetLogEvents with startFromHead=false and a limit returns the newest events of
  one stream (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_GetLogEvents.html);
- `follow_stream`: GetLogEvents forward from a token, for a task that is still running;
- `filter_events`: FilterLogEvents over several streams or a stream prefix, from a start time
  (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilterLogEvents.html).
The module is pure apart from the calls on the client it is given (boto3 stays in aws.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # boto3 only where AWS is called: LogEvent and AwsLogs are read on pure paths
    from deployctl.adapters.aws import BotoClient

# GetLogEvents/FilterLogEvents return at most 10,000 events (1 MB) per call.
MAX_EVENTS = 10_000


@dataclass(frozen=True)
class AwsLogs:
    """Where one container's output goes (its `awslogs` options)."""

    container: str
    group: str
    prefix: str = ""
    region: str = ""

    @classmethod
    def of_container(cls, definition: Mapping[str, Any]) -> AwsLogs | None:
        """From a container definition; None unless it logs with the awslogs driver."""
        conf = definition.get("logConfiguration") or {}
        options = conf.get("options") or {}
        if conf.get("logDriver") != "awslogs" or not options.get("awslogs-group"):
            return None
        return cls(container=str(definition.get("name") or ""), group=str(options["awslogs-group"]),
                    prefix=str(options.get("awslogs-stream-prefix") or ""),
                    region=str(options.get("awslogs-region") or ""))

    def stream(self, task: str) -> str:
        """The stream of this container in `task` (an ARN or an id). Without a prefix the awslogs
        driver names streams by Docker container id, which no API here gives: "" then."""
        if not self.prefix:
            return ""
        return f"{self.prefix}/{self.container}/{task_id(task)}"

    @property
    def stream_prefix(self) -> str:
        """The prefix every task's stream of this container starts with."""
        return f"{self.prefix}/{self.container}/" if self.prefix else ""


def task_id(task: str) -> str:
    """`arn:aws:ecs:…:task/<cluster>/<id>` (or the old `task/<id>`) → `<id>`."""
    return task.rsplit("/", 1)[-1]


def container_logs(task_definition: Mapping[str, Any]) -> dict[str, AwsLogs]:
    """Container name → where it logs, for every awslogs container of a task definition."""
    out: dict[str, AwsLogs] = {}
    for c in task_definition.get("containerDefinitions") or []:
        found = AwsLogs.of_container(c)
        if found is not None:
            out[found.container] = found
    return out


@dataclass(frozen=True)
class LogEvent:
    timestamp_ms: int
    message: str
    stream: str = ""
    event_id: str = ""

    @classmethod
    def from_api(cls, e: Mapping[str, Any], stream: str = "") -> LogEvent:
        return cls(timestamp_ms=int(e.get("timestamp") or 0), message=str(e.get("message") or "").rstrip("\n"),
                   stream=str(e.get("logStreamName") or stream), event_id=str(e.get("eventId") or ""))


def last_lines(logs: BotoClient, group: str, stream: str, limit: int = 30) -> list[LogEvent] | None:
    """The newest `limit` events of one stream, oldest first; None when the group or stream does
    not exist (the container never started, or its logs went elsewhere)."""
    from deployctl.adapters.aws import ClientError, is_not_found  # lazy: boto3 stays off the pure paths

    try:
        resp = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=max(1, limit),
                                   startFromHead=False)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    return [LogEvent.from_api(e, stream) for e in resp.get("events") or []]


def follow_stream(logs: BotoClient, group: str, stream: str,
                  token: str | None) -> tuple[list[LogEvent], str | None]:
    """Events written to `stream` after `token` (None: from the start), and the token to pass
    next time. A stream that does not exist yet (the container has not started) gives no
    events and keeps the token."""
    from deployctl.adapters.aws import ClientError, is_not_found  # lazy: boto3 stays off the pure paths

    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
    if token:
        kwargs["nextToken"] = token
    try:
        resp = logs.get_log_events(**kwargs)
    except ClientError as exc:
        if is_not_found(exc):
            return [], token
        raise
    return [LogEvent.from_api(e, stream) for e in resp.get("events") or []], resp.get("nextForwardToken") or token


def filter_events(logs: BotoClient, group: str, *, start_ms: int, end_ms: int | None = None,
                  streams: Sequence[str] = (), stream_prefix: str = "", next_token: str | None = None,
                  limit: int | None = None) -> tuple[list[LogEvent], str | None]:
    """One page of FilterLogEvents on `group`: the named streams (at most 100), or the streams
    starting with `stream_prefix`, or all. Returns the events, oldest first, and the token of
    the next page (None: no more). Raises ClientError; a missing group is ResourceNotFound."""
    kwargs: dict[str, Any] = {"logGroupName": group, "startTime": int(start_ms)}
    if end_ms is not None:
        kwargs["endTime"] = int(end_ms)
    if streams:
        kwargs["logStreamNames"] = list(streams)[:100]
    elif stream_prefix:
        kwargs["logStreamNamePrefix"] = stream_prefix
    if next_token:
        kwargs["nextToken"] = next_token
    if limit:
        kwargs["limit"] = min(limit, MAX_EVENTS)
    resp = logs.filter_log_events(**kwargs)
    events = [LogEvent.from_api(e) for e in resp.get("events") or []]
    events.sort(key=lambda e: e.timestamp_ms)
    return events, resp.get("nextToken") or None

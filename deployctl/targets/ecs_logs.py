"""`deployctl logs` for an ECS environment: its container logs from CloudWatch Logs, redacted.

Where each service logs is read from the task definition its service runs now (or the one of
`--release`): its awslogs options name the log group and the stream prefix, and every task's
stream is `<prefix>/<container>/<task id>` (deployctl.adapters.logs). A release's logs are
those of its tasks that ECS still lists (running ones, and stopped ones: ECS keeps those for
at least an hour, https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-errors.html).

Reading is FilterLogEvents per service, oldest first; following polls it from the newest event
seen (events of the same millisecond are told apart by eventId). No printing: the command
renders what this returns (deployctl.targets.log_lines).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deployctl import releases
from deployctl.adapters import aws, ecs_gateway
from deployctl.adapters import logs as cwlogs
from deployctl.adapters.aws import BotoClient
from deployctl.adapters.ecs_gateway import TaskDefinition
from deployctl.errors import DeployFailed, UsageError
from deployctl.redact import LineRedactor, Redactor
from deployctl.render import ecs as render
from deployctl.targets import ecs_releases
from deployctl.targets.log_lines import MAX_EVENTS, Line, Request, oldest_first, pick_services

if TYPE_CHECKING:
    from deployctl.config.model import ResolvedConfig

FOLLOW_INTERVAL = 2.0  # seconds between polls with --follow (FilterLogEvents allows 5 a second)


@dataclass(frozen=True)
class Source:
    """Where one service's lines are: a log group and the streams (named ones for a release,
    else every stream under the prefix)."""

    service: str
    group: str
    stream_prefix: str
    streams: tuple[str, ...] = ()
    task_definition: str = ""


def sources(cfg: ResolvedConfig, clients: aws.AwsClients, req: Request) -> list[Source]:
    """Where the chosen services log, from the task definitions they run (or `req.release`'s)."""
    names = pick_services(cfg, req.service)
    ecs = clients.ecs
    if req.release:
        arns = _release_revisions(ecs, cfg, req.release, names)
    else:
        described = ecs_releases.read_services(ecs, cfg)
        arns = {n: d.task_definition for n, d in described.items() if n in names and d is not None}
    out = []
    for name in names:
        arn = arns.get(name)
        where = _service_logs(ecs_gateway.describe_task_definition(ecs, arn, tags=False), name) if arn else None
        if where is None:  # not deployed yet, or no awslogs: where deployctl's rendering puts it
            where = cwlogs.AwsLogs(container=name, group=render.log_group(cfg), prefix=name)
        streams: tuple[str, ...] = ()
        if req.release:
            streams = tuple(where.stream(t) for t in _tasks_of(ecs, cfg, name, arn or ""))
        out.append(Source(name, where.group, where.stream_prefix, streams, arn or ""))
    if req.release and not any(s.streams for s in out):
        raise DeployFailed(f"ECS lists no task of release {req.release} in {cfg.env_name} any more (stopped tasks "
                           "are kept for about an hour), so its streams cannot be named",
                           hint=f"read the service's logs by time: `deployctl logs --env {cfg.env_name} --since 2h`")
    return out


def _service_logs(td: TaskDefinition, service: str) -> cwlogs.AwsLogs | None:
    found = td.logs
    for name in (service, *td.essential, *found):
        if name in found:
            return found[name]
    return None


def _release_revisions(ecs: BotoClient, cfg: ResolvedConfig, release_id: str, names: Sequence[str]) -> dict[str, str]:
    found = releases.build(ecs_releases.read_revisions(ecs, cfg), app=cfg.app, env=cfg.env_name)
    rel = next((r for r in found if r.id == release_id), None)
    if rel is None:
        raise UsageError(f"no release {release_id} in {cfg.env_name}",
                         hint=f"`deployctl history --env {cfg.env_name}` lists its releases")
    return {n: r.arn for n, r in rel.revisions.items() if n in names}


def _tasks_of(ecs: BotoClient, cfg: ResolvedConfig, service: str, task_definition: str) -> list[str]:
    """Task ARNs of `service` running `task_definition`, running or recently stopped."""
    if not task_definition:
        return []
    cluster = cfg.environment.cluster or "default"
    arns: list[str] = []
    for status in ("RUNNING", "STOPPED"):
        arns += ecs_gateway.task_arns(ecs, cluster, service=render.service_name(cfg, service), desired_status=status)
    return [t.arn for t in ecs_gateway.describe_tasks(ecs, cluster, arns) if t.task_definition == task_definition]


class Reader:
    """Reads (and follows) the sources' events as redacted Lines, each stream through its own
    LineRedactor (a secret block can span lines of one stream, never of two)."""

    def __init__(self, logs_client: BotoClient, sources: Sequence[Source], redactor: Redactor | None = None) -> None:
        self.logs, self.sources = logs_client, list(sources)
        self.redactor = redactor or Redactor()
        self._streams: dict[str, LineRedactor] = {}
        self.truncated = False

    def _line(self, src: Source, e: cwlogs.LogEvent) -> Line:
        red = self._streams.setdefault(e.stream, self.redactor.stream())
        return Line(src.service, cwlogs.task_id(e.stream), e.stream, e.timestamp_ms, red(e.message), e.event_id)

    def _page(self, src: Source, start_ms: int, end_ms: int | None,
              token: str | None) -> tuple[list[cwlogs.LogEvent], str | None]:
        try:
            return cwlogs.filter_events(self.logs, src.group, start_ms=start_ms, end_ms=end_ms, streams=src.streams,
                                        stream_prefix="" if src.streams else src.stream_prefix, next_token=token)
        except aws.ClientError as exc:
            if aws.is_not_found(exc):
                raise DeployFailed(f"no log group {src.group}: nothing of {src.service} has logged there yet",
                                   hint="deploy the service first; its tasks create the group as they start") from None
            raise

    def read(self, start_ms: int, end_ms: int | None = None) -> list[Line]:
        """Every event from `start_ms` (to `end_ms`), oldest first, at most MAX_EVENTS."""
        out: list[Line] = []
        for src in self.sources:
            token: str | None = None
            while True:
                events, token = self._page(src, start_ms, end_ms, token)
                out += [self._line(src, e) for e in events]
                if not token or len(out) >= MAX_EVENTS:
                    break
        out, cut = oldest_first(out)
        self.truncated = self.truncated or cut
        return out

    def follow(self, start_ms: int, *, interval: float = FOLLOW_INTERVAL,
               sleep: Callable[[float], None] = time.sleep) -> Iterator[Line]:
        """Events as they arrive, forever (the caller stops it: Ctrl-C). Each poll reads from
        the newest timestamp seen, skipping the events of that millisecond already shown."""
        since = {s.service: start_ms for s in self.sources}
        seen: dict[str, set[str]] = {s.service: set() for s in self.sources}
        while True:
            batch: list[Line] = []
            for src in self.sources:
                token: str | None = None
                start = since[src.service]  # one query per poll: a page token belongs to its query
                while True:
                    events, token = self._page(src, start, None, token)
                    for e in events:
                        key = e.event_id or f"{e.stream}:{e.timestamp_ms}:{e.message}"
                        if e.timestamp_ms == since[src.service] and key in seen[src.service]:
                            continue
                        if e.timestamp_ms > since[src.service]:
                            since[src.service], seen[src.service] = e.timestamp_ms, set()
                        seen[src.service].add(key)
                        batch.append(self._line(src, e))
                    if not token:
                        break
            batch.sort(key=lambda x: (x.timestamp_ms, x.stream))
            yield from batch
            sleep(interval)

"""What every target's `deployctl logs` reader returns: redacted Lines, oldest first.

A target that has logs implements deployctl.targets.base.WithLogs; its reader gives these
Lines through `read(start_ms)` and `follow(start_ms)`, so the command renders them the same
for every target (schemas deployctl.logs/v1 and deployctl.logs.event/v1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deployctl.errors import UsageError

if TYPE_CHECKING:
    from deployctl.config.model import ResolvedConfig

SCHEMA = "deployctl.logs/v1"
EVENT_SCHEMA = "deployctl.logs.event/v1"
MAX_EVENTS = 10_000  # one read shows at most this many events (CloudWatch's page limit)


@dataclass(frozen=True)
class Line:
    service: str
    task_id: str
    stream: str
    timestamp_ms: int
    message: str
    event_id: str = ""

    @property
    def time(self) -> str:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def to_json(self) -> dict[str, Any]:
        return {"timestamp": self.time, "service": self.service, "task_id": self.task_id,
                "stream": self.stream, "message": self.message}


@dataclass(frozen=True)
class Request:
    service: str | None = None
    since_s: float = 600.0
    release: str | None = None


def pick_services(cfg: ResolvedConfig, service: str | None) -> list[str]:
    if service is None:
        return list(cfg.services)
    if service not in cfg.services:
        raise UsageError(f"no service {service!r} in {cfg.env_name}",
                         hint=f"services: {', '.join(cfg.services)}")
    return [service]


def oldest_first(lines: Sequence[Line]) -> tuple[list[Line], bool]:
    """Lines by time (ties by stream), cut to MAX_EVENTS; and whether any were cut."""
    ordered = sorted(lines, key=lambda x: (x.timestamp_ms, x.stream))
    return ordered[:MAX_EVENTS], len(ordered) > MAX_EVENTS

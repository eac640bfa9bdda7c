"""`deployctl logs` for a local environment (target: docker): its service containers' output.

The Docker engine keeps a container's output for as long as the container exists, so these are
the lines of the containers deployctl still has: the serving release's (and, during a deploy,
the new and the previous one's). A release whose containers were removed has no lines left.
Each line is read with the engine's timestamp (RFC 3339, nanoseconds), so lines of several
containers interleave by time as the ECS reader's do; same Line, same redaction per stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from deployctl.errors import DeployFailed
from deployctl.redact import LineRedactor, Redactor
from deployctl.targets.docker import L_APP, L_ENV, L_RELEASE, L_ROLE, L_SERVICE, ROLE_SERVICE
from deployctl.targets.log_lines import Line, oldest_first

FOLLOW_INTERVAL = 1.0  # seconds between polls with --follow: the engine is local, polls are cheap


def _parse(raw: bytes) -> list[tuple[int, str]]:
    """(epoch ms, message) for each `<RFC 3339 time> <message>` line the engine returns."""
    out = []
    for text in raw.decode("utf-8", errors="replace").splitlines():
        stamp, _, message = text.partition(" ")
        head, _, frac = stamp.rstrip("Z").partition(".")
        try:
            when = datetime.fromisoformat(head + "+00:00")
        except ValueError:
            continue  # not a timestamped line (the engine always stamps; never seen)
        ms = int(when.timestamp() * 1000) + int((frac + "000")[:3])
        out.append((ms, message))
    return out


class LocalReader:
    """Reads (and follows) a local environment's service containers, as the ECS Reader does."""

    def __init__(self, client: Any, app: str, env: str, services: Sequence[str], *, release: str | None = None,
                 redactor: Redactor | None = None) -> None:
        self.client, self.app, self.env = client, app, env
        self.services, self.release = list(services), release
        self.redactor = redactor or Redactor()
        self._streams: dict[str, LineRedactor] = {}
        self.truncated = False

    def containers(self) -> list[Any]:
        labels = [f"{L_APP}={self.app}", f"{L_ENV}={self.env}", f"{L_ROLE}={ROLE_SERVICE}"]
        if self.release:
            labels.append(f"{L_RELEASE}={self.release}")
        found = self.client.containers.list(all=True, ignore_removed=True, filters={"label": labels})
        return [c for c in found if c.labels.get(L_SERVICE) in self.services]

    def check(self) -> None:
        """A named release whose containers are gone: say why there is nothing to read."""
        if self.release and not self.containers():
            raise DeployFailed(f"no container of release {self.release} is left in {self.env}: the local engine "
                               "keeps a container's output only while the container exists",
                               hint=f"`deployctl logs --env {self.env}` shows the serving release's lines")

    def _lines(self, container: Any, since_ms: int) -> list[Line]:
        try:
            # The SDK refuses since=0 (it wants a positive time): leave it out to read everything.
            window = {"since": since_ms / 1000} if since_ms > 0 else {}
            raw = container.logs(stdout=True, stderr=True, timestamps=True, **window)
        except Exception:  # noqa: BLE001 - removed by a deploy between the listing and the read
            return []
        red = self._streams.setdefault(container.name, self.redactor.stream())
        service = container.labels.get(L_SERVICE, "")
        return [Line(service, container.id[:12], container.name, ms, red(message))
                for ms, message in _parse(raw) if ms >= since_ms]

    def read(self, start_ms: int) -> list[Line]:
        """Every line from `start_ms`, oldest first, at most MAX_EVENTS."""
        out = [line for c in self.containers() for line in self._lines(c, start_ms)]
        out, cut = oldest_first(out)
        self.truncated = self.truncated or cut
        return out

    def follow(self, start_ms: int, *, interval: float = FOLLOW_INTERVAL,
               sleep: Callable[[float], None] = time.sleep) -> Iterator[Line]:
        """Lines as they arrive, forever (Ctrl-C stops it), the containers listed again at each
        poll: a deploy's new release shows up as it starts. Each container is read from the
        newest line seen, skipping the lines of that millisecond already shown."""
        since: dict[str, int] = {}
        seen: dict[str, set[tuple[int, str]]] = {}
        while True:
            batch: list[Line] = []
            for c in self.containers():
                start = since.get(c.name, start_ms)
                for line in self._lines(c, start):
                    key = (line.timestamp_ms, line.message)
                    if line.timestamp_ms == since.get(c.name) and key in seen.get(c.name, set()):
                        continue
                    if line.timestamp_ms > since.get(c.name, -1):
                        since[c.name], seen[c.name] = line.timestamp_ms, set()
                    seen[c.name].add(key)
                    batch.append(line)
            batch.sort(key=lambda x: (x.timestamp_ms, x.stream))
            yield from batch
            sleep(interval)

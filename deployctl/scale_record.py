"""How a `deployctl scale` is recorded on the platform: tags on the ECS service. Pure.

A scale registers no task definition, so it is not a release; it is recorded where it happened,
on the service, in a ring of SLOTS tags (`deployctl:scaled-0` … `-9`, the oldest overwritten:
ECS allows 50 tags per resource, and TagResource alone is enough). Each value reads
`20261207T115650Z 2 to 4 by alice@laptop`. `history` shows them as entries of kind `scale`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from deployctl import releases_tags as rt
from deployctl.render.ecs import TAG_PREFIX

SCALED = TAG_PREFIX + "scaled-"
SLOTS = 10
KIND = "scale"
_VALUE = re.compile(r"^(\d{8}T\d{6}Z) (\d+) to (\d+) by (.*)$")


@dataclass(frozen=True)
class ScaleEvent:
    service: str  # deploy.yaml's name
    at: str  # 20261207T115650Z (UTC)
    before: int
    after: int
    who: str

    @property
    def iso(self) -> str:
        t = self.at
        return f"{t[0:4]}-{t[4:6]}-{t[6:8]}T{t[9:11]}:{t[11:13]}:{t[13:15]}Z"


def stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def events(service: str, tags: Mapping[str, str]) -> list[ScaleEvent]:
    """The scale records in a service's tags, oldest first (unreadable values are skipped)."""
    out = []
    for key, value in tags.items():
        m = _VALUE.match(value) if key.startswith(SCALED) else None
        if m:
            out.append(ScaleEvent(service, m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)))
    return sorted(out, key=lambda e: e.at)


def record_tags(*, app: str, env: str, service: str, tags: Mapping[str, str], at: str, before: int,
                after: int, who: str) -> dict[str, str]:
    """Tags to add to the service: the record in a free slot (else the oldest one's), and the
    service's deployctl identity (so preflight still knows it as this environment's, also when
    it was adopted and had no deployctl tag before)."""
    used = {k: v for k, v in tags.items() if k.startswith(SCALED)}
    slot = next((f"{SCALED}{i}" for i in range(SLOTS) if f"{SCALED}{i}" not in used), None)
    if slot is None:
        slot = min(used, key=lambda k: used[k])  # values start with the UTC time: the oldest sorts first
    return {
        TAG_PREFIX + "app": app,
        TAG_PREFIX + "env": env,
        TAG_PREFIX + "service": service,
        slot: rt.tag_value(f"{at} {before} to {after} by {who}"),
    }

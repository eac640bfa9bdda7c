"""How a release is named and recorded on the platform (principle 2: no state file). Pure.

A release is one deploy of one environment. Its id is put on every task definition revision
it registers (tag `deployctl:release`, rendered by deployctl.render.ecs), together with app,
env, service, git sha and image digest. The ECS target adds who/when at registration and the
outcome when the watch ends, so `history`/`status`/`rollback` can be rebuilt from ECS alone.

Tag values must fit ECS: ≤256 characters of letters, digits, spaces and `+ - = . _ : / @`.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from deployctl.adapters.ecs_gateway import tags_of
from deployctl.render.ecs import TAG_PREFIX

RELEASE = TAG_PREFIX + "release"
ACTOR = TAG_PREFIX + "actor"
STARTED_AT = TAG_PREFIX + "started-at"
FINISHED_AT = TAG_PREFIX + "finished-at"
DURATION = TAG_PREFIX + "duration-s"
OUTCOME = TAG_PREFIX + "outcome"
DETAIL = TAG_PREFIX + "outcome-detail"
ROLLED_BACK_TO = TAG_PREFIX + "rolled-back-to"

# Outcomes of a release (values of the outcome tag).
IN_PROGRESS = "in-progress"
SUCCEEDED = "succeeded"
FAILED = "failed"
ROLLED_BACK = "rolled-back"  # failed, and the service was returned to the previous revision
OUTCOMES = (IN_PROGRESS, SUCCEEDED, FAILED, ROLLED_BACK)

_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-z]{1,12}-[0-9a-f]{4}$")
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9 +\-=._:/@]")


def new_release_id(now: datetime | None = None, git_sha: str | None = None, nonce: str | None = None) -> str:
    """`20260315T101500Z-1a2b3c4d5e6f-9f3c`: sorts by time, names the commit, unique per run."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    sha = (git_sha or "nosha")[:12].lower()
    sha = re.sub(r"[^0-9a-z]", "", sha) or "nosha"
    return f"{now:%Y%m%dT%H%M%SZ}-{sha}-{(nonce or secrets.token_hex(2))[:4]}"


def is_release_id(text: str) -> bool:
    return bool(_ID.match(text))


def tag_value(text: str) -> str:
    return _TAG_UNSAFE.sub("-", str(text))[:256]


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def actor(environ: Mapping[str, str] | None = None) -> str:
    """Who deploys: the one answer used by release records (ECS tags, local release labels),
    `history` and the deploy lock.

    In GitHub Actions `github:<GITHUB_ACTOR>` (the runner's user and host say nothing about the
    person). Elsewhere `<user>@<host>`, the user from $USER, $LOGNAME or $USERNAME, else the
    login name of this process's uid (a container or cron job often has no $USER), else `uid<N>`.
    """
    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTOR"):
        return f"github:{env['GITHUB_ACTOR']}"
    user = env.get("USER") or env.get("LOGNAME") or env.get("USERNAME") or _login_name()
    return f"{user}@{socket.gethostname() or 'localhost'}"


def _login_name() -> str:
    try:
        import pwd  # lazy: no pwd module on Windows (ImportError below)

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, OSError):  # no pwd module (Windows), or a uid without an entry
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def start_tags(*, who: str, started_at: datetime) -> dict[str, str]:
    """Added to the rendered tags when the task definition is registered."""
    return {ACTOR: tag_value(who), STARTED_AT: iso(started_at), OUTCOME: IN_PROGRESS}


def outcome_tags(outcome: str, *, finished_at: datetime, duration_s: float, detail: str = "",
                 rolled_back_to: str | None = None) -> dict[str, str]:
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    out = {OUTCOME: outcome, FINISHED_AT: iso(finished_at), DURATION: f"{duration_s:.1f}"}
    if detail:
        out[DETAIL] = tag_value(detail)
    if rolled_back_to:
        out[ROLLED_BACK_TO] = tag_value(rolled_back_to)
    return out


# A rollback that runs an earlier revision again as it is (still ACTIVE: nothing registered) is
# recorded on that revision as one tag per rollback release, `deployctl:rerun:<release id>`,
# whose value packs what the outcome tags say for a registered release (`record_value`).
RERUN_PREFIX = TAG_PREFIX + "rerun:"
# When the rerun started, epoch seconds to the millisecond: it orders the rollback among releases
# by registration time (registeredAt has sub-second precision, the started-at tag does not).
RERUN_AT = TAG_PREFIX + "rerun-at"
_RERUN_FIELDS = (("outcome", OUTCOME), ("started", STARTED_AT), ("finished", FINISHED_AT), ("took", DURATION),
                 ("by", ACTOR), ("source", TAG_PREFIX + "source"), ("rolled-back-to", ROLLED_BACK_TO),
                 ("at", RERUN_AT))


def rerun_key(release_id: str) -> str:
    return RERUN_PREFIX + release_id


# ECS takes at most 50 tags per resource (user-defined; aws:-prefixed ones do not count):
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-using-tags.html#tag-restrictions
MAX_TAGS = 50


def reruns_to_drop(tags: Mapping[str, str], adding: int = 1) -> list[str]:
    """The oldest rerun tags to remove so that `adding` new tags fit under MAX_TAGS. A revision
    rolled back to many times would otherwise refuse the next rollback's tag; history keeps the
    newest rollbacks to it. Release ids sort by time, so the keys do too."""
    counted = [k for k in tags if not k.startswith("aws:")]
    over = len(counted) + adding - MAX_TAGS
    if over <= 0:
        return []
    return sorted(k for k in counted if k.startswith(RERUN_PREFIX))[:over]


def record_value(tags: Mapping[str, str]) -> str:
    """One rerun tag's value from release tags (start, outcome, source…): `outcome=… started=…
    … detail=…`, the detail last (it may hold spaces), cut to the 256 characters a tag holds."""
    parts = [f"{short}={tag_value(tags[key]).replace(' ', '_')}" for short, key in _RERUN_FIELDS if tags.get(key)]
    if tags.get(DETAIL):
        parts.append(f"detail={tags[DETAIL]}")
    return tag_value(" ".join(parts))


def record_tags(value: str) -> dict[str, str]:
    """The release tags a rerun tag's value packs (record_value read back)."""
    head, _, detail = value.partition(" detail=")
    if head.startswith("detail="):
        head, detail = "", head[len("detail="):]
    names = dict(_RERUN_FIELDS)
    out = {}
    for part in head.split():
        short, _, text = part.partition("=")
        if short in names and text:
            out[names[short]] = text
    if detail:
        out[DETAIL] = detail
    return out


def to_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """ECS shape: [{"key": …, "value": …}]."""
    return [{"key": k, "value": v} for k, v in tags.items()]


def to_dict(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    """From ECS (`key`/`value`) or tagging-API (`Key`/`Value`) lists (read by the ECS gateway)."""
    return tags_of(list(tags or []))


def merge(rendered: Iterable[Mapping[str, str]], extra: Mapping[str, str]) -> list[dict[str, str]]:
    merged = to_dict(rendered)
    merged.update(extra)
    return to_list(merged)


@dataclass(frozen=True)
class ReleaseTags:
    """What one task definition revision says about its release (missing tags → None)."""

    release: str | None
    app: str | None
    env: str | None
    service: str | None
    git_sha: str | None
    image_digest: str | None
    actor: str | None
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    outcome: str | None
    detail: str | None
    rolled_back_to: str | None


def parse(tags: Iterable[Mapping[str, str]] | Mapping[str, str] | None) -> ReleaseTags:
    d = dict(tags) if isinstance(tags, Mapping) else to_dict(tags)

    def get(name: str) -> str | None:
        return d.get(TAG_PREFIX + name)

    duration = get("duration-s")
    try:
        dur = float(duration) if duration is not None else None
    except ValueError:
        dur = None
    return ReleaseTags(
        release=get("release"), app=get("app"), env=get("env"), service=get("service"),
        git_sha=get("git-sha"), image_digest=get("image-digest"), actor=get("actor"),
        started_at=get("started-at"), finished_at=get("finished-at"), duration_s=dur,
        outcome=get("outcome"), detail=get("outcome-detail"), rolled_back_to=get("rolled-back-to"),
    )

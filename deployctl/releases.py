"""Releases of one environment, rebuilt from ECS task-definition revisions and their tags. Pure.

A release is one deploy (or promotion, or rollback) of one environment. Every revision it
registered carries `deployctl:release` and the other tags of deployctl.releases_tags, so the
list of revisions of the environment's families *is* the release history (the platform is the
source of truth; docs/architecture.md): nothing here reads anything but what the caller fetched
from ECS.

Selection rules (used by promote and rollback):
- the *current* release is the newest release among the revisions the services run now;
- promote takes what the source environment runs, and only when its newest release and every
  running revision succeeded and no rollout is in flight (`promotable`);
- rollback goes by default to the newest succeeded release older than the current one whose
  images differ from what runs now (`choose`, the one chooser of every target); `--steps N`
  counts N such releases back down the history as `history` lists it.

Why over 500 lines: release records, promote selection, settling and rollback selection are
the pure rules over one model (Release, Revision); each section is headed below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from deployctl import releases_tags as rt
from deployctl.adapters.ecs_gateway import COMPLETED, FAILED, ServiceState, TaskDefinition
from deployctl.errors import DeployFailed, UsageError

# Extra tags written by promote/rollback (the ECS target writes the rest).
KIND = rt.TAG_PREFIX + "kind"  # "promote" | "rollback"; absent for a plain deploy
SOURCE = rt.TAG_PREFIX + "source"  # promote: "<env>/<release>"; rollback: the release it restores
DEPLOY, PROMOTE, ROLLBACK = "deploy", "promote", "rollback"

# Shown for an in-progress release that a later release superseded: its watch ended without a
# verdict (Ctrl-C, a killed process), so nobody knows how it went.
INTERRUPTED = "interrupted"

# Tags that describe how one deploy went; a rollback's re-registered copy must not inherit them.
_OUTCOME_KEYS = frozenset({rt.ACTOR, rt.STARTED_AT, rt.FINISHED_AT, rt.DURATION, rt.OUTCOME, rt.DETAIL,
                           rt.ROLLED_BACK_TO, KIND, SOURCE, rt.RERUN_AT})
# Set by ECS on a revision, or describing it: never part of a RegisterTaskDefinition request.
_READ_ONLY = frozenset({"taskDefinitionArn", "revision", "status", "registeredAt", "registeredBy",
                        "deregisteredAt", "requiresAttributes", "compatibilities", "tags"})


@dataclass(frozen=True)
class Revision:
    """One task-definition revision of one service, with what its tags say."""

    arn: str
    family: str
    number: int
    service: str
    image: str
    tags: Mapping[str, str] = field(default_factory=dict)
    registered_at: str = ""
    # A rollback that ran this revision again as it is: the rerun tag (releases_tags.rerun_key)
    # that records it; `tags` are then that release's, as if it had registered the revision.
    record: str = ""

    @property
    def label(self) -> str:
        return f"{self.family}:{self.number}"

    @property
    def parsed(self) -> rt.ReleaseTags:
        return rt.parse(self.tags)

    @property
    def outcome(self) -> str:
        return self.parsed.outcome or "unknown"


@dataclass(frozen=True)
class Release:
    """One release of one environment, on any target (the one model of deployctl.targets).

    On ECS it is built from task-definition revisions (`revisions`, by `build`); the local
    Docker target reads it from its release records (`number`, `image_id`, and what its
    containers show: `current`, `present`, `available`)."""

    id: str
    app: str
    env: str
    outcome: str  # succeeded | failed | rolled-back | in-progress | interrupted | unknown
    git_sha: str
    image_digest: str
    image: str
    who: str
    started_at: str  # ISO 8601 UTC, "" when unknown
    finished_at: str
    duration_s: float | None
    detail: str = ""  # why it ended as it did (the watcher's verdict, a crash's last words)
    kind: str = DEPLOY
    source: str = ""  # promote: "<env>/<release>"; rollback: the release it restored
    revisions: Mapping[str, Revision] = field(default_factory=dict)  # ECS: service → revision
    services: tuple[str, ...] = ()  # the services it deployed (ECS: those of `revisions`)
    number: int = 0  # a target's own ordering of releases (local: N of "rN"), 0 when none
    image_id: str = ""  # local: the image the release record pins
    current: bool = False  # local: its containers are the ones serving now
    available: bool = True  # local: its image is still there to roll back to
    present: bool = False  # local: it has service containers on the engine now, running or not

    @property
    def succeeded(self) -> bool:
        return self.outcome == rt.SUCCEEDED

    def to_json(self, current: bool = False) -> dict[str, Any]:
        """Stable keys (schema deployctl.history/v1): only ever added to."""
        return {
            "id": self.id,
            "outcome": self.outcome.replace(" ", "-"),  # the local target's "in progress"
            "kind": self.kind,
            "source": self.source or None,
            "git_sha": self.git_sha or None,
            "image_digest": self.image_digest or None,
            "image": self.image or None,
            "who": self.who or None,
            "started_at": self.started_at or None,
            "finished_at": self.finished_at or None,
            "duration_s": self.duration_s,
            "detail": self.detail or None,
            "current": current,
            "services": {name: {"task_definition": r.arn, "revision": r.number, "family": r.family,
                                "outcome": r.outcome} for name, r in sorted(self.revisions.items())}
            if self.revisions else {name: {} for name in self.services},
        }


def revision_from(td: TaskDefinition) -> Revision | None:
    """A Revision from a described task definition (read with its tags); None for a revision
    deployctl did not register (no release tag)."""
    tags = dict(td.tags)
    parsed = rt.parse(tags)
    if not parsed.release:
        return None
    service = parsed.service or (td.containers[0].name if td.containers else "")
    image = next((c.image for c in td.containers if c.name == service), "")
    if not image and td.containers:
        image = td.containers[0].image
    return Revision(arn=td.arn, family=td.family, number=td.revision, service=service, image=image, tags=tags,
                    registered_at=td.registered_at)


def revisions_from(td: TaskDefinition) -> list[Revision]:
    """The releases one described revision belongs to: the one that registered it
    (`revision_from`), then each rollback that ran it again as it is (its rerun tags), oldest first."""
    base = revision_from(td)
    if base is None:
        return []
    out = [base]
    kept = {k: v for k, v in base.tags.items() if k not in _OUTCOME_KEYS and not k.startswith(rt.RERUN_PREFIX)}
    reruns = sorted((k, v) for k, v in base.tags.items() if k.startswith(rt.RERUN_PREFIX))
    for key, value in reruns:  # keys hold release ids, which sort by time
        rec = rt.record_tags(value)
        tags = {**kept, KIND: ROLLBACK, SOURCE: base.parsed.release or "", **rec,
                rt.RELEASE: key[len(rt.RERUN_PREFIX):]}
        out.append(replace(base, tags=tags, record=key, registered_at=_rerun_time(rec)))
    return out


def record_for(rev: Revision, tags: Mapping[str, str]) -> dict[str, str]:
    """The tags that record `tags` (outcome tags) for `rev`'s release: those tags themselves on a
    revision the release registered, its rerun tag (all it says so far, updated) on one it reran."""
    if not rev.record:
        return dict(tags)
    now = {k: v for k, v in rev.tags.items() if k in _OUTCOME_KEYS}
    return {rev.record: rt.record_value({**now, **tags})}


def _rerun_time(rec: Mapping[str, str]) -> str:
    """When a rerun started, as boto3 gives registeredAt (ISO, local time zone), to order it
    with the revisions registered around it."""
    parsed: datetime | None
    try:
        parsed = datetime.fromtimestamp(float(rec[rt.RERUN_AT]), UTC)
    except (KeyError, ValueError):
        parsed = _parse_iso(rec.get(rt.STARTED_AT))
    return parsed.astimezone().isoformat() if parsed else ""


def combined_outcome(outcomes: Iterable[str]) -> str:
    """One release's outcome from its services': any failure decides, then any rollback."""
    seen = set(outcomes)
    for outcome in (rt.FAILED, rt.ROLLED_BACK, rt.IN_PROGRESS):
        if outcome in seen:
            return outcome
    return rt.SUCCEEDED if seen == {rt.SUCCEEDED} else "unknown"


def _digest_of(image: str) -> str:
    return image.rsplit("@", 1)[1] if "@" in image else ""


def build(revisions: Iterable[Revision], *, app: str | None = None, env: str | None = None) -> list[Release]:
    """Group revisions by release id; newest release first.

    Order: by the release's earliest registration time, then its id (ids start with the UTC
    second they were made). Only revisions of `app`/`env` are kept when those are given.
    """
    groups: dict[str, list[Revision]] = {}
    for rev in revisions:
        p = rev.parsed
        if app is not None and p.app not in (None, app):
            continue
        if env is not None and p.env not in (None, env):
            continue
        groups.setdefault(str(p.release), []).append(rev)
    out = []
    for rid, revs in groups.items():
        by_service: dict[str, Revision] = {}
        for rev in sorted(revs, key=lambda r: r.number):
            by_service[rev.service] = rev  # a re-registration within one release: newest wins
        tags = [r.parsed for r in by_service.values()]
        digests = sorted({t.image_digest or _digest_of(r.image) for t, r in zip(tags, by_service.values(),
                                                                                   strict=True)} - {""})
        first = tags[0]
        raw = next(iter(by_service.values())).tags
        started = min((t.started_at for t in tags if t.started_at), default="")
        finished = max((t.finished_at for t in tags if t.finished_at), default="")
        out.append(Release(
            id=rid, app=first.app or app or "", env=first.env or env or "", revisions=by_service,
            services=tuple(sorted(by_service)),
            outcome=combined_outcome(r.outcome for r in by_service.values()),
            git_sha=first.git_sha or "", image_digest=",".join(digests),
            image=next(iter(by_service.values())).image,
            who=first.actor or "", started_at=started, finished_at=finished,
            duration_s=_duration(tags, started, finished),
            detail="; ".join(sorted({t.detail for t in tags if t.detail})),
            kind=raw.get(KIND, DEPLOY), source=raw.get(SOURCE, ""),
        ))
    out.sort(key=_order_key, reverse=True)
    # An in-progress release that is not the newest one will never get its verdict.
    return [r if i == 0 or r.outcome != rt.IN_PROGRESS else _with_outcome(r, INTERRUPTED)
            for i, r in enumerate(out)]


def _duration(tags: Sequence[rt.ReleaseTags], started: str, finished: str) -> float | None:
    """The whole release: its first start to its last finish, every service and wave included.
    A service's own `duration-s` (its rollout alone) only stands in when a time is missing, and
    only while no service is still going."""
    begin, end = _parse_iso(started), _parse_iso(finished)
    if begin is not None and end is not None and all(t.finished_at for t in tags):
        return round(max(0.0, (end - begin).total_seconds()), 1)
    durations = [t.duration_s for t in tags if t.duration_s is not None]
    return max(durations) if durations and len(durations) == len(tags) else None


def _order_key(r: Release) -> tuple[datetime, int, str]:
    """Registration time when ECS gives it, else the start tag (second resolution at worst);
    ties go to the higher revision number, which ECS hands out in order per family.

    Compared as times, not strings: a rerun's time has a fraction ("…:40.5+00:00") and a start
    tag has none ("…:40Z"), and as text '.' sorts before 'Z', so a rollback in the same second
    as the deploy before it came out older."""
    registered = [t for rev in r.revisions.values() if (t := _parse_iso(rev.registered_at))]
    when = min(registered) if registered else _parse_iso(r.started_at)
    if when is None and rt.is_release_id(r.id):  # 20260315T101500Z-… → 2026-03-15T10:15:00Z
        i = r.id[:16]
        when = _parse_iso(f"{i[0:4]}-{i[4:6]}-{i[6:8]}T{i[9:11]}:{i[11:13]}:{i[13:15]}Z")
    return (when or _EPOCH, max(rev.number for rev in r.revisions.values()), r.id)


_EPOCH = datetime.fromtimestamp(0, UTC)


def _with_outcome(r: Release, outcome: str) -> Release:
    return replace(r, outcome=outcome)


# ------------------------------------------------------------------------------------------
# What runs now
# ------------------------------------------------------------------------------------------


def current(releases: Sequence[Release], running: Mapping[str, str]) -> Release | None:
    """The newest release owning one of the running task-definition ARNs (service → ARN)."""
    arns = set(running.values())
    return next((r for r in releases if any(rev.arn in arns for rev in r.revisions.values())), None)


def release_of(releases: Sequence[Release], arn: str) -> Release | None:
    return next((r for r in releases if any(rev.arn == arn for rev in r.revisions.values())), None)


def _index(releases: Sequence[Release], release_id: str) -> int | None:
    return next((i for i, r in enumerate(releases) if r.id == release_id), None)


def state_at(releases: Sequence[Release], target: Release, services: Iterable[str]) -> dict[str, Revision]:
    """What each service ran once `target` had finished: its own revision for the services it
    deployed, for the others the newest succeeded revision of an older release."""
    start = _index(releases, target.id)
    older = releases[start:] if start is not None else [target]
    out: dict[str, Revision] = {}
    for name in services:
        for r in older:
            rev = r.revisions.get(name)
            if rev is not None and (r is target or rev.outcome == rt.SUCCEEDED):
                out[name] = rev
                break
    return out


# ------------------------------------------------------------------------------------------
# Promote
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceView:
    """What one ECS service shows now (from DescribeServices), reduced to what selection needs."""

    service: str
    task_definition: str | None  # ARN the service runs (its PRIMARY deployment's)
    rollout_state: str | None  # PRIMARY deployment's rolloutState
    deployments: int
    running: int = 0
    desired: int = 0


def service_view(name: str, state: ServiceState | None) -> ServiceView:
    if state is None:
        return ServiceView(name, None, None, 0)
    primary = state.primary
    if primary is None:
        return ServiceView(name, state.task_definition or None, None, len(state.deployments), 0, state.desired)
    return ServiceView(name, primary.task_definition or state.task_definition or None,
                       primary.rollout_state or None, len(state.deployments), primary.running,
                       primary.desired or state.desired)


@dataclass(frozen=True)
class PromoteSource:
    release: Release  # the source's current release
    revisions: Mapping[str, Revision]  # service → the revision it runs (all succeeded)
    image: str  # repo@sha256:… every service runs
    digest: str


def promotable(env: str, releases: Sequence[Release], views: Sequence[ServiceView]) -> PromoteSource:
    """What promote takes from `env`; DeployFailed (exit 1) saying why when it must not."""
    hint_fix = f"fix {env} first (`deployctl history --env {env}`, `deployctl status --env {env}`)"
    missing = [v.service for v in views if v.task_definition is None]
    if missing:
        raise DeployFailed(f"{env} does not run {', '.join(missing)}: nothing to promote",
                           hint=f"deploy {env} first with `deployctl run --env {env}`")
    moving = [v for v in views if v.rollout_state != "COMPLETED" or v.deployments != 1]
    if moving:
        what = ", ".join(f"{v.service} ({(v.rollout_state or 'unknown').lower()}, {v.deployments} deployments)"
                         for v in moving)
        raise DeployFailed(f"{env} is still rolling out: {what}; promote only a settled release",
                           hint=f"wait for it with `deployctl status --env {env} --watch`")
    if releases and not releases[0].succeeded:
        newest = releases[0]
        raise DeployFailed(f"{env}'s latest release {newest.id} {_outcome_words(newest.outcome)}; refusing to "
                           f"promote from {env} while it is not healthy on its latest release", hint=hint_fix)
    revisions: dict[str, Revision] = {}
    for v in views:
        rel = release_of(releases, str(v.task_definition))
        rev = rel.revisions[_service_in(rel, str(v.task_definition))] if rel else None
        if rel is None or rev is None:
            raise DeployFailed(f"{env}'s {v.service} runs {v.task_definition}, which deployctl did not "
                               f"deploy (no release tags): nothing it can vouch for", hint=hint_fix)
        if rev.outcome != rt.SUCCEEDED:
            raise DeployFailed(f"{env}'s {v.service} runs release {rel.id}, which "
                               f"{_outcome_words(rev.outcome)}; refusing to promote it", hint=hint_fix)
        revisions[v.service] = rev
    images = {r.image for r in revisions.values()}
    if len(images) != 1 or "@" not in next(iter(images)):
        raise DeployFailed(f"{env}'s services do not run one image by digest ({', '.join(sorted(images))})",
                           hint=hint_fix)
    image = images.pop()
    cur = current(releases, {s: r.arn for s, r in revisions.items()})
    assert cur is not None  # every running revision belongs to a release (checked above)
    return PromoteSource(release=cur, revisions=revisions, image=image, digest=_digest_of(image))


def _service_in(rel: Release, arn: str) -> str:
    return next(name for name, rev in rel.revisions.items() if rev.arn == arn)


def _outcome_words(outcome: str) -> str:
    return {rt.FAILED: "failed", rt.ROLLED_BACK: "failed and was rolled back",
            rt.IN_PROGRESS: "is still in progress", INTERRUPTED: "was interrupted before its verdict",
            rt.SUCCEEDED: "succeeded"}.get(outcome, f"has outcome {outcome}")


def same_services(src_env: str, src: Iterable[str], dst_env: str, dst: Iterable[str]) -> None:
    """UsageError (exit 2) when two environments disagree on their services."""
    a, b = set(src), set(dst)
    if a == b:
        return
    parts = []
    if a - b:
        parts.append(f"only {src_env} has {', '.join(sorted(a - b))}")
    if b - a:
        parts.append(f"only {dst_env} has {', '.join(sorted(b - a))}")
    raise UsageError(f"{src_env} and {dst_env} disagree on their services ({'; '.join(parts)}); promote deploys "
                     f"every service of {src_env} to {dst_env}",
                     hint="make the services of both environments the same in deploy.yaml")


# ------------------------------------------------------------------------------------------
# Settling a release whose watch ended without a verdict
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    """The verdict ECS shows for one revision a release left `in-progress` (its watch was
    cut off: Ctrl-C, a killed runner). Recorded with the same outcome tags a run writes."""

    service: str
    revision: Revision
    outcome: str  # succeeded | failed | rolled-back
    detail: str = ""
    rolled_back_to: str | None = None
    finished_at: datetime | None = None  # when ECS says the deployment settled, if it says

    def tags(self, now: datetime) -> dict[str, str]:
        """The outcome tags for the revision (releases_tags.outcome_tags, like a run's)."""
        finished = self.finished_at or now
        started = _parse_iso(self.revision.parsed.started_at)
        duration = max(0.0, (finished - started).total_seconds()) if started else 0.0
        return rt.outcome_tags(self.outcome, finished_at=finished, duration_s=duration, detail=self.detail,
                               rolled_back_to=self.rolled_back_to)

    def settled_revision(self, now: datetime) -> Revision:
        return replace(self.revision, tags={**self.revision.tags, **self.tags(now)})


# Tag values allow no parentheses, commas or quotes (releases_tags.tag_value).
SETTLED_LATER = "recorded from what ECS shows after the deploy watch ended"


def settle(latest: Release | None, described: Mapping[str, ServiceState | None]) -> list[Settlement]:
    """Verdicts for the `in-progress` revisions of the newest release that ECS has finished
    rolling out (`described`: service → DescribeServices entry). Honest like the watcher
    (honest verdicts, docs/ecs-rollouts.md):

    - our revision is the PRIMARY deployment, COMPLETED, alone and at its desired count → succeeded;
    - our revision is PRIMARY and FAILED (circuit breaker or alarm without rollback) → failed;
    - an older revision of the family is PRIMARY, COMPLETED and alone (ECS rolled back and our
      deployment drained) → rolled-back, naming the revision it went back to.

    Anything still moving (IN_PROGRESS, our deployment still draining) or that this cannot
    explain (a newer or foreign revision runs) is left alone. The caller must make sure no
    deploy still owns the release (the deploy lock) before recording these."""
    if latest is None or latest.outcome != rt.IN_PROGRESS:
        return []
    out = []
    for name, rev in sorted(latest.revisions.items()):
        if rev.outcome != rt.IN_PROGRESS:
            continue
        found = _settled(name, rev, described.get(name))
        if found is not None:
            out.append(found)
    return out


def settle_revision(name: str, rev: Revision, svc: ServiceState | None) -> Settlement | None:
    """The verdict ECS shows for one `in-progress` revision of service `name` (same rules as
    `settle`), or None. Used by a deploy, holding the lock, on the revision it is about to
    supersede: once superseded an `in-progress` release shows as `interrupted` for good, although
    ECS may well show how it ended (its deploy was killed, or could not write its outcome tag)."""
    if rev.outcome != rt.IN_PROGRESS:
        return None
    return _settled(name, rev, svc)


def _settled(name: str, rev: Revision, service: ServiceState | None) -> Settlement | None:
    if service is None:
        return None
    primary = service.primary
    if primary is None:
        return None
    state, reason, arn = primary.rollout_state, primary.reason, primary.task_definition
    when = datetime.fromtimestamp(primary.updated_at, UTC) if primary.updated_at else None
    alone = len(service.deployments) == 1
    if arn == rev.arn:
        if state == COMPLETED and alone and primary.running == primary.desired:
            return Settlement(name, rev, rt.SUCCEEDED, SETTLED_LATER, finished_at=when)
        if state == FAILED:
            detail = f"ECS deployment {primary.id or '?'} failed" + (f": {reason}" if reason else "")
            return Settlement(name, rev, rt.FAILED, f"{detail} - {SETTLED_LATER}", finished_at=when)
        return None
    if any(d.task_definition == rev.arn for d in service.deployments):
        return None  # our deployment is still there (draining after a rollback): not over yet
    family, number = _family_and_number(arn)
    if family != rev.family or number >= rev.number:
        return None  # a newer or foreign revision runs: not something this release can explain
    if state == COMPLETED and alone:
        label = _arn_label(arn)
        return Settlement(name, rev, rt.ROLLED_BACK, f"ECS rolled the service back to {label} - {SETTLED_LATER}",
                          rolled_back_to=label, finished_at=when)
    return None


def apply_settlements(revisions: Iterable[Revision], settled: Iterable[Revision]) -> list[Revision]:
    """`revisions` with the settled ones (same ARN and record) in their place."""
    by_key = {(r.arn, r.record): r for r in settled}
    return [by_key.get((r.arn, r.record), r) for r in revisions]


def _family_and_number(arn: str) -> tuple[str, int]:
    family, _, number = _arn_label(arn).rpartition(":")
    try:
        return family, int(number)
    except ValueError:
        return family, 0


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------------------
# Rollback
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollbackChoice:
    current: Release | None
    target: Release
    revisions: Mapping[str, Revision]  # service → revision to run again
    running: Mapping[str, str]  # service → ARN it runs now

    def changes(self) -> list[tuple[str, str, str]]:
        """(service, now, then) lines for the confirmation, `family:rev (digest)` each side."""
        out = []
        for name, rev in sorted(self.revisions.items()):
            now = self.running.get(name)
            now_text = _arn_label(now) if now else "not running"
            out.append((name, now_text, f"{rev.label} ({_short_digest(rev.image)})"))
        return out


def _arn_label(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _short_digest(image: str) -> str:
    d = _digest_of(image)
    return d[:19] if d else image


@dataclass(frozen=True)
class LiveState:
    """What runs in one environment now, as its target sees it: everything the one rollback
    chooser (`choose`) needs besides the releases. What differs between targets is data here.

    `images` says what each release would run again if chosen (release id → service → image
    identity; ECS: each service's image at that release, the local target: the image id), and
    `running` what runs now in the same terms: a release is a rollback target only if it changes
    an image."""

    where: str  # how messages name the environment ("staging", "app/dev")
    env: str  # its name in deploy.yaml, for the commands a message suggests
    current: Release | None  # the release serving now
    images: Mapping[str, Mapping[str, str]]
    running: Mapping[str, str]
    # The newest release that went live, serving or failing now (the local target sees a live
    # release whose containers keep crashing); counting back starts below it. None: `current`.
    anchor: Release | None = None
    nothing: str = "nothing deployctl released runs there"  # what runs when no release does
    hint: str = ""  # added to "`deployctl history` shows its releases" (e.g. how many are kept)


def choose(releases: Sequence[Release], live: LiveState, *, to: str | None = None, steps: int = 1) -> Release:
    """The release `rollback` deploys again, for every target. UsageError (exit 2) when there is
    none: nothing was changed and the person has to pick something else.

    By default the newest succeeded release older than what runs now whose images differ from
    what runs now; `steps` N counts back N such releases, down the history as `history` lists it
    (a rollback release is a release like any other), each image set counted once. `to` names a
    release: it must have succeeded and not be what runs now."""
    if steps < 1:
        raise UsageError("--steps must be 1 or more")
    where, cur = live.where, live.current
    anchor = live.anchor or cur
    if to is not None:
        target = next((r for r in releases if r.id == to), None)
        if target is None:
            known = ", ".join(r.id for r in releases[:5]) or "none"
            raise UsageError(f"{where} has no release {to} (newest: {known})",
                             hint=f"`deployctl history --env {live.env}` lists them")
        if not target.succeeded:
            raise UsageError(f"release {to} of {where} {_outcome_words(target.outcome)}; refusing to roll back to "
                             "it", hint="choose a release whose outcome is succeeded")
        if cur is not None and target.id == cur.id:
            raise UsageError(f"{where} already runs release {to}")
        if anchor is not None and target.id == anchor.id:
            raise UsageError(f"release {to} is what {where} runs now, and it is failing (its containers are not up "
                             "and healthy); refusing to roll back to it",
                             hint=f"`deployctl status --env {live.env}` shows why; choose an earlier release")
    else:
        start = (_index(releases, anchor.id) or 0) + 1 if anchor is not None else 0
        now = frozenset(live.running.items())
        seen = {now}
        earlier = [r for r in releases[start:] if r.succeeded]
        candidates = []
        for r in earlier:
            images = frozenset(live.images.get(r.id, {}).items())
            if images in seen or not _changes_an_image(live.images.get(r.id, {}), live.running):
                continue
            seen.add(images)
            candidates.append(r)
        if len(candidates) < steps:
            other = " with other images" if len(earlier) > len(candidates) else ""
            what = f"no earlier succeeded release{other}" if not candidates else \
                f"only {len(candidates)} earlier succeeded release(s){other}, not {steps},"
            runs = (f"it runs {cur.id}" if cur is not None and anchor is not None and anchor.id == cur.id else
                    f"it runs {anchor.id}, which is failing" if anchor is not None else live.nothing)
            same = [r.id for r in earlier if r not in candidates]
            if same and not candidates:
                runs += f"; {', '.join(same[:3])}{'…' if len(same) > 3 else ''} ran the same images"
            raise UsageError(f"{where} has {what} to roll back to ({runs})",
                             hint=f"`deployctl history --env {live.env}` shows its releases"
                             + (f"; {live.hint}" if live.hint else ""))
        target = candidates[steps - 1]
    if not target.available:
        raise UsageError(f"the image of release {target.id} of {where} is gone: nothing to roll back to",
                         hint="it was removed outside deployctl; deploy that commit again instead")
    return target


def _changes_an_image(then: Mapping[str, str], now: Mapping[str, str]) -> bool:
    return any(now.get(service) != image for service, image in then.items())


def choose_rollback(env: str, releases: Sequence[Release], running: Mapping[str, str], *,
                    to: str | None = None, steps: int = 1) -> RollbackChoice:
    """ECS: the release `rollback` deploys again (`choose`) and, per service, the revision that
    runs again: the target's own, or for a service it did not deploy the one that ran then.
    `running`: service → task-definition ARN it runs now."""
    cur = current(releases, running)
    services = sorted(set(running) | {s for r in releases for s in r.revisions})
    states = {r.id: state_at(releases, r, services) for r in releases}
    image_of = {rev.arn: rev.image for r in releases for rev in r.revisions.values()}
    live = LiveState(where=env, env=env, current=cur,
                     images={rid: {s: rev.image for s, rev in st.items()} for rid, st in states.items()},
                     running={s: image_of.get(arn, arn) for s, arn in running.items()})
    target = choose(releases, live, to=to, steps=steps)
    changed = {s: r for s, r in states[target.id].items() if running.get(s) != r.arn}
    if not changed:
        raise UsageError(f"{env} already runs what release {target.id} deployed")
    return RollbackChoice(current=cur, target=target, revisions=changed, running=dict(running))


def register_request(described: TaskDefinition, *, release_id: str, restores: str) -> dict[str, Any]:
    """RegisterTaskDefinition request re-creating a described revision as part of a new
    (rollback) release: same definition, the release tags of the new release."""
    td = {k: v for k, v in described.definition.items() if k not in _READ_ONLY}
    tags = {k: v for k, v in described.tags.items()
            if k not in _OUTCOME_KEYS and not k.startswith(rt.RERUN_PREFIX)}
    tags[rt.RELEASE] = release_id
    tags[KIND] = ROLLBACK
    tags[SOURCE] = rt.tag_value(restores)
    td["tags"] = rt.to_list(tags)
    return td

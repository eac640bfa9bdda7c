"""The Target protocol: the whole release lifecycle of one environment on one platform.

A target (ECS Fargate, the local Docker engine, …) is one class implementing `Target`, made
for one resolved environment (`Target(cfg)`), plus one entry in deployctl.targets.TARGETS.
Commands and use cases (deployctl.app) only ever talk to this protocol; they never ask which
target it is. What differs between targets (words in a status line, whether a lock can be
broken by hand) is data a target returns, not a branch in a command.

Lifecycle, in the order a release lives through it:
- `deploy(plan, image_ref, ctx, options)`: inside the deploy stage; returns when the new
  release is healthy, raises DeployFailed otherwise (a rollback is a failure too). `plan` is
  the run's Plan re-made with the pushed digest; `image_ref` is always `host/repo@sha256:…`;
  stream progress with `ctx.log`, publish `release` (and `url`) in `ctx.outputs`, honour
  `ctx.cancelled`.
- `lock(plan, options, ctx)`: the deploy lock held around every deploy (run, promote, rollback).
- `status()`: what runs now (deployctl.status/v1 and text lines), re-read on every call.
- `history(limit)`: releases, newest first, as deployctl.releases.Release.
- `choose_rollback(to, steps)` then `rollback(choice, options, run=…, log=…)`.
- `lock_holder()` / `break_lock(holder)`: `deployctl unlock` for a lock left by a dead deploy.
- `teardown(name, dry_run)`: remove one named preview copy of the environment.

A target with preview copies also implements `WithPreviews` and takes `preview=NAME` when made
(deployctl.targets.for_config): its status, history and rollback are then those of that copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from deployctl.adapters.lock_table import Holder
    from deployctl.config.model import ResolvedConfig
    from deployctl.pipeline import StageContext
    from deployctl.plan import Plan
    from deployctl.redact import Redactor
    from deployctl.releases import Release
    from deployctl.targets.log_lines import Line, Request


@dataclass(frozen=True)
class DeployOptions:
    """How one deploy runs. None means "as deploy.yaml says" (deploy.timeout, deploy.poll_interval)."""

    force: bool = False  # update even when the live task definition is identical
    no_rollback: bool = False  # leave a failed deploy in place instead of rolling back
    timeout: float | None = None  # seconds to wait for the rollout
    poll_interval: float | None = None  # watcher's base interval, seconds
    preview_name: str | None = None  # per-branch preview copy (environments with preview: true)
    yes: bool = False  # confirmations answered (CI)
    lock_wait: float = 0.0  # seconds to wait for another deploy's lock (deployctl.lock)
    # `rollback` on ECS: service → RegisterTaskDefinition request of the revision to run again
    # (deployctl.releases.register_request); only these services are deployed.
    task_definitions: Mapping[str, Mapping[str, Any]] | None = None
    # `rollback` on ECS: service → the ARN of that revision when it is still ACTIVE: it runs again
    # as it is, nothing is registered (the release is recorded on it, releases_tags.rerun_key).
    reuse_revisions: Mapping[str, str] | None = None
    drain: float | None = None  # local target: seconds to drain old containers (None: its default)
    project_dir: str | None = None  # deploy.yaml's directory: targets that upload files read them from it

    def effective_timeout(self, cfg: ResolvedConfig) -> float:
        return float(self.timeout if self.timeout is not None else cfg.deploy.timeout)

    def effective_poll(self, cfg: ResolvedConfig) -> float:
        return float(self.poll_interval if self.poll_interval is not None else cfg.deploy.poll_interval)


# Runs one deploy of `plan` as the `deploy` stage of the stage engine (same output, report and
# exit codes as `deployctl run`); returns the exit code. Passed in by the use case, so a target
# can deploy through the engine without importing what is above it. `before` runs once the
# lock is held (it may refuse by raising), `after` once the deploy ended, however it ended.
class DeployRunner(Protocol):
    def __call__(self, plan: Plan, image_ref: str, options: DeployOptions, *, release_id: str | None = None,
                 before: Callable[[StageContext], None] | None = None,
                 after: Callable[[StageContext], None] | None = None) -> int: ...


@dataclass(frozen=True)
class StatusView:
    """What `status` shows for one environment, the same for every target."""

    doc: Mapping[str, Any]  # deployctl.status/v1 (deployctl.render.status_doc)
    lines: tuple[str, ...]  # the text report
    problems: tuple[str, ...] = ()  # why it is not ok, one phrase per service
    unsettled: str = "still not settled"  # "<env>: <this> after 30s" when a watch times out
    done: str = ""  # the line once a watch ends settled and ok

    @property
    def settled(self) -> bool:
        return bool(self.doc["settled"])

    @property
    def ok(self) -> bool:
        return bool(self.doc["ok"])


@dataclass(frozen=True)
class History:
    releases: tuple[Release, ...]  # newest first
    current: str | None  # id of the release that runs now
    # release id → more keys of its deployctl.history/v1 entry: what a companion target (the
    # frontend) ran with that release, e.g. {"frontend": {id, url, state, …}}
    attached: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class RollbackChoice:
    """What `rollback` would do, shown to the person before they confirm."""

    current: Release | None
    target: Release
    summary: tuple[str, ...]  # lines to show: from what to what
    question: str  # the confirmation
    # Target-specific data the rollback needs (what runs now, revisions to run again, …).
    detail: Any = None


@dataclass
class DestroyReport:
    """What a teardown of one named preview removed (deployctl.destroy/v1)."""

    env: str
    name: str
    cluster: str | None
    services_deleted: list[str] = field(default_factory=list)
    task_definitions_deregistered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    dry_run: bool = False
    others_deleted: list[str] = field(default_factory=list)  # a companion's, described (Vercel deployments)


@dataclass(frozen=True)
class PreviewService:
    """One service of a live preview copy, as the platform shows it now."""

    service: str  # its name on the platform (ECS: the service name)
    task_definition: str  # what it runs ("family:revision" on ECS)
    rollout_state: str | None
    running: int
    desired: int


@dataclass(frozen=True)
class LivePreview:
    """One named preview copy of an environment that has live services (deployctl.previews/v1)."""

    name: str
    release: str | None  # the newest deployctl release among what its services run
    services: tuple[PreviewService, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "release": self.release,
                "services": [{"service": s.service, "task_definition": s.task_definition,
                              "rollout_state": s.rollout_state, "running": s.running, "desired": s.desired}
                             for s in self.services]}


@runtime_checkable
class Target(Protocol):
    """One platform's release lifecycle for one environment (see the module docstring)."""

    name: ClassVar[str]
    cfg: ResolvedConfig
    needs_ci_role: ClassVar[bool]  # `deployctl iam-policy` has a policy to write for it
    # Said by `unlock` when the target's lock cannot go stale (it has nothing to break), else "".
    unlock_note: ClassVar[str]
    features: ClassVar[frozenset[str]]  # the FEATURE_* it supports

    def deploy(self, plan: Plan, image_ref: str, ctx: StageContext, options: DeployOptions) -> None: ...

    def lock(self, plan: Plan, options: DeployOptions,
             ctx: StageContext | None = None) -> AbstractContextManager[object]: ...

    def status(self) -> StatusView: ...

    def history(self, limit: int | None = 20) -> History: ...

    def choose_rollback(self, to: str | None = None, steps: int = 1) -> RollbackChoice: ...

    def rollback(self, choice: RollbackChoice, options: DeployOptions, *, run: DeployRunner,
                 log: Callable[[str], None], as_json: bool = False) -> int: ...

    def lock_holder(self) -> Holder | None: ...

    def break_lock(self, holder: Holder) -> None: ...

    def teardown(self, name: str, *, dry_run: bool = False) -> DestroyReport: ...

    def teardown_question(self, name: str) -> str: ...

    def secret_values(self, environ: Mapping[str, str]) -> list[str]: ...

    def cost_line(self, plan: Plan) -> str: ...


@runtime_checkable
class WithPreviews(Protocol):
    """A target whose environments can have named preview copies (`preview: true`). Such a target
    is also made for one copy, `Target(cfg, preview=NAME)`: then status, history and rollback
    are those of that copy."""

    def previews(self) -> list[LivePreview]:
        """The environment's preview copies that have live services, by name."""


class LogReader(Protocol):
    """Reads deployctl.targets.log_lines.Line for one logs request."""

    truncated: bool

    def read(self, start_ms: int) -> list[Line]: ...

    def follow(self, start_ms: int, *, interval: float = ...,
               sleep: Callable[[float], None] = ...) -> Iterator[Line]: ...


@runtime_checkable
class WithLogs(Protocol):
    """A target whose services' output `deployctl logs` can read."""

    def open_logs(self, req: Request, redactor: Redactor) -> tuple[LogReader, list[str]]:
        """(a reader of deployctl.targets.log_lines.Line for `req`, a log_lines.Request, and the
        services it reads, in deploy.yaml order); the reader has `read(start_ms)`,
        `follow(start_ms)` and `truncated`."""


# What a target can do beyond the lifecycle, each a use case of its own (deployctl.app): a
# target lists the ones it supports in its `features` and the use case asks
# deployctl.targets.supports(cfg, feature) rather than which target it is.
FEATURE_DIFF = "diff"  # `deployctl diff`: live service settings against the plan
FEATURE_SCALE = "scale"  # `deployctl scale`: set a running service's count without a deploy
FEATURE_TASK = "task"  # `deployctl task run`: a one-off task from a release
FEATURE_COST_CAP = "cost-cap"  # `monitoring.cost_cap` stops services; `deployctl resume`
FEATURE_STACK = "stack"  # `deployctl bootstrap`: the environment's CloudFormation stack


@runtime_checkable
class Promotable(Protocol):
    """A target whose environments can be promoted from one to another (by image digest)."""

    def promote_source(self) -> Any:
        """What runs in this (source) environment, vouched for; DeployFailed when it must not go."""

    def tag_release(self, release_id: str | None, tags: dict[str, str], log: Callable[[str], None]) -> None:
        """Record `tags` on release `release_id` of this (destination) environment."""

"""Deploy targets: one interface, two implementations (ecs.py for Fargate, docker.py for the
local engine).

A target module exposes

    def deploy(plan: Plan, image_ref: str, ctx: StageContext, options: DeployOptions) -> None

- `plan` is the run's Plan, re-made with the pushed digest, so its task definitions already
  name `image_ref`;
- `image_ref` is always `host/repo@sha256:…` (never a tag: principle 3, build once, promote
  by digest);
- `ctx` is the deploy stage's context: stream progress with `ctx.log`, a short status with
  `ctx.note`, publish results in `ctx.outputs` (`release`, and `url` when the app is
  reachable somewhere: `deployctl run` prints it), honour `ctx.cancelled`;
- it returns when the new release is healthy and raises DeployFailed otherwise (a rollback
  is a failure too).

`deploy_guard(plan, options, ctx)` is the seam for the deploy lock (deployctl.lock): every
command that deploys (run, promote, rollback) wraps the target call in it.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from deployctl.errors import DeployFailed

if TYPE_CHECKING:
    from deployctl.plan import Plan

TARGETS = {"ecs": "deployctl.targets.ecs", "docker": "deployctl.targets.docker"}


@dataclass(frozen=True)
class DeployOptions:
    force: bool = False  # update even when the live task definition is identical
    no_rollback: bool = False  # leave a failed deploy in place instead of rolling back
    timeout: float = 900.0  # seconds to wait for the rollout
    poll_interval: float = 5.0  # watcher's base interval, seconds
    preview_name: str | None = None  # per-branch preview copy (environments with preview: true)
    yes: bool = False  # confirmations answered (CI)
    lock_wait: float = 0.0  # seconds to wait for another deploy's lock (deployctl.lock)


class Target(Protocol):
    def deploy(self, plan: Plan, image_ref: str, ctx: Any, options: DeployOptions) -> None: ...


def get_target(name: str) -> ModuleType:
    """The module implementing target `name`; DeployFailed (exit 1) if it is not available."""
    module_name = TARGETS.get(name)
    if module_name is None:
        raise DeployFailed(f"unknown deploy target {name!r}", hint=f"known targets: {', '.join(TARGETS)}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise DeployFailed(f"the {name} deploy target is not available in this deployctl "
                           f"({module_name} is missing)",
                           hint="run the other stages with `--skip deploy`, or install a deployctl with "
                                f"the {name} target") from None
    if not callable(getattr(module, "deploy", None)):
        raise DeployFailed(f"{module_name} has no deploy() function")
    return module


@contextlib.contextmanager
def deploy_guard(plan: Plan, options: DeployOptions, ctx: Any = None) -> Iterator[None]:
    """Held around every deploy of `plan.env` (run, promote, rollback): the deploy lock
    (deployctl.lock). Pass the deploy stage's `ctx` so the wait honours cancellation, progress
    goes to its log and the lock names the release (its id is made here, before the deploy)."""
    if plan.target != "ecs":  # the docker target takes a flock of its own (targets/docker.py)
        yield
        return
    from deployctl import lock

    with lock.deploy_lock(plan, options, ctx):
        yield

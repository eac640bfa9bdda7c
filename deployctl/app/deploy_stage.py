"""One deploy as the `deploy` stage of the stage engine: lock, target.deploy, report.

`run`, `promote` and `rollback` all deploy this way, so output, report and exit codes match.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from deployctl.errors import DeployctlError
from deployctl.pipeline import Job, Reporter, RunReport, StageContext, run_jobs
from deployctl.plan import Plan
from deployctl.redact import Redactor
from deployctl.targets.base import DeployOptions, Target


def hinted(fn: Callable[[StageContext], None]) -> Callable[[StageContext], None]:
    """The engine records an error's message only; fold the hint in so the summary and the
    JSON report carry the "what to do" part too. The error raised is a copy: the original
    (which a caller may still hold) keeps its message and hint."""

    def run(ctx: StageContext) -> None:
        try:
            fn(ctx)
        except DeployctlError as exc:
            if not exc.hint:
                raise
            folded = copy.copy(exc)
            # A block gets the hint as its own line; a one-line message keeps it on that line.
            joint = "\nhint: " if "\n" in exc.message else " — hint: "
            folded.message, folded.hint = f"{exc.message}{joint}{exc.hint}", None
            folded.args = (folded.message,)
            raise folded.with_traceback(exc.__traceback__) from exc.__cause__

    return run


def deploy_job(target: Target, plan: Plan, image_ref: str, options: DeployOptions, *,
               release_id: str | None = None, before: Callable[[StageContext], None] | None = None,
               after: Callable[[StageContext], None] | None = None) -> Job:
    """The `deploy` stage: `before` runs once the lock is held, before anything changes (it may
    refuse by raising); `after` once the deploy ended, however it ended."""

    def deploy(ctx: StageContext) -> None:
        if release_id:
            ctx.outputs["release"] = release_id
        ctx.outputs["image_ref"] = image_ref
        ctx.outputs["digest"] = image_ref.rsplit("@", 1)[-1]
        try:
            with target.lock(plan, options, ctx):
                if before is not None:
                    before(ctx)
                target.deploy(plan, image_ref, ctx, options)
        finally:
            if after is not None:
                after(ctx)

    return Job("deploy", (), hinted(deploy))


def run_deploy(target: Target, plan: Plan, image_ref: str, options: DeployOptions, *, reporter: Reporter,
               redactor: Redactor | None, release_id: str | None = None,
               before: Callable[[StageContext], None] | None = None,
               after: Callable[[StageContext], None] | None = None) -> RunReport:
    job = deploy_job(target, plan, image_ref, options, release_id=release_id, before=before, after=after)
    return run_jobs([job], reporter, redactor=redactor)


def stage_tracebacks(result: RunReport, verbose: bool) -> list[str]:
    """Internal errors inside stages keep their traceback out of normal output (`--verbose`)."""
    if not verbose:
        return []
    return [f"--- traceback of stage {r.name} ---\n{r.traceback}" for r in result.stages if r.traceback]

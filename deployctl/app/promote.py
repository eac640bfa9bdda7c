"""The `promote` use case: deploy to DEST exactly the image (by digest) that SOURCE runs.

SOURCE must be DEST's `promote_from`, both on a target that can promote (the Promotable part
of deployctl.targets.base), and SOURCE's latest release must have succeeded and be settled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deployctl import releases
from deployctl.adapters.git import GitFacts
from deployctl.config.model import ResolvedConfig
from deployctl.errors import DeployctlError, UsageError
from deployctl.plan import Plan, guardrail_violations, make_plan
from deployctl.render.ecs import Facts
from deployctl.targets import DeployOptions, for_config, target_class
from deployctl.targets.base import DeployRunner, Promotable, Target

Load = Callable[[str], ResolvedConfig]  # environment name → its resolved config


@dataclass(frozen=True)
class Promotion:
    source: str
    dest: str
    plan: Plan
    chosen: releases.PromoteSource
    target: Target  # DEST's

    def summary(self) -> list[str]:
        rel, plan = self.chosen.release, self.plan
        lines = [f"promote {plan.app} {self.source} → {self.dest}: release {rel.id} "
                 f"(git {rel.git_sha[:12] or '?'}, by {rel.who or '?'})", f"  image {self.chosen.image}"]
        lines += [f"  {sp.name}: {self.source} runs {self.chosen.revisions[sp.name].label}; {self.dest} gets a new "
                  f"revision of {sp.family}" for sp in plan.services]
        return lines


def prepare(load: Load, source: str, dest: str, *, allow_frontend_api_url_mismatch: bool = False) -> Promotion:
    """Everything checked and read; nothing changed. UsageError/DeployFailed say why not."""
    dst_cfg, src_cfg = load(dest), load(source)
    origin = dst_cfg.environment.promote_from
    if origin != source:
        if origin is None:
            raise UsageError(f"{dest} is not a promotion target (it has no promote_from)"
                             if source != dest else f"cannot promote {dest} to itself",
                             hint=_hint(load, source, dest))
        raise UsageError(f"{dest} is promoted only from {origin}, not from {source}",
                         hint=f"`deployctl promote {origin} {dest}`")
    src, dst = for_config(src_cfg), for_config(dst_cfg)
    for cfg, target in ((src_cfg, src), (dst_cfg, dst)):
        if not isinstance(target, Promotable):
            raise UsageError(f"`promote` works on ECS environments; {cfg.env_name} has target "
                             f"{cfg.environment.target}")
    releases.same_services(source, src_cfg.services, dest, dst_cfg.services)
    assert isinstance(src, Promotable)
    chosen = src.promote_source()
    check = getattr(dst, "check_promotion", None)  # a destination with companions (the frontend)
    if check is not None:
        check(source, chosen.digest, allow_frontend_api_url_mismatch=allow_frontend_api_url_mismatch)
    rel = chosen.release
    git = GitFacts(sha=rel.git_sha or "unknown", branch=f"promote-{source}")
    plan = make_plan(dst_cfg, git, facts=Facts(git_sha=rel.git_sha or None, image_digest=chosen.digest),
                     image_override=chosen.image)
    violations = guardrail_violations(plan)
    if violations:
        raise UsageError("plan refused by guardrails: " + "; ".join(violations),
                         hint=f"lower count/cpu/memory or raise {dest}'s guardrails")
    return Promotion(source, dest, plan, chosen, dst)


def execute(p: Promotion, options: DeployOptions, run: DeployRunner) -> int:
    """Deploy it (watched like `run`); the new release records where it came from."""
    dst = p.target
    assert isinstance(dst, Promotable)

    def record_source(ctx: Any) -> None:
        dst.tag_release(ctx.outputs.get("release"),
                        {releases.KIND: releases.PROMOTE, releases.SOURCE: f"{p.source}/{p.chosen.release.id}"},
                        ctx.log)

    return run(p.plan, p.chosen.image, options, after=record_source)


def _hint(load: Load, source: str, dest: str) -> str:
    """What to do instead of a refused promotion. A promote_from is suggested only when
    `validate` accepts it and promote can use it: two different environments of a target that
    promotes, that are not preview environments (their copies are named per run), and no
    promote_from cycle."""
    run = f"deploy {dest} with `deployctl run --env {dest}`"
    cfgs = {name: load(name) for name in dict.fromkeys((source, dest))}
    chain, at = {dest}, cfgs[source].environment.promote_from
    cyclic = source in chain
    while at and not cyclic:  # would dest → source → … lead back to dest?
        cyclic = at in chain
        chain.add(at)
        try:
            at = load(at).environment.promote_from
        except DeployctlError:  # an unloadable link: validate reports it; suggest nothing
            cyclic = True
    if cyclic or any(not issubclass(target_class(c.environment.target), Promotable) or c.environment.preview
                     for c in cfgs.values()):
        return f"{run}; promote copies a release between two different ECS environments (not previews)"
    return f"{run}, or set environments.{dest}.promote_from: {source} in deploy.yaml"

"""The push stage: push the built image and record its digest, or skip when the registry has it.

Outputs for later stages and CI (`$GITHUB_OUTPUT`): `image` (`host/repo:tag`), `digest`
(`sha256:…`) and `image_ref` (`host/repo@sha256:…`, what deploys use).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deployctl.errors import DeployctlError, StageFailed
from deployctl.stages import EngineHandle, ImageSpec, ImageState
from deployctl.stages.access import RegistryAccess, ensure_ecr_repository
from deployctl.stages.build import compute_inputs, record_image, registry_has
from deployctl.stages.context import INPUTS_LABEL
from deployctl.stages.image_check import check_image


def job_fn(
    spec: ImageSpec,
    state: ImageState,
    engine: EngineHandle,
    access: RegistryAccess,
    *,
    ecr: Any | None = None,
) -> Callable[[Any], None]:
    """The push job. `ecr` is an ECR client when image.registry is `ecr` (the repository is
    created on first push)."""

    def run(ctx: Any) -> None:
        with state.lock:
            remote, inputs, built = state.remote_digest, state.inputs, state.built
        if remote:
            record_image(ctx.outputs, spec, remote)
            ctx.skip(f"{spec.ref} already in registry ({remote[:19]}…)")
            return
        if inputs is None:
            # Build was not part of this run (`--skip build`, `--from push`): the registry may
            # still hold exactly this image.
            _, inputs = compute_inputs(spec)
            digest = registry_has(spec, inputs, access, ctx.log, ctx)
            if digest:
                record_image(ctx.outputs, spec, digest)
                ctx.skip(f"{spec.ref} already in registry with the same build inputs ({digest[:19]}…)")
                return

        # lazy: the docker SDK stays off validate, plan and the skip path
        from deployctl.adapters import engine as docker_engine

        client = engine.get()
        if not built:
            local = docker_engine.image_info(client, spec.ref)
            if local is None:
                raise StageFailed(f"there is no local image {spec.ref} to push",
                                  hint="run the build stage (drop --skip build / --from push)")
            if local.labels.get(INPUTS_LABEL) != inputs:
                raise StageFailed(f"the local image {spec.ref} was built from other inputs than the "
                                  "working tree has now", hint="run the build stage again")
        ctx.raise_if_cancelled()
        # The last look before the image leaves the machine (once per image per run).
        check_image(client, spec.ref, spec.image.allow_secret_files, ctx.log)
        ctx.raise_if_cancelled()
        if ecr is not None and ensure_ecr_repository(ecr, spec.repository, app=spec.app, ctx=ctx):
            ctx.log(f"created ECR repository {spec.repository} (scan on push, immutable tags)")
        auth = access.explicit(ctx)

        def on_line(line: str) -> None:
            ctx.raise_if_cancelled()
            ctx.log(line)

        try:
            digest = docker_engine.push(client, spec.name, spec.tag, auth=auth, on_line=on_line,
                                        cancelled=getattr(ctx, "cancelled", None))
        except DeployctlError:
            # A connection cut because the run was cancelled is the cancellation, not a failure.
            ctx.raise_if_cancelled()
            raise
        record_image(ctx.outputs, spec, digest)
        ctx.note(f"{spec.name}@{digest[:19]}…")

    return run

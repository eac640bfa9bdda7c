"""lint and test inside the image (`stages.<name>.in: image`): test the artifact you ship.

Host-run tests pass on the host's Python and packages; an image with other versions can still
crash at start. Here each command runs with `/bin/sh -c` in a fresh container:
- with `target` (e.g. `test`), of that stage of the Dockerfile, built from the same context,
  Dockerfile and build args as the image (its layers are the image's, plus the test tools);
  built once per set of inputs, kept under `<repository>:<tag>-<target>`, never pushed;
- without, of the image the build stage made (the stage then runs after build).
Only the stage's `env` goes in, nothing of the deployer's environment. A command's `workdir`
applies when absolute (a path in the image); `.` means the image's own WORKDIR.

The checkout's `workdir` (relative: the project's code *and its tests*, which .dockerignore keeps
out of every image) is bind-mounted read-only over the image's WORKDIR: the code and tests of this
commit, with the Python, packages and system libraries of the image. Tools' caches go to /tmp,
since the checkout is read-only in there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import IO, Any, cast

from deployctl.config.model import CommandStage
from deployctl.errors import ExternalError, StageFailed
from deployctl.stages import EngineHandle, ImageSpec
from deployctl.stages import context as build_context
from deployctl.stages.build import compute_inputs, labels

STAGE_LABEL = "deployctl.stage"
# Where tools that write next to the code keep their caches instead (the checkout is mounted
# read-only); the stage's own env wins.
CACHE_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "RUFF_CACHE_DIR": "/tmp/.ruff_cache",
             "MYPY_CACHE_DIR": "/tmp/.mypy_cache", "PYTEST_ADDOPTS": "-p no:cacheprovider", "HOME": "/tmp"}


# lint and test usually name the same target and start together: the first builds it, the
# other waits for that build and reuses it instead of building the same stage a second time.
_BUILDS: dict[str, threading.Lock] = {}
_BUILDS_GUARD = threading.Lock()


def _build_lock(ref: str) -> threading.Lock:
    with _BUILDS_GUARD:
        return _BUILDS.setdefault(ref, threading.Lock())


def stage_ref(spec: ImageSpec, target: str) -> str:
    return f"{spec.name}:" + f"{spec.tag}-{target}"[:128]  # Docker's tag limit


def job_fn(stage: CommandStage, spec: ImageSpec, engine: EngineHandle) -> Callable[[Any], None]:
    def run(ctx: Any) -> None:
        from deployctl.adapters import engine as docker_engine  # lazy: the docker SDK stays off validate

        client = engine.get()
        deadline = time.monotonic() + stage.timeout
        if stage.target:
            image = _build_target(ctx, client, spec, stage.target)
        else:
            image = spec.ref
            if docker_engine.image_info(client, image) is None:
                raise StageFailed(f"{ctx.name} runs in the built image, and {image} is not in the local engine",
                                  hint=f"run the build stage too (e.g. --only build,{ctx.name}), or give "
                                       f"stages.{ctx.name}.target a Dockerfile stage to build for it")
        workdir = stage.workdir if stage.workdir.startswith("/") else None
        mounts: dict[str, str] = {}
        if workdir is None:
            found = docker_engine.image_info(client, image)
            inside = found.working_dir if found is not None else ""
            host = (spec.project_dir / stage.workdir).resolve()
            if inside and inside != "/" and host.is_dir():
                mounts[str(host)] = inside
                workdir = inside
        env = {**CACHE_ENV, **stage.env}
        for command in stage.run:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StageFailed(f"{ctx.name} timed out after {stage.timeout:g}s before `{command}` ran",
                                  hint=f"raise stages.{ctx.name}.timeout in deploy.yaml")
            ctx.log(f"$ {command}   (in {image})")
            try:
                code = docker_engine.run_in_image(
                    client, image, command, env=env, workdir=workdir, timeout=left, on_line=ctx.log,
                    cancelled=getattr(ctx, "cancelled", None),
                    labels={STAGE_LABEL: ctx.name, "deployctl.app": spec.app}, read_only_mounts=mounts)
            except ExternalError:
                ctx.raise_if_cancelled()
                raise
            if code is None:
                raise StageFailed(f"`{command}` timed out after {stage.timeout:g}s (in {image})",
                                  hint=f"raise stages.{ctx.name}.timeout in deploy.yaml")
            if code != 0:
                raise StageFailed(f"`{command}` exited with code {code} in {image}")
        ctx.note(f"{len(stage.run)} command{'s' if len(stage.run) != 1 else ''} ok in the image")

    return run


def _build_target(ctx: Any, client: Any, spec: ImageSpec, target: str) -> str:
    """The Dockerfile's `target` stage, from the image's own context and build args."""
    from deployctl.adapters import engine as docker_engine  # lazy: the docker SDK stays off validate

    stage_spec = ImageSpec(project_dir=spec.project_dir, image=spec.image.model_copy(update={"target": target}),
                           registry=spec.registry, repository=spec.repository, tag=spec.tag, app=spec.app,
                           git_sha=spec.git_sha, branch=spec.branch, dirty=spec.dirty)
    ref = stage_ref(spec, target)
    context, inputs = compute_inputs(stage_spec)  # the same secret checks as the image's build
    lock = _build_lock(ref)
    while not lock.acquire(timeout=0.2):
        ctx.raise_if_cancelled()
    try:
        local = docker_engine.image_info(client, ref)
        if local and local.labels.get(build_context.INPUTS_LABEL) == inputs:
            ctx.log(f"{ref} already built from the same inputs")
            return ref
        ctx.log(f"building the Dockerfile's `{target}` stage as {ref}")
        tar = build_context.make_tar(context)
        try:
            docker_engine.build(client, cast(IO[bytes], tar), dockerfile=context.dockerfile_name, tag=ref,
                                target=target, build_args=spec.image.build_args, platform=spec.image.platform,
                                labels=labels(stage_spec, inputs), on_line=ctx.log,
                                cancelled=getattr(ctx, "cancelled", None))
        finally:
            tar.close()
        return ref
    finally:
        lock.release()

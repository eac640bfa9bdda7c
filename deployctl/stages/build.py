"""The build stage: refuse secret files, skip what is already built, else docker build.

Order matters and is cheap-first: list the context and refuse secrets (no daemon needed),
hash the inputs, ask the registry whether this tag already holds an image with the same
`deployctl.inputs` label (then build *and* push are skipped), then whether the local engine
has it (build skipped, push still runs), and only then build.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any, cast

from deployctl.config.model import ENV_VAR
from deployctl.errors import DeployctlError, ExternalError, StageFailed, UsageError
from deployctl.stages import EngineHandle, ImageSpec, ImageState, human_size
from deployctl.stages import context as build_context
from deployctl.stages.access import RegistryAccess
from deployctl.stages.cancel import cancellable
from deployctl.stages.context import INPUTS_LABEL, HashCache
from deployctl.stages.context_check import DOCS, SecretsRefused, refuse_secrets
from deployctl.stages.image_check import check_image
from deployctl.stages.secret_rules import secret_args

if TYPE_CHECKING:
    from deployctl.config.model import ResolvedConfig


def with_build_args(cfg: ResolvedConfig, pairs: list[str], environ: Mapping[str, str]) -> ResolvedConfig:
    """cfg with `--build-arg NAME=VALUE` (or `NAME`: its value from the environment, as docker
    build does) laid over image.build_args. Refused (exit 2) before anything runs: a malformed
    pair, and any arg whose name or value looks secret. A build arg is stored in plain text in the
    image history; a package index with a token or a CA key is a build secret (docs/build-secrets.md).
    Values never appear in an error."""
    given: dict[str, str] = {}
    for i, raw in enumerate(pairs, 1):
        name, sep, value = raw.partition("=")
        if not ENV_VAR.match(name):
            raise UsageError(f"--build-arg #{i}: expected NAME=VALUE with NAME made of letters, digits and _",
                             hint="e.g. --build-arg PIP_INDEX_URL=https://pypi.internal.example/simple")
        if not sep:
            if name not in environ:
                raise UsageError(f"--build-arg {name}: no value given and ${name} is not set",
                                 hint=f"give it as --build-arg {name}=VALUE, or export {name}")
            value = environ[name]
        given[name] = value
    found = secret_args(given)
    if found:
        names = ", ".join(f"{name} ({why})" for name, why in found)
        raise SecretsRefused(
            f"refusing --build-arg: a build arg is stored in plain text in the image history and the "
            f"build log, so it never carries a secret; refused: {names}",
            hint=f"give the build a private package index's credentials or a CA key as a build secret "
                 f"instead, see {DOCS} (\"Package indexes and CA bundles\"); runtime secrets go in "
                 "services.*.secrets")
    merged = {**cfg.image.build_args, **given}
    return cfg.model_copy(update={"image": cfg.image.model_copy(update={"build_args": merged})})


def compute_inputs(spec: ImageSpec) -> tuple[build_context.BuildContext, str]:
    """List the context (refusing secret files and secret build args) and hash the build inputs."""
    ctx = build_context.load(spec.context_dir, spec.image.dockerfile)
    refuse_secrets(ctx, _label(spec), spec.image.allow_secret_files, spec.image.build_args)
    cache = HashCache.for_context(ctx.root)
    inputs = build_context.inputs_hash(ctx, target=spec.image.target, build_args=spec.image.build_args,
                                       platform=spec.image.platform, cache=cache)
    cache.save(keep=[ctx.root / f for f in ctx.files] + [ctx.dockerfile])
    return ctx, inputs


def _label(spec: ImageSpec) -> str:
    try:
        return str(spec.context_dir.relative_to(spec.project_dir)) + "/"
    except ValueError:
        return str(spec.context_dir)


def labels(spec: ImageSpec, inputs: str) -> dict[str, str]:
    out = {
        "org.opencontainers.image.revision": spec.git_sha,
        "deployctl.app": spec.app,
        "deployctl.git-sha": spec.git_sha,
        "deployctl.branch": spec.branch,
        INPUTS_LABEL: inputs,
    }
    if spec.dirty:
        out["deployctl.dirty"] = "true"
    return out


def registry_has(spec: ImageSpec, inputs: str, access: RegistryAccess,
                 log: Callable[[str], None], ctx: Any = None) -> str | None:
    """The digest of spec.ref in the registry when it was built from `inputs`, else None.

    A registry we cannot ask is not fatal here: the push stage is the authority on reaching
    the registry and reports it properly; the build goes ahead meanwhile. With a stage `ctx`,
    a cancelled run stops waiting for a registry that does not answer at once.
    """

    def ask() -> str | None:
        client = access.client()
        found = client.labels(spec.repository, spec.tag, spec.image.platform)
        if found is None:
            return None
        if found.get(INPUTS_LABEL) != inputs:
            log(f"{spec.ref} is in the registry but was built from different inputs; rebuilding")
            return None
        return client.manifest_digest(spec.repository, spec.tag)

    try:
        return cancellable(ctx, ask)
    except ExternalError as exc:
        log(f"could not ask the registry whether {spec.ref} exists ({exc.message}); building")
        return None


class _CancellableReader:
    """The context tar as the daemon reads it: a cancelled run stops the upload between chunks
    (a context of model weights can take minutes to send, before any build output)."""

    def __init__(self, fileobj: IO[bytes], ctx: Any) -> None:
        self._fileobj, self._ctx = fileobj, ctx

    def read(self, size: int = -1) -> bytes:
        self._ctx.raise_if_cancelled()
        return self._fileobj.read(size)

    def __iter__(self) -> Any:
        return iter(self._fileobj)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fileobj, name)


def record_image(outputs: dict[str, str], spec: ImageSpec, digest: str) -> None:
    outputs["image"] = spec.ref
    outputs["digest"] = digest
    outputs["image_ref"] = f"{spec.name}@{digest}"


def job_fn(
    spec: ImageSpec,
    state: ImageState,
    engine: EngineHandle,
    access: RegistryAccess,
    *,
    check_registry: bool = True,
) -> Callable[[Any], None]:
    """The build job. `check_registry` is False when push is not part of this run: a local
    build was asked for, so an image that exists only in the registry does not satisfy it."""

    def run(ctx: Any) -> None:
        context, inputs = compute_inputs(spec)
        with state.lock:
            state.inputs = inputs
        ctx.log(f"build inputs {inputs[:19]}… ({len(context.files)} files in the context)")

        if check_registry:
            digest = registry_has(spec, inputs, access, ctx.log, ctx)
            if digest:
                with state.lock:
                    state.remote_digest = digest
                record_image(ctx.outputs, spec, digest)
                ctx.skip(f"{spec.ref} already in registry with the same build inputs ({digest[:19]}…)")
                return

        # lazy: the docker SDK stays off validate, plan and the skip path
        from deployctl.adapters import engine as docker_engine

        client = engine.get()
        ctx.raise_if_cancelled()
        local = docker_engine.image_info(client, spec.ref)
        if local and local.labels.get(INPUTS_LABEL) == inputs:
            _check_size(spec, ctx, local.size)
            check_image(client, spec.ref, spec.image.allow_secret_files, ctx.log)
            with state.lock:
                state.built = True
            ctx.skip(f"{spec.ref} already built locally from the same inputs")
            return

        def on_line(line: str) -> None:
            ctx.raise_if_cancelled()  # stops reading; the daemon cancels a build whose client left
            ctx.log(line)

        tar = build_context.make_tar(context)
        try:
            docker_engine.build(
                client, cast(IO[bytes], _CancellableReader(tar, ctx)), dockerfile=context.dockerfile_name, tag=spec.ref,
                target=spec.image.target, build_args=spec.image.build_args, platform=spec.image.platform,
                labels=labels(spec, inputs), on_line=on_line, cancelled=getattr(ctx, "cancelled", None),
            )
        except DeployctlError:
            # A connection cut because the run was cancelled is the cancellation, not a failure.
            ctx.raise_if_cancelled()
            raise
        finally:
            tar.close()
        ctx.raise_if_cancelled()
        _check_size(spec, ctx, docker_engine.image_size(client, spec.ref))
        ctx.raise_if_cancelled()
        check_image(client, spec.ref, spec.image.allow_secret_files, ctx.log)
        with state.lock:
            state.built = True

    return run


def _check_size(spec: ImageSpec, ctx: Any, size: int) -> None:
    budget = spec.image.max_size
    ctx.note(f"{spec.ref} · {human_size(size)}" + (f" (budget {human_size(budget)})" if budget else ""))
    if budget and size > budget:
        raise StageFailed(
            f"the image is {human_size(size)}, over image.max_size {human_size(budget)}",
            hint="use a slimmer final stage (image.target), keep model weights out of the image "
                 "(download them at start-up), or raise image.max_size",
        )

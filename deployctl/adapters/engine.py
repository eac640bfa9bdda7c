"""The one door to the Docker Engine: the only deployctl module that imports the docker SDK.

Functions take a client from `connect()` and return plain data; output lines go to an
`on_line` callback so stages can stream them. Engine and registry failures become
`ExternalError` / `StageFailed` with a message for people; nothing here prints.

`errors` re-exports `docker.errors` so other modules (the local Docker target) can catch
`engine.errors.NotFound` / `engine.errors.APIError` without importing docker themselves.

One module although it is long: the design rule is one door per outside system
(tests/unit/test_design_rules.py checks that only this module imports docker), and builds,
containers and registry pushes all go through the same client and error mapping.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, cast

import docker
import docker.credentials.errors
import docker.errors
import docker.models.containers
import requests.exceptions
import urllib3.exceptions

from deployctl.adapters import docker_config
from deployctl.adapters.engine_view import ContainerView as ContainerView  # re-exported: typed views of
from deployctl.adapters.engine_view import HealthCheck as HealthCheck  # inspect answers, in a module that
from deployctl.adapters.engine_view import ImageView as ImageView
from deployctl.adapters.engine_view import container_view as container_view  # needs no docker SDK import
from deployctl.errors import ExternalError, StageFailed

errors = docker.errors
Client = docker.DockerClient
Container = docker.models.containers.Container
LineSink = Callable[[str], None]

DEFAULT_HOST = "unix:///var/run/docker.sock"
_STEP = re.compile(r"^Step \d+/\d+ : ")
BUILD_READ_TIMEOUT = 3600
# How often a build or push in progress looks at its cancel event.
_CANCEL_POLL_S = 0.1
# A dropped daemon connection surfaces as whichever layer noticed it first: requests, urllib3
# (a stream is read from the raw response, past requests' wrapping) or http.client / the socket.
_CONNECTION_ERRORS = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError,
                      http.client.HTTPException, ConnectionError)
_MISSING_HELPER = re.compile(r"docker-credential-(\S+) not installed")


def connect(timeout: float = 60.0) -> docker.DockerClient:
    """A client for the daemon in DOCKER_HOST (default the local socket), checked with a ping.

    `timeout` bounds each API call; builds and pushes stream, so it bounds silence, not length.
    """
    where = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as exc:
        raise ExternalError(
            f"Cannot reach the Docker daemon at {where}: {_short(exc)}. Is dockerd running?",
            hint="start the Docker daemon (e.g. `sudo systemctl start docker`), or point DOCKER_HOST at yours",
        ) from None
    except Exception as exc:  # noqa: BLE001 - requests/urllib3 errors escape the SDK's wrapping
        raise ExternalError(
            f"Cannot reach the Docker daemon at {where}: {_short(exc)}. Is dockerd running?",
            hint="start the Docker daemon (e.g. `sudo systemctl start docker`), or point DOCKER_HOST at yours",
        ) from None
    return client


def _short(exc: BaseException) -> str:
    text = str(exc)
    # The SDK wraps urllib3's long reprs; the innermost reason is what a person needs.
    for marker in ("Connection refused", "No such file or directory", "Permission denied", "timed out"):
        if marker in text:
            return marker.lower() if marker != "timed out" else "timed out"
    return " ".join(text.split())[:300]


# --- build ----------------------------------------------------------------------------------


# The classic builder's cache probe for a step on `FROM scratch` reads every image without a
# parent (pulled images, first steps of other builds); when another client on the same engine
# removes one of them between that list and the read, the step fails with this, although
# nothing of this build is missing. Building again probes again.
_LOST_CACHE_CANDIDATE = re.compile(r'unable to find image "sha256:[0-9a-f]{64}"')
LOST_CACHE_RETRIES = 2


def is_lost_cache_race(message: str) -> bool:
    """Whether a build failed only in that race (other code building on a shared engine, such
    as the test suite's fixtures, builds again on it as `build` does)."""
    return bool(_LOST_CACHE_CANDIDATE.search(message))


def build(
    client: docker.DockerClient,
    context_tar: IO[bytes],
    *,
    dockerfile: str,
    tag: str,
    target: str | None = None,
    build_args: Mapping[str, str] | None = None,
    platform: str | None = None,
    labels: Mapping[str, str] | None = None,
    on_line: LineSink = lambda line: None,
    cancelled: threading.Event | None = None,
) -> str:
    """Build from a context tar (see stages.context.make_tar) and tag it; returns the image id.
    A step that failed only because another client removed an unrelated image during the
    builder's cache probe (_LOST_CACHE_CANDIDATE) is built again, at most LOST_CACHE_RETRIES
    times, saying so; the steps done before it are cache hits then."""
    for attempt in range(LOST_CACHE_RETRIES + 1):
        try:
            return _build_once(client, context_tar, dockerfile=dockerfile, tag=tag, target=target,
                               build_args=build_args, platform=platform, labels=labels, on_line=on_line,
                               cancelled=cancelled)
        except StageFailed as exc:
            if (attempt == LOST_CACHE_RETRIES or not _LOST_CACHE_CANDIDATE.search(exc.message)
                    or not context_tar.seekable() or (cancelled is not None and cancelled.is_set())):
                raise
            on_line(f"the engine lost an image it was probing for cache (another build or cleanup on this "
                    f"engine removed it): building again ({attempt + 1} of {LOST_CACHE_RETRIES})")
            context_tar.seek(0)
    raise AssertionError("unreachable")  # the loop returns or raises


def _build_once(
    client: docker.DockerClient,
    context_tar: IO[bytes],
    *,
    dockerfile: str,
    tag: str,
    target: str | None,
    build_args: Mapping[str, str] | None,
    platform: str | None,
    labels: Mapping[str, str] | None,
    on_line: LineSink,
    cancelled: threading.Event | None,
) -> str:
    """One build request (see build).

    Uses the classic builder (the SDK cannot drive BuildKit): multi-stage and `target` work,
    `RUN --mount` does not. A failure raises StageFailed naming the Dockerfile step that failed.
    When `cancelled` is set mid-build the daemon connection is cut at once (the daemon then
    stops the build and removes its container) and ExternalError is raised; the caller, which
    knows the run was cancelled, reports that instead.
    """
    step = ""
    image_id = None
    stream: Any = None
    try:
        with _abort_when(client, cancelled):
            stream = client.api.build(
                fileobj=context_tar, custom_context=True, dockerfile=dockerfile, tag=tag, target=target,
                buildargs=dict(build_args or {}), platform=platform, labels=dict(labels or {}),
                rm=True, forcerm=True, decode=True, use_config_proxy=False,
                # Per read, not in total: a RUN step may compile or download for many silent minutes.
                timeout=BUILD_READ_TIMEOUT,
            )
            for chunk in stream:
                if "error" in chunk or "errorDetail" in chunk:
                    message = _stream_error(chunk, "build failed")
                    raise StageFailed(_build_error(message, step), hint=_build_hint(message))
                text = chunk.get("stream")
                if text:
                    for line in text.splitlines():
                        if _STEP.match(line):
                            step = line
                        if line.strip():
                            on_line(line.rstrip())
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("ID"):
                    image_id = aux["ID"]
    except docker.errors.APIError as exc:
        _raise_if_cancelled(cancelled, "build")
        message = exc.explanation or str(exc)
        raise StageFailed(_build_error(str(message), step), hint=_build_hint(str(message))) from None
    except docker.credentials.errors.StoreError as exc:
        raise _credential_error(exc) from None
    except docker.errors.DockerException as exc:
        if _MISSING_HELPER.search(str(exc)) or "Credentials store error" in str(exc):
            raise _credential_error(exc) from None
        _raise_if_cancelled(cancelled, "build")
        raise ExternalError(f"the Docker daemon failed during the build: {_short(exc)}") from None
    except _CONNECTION_ERRORS as exc:
        _raise_if_cancelled(cancelled, "build")
        raise _connection_broke("build", exc) from None
    finally:
        # Closing our end (e.g. when on_line raised because the run was cancelled) makes the
        # daemon cancel the build instead of finishing it for nobody.
        if stream is not None and hasattr(stream, "close"):
            with contextlib.suppress(Exception):  # a cut connection may complain on close
                stream.close()
    _raise_if_cancelled(cancelled, "build")
    if image_id is None:
        # Old daemons report only "Successfully built <id>"; the tag is authoritative anyway.
        image_id = client.api.inspect_image(tag)["Id"]
    return str(image_id)


@contextlib.contextmanager
def _abort_when(client: docker.DockerClient, cancelled: threading.Event | None) -> Iterator[None]:
    """While the body runs, cut the daemon connection of the streaming request this thread
    makes as soon as `cancelled` is set.

    A build step or a push can be silent for minutes, so a check between output lines is not
    enough: the reader would sit in recv() until the next line. Shutting the socket down from
    another thread ends that recv() at once, and the daemon treats a client that left as a
    cancelled build or push. The response is caught with a requests hook filtered to this
    thread, since the SDK keeps it inside its stream generator.
    """
    if cancelled is None:
        yield
        return
    me = threading.get_ident()
    responses: list[Any] = []
    done = threading.Event()

    def hook(response: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == me:
            responses.append(response)
        return response

    def watch() -> None:
        while not done.is_set():
            if cancelled.wait(_CANCEL_POLL_S):
                for response in list(responses):
                    _cut(response)
                if done.wait(_CANCEL_POLL_S):  # a response may still be on its way
                    return

    hooks = client.api.hooks.setdefault("response", [])
    hooks.append(hook)
    watcher = threading.Thread(target=watch, name="engine-cancel-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        with contextlib.suppress(ValueError):
            hooks.remove(hook)


def _cut(response: Any) -> None:
    """Shut the socket under a streaming response down (see APIClient._get_raw_response_socket)."""
    try:
        raw = response.raw._fp.fp.raw
    except AttributeError:
        raw = None
    sock = getattr(raw, "_sock", raw)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    else:
        with contextlib.suppress(Exception):
            response.close()


def _raise_if_cancelled(cancelled: threading.Event | None, what: str) -> None:
    if cancelled is not None and cancelled.is_set():
        raise ExternalError(f"the {what} was cancelled")


def _credential_error(exc: BaseException) -> ExternalError:
    """docker-py asks the docker config's credential helper itself (for a build, about every
    registry) and raises StoreError, or for one registry a DockerException quoting it; a
    helper that is missing is the same mistake docker_config reports, in the same words."""
    found = _MISSING_HELPER.search(str(exc))
    if found:
        name = found.group(1)
        return ExternalError(f"the docker config names the credential helper {name!r}, but "
                             f"docker-credential-{name} is not on PATH",
                             hint="install the helper, or remove credsStore/credHelpers from "
                                  f"{docker_config.config_path()}")
    return ExternalError(f"the docker credential helper failed: {_short(exc)}",
                         hint=f"check credsStore/credHelpers in {docker_config.config_path()}")


def _connection_broke(what: str, exc: BaseException) -> ExternalError:
    text = str(exc)
    if "IncompleteRead" in text or "Connection broken" in text or "RemoteDisconnected" in text:
        why = "the daemon closed it in the middle of the stream"
    else:
        why = _short(exc)
    return ExternalError(f"the Docker daemon connection broke during the {what}: {why}",
                         hint="check that the Docker daemon is still running, then run again")


def _stream_error(chunk: dict[str, Any], default: str) -> str:
    """The message of an error line in a build or push stream."""
    return str((chunk.get("errorDetail") or {}).get("message") or chunk.get("error") or default)


def _build_error(message: str, step: str) -> str:
    message = " ".join(message.split())
    if step:
        return f"docker build failed at {step}: {message}"
    return f"docker build failed: {message}"


def _build_hint(message: str) -> str | None:
    low = message.lower()
    if "dockerfile parse error" in low or "unknown instruction" in low:
        return "fix the Dockerfile line named above"
    if "failed to reach build target" in low:
        return "image.target in deploy.yaml must name a `FROM … AS <name>` stage of the Dockerfile"
    if "pull access denied" in low or "manifest unknown" in low or "not found" in low and "from" in low:
        return "a FROM image could not be pulled: check its name and that its registry is reachable"
    return None


# --- images ---------------------------------------------------------------------------------


def image_info(client: docker.DockerClient, ref: str) -> ImageView | None:
    """`docker image inspect`, typed, or None when there is no such image."""
    try:
        return ImageView.from_inspect(client.api.inspect_image(ref))
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        raise ExternalError(f"could not inspect image {ref}: {exc.explanation or exc}") from None


def image_tags(client: docker.DockerClient, **query: Any) -> list[str]:
    """The tags of the images a list query (e.g. name=REPO, filters=…) finds, from the list answer
    alone: `images.list` inspects each image after listing, and fails when another build or
    cleanup on the same engine (a CI runner's shared engine) removes one in between."""
    return [str(ref) for image in client.api.images(**query) for ref in (image.get("RepoTags") or [])
            if ref != "<none>:<none>"]


def exit_codes(client: docker.DockerClient, container_id: str) -> list[int]:
    """Exit codes of a container's runs so far, oldest first, from the engine's `die` events
    (a container Docker restarted shows only its current state). [] when they cannot be read."""
    try:
        events = client.events(until=f"{time.time():.3f}", decode=True,
                               filters={"container": container_id, "event": "die"})
        codes = [str(((e.get("Actor") or {}).get("Attributes") or {}).get("exitCode", "")) for e in events]
    except Exception:  # noqa: BLE001 - only a detail of a failure message; the failure stands without it
        return []
    return [int(code) for code in codes if code.lstrip("-").isdigit()]


def resolvable(client: docker.DockerClient, ref: str) -> str:
    """"" when `ref` is in the local engine or its registry answers for it (asked through the
    daemon, which holds the pull credentials; nothing is pulled), else why not, in one line."""
    if image_info(client, ref) is not None:
        return ""
    try:
        client.images.get_registry_data(ref)
        return ""
    except docker.errors.APIError as exc:
        return f"not in the local engine, and its registry says: {_short(exc)}"
    except Exception as exc:  # noqa: BLE001 - requests/urllib3 errors escape the SDK's wrapping
        return f"not in the local engine, and its registry could not be asked: {_short(exc)}"


def run_in_image(client: docker.DockerClient, image: str, command: str, *, env: Mapping[str, str],
                 workdir: str | None, timeout: float, on_line: LineSink,
                 cancelled: threading.Event | None = None, labels: Mapping[str, str] | None = None,
                 read_only_mounts: Mapping[str, str] | None = None) -> int | None:
    """Run `/bin/sh -c command` in a fresh container of `image` (its ENTRYPOINT bypassed), streaming
    its output to on_line; returns the exit code, or None when `timeout` ran out (the container is
    killed). Only `env` is passed in: nothing of the deployer's environment. `read_only_mounts`
    (host path → container path) are bind-mounted read-only. The container is removed whatever
    happens; a cancelled run kills it and raises ExternalError."""
    volumes = {host: {"bind": inside, "mode": "ro"} for host, inside in (read_only_mounts or {}).items()}
    try:
        container = client.containers.create(
            image, entrypoint=["/bin/sh", "-c"], command=[command], environment=dict(env),
            working_dir=workdir or "", labels=dict(labels or {}), detach=True, volumes=volumes or None)
    except docker.errors.ImageNotFound:
        raise ExternalError(f"image {image} is not in the local engine") from None
    except docker.errors.APIError as exc:
        raise ExternalError(f"could not create a container of {image}: {exc.explanation or exc}") from None

    def pump() -> None:
        with contextlib.suppress(Exception):  # the container is removed under a stopped stream
            buffer = b""
            for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    on_line(line.decode("utf-8", "replace").rstrip())
            if buffer:
                on_line(buffer.decode("utf-8", "replace").rstrip())

    reader = threading.Thread(target=pump, daemon=True)
    deadline = time.monotonic() + timeout
    try:
        container.start()
        reader.start()
        while True:
            if cancelled is not None and cancelled.is_set():
                with contextlib.suppress(Exception):
                    container.kill()
                raise ExternalError("stopped: run cancelled")
            if time.monotonic() > deadline:
                with contextlib.suppress(Exception):
                    container.kill()
                return None
            try:
                result = container.wait(timeout=_CANCEL_POLL_S * 5)
            except _CONNECTION_ERRORS:
                continue  # still running: look at cancel and the deadline again
            reader.join(5)
            return int(result.get("StatusCode", -1))
    except docker.errors.APIError as exc:
        raise ExternalError(f"running `{command}` in {image} failed: {exc.explanation or exc}") from None
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


def image_history(client: docker.DockerClient, ref: str) -> list[str]:
    """The `created_by` line of every history entry of an image (oldest first): the commands that
    made it, including the `|N NAME=value` build args a RUN step saw."""
    try:
        entries = client.api.history(ref)
    except docker.errors.APIError as exc:
        raise ExternalError(f"could not read the history of image {ref}: {exc.explanation or exc}") from None
    return [str(e.get("CreatedBy") or "") for e in reversed(entries)]


def image_layer_files(client: docker.DockerClient, ref: str,
                      wanted: Callable[[str], bool] = lambda path: False,
                      max_bytes: int = 0) -> Iterator[tuple[int, str, bytes]]:
    """Every regular file in every layer of an image as (layer number from 1, path, head), read
    from `docker save` as a stream (never held whole: images of model weights are gigabytes).

    A file deleted by a later layer is still listed for the layer that added it: whoever pulls the
    image gets that layer. `head` is the first `max_bytes` of the files `wanted(path)` picks, else b"".
    """
    try:
        chunks = client.api.get_image(ref, chunk_size=1024 * 1024)
        outer = tarfile.open(fileobj=cast(IO[bytes], _ChunkReader(chunks)), mode="r|")  # noqa: SIM115
    except docker.errors.APIError as exc:
        raise ExternalError(f"could not export image {ref}: {exc.explanation or exc}") from None
    layer = 0
    with outer:
        for member in outer:
            # Legacy `docker save` (dockerd 20.10): <id>/layer.tar; OCI layout: blobs/sha256/<digest>.
            if not member.isfile() or not (member.name.endswith("/layer.tar") or
                                           member.name.startswith("blobs/")):
                continue
            fh = outer.extractfile(member)
            if fh is None:
                continue
            try:
                inner = tarfile.open(fileobj=fh, mode="r|")  # noqa: SIM115 - closed below
            except tarfile.ReadError:
                continue  # an OCI blob that is a manifest or config, not a layer
            layer += 1
            with inner:
                for entry in inner:
                    if not entry.isfile():
                        continue
                    path = entry.name.removeprefix("./")
                    head = b""
                    if max_bytes and wanted(path):
                        data = inner.extractfile(entry)
                        head = data.read(max_bytes) if data is not None else b""
                    yield layer, path, head


class _ChunkReader:
    """A file-like reader over an iterator of byte chunks (the body of `docker save`)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""
        self._pos = 0  # read up to here; slicing from an offset keeps reads linear

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        want = size
        while want != 0:
            if self._pos >= len(self._buffer):
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._buffer, self._pos = chunk, 0
            end = len(self._buffer) if want < 0 else min(len(self._buffer), self._pos + want)
            parts.append(self._buffer[self._pos:end])
            if want > 0:
                want -= end - self._pos
            self._pos = end
        return b"".join(parts)


def image_size(client: docker.DockerClient, ref: str) -> int:
    info = image_info(client, ref)
    if info is None:
        raise StageFailed(f"image {ref} is not in the local Docker engine")
    return info.size


def tag(client: docker.DockerClient, image: str, repository: str, tag: str) -> None:
    client.api.tag(image, repository, tag, force=True)


# --- registries -----------------------------------------------------------------------------


def push(
    client: docker.DockerClient,
    repository: str,
    tag: str,
    *,
    auth: tuple[str, str] | None = None,
    on_line: LineSink = lambda line: None,
    cancelled: threading.Event | None = None,
) -> str:
    """Push `repository:tag`; returns the manifest digest the registry stored.

    The engine reports push failures (bad credentials, registry down, immutable tag) as
    `errorDetail` lines inside a 200 stream, not as HTTP errors, so every line is checked.
    `auth` None means the docker config's credentials for the registry, if any.
    `cancelled` works as for build(): the connection is cut and the daemon stops pushing.
    """
    auth_config = {"username": auth[0], "password": auth[1]} if auth else None
    digest = None
    last_status: dict[str, str] = {}
    stream: Any = None
    try:
        with _abort_when(client, cancelled):
            stream = client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth_config)
            for chunk in stream:
                if "error" in chunk or "errorDetail" in chunk:
                    message, hint = _push_error(repository, tag, _stream_error(chunk, "push failed"))
                    raise StageFailed(message, hint=hint)
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = str(aux["Digest"])
                status = chunk.get("status")
                if not status:
                    continue
                layer = chunk.get("id")
                # Progress bars repeat "Pushing" many times a second; show each state change once.
                if layer and last_status.get(layer) == status:
                    continue
                if layer:
                    last_status[layer] = status
                on_line(f"{layer}: {status}" if layer else status)
    except docker.errors.APIError as exc:
        _raise_if_cancelled(cancelled, "push")
        message, hint = _push_error(repository, tag, str(exc.explanation or exc))
        raise StageFailed(message, hint=hint) from None
    except docker.credentials.errors.StoreError as exc:
        raise _credential_error(exc) from None
    except docker.errors.DockerException as exc:
        if _MISSING_HELPER.search(str(exc)) or "Credentials store error" in str(exc):
            raise _credential_error(exc) from None
        _raise_if_cancelled(cancelled, "push")
        raise ExternalError(f"the Docker daemon failed during the push: {_short(exc)}") from None
    except _CONNECTION_ERRORS as exc:
        _raise_if_cancelled(cancelled, "push")
        raise _connection_broke("push", exc) from None
    finally:
        if stream is not None and hasattr(stream, "close"):
            with contextlib.suppress(Exception):
                stream.close()
    _raise_if_cancelled(cancelled, "push")
    if digest is None:
        raise StageFailed(f"pushing {repository}:{tag} reported no digest",
                          hint="the registry may be misbehaving")
    return digest


def _push_error(repository: str, tag: str, message: str) -> tuple[str, str | None]:
    registry = repository.split("/", 1)[0]
    text = " ".join(message.split())
    low = text.lower()
    if "unauthorized" in low or "authentication required" in low or "denied" in low or "no basic auth" in low:
        return (f"the registry {registry} refused the push of {repository}:{tag}: {text}",
                "check DEPLOYCTL_REGISTRY_USERNAME / DEPLOYCTL_REGISTRY_PASSWORD or your "
                f"`docker login {registry}`")
    if "connection refused" in low or "no such host" in low or "i/o timeout" in low or "dial tcp" in low:
        return (f"cannot reach the registry {registry} to push {repository}:{tag}: {text}",
                "is the registry running and reachable from here, and is image.registry in deploy.yaml right?")
    if "immutable" in low or "already exists" in low:
        return (f"the registry {registry} refused to overwrite the tag {tag}: {text}",
                "tags are immutable there; commit your change (a new commit gets a new tag)")
    return f"pushing {repository}:{tag} failed: {text}", None

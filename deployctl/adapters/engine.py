"""The one door to the Docker Engine: the only deployctl module that imports the docker SDK.

Functions take a client from `connect()` and return plain data; output lines go to an
`on_line` callback so stages can stream them. Engine and registry failures become
`ExternalError` / `StageFailed` with a message for people; nothing here prints.

`errors` re-exports `docker.errors` so other modules (the local Docker target) can catch
`engine.errors.NotFound` / `engine.errors.APIError` without importing docker themselves.
"""

from __future__ import annotations

import http.client
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

import docker
import docker.credentials.errors
import docker.errors
import requests.exceptions
import urllib3.exceptions

from deployctl.adapters import docker_config
from deployctl.errors import ExternalError, StageFailed

errors = docker.errors
Client = docker.DockerClient
LineSink = Callable[[str], None]

DEFAULT_HOST = "unix:///var/run/docker.sock"
_STEP = re.compile(r"^Step \d+/\d+ : ")
BUILD_READ_TIMEOUT = 3600
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
            hint="start it with `scripts/services up` (or your usual dockerd), or point DOCKER_HOST at it",
        ) from None
    except Exception as exc:  # noqa: BLE001 - requests/urllib3 errors escape the SDK's wrapping
        raise ExternalError(
            f"Cannot reach the Docker daemon at {where}: {_short(exc)}. Is dockerd running?",
            hint="start it with `scripts/services up` (or your usual dockerd), or point DOCKER_HOST at it",
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
) -> str:
    """Build from a context tar (see stages.context.make_tar) and tag it; returns the image id.

    Uses the classic builder (the SDK cannot drive BuildKit): multi-stage and `target` work,
    `RUN --mount` does not. A failure raises StageFailed naming the Dockerfile step that failed.
    """
    step = ""
    image_id = None
    stream: Any = None
    try:
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
        message = exc.explanation or str(exc)
        raise StageFailed(_build_error(str(message), step), hint=_build_hint(str(message))) from None
    except docker.credentials.errors.StoreError as exc:
        raise _credential_error(exc) from None
    except docker.errors.DockerException as exc:
        if _MISSING_HELPER.search(str(exc)) or "Credentials store error" in str(exc):
            raise _credential_error(exc) from None
        raise ExternalError(f"the Docker daemon failed during the build: {_short(exc)}") from None
    except _CONNECTION_ERRORS as exc:
        raise _connection_broke("build", exc) from None
    finally:
        # Closing our end (e.g. when on_line raised because the run was cancelled) makes the
        # daemon cancel the build instead of finishing it for nobody.
        if stream is not None and hasattr(stream, "close"):
            stream.close()
    if image_id is None:
        # Old daemons report only "Successfully built <id>"; the tag is authoritative anyway.
        image_id = client.api.inspect_image(tag)["Id"]
    return str(image_id)


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
                         hint="check that dockerd is still running (`scripts/services up`), then run again")


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


def image_info(client: docker.DockerClient, ref: str) -> dict[str, Any] | None:
    """`docker image inspect` as a dict, or None when there is no such image."""
    try:
        return dict(client.api.inspect_image(ref))
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        raise ExternalError(f"could not inspect image {ref}: {exc.explanation or exc}") from None


def image_size(client: docker.DockerClient, ref: str) -> int:
    info = image_info(client, ref)
    if info is None:
        raise StageFailed(f"image {ref} is not in the local Docker engine")
    return int(info.get("Size") or 0)


def tag(client: docker.DockerClient, image: str, repository: str, tag: str) -> None:
    client.api.tag(image, repository, tag, force=True)


def remove_image(client: docker.DockerClient, ref: str, *, force: bool = False) -> bool:
    """Remove an image or one of its tags; False when it was not there."""
    try:
        client.api.remove_image(ref, force=force, noprune=False)
        return True
    except docker.errors.ImageNotFound:
        return False


# --- registries -----------------------------------------------------------------------------


def push(
    client: docker.DockerClient,
    repository: str,
    tag: str,
    *,
    auth: tuple[str, str] | None = None,
    on_line: LineSink = lambda line: None,
) -> str:
    """Push `repository:tag`; returns the manifest digest the registry stored.

    The engine reports push failures (bad credentials, registry down, immutable tag) as
    `errorDetail` lines inside a 200 stream, not as HTTP errors, so every line is checked.
    `auth` None means the docker config's credentials for the registry, if any.
    """
    auth_config = {"username": auth[0], "password": auth[1]} if auth else None
    digest = None
    last_status: dict[str, str] = {}
    try:
        stream: Iterator[dict[str, Any]] = client.api.push(repository, tag=tag, stream=True, decode=True,
                                                           auth_config=auth_config)
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
        message, hint = _push_error(repository, tag, str(exc.explanation or exc))
        raise StageFailed(message, hint=hint) from None
    except docker.credentials.errors.StoreError as exc:
        raise _credential_error(exc) from None
    except docker.errors.DockerException as exc:
        if _MISSING_HELPER.search(str(exc)) or "Credentials store error" in str(exc):
            raise _credential_error(exc) from None
        raise ExternalError(f"the Docker daemon failed during the push: {_short(exc)}") from None
    except _CONNECTION_ERRORS as exc:
        raise _connection_broke("push", exc) from None
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
                "is the registry running, and is image.registry in deploy.yaml right? "
                "The local test registries start with `scripts/services up`")
    if "immutable" in low or "already exists" in low:
        return (f"the registry {registry} refused to overwrite the tag {tag}: {text}",
                "tags are immutable there; commit your change (a new commit gets a new tag)")
    return f"pushing {repository}:{tag} failed: {text}", None

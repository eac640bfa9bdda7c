"""Registry access for build (skip check), push and `run --image`: credentials and clients.

Where credentials come from, first match wins:
1. ECR (`image.registry: ecr`): a token from ecr:GetAuthorizationToken (user `AWS`);
2. DEPLOYCTL_REGISTRY_USERNAME / DEPLOYCTL_REGISTRY_PASSWORD, for CI;
3. the docker config (`docker login`, credential helpers), read by adapters/docker_config.
(1) and (2) are handed to the daemon explicitly on push; for (3) the docker SDK sends the
config's entry itself. Every secret found is registered with the run's redactor, with its
username (`on_credentials`), so base64("user:password") — the docker config's `auth` form — is
masked too.

The ECR calls take the stage's `ctx` when a stage makes them: a cancelled run gives up on a
slow or silent ECR endpoint at once (stages/cancel.py) instead of waiting out boto3's retries
and timeouts. Nothing is cached from a call given up on.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from deployctl.adapters.registry import Credentials, ImageRef, RegistryClient
from deployctl.errors import ExternalError
from deployctl.stages.cancel import cancellable

if TYPE_CHECKING:
    from deployctl.adapters.aws import BotoClient  # boto3 itself is imported only on the ECR path

ENV_USER = "DEPLOYCTL_REGISTRY_USERNAME"
ENV_PASSWORD = "DEPLOYCTL_REGISTRY_PASSWORD"
ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


class ImageMissing(ExternalError):
    """The registry answered: no such image (not: it could not be asked)."""


class RegistryAccess:
    """Credentials and read-only clients for one registry host. Thread-safe, lazy."""

    def __init__(
        self,
        host: str,
        *,
        ecr: BotoClient | None = None,
        env: Mapping[str, str] = os.environ,
        docker_config: Callable[[str], Credentials | None] | None = None,
        on_secret: Callable[[str], None] = lambda value: None,
        on_credentials: Callable[[str, str], None] | None = None,
    ) -> None:
        self.host = host
        self._ecr = ecr
        self._env = env
        self._docker_config = docker_config
        self._on_secret = on_secret
        self._on_credentials = on_credentials
        self._lock = threading.Lock()
        self._explicit: Credentials | None = None
        self._explicit_done = False

    def explicit(self, ctx: Any = None) -> Credentials | None:
        """ECR token or environment credentials; None means "whatever the docker config has".

        With a stage `ctx` a cancelled run stops waiting for the ECR login (raising Cancelled);
        the answer of a login given up on is never cached, so the next caller asks again.
        """
        with self._lock:
            if not self._explicit_done:
                self._explicit = self._lookup_explicit(ctx)
                self._explicit_done = True
                if self._explicit:
                    self._found(self._explicit)
            return self._explicit

    def _found(self, creds: Credentials) -> None:
        """Hand a secret we found to whoever must keep it out of output: the secret alone
        (on_secret) and, with its username, the pair (on_credentials)."""
        self._on_secret(creds[1])
        if self._on_credentials is not None:
            self._on_credentials(creds[0], creds[1])

    def _lookup_explicit(self, ctx: Any = None) -> Credentials | None:
        if self._ecr is not None:
            host, user, password = ecr_login(self._ecr, ctx)
            if host != self.host:
                raise ExternalError(f"ECR gave a token for {host}, but the image goes to {self.host}")
            return user, password
        env_user, env_password = self._env.get(ENV_USER), self._env.get(ENV_PASSWORD)
        if env_user and env_password:
            return env_user, env_password
        if env_user or env_password:
            missing = ENV_PASSWORD if env_user else ENV_USER
            raise ExternalError(f"{missing} is not set while its partner is",
                                hint=f"set both {ENV_USER} and {ENV_PASSWORD}, or neither")
        return None

    def credentials(self) -> Credentials | None:
        """Everything we know for this host, including the docker config (for our own HTTP calls)."""
        creds = self.explicit()
        if creds is None and self._docker_config is not None:
            creds = self._docker_config(self.host)
            if creds:
                self._found(creds)
        return creds

    def client(self, timeout: float = 15.0) -> RegistryClient:
        return RegistryClient(self.host, self.credentials, timeout=timeout)


# --- ECR ------------------------------------------------------------------------------------


def ecr_login(ecr: BotoClient, ctx: Any = None) -> tuple[str, str, str]:
    """(registry host, user, password) from ecr:GetAuthorizationToken; with a stage `ctx`,
    given up on as soon as the run is cancelled."""
    # lazy: boto3 stays off a non-ECR run and the skip path
    from deployctl.adapters import aws, ecr_gateway

    with aws.aws_errors("getting an ECR login token"):
        found = cancellable(ctx, lambda: ecr_gateway.login(ecr))
    return found.host, found.user, found.password


def ensure_ecr_repository(ecr: BotoClient, name: str, *, app: str, ctx: Any = None) -> bool:
    """Create the ECR repository if missing: scan on push, immutable tags. True if created.

    Immutable tags are what make a tag a promise: `<sha12>` can never be re-pointed at other
    bytes, so promotion by digest and the skip path can trust what the tag names.

    With a stage `ctx`, each call is given up on as soon as the run is cancelled, and each is
    its own: a describe given up on never goes on to create the repository after the cancel.
    """
    # lazy: boto3 stays off a non-ECR run and the skip path
    from deployctl.adapters import aws, ecr_gateway

    with aws.aws_errors(f"checking the ECR repository {name}"):
        if cancellable(ctx, lambda: ecr_gateway.repository_exists(ecr, name)):
            return False
    with aws.aws_errors(f"creating the ECR repository {name}"):
        return cancellable(ctx, lambda: ecr_gateway.create_repository(
            ecr, name, {"deployctl:app": app, "deployctl:managed": "true"}))


# --- resolving a reference to a digest ------------------------------------------------------


def resolve_digest(ref: ImageRef, access: RegistryAccess, ecr: BotoClient | None = None) -> str:
    """The digest `ref` names in its registry, failing clearly when it is not there.

    ECR references are asked through the ECR API (it needs no Docker and works with the same
    AWS credentials as the deploy); everything else through the registry HTTP API.
    """
    if ecr is not None and ECR_HOST.match(ref.registry):
        from deployctl.adapters import aws  # lazy: boto3 stays off a non-ECR run and the skip path

        registry_id = ECR_HOST.match(ref.registry).group(1)  # type: ignore[union-attr]
        with aws.aws_errors(f"looking up {ref} in ECR"):
            digest = aws.ecr_image_digest(ecr, ref.repository, tag=ref.tag, digest=ref.digest,
                                          registry_id=registry_id)
    else:
        digest = access.client().manifest_digest(ref.repository, ref.reference)
    if digest is None:
        raise ImageMissing(f"the image {ref} is not in the registry {ref.registry}",
                            hint="check the reference (`deployctl history` lists deployed images), "
                                 "or build and push it with `deployctl run` first")
    if ref.digest and digest != ref.digest:
        raise ExternalError(f"the registry returned digest {digest} for {ref}")
    return digest

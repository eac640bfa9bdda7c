"""A small client for the registry HTTP API v2 (distribution spec), on urllib only.

Why not ask the Docker daemon? Two questions deployctl asks a registry must not need one:
"is this commit's image already there, built from the same inputs?" (the skip path, which
should answer in milliseconds without sending a build context anywhere) and "which digest
does this tag point at?" (`run --image REF`, which in CI may run where no dockerd exists).
Each is a HEAD or GET of a manifest, plus one GET of the image config blob for the labels.

Authentication follows the registry's challenge: no credentials are looked up until the
registry answers 401, then `Basic` (distribution with htpasswd, ECR) or `Bearer` (token
servers) as the `WWW-Authenticate` header asks. Credentials are never put in messages.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deployctl.errors import ExternalError, UsageError

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_INDEX_TYPES = frozenset(MANIFEST_TYPES[:2])
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

Credentials = tuple[str, str]
CredentialSource = Callable[[], Credentials | None]


@dataclass(frozen=True)
class ImageRef:
    """`host[:port]/repo/path[:tag][@sha256:…]`, split. A reference without a host is refused:
    deployctl never guesses a default registry, since the public one is not what anyone means."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, ref: str) -> ImageRef:
        text = ref.strip()
        digest = None
        if "@" in text:
            text, digest = text.split("@", 1)
            if not DIGEST.match(digest):
                raise UsageError(f"image reference {ref!r} has a malformed digest",
                                 hint="digests look like sha256: followed by 64 hex characters")
        host, _, rest = text.partition("/")
        if not rest or not ("." in host or ":" in host or host == "localhost"):
            raise UsageError(f"image reference {ref!r} does not name a registry host",
                             hint="write it in full, e.g. 127.0.0.1:5000/app:abc123 or "
                                  "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:…")
        tag = None
        last = rest.rsplit("/", 1)[-1]
        if ":" in last:
            rest, tag = rest.rsplit(":", 1)
            if not _TAG.match(tag):
                raise UsageError(f"image reference {ref!r} has an invalid tag {tag!r}")
        if not re.match(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$", rest):
            raise UsageError(f"image reference {ref!r} has an invalid repository name {rest!r}",
                             hint="repository names are lower-case letters, digits and . _ - /")
        if tag is None and digest is None:
            raise UsageError(f"image reference {ref!r} has neither a tag nor a digest",
                             hint="deployctl deploys exact images: add :TAG or @sha256:…")
        return cls(host, rest, tag, digest)

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when there is one (it is exact)."""
        return self.digest or self.tag or ""

    def with_digest(self, digest: str) -> str:
        return f"{self.registry}/{self.repository}@{digest}"

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def is_loopback(host: str) -> bool:
    """Docker talks plain HTTP to registries on loopback addresses; so do we."""
    name = host[1:].split("]", 1)[0] if host.startswith("[") else host.split(":", 1)[0]
    return name == "localhost" or name.startswith("127.") or name == "::1"


class RegistryClient:
    """Read-only questions to one registry host. Not thread-safe; make one per stage."""

    def __init__(
        self,
        host: str,
        credentials: Credentials | CredentialSource | None = None,
        *,
        timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.base = f"{'http' if is_loopback(host) else 'https'}://{host}"
        self.timeout = timeout
        self._credentials = credentials
        self._resolved: Credentials | None = None
        self._looked_up = False
        self._auth_header: str | None = None

    # -- public questions -------------------------------------------------------------------

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest the registry serves for `reference` (tag or digest); None if absent."""
        status, headers, body = self._request("HEAD", f"/v2/{repository}/manifests/{reference}",
                                              accept=", ".join(MANIFEST_TYPES))
        if status == 404:
            return None
        digest = headers.get("Docker-Content-Digest")
        if digest and DIGEST.match(digest):
            return digest
        # Some registries omit the header on HEAD; the digest is then the hash of the body.
        status, headers, body = self._request("GET", f"/v2/{repository}/manifests/{reference}",
                                              accept=", ".join(MANIFEST_TYPES))
        if status == 404:
            return None
        return headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()

    def image_config(self, repository: str, reference: str,
                     platform: str = "linux/amd64") -> dict[str, Any] | None:
        """The image config JSON (with `config.Labels`) for `reference`; None if absent.

        A multi-platform index is resolved to the manifest for `platform`.
        """
        manifest = self._get_json(f"/v2/{repository}/manifests/{reference}", accept=", ".join(MANIFEST_TYPES))
        if manifest is None:
            return None
        if manifest.get("mediaType") in _INDEX_TYPES or "manifests" in manifest:
            os_name, _, arch = platform.partition("/")
            chosen = next((m for m in manifest.get("manifests", [])
                           if m.get("platform", {}).get("os") == os_name
                           and m.get("platform", {}).get("architecture") == arch), None)
            if chosen is None:
                return None
            manifest = self._get_json(f"/v2/{repository}/manifests/{chosen['digest']}",
                                      accept=", ".join(MANIFEST_TYPES))
            if manifest is None:
                return None
        config = manifest.get("config") or {}
        if not config.get("digest"):
            return None  # schema 1 or an artifact: not an image deployctl built
        return self._get_json(f"/v2/{repository}/blobs/{config['digest']}", accept="*/*")

    def labels(self, repository: str, reference: str, platform: str = "linux/amd64") -> dict[str, str] | None:
        """The image's labels; None when the image is absent."""
        config = self.image_config(repository, reference, platform)
        if config is None:
            return None
        return dict((config.get("config") or {}).get("Labels") or {})

    # -- HTTP ---------------------------------------------------------------------------------

    def _get_json(self, path: str, accept: str) -> dict[str, Any] | None:
        status, _, body = self._request("GET", path, accept=accept)
        if status == 404:
            return None
        try:
            data = json.loads(body)
        except ValueError:
            raise ExternalError(f"the registry {self.host} sent something that is not JSON "
                                f"for {path}") from None
        return data if isinstance(data, dict) else None

    def _request(self, method: str, path: str, *, accept: str) -> tuple[int, Any, bytes]:
        """(status, headers, body) for 2xx and 404; every other answer raises ExternalError."""
        for attempt in range(2):
            status, headers, body = self._send(method, self.base + path, accept)
            if status != 401:
                break
            if attempt == 0 and self._authenticate(headers.get("WWW-Authenticate", ""), path):
                continue
            raise self._denied()
        if status == 404 or 200 <= status < 300:
            return status, headers, body
        detail = _error_detail(body)
        if status == 403:
            raise ExternalError(f"the registry {self.host} denied access to {path.split('/')[2]}"
                                + (f": {detail}" if detail else ""),
                                hint="the credentials work but lack permission for this repository")
        raise ExternalError(f"the registry {self.host} answered {status} to {method} {path}"
                            + (f": {detail}" if detail else ""))

    def _send(self, method: str, url: str, accept: str, auth: str | None = None) -> tuple[int, Any, bytes]:
        request = urllib.request.Request(url, method=method)
        request.add_header("Accept", accept)
        header = auth or self._auth_header
        if header:
            # Unredirected: registries (ECR) redirect blob GETs to presigned storage URLs, which
            # reject a second Authorization header and must never see our credentials.
            request.add_unredirected_header("Authorization", header)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read() if method != "HEAD" else b""
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: Exception) -> ExternalError:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ConnectionRefusedError):
            why = "connection refused"
        elif isinstance(reason, socket.gaierror):
            why = "the host name does not resolve"
        elif isinstance(reason, TimeoutError | socket.timeout):
            why = f"no answer within {self.timeout:g}s"
        elif isinstance(reason, ssl.SSLError):
            why = f"TLS failed ({reason.__class__.__name__})"
        else:
            why = str(reason)
        return ExternalError(
            f"cannot reach the registry at {self.base}: {why}",
            hint="is the registry running and reachable from here, and is image.registry in deploy.yaml right?",
        )

    # -- authentication -----------------------------------------------------------------------

    def _creds(self) -> Credentials | None:
        if not self._looked_up:
            self._looked_up = True
            source = self._credentials
            self._resolved = source() if callable(source) else source
        return self._resolved

    def _denied(self) -> ExternalError:
        creds = self._creds()
        if creds is None:
            return ExternalError(
                f"the registry {self.host} requires credentials and none were found",
                hint=f"set DEPLOYCTL_REGISTRY_USERNAME and DEPLOYCTL_REGISTRY_PASSWORD, or run "
                     f"`docker login {self.host}`",
            )
        return ExternalError(
            f"the registry {self.host} refused the credentials of user {creds[0]!r}",
            hint="check DEPLOYCTL_REGISTRY_USERNAME / DEPLOYCTL_REGISTRY_PASSWORD or your "
                 f"`docker login {self.host}`",
        )

    def _authenticate(self, challenge: str, path: str) -> bool:
        """Answer a 401 challenge; False when there is nothing to try."""
        scheme, _, params_text = challenge.partition(" ")
        creds = self._creds()
        if scheme.lower() == "basic":
            if creds is None:
                return False
            self._auth_header = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            return True
        if scheme.lower() == "bearer":
            params = dict(re.findall(r'(\w+)="([^"]*)"', params_text))
            realm = params.pop("realm", None)
            if not realm:
                return False
            if "scope" not in params:
                repo = path.split("/manifests/")[0].split("/blobs/")[0].removeprefix("/v2/")
                params["scope"] = f"repository:{repo}:pull"
            url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(params)
            basic = None
            if creds is not None:
                basic = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            status, _, body = self._send("GET", url, "application/json", auth=basic)
            if status != 200:
                return False
            try:
                data = json.loads(body)
            except ValueError:
                return False
            token = data.get("token") or data.get("access_token")
            if not token:
                return False
            self._auth_header = f"Bearer {token}"
            return True
        return False


def _error_detail(body: bytes) -> str:
    """The first message of a distribution-spec error body, if any."""
    try:
        errors = json.loads(body).get("errors") or []
        return str(errors[0].get("message", "")) if errors else ""
    except (ValueError, AttributeError):
        return ""

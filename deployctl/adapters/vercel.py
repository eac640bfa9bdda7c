"""The one door to Vercel's REST API (https://vercel.com/docs/rest-api), over HTTPS with httpx.

Why httpx and not an SDK: Vercel's official SDK (@vercel/sdk) is TypeScript, and the Python
package `vercel` on PyPI covers only creating deployments and uploading files: not promote,
instant rollback, build events, aliases or cancelling, which deployctl needs. httpx is a
well-kept HTTP client with per-call timeouts and one connection pool for the many uploads.
Everything the target needs is here: file upload by SHA1, create/get/list/delete/cancel
deployments, build events, promote and instant rollback, aliases and the project.

Retries: 429 (honouring Retry-After, else X-RateLimit-Reset) on every call; 5xx and network
errors on calls that are safe to repeat (reads, deletes, content-addressed uploads), and 503
on any call (it was not processed). Errors become one-paragraph messages with a hint; the
token never appears in one.

The base URL comes from DEPLOYCTL_VERCEL_API (default https://api.vercel.com): tests point it
at the contract simulation in tests/simulation/vercel_api.py.
"""

from __future__ import annotations

import email.utils
import json
import os
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from deployctl.errors import ExternalError, UsageError

API = "https://api.vercel.com"
ENV_API = "DEPLOYCTL_VERCEL_API"
ENV_TOKEN = "VERCEL_TOKEN"
ENV_TIMEOUT = "DEPLOYCTL_VERCEL_TIMEOUT"  # seconds per API call (default 30)
# A contract server without TLS serves deployment URLs over plain http (tests only).
ENV_URL_SCHEME = "DEPLOYCTL_VERCEL_URL_SCHEME"
TOKENS_PAGE = "https://vercel.com/account/tokens"

READY, ERROR, CANCELED = "READY", "ERROR", "CANCELED"
MAX_PAGES = 50  # of 100 items: listings stop there (a bound on calls, far beyond what deployctl reads)
FINAL_STATES = frozenset({READY, ERROR, CANCELED, "DELETED"})


class VercelError(ExternalError):
    """A Vercel API call failed (exit 1)."""

    def __init__(self, message: str, *, status: int = 0, code: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status, self.code = status, code


class MissingFiles(Exception):
    """Create deployment answered `missing_files`: these SHA1s must be uploaded first."""

    def __init__(self, shas: list[str]) -> None:
        super().__init__(f"{len(shas)} files missing")
        self.shas = shas


@dataclass(frozen=True)
class Deployment:
    """The fields of a Vercel deployment object that deployctl reads."""

    id: str
    url: str  # host name without scheme, e.g. app-abc123.vercel.app
    state: str  # readyState: QUEUED, INITIALIZING, BUILDING, READY, ERROR, CANCELED
    target: str | None  # "production", "staging" or None (preview)
    created_at: int  # ms since the epoch
    meta: Mapping[str, str] = field(default_factory=dict)
    error: str = ""  # errorMessage of an ERROR deployment
    custom_environment: str = ""  # slug (else id) of its customEnvironment, if it was deployed to one

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Deployment:
        return cls(id=str(data.get("id") or data.get("uid") or ""), url=str(data.get("url") or ""),
                   state=str(data.get("readyState") or data.get("state") or "UNKNOWN"),
                   target=data.get("target"), created_at=int(data.get("createdAt") or data.get("created") or 0),
                   meta={str(k): str(v) for k, v in (data.get("meta") or {}).items()},
                   error=str(data.get("errorMessage") or ""), custom_environment=_custom_env(data))

    def https_url(self) -> str:
        scheme = os.environ.get(ENV_URL_SCHEME, "https")
        return self.url if "://" in self.url else f"{scheme}://{self.url}"


def _custom_env(data: Mapping[str, Any]) -> str:
    custom = data.get("customEnvironment")
    return str(custom.get("slug") or custom.get("id") or "") if isinstance(custom, Mapping) else ""


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise UsageError(f"{name} must be a positive number of seconds, not {raw!r}")
    return value


def _now() -> float:
    return time.time()


class VercelClient:
    def __init__(self, token: str, team_id: str | None = None, *, base_url: str | None = None,
                 timeout: float | None = None, retries: int = 4, backoff: float = 1.0, max_wait: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._token = token
        self.team_id = team_id
        self.base_url = (base_url or os.environ.get(ENV_API) or API).rstrip("/")
        timeout = timeout if timeout is not None else _env_seconds(ENV_TIMEOUT, 30.0)
        self.timeout, self.retries, self.backoff, self.max_wait = timeout, retries, backoff, max_wait
        self._sleep = sleep
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)

    # --- the endpoints ------------------------------------------------------------------------

    def upload(self, sha: str, data: bytes) -> None:
        """POST /v2/files: one file's bytes, named by their SHA1 (x-vercel-digest)."""
        self._call("POST", "/v2/files", body=data, idempotent=True, what=f"uploading file {sha[:12]}",
                   headers={"Content-Type": "application/octet-stream", "x-vercel-digest": sha,
                            "Content-Length": str(len(data))})

    def create_deployment(self, body: Mapping[str, Any]) -> Deployment:
        """POST /v13/deployments. MissingFiles when some `files[].sha` were never uploaded."""
        try:
            answer = self._call("POST", "/v13/deployments", json_body=body,
                                query={"skipAutoDetectionConfirmation": "1"}, what="creating the deployment")
        except VercelError as exc:
            if exc.code == "missing_files" and isinstance(getattr(exc, "missing", None), list):
                raise MissingFiles(list(exc.missing)) from None  # type: ignore[attr-defined]
            raise
        return Deployment.from_json(answer)

    def get_deployment(self, deployment_id: str) -> Deployment:
        return Deployment.from_json(self._call("GET", f"/v13/deployments/{_q(deployment_id)}", idempotent=True,
                                               what=f"reading deployment {deployment_id}"))

    def list_deployments(self, project_id: str, *, target: str | None = None, limit: int = 100,
                         max_pages: int = MAX_PAGES) -> list[Deployment]:
        """GET /v6/deployments of one project, newest first: every page (`pagination.next` is the
        `until` of the next one), at most `max_pages` pages of `limit`."""
        query = {"projectId": project_id, "limit": str(limit)}
        if target:
            query["target"] = target
        found: list[Deployment] = []
        for _ in range(max_pages):
            answer = self._call("GET", "/v6/deployments", query=query, idempotent=True,
                                what=f"listing the deployments of project {project_id}")
            found += [Deployment.from_json(d) for d in answer.get("deployments") or []]
            after = (answer.get("pagination") or {}).get("next")
            if not after:
                break
            query = {**query, "until": str(after)}
        return sorted(found, key=lambda d: d.created_at, reverse=True)

    def project_domains(self, project: str) -> list[dict[str, Any]]:
        """GET /v9/projects/{idOrName}/domains (every page)."""
        return self._paged(f"/v9/projects/{_q(project)}/domains", "domains", {}, f"listing the domains of {project}")

    def aliases(self, project_id: str) -> list[dict[str, Any]]:
        """GET /v4/aliases?projectId=: the project's aliases, each with the deploymentId it points at."""
        return self._paged("/v4/aliases", "aliases", {"projectId": project_id},
                           f"listing the aliases of project {project_id}")

    def deployment_aliases(self, deployment_id: str) -> list[str]:
        """GET /v2/deployments/{id}/aliases: the host names that point at this deployment."""
        answer = self._call("GET", f"/v2/deployments/{_q(deployment_id)}/aliases", idempotent=True,
                            what=f"listing the aliases of {deployment_id}")
        return sorted(str(a.get("alias")) for a in answer.get("aliases") or [] if isinstance(a, dict))

    def _paged(self, path: str, key: str, query: Mapping[str, str], what: str) -> list[dict[str, Any]]:
        params = {**query, "limit": "100"}
        out: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            answer = self._call("GET", path, query=params, idempotent=True, what=what)
            out += [dict(x) for x in answer.get(key) or [] if isinstance(x, dict)]
            after = (answer.get("pagination") or {}).get("next")
            if not after:
                break
            params = {**params, "until": str(after)}
        return out

    def build_log(self, deployment_id: str, last: int = 30) -> list[str]:
        """The last lines of the build output: GET /v3/deployments/{id}/events."""
        # follow=0: a JSON answer, not the live stream; backward: the newest events first.
        answer = self._call("GET", f"/v3/deployments/{_q(deployment_id)}/events",
                            query={"builds": "1", "follow": "0", "direction": "backward", "limit": str(last * 2)},
                            idempotent=True, what=f"reading the build log of {deployment_id}")
        events = list(reversed(answer)) if isinstance(answer, list) else []
        lines: list[str] = []
        for event in events:
            payload = event.get("payload") if isinstance(event, dict) else None
            text = (payload or {}).get("text") if isinstance(payload, dict) else None
            if text is None and isinstance(event, dict):
                text = event.get("text")
            if text:
                lines.extend(str(text).splitlines())
        return lines[-last:]

    def get_project(self, project: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/v9/projects/{_q(project)}", idempotent=True,
                               what=f"reading project {project}"))

    def promote(self, project: str, deployment_id: str) -> None:
        """POST /v10/projects/{project}/promote/{id}: production traffic to this deployment, no rebuild."""
        self._call("POST", f"/v10/projects/{_q(project)}/promote/{_q(deployment_id)}",
                   what=f"promoting {deployment_id} to production")

    def rollback(self, project: str, deployment_id: str) -> None:
        """POST /v1/projects/{project}/rollback/{id}: instant rollback to an earlier production deployment."""
        self._call("POST", f"/v1/projects/{_q(project)}/rollback/{_q(deployment_id)}",
                   what=f"rolling production back to {deployment_id}")

    def cancel_deployment(self, deployment_id: str) -> None:
        """PATCH /v12/deployments/{id}/cancel: stop a build that is still QUEUED or BUILDING."""
        self._call("PATCH", f"/v12/deployments/{_q(deployment_id)}/cancel", idempotent=True,
                   what=f"cancelling deployment {deployment_id}")

    def delete_deployment(self, deployment_id: str) -> None:
        self._call("DELETE", f"/v13/deployments/{_q(deployment_id)}", idempotent=True,
                   what=f"deleting deployment {deployment_id}")

    # --- transport ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, query: Mapping[str, str] | None = None, body: bytes | None = None,
              json_body: Any = None, headers: Mapping[str, str] | None = None, idempotent: bool = False,
              what: str) -> Any:
        params = dict(query or {})
        if self.team_id:
            params["teamId"] = self.team_id
        data = json.dumps(json_body).encode() if json_body is not None else body
        sent = {"Authorization": f"Bearer {self._token}", "Accept": "application/json", **(headers or {})}
        if json_body is not None:
            sent["Content-Type"] = "application/json"
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self._http.request(method, self.base_url + path, params=params, content=data, headers=sent)
            except httpx.TransportError as exc:
                if not idempotent or attempt > self.retries:
                    said = (f"did not answer within {self.timeout:g}s" if isinstance(exc, httpx.TimeoutException)
                            else f"could not be reached: {exc}")
                    raise VercelError(
                        f"{what}: the Vercel API ({self.base_url}) {said}",
                        hint="check the network (or Vercel's status page, https://www.vercel-status.com) and run "
                             "the command again") from None
                self._sleep(self.backoff * 2 ** (attempt - 1))
                continue
            if resp.is_success:
                raw = resp.content
                return json.loads(raw) if raw.strip() else {}
            wait = self._retry_wait(resp.status_code, resp.headers, attempt, idempotent)
            if wait is None:
                raise self._error(resp.status_code, resp.content, resp.headers, what, method, path)
            self._sleep(wait)

    def _retry_wait(self, status: int, headers: Any, attempt: int, idempotent: bool) -> float | None:
        """Seconds to wait before trying again, or None to fail now."""
        if attempt > self.retries:
            return None
        if status == 429:
            wait = _retry_after(headers)
            if wait is None:
                wait = self.backoff * 2 ** (attempt - 1)
            return wait if wait <= self.max_wait else None
        if status == 503 or (status >= 500 and idempotent):
            return _retry_after(headers) or self.backoff * 2 ** (attempt - 1)
        return None

    def _error(self, status: int, raw: bytes, headers: Any, what: str, method: str, path: str) -> VercelError:
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = {}
        err = body.get("error") if isinstance(body, dict) else None
        err = err if isinstance(err, dict) else {}
        code, text = str(err.get("code") or ""), str(err.get("message") or "").replace(self._token, "***")
        said = f": {text}" if text else ""
        if status == 401:
            out = VercelError(f"{what}: Vercel refused the token (401 Unauthorized){said}", status=status, code=code,
                              hint=f"set VERCEL_TOKEN to a valid token (create one at {TOKENS_PAGE}); it may have "
                                   "expired or been revoked")
        elif status == 403:
            out = VercelError(f"{what}: the token may not do this (403 Forbidden){said}", status=status, code=code,
                              hint="use a token created in the scope of the project's team, and set frontend.team_id "
                                   "in deploy.yaml to that team's id (team_…)")
        elif status == 404:
            out = VercelError(f"{what}: not found on Vercel (404){said}", status=status, code=code,
                              hint="check frontend.project_id and frontend.team_id in deploy.yaml")
        elif status == 429:
            reset = _retry_after(headers)
            when = f"; the limit resets in {reset:.0f}s" if reset is not None else ""
            out = VercelError(f"{what}: Vercel's rate limit was hit and stayed hit (429){when}", status=status,
                              code=code, hint="run the command again later; see https://vercel.com/docs/limits")
        elif status >= 500:
            out = VercelError(f"{what}: Vercel answered {status} ({method} {path}){said}", status=status, code=code,
                              hint="a problem on Vercel's side: see https://www.vercel-status.com and run the "
                                   "command again")
        else:
            out = VercelError(f"{what}: Vercel answered {status}{said}", status=status, code=code)
        if code == "missing_files":
            out.missing = err.get("missing") or []  # type: ignore[attr-defined]
        return out


def _retry_after(headers: Any) -> float | None:
    """Seconds from Retry-After (seconds or an HTTP date), else from X-RateLimit-Reset (epoch s)."""
    if headers is None:
        return None
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - _now())
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - _now())
        except ValueError:
            return None
    return None


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def probe(url: str, timeout: float = 10.0, headers: Mapping[str, str] | None = None) -> tuple[int | None, str]:
    """GET `url` once: (HTTP status or None, a few words on what happened). Redirects are followed."""
    try:
        resp = httpx.get(url, timeout=timeout, headers=dict(headers or {}), follow_redirects=True)
    except httpx.TransportError as exc:
        return None, f"did not answer ({exc or type(exc).__name__})"
    return resp.status_code, f"answered {resp.status_code}"

"""The frontend half of an environment on Vercel: a companion of the environment's own target.

deployctl.targets.composite calls it after the backend at every step of the lifecycle:
- deploy: upload the frontend's files by SHA1 (only those Vercel says are missing), create the
  deployment (KIND_*: a preview for previews, a custom environment's, production's own, or for
  every other environment a *staged production* build: target production with the production
  domains not assigned) with the backend's URL in `api_url_env`, wait until READY, then check
  the deployment answers on frontend.health_path. ERROR/CANCELED: exit 1 with the build log's tail.
- promote (the destination has promote_from and is Vercel production): promote the exact staged
  production deployment the source environment built against the promoted image digest; no
  rebuild. Vercel promotes only production deployments as they are (a preview is rebuilt), so
  a source deployment of any other kind is refused before anything moves; so is one built
  against another backend URL than the destination's (`api_url_env` is baked in at build time).
- rollback: the frontend deployment that went with the release rolled back to (production:
  Vercel's instant rollback to it).
- status/history: the frontend deployment beside each backend release.
- teardown: a preview's deployments are deleted.

The platform is the source of truth: every deployment carries `meta` keys naming the app, the
environment, the preview and the backend release and image digest it was built against
(META_*), and everything is read back from Vercel. docs/frontend-vercel.md has the API facts.

Why over 500 lines: every lifecycle step reads and writes the same `meta` keys and chooses
deployments by the same rules (kind, environment, preview, backend digest); the wire calls
themselves live in deployctl.adapters.vercel.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployctl.adapters import vercel
from deployctl.adapters.vercel import Deployment, MissingFiles, VercelClient
from deployctl.config.model import Frontend, ResolvedConfig
from deployctl.errors import DeployctlError, DeployFailed, UsageError
from deployctl.pipeline import Cancelled
from deployctl.releases import Release
from deployctl.targets import vercel_files

META_APP, META_ENV, META_PREVIEW = "deployctlApp", "deployctlEnv", "deployctlPreview"
META_RELEASE, META_DIGEST, META_GIT, META_SOURCE = "deployctlRelease", "deployctlDigest", "deployctlGitSha", \
    "deployctlSource"
META_API_URL = "deployctlApiUrl"  # the backend URL built into api_url_env (compared at promote)
# What a deploy creates (docs/frontend-vercel.md, "Promotion").
KIND_PREVIEW, KIND_CUSTOM, KIND_PRODUCTION, KIND_STAGED = "preview", "custom environment", "production", \
    "staged production"
BUILDING_STATES = frozenset({"QUEUED", "INITIALIZING", "BUILDING"})
ENV_BYPASS = "VERCEL_AUTOMATION_BYPASS_SECRET"  # Vercel's Protection Bypass for Automation
LOG_LINES = 20
HEALTH_WAIT = 60.0  # seconds a READY deployment gets to answer on its health path


@dataclass(frozen=True)
class RollbackPick:
    """What the frontend does in a rollback: `to` becomes what serves (None: nothing to do)."""

    current: Deployment | None
    to: Deployment | None
    reason: str  # one line for the summary

    def summary(self) -> str:
        return f"  frontend: {self.reason}"


@dataclass(frozen=True)
class FrontendStatus:
    doc: dict[str, Any]
    lines: tuple[str, ...]
    problems: tuple[str, ...]
    settled: bool
    ok: bool


def frontend_doc(d: Deployment | None, *, healthy: bool | None = None) -> dict[str, Any] | None:
    """The `frontend` object of status and history documents (stable keys, only ever added to)."""
    if d is None:
        return None
    return {"provider": "vercel", "id": d.id, "url": d.https_url() if d.url else None, "state": d.state,
            "target": d.target or "preview", "release": d.meta.get(META_RELEASE) or None,
            "image_digest": d.meta.get(META_DIGEST) or None, "healthy": healthy}


class VercelFrontend:
    """The `frontend:` section of one environment, on Vercel."""

    label = "frontend"

    def __init__(self, cfg: ResolvedConfig, *, environ: Mapping[str, str] | None = None,
                 client: VercelClient | None = None, root: Path | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        assert cfg.frontend is not None
        self.cfg, self.fe = cfg, cfg.frontend
        self.environ = os.environ if environ is None else environ
        self._client = client
        self._root = root
        self._sleep = sleep
        self._files: list[vercel_files.UploadFile] | None = None

    # --- set-up -------------------------------------------------------------------------------

    @property
    def client(self) -> VercelClient:
        if self._client is None:
            token = self.environ.get(vercel.ENV_TOKEN, "")
            if not token.strip():
                raise UsageError(f"{self.cfg.env_name} has a frontend on Vercel and VERCEL_TOKEN is not set",
                                 hint=f"create a token at {vercel.TOKENS_PAGE} (scope: the project's team) and "
                                      "export VERCEL_TOKEN=… (in CI: a repository secret)")
            self._client = VercelClient(token.strip(), self.fe.team_id)
        return self._client

    def secret_values(self, environ: Mapping[str, str]) -> list[str]:
        return [v for v in (environ.get(vercel.ENV_TOKEN), environ.get(ENV_BYPASS)) if v]

    def root(self) -> Path:
        return self._root if self._root is not None else Path(self.fe.path).resolve()

    def prepare(self, project_dir: str | None, *, building: bool) -> None:
        """Before anything changes: the token works on the project, and (for a build) the files
        are listed, free of secrets and hashed. Refusals here leave the backend untouched."""
        self.client.get_project(self.fe.project_id)
        if project_dir is not None:
            self._root = (Path(project_dir) / self.fe.path).resolve()
        if building and self._files is None:
            self._files = vercel_files.collect(self.root(), self.fe.allow_secret_files)

    # --- deploy -------------------------------------------------------------------------------

    def deploy(self, ctx: Any, *, git_sha: str, preview_name: str | None, force: bool = False) -> Deployment:
        fe, cfg = self.fe, self.cfg
        if self._files is None:
            self.prepare(None, building=True)
        files = self._files or []
        env_vars = dict(fe.build_env)
        if fe.api_url_env:
            env_vars[fe.api_url_env] = self._backend_url(ctx, preview_name)
            ctx.outputs["backend_url"] = env_vars[fe.api_url_env]  # the PR comment shows both URLs
        digest = str(ctx.outputs.get("digest") or "")
        source = _source_hash(files, env_vars, fe)
        meta = {META_APP: cfg.app, META_ENV: cfg.env_name, META_PREVIEW: preview_name or "",
                META_RELEASE: str(ctx.outputs.get("release") or ""), META_DIGEST: digest,
                META_GIT: git_sha, META_SOURCE: source, META_API_URL: env_vars.get(fe.api_url_env or "", "")}
        if not force:
            same = self._unchanged(preview_name, source, digest)
            if same is not None:
                ctx.log(f"frontend: unchanged since deployment {same.id}; not rebuilt (--force rebuilds)")
                self._publish(ctx, same)
                self._check_health(ctx, same)
                return same
        body: dict[str, Any] = {"name": cfg.app, "project": fe.project_id, "files": [f.as_json() for f in files],
                                "meta": meta, "build": {"env": env_vars}, "env": env_vars}
        if fe.framework:
            body["projectSettings"] = {"framework": fe.framework}
        kind = self.kind(preview_name)
        if kind in (KIND_PRODUCTION, KIND_STAGED):
            body["target"] = "production"
        if kind == KIND_STAGED:
            # What `vercel --prod --skip-domain` sends: a production build the domains are not
            # assigned to, which `promote` later serves as it is.
            body["autoAssignCustomDomains"] = False
        elif kind == KIND_CUSTOM:
            body["customEnvironmentSlugOrId"] = cfg.env_name
        serving = self._production_id() if kind == KIND_STAGED else None
        ctx.log(f"frontend: {len(files)} files, {sum(f.size for f in files)} bytes, project {fe.project_id}, "
                f"a {kind} deployment"
                + (f", {fe.api_url_env} = {env_vars[fe.api_url_env]}" if fe.api_url_env else ""))
        created = self._create(ctx, body, files)
        ctx.log(f"frontend: deployment {created.id} created ({created.https_url()}); waiting for READY")
        ready = self._wait_ready(ctx, created)
        self._publish(ctx, ready)
        if kind == KIND_STAGED:
            self._check_staged(ready, serving)
        elif kind == KIND_PRODUCTION and self._production_id() != ready.id:
            # After an instant rollback Vercel stops assigning the production domains to new
            # production deployments until a promote undoes the rollback (so does a project with
            # auto-assignment off): a production deploy is meant to serve, so promote it.
            ctx.log(f"frontend: production does not serve {ready.id} by itself (it was instantly rolled back, or "
                    "the project does not auto-assign its domains); promoting it")
            self.client.promote(self.fe.project_id, ready.id)
            ready = self._await_production(ctx, ready.id)
        elif kind == KIND_PRODUCTION:
            self._verify_domains(ctx, ready.id)
        self._check_health(ctx, ready)
        return ready

    def kind(self, preview_name: str | None) -> str:
        """Which deployment a deploy of this environment creates (KIND_*)."""
        if preview_name or self.cfg.environment.preview:
            return KIND_PREVIEW
        if self.fe.production:
            return KIND_PRODUCTION
        if self.fe.custom_environment:
            return KIND_CUSTOM
        return KIND_STAGED

    def _production_id(self) -> str | None:
        project = self.client.get_project(self.fe.project_id)
        prod = (project.get("targets") or {}).get("production") if isinstance(project, dict) else None
        return str(prod["id"]) if isinstance(prod, dict) and prod.get("id") else None

    def _check_staged(self, d: Deployment, serving_before: str | None) -> None:
        """A staged build must not have taken production: verify, do not trust the flag."""
        now = self._production_id()
        if now == d.id and now != serving_before:
            raise DeployFailed(f"Vercel made the staged frontend deployment {d.id} of {self.cfg.env_name} production "
                               "(it assigned the production domains although deployctl asked it not to)",
                               hint="turn off Settings → Environments → Production → \"Auto-assign Custom "
                                    "Production Domains\" for the Vercel project, then run `deployctl rollback "
                                    "--env <prod>` or promote what production should serve")

    def _backend_url(self, ctx: Any, preview_name: str | None) -> str:
        fe, cfg = self.fe, self.cfg
        if fe.api_url:
            return fe.api_url.format(app=cfg.app, env=cfg.env_name, name=preview_name or "")
        url = ctx.outputs.get("url")
        if not url:
            raise DeployFailed(f"frontend.api_url_env is {fe.api_url_env}, but the backend of {cfg.env_name} "
                               "published no URL to pass in",
                               hint=f"set frontend.api_url (e.g. https://api-{{env}}.example.com) for {cfg.env_name} "
                                    "in deploy.yaml")
        return str(url)

    def _create(self, ctx: Any, body: Mapping[str, Any], files: Sequence[vercel_files.UploadFile]) -> Deployment:
        by_sha = {f.sha: f for f in files}
        for attempt in (1, 2):
            try:
                return self.client.create_deployment(body)
            except MissingFiles as missing:
                unknown = [s for s in missing.shas if s not in by_sha]
                if unknown or attempt == 2:
                    raise DeployFailed(f"Vercel still asks for {len(missing.shas)} file(s) after they were uploaded",
                                       hint="run the command again; if it persists, see "
                                            "https://www.vercel-status.com") from None
                wanted = [by_sha[s] for s in missing.shas]
                ctx.log(f"frontend: uploading {len(wanted)} of {len(files)} files "
                        f"({sum(f.size for f in wanted)} bytes); Vercel has the others")
                for f in wanted:
                    ctx.raise_if_cancelled()
                    self.client.upload(f.sha, (self.root() / f.path).read_bytes())
        raise AssertionError("unreachable")

    def _wait_ready(self, ctx: Any, created: Deployment) -> Deployment:
        deadline = time.monotonic() + self.fe.timeout
        interval = min(float(self.cfg.deploy.poll_interval), 5.0)
        seen, current = created.state, created
        while True:
            if current.state == vercel.READY:
                ctx.log(f"frontend: deployment {current.id} is READY")
                return current
            if current.state in (vercel.ERROR, vercel.CANCELED):
                self._publish(ctx, current)
                lines = self._log_tail(current.id)
                if lines:
                    ctx.log(f"frontend: last {len(lines)} lines of the build log of {current.id}:")
                    for line in lines:
                        ctx.log(f"  {line}")
                why = f": {current.error}" if current.error else ""
                raise DeployFailed(f"frontend deployment {current.id} ended {current.state}{why}; the backend "
                                   "release stays, the frontend that served before keeps serving",
                                   hint="the build log's last lines are above; fix the build and run again "
                                        f"(full log: `vercel inspect {current.id} --logs`)")
            if time.monotonic() > deadline:
                self._publish(ctx, current)
                stopped = self._cancel(ctx, current)
                raise DeployFailed(f"frontend deployment {current.id} was not READY after {self.fe.timeout:g}s "
                                   f"(still {current.state}{'; its build was cancelled' if stopped else ''})",
                                   hint="raise frontend.timeout in deploy.yaml, or look at the build on Vercel "
                                        f"(`vercel inspect {current.id} --logs`)")
            if ctx.cancelled.is_set():
                self._cancel(ctx, current)
                raise Cancelled(f"run cancelled while frontend deployment {current.id} was {current.state}")
            self._sleep(interval)
            current = self.client.get_deployment(created.id)
            if current.state != seen:
                ctx.log(f"frontend: {current.id} {seen} → {current.state}")
                seen = current.state

    def _cancel(self, ctx: Any, d: Deployment) -> bool:
        """Stop a build deployctl gave up on, so nothing is left half-done; best effort."""
        try:
            self.client.cancel_deployment(d.id)
        except vercel.VercelError as exc:
            ctx.log(f"frontend: could not cancel the build of {d.id}: {exc.message}")
            return False
        ctx.log(f"frontend: cancelled the build of {d.id}")
        return True

    def _log_tail(self, deployment_id: str) -> list[str]:
        try:
            return self.client.build_log(deployment_id, LOG_LINES)
        except vercel.VercelError as exc:
            return [f"(the build log could not be read: {exc.message})"]

    def _check_health(self, ctx: Any, d: Deployment) -> None:
        url = d.https_url().rstrip("/") + self.fe.health_path
        deadline = time.monotonic() + HEALTH_WAIT
        while True:
            status, said = vercel.probe(url, timeout=10.0, headers=self._probe_headers())
            if status is not None and 200 <= status < 400:
                ctx.log(f"frontend: {url} {said}")
                return
            if time.monotonic() > deadline:
                hint = (f"a 401 is Vercel's deployment protection: set {ENV_BYPASS} (Protection Bypass for "
                        "Automation) or open the path" if status == 401 else
                        f"check that the app serves {self.fe.health_path} (frontend.health_path in deploy.yaml)")
                raise DeployFailed(f"frontend deployment {d.id} is READY but {url} {said} for {HEALTH_WAIT:g}s; "
                                   "the release is not good", hint=hint)
            ctx.raise_if_cancelled()
            self._sleep(2.0)

    def _probe_headers(self) -> dict[str, str]:
        secret = self.environ.get(ENV_BYPASS)
        return {"x-vercel-protection-bypass": secret} if secret else {}

    @staticmethod
    def _publish(ctx: Any, d: Deployment) -> None:
        ctx.outputs["frontend_id"] = d.id
        ctx.outputs["frontend_url"] = d.https_url()
        ctx.outputs["frontend_state"] = d.state

    # --- reading ------------------------------------------------------------------------------

    def _mine(self, preview_name: str | None, envs: Iterable[str] | None = None) -> list[Deployment]:
        """This app's deployments made by deployctl for these environments (default: this one), newest first."""
        wanted = set(envs or (self.cfg.env_name,))
        return [d for d in self.client.list_deployments(self.fe.project_id)
                if d.meta.get(META_APP) == self.cfg.app and d.meta.get(META_ENV) in wanted
                and d.meta.get(META_PREVIEW, "") == (preview_name or "")]

    def _unchanged(self, preview_name: str | None, source: str, digest: str) -> Deployment | None:
        if self.fe.production:
            return None  # a production deployment is what serves: never skipped silently
        for d in self._mine(preview_name):
            if d.state == vercel.READY and d.meta.get(META_SOURCE) == source and d.meta.get(META_DIGEST) == digest:
                return d
        return None

    def _candidates(self) -> list[Deployment]:
        envs = [self.cfg.env_name]
        if self.cfg.environment.promote_from:
            envs.append(self.cfg.environment.promote_from)  # promoted deployments were built there
        return self._mine(None, envs)

    def _production(self) -> Deployment | None:
        prod = self._production_id()
        return self.client.get_deployment(prod) if prod else None

    def current(self, digest: str | None) -> Deployment | None:
        """What serves: production's deployment; else the one built against the backend's current
        image digest (the newest READY one when none was)."""
        if self.fe.production:
            return self._production()
        mine = self._mine(None)
        paired = [d for d in mine if digest and d.meta.get(META_DIGEST) == digest and d.state == vercel.READY]
        ready = [d for d in mine if d.state == vercel.READY]
        return next(iter(paired or ready or mine), None)

    def status(self, digest: str | None) -> FrontendStatus:
        try:
            d = self.current(digest)
        except DeployctlError as exc:  # the backend's status is still worth showing
            return FrontendStatus(doc={"provider": "vercel", "id": None, "url": None, "state": None, "target": None,
                                       "release": None, "image_digest": None, "healthy": None, "error": exc.message},
                                  lines=(f"frontend (vercel): unknown: {exc.message}",),
                                  problems=(f"frontend: {exc.message}",), settled=True, ok=False)
        if d is None:
            return FrontendStatus(doc={"provider": "vercel", "id": None, "url": None, "state": None,
                                       "target": None, "release": None, "image_digest": None, "healthy": None},
                                  lines=("frontend (vercel): never deployed",),
                                  problems=("frontend: never deployed",), settled=True, ok=False)
        healthy = None
        if d.state == vercel.READY:
            status, _ = vercel.probe(d.https_url().rstrip("/") + self.fe.health_path, timeout=5.0,
                                     headers=self._probe_headers())
            healthy = status is not None and 200 <= status < 400
        doc = frontend_doc(d, healthy=healthy) or {}
        try:
            doc["aliases"] = self.client.deployment_aliases(d.id)
        except vercel.VercelError as exc:
            doc["aliases"], doc["aliases_error"] = None, exc.message
        problems = []
        if d.state != vercel.READY:
            problems.append(f"frontend: deployment {d.id} is {d.state}")
        elif not healthy:
            problems.append(f"frontend: {d.https_url()}{self.fe.health_path} does not answer")
        line = (f"frontend (vercel): {d.id} {d.state} {d.https_url()}"
                + (f" ({'healthy' if healthy else 'NOT answering ' + self.fe.health_path})" if healthy is not None
                   else "") + (f", built for release {d.meta[META_RELEASE]}" if d.meta.get(META_RELEASE) else ""))
        lines = (line, f"  aliases: {', '.join(doc['aliases'])}") if doc.get("aliases") else (line,)
        return FrontendStatus(doc=doc, lines=lines, problems=tuple(problems),
                              settled=d.state not in BUILDING_STATES, ok=not problems)

    def attach(self, found: Sequence[Release]) -> dict[str, dict[str, Any]]:
        """Release id → {"frontend": …}: the deployment built against that release's image."""
        if not found:
            return {}
        candidates = self._candidates()
        prod = self._production() if self.fe.production else None
        out: dict[str, dict[str, Any]] = {}
        for r in found:
            match = next((d for d in candidates if r.image_digest and d.meta.get(META_DIGEST) == r.image_digest
                          and (d.state == vercel.READY or d.meta.get(META_RELEASE) == r.id)), None)
            if prod is not None and match is not None and match.id != prod.id and prod.meta.get(META_DIGEST) == \
                    r.image_digest:
                match = prod
            out[r.id] = {"frontend": frontend_doc(match)}
        return out

    # --- promote ------------------------------------------------------------------------------

    def source_deployment(self, digest: str) -> Deployment:
        """The READY deployment of this (source) environment built against `digest`; DeployFailed if none."""
        for d in self._mine(None):
            if d.meta.get(META_DIGEST) == digest and d.state == vercel.READY:
                return d
        raise DeployFailed(f"{self.cfg.env_name} has no READY frontend deployment built against the image it runs "
                           f"({digest[:19]}…): nothing to promote for the frontend",
                           hint=f"run `deployctl run --env {self.cfg.env_name}` to deploy both halves, then promote")

    def promote_check(self, digest: str, source_env: str, *, allow_api_url_mismatch: bool = True) -> Deployment:
        """Before anything moves: this is Vercel production, the source built this image's frontend
        as a staged production deployment (the only kind Vercel promotes without a rebuild), and
        (unless allowed) with the backend URL this environment's frontend must call."""
        if not self.fe.production:
            raise DeployFailed(f"{self.cfg.env_name} is not the Vercel project's production (frontend.production); "
                               "a frontend reaches an environment by promotion only as production; nothing was "
                               "changed", hint=f"set frontend.production: true for {self.cfg.env_name} in deploy.yaml")
        source = next((d for d in self.client.list_deployments(self.fe.project_id)
                       if d.meta.get(META_APP) == self.cfg.app and d.meta.get(META_ENV) == source_env
                       and not d.meta.get(META_PREVIEW) and d.meta.get(META_DIGEST) == digest
                       and d.state == vercel.READY), None)
        if source is None:
            raise DeployFailed(f"{source_env} has no READY frontend deployment built against {digest[:19]}…; "
                               "nothing was changed", hint=f"run `deployctl run --env {source_env}` first")
        if source.target != "production":
            custom = source.custom_environment or source.target
            what = f"a deployment of the custom environment {custom}" if custom else "a preview"
            raise DeployFailed(
                f"{source_env}'s frontend deployment {source.id} is {what}: Vercel promotes only production "
                "deployments as they are (a preview is rebuilt with production's settings, so production would not "
                "get what was tested); nothing was changed",
                hint=f"deploy {source_env} as a staged production build: leave frontend.custom_environment off for "
                     f"{source_env} and run `deployctl run --env {source_env}` again, then promote "
                     "(docs/frontend-vercel.md, \"Promotion\")")
        if not allow_api_url_mismatch:
            self._check_api_url(source, source_env)
        return source

    def _check_api_url(self, source: Deployment, source_env: str) -> None:
        fe = self.fe
        if not fe.api_url_env:
            return  # nothing of the backend is built into the frontend
        built = source.meta.get(META_API_URL) or ""
        wanted = fe.api_url.format(app=self.cfg.app, env=self.cfg.env_name, name="") if fe.api_url else ""
        if built and built == wanted:
            return
        said = (f"{built or 'a URL deployctl did not record'}, but {self.cfg.env_name}'s backend is at "
                f"{wanted or 'a URL known only after it is deployed (frontend.api_url is not set)'}")
        raise UsageError(
            f"refusing to promote the frontend: {fe.api_url_env} is built into the frontend when it is built, so "
            f"{source_env}'s deployment {source.id} would make production's pages call {source_env}'s backend. "
            f"It was built with {fe.api_url_env} = {said}. Nothing was changed.",
            hint=f"read the backend URL at run time instead of {fe.api_url_env} (a server-side fetch or a rewrite in "
                 f"vercel.json) and drop api_url_env; or give {source_env} and {self.cfg.env_name} the same public "
                 "API URL (frontend.api_url); or, knowing production's frontend will call that backend, run "
                 "`deployctl promote` with --allow-frontend-api-url-mismatch")

    def promote(self, ctx: Any, digest: str, source_env: str) -> Deployment:
        source = self.promote_check(digest, source_env)
        ctx.log(f"frontend: promoting {source.id} ({source.https_url()}) from {source_env} to production; no rebuild")
        self.client.promote(self.fe.project_id, source.id)
        served = self._await_production(ctx, source.id)
        self._publish(ctx, served)
        self._check_health(ctx, served)
        return served

    def _await_production(self, ctx: Any, deployment_id: str) -> Deployment:
        """Promote and rollback are asynchronous on Vercel: wait until production is that
        deployment, and its production domains point at it."""
        deadline = time.monotonic() + min(self.fe.timeout, 300.0)
        while True:
            prod = self._production()
            if prod is not None and prod.id == deployment_id:
                ctx.log(f"frontend: production now serves {prod.id}")
                self._verify_domains(ctx, deployment_id, deadline)
                return prod
            if time.monotonic() > deadline:
                raise DeployFailed(f"Vercel accepted the change but production does not serve {deployment_id} "
                                   f"(it serves {prod.id if prod else 'nothing'})",
                                   hint="check the project's production deployment on Vercel, then run again")
            ctx.raise_if_cancelled()
            self._sleep(2.0)

    def production_domains(self) -> list[str]:
        """The project's own production domains: not a redirect, not a git branch's or a custom
        environment's."""
        return [str(d.get("name")) for d in self.client.project_domains(self.fe.project_id)
                if d.get("name") and not (d.get("redirect") or d.get("gitBranch") or d.get("customEnvironmentId"))]

    def _verify_domains(self, ctx: Any, deployment_id: str, deadline: float | None = None) -> None:
        """Every production domain's alias points at `deployment_id` (read back from Vercel's
        aliases, not assumed from the promote's answer)."""
        domains = self.production_domains()
        if not domains:
            ctx.log("frontend: the project has no production domains of its own to check (only its vercel.app URL)")
            return
        project_id = str(self.client.get_project(self.fe.project_id).get("id") or self.fe.project_id)
        deadline = deadline if deadline is not None else time.monotonic() + min(self.fe.timeout, 300.0)
        while True:
            pointing = {str(a.get("alias")): str(a.get("deploymentId") or "") for a in self.client.aliases(project_id)}
            wrong = [f"{d} → {pointing.get(d) or 'nothing'}" for d in domains if pointing.get(d) != deployment_id]
            if not wrong:
                verb = "points" if len(domains) == 1 else "point"
                ctx.log(f"frontend: {', '.join(domains)} {verb} at {deployment_id}")
                return
            if time.monotonic() > deadline:
                raise DeployFailed(f"production serves {deployment_id} but not every production domain points at it: "
                                   f"{'; '.join(wrong)}",
                                   hint="a domain aliased by hand stays where it was: check Project → Settings → "
                                        f"Domains on Vercel, or `vercel alias set {deployment_id} <domain>`")
            ctx.raise_if_cancelled()
            self._sleep(2.0)

    # --- rollback -----------------------------------------------------------------------------

    def choose_rollback(self, target: Release, current_digest: str | None) -> RollbackPick:
        now = self.current(current_digest)
        match = next((d for d in self._candidates() if target.image_digest
                      and d.meta.get(META_DIGEST) == target.image_digest and d.state == vercel.READY), None)
        if match is None and self.fe.production:
            # Staged builds of the source environment are production deployments too, but only
            # the ones promoted ever served (and those are found by digest above).
            previous = [d for d in self.client.list_deployments(self.fe.project_id, target="production")
                        if d.state == vercel.READY and (now is None or d.id != now.id)
                        and d.meta.get(META_ENV, self.cfg.env_name) == self.cfg.env_name]
            match = previous[0] if previous else None
            if match is None:
                raise UsageError(f"{self.cfg.env_name}'s frontend has no earlier production deployment to roll back to",
                                 hint="nothing was changed")
            return RollbackPick(now, match, f"{_name(now)} → {match.id} (the previous production deployment; "
                                            f"none was built for release {target.id})")
        if match is None:
            return RollbackPick(now, None, f"stays {_name(now)} (no frontend deployment was built for release "
                                           f"{target.id})")
        if now is not None and match.id == now.id:
            return RollbackPick(now, None, f"stays {now.id} (it already goes with release {target.id})")
        return RollbackPick(now, match, f"{_name(now)} → {match.id} ({match.https_url()})")

    def rollback(self, ctx: Any, pick: RollbackPick) -> None:
        if pick.to is None:
            if pick.current is not None:
                self._publish(ctx, pick.current)
            ctx.log(f"frontend: {pick.reason}")
            return
        if self.fe.production:
            ctx.log(f"frontend: instant rollback of production to {pick.to.id}")
            self.client.rollback(self.fe.project_id, pick.to.id)
            served = self._await_production(ctx, pick.to.id)
        else:
            served = self.client.get_deployment(pick.to.id)
            ctx.log(f"frontend: {served.id} goes with the restored release again ({served.https_url()})")
        self._publish(ctx, served)
        self._check_health(ctx, served)

    # --- previews -----------------------------------------------------------------------------

    def teardown(self, name: str, *, dry_run: bool) -> list[str]:
        removed = []
        for d in self._mine(name):
            if not dry_run:
                self.client.delete_deployment(d.id)
            removed.append(f"Vercel deployment {d.id} ({d.https_url()})")
        return removed


def _name(d: Deployment | None) -> str:
    return d.id if d is not None else "none"


def _source_hash(files: Sequence[vercel_files.UploadFile], env_vars: Mapping[str, str], fe: Frontend) -> str:
    """What the build is made of: the files, the env and the settings (not the backend release)."""
    doc = {"files": [[f.path, f.sha] for f in files], "env": dict(sorted(env_vars.items())),
           "framework": fe.framework, "production": fe.production, "custom": fe.custom_environment}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

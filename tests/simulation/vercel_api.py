"""A SIMULATION of the Vercel REST API endpoints deployctl uses: a contract server over real HTTP.

Written from Vercel's public API reference (https://vercel.com/docs/rest-api; the facts are in
docs/frontend-vercel.md), not from Vercel itself, so it proves deployctl speaks the documented
contract, not that Vercel behaves exactly so. It serves:

- POST /v2/files                     body = the file, x-vercel-digest = its SHA1 (checked)
- POST /v13/deployments              files [{file, sha, size}]; 400 `missing_files` with `missing`
                                     SHA1s until every file was uploaded; project, target,
                                     customEnvironmentSlugOrId, autoAssignCustomDomains, meta,
                                     build.env recorded. A production build that gets READY
                                     takes production unless it is *staged*: created with
                                     autoAssignCustomDomains false, or the project's setting is
                                     off, or production was instantly rolled back (Vercel then
                                     stops assigning the domains until a promote)
- GET  /v13/deployments/{id}         readyState advances one step per read along the deployment's
                                     script (default QUEUED → BUILDING → READY; or ERROR/CANCELED)
- GET  /v6/deployments               {deployments: [...], pagination: {count, next, prev}}, newest
                                     first, `limit` a page (at most 100); `until` (ms) pages on:
                                     `pagination.next` is the createdAt to pass as `until`
- GET  /v3/deployments/{id}/events   build log events [{type, created, payload: {text}}]
- GET  /v9/projects/{idOrName}       the project, with targets.production once there is one
- GET  /v9/projects/{p}/domains      the project's domains: a production one (chat.example.com)
                                     and a git-branch one (its gitBranch set), paged
- GET  /v4/aliases?projectId=        {aliases: [{uid, alias, deploymentId, projectId}], pagination}:
                                     every production domain points at what serves production
- GET  /v2/deployments/{id}/aliases  {aliases: [{uid, alias, created, redirect}]} of one deployment
- POST /v10/projects/{p}/promote/{id}  production → that READY *production* deployment (no
                                     rebuild), applied after the next project read (promotion is
                                     asynchronous); a preview or custom-environment deployment is
                                     refused 400 `not_production_deployment` (Vercel rebuilds
                                     those through a new create; the endpoint does not rebuild)
- POST /v1/projects/{p}/rollback/{id}  instant rollback to a deployment that served production;
                                     afterwards new production builds do not take the domains
- PATCH /v12/deployments/{id}/cancel a QUEUED/BUILDING deployment becomes CANCELED
- DELETE /v13/deployments/{id}       {uid, state: DELETED}
- GET  /_site/{id}/{path}            the deployment's site (its `url` is 127.0.0.1:PORT/_site/ID),
                                     200 when READY unless the script says otherwise

Every API call needs `Authorization: Bearer <token>` (401 otherwise) and, when the project
belongs to a team, `teamId` (403 otherwise). `fail(...)` injects 429 (with Retry-After and the
X-RateLimit-* headers), 5xx answers or a hang (for client timeouts). `requests` records every
call for shape assertions. `pin_alias(domain)` keeps a production domain where it is when
production moves (as a domain someone aliased by hand would be).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "vercel-sim-token-0123456789"
TEAM = "team_sim"
PROJECT = "prj_sim"


@dataclass
class Script:
    """How one deployment goes: its readyState steps, build log lines, error, site status."""

    states: tuple[str, ...] = ("QUEUED", "BUILDING", "READY")
    log: tuple[str, ...] = ("Running build in Washington, D.C., USA (East) – iad1", "Build Completed in /vercel/output")
    error: str = ""
    site_status: int = 200


@dataclass
class Failure:
    method: str
    prefix: str
    status: int  # 0 = hang (never answer within the client's timeout)
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class VercelSim:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.token, self.team = TOKEN, TEAM
        self.projects: dict[str, dict[str, Any]] = {PROJECT: {"id": PROJECT, "name": "chat-web", "accountId": TEAM,
                                                              "autoAssignCustomDomains": True}}
        self.rolled_back: set[str] = set()  # projects whose production was instantly rolled back
        self.domains: dict[str, list[dict[str, Any]]] = {PROJECT: [
            {"name": "chat.example.com", "apexName": "example.com", "projectId": PROJECT, "redirect": None,
             "gitBranch": None, "customEnvironmentId": None, "verified": True},
            {"name": "develop.chat.example.com", "apexName": "example.com", "projectId": PROJECT, "redirect": None,
             "gitBranch": "develop", "customEnvironmentId": None, "verified": True}]}
        self.aliases: dict[str, dict[str, Any]] = {}  # alias (domain) → {uid, alias, deploymentId, projectId}
        self.pinned: set[str] = set()
        # False: the create's autoAssignCustomDomains is ignored (what deployctl must notice if
        # real Vercel ever did so; the REST reference does not list the field).
        self.honour_skip_domain = True
        self.files: dict[str, bytes] = {}
        self.deployments: dict[str, dict[str, Any]] = {}
        self.scripts: dict[str, Script] = {}
        self.steps: dict[str, int] = {}
        self.next_scripts: list[Script] = []
        self.failures: list[Failure] = []
        self.requests: list[Call] = []
        self.production: dict[str, str] = {}  # project id → deployment id serving production
        self.pending_production: dict[str, str] = {}
        self.was_production: set[str] = set()
        self._ids = itertools.count(1)
        self._clock = itertools.count(1)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="vercel-sim", daemon=True)

    # --- control ------------------------------------------------------------------------------

    def start(self) -> VercelSim:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script_next(self, script: Script) -> None:
        """The next created deployment goes this way."""
        self.next_scripts.append(script)

    def fail(self, method: str, prefix: str, status: int, *, times: int = 1, headers: dict[str, str] | None = None,
             body: dict[str, Any] | None = None) -> None:
        self.failures.append(Failure(method, prefix, status, times, dict(headers or {}), dict(body or {})))

    def calls(self, method: str, prefix: str) -> list[Call]:
        return [c for c in self.requests if c.method == method and c.path.startswith(prefix)]

    def env(self) -> dict[str, str]:
        """What deployctl needs in its environment to talk to this simulation."""
        return {"VERCEL_TOKEN": self.token, "DEPLOYCTL_VERCEL_API": self.url, "DEPLOYCTL_VERCEL_URL_SCHEME": "http"}

    def production_of(self, project: str = PROJECT) -> str | None:
        return self.production.get(project)

    def pin_alias(self, domain: str) -> None:
        self.pinned.add(domain)

    def alias_of(self, domain: str) -> str | None:
        found = self.aliases.get(domain)
        return found["deploymentId"] if found else None

    def _serve_production(self, project_id: str, dep_id: str) -> None:
        """Production moves: so do its domains (the aliases of the production domains)."""
        self.production[project_id] = dep_id
        for domain in self.domains.get(project_id, []):
            if domain["gitBranch"] or domain["customEnvironmentId"] or domain["redirect"]:
                continue
            if domain["name"] in self.pinned and domain["name"] in self.aliases:
                continue
            self.aliases[domain["name"]] = {"uid": f"als_{next(self._ids):04d}", "alias": domain["name"],
                                            "deploymentId": dep_id, "projectId": project_id,
                                            "createdAt": int(time.time() * 1000)}

    # --- the API ------------------------------------------------------------------------------

    def _project(self, key: str) -> dict[str, Any] | None:
        return next((p for p in self.projects.values() if key in (p["id"], p["name"])), None)

    def _public(self, d: dict[str, Any], listing: bool = False) -> dict[str, Any]:
        state = d["readyState"]
        out = {"id": d["id"], "uid": d["id"], "name": d["name"], "url": d["url"], "readyState": state,
               "state": state, "target": d["target"], "projectId": d["projectId"], "createdAt": d["createdAt"],
               "created": d["createdAt"], "meta": dict(d["meta"])}
        if d.get("customEnvironment"):
            out["customEnvironment"] = d["customEnvironment"]
        if not listing and state == "ERROR":
            out["errorMessage"] = d.get("errorMessage", "")
        return out

    def _advance(self, dep_id: str) -> None:
        script, step = self.scripts[dep_id], self.steps[dep_id]
        if step + 1 < len(script.states):
            self.steps[dep_id] = step + 1
            d = self.deployments[dep_id]
            d["readyState"] = script.states[step + 1]
            if d["readyState"] == "ERROR":
                d["errorMessage"] = script.error or "Command \"npm run build\" exited with 1"
            if d["readyState"] == "READY" and d["target"] == "production" and self._auto_assigns(d):
                self.was_production.add(dep_id)  # a production build serves production once READY
                self._serve_production(d["projectId"], dep_id)

    def _auto_assigns(self, d: dict[str, Any]) -> bool:
        project = self.projects[d["projectId"]]
        return bool((d.get("autoAssignCustomDomains", True) or not self.honour_skip_domain)
                    and project.get("autoAssignCustomDomains", True)
                    and d["projectId"] not in self.rolled_back)

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               raw: bytes) -> tuple[int, dict[str, str], Any]:
        body: Any = raw
        if headers.get("content-type", "").startswith("application/json") and raw:
            body = json.loads(raw)
        with self.lock:
            self.requests.append(Call(method, path, query, headers, body if not isinstance(body, bytes) else None))
            if path.startswith("/_site/"):
                return self._site(path)
            for f in self.failures:
                if f.method == method and path.startswith(f.prefix) and f.times > 0:
                    f.times -= 1
                    if f.status == 0:
                        return 0, {}, None
                    return f.status, f.headers, f.body or {"error": {"code": "sim_failure",
                                                                      "message": f"simulated {f.status}"}}
            if headers.get("authorization") != f"Bearer {self.token}":
                return 401, {}, {"error": {"code": "forbidden", "message": "Not authorized", "invalidToken": True}}
            if query.get("teamId") != self.team:
                return 403, {}, {"error": {"code": "forbidden",
                                           "message": "You don't have permission to access this resource"}}
            return self._route(method, path, query, headers, body)

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: Any) -> tuple[int, dict[str, str], Any]:
        parts = [p for p in path.split("/") if p]
        not_found = (404, {}, {"error": {"code": "not_found", "message": "Not found"}})
        if method == "POST" and path == "/v2/files":
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            sha = headers.get("x-vercel-digest", "")
            if hashlib.sha1(data).hexdigest() != sha:
                return 400, {}, {"error": {"code": "invalid_digest", "message": "The SHA1 does not match the body"}}
            self.files[sha] = data
            return 200, {}, {}
        if method == "POST" and path == "/v13/deployments":
            return self._create(body)
        if parts[:2] == ["v13", "deployments"] and len(parts) == 3:
            d = self.deployments.get(parts[2])
            if d is None:
                return not_found
            if method == "DELETE":
                del self.deployments[parts[2]]
                return 200, {}, {"uid": parts[2], "state": "DELETED"}
            self._advance(parts[2])
            return 200, {}, self._public(d)
        if method == "PATCH" and parts[:2] == ["v12", "deployments"] and parts[3:] == ["cancel"]:
            d = self.deployments.get(parts[2])
            if d is None:
                return not_found
            if d["readyState"] not in ("QUEUED", "INITIALIZING", "BUILDING"):
                return 400, {}, {"error": {"code": "bad_request", "message": "The deployment can not be canceled"}}
            d["readyState"] = "CANCELED"
            self.scripts[d["id"]] = Script(states=("CANCELED",))
            self.steps[d["id"]] = 0
            return 200, {}, self._public(d)
        if method == "GET" and path == "/v6/deployments":
            found = [d for d in self.deployments.values() if d["projectId"] == query.get("projectId")]
            if query.get("target"):
                found = [d for d in found if d["target"] == query["target"] or
                         (query["target"] == "production" and d["id"] in self.was_production)]
            found.sort(key=lambda d: d["createdAt"], reverse=True)
            if query.get("until"):
                found = [d for d in found if d["createdAt"] < int(query["until"])]
            page = found[: min(int(query.get("limit", "20")), 100)]
            more = len(found) > len(page)
            return 200, {}, {"deployments": [self._public(d, listing=True) for d in page],
                             "pagination": {"count": len(page), "next": page[-1]["createdAt"] if more else None,
                                            "prev": page[0]["createdAt"] if page else None}}
        if method == "GET" and parts[:2] == ["v2", "deployments"] and parts[3:] == ["aliases"]:
            if parts[2] not in self.deployments:
                return not_found
            return 200, {}, {"aliases": [{"uid": a["uid"], "alias": a["alias"], "created": a["createdAt"],
                                          "redirect": None}
                                         for a in self.aliases.values() if a["deploymentId"] == parts[2]]}
        if method == "GET" and path == "/v4/aliases":
            found = [a for a in self.aliases.values()
                     if not query.get("projectId") or a["projectId"] == query["projectId"]]
            return 200, {}, {"aliases": found, "pagination": {"count": len(found), "next": None, "prev": None}}
        if method == "GET" and parts[:2] == ["v9", "projects"] and parts[3:] == ["domains"]:
            project = self._project(urllib.parse.unquote(parts[2]))
            if project is None:
                return 404, {}, {"error": {"code": "not_found", "message": "Project not found"}}
            found = self.domains.get(project["id"], [])
            return 200, {}, {"domains": found, "pagination": {"count": len(found), "next": None, "prev": None}}
        if method == "GET" and parts[:2] == ["v3", "deployments"] and parts[3:] == ["events"]:
            d = self.deployments.get(parts[2])
            if d is None:
                return not_found
            script = self.scripts[d["id"]]
            if query.get("follow") != "0":
                return 400, {}, {"error": {"code": "sim_stream", "message": "the simulation serves follow=0 only"}}
            events = [{"type": "stdout", "created": d["createdAt"] + i, "payload": {"text": line}}
                      for i, line in enumerate(script.log)]
            if query.get("direction") == "backward":
                events.reverse()
            return 200, {}, events[: int(query.get("limit", "100"))] if query.get("limit") != "-1" else events
        if method == "GET" and parts[:2] == ["v9", "projects"] and len(parts) == 3:
            project = self._project(urllib.parse.unquote(parts[2]))
            if project is None:
                return 404, {}, {"error": {"code": "not_found", "message": "Project not found"}}
            pid = project["id"]
            if pid in self.pending_production:  # the asynchronous promote/rollback lands
                self._serve_production(pid, self.pending_production.pop(pid))
            out = dict(project)
            serving = self.production.get(pid)
            if serving and serving in self.deployments:
                d = self.deployments[serving]
                out["targets"] = {"production": {"id": d["id"], "url": d["url"], "readyState": d["readyState"],
                                                 "createdAt": d["createdAt"], "meta": dict(d["meta"])}}
            return 200, {}, out
        if method == "POST" and len(parts) == 5 and parts[0] in ("v10", "v1") and parts[1] == "projects" \
                and parts[3] in ("promote", "rollback"):
            return self._repoint(parts[3], urllib.parse.unquote(parts[2]), parts[4], parts[0])
        return not_found

    def _create(self, body: Any) -> tuple[int, dict[str, str], Any]:
        if not isinstance(body, dict) or not body.get("name"):
            return 400, {}, {"error": {"code": "bad_request", "message": "`name` is required"}}
        project = self._project(str(body.get("project") or body["name"]))
        if project is None:
            return 404, {}, {"error": {"code": "not_found", "message": "Project not found"}}
        files = body.get("files") or []
        bad = [f for f in files if not {"file", "sha"} <= set(f)]
        if bad or not files:
            return 400, {}, {"error": {"code": "bad_request", "message": "files must be [{file, sha, size}]"}}
        missing = sorted({f["sha"] for f in files if f["sha"] not in self.files})
        if missing:
            return 400, {}, {"error": {"code": "missing_files", "message": "Missing files", "missing": missing}}
        dep_id = f"dpl_sim{next(self._ids):04d}"
        custom = body.get("customEnvironmentSlugOrId")
        target = body.get("target") if body.get("target") in ("production", "staging") else None
        d = {"id": dep_id, "name": body["name"], "projectId": project["id"], "url": f"{self.host}/_site/{dep_id}",
             "readyState": "QUEUED", "target": target, "createdAt": int(time.time() * 1000) + next(self._clock),
             "meta": {str(k): str(v) for k, v in (body.get("meta") or {}).items()},
             "env": dict(body.get("env") or {}), "buildEnv": dict((body.get("build") or {}).get("env") or {}),
             "files": {f["file"]: f["sha"] for f in files},
             "autoAssignCustomDomains": body.get("autoAssignCustomDomains") is not False}
        if custom:
            d["customEnvironment"] = {"slug": custom}
        self.deployments[dep_id] = d
        self.scripts[dep_id] = self.next_scripts.pop(0) if self.next_scripts else Script()
        self.steps[dep_id] = 0
        d["readyState"] = self.scripts[dep_id].states[0]
        return 200, {}, self._public(d)

    def _repoint(self, action: str, project_key: str, dep_id: str, version: str) -> tuple[int, dict[str, str], Any]:
        project = self._project(project_key)
        d = self.deployments.get(dep_id)
        if project is None or d is None:
            return 404, {}, {"error": {"code": "not_found", "message": "Not found"}}
        expected = "v10" if action == "promote" else "v1"
        if version != expected:
            return 404, {}, {"error": {"code": "not_found", "message": f"no {version} {action} endpoint"}}
        if d["readyState"] != "READY":
            return 400, {}, {"error": {"code": "deployment_not_ready", "message": "The deployment is not READY"}}
        if action == "promote" and d["target"] != "production":
            return 400, {}, {"error": {"code": "not_production_deployment",
                                       "message": "This deployment is not a production deployment and cannot be "
                                                  "directly promoted"}}
        if action == "rollback" and dep_id not in self.was_production:
            return 400, {}, {"error": {"code": "invalid_rollback_target",
                                       "message": "Only a previous production deployment can be rolled back to"}}
        if action == "rollback":
            self.rolled_back.add(project["id"])
        else:
            self.rolled_back.discard(project["id"])  # a promote undoes the rollback
        self.was_production.add(dep_id)
        self.pending_production[project["id"]] = dep_id
        return 201, {}, {}

    def _site(self, path: str) -> tuple[int, dict[str, str], Any]:
        parts = path.split("/", 3)
        d = self.deployments.get(parts[2]) if len(parts) > 2 else None
        if d is None:
            return 404, {"content-type": "text/plain"}, b"DEPLOYMENT_NOT_FOUND"
        if d["readyState"] != "READY":
            return 404, {"content-type": "text/plain"}, b"DEPLOYMENT_NOT_READY"
        status = self.scripts[d["id"]].site_status
        return status, {"content-type": "text/html"}, f"<html>{d['id']}</html>".encode()

    # --- HTTP ---------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parsed.query))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, payload = sim.handle(self.command, parsed.path, query, headers, raw)
                if status == 0:
                    time.sleep(5)  # a hang: longer than the client timeouts the tests use
                    return
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                if not isinstance(payload, bytes):
                    self.send_header("Content-Type", "application/json")
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

        return Handler


def rate_limited(retry_after: int = 1) -> dict[str, str]:
    """The headers of a 429 answer, as Vercel documents them."""
    return {"Retry-After": str(retry_after), "X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(time.time()) + retry_after)}


def running() -> Iterator[VercelSim]:
    sim = VercelSim().start()
    try:
        yield sim
    finally:
        sim.stop()

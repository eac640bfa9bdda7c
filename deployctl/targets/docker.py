"""The local target (`target: docker`): deploy an app's services to the Docker engine on this machine.

A deploy of one environment is one release, numbered r1, r2, … per app and environment. For each
service, in `after` order:
  1. start `count` new containers of the release's image, ports published on 127.0.0.1 at a
     free host port, with a Docker HEALTHCHECK (the probe deployctl.render.probe builds from the
     service's health config, or else the image's own HEALTHCHECK, kept) and the restart policy
     `unless-stopped` (RESTART_POLICY says why);
  2. wait until Docker calls every new container healthy (honouring start_period). A container
     that exits, is restarted, turns unhealthy, fails decisively (_decisive) or is still not
     healthy in time fails the release: its last log lines and health-check output are shown,
     it is removed, and every service already switched in this release is switched back. The
     old containers were never touched, so the old release keeps serving throughout;
  3. switch the service's stable port (a small proxy, see deployctl/localproxy.py) to the new
     containers: new connections go to them, open ones finish on the old containers, and the old
     ones stay the proxy's standby.
Once every service is switched, the release must stay up and healthy for the settle window
(deploy.settle, default SETTLE_INTERVALS health intervals). One that exits, is restarted or fails
its health check in that window is rolled back at once: every stable port goes back to the old
containers (still running), the new ones are removed, the release is recorded rolled-back and
the deploy fails (exit 1) naming the container, its exit code and its last log lines.
After the window, the old containers are drained (until the proxy reports no open
connection to them, at most the drain period: deploy.drain, 10 s by default, or $DEPLOYCTL_DRAIN seconds) and stopped.
All-or-nothing per release: a failure in the third service leaves the first two on the old
release as well.

Where the history lives (no state file): in Docker itself.
- Every container carries labels: deployctl.app/env/service/release, git sha, image digest, time.
- Container labels are fixed at creation, and a release's outcome is known only later, so the
  outcome is recorded on a *release record*: a container created (never started, no network)
  from the release's image, labelled with the outcome, duration, who and why. The deploy creates
  one labelled `in progress` (with its pid) as soon as the release has a number, and replaces it
  at the verdict: the final record is created first, then the first one removed, so a deploy
  killed at any point (SIGKILL included) leaves a record; `history` shows it `in progress` while
  its process still holds the deploy lock, and `interrupted` once that process is gone or a newer
  release exists. A record costs no process and no memory; it shows up in `docker ps -a`; it outlives
  the containers that ran the release (those are removed), including a failed release whose only
  container was removed at once; and it pins the release's image, so `docker image prune` cannot
  take away what rollback needs.
- Each release's image is also tagged `deployctl-releases/<app>:<env>-r<N>`, so a rebuild that
  moves the build tag does not change what "r4" means. The newest `image.keep` releases keep
  their record and tag; older ones lose both (the image itself goes when nothing else holds it).
What is kept outside Docker is runtime plumbing only: the proxy's pid/backends/socket, and a
lock file so two deploys of one environment never interleave (flock: released by the kernel when
the holder dies, so it cannot go stale).

Health checks locally run every LOCAL_INTERVAL seconds rather than the configured interval (5 s
minimum, for ECS). Docker runs the first check one interval after start and has no faster
start-up probing on this engine, so a 10 s interval would make every local deploy wait ≥10 s
for an app that is ready in 3. Retries are scaled up to keep the same failure window
(retries × interval), so a slow release is not failed any sooner than on ECS.

Secrets: the local target never reads a cloud secret store. Each secret's value comes from the
deployer's environment variable of the same name; missing ones are named, values never logged.

Why one long module: the switch, its undo, the settle window and the release records share
the container labels and the lock; split, each part would import the others' privates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployctl import localproxy
from deployctl.adapters.engine_view import ContainerView, ImageHealthcheck, ImageView, container_view
from deployctl.config import dotenv
from deployctl.errors import DeployFailed, ExternalError, LockHeld, PreflightFailed, UsageError
from deployctl.pipeline import Cancelled
from deployctl.plan import waves
from deployctl.redact import Redactor
from deployctl.releases import LiveState, Release, choose
from deployctl.releases_tags import actor
from deployctl.render.probe import NO_TOOL, command_probe, http_probe
from deployctl.targets.base import DeployOptions

if TYPE_CHECKING:
    from deployctl.adapters.engine import Client, Container
    from deployctl.config.model import ResolvedConfig, Service
    from deployctl.plan import Plan


LABEL = "deployctl"
L_APP, L_ENV, L_SERVICE = f"{LABEL}.app", f"{LABEL}.env", f"{LABEL}.service"
L_ROLE, L_RELEASE, L_NUMBER = f"{LABEL}.role", f"{LABEL}.release", f"{LABEL}.release-number"
L_SHA, L_IMAGE, L_DIGEST = f"{LABEL}.git-sha", f"{LABEL}.image", f"{LABEL}.image-digest"
L_CREATED, L_KIND, L_WHO = f"{LABEL}.created", f"{LABEL}.kind", f"{LABEL}.who"
L_OUTCOME, L_ENDED, L_DURATION = f"{LABEL}.outcome", f"{LABEL}.ended", f"{LABEL}.duration"
L_MESSAGE, L_SERVICES, L_ROLLBACK_OF = f"{LABEL}.message", f"{LABEL}.services", f"{LABEL}.rollback-of"
L_PID = f"{LABEL}.pid"  # on an in-progress record: the deploying process (alive ⇔ it holds the lock)
L_CONFIG = f"{LABEL}.config"  # hash of the services' settings a release ran with (see config_hash)

ROLE_SERVICE, ROLE_RECORD = "service", "release-record"
RELEASE_REPO = "deployctl-releases"

LOCAL_INTERVAL = 1.0
HEALTH_MARGIN = 10.0  # on top of start_period + retries × interval: the last check's own timeout
NO_HEALTHCHECK_SETTLE = 2.0  # no health check at all: "healthy" = still running after this long
DEFAULT_DRAIN = 10.0  # upper bound only: draining ends as soon as the old connections are done
STOP_GRACE = 10  # seconds `docker stop` waits after SIGTERM before SIGKILL
LOG_TAIL = 20
SETTLE_INTERVALS = 3  # default settle window: this many configured health intervals
NO_HEALTH_INTERVAL = 5.0  # the interval counted for a service without a health check (ECS minimum)
# Containers come back after a crash (any exit code) and after a Docker restart, like an ECS
# service replaces a stopped task; `docker stop` (deployctl's own drain included) is respected.
# A restart never hides a crash: the settle check fails a release on any restart (RestartCount),
# and `status` shows each container's restarts.
RESTART_POLICY = {"Name": "unless-stopped"}
PORT_ATTEMPTS = 5  # a host port picked as free may be taken before Docker binds it: pick again

Log = Callable[[str], None]


# --- plain data returned to commands --------------------------------------------------------------


@dataclass(frozen=True)
class ContainerState:
    name: str
    id: str
    release: str
    state: str  # docker's: running, exited, created…
    health: str  # healthy, unhealthy, starting, or "none" without a health check
    backend: str  # 127.0.0.1:PORT the proxy forwards to, "" without a port
    restarts: int = 0  # times Docker restarted it (restart policy) since it was created
    exit_code: int | None = None  # of its last exit, when it is not running


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    release: str  # the release the stable port (or the running containers) serve, "" if none
    desired: int
    running: int
    healthy: int
    containers: tuple[ContainerState, ...]
    url: str  # http://127.0.0.1:LOCAL_PORT, "" for a service without a port
    proxy_pid: int | None
    proxy_backends: tuple[str, ...]
    git_sha: str = ""
    image: str = ""
    digest: str = ""


@dataclass(frozen=True)
class LocalStatus:
    app: str
    env: str
    current: Release | None
    services: tuple[ServiceStatus, ...]
    latest: Release | None = None  # the newest release, whatever its outcome
    deploying: str = ""  # who holds the deploy lock right now ("pid N (who, since …)"), "" if no one


@dataclass(frozen=True)
class RollbackChoice:
    """What `rollback` would do: shown to the user before they confirm."""

    current: Release | None
    target: Release
    # The newest release that went live and still has containers: what serves, or what is
    # failing now (crashed, restarting). Never a rollback target, nor anything newer.
    deployed: Release | None = None


# --- entry points ---------------------------------------------------------------------------------


def deploy(plan: Plan, image_ref: str, ctx: Any, options: DeployOptions | None = None) -> None:
    """Deploy `image_ref` (as pushed) to every service of plan's environment on the local engine.

    Raises DeployFailed when the new release does not become healthy (the old one keeps
    serving), PreflightFailed for missing secrets, ExternalError when Docker fails.
    Puts `url` (the first service's stable address) and `release` into ctx.outputs.
    """
    from deployctl.adapters import engine  # lazy: the docker SDK stays off validate, plan and the skip path

    cfg = plan.config
    options = options or DeployOptions()  # all as deploy.yaml says
    secrets = local_secrets(cfg)
    for values in secrets.values():
        for value in values.values():
            ctx.add_secret(value)
    client = engine.connect()
    image = _local_image(client, image_ref, ctx.log)
    meta = _Meta(kind="deploy", git_sha=plan.git.sha, image_ref=image_ref,
                 digest=_digest_of(image_ref, image), image_id=image.id)
    unchanged = None if options.force else unchanged_release(client, cfg, image.id)
    if unchanged is not None:
        ctx.outputs["release"] = unchanged.id
        ctx.skip(f"{unchanged.id} already runs this image with these settings, healthy "
                 "(nothing changed; --force deploys anyway)")
        urls = service_urls(cfg)
        if urls:
            ctx.outputs["url"] = next(iter(urls.values()))
        return
    release = _apply(client, cfg, meta, secrets, log=ctx.log, note=ctx.note,
                     cancelled=getattr(ctx, "cancelled", None), timeout=options.effective_timeout(cfg),
                     drain=options.drain, lock_wait=options.lock_wait)
    ctx.outputs["release"] = release.id
    urls = service_urls(cfg)
    if urls:
        ctx.outputs["url"] = next(iter(urls.values()))
        for name, url in urls.items():
            ctx.log(f"{name}: {url}")


def config_hash(cfg: ResolvedConfig) -> str:
    """What a release's containers were made from besides the image: every service's settings
    (env, command, ports, health, count…) as resolved for this environment. Secret values are not
    hashed (a label is readable by anyone with Docker access): a changed secret needs --force."""
    doc = {name: svc.model_dump(mode="json") for name, svc in sorted(cfg.services.items())}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def unchanged_release(client: Client, cfg: ResolvedConfig, image_id: str) -> Release | None:
    """The release that already runs `image_id` with today's settings on every service, all up,
    healthy and never restarted; None when a deploy would change anything (or mend anything)."""
    st = status(cfg, client=client)
    cur = st.current
    if cur is None or cur.image_id != image_id or st.deploying:
        return None
    want = config_hash(cfg)
    for svc in st.services:
        mine = [c for c in svc.containers if c.release == cur.id]
        if svc.release != cur.id or len(mine) != svc.desired or svc.healthy < svc.desired \
                or any(c.state != "running" or c.restarts for c in mine):
            return None
    labels = [c.labels for c in _service_containers(client, cfg, None) if c.labels.get(L_RELEASE) == cur.id]
    if not labels or any(lab.get(L_CONFIG) != want for lab in labels):
        return None
    return cur


def plan_rollback(cfg: ResolvedConfig, to: str | None = None, steps: int = 1,
                  client: Client | None = None) -> RollbackChoice:
    """Pick the release `rollback` would deploy (deployctl.releases.choose, the chooser of every
    target); raises UsageError when there is none.

    What the local engine adds, as data: a release is its image (`image_id`: two releases of one
    image are one rollback target), and counting back starts below the release deployed last
    (`deployed`): when that one is failing now (its containers exited or keep restarting) it is
    not "current", but it is what rollback has to get away from."""
    found = history(cfg, limit=None, client=client)
    current = next((r for r in found if r.current), None)
    deployed = _deployed(found)
    anchor = deployed or current
    live = LiveState(where=f"{cfg.app}/{cfg.env_name}", env=cfg.env_name, current=current, anchor=anchor,
                     images={r.id: {"image": r.image_id} for r in found},
                     running={"image": anchor.image_id} if anchor else {}, nothing="nothing is deployed",
                     hint=f"the last {cfg.image.keep} releases are kept (image.keep)")
    target = choose(found, live, to=f"r{_release_number(to)}" if to is not None else None, steps=steps)
    return RollbackChoice(current=current, target=target, deployed=deployed)


def _deployed(releases: list[Release]) -> Release | None:
    """The newest release that went live and still has containers, serving or failing."""
    return next((r for r in releases if r.present and r.outcome == "succeeded"), None)


def rollback(cfg: ResolvedConfig, to: str | None = None, steps: int = 1, *,
             log: Log | None = None, timeout: float | None = None, drain: float | None = None,
             cancelled: threading.Event | None = None, choice: RollbackChoice | None = None,
             lock_wait: float = 0.0) -> Release:
    """Redeploy an earlier release's image with the same health-gated switch; returns the new release.

    By default the previous successful release (`steps` back); `to` names one ("r3" or "3").
    Pass the `choice` from plan_rollback to deploy exactly what the user confirmed; if what runs
    changed while waiting for the lock (`lock_wait`), DeployFailed and nothing changes. The rollback
    is itself a release (kind "rollback"). Config (env, health, ports) is today's deploy.yaml;
    the image, and so the code and the baked files, are the old release's.
    """
    from deployctl.adapters import engine  # lazy: the docker SDK stays off validate, plan and the skip path

    client = engine.connect()
    choice = choice or plan_rollback(cfg, to, steps, client=client)
    secrets = local_secrets(cfg)
    redactor = Redactor([v for values in secrets.values() for v in values.values()])
    out = log or print

    def say(line: str) -> None:
        out(redactor.redact(line))

    target = choice.target
    say(f"rolling {cfg.app}/{cfg.env_name} back to {target.id} (git {target.git_sha[:12]}, {target.image})")
    meta = _Meta(kind="rollback", git_sha=target.git_sha, image_ref=target.image, digest=target.image_digest,
                 image_id=target.image_id, rollback_of=target.id)

    def still_as_chosen(client: Client) -> None:
        # Chosen before the lock was ours: another deploy may have changed what runs meanwhile,
        # and a rollback from a state nobody looked at could undo the wrong release.
        now = _releases(client, cfg)
        was, is_ = (choice.deployed or choice.current), (_deployed(now) or next((r for r in now if r.current), None))
        if (was.id if was else "") != (is_.id if is_ else ""):
            raise DeployFailed(f"{cfg.app}/{cfg.env_name} changed while this rollback waited for the lock: it now "
                               f"runs {is_.id if is_ else 'nothing'} (was {was.id if was else 'nothing'}); "
                               "nothing was changed",
                               hint=f"run `deployctl rollback --env {cfg.env_name}` again to choose from what "
                                    "runs now")

    return _apply(client, cfg, meta, secrets, log=say, note=lambda text: None, cancelled=cancelled,
                  timeout=timeout, drain=drain, lock_wait=lock_wait, check=still_as_chosen)


def history(cfg: ResolvedConfig, limit: int | None = 20, client: Client | None = None) -> list[Release]:
    """Releases of cfg's app/env, newest first, from release records and running containers."""
    if client is None:
        from deployctl.adapters import engine  # lazy: the docker SDK stays off validate, plan and the skip path

        client = engine.connect()
    return _releases(client, cfg)[:limit] if limit else _releases(client, cfg)


def status(cfg: ResolvedConfig, client: Client | None = None) -> LocalStatus:
    """What runs now, per service: release, containers and their health, the stable port."""
    if client is None:
        from deployctl.adapters import engine  # lazy: the docker SDK stays off validate, plan and the skip path

        client = engine.connect()
    holder = _lock_holder(cfg)  # one read for the records and `deploying`: they must agree
    releases = _releases(client, cfg, holder)
    by_id = {r.id: r for r in releases}
    out = []
    for name, svc in cfg.services.items():
        containers = _service_containers(client, cfg, name)
        states = tuple(_container_state(c, svc) for c in containers)
        proxy = localproxy.status(local_port(svc)) if svc.port else None
        backends = tuple(proxy.get("backends", [])) if proxy else ()
        serving = [s for s in states if s.state == "running" and (not svc.port or s.backend in backends)]
        rel = serving[0].release if serving else ""
        info = by_id.get(rel)
        out.append(ServiceStatus(
            service=name, release=rel, desired=svc.count,
            running=sum(s.state == "running" for s in states),
            healthy=sum(s.health in ("healthy", "none") and s.state == "running" for s in states),
            containers=states,
            url=f"http://127.0.0.1:{local_port(svc)}" if svc.port else "",
            proxy_pid=int(proxy["pid"]) if proxy else None, proxy_backends=backends,
            git_sha=info.git_sha if info else "", image=info.image if info else "",
            digest=info.image_digest if info else "",
        ))
    return LocalStatus(app=cfg.app, env=cfg.env_name, current=next((r for r in releases if r.current), None),
                       services=tuple(out), latest=releases[0] if releases else None,
                       deploying=holder)


def remove(cfg: ResolvedConfig, client: Client | None = None) -> int:
    """Take cfg's app/env off this machine: containers, records, release tags, proxies. Returns
    the number of containers removed. For tests and for cleaning up a dev environment."""
    if client is None:
        from deployctl.adapters import engine  # lazy: the docker SDK stays off validate, plan and the skip path

        client = engine.connect()
    containers = client.containers.list(all=True, filters={"label": [f"{L_APP}={cfg.app}",
                                                                      f"{L_ENV}={cfg.env_name}"]})
    for c in containers:
        with contextlib.suppress(Exception):
            c.remove(force=True)
    for svc in cfg.services.values():
        if svc.port:
            proxy = localproxy.status(local_port(svc))
            if proxy and proxy.get("owner", "").startswith(f"{cfg.app}/{cfg.env_name}/"):
                localproxy.stop(local_port(svc))
    for ref in _release_tags(client, cfg):
        with contextlib.suppress(Exception):
            client.images.remove(ref, noprune=True)
    return len(containers)


@dataclass(frozen=True)
class DownPlan:
    """What `deployctl down` removes for one local environment (names, for the user to read)."""

    app: str
    env: str
    containers: tuple[str, ...]  # services' containers and release records
    proxies: tuple[int, ...]  # stable local ports whose proxy this environment owns
    networks: tuple[str, ...]  # networks labelled with this app and environment
    images: tuple[str, ...] = ()  # with --images: tags to remove (release tags, the app's build tags)

    @property
    def empty(self) -> bool:
        return not (self.containers or self.proxies or self.networks or self.images)


@dataclass(frozen=True)
class DownReport:
    plan: DownPlan
    removed_images: tuple[str, ...] = ()  # images gone from the engine (ids), not only untagged
    kept: tuple[str, ...] = ()  # what could not go, and why


def plan_down(cfg: ResolvedConfig, *, images: bool = False, client: Client | None = None) -> DownPlan:
    """Everything of cfg's app/env on this engine; its images only with `images`."""
    if client is None:
        from deployctl.adapters import engine  # lazy: the docker SDK stays off validate, plan and the skip path

        client = engine.connect()
    where = [f"{L_APP}={cfg.app}", f"{L_ENV}={cfg.env_name}"]
    containers = client.containers.list(all=True, ignore_removed=True, filters={"label": where})
    proxies = tuple(sorted({local_port(svc) for svc in cfg.services.values() if svc.port
                            and _owned_proxy(cfg, local_port(svc))}))
    networks = tuple(sorted(n.name for n in client.networks.list(filters={"label": where})))
    tags: list[str] = []
    if images:
        ids = {container_view(c).image for c in containers}
        release_tags = _release_tags(client, cfg)
        tags.extend(release_tags)
        for ref in release_tags:
            with contextlib.suppress(Exception):
                ids.add(client.images.get(ref).id)
        for image_id in sorted(i for i in ids if i):
            try:
                found = client.images.get(image_id)
            except Exception:  # noqa: BLE001 - already gone: nothing to remove
                continue
            # The app's own build tags (…/<repository>:<tag>) of images this environment ran;
            # another repository's tag on the same image is not ours to take.
            tags.extend(t for t in found.tags if t not in tags and _app_repo(cfg, t))
        # The images `in: image` stages built for their Dockerfile target (<repo>:<tag>-<target>).
        targets = {f"-{st.target}" for st in (cfg.stages.lint, cfg.stages.test) if st is not None and st.target}
        if targets:
            for tag in engine.image_tags(client, filters={"label": f"{L_APP}={cfg.app}"}):
                if tag not in tags and _app_repo(cfg, tag) and any(tag.endswith(s) for s in targets):
                    tags.append(tag)
    return DownPlan(app=cfg.app, env=cfg.env_name, containers=tuple(sorted(c.name for c in containers)),
                    proxies=proxies, networks=networks, images=tuple(tags))


def _app_repo(cfg: ResolvedConfig, ref: str) -> bool:
    """`ref` is a tag of the app's image repository (any registry host)."""
    return ref.rsplit(":", 1)[0].rsplit("/", 1)[-1] == cfg.image.repository.rsplit("/", 1)[-1]


def _owned_proxy(cfg: ResolvedConfig, port: int) -> bool:
    proxy = localproxy.status(port)
    return proxy is not None and str(proxy.get("owner", "")).startswith(f"{cfg.app}/{cfg.env_name}/")


def down(cfg: ResolvedConfig, plan: DownPlan, *, client: Client | None = None, log: Log | None = None) -> DownReport:
    """Remove what `plan` names, under the environment's deploy lock (a deploy running now is
    LockHeld, exit 1: nothing is removed under it). Containers go first, so that nothing holds
    the images; an image another environment or container still uses stays, and is reported."""
    if client is None:
        from deployctl.adapters import engine  # lazy: the docker SDK stays off validate, plan and the skip path

        client = engine.connect()
    out = log or (lambda line: None)
    kept: list[str] = []
    removed_images: list[str] = []
    with _env_lock(cfg):
        for name in plan.containers:
            try:
                client.containers.get(name).remove(force=True)
                out(f"removed container {name}")
            except Exception as exc:  # noqa: BLE001 - removed meanwhile is fine; anything else is reported
                if "No such container" not in str(exc) and "404" not in str(exc):
                    kept.append(f"container {name}: {exc}")
        for port in plan.proxies:
            if _owned_proxy(cfg, port):
                localproxy.stop(port)
                out(f"stopped the proxy on 127.0.0.1:{port}")
        for name in plan.networks:
            try:
                client.networks.get(name).remove()
                out(f"removed network {name}")
            except Exception as exc:  # noqa: BLE001 - reported, the rest still goes
                kept.append(f"network {name}: {exc}")
        for ref in plan.images:
            try:
                image_id = client.images.get(ref).id
                client.images.remove(ref, noprune=True)
            except Exception as exc:  # noqa: BLE001 - in use elsewhere: say so, remove the rest
                kept.append(f"image {ref}: {getattr(exc, 'explanation', None) or exc}")
                continue
            out(f"removed image tag {ref}")
            try:
                client.images.get(image_id)
            except Exception:  # noqa: BLE001 - gone: its last tag was ours
                removed_images.append(image_id)
    return DownReport(plan=plan, removed_images=tuple(removed_images), kept=tuple(kept))


# --- helpers commands may use ---------------------------------------------------------------------


def local_port(svc: Service) -> int:
    return int(svc.local_port or svc.port or 0)


def service_urls(cfg: ResolvedConfig) -> dict[str, str]:
    return {name: f"http://127.0.0.1:{local_port(svc)}" for name, svc in cfg.services.items() if svc.port}


def local_secrets(cfg: ResolvedConfig, environ: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """service → {ENV_NAME: value} from the deployer's environment, then the project's .env;
    PreflightFailed names all missing."""
    environ = dotenv.overlay(os.environ if environ is None else environ)
    out: dict[str, dict[str, str]] = {}
    missing: list[str] = []
    for name, svc in cfg.services.items():
        out[name] = {}
        for var in svc.secrets:
            if environ.get(var):
                out[name][var] = environ[var]
            else:
                missing.append(f"{var} (services.{name}.secrets)")
    if missing:
        raise PreflightFailed(
            "the local target reads secrets from your environment, and these are not set: "
            + ", ".join(missing),
            hint="export them before deploying, or put NAME=value lines in the project's .env (git-ignored; "
                 "values are passed to the containers and never printed)",
        )
    return out


def local_secret_values(cfg: ResolvedConfig, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every service secret's value that the deployer's environment holds, missing ones ignored.

    For the run's redactor, registered before any stage starts: lint and test run in the same
    environment, so a command that prints $MODEL_API_KEY must already see it masked. Missing
    secrets are the deploy's preflight to report (local_secrets), not this function's.
    """
    environ = dotenv.overlay(os.environ if environ is None else environ)
    return [environ[var] for svc in cfg.services.values() for var in svc.secrets if environ.get(var)]


@dataclass(frozen=True)
class Probe:
    """The health check a service's containers run: deploy.yaml's, or else the image's own
    HEALTHCHECK (its command kept; timings as environments.<env>.health says, if it does)."""

    test: tuple[str, ...]
    interval: float
    timeout: float
    start_period: float
    retries: int
    origin: str  # "deploy.yaml" or "the image's HEALTHCHECK"


def probe_for(cfg: ResolvedConfig, svc: Service, image_check: ImageHealthcheck | None = None) -> Probe | None:
    """The probe for `svc`: deploy.yaml's health check, else the image's own HEALTHCHECK (with
    the environment's health timings over the image's), else None."""
    health = svc.health
    if health is not None:
        test = http_probe(int(svc.port or 0), health.path, health.timeout) if health.path else \
            command_probe(health.command or [])
        return Probe(tuple(test), health.interval, health.timeout, health.start_period, health.retries,
                     "deploy.yaml")
    if image_check is None:
        return None
    timings: dict[str, float] = {"interval": image_check.interval, "timeout": image_check.timeout,
                                 "start_period": image_check.start_period, "retries": image_check.retries}
    override = cfg.environment.health
    if override is not None:
        timings.update(override.given())
    return Probe(image_check.test, float(timings["interval"]), float(timings["timeout"]),
                 float(timings["start_period"]), int(timings["retries"]), "the image's HEALTHCHECK")


def healthcheck(probe: Probe | None) -> dict[str, Any] | None:
    """The Docker HEALTHCHECK for a probe (the SDK's `healthcheck` parameter), None without one."""
    if probe is None:
        return None
    interval = min(probe.interval, LOCAL_INTERVAL)
    ns = 1_000_000_000
    return {
        "test": list(probe.test),
        "interval": int(interval * ns),
        "timeout": int(probe.timeout * ns),
        "retries": max(probe.retries, math.ceil(probe.retries * probe.interval / interval)),
        "start_period": int(probe.start_period * ns),
    }


def health_budget(probe: Probe | None) -> float:
    """Seconds after which a container that is not healthy never will be (by its probe)."""
    if probe is None:
        return NO_HEALTHCHECK_SETTLE + HEALTH_MARGIN
    return probe.start_period + probe.retries * probe.interval + probe.timeout + HEALTH_MARGIN


# --- the apply step ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Meta:
    kind: str
    git_sha: str
    image_ref: str
    digest: str
    image_id: str
    rollback_of: str = ""


@dataclass
class _Roll:
    """One service's switch in progress: what to undo on failure, what to drain on success."""

    service: str
    new: list[Container]
    old: list[Container]
    port: int = 0  # stable local port, 0 without one
    old_backends: list[str] = field(default_factory=list)
    new_backends: list[str] = field(default_factory=list)
    switched: bool = False


# Failures that mean "this release is bad" (recorded as failed) rather than "we were stopped".
_FAILURES = (DeployFailed, ExternalError, PreflightFailed, UsageError, LockHeld)


class _Died(Exception):
    """A new container died, was restarted or turned unhealthy inside the settle window."""

    def __init__(self, service: str, container: Container, reason: str, elapsed: float) -> None:
        super().__init__(reason)
        self.service, self.container, self.reason, self.elapsed = service, container, reason, elapsed


class _NotHealthy(Exception):
    def __init__(self, container: Container, reason: str, cause: str = "") -> None:
        super().__init__(reason)
        self.container = container
        self.reason = reason
        self.cause = cause  # what the probe or the container said, first: "health check: wget: …"


def _apply(client: Client, cfg: ResolvedConfig, meta: _Meta, secrets: dict[str, dict[str, str]], *,
           log: Log, note: Log, cancelled: threading.Event | None, timeout: float | None,
           drain: float | None, lock_wait: float = 0.0, check: Callable[[Client], None] | None = None) -> Release:
    with _env_lock(cfg, wait=lock_wait, log=log, cancelled=cancelled):
        if check is not None:  # may refuse (raise) now that the lock is ours, before anything changes
            check(client)
        # Stable ports first: a port taken by another program is a set-up problem, found before
        # anything starts and before a release number is spent on it.
        for name, svc in cfg.services.items():
            if svc.port:
                _ensure_proxy(client, cfg, name, local_port(svc))
        number = _next_number(client, cfg)
        rid = f"r{number}"
        release_ref = f"{RELEASE_REPO}/{cfg.app}:{cfg.env_name}-{rid}"
        _tag(client, meta.image_id, release_ref)
        started = time.time()
        base = {
            L_APP: cfg.app, L_ENV: cfg.env_name, L_RELEASE: rid, L_NUMBER: str(number),
            L_SHA: meta.git_sha, L_IMAGE: meta.image_ref, L_DIGEST: meta.digest,
            L_CREATED: _iso(started), L_KIND: meta.kind, L_WHO: _who(), L_CONFIG: config_hash(cfg),
        }
        if meta.rollback_of:
            base[L_ROLLBACK_OF] = meta.rollback_of
        _record_start(client, cfg, base, meta.image_id, log)
        log(f"release {rid} of {cfg.app}/{cfg.env_name}: {meta.image_ref}")
        rolls: list[_Roll] = []
        window = settle_seconds(cfg)
        image_check = _image_healthcheck(client, meta.image_id)
        probes = {name: probe_for(cfg, svc, image_check) for name, svc in cfg.services.items()}
        try:
            for name in _service_order(cfg):
                _raise_if_cancelled(cancelled)
                roll = _start_service(client, cfg, name, release_ref, base, secrets.get(name, {}), log=log,
                                      note=note, cancelled=cancelled, cap=timeout, probe=probes[name])
                rolls.append(roll)
            _settle(client, cfg, rolls, window, rid=rid, log=log, note=note, cancelled=cancelled, probes=probes)
        except _Died as died:
            _show_failure(died.container, died.service, log)
            before = ", ".join(sorted({c.labels.get(L_RELEASE, "?") for roll in rolls for c in roll.old}))
            _undo(rolls, log)
            message = (f"{died.service}: release {rid} went live, then {died.reason} "
                       f"({died.elapsed:.0f}s later, inside the {window:g}s settle window); rolled back: "
                       + (f"the previous release ({before}) serves again" if before else
                          "nothing was running before it, so nothing serves now"))
            _record(client, cfg, base, meta.image_id, "rolled-back", started, message, log)
            raise DeployFailed(message, hint="its last log lines are above; `deployctl history` shows "
                                             f"{rid} as rolled-back, and rollback never picks it") from None
        except BaseException as exc:
            outcome = "failed" if isinstance(exc, _FAILURES) else "interrupted"
            _undo(rolls, log)
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            _record(client, cfg, base, meta.image_id, outcome, started, message, log)
            raise
        _finish(client, rolls, drain if drain is not None else cfg.deploy.drain, log)
        release = _record(client, cfg, base, meta.image_id, "succeeded", started, "", log)
        _prune(client, cfg, log)
        log(f"release {rid} is live ({time.time() - started:.1f}s)")
        note(f"{rid} live" + (f" at {next(iter(service_urls(cfg).values()))}" if service_urls(cfg) else ""))
        return release


def _start_service(client: Client, cfg: ResolvedConfig, name: str, image_ref: str, base: dict[str, str],
                   secret_env: dict[str, str], *, log: Log, note: Log, cancelled: threading.Event | None,
                   cap: float | None, probe: Probe | None) -> _Roll:
    svc = cfg.services[name]
    rid = base[L_RELEASE]
    port = local_port(svc) if svc.port else 0
    if port:
        _ensure_proxy(client, cfg, name, port)
    existing = _service_containers(client, cfg, name)
    old = [c for c in existing if c.status == "running"]
    for stale in (c for c in existing if c.status != "running"):
        with contextlib.suppress(Exception):  # leftovers of an interrupted deploy
            stale.remove(force=True)
    roll = _Roll(service=name, new=[], old=old, port=port)
    labels = {**base, L_SERVICE: name, L_ROLE: ROLE_SERVICE}
    env = {"GIT_SHA": base[L_SHA], "DEPLOYCTL_RELEASE": rid, **svc.env, **secret_env}
    for i in range(svc.count):
        cname = f"{cfg.app}-{cfg.env_name}-{name}-{rid}" + (f"-{i + 1}" if svc.count > 1 else "")
        roll.new.append(_run_container(client, cname, image_ref, svc, labels, env, healthcheck(probe)))
    budget = health_budget(probe)
    limit = min(budget, cap) if cap else budget
    if roll.new:
        desc = ", ".join(f"{c.name} on {_backend(c, svc) or 'no port'}" for c in roll.new)
        how = f" ({probe.origin})" if probe is not None and probe.origin != "deploy.yaml" else ""
        log(f"{name}: started {desc}; waiting for health{how} (up to {limit:.0f}s)")
    try:
        _wait_healthy(client, roll.new, probe, limit, log=log, note=note, cancelled=cancelled, service=name)
    except _NotHealthy as exc:
        _show_failure(exc.container, name, log)
        _remove(roll.new)
        serving = ", ".join(sorted({c.labels.get(L_RELEASE, "?") for c in old}))
        where = f" on 127.0.0.1:{port}" if port else ""
        # The cause leads (what the probe or the container said); what it means for the release follows.
        lead = f"{exc.cause}: " if exc.cause else ""
        raise DeployFailed(
            f"{name}: {lead}release {rid} did not become healthy ({exc.reason}). "
            + (f"The previous release ({serving}) keeps serving{where}." if serving else
               "Nothing was serving before it, so nothing serves now."),
            hint="its last log lines and health-check output are above",
        ) from None
    except BaseException:
        _remove(roll.new)
        raise
    if port:
        roll.old_backends = list((localproxy.status(port) or {}).get("backends", []))
        roll.new_backends = [_backend(c, svc) for c in roll.new]
        # The old release stays the proxy's standby until the new one has settled: a connection
        # the new release refuses or drops unanswered goes there instead of failing.
        _switch(port, roll.new_backends, standby=roll.old_backends)
        roll.switched = True
        log(f"{name}: 127.0.0.1:{port} now sends new connections to {rid} "
            f"({', '.join(roll.new_backends) or 'none'})")
    return roll


def _run_container(client: Client, name: str, image_ref: str, svc: Service, labels: dict[str, str],
                   env: dict[str, str], check: dict[str, Any] | None) -> Container:
    from deployctl.adapters import engine  # lazy: the docker SDK stays off validate, plan and the skip path

    for attempt in range(1, PORT_ATTEMPTS + 1):
        with contextlib.suppress(engine.errors.NotFound):
            client.containers.get(name).remove(force=True)
        # A host port of our choosing, not Docker's ephemeral one: Docker publishes an ephemeral
        # port anew on every restart, so a container brought back by its restart policy would
        # no longer be where the proxy sends traffic. Loopback only: nothing is exposed beyond
        # this machine, and the proxy owns the stable port.
        host_port = _free_port() if svc.port else None
        try:
            container = client.containers.create(
                image_ref, name=name, labels=labels, environment=env, command=svc.command,
                detach=True, healthcheck=check, restart_policy=RESTART_POLICY,
                # An app running as PID 1 gets no default signal handling from the kernel: a plain
                # server ignores SIGTERM and every stop waited out the timeout. Docker's init
                # (tini) forwards signals and reaps zombies.
                init=True,
                ports={f"{svc.port}/tcp": ("127.0.0.1", host_port)} if svc.port else None,
                # The Fargate memory is a hard limit there; the same limit here surfaces an
                # out-of-memory model load on the laptop instead of in production. CPU is not
                # capped: a throttled dev box helps no one.
                mem_limit=f"{svc.memory}m",
            )
        except engine.errors.APIError as exc:
            raise ExternalError(f"could not create container {name}: {exc.explanation or exc}") from None
        try:
            container.start()
        except engine.errors.APIError as exc:
            with contextlib.suppress(Exception):
                container.remove(force=True)
            why = str(exc.explanation or exc)
            if host_port and attempt < PORT_ATTEMPTS and ("already allocated" in why or "in use" in why):
                continue  # another program took the port between our check and Docker's bind
            raise DeployFailed(f"container {name} could not start: {why}") from None
        container.reload()
        return container
    raise AssertionError("unreachable: the last attempt returns or raises")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(client: Client, containers: list[Container], probe: Probe | None, limit: float, *, log: Log,
                  note: Log, cancelled: threading.Event | None, service: str) -> None:
    """Until every container is healthy; _NotHealthy as soon as one never will be: it exited, its
    probe cannot run, or it failed decisively (see _decisive), else when `limit` runs out."""
    t0 = time.monotonic()
    pending = list(containers)
    seen: dict[str, str] = {}
    while pending:
        _raise_if_cancelled(cancelled)
        elapsed = time.monotonic() - t0
        for c in list(pending):
            c.reload()
            view = container_view(c)
            health = view.health
            died = _died(client, c)
            if died:
                raise _NotHealthy(c, f"after {elapsed:.1f}s", cause=died)
            if health is None:
                if elapsed >= NO_HEALTHCHECK_SETTLE:
                    log(f"{service}: {c.name} running (no health check) after {elapsed:.1f}s")
                    pending.remove(c)
                continue
            if seen.get(c.name) != health:
                seen[c.name] = health
                if health == "starting":
                    note(f"{service}: waiting for health")
            if health == "healthy":
                log(f"{service}: {c.name} healthy after {elapsed:.1f}s")
                pending.remove(c)
                continue
            streak = view.failing_streak
            if health == "unhealthy":
                raise _NotHealthy(c, f"its health check failed {'?' if streak is None else streak} times in a row "
                                     f"after {elapsed:.1f}s", cause=probe_cause(view))
            decisive = _decisive(view, probe)
            if decisive:
                raise _NotHealthy(c, f"{decisive}; {elapsed:.1f}s after it started", cause=probe_cause(view))
        if pending and elapsed > limit:
            raise _NotHealthy(pending[0], f"still not healthy after {limit:.0f}s",
                              cause=probe_cause(container_view(pending[0])))
        if pending:
            time.sleep(0.25)


# A probe that cannot run at all will never pass: a missing program (the shell's 127/126, or the
# engine's exec error), a missing shell, or our probe finding no HTTP client in the image.
_CANNOT_RUN = re.compile(r"executable file not found|stat /bin/sh: no such file|" + re.escape(NO_TOOL))
# The app answered with an error status, or nothing listens on the port: a verdict, not slowness.
_ANSWERED = re.compile(r"HTTP/\d(\.\d)? [45]\d\d|returned error: [45]\d\d|HTTP Error [45]\d\d|"
                       r"connection refused", re.IGNORECASE)


def probe_cause(view: ContainerView) -> str:
    """The first line of the newest failed health check's output, "" when none failed."""
    for check in reversed(view.health_log):
        if check.exit_code == 0:
            return ""
        lines = [ln.strip() for ln in check.output.splitlines() if ln.strip()]
        # A python check's traceback says why on its last line.
        line = (lines[-1] if lines[0].startswith("Traceback") else lines[0]) if lines else ""
        return f"health check: {line[:300]}" if line else f"health check: exit code {check.exit_code}, no output"
    return ""


def _decisive(view: ContainerView, probe: Probe | None) -> str:
    """Why waiting out the rest of the failure window cannot help, or "".

    Docker counts failures only after start_period (FailingStreak), and locally retries are
    scaled up to keep the configured window (retries × interval). That window is for an app that
    is slow; one whose probe cannot run, or that answers an error status or refuses connections
    for the configured `retries` checks in a row after its start period, has given its answer."""
    if probe is None or not view.health_log:
        return ""
    last = view.health_log[-1]
    if last.exit_code == 0:
        return ""
    if last.exit_code in (126, 127) or _CANNOT_RUN.search(last.output):
        return "its health check cannot run in this image"
    streak = view.failing_streak or 0
    if streak >= probe.retries and _ANSWERED.search(last.output):
        return f"its health check failed {streak} times in a row after the {probe.start_period:g}s start period"
    return ""


def _died(client: Client, c: Container) -> str:
    """Why container `c` (just reloaded) is no longer the process it was started as, or ""."""
    view = container_view(c)
    status, restarts = view.status, view.restarts
    if status not in ("exited", "dead", "restarting") and not restarts:
        return ""
    code = view.exit_code if status != "running" else None
    if code is None:  # running again after a restart: Docker's die events keep the exit code
        from deployctl.adapters import engine  # lazy: the docker SDK stays off validate, plan and the skip path

        codes = engine.exit_codes(client, c.id)
        code = codes[-1] if codes else None
    text = f"{c.name} exited" + (f" with code {code}" if code is not None else "")
    if view.oom_killed or code == 137:
        text += " (killed: out of memory, or SIGKILL)"
    elif code:
        said = _last_words(c)
        if said:
            text += f" ({said})"
    if restarts:
        text += f" and was restarted by Docker {restarts} time{'s' if restarts != 1 else ''}"
    return text


_ERROR_WORDS = re.compile(r"error|exception|fatal|panic|traceback|killed", re.IGNORECASE)


def _last_words(c: Container) -> str:
    """The line of `c`'s log that most likely says why it died, redacted, for the first line of
    the failure message: the last line that names an error (a Python traceback ends with the
    exception), else the last line. The full tail is shown with the failure as well."""
    try:
        raw = c.logs(tail=LOG_TAIL, stdout=True, stderr=True).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - only a detail of the message; the failure stands without it
        return ""
    return last_words(raw)


def last_words(raw: str) -> str:
    """`_last_words` on a log tail already read."""
    mask = Redactor().stream()  # as one stream: a multi-line secret above is masked too
    lines = [" ".join(mask(line).split()) for line in raw.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    said = next((line for line in reversed(lines) if _ERROR_WORDS.search(line)), lines[-1])
    return said if len(said) <= 200 else said[:199] + "…"


def settle_seconds(cfg: ResolvedConfig) -> float:
    """How long a new release must stay up and healthy before the previous one is stopped."""
    if cfg.deploy.settle is not None:
        return float(cfg.deploy.settle)
    intervals = [svc.health.interval if svc.health else NO_HEALTH_INTERVAL for svc in cfg.services.values()]
    return SETTLE_INTERVALS * max(intervals, default=NO_HEALTH_INTERVAL)


def _settle(client: Client, cfg: ResolvedConfig, rolls: list[_Roll], window: float, *, rid: str, log: Log,
            note: Log, cancelled: threading.Event | None, probes: Mapping[str, Probe | None]) -> None:
    """Watch the new containers for `window` seconds after the switch; _Died if one exits, is
    restarted or fails its health check `retries` times in a row. The previous release keeps
    running meanwhile (the proxy's standby), so taking traffic back costs nothing."""
    watched = [(roll, c) for roll in rolls for c in roll.new]
    if window <= 0 or not watched:
        return
    if any(roll.old for roll in rolls):
        log(f"release {rid}: serving; the previous release stays ready until {rid} has stayed healthy "
            f"for {window:g}s (deploy.settle)")
    else:  # a first release: nothing to fall back to, but a crash inside the window still fails it
        log(f"release {rid}: serving; it must stay healthy for {window:g}s (deploy.settle)")
    note(f"settling ({window:.0f}s)")
    t0 = time.monotonic()
    while True:
        _raise_if_cancelled(cancelled)
        elapsed = time.monotonic() - t0
        for roll, c in watched:
            try:
                c.reload()
            except Exception as exc:  # noqa: BLE001 - removed or unreadable: it is not serving
                raise _Died(roll.service, c, f"{c.name} could not be read any more ({exc})",
                            elapsed) from None
            died = _died(client, c)
            if died:
                raise _Died(roll.service, c, died, elapsed)
            view = container_view(c)
            probe = probes.get(roll.service)
            streak = view.failing_streak or 0
            if view.health == "unhealthy" or (probe and streak >= probe.retries):
                cause = probe_cause(view)
                raise _Died(roll.service, c, f"{c.name} failed its health check {streak} times in a row"
                            + (f" ({cause})" if cause else ""), elapsed)
        if elapsed >= window:
            log(f"release {rid}: stayed healthy for {window:g}s")
            return
        time.sleep(0.25)


def _show_failure(container: Container, service: str, log: Log) -> None:
    with contextlib.suppress(Exception):
        container.reload()
        raw = container.logs(tail=LOG_TAIL, stdout=True, stderr=True).decode("utf-8", "replace")
        lines = raw.splitlines()
        log(f"{service}: last {len(lines)} log lines of {container.name}:" if lines else
            f"{service}: {container.name} wrote nothing to its log")
        # Redacted as one stream before the prefix goes on: behind "  | " no line could open a
        # multi-line secret (a PEM key, `password:` then `- value`) for the per-line redaction.
        mask = Redactor().stream()
        for line in lines:
            log(f"  | {mask(line)}")
        checks = container_view(container).health_log
        if checks:
            log(f"{service}: last health checks of {container.name}:")
        for check in checks[-5:]:
            output = " ".join(check.output.split())[:300]
            log(f"  | exit {check.exit_code}: {output or '(no output)'}")


def _undo(rolls: list[_Roll], log: Log) -> None:
    """Put every service back on what it served before this release; remove the new containers."""
    for roll in reversed(rolls):
        if roll.switched:
            try:
                _switch(roll.port, roll.old_backends)
                log(f"{roll.service}: 127.0.0.1:{roll.port} switched back to the previous release")
            except ExternalError as exc:
                log(f"{roll.service}: could not switch back: {exc.message}")
        _remove(roll.new)


def _finish(client: Client, rolls: list[_Roll], drain: float | None, log: Log) -> None:
    """Drain and stop the containers of the previous release, now that every service is switched."""
    limit = _drain_seconds(drain)
    for roll in rolls:
        if roll.switched:
            _switch(roll.port, roll.new_backends)  # the old release is no longer the standby
        if not roll.old:
            continue
        if roll.port and roll.old_backends:
            left = localproxy.wait_drained(roll.port, roll.old_backends, limit)
            if left:
                log(f"{roll.service}: {left} connection(s) still open to the previous release after "
                    f"{limit:g}s of draining; stopping it anyway")
        for c in roll.old:
            with contextlib.suppress(Exception):
                c.stop(timeout=STOP_GRACE)
        _remove(roll.old)
        log(f"{roll.service}: stopped {', '.join(c.name for c in roll.old)}")


def _drain_seconds(configured: float | None) -> float:
    """$DEPLOYCTL_DRAIN (an operator's one-off), else deploy.drain, else DEFAULT_DRAIN."""
    raw = os.environ.get("DEPLOYCTL_DRAIN")
    if raw:
        try:
            return float(raw)
        except ValueError:
            raise UsageError(f"DEPLOYCTL_DRAIN must be a number of seconds, not {raw!r}") from None
    return DEFAULT_DRAIN if configured is None else float(configured)


def _remove(containers: list[Container]) -> None:
    for c in containers:
        with contextlib.suppress(Exception):
            c.remove(force=True)


def _ensure_proxy(client: Client, cfg: ResolvedConfig, service: str, port: int) -> None:
    owner = f"{cfg.app}/{cfg.env_name}/{service}"
    hint = f"give services.{service}.local_port in deploy.yaml a free port"
    try:
        localproxy.ensure(port, owner)
        return
    except localproxy.ProxyError as exc:
        current = localproxy.status(port)
        if current is None or _owner_alive(client, str(current.get("owner", ""))):
            raise ExternalError(f"{service}: {exc}", hint=hint) from None
    # The port's proxy belongs to an app/env with nothing left running: take the port over.
    localproxy.stop(port)
    try:
        localproxy.ensure(port, owner)
    except localproxy.ProxyError as exc:
        raise ExternalError(f"{service}: {exc}", hint=hint) from None


def _owner_alive(client: Client, owner: str) -> bool:
    app, _, rest = owner.partition("/")
    env, _, service = rest.partition("/")
    labels = [f"{L_APP}={app}", f"{L_ENV}={env}", f"{L_SERVICE}={service}", f"{L_ROLE}={ROLE_SERVICE}"]
    return bool(client.containers.list(ignore_removed=True, filters={"label": labels, "status": "running"}))


def _switch(port: int, backends: list[str], standby: list[str] | None = None) -> None:
    try:
        localproxy.switch(port, backends, standby=standby)
    except localproxy.ProxyError as exc:
        raise ExternalError(f"could not switch 127.0.0.1:{port}: {exc}") from None


# --- records and history --------------------------------------------------------------------------


IN_PROGRESS, INTERRUPTED = "in progress", "interrupted"


def _record_name(cfg: ResolvedConfig, rid: str, *, final: bool = True) -> str:
    return f"{cfg.app}-{cfg.env_name}-{rid}-release" + ("" if final else "-in-progress")


def _record_start(client: Client, cfg: ResolvedConfig, base: dict[str, str], image_id: str, log: Log) -> None:
    """The release's record from its start (outcome `in progress`, this process's pid), so that a
    deploy killed before its verdict still shows in `history`. Replaced by _record."""
    labels = {**base, L_ROLE: ROLE_RECORD, L_OUTCOME: IN_PROGRESS, L_SERVICES: ",".join(cfg.services),
              L_PID: str(os.getpid())}
    try:
        client.containers.create(image_id, name=_record_name(cfg, base[L_RELEASE], final=False), labels=labels,
                                 entrypoint=["/deployctl-release-record"], command=[], network_disabled=True)
    except Exception as exc:  # noqa: BLE001 - the deploy matters more than its record
        log(f"warning: could not record the start of release {base[L_RELEASE]}: {exc}")


def _record(client: Client, cfg: ResolvedConfig, base: dict[str, str], image_id: str, outcome: str,
            started: float, message: str, log: Log) -> Release:
    ended = time.time()
    labels = {
        **base, L_ROLE: ROLE_RECORD, L_OUTCOME: outcome, L_ENDED: _iso(ended),
        L_DURATION: f"{ended - started:.1f}", L_SERVICES: ",".join(cfg.services),
        # Labels are for a glance in `docker ps`, not for tracebacks: keep the first line short.
        L_MESSAGE: message.splitlines()[0][:300] if message else "",
    }
    try:
        client.containers.create(
            image_id, name=_record_name(cfg, base[L_RELEASE]), labels=labels,
            entrypoint=["/deployctl-release-record"], command=[], network_disabled=True,
        )
    except Exception as exc:  # noqa: BLE001 - the deploy's own outcome matters more than its record
        log(f"warning: could not record the outcome ({outcome}) of release {base[L_RELEASE]}: {exc}; "
            "`deployctl history` will show it interrupted")
    else:
        # Labels are immutable: the start record goes only once the final one exists.
        with contextlib.suppress(Exception):
            client.containers.get(_record_name(cfg, base[L_RELEASE], final=False)).remove(force=True)
    return _release_from_labels(labels, image_id, current=outcome == "succeeded", available=True)


def _prune(client: Client, cfg: ResolvedConfig, log: Log) -> None:
    """Keep the newest image.keep releases (record + release tag); drop older ones. Images are
    removed by deployctl's own tags without pruning their untagged parents: on a shared engine
    another build may be using those cached layers right now (`docker image prune` reclaims them)."""
    records = sorted(_records(client, cfg), key=lambda c: _number(c.labels), reverse=True)
    services = _service_containers(client, cfg, None)
    running = {c.labels.get(L_RELEASE) for c in services if c.status == "running"}
    for c in records[cfg.image.keep:]:
        rid = c.labels.get(L_RELEASE, "")
        if rid in running:
            continue
        with contextlib.suppress(Exception):
            c.remove(force=True)
        ref = f"{RELEASE_REPO}/{cfg.app}:{cfg.env_name}-{rid}"
        with contextlib.suppress(Exception):
            client.images.remove(ref, noprune=True)  # an untag when other tags or containers still hold it
        log(f"pruned release {rid} (image.keep = {cfg.image.keep})")


def _releases(client: Client, cfg: ResolvedConfig, holder: str | None = None) -> list[Release]:
    # The lock holder first: a deploy writes its verdict before it lets the lock go, so records
    # read after a free lock are final. Read the other way round, a deploy that ended in between
    # looked cut off ("interrupted") to a `status --watch` polling at that moment.
    holder = _lock_holder(cfg) if holder is None else holder
    services = _service_containers(client, cfg, None)
    running = {c.labels.get(L_RELEASE) for c in services if c.status == "running"}
    present = {c.labels.get(L_RELEASE) for c in services}
    records: dict[str | None, Container] = {}
    for c in _records(client, cfg):  # a start record and the final one (killed in between): the final wins
        rid = c.labels.get(L_RELEASE)
        if rid not in records or records[rid].labels.get(L_OUTCOME) == IN_PROGRESS:
            records[rid] = c
    images = {ref.rsplit("-", 1)[-1] for ref in _release_tags(client, cfg)}
    out = []
    for rid, c in records.items():
        out.append(_release_from_labels(c.labels, container_view(c).image, current=False,
                                        available=rid in images))
    for c in services:  # a release still rolling out (or cut off) has containers but no record
        rid = c.labels.get(L_RELEASE)
        if rid not in records:
            records[rid] = c
            out.append(_release_from_labels({**c.labels, L_OUTCOME: "in progress"}, container_view(c).image,
                                            current=False, available=rid in images))
    out.sort(key=lambda r: r.number, reverse=True)
    out = [_cut_off(r, records.get(r.id), newest=i == 0, holder=holder if i == 0 else "")
           if r.outcome == IN_PROGRESS else r for i, r in enumerate(out)]
    # Current: the newest succeeded release that still has running containers.
    current = next((r for r in out if r.id in running and r.outcome == "succeeded"), None)
    return [_with_current(r, current, r.id in present) for r in out]


def _cut_off(release: Release, record: Container | None, *, newest: bool, holder: str) -> Release:
    """An `in progress` release is `interrupted` once a newer release exists or the process that
    deployed it no longer holds the deploy lock (killed: the kernel dropped its flock)."""
    pid = (record.labels if record is not None else {}).get(L_PID, "")
    if newest and holder and (not pid or holder.startswith(f"pid {pid} ")):
        return release
    why = ("a newer release was deployed before its verdict" if not newest else
           f"its deploy{f' (pid {pid})' if pid else ''} ended without a verdict (killed?)")
    return dataclasses.replace(release, outcome=INTERRUPTED, detail=release.detail or why)


def _with_current(release: Release, current: Release | None, present: bool) -> Release:
    is_current = current is not None and release.number == current.number
    if not is_current and not present:
        return release
    return dataclasses.replace(release, current=is_current, present=present)


def _release_from_labels(labels: Mapping[str, str], image_id: str, *, current: bool,
                         available: bool) -> Release:
    duration = labels.get(L_DURATION)
    return Release(
        id=labels.get(L_RELEASE, "?"), app=labels.get(L_APP, ""), env=labels.get(L_ENV, ""),
        number=_number(labels), kind=labels.get(L_KIND, "deploy"),
        outcome=labels.get(L_OUTCOME, "in progress"), git_sha=labels.get(L_SHA, ""),
        image=labels.get(L_IMAGE, ""), image_id=image_id, image_digest=labels.get(L_DIGEST, ""),
        started_at=labels.get(L_CREATED, ""), finished_at=labels.get(L_ENDED, ""),
        duration_s=float(duration) if duration else None, who=labels.get(L_WHO, ""),
        detail=labels.get(L_MESSAGE, ""),
        services=tuple(s for s in labels.get(L_SERVICES, labels.get(L_SERVICE, "")).split(",") if s),
        source=labels.get(L_ROLLBACK_OF, ""), current=current, available=available,
    )


def _release_tags(client: Client, cfg: ResolvedConfig) -> list[str]:
    """`deployctl-releases/<app>:<env>-rN` tags (an image listed may carry other tags too)."""
    prefix = f"{RELEASE_REPO}/{cfg.app}:{cfg.env_name}-r"
    from deployctl.adapters import engine  # lazy: the docker SDK stays off validate, plan and the skip path

    return [ref for ref in engine.image_tags(client, name=f"{RELEASE_REPO}/{cfg.app}")
            if ref.startswith(prefix) and ref[len(prefix):].isdigit()]


def _records(client: Client, cfg: ResolvedConfig) -> list[Container]:
    return list(client.containers.list(all=True, ignore_removed=True, filters={"label": [
        f"{L_APP}={cfg.app}", f"{L_ENV}={cfg.env_name}", f"{L_ROLE}={ROLE_RECORD}"]}))


def _service_containers(client: Client, cfg: ResolvedConfig, service: str | None) -> list[Container]:
    labels = [f"{L_APP}={cfg.app}", f"{L_ENV}={cfg.env_name}", f"{L_ROLE}={ROLE_SERVICE}"]
    if service:
        labels.append(f"{L_SERVICE}={service}")
    # ignore_removed: a deploy may remove a container between the listing and its inspection
    # (status and history run alongside deploys).
    return list(client.containers.list(all=True, ignore_removed=True, filters={"label": labels}))


def _next_number(client: Client, cfg: ResolvedConfig) -> int:
    everything = client.containers.list(all=True, ignore_removed=True, filters={"label": [f"{L_APP}={cfg.app}",
                                                                     f"{L_ENV}={cfg.env_name}"]})
    return 1 + max((_number(c.labels) for c in everything), default=0)


def _number(labels: Mapping[str, str]) -> int:
    try:
        return int(labels.get(L_NUMBER, "0"))
    except ValueError:
        return 0


def _release_number(text: str) -> int:
    raw = text.strip().lower().removeprefix("r")
    if not raw.isdigit():
        raise UsageError(f"{text!r} is not a release id", hint="release ids look like r7 (or just 7)")
    return int(raw)


def _container_state(c: Container, svc: Service) -> ContainerState:
    view = container_view(c)
    status = view.status or c.status
    return ContainerState(name=c.name, id=c.short_id, release=c.labels.get(L_RELEASE, ""),
                          state=status, health=view.health or "none",
                          backend=_backend(c, svc) if svc.port and c.status == "running" else "",
                          restarts=view.restarts,
                          exit_code=view.exit_code if status in ("exited", "dead", "restarting") else None)


def _backend(container: Container, svc: Service) -> str:
    return container_view(container).host_address(svc.port) if svc.port else ""


# --- small things ---------------------------------------------------------------------------------


def _local_image(client: Client, ref: str, log: Log) -> ImageView:
    from deployctl.adapters import engine  # lazy: the docker SDK stays off validate, plan and the skip path

    info = engine.image_info(client, ref)
    if info is not None:
        return info
    log(f"pulling {ref}")
    try:
        client.images.pull(ref)
    except engine.errors.APIError as exc:
        raise ExternalError(f"image {ref} is not in the local engine and could not be pulled: "
                            f"{exc.explanation or exc}") from None
    info = engine.image_info(client, ref)
    if info is None:
        raise ExternalError(f"image {ref} is still missing after a pull")
    return info


def _image_healthcheck(client: Client, image_id: str) -> ImageHealthcheck | None:
    """The image's own HEALTHCHECK, None when it has none."""
    from deployctl.adapters import engine  # lazy: the docker SDK stays off validate, plan and the skip path

    info = engine.image_info(client, image_id)
    return info.healthcheck if info is not None else None


def _digest_of(ref: str, info: ImageView) -> str:
    if "@" in ref:
        return ref.split("@", 1)[1]
    return info.digest_in(ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref)


def _tag(client: Client, image_id: str, ref: str) -> None:
    from deployctl.adapters import engine  # lazy: the docker SDK stays off validate, plan and the skip path

    repository, tag = ref.rsplit(":", 1)
    try:
        engine.tag(client, image_id, repository, tag)
    except engine.errors.APIError as exc:
        raise ExternalError(f"could not tag {image_id[:19]} as {ref}: {exc.explanation or exc}") from None


def _service_order(cfg: ResolvedConfig) -> list[str]:
    level = waves(cfg)
    return sorted(cfg.services, key=lambda name: (level[name], list(cfg.services).index(name)))


def _raise_if_cancelled(cancelled: threading.Event | None) -> None:
    if cancelled is not None and cancelled.is_set():
        raise Cancelled("deploy cancelled; the previous release keeps serving")


def _who() -> str:
    return actor()  # one "who deployed" for every target and the lock


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lock_path(cfg: ResolvedConfig) -> Path:
    return localproxy.state_root() / "locks" / f"{cfg.app}-{cfg.env_name}.lock"


def _lock_holder(cfg: ResolvedConfig) -> str:
    """The live holder of the deploy lock as it describes itself, or "".

    Read, never taken: even a shared flock for a moment could make a deploy starting just then
    fail with "being deployed right now". A holder killed with SIGKILL leaves its line behind,
    so the pid must still be alive."""
    try:
        line = _lock_path(cfg).read_text().strip()
    except OSError:
        return ""
    words = line.split()
    if len(words) < 2 or words[0] != "pid" or not words[1].isdigit():
        return ""
    try:
        os.kill(int(words[1]), 0)
    except PermissionError:
        return line  # alive, another user's
    except OSError:
        return ""
    return line


@contextlib.contextmanager
def _env_lock(cfg: ResolvedConfig, *, wait: float = 0.0, log: Log | None = None,
              cancelled: threading.Event | None = None) -> Iterator[None]:
    """One deploy of an app/env at a time on this machine; the kernel drops the lock if we die.

    Busy: with `wait` > 0 (--lock-wait), poll until it frees up for at most `wait` seconds;
    then (or at once without `wait`) LockHeld (exit 1, as for ECS) naming the holder."""
    import fcntl  # lazy: POSIX only; kept to the one lock that needs it

    path = _lock_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    where = f"{cfg.app}/{cfg.env_name}"
    deadline = time.monotonic() + max(0.0, wait)
    announced = False
    with open(path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another deployctl process"
            if time.monotonic() >= deadline:
                raise LockHeld(f"{where} is being deployed right now by {holder}"
                               + (f" (waited {wait:g}s)" if wait > 0 else ""),
                               hint="wait longer with --lock-wait, e.g. --lock-wait 10m" if wait > 0 else
                               "wait for it with --lock-wait DURATION (e.g. --lock-wait 10m), or run again "
                               "once it is done") from None
            if not announced and log is not None:
                log(f"waiting up to {wait:g}s for the deploy lock of {where}: held by {holder}")
                announced = True
            if cancelled is not None:
                if cancelled.wait(0.2):
                    raise Cancelled("cancelled while waiting for the deploy lock; nothing was changed")
            else:
                time.sleep(0.2)
        if announced and log is not None:
            log(f"deploy lock of {where} taken")
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} ({_who()}, since {_iso(time.time())})\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)

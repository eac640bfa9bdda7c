"""`status` of a local (Docker engine) environment: deployctl.status/v1, the text report and
why it is not ok, from a docker.LocalStatus."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from deployctl.render.status_doc import status_current_doc, status_doc, status_service_doc
from deployctl.render.text import outcome_text, short
from deployctl.targets.base import StatusView

if TYPE_CHECKING:
    from deployctl.targets.docker import LocalStatus


def docker_problem(svc: Mapping[str, Any]) -> str:
    """Why one service of deployctl.status/v1 (local target) is not ok, "" when it is."""
    name = svc["service"]
    if svc["rolled_back"]:
        return f"{name}: {svc['rolled_back']}"
    if not svc["exists"]:
        return f"{name}: never deployed"
    if not svc["release"]:
        return f"{name}: no release serves (" + ", ".join(_container_words(c) for c in svc["containers"]) + ")"
    if svc["outcome"] != "succeeded":
        return f"{name}: release {svc['release']} is {svc['outcome'] or 'unrecorded'}"
    restarted = [c for c in svc["containers"] if c.get("restarts") and c["release"] == svc["release"]]
    if (svc["healthy"] or 0) < svc["desired"] or restarted:
        return f"{name}: {svc['healthy']}/{svc['desired']} healthy (" + ", ".join(
            _container_words(c) for c in svc["containers"]) + ")" + (
            "; a container Docker restarted crashed: deploy a fix or roll back" if restarted else "")
    return ""


def _container_words(c: Mapping[str, Any]) -> str:
    words = f"{c['name']} {c['state']}"
    if c.get("exit_code") is not None:
        words += f" (exit code {c['exit_code']})"
    elif c["state"] == "running" and c["health"] not in ("healthy", "none"):
        words += f", {c['health']}"
    if c.get("restarts"):
        words += f", restarted {c['restarts']} time{'s' if c['restarts'] != 1 else ''}"
    return words


def render_docker_status(st: LocalStatus, doc: Mapping[str, Any]) -> list[str]:
    """`status` text for the local target. The first line is the verdict deployctl.status/v1
    gives (`ok`), so a reader never sees "release r6 (succeeded)" above a JSON `ok: false`; then
    what serves, and what went wrong with the newest release."""
    cur, latest = st.current, st.latest
    problems = [p for p in (docker_problem(svc) for svc in doc["services"]) if p]
    if doc["ok"]:
        verdict = "ok: every service runs its newest release, healthy"
    elif problems:
        verdict = "not ok: " + "; ".join(problems)
    else:
        verdict = "not ok: not settled yet" + (" (a deploy is running)" if getattr(st, "deploying", "") else
                                                " (containers are starting or being restarted)")
    head = f"{st.app}/{st.env} on the local Docker engine"
    if cur is not None:
        head += f": release {cur.id} ({cur.outcome})"
    elif latest is not None:
        head += f": no release is serving; the newest, {latest.id}, {outcome_text(latest.outcome)}"
    else:
        head += ": nothing deployed"
    lines = [verdict, head]
    if getattr(st, "deploying", ""):
        lines.append(f"  a deploy is running: {st.deploying}")
    if latest is not None and (cur is None or latest.number > cur.number) and latest.detail:
        lines.append(f"  {latest.id}: {latest.detail}")
    for s, svc in zip(st.services, doc["services"], strict=True):
        lines.append(f"{s.service}: release {s.release or '-'}, {s.running}/{s.desired} running, "
                     f"{s.healthy} healthy" + (f", {s.url}" if s.url and s.running else "")
                     + (f", {short(s.digest)}" if s.digest else ""))
        for c in svc["containers"]:
            if c["state"] != "running" or c["restarts"] or c["health"] not in ("healthy", "none"):
                lines.append(f"  {_container_words(c)}")
    return lines


def _docker_outcome(outcome: str) -> str:
    """The local target's outcomes in the words of ECS releases ("in progress" → "in-progress")."""
    return outcome.replace(" ", "-")


def docker_status_doc(st: LocalStatus) -> dict[str, Any]:
    """deployctl.status/v1 for the local Docker target (a docker.LocalStatus).

    Nothing rolls out in the background locally (a deploy replaces containers under its own
    lock and waits for them), so a service has settled when every running container is of the
    release it serves and none is starting or being restarted; it is ok when as many as desired
    are healthy, none was restarted after a crash, and the newest release is what it serves (a
    failed or rolled-back deploy leaves the older release serving)."""
    latest = st.latest
    services, settled, ok = [], True, True
    for s in st.services:
        exists = bool(s.containers)
        running = [c for c in s.containers if c.state == "running"]
        rolled = ""
        if latest is not None and s.service in latest.services and latest.id != s.release \
                and latest.outcome in ("failed", "interrupted", "rolled-back"):
            rolled = (f"release {latest.id} ({latest.outcome}) is not what runs: the service went back to "
                      f"{s.release or 'nothing'}")
        # Settled: nothing is changing. A rollout (running containers of another release), a
        # container starting or being restarted by Docker is change; a container that exited
        # for good is not (it is not ok, and waiting would not change that).
        svc_settled = all(c.release == s.release and c.health != "starting" for c in running) and not any(
            c.state in ("restarting", "created") for c in s.containers)
        # A restart is a crash Docker covered up: not ok until a deploy or rollback replaces it.
        restarted = any(c.restarts for c in s.containers if c.release == s.release)
        info = next((r for r in (st.current, latest) if r is not None and r.id == s.release), None)
        # A deploy holding the lock may still switch, settle or roll back: nothing is final yet.
        svc_settled = svc_settled and not getattr(st, "deploying", "")
        svc_ok = exists and bool(s.release) and svc_settled and s.healthy >= s.desired and not rolled \
            and not restarted and info is not None and info.outcome == "succeeded"
        settled, ok = settled and svc_settled, ok and svc_ok
        services.append(status_service_doc(
            service=s.service, exists=exists, release=s.release or None,
            outcome=_docker_outcome(info.outcome) if info else None, image_digest=s.digest or None,
            image=s.image or None, git_sha=s.git_sha or None, running=s.running, desired=s.desired,
            healthy=s.healthy, rolled_back=rolled or None, url=s.url or None,
            containers=[asdict(c) for c in s.containers]))
    cur = st.current
    return status_doc(app=st.app, env=st.env, target="docker", cluster=None, settled=settled, ok=ok,
                      current=status_current_doc(
                          id=cur.id, outcome=_docker_outcome(cur.outcome), kind=cur.kind,
                          git_sha=cur.git_sha or None, image_digest=cur.image_digest or None,
                          started_at=cur.started_at or None, finished_at=cur.finished_at or None) if cur else None,
                      services=services)


def view(st: LocalStatus) -> StatusView:
    doc = docker_status_doc(st)
    problems = tuple(p for p in (docker_problem(svc) for svc in doc["services"]) if p)
    return StatusView(doc=doc, lines=tuple(render_docker_status(st, doc)), problems=problems,
                      unsettled="still not settled",
                      done=f"{st.app}/{st.env}: every service runs its newest release, healthy")

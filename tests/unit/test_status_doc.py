"""deployctl.status/v1: one shape for both targets (render.status_doc, ecs_status and docker_status)."""

from __future__ import annotations

from deployctl.releases import Release
from deployctl.render import status_doc as keys
from deployctl.targets import docker
from deployctl.targets import docker_status as rc
from deployctl.targets.ecs_status import ServiceStatus


def release(rid: str, outcome: str = "succeeded", *, current: bool = False) -> Release:
    return Release(id=rid, app="app", env="dev", number=int(rid[1:]), kind="deploy", outcome=outcome,
                   git_sha="a" * 40, image="app:1", image_id="sha256:i", image_digest="",
                   started_at="2026-03-15T10:00:00Z", finished_at="", duration_s=None, who="tester", detail="",
                   services=("api",), current=current)


def container(rid: str, state: str = "running", health: str = "healthy") -> docker.ContainerState:
    return docker.ContainerState(name=f"app-dev-api-{rid}", id="abc", release=rid, state=state, health=health,
                                 backend="127.0.0.1:1")


def local(serving: str, containers: tuple[docker.ContainerState, ...], latest: Release,
          current: Release | None, healthy: int = 1) -> docker.LocalStatus:
    svc = docker.ServiceStatus(service="api", release=serving, desired=1,
                               running=sum(c.state == "running" for c in containers), healthy=healthy,
                               containers=containers, url="http://127.0.0.1:8080", proxy_pid=1,
                               proxy_backends=("127.0.0.1:1",), git_sha="a" * 40, image="app:1")
    return docker.LocalStatus(app="app", env="dev", current=current, services=(svc,), latest=latest)


def test_both_targets_fill_every_key() -> None:
    ecs = ServiceStatus("api", "app-api", exists=False).to_json()
    r1 = release("r1", current=True)
    doc = rc.docker_status_doc(local("r1", (container("r1"),), r1, r1))
    assert list(doc) == list(keys.STATUS_KEYS) and doc["schema"] == "deployctl.status/v1"
    (svc,) = doc["services"]
    assert list(svc) == list(ecs) == list(keys.STATUS_SERVICE_KEYS)
    assert (doc["settled"], doc["ok"], doc["cluster"], svc["rollout_state"], ecs["url"]) == (True, True, None, None,
                                                                                             None)
    assert list(doc["current"]) == list(keys.STATUS_CURRENT_KEYS)


def test_local_mid_deploy_is_unsettled_and_a_failed_newest_release_is_not_ok() -> None:
    r1 = release("r1", current=True)
    moving = rc.docker_status_doc(local("r1", (container("r1"), container("r2", health="starting")),
                                        release("r2", "in progress"), r1))
    assert (moving["settled"], moving["ok"]) == (False, False)
    failed = rc.docker_status_doc(local("r1", (container("r1"),), release("r2", "failed"), r1))
    assert (failed["settled"], failed["ok"]) == (True, False)
    assert failed["services"][0]["rolled_back"].startswith("release r2 (failed) is not what runs")
    # The local target's outcome words are the ECS ones in JSON.
    cut = rc.docker_status_doc(local("r2", (container("r2"),), release("r2", "in progress"), None))
    assert cut["current"] is None and cut["services"][0]["outcome"] == "in-progress"

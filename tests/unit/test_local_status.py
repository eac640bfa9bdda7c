"""`status` of the local target after a crash: what deployctl.status/v1 and the text say."""

from __future__ import annotations

import dataclasses

from deployctl.targets import docker
from deployctl.targets import docker_status as rc
from tests.unit.test_status_doc import container, local, release


def test_a_restarted_container_is_not_ok_and_one_restarting_is_not_settled() -> None:
    r1 = release("r1", current=True)
    crashed = dataclasses.replace(container("r1"), restarts=2)
    doc = rc.docker_status_doc(local("r1", (crashed,), r1, r1))
    assert (doc["settled"], doc["ok"]) == (True, False)
    assert doc["services"][0]["containers"][0]["restarts"] == 2
    assert "restarted 2 times" in rc.docker_problem(doc["services"][0])

    restarting = dataclasses.replace(container("r1", state="restarting", health="starting"), restarts=3,
                                     exit_code=3)
    doc = rc.docker_status_doc(local("", (restarting,), r1, None, healthy=0))
    assert (doc["settled"], doc["ok"]) == (False, False)


def test_a_release_whose_containers_exited_is_reported_not_nothing_deployed() -> None:
    r2 = release("r2")
    dead = container("r2", state="exited", health="unhealthy")
    dead = dataclasses.replace(dead, exit_code=3, backend="")
    st = local("", (dead,), r2, None, healthy=0)
    doc = rc.docker_status_doc(st)
    # Nothing will change by waiting: settled, and not ok (status --watch exits 1 at once).
    assert (doc["settled"], doc["ok"], doc["current"]) == (True, False, None)
    text = "\n".join(rc.render_docker_status(st, doc))
    assert "nothing deployed" not in text
    assert "no release is serving; the newest, r2, succeeded" in text
    assert "app-dev-api-r2 exited (exit code 3)" in text
    # The verdict leads, as `ok` does in the JSON (issue 14 item 7).
    assert text.splitlines()[0].startswith("not ok: api: no release serves")


def test_a_rolled_back_newest_release_is_named_in_status() -> None:
    r1 = release("r1", current=True)
    r2 = dataclasses.replace(release("r2", "rolled-back"), detail="api: release r2 went live, then it died")
    st = local("r1", (container("r1"),), r2, r1)
    doc = rc.docker_status_doc(st)
    assert (doc["settled"], doc["ok"]) == (True, False)
    assert doc["services"][0]["rolled_back"].startswith("release r2 (rolled-back) is not what runs")
    text = rc.render_docker_status(st, doc)
    # JSON says ok: false, so the text says so first, not "release r1 (succeeded)" (issue 14 item 7).
    assert text[0] == "not ok: api: release r2 (rolled-back) is not what runs: the service went back to r1"
    assert text[1].endswith("release r1 (succeeded)")
    assert text[2] == "  r2: api: release r2 went live, then it died"


def test_an_ok_environment_says_ok_first() -> None:
    r1 = release("r1", current=True)
    st = local("r1", (container("r1"),), r1, r1)
    doc = rc.docker_status_doc(st)
    assert doc["ok"] is True
    assert rc.render_docker_status(st, doc)[0] == "ok: every service runs its newest release, healthy"


def test_default_settle_window_is_three_health_intervals() -> None:
    from pathlib import Path

    from deployctl.config import load_env, read

    root = Path(__file__).resolve().parents[2]
    cfg = load_env(read(root / "examples" / "quickstart" / "deploy.yaml"), "dev")
    assert docker.settle_seconds(cfg) == 15.0  # interval: 5s
    cfg = cfg.model_copy(update={"deploy": cfg.deploy.model_copy(update={"settle": 0.0})})
    assert docker.settle_seconds(cfg) == 0.0

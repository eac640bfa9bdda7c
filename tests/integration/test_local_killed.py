"""A local deploy killed with SIGKILL stays in `history`, on a real dockerd.

The release record (a labelled, never-started container) is created as soon as the release has
a number, with outcome `in progress` and the deploying pid, and replaced at the verdict. A
`deployctl run --env dev` subprocess is killed while it waits for its slow-starting container
to turn healthy; `history --json` must then show that release as interrupted (its process is
gone), and keep showing it after a later deploy has replaced its containers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import docker
import pytest

from tests.integration import test_local_target as base
from tests.integration.conftest import git

pytestmark = pytest.mark.docker

App, REPO, _containers = base.App, base.REPO, base._containers
client, images, app = base.client, base.images, base.app


def deployctl(app: App, *args: str) -> list[str]:
    return [sys.executable, "-m", "deployctl", *args, "-f", str(app.root / "deploy.yaml"), "--env", "dev"]


def history(app: App) -> list[tuple[str, str, bool]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(deployctl(app, "history", "--json"), env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [(r["id"], r["outcome"], r["current"]) for r in json.loads(proc.stdout)["releases"]]


def test_a_deploy_killed_with_sigkill_stays_in_history(app: App, images: dict[str, str],
                                                       client: docker.DockerClient) -> None:
    assert app.deploy(images["1.0.0"], sha="1" * 40)[0].exit_code == 0
    # r2's app needs 60 s before it is ready: its deploy is still waiting when it is killed.
    # Its 503s must not count yet either (a 120 s start period): on a loaded machine the test may
    # see r2's container only seconds after it started, and the deploy has to still be waiting.
    app.edit('MODEL_LOAD_SECONDS: "1"', 'MODEL_LOAD_SECONDS: "60"')
    app.edit("start_period: 10s", "start_period: 120s")
    # `run --image` deploys an image already pushed (to the local registry of the test services).
    ref = f"127.0.0.1:5000/{app.name}:2.0.0"
    client.images.get(images["2.0.0"]).tag(ref)
    for line in client.images.push(ref, stream=True, decode=True):
        assert "error" not in line, line
    git(app.root, "init", "-q", "-b", "main")  # run takes the git sha of the checkout
    git(app.root, "add", "deploy.yaml")
    git(app.root, "commit", "-q", "-m", "app")
    proc = subprocess.Popen(deployctl(app, "run", "--only", "deploy", "--image", ref),
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(c.labels.get("deployctl.release") == "r2" for c in _containers(client, app)):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the deploy never started r2's container"
            time.sleep(0.1)
        # While its deploy runs, r2 is in progress.
        assert history(app)[:2] == [("r2", "in-progress", False), ("r1", "succeeded", True)]
    finally:
        proc.send_signal(signal.SIGKILL)
        out = proc.communicate(timeout=30)[0]  # reaped: its pid is gone, not a zombie
    assert proc.returncode == -signal.SIGKILL, out

    # Killed: still there, and no longer in progress — nobody will give it a verdict.
    assert history(app) == [("r2", "interrupted", False), ("r1", "succeeded", True)]
    assert app.version() == "1.0.0"

    # A later deploy replaces r2's leftover container; r2 stays in history, interrupted.
    app.edit('MODEL_LOAD_SECONDS: "60"', 'MODEL_LOAD_SECONDS: "1"')
    report, out = app.deploy(images["2.0.0"], sha="3" * 40)
    assert report.exit_code == 0, out
    assert [c.labels["deployctl.release"] for c in _containers(client, app)] == ["r3"]
    assert history(app) == [("r3", "succeeded", True), ("r2", "interrupted", False), ("r1", "succeeded", False)]
    # One record per release: r2's start record, the final records of r1 and r3.
    records = _containers(client, app, "release-record")
    assert sorted(c.labels["deployctl.release"] for c in records) == ["r1", "r2", "r3"]
    client.images.remove(ref, noprune=True)

"""The local Docker target on a real dockerd: health-gated switch, failure, rollback, load, proxy.

Each test deploys a copy of the quickstart under its own app name and a free 127.0.0.1 port, with
its own state dir, and removes every container, tag and proxy it made. Deploys go through the
pipeline engine (run_jobs + StageContext), as `deployctl run`'s deploy stage does. These tests
need dockerd: without it they fail (engine.connect raises), they are never skipped.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from deployctl import localproxy
from deployctl.adapters.git import GitFacts
from deployctl.config import load_env, read
from deployctl.errors import PreflightFailed, UsageError
from deployctl.pipeline import Job, RunReport, run_jobs
from deployctl.plan import make_plan
from deployctl.targets import docker as target
from deployctl.ui.progress import PlainReporter
from tests.support.ports import free_port

# One xdist worker runs this module: its module-scoped images are built once, not once per worker.
pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("test_local_target")]

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("local_deploy_load",
                                               REPO / "benchmarks" / "local_deploy_load.py")
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # dataclasses look their module up there
_spec.loader.exec_module(bench)


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture(scope="module")
def images(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The quickstart built twice: VERSION 1.0.0 and 2.0.0 (built once for the whole module)."""
    tag = f"dctl-test-{uuid.uuid4().hex[:8]}"
    context = tmp_path_factory.mktemp("qs") / "app"
    bench.quickstart_copy(context, app="unused", port=1)
    built = {v: bench.build_version(client, context, v, f"{tag}:{v}") for v in ("1.0.0", "2.0.0")}
    yield built
    for ref in built.values():
        client.images.remove(ref, force=True, noprune=True)


class App:
    """One isolated deployment of the quickstart: config, deploys, HTTP on its stable port."""

    def __init__(self, root: Path, name: str, port: int, text: str) -> None:
        self.root = root
        self.name = name
        self.port = port
        self.write(text)

    def write(self, text: str) -> None:
        (self.root / "deploy.yaml").write_text(text)
        self.text = text
        self.cfg = load_env(read(self.root / "deploy.yaml"), "dev")

    def edit(self, old: str, new: str) -> None:
        assert old in self.text, old
        self.write(self.text.replace(old, new, 1))

    def deploy(self, image: str, sha: str = "a" * 40) -> tuple[RunReport, str]:
        plan = make_plan(self.cfg, GitFacts(sha=sha, branch="main"))
        out = io.StringIO()
        job = Job("deploy", (), lambda ctx: target.deploy(plan, image, ctx, None))
        report = run_jobs([job], PlainReporter(out), handle_signals=False)
        return report, out.getvalue()

    def get(self, path: str = "/version") -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def version(self) -> str:
        status, body = self.get("/version")
        assert status == 200, body
        return str(json.loads(body)["version"])


@pytest.fixture
def app(client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch, unique_name: Callable[[str], str]) -> App:
    # A short path: the proxy's control socket lives under it (unix socket paths are short).
    state = Path(tempfile.mkdtemp(prefix="dctl-"))
    monkeypatch.setenv("DEPLOYCTL_STATE_DIR", str(state))
    monkeypatch.setenv("DEPLOYCTL_DRAIN", "3")
    name = unique_name("qt")
    port = free_port()
    root = state / "project"
    root.mkdir()
    text = (REPO / "examples" / "quickstart" / "deploy.yaml").read_text()
    text = (text.replace("app: quickstart", f"app: {name}", 1)
                .replace("local_port: 8080", f"local_port: {port}", 1)
                .replace('MODEL_LOAD_SECONDS: "3"', 'MODEL_LOAD_SECONDS: "1"', 1))
    # A short settle window keeps these tests quick; the settle tests below set their own.
    text += "\ndeploy:\n  settle: 1s\n"
    the_app = App(root, name, port, text)
    yield the_app
    target.remove(the_app.cfg, client=client)
    left = client.containers.list(all=True, filters={"label": f"deployctl.app={name}"})
    shutil.rmtree(state, ignore_errors=True)
    assert not left, f"containers left behind: {[c.name for c in left]}"
    assert localproxy.status(port) is None


def _containers(client: docker.DockerClient, app: App, role: str = "service") -> list:
    # ignore_removed: a deploy in progress removes containers between the list and its inspects.
    return client.containers.list(all=True, ignore_removed=True,
                                  filters={"label": [f"deployctl.app={app.name}", f"deployctl.role={role}"]})


# --- tests --------------------------------------------------------------------------------------


def test_deploy_switches_the_stable_port_to_the_new_release(app: App, images: dict[str, str],
                                                            client: docker.DockerClient) -> None:
    report, out = app.deploy(images["1.0.0"], sha="1" * 40)
    assert report.exit_code == 0, out
    assert report.outputs["url"] == f"http://127.0.0.1:{app.port}"
    assert report.outputs["release"] == "r1"
    # A first release has no previous one to promise as a fallback.
    assert "r1: serving; it must stay healthy for 1s" in out and "previous release" not in out
    status, body = app.get("/version")
    assert status == 200 and json.loads(body) == {"version": "1.0.0", "git_sha": "1" * 40}

    report, out = app.deploy(images["2.0.0"], sha="2" * 40)
    assert report.exit_code == 0, out
    assert "the previous release stays ready until r2 has stayed healthy for 1s" in out
    assert app.version() == "2.0.0"
    # Only the new release runs; the old container was drained, stopped and removed.
    running = _containers(client, app)
    assert [c.name for c in running] == [f"{app.name}-dev-api-r2"]
    labels = running[0].labels
    assert labels["deployctl.app"] == app.name and labels["deployctl.env"] == "dev"
    assert labels["deployctl.service"] == "api" and labels["deployctl.release"] == "r2"
    assert labels["deployctl.git-sha"] == "2" * 40 and labels["deployctl.created"].endswith("Z")
    health = running[0].attrs["Config"]["Healthcheck"]
    # One probe for both targets (render/probe.py): a shell script that GETs the path.
    assert health["Test"][0] == "CMD-SHELL" and "http://127.0.0.1:8000/health/ready" in health["Test"][1]
    assert health["StartPeriod"] == 10 * 10**9
    # The release's image is pinned under a release tag, whatever happens to the build tag.
    pinned = client.images.get(f"deployctl-releases/{app.name}:dev-r1")
    assert pinned.id == client.images.get(images["1.0.0"]).id

    history = target.history(app.cfg)
    assert [(r.id, r.outcome, r.current) for r in history] == [("r2", "succeeded", True),
                                                                ("r1", "succeeded", False)]
    assert history[1].git_sha == "1" * 40
    st = target.status(app.cfg)
    assert st.current is not None and st.current.id == "r2"
    (svc,) = st.services
    assert (svc.release, svc.running, svc.healthy) == ("r2", 1, 1)
    assert svc.proxy_backends == (svc.containers[0].backend,)


def test_unhealthy_release_leaves_the_old_one_serving(app: App, images: dict[str, str],
                                                      client: docker.DockerClient) -> None:
    report, out = app.deploy(images["1.0.0"])
    assert report.exit_code == 0, out

    app.edit('MODEL_LOAD_SECONDS: "1"', 'MODEL_LOAD_SECONDS: "1"\n      FAIL_HEALTH: "1"')
    app.edit("start_period: 10s", "start_period: 2s")
    app.edit("retries: 3", "retries: 1")
    serving: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # the old release must answer all through the failed deploy
        while not stop.is_set():
            serving.append(app.version())
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        report, out = app.deploy(images["2.0.0"])
    finally:
        stop.set()
        watcher.join()
    assert report.exit_code == 1
    record = report.stage("deploy")
    assert record.status == "failed"
    assert "r2 did not become healthy" in record.message and "(r1) keeps serving" in record.message
    # What people need to see why: the container's own log and Docker's health-check output.
    assert "FAIL_HEALTH=1" in out
    assert "exit 1: wget: server returned error: HTTP/1.1 503" in out
    assert set(serving) == {"1.0.0"} and len(serving) > 10
    assert app.version() == "1.0.0"
    assert [c.name for c in _containers(client, app)] == [f"{app.name}-dev-api-r1"]
    history = target.history(app.cfg)
    assert [(r.id, r.outcome, r.current) for r in history] == [("r2", "failed", False),
                                                                ("r1", "succeeded", True)]
    assert "did not become healthy" in history[0].detail


def test_rollback_brings_the_previous_release_back(app: App, images: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="nothing is deployed"):
        target.rollback(app.cfg)
    assert app.deploy(images["1.0.0"], sha="1" * 40)[0].exit_code == 0
    with pytest.raises(UsageError, match=r"has no earlier succeeded release to roll back to \(it runs r1\)"):
        target.plan_rollback(app.cfg)
    assert app.deploy(images["2.0.0"], sha="2" * 40)[0].exit_code == 0
    assert app.version() == "2.0.0"

    lines: list[str] = []
    release = target.rollback(app.cfg, log=lines.append, drain=1)
    assert release.id == "r3" and release.kind == "rollback" and release.source == "r1"
    status, body = app.get("/version")
    assert json.loads(body) == {"version": "1.0.0", "git_sha": "1" * 40}
    history = target.history(app.cfg)
    assert [(r.id, r.kind, r.current) for r in history] == [
        ("r3", "rollback", True), ("r2", "deploy", False), ("r1", "deploy", False)]
    # --to a named release, here forward again to r2.
    target.rollback(app.cfg, to="r2", log=lines.append, drain=1)
    assert app.version() == "2.0.0"
    with pytest.raises(UsageError, match="no release r99"):
        target.rollback(app.cfg, to="r99")


def test_no_failed_request_under_load_during_a_deploy(app: App, images: dict[str, str]) -> None:
    assert app.deploy(images["1.0.0"])[0].exit_code == 0
    holder: dict[str, object] = {}
    started = threading.Event()
    switched = threading.Event()
    # The load runs until the deploy has returned and a little beyond, so it spans the switch
    # however slow the machine is (a fixed count once finished before a loaded deploy switched).
    load = threading.Thread(target=lambda: holder.setdefault("r", bench.run_load(
        app.port, 200, 8, started=started, until=switched)))
    load.start()
    started.wait()
    time.sleep(0.3)
    report, out = app.deploy(images["2.0.0"])
    time.sleep(1.0)
    switched.set()
    load.join(timeout=120)
    assert not load.is_alive()
    result = holder["r"]
    assert report.exit_code == 0, out
    assert result.requests >= 200
    assert result.failures == 0, dict(result.errors)
    # Both releases answered: the load really spanned the switch.
    assert result.bodies["1.0.0"] > 0 and result.bodies["2.0.0"] > 0, result.bodies


def test_proxy_outlives_the_deploy_and_is_restarted_when_dead(app: App, images: dict[str, str]) -> None:
    assert app.deploy(images["1.0.0"])[0].exit_code == 0
    first = localproxy.status(app.port)
    assert first is not None
    os.kill(int(first["pid"]), 15)
    deadline = time.monotonic() + 30
    while localproxy.status(app.port) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{app.port}/version", timeout=2)

    report, out = app.deploy(images["2.0.0"])
    assert report.exit_code == 0, out
    second = localproxy.status(app.port)
    assert second is not None and second["pid"] != first["pid"]
    assert app.version() == "2.0.0"
    # A third deploy reuses the live proxy.
    assert app.deploy(images["1.0.0"])[0].exit_code == 0
    assert localproxy.status(app.port)["pid"] == second["pid"]


def test_a_port_taken_by_another_program_is_a_clear_error(app: App, images: dict[str, str],
                                                          client: docker.DockerClient) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", app.port))
        squatter.listen()
        report, _ = app.deploy(images["1.0.0"])
    assert report.exit_code == 1
    message = report.stage("deploy").message
    assert message == f"api: cannot listen on 127.0.0.1:{app.port}: another program is using it"
    # Found before anything started: no container, no release spent.
    assert client.containers.list(all=True, filters={"label": f"deployctl.app={app.name}"}) == []


def test_secrets_come_from_the_environment_and_are_never_printed(
        app: App, images: dict[str, str], client: docker.DockerClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    app.edit("    local_port:", "    secrets: {MODEL_TOKEN: quickstart/model-token}\n    local_port:")
    monkeypatch.delenv("MODEL_TOKEN", raising=False)
    with pytest.raises(PreflightFailed, match=r"MODEL_TOKEN \(services.api.secrets\)"):
        target.local_secrets(app.cfg)
    report, _ = app.deploy(images["1.0.0"])
    assert report.exit_code == 1 and "MODEL_TOKEN" in report.stage("deploy").message

    secret = "tok-" + uuid.uuid4().hex
    monkeypatch.setenv("MODEL_TOKEN", secret)
    report, out = app.deploy(images["1.0.0"])
    assert report.exit_code == 0, out
    assert secret not in out
    (container,) = _containers(client, app)
    assert f"MODEL_TOKEN={secret}" in container.attrs["Config"]["Env"]
    # The long-lived proxy does not carry the deployer's environment (and so the secret) around.
    proxy_pid = localproxy.status(app.port)["pid"]
    assert secret.encode() not in Path(f"/proc/{proxy_pid}/environ").read_bytes()


def test_only_the_last_image_keep_releases_are_kept(app: App, images: dict[str, str],
                                                    client: docker.DockerClient) -> None:
    app.edit("keep: 5", "keep: 2")
    for i, version in enumerate(["1.0.0", "2.0.0", "1.0.0"]):
        assert app.deploy(images[version], sha=str(i) * 40)[0].exit_code == 0
    assert [r.id for r in target.history(app.cfg)] == ["r3", "r2"]
    # Other tests' apps may tag the same image ids: only this app's tags count.
    tags = {t for image in client.images.list(name=f"deployctl-releases/{app.name}") for t in image.tags
            if t.startswith(f"deployctl-releases/{app.name}:")}
    assert tags == {f"deployctl-releases/{app.name}:dev-r3", f"deployctl-releases/{app.name}:dev-r2"}
    assert len(_containers(client, app, "release-record")) == 2

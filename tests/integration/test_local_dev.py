"""The local target in dev on real dockerd, with images like the ones users deploy: the health
probe, unchanged deploys (--force) and `deployctl down`.

`python:3.11-slim` here is the locally built base image (scripts/services builds it; see
docs/testing.md): python3, neither wget nor curl. The app is a few lines of http.server whose
/health answers HEALTH_STATUS (default 200). These tests need dockerd and that image: without
them they fail, they are never skipped.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from deployctl import localproxy
from deployctl.adapters.git import GitFacts
from deployctl.config import load_env, read
from deployctl.pipeline import Job, RunReport, run_jobs
from deployctl.plan import make_plan
from deployctl.targets import DeployOptions
from deployctl.targets import docker as target
from deployctl.ui.progress import PlainReporter
from tests.support.ports import free_port

# One xdist worker runs this module: its module-scoped images are built once, not once per worker.
pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("test_local_dev")]

BASE = "python:3.11-slim"
APP_PY = """\
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        code = int(os.environ.get("HEALTH_STATUS", "200")) if self.path == "/health" else 200
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"ok" if code == 200 else b"no")

    def log_message(self, *args):
        pass

HTTPServer(("0.0.0.0", 8000), H).serve_forever()
"""


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env()


def _build(client: docker.DockerClient, root: Path, dockerfile: str, tag: str) -> str:
    root.mkdir(parents=True, exist_ok=True)
    (root / "app.py").write_text(APP_PY)
    (root / "Dockerfile").write_text(dockerfile)
    client.images.build(path=str(root), tag=tag, rm=True)
    return tag


@pytest.fixture(scope="module")
def images(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    client.images.get(BASE)  # the local base image; fails (never skips) when it was not built
    tag = f"dctl-probe-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("probe")
    plain = f"FROM {BASE}\nCOPY app.py /app.py\nCMD [\"python3\", \"/app.py\"]\n"
    built = {
        "plain": _build(client, root / "plain", plain, f"{tag}:plain"),
        # The app's own check, in python (the image has no curl): deployctl must keep it.
        "own-check": _build(client, root / "own", plain + (
            "HEALTHCHECK --interval=30s --timeout=3s --start-period=1s --retries=2 "
            "CMD [\"python3\", \"-c\", \"import urllib.request as u; "
            "u.urlopen('http://127.0.0.1:8000/health', timeout=2)\"]\n"), f"{tag}:own-check"),
    }
    yield built
    for ref in built.values():
        client.images.remove(ref, force=True, noprune=True)


class App:
    def __init__(self, root: Path, name: str, port: int) -> None:
        self.root, self.name, self.port = root, name, port

    def configure(self, service: str, env: str = "") -> None:
        (self.root / "deploy.yaml").write_text(
            f"version: 1\napp: {self.name}\nregion: us-east-1\n"
            f"image: {{repository: {self.name}, registry: '127.0.0.1:5000'}}\n"
            f"deploy: {{settle: 1s}}\n"
            f"services:\n  api:\n    port: 8000\n    local_port: {self.port}\n{service}"
            f"environments:\n  dev:\n    target: docker\n{env}")
        self.cfg = load_env(read(self.root / "deploy.yaml"), "dev")

    def deploy(self, image: str, options: DeployOptions | None = None) -> tuple[RunReport, str, float]:
        plan = make_plan(self.cfg, GitFacts(sha="a" * 40, branch="main"))
        out = io.StringIO()
        job = Job("deploy", (), lambda ctx: target.deploy(plan, image, ctx, options))
        t0 = time.monotonic()
        report = run_jobs([job], PlainReporter(out), handle_signals=False)
        return report, out.getvalue(), time.monotonic() - t0

    def get(self, path: str) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return int(r.status)


@pytest.fixture
def app(client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    state = Path(tempfile.mkdtemp(prefix="dctl-"))
    monkeypatch.setenv("DEPLOYCTL_STATE_DIR", str(state))
    monkeypatch.setenv("DEPLOYCTL_DRAIN", "1")
    root = state / "project"
    root.mkdir()
    the_app = App(root, f"pr-{uuid.uuid4().hex[:8]}", free_port())
    yield the_app
    target.remove(the_app.cfg, client=client)
    left = client.containers.list(all=True, filters={"label": f"deployctl.app={the_app.name}"})
    shutil.rmtree(state, ignore_errors=True)
    assert not left, [c.name for c in left]
    assert localproxy.status(the_app.port) is None


def _container(client: docker.DockerClient, app: App) -> docker.models.containers.Container:
    (c,) = client.containers.list(filters={"label": [f"deployctl.app={app.name}", "deployctl.role=service"]})
    return c


def test_an_http_check_passes_in_a_slim_python_image_without_wget_or_curl(
        app: App, images: dict[str, str], client: docker.DockerClient) -> None:
    app.configure("    health: {path: /health, start_period: 5s, interval: 5s}\n")
    report, out, _ = app.deploy(images["plain"])
    assert report.exit_code == 0, out
    assert app.get("/health") == 200
    # The same probe ECS gets: it found python, since the image has no wget or curl.
    check = _container(client, app).attrs["Config"]["Healthcheck"]["Test"]
    assert check[0] == "CMD-SHELL" and "http://127.0.0.1:8000/health" in check[1] and "python" in check[1]


def test_a_release_answering_500_fails_fast_in_dev_with_the_status_first(
        app: App, images: dict[str, str]) -> None:
    # deploy.yaml's timings would wait 60s + 3 × 30s; dev's override makes the start period 1s,
    # and a 500 after it is an answer, not slowness.
    app.configure("    health: {path: /health, start_period: 60s, interval: 30s, retries: 3}\n"
                  "    env: {HEALTH_STATUS: '500'}\n",
                  env="    health: {start_period: 1s}\n")
    report, out, took = app.deploy(images["plain"])
    assert report.exit_code == 1, out
    message = report.stage("deploy").message
    first = message.splitlines()[0]
    assert first.startswith("api: health check: GET http://127.0.0.1:8000/health: HTTP Error 500"), message
    assert "release r1 did not become healthy" in message
    assert "Nothing was serving before it" in message and "(nothing) keeps serving" not in message
    assert took < 30, f"took {took:.0f}s: the failure window was waited out"


def test_a_health_command_whose_program_is_missing_fails_at_once_naming_it(
        app: App, images: dict[str, str]) -> None:
    app.configure("    health: {command: [wget, -q, -O-, 'http://127.0.0.1:8000/health'], start_period: 30s}\n")
    report, out, took = app.deploy(images["plain"])
    assert report.exit_code == 1, out
    first = report.stage("deploy").message.splitlines()[0]
    assert first.startswith("api: health check: ") and 'exec: "wget": executable file not found' in first, first
    assert took < 20, f"took {took:.0f}s: a probe that cannot run was waited on"


def test_the_images_own_healthcheck_is_kept_when_deploy_yaml_has_none(
        app: App, images: dict[str, str], client: docker.DockerClient) -> None:
    app.configure("")
    report, out, took = app.deploy(images["own-check"])
    assert report.exit_code == 0, out
    assert "waiting for health (the image's HEALTHCHECK)" in out
    check = _container(client, app).attrs["Config"]["Healthcheck"]
    image_check = client.images.get(images["own-check"]).attrs["Config"]["Healthcheck"]
    assert check["Test"] == image_check["Test"]  # the app's command, not deployctl's
    assert _container(client, app).attrs["State"]["Health"]["Status"] == "healthy"
    # Probed every second locally, so the first pass does not wait for the image's 30s interval.
    assert took < 25, out


def test_a_failing_image_healthcheck_fails_the_deploy_with_its_output_first(
        app: App, images: dict[str, str]) -> None:
    app.configure("    env: {HEALTH_STATUS: '503'}\n", env="    health: {start_period: 1s}\n")
    report, out, _ = app.deploy(images["own-check"])
    assert report.exit_code == 1, out
    first = report.stage("deploy").message.splitlines()[0]
    assert first.startswith("api: health check: ") and "503" in first, first


def test_an_unchanged_deploy_makes_no_new_release_unless_forced(app: App, images: dict[str, str]) -> None:
    app.configure("    health: {path: /health, start_period: 5s, interval: 5s}\n")
    report, out, _ = app.deploy(images["plain"])
    assert report.exit_code == 0 and report.outputs["release"] == "r1", out

    report, out, took = app.deploy(images["plain"])
    assert report.exit_code == 0, out
    assert report.stage("deploy").status == "skipped"
    assert "r1 already runs this image with these settings" in out and "--force" in out
    assert report.outputs["release"] == "r1" and report.outputs["url"] == f"http://127.0.0.1:{app.port}"
    assert [r.id for r in target.history(app.cfg)] == ["r1"]

    report, out, _ = app.deploy(images["plain"], DeployOptions(force=True))
    assert report.exit_code == 0 and report.outputs["release"] == "r2", out
    # A changed setting is a change, with the same image.
    app.configure("    health: {path: /health, start_period: 5s, interval: 5s}\n    env: {MODE: b}\n")
    report, out, _ = app.deploy(images["plain"])
    assert report.exit_code == 0 and report.outputs["release"] == "r3", out
    assert [r.id for r in target.history(app.cfg)] == ["r3", "r2", "r1"]


def _cli(app: App, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deployctl", *args, "-f", str(app.root / "deploy.yaml")],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ), check=False)


def test_down_removes_containers_proxies_and_networks_and_images_only_with_images(
        app: App, images: dict[str, str], client: docker.DockerClient) -> None:
    app.configure("    health: {path: /health, start_period: 5s, interval: 5s}\n")
    build_tag = f"{app.name}:v1"  # the app's own repository, as the build stage tags it
    client.images.get(images["plain"]).tag(app.name, "v1")
    report, out, _ = app.deploy(build_tag)
    assert report.exit_code == 0, out
    where = {"label": [f"deployctl.app={app.name}", "deployctl.env=dev"]}
    net = client.networks.create(f"{app.name}-dev", labels={"deployctl.app": app.name, "deployctl.env": "dev"})
    assert client.containers.list(all=True, filters=where) and localproxy.status(app.port) is not None

    proc = _cli(app, "down", "--env", "dev", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert f"would remove proxies on 127.0.0.1:{app.port}" in proc.stdout
    assert client.containers.list(all=True, filters=where)  # a dry run changes nothing

    proc = _cli(app, "down", "--env", "dev")  # no terminal, no --yes: refused
    assert proc.returncode == 2 and "pass --yes" in proc.stderr

    proc = _cli(app, "down", "--env", "dev", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert f"{app.name}/dev is down; its images stay" in proc.stdout
    assert client.containers.list(all=True, filters=where) == []
    assert localproxy.status(app.port) is None
    assert net.id not in [n.id for n in client.networks.list()]
    assert client.images.get(build_tag) and client.images.get(f"deployctl-releases/{app.name}:dev-r1")
    with pytest.raises(urllib.error.URLError):
        app.get("/health")
    proc = _cli(app, "status", "--env", "dev")  # nothing answers there now: no URL is offered
    assert "0/1 running" in proc.stdout and f"127.0.0.1:{app.port}" not in proc.stdout, proc.stdout

    report, out, _ = app.deploy(build_tag)
    assert report.exit_code == 0, out
    proc = _cli(app, "down", "--env", "dev", "--images", "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = __import__("json").loads(proc.stdout)
    assert doc["schema"] == "deployctl.down/v1" and doc["kept"] == []
    assert sorted(doc["images"]) == sorted([build_tag, f"deployctl-releases/{app.name}:dev-r1"])
    for ref in (build_tag, f"deployctl-releases/{app.name}:dev-r1"):
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(ref)
    client.images.get(images["plain"])  # another repository's tag on the same image is not the app's

    proc = _cli(app, "down", "--env", "dev", "--yes")
    assert proc.returncode == 0 and "nothing to remove" in proc.stdout


def _output_of(client: docker.DockerClient, image: str, argv: list[str], **kwargs: object) -> str:
    """What a one-shot container prints. Not `containers.run(..., remove=True)`: it streams the
    logs while the container runs, and under load that stream can end before any line arrives."""
    container = client.containers.run(image, argv, detach=True, **kwargs)
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
        return container.logs().decode()
    finally:
        container.remove(force=True)


def _git_project(root: Path, dockerfile: str) -> None:
    (root / "Dockerfile").write_text(dockerfile)
    (root / "app.py").write_text(APP_PY)
    (root / ".dockerignore").write_text(".git\ndeploy.yaml\nran-*\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@example.com", "-c", "user.name=t",
                                                  "commit", "-qm", "app"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_preflight_names_every_problem_before_any_stage_runs(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    app.configure("    secrets: {MODEL_API_KEY: model-api-key}\n"
                  "    health: {path: /health}\n")
    (app.root / "deploy.yaml").write_text((app.root / "deploy.yaml").read_text().replace(
        "deploy: {settle: 1s}\n", "deploy: {settle: 1s}\nstages:\n  lint: {run: ['touch ran-lint']}\n"))
    _git_project(app.root, "FROM nonexistent.invalid/base:1 AS base\nFROM base\nCOPY app.py /app.py\n")
    monkeypatch.delenv("MODEL_API_KEY", raising=False)
    import socket

    with socket.socket() as taken:  # another program on the stable port
        taken.bind(("127.0.0.1", app.port))
        taken.listen()
        proc = _cli(app, "run", "--env", "dev")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    out = proc.stdout + proc.stderr
    assert "preflight found 3 problems" in out, out
    lines = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("- ")]
    assert any(f"127.0.0.1:{app.port} is taken by another program" in ln for ln in lines), out
    assert any("MODEL_API_KEY (services.api.secrets)" in ln for ln in lines), out
    assert any(ln.startswith("- base image nonexistent.invalid/base:1 (FROM in Dockerfile)") for ln in lines), out
    assert not (app.root / "ran-lint").exists()  # no stage ran

    # The engine itself unreachable: said with the other problems, not instead of them.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    proc = _cli(app, "run", "--env", "dev")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "preflight found 2 problems" in out, out
    assert "Cannot reach the Docker daemon at unix:///nonexistent/docker.sock" in out
    assert "MODEL_API_KEY (services.api.secrets)" in out


def test_build_arg_reaches_the_build_and_a_secret_one_is_refused_before_it(
        app: App, client: docker.DockerClient) -> None:
    app.configure("    health: {path: /health}\n")
    # The base image's public apt keyrings and man pages look secret by name to the image check
    # on this branch (fixed separately): allowed here the documented way.
    (app.root / "deploy.yaml").write_text((app.root / "deploy.yaml").read_text().replace(
        "registry: '127.0.0.1:5000'}", "registry: '127.0.0.1:5000', allow_secret_files: "
        "[/usr/share/keyrings, /usr/share/man, /usr/bin/apt-key]}"))
    _git_project(app.root, f"FROM {BASE}\nARG GREETING=hello\nRUN echo \"$GREETING\" > /greeting\n"
                           "COPY app.py /app.py\nCMD [\"python3\", \"/app.py\"]\n")
    proc = _cli(app, "run", "--env", "dev", "--only", "build", "--build-arg", "GREETING=bonjour")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    refs = [t for image in client.images.list(name=f"127.0.0.1:5000/{app.name}") for t in image.tags]
    assert refs, proc.stdout
    try:
        assert _output_of(client, refs[0], ["cat", "/greeting"]).strip() == "bonjour"
        proc = _cli(app, "run", "--env", "dev", "--only", "build",
                    "--build-arg", "PIP_INDEX_URL=https://ci:hunter2-Secret99@pypi.internal.example/simple")
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert "refusing --build-arg" in proc.stderr and "docs/build-secrets.md" in proc.stderr
        assert "hunter2" not in proc.stdout + proc.stderr
    finally:
        for ref in refs:
            client.images.remove(ref, force=True, noprune=True)


def test_lint_and_test_on_one_target_build_it_once(app: App, client: docker.DockerClient) -> None:
    # Both stages start together; building the same stage twice at once doubled the wait.
    app.configure("    health: {path: /health}\n")
    text = (app.root / "deploy.yaml").read_text().replace(
        "deploy: {settle: 1s}\n", "deploy: {settle: 1s}\nstages:\n"
        "  test: {run: ['test -f /app/test_app.py && echo test-ran'], in: image, target: test}\n"
        "  lint: {run: ['test -f /app/test_app.py && echo lint-ran'], in: image, target: test}\n")
    (app.root / "deploy.yaml").write_text(text)
    (app.root / "test_app.py").write_text("print('tests')\n")
    _git_project(app.root, f"FROM {BASE} AS runtime\nWORKDIR /app\nCOPY app.py /app/app.py\n"
                           "CMD [\"python3\", \"app.py\"]\n\n"
                           "FROM runtime AS test\nCOPY test_app.py /app/test_app.py\n")
    made: list[str] = []
    try:
        proc = _cli(app, "run", "--env", "dev", "--only", "lint,test")
        made = [t for image in client.images.list(name=f"127.0.0.1:5000/{app.name}") for t in image.tags]
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        assert "lint-ran" in proc.stdout and "test-ran" in proc.stdout
        assert proc.stdout.count("building the Dockerfile's `test` stage") == 1, proc.stdout
        assert proc.stdout.count("-test already built from the same inputs") == 1, proc.stdout
    finally:
        for ref in set(made):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(ref, force=True, noprune=True)


def test_stages_run_inside_the_image_a_test_target_or_the_built_one(
        app: App, client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch) -> None:
    app.configure("    health: {path: /health}\n")
    text = (app.root / "deploy.yaml").read_text().replace(
        "registry: '127.0.0.1:5000'}", "registry: '127.0.0.1:5000', target: runtime, allow_secret_files: "
        "[/usr/share/keyrings, /usr/share/man, /usr/bin/apt-key]}")  # see the build-arg test
    text = text.replace("deploy: {settle: 1s}\n", "deploy: {settle: 1s}\nstages:\n"
                        "  test: {run: ['python3 -m unittest -v test_app'], in: image, target: test,"
                        " env: {EXPECTED: '3.11'}}\n"
                        "  lint: {run: ['test -f /app/app.py && echo runtime-image-ok'], in: image}\n")
    (app.root / "deploy.yaml").write_text(text)
    (app.root / "test_app.py").write_text(
        "import os, sys, unittest\n\n"
        "class T(unittest.TestCase):\n"
        "    def test_the_images_python(self):\n"
        "        self.assertEqual('%d.%d' % sys.version_info[:2], os.environ['EXPECTED'])\n\n"
        "    def test_nothing_of_the_host_environment(self):\n"
        "        self.assertNotIn('HOST_ONLY', os.environ)\n")
    _git_project(app.root, f"FROM {BASE} AS runtime\nWORKDIR /app\nCOPY app.py /app/app.py\n"
                           "CMD [\"python3\", \"app.py\"]\n\n"
                           "FROM runtime AS test\nCOPY test_app.py /app/test_app.py\n")
    monkeypatch.setenv("HOST_ONLY", "1")
    made: list[str] = []
    try:
        proc = _cli(app, "run", "--env", "dev", "--only", "build,lint,test")
        made = [t for image in client.images.list(name=f"127.0.0.1:5000/{app.name}") for t in image.tags]
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        out = proc.stdout
        assert "(test_app.T.test_the_images_python) ... ok" in out, out
        assert "(test_app.T.test_nothing_of_the_host_environment) ... ok" in out
        assert "-test)" in out and "runtime-image-ok" in out
        # The test target was built for the stage; the runtime image (what ships) has no tests in it.
        assert any(t.endswith("-test") for t in made), made
        runtime = next(t for t in made if not t.endswith("-test"))
        assert _output_of(client, runtime, ["ls", "/app"], entrypoint=[]).split() == ["app.py"]

        # A failing test in the image fails the stage, naming the image.
        (app.root / "test_app.py").write_text("import sys\nsys.exit(3)\n")
        subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qam", "x"],
                       cwd=app.root, check=True)
        proc = _cli(app, "run", "--env", "dev", "--only", "test")
        made += [t for image in client.images.list(name=f"127.0.0.1:5000/{app.name}") for t in image.tags]
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert "`python3 -m unittest -v test_app` exited with code 3 in 127.0.0.1:5000/" in proc.stdout
    finally:
        for ref in set(made):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(ref, force=True, noprune=True)

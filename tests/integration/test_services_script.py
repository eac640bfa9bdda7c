"""scripts/services and the quickstart image, against the real dockerd and registries.

Needs `scripts/services up` (CI's .ci/run does it). Outside CI the tests skip when the
services are down; in CI that is a failure, since a skipped environment check proves nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# One xdist worker runs this module: its module-scoped quickstart image is built once, not once per worker.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.xdist_group("test_services_script")]

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services"
QUICKSTART = ROOT / "examples" / "quickstart"


def run(*argv: str | Path, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def services() -> dict[str, str]:
    status = run(SERVICES, "status", check=False)
    if status.returncode != 0:
        message = f"local services are not all up (run scripts/services up):\n{status.stdout}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    env: dict[str, str] = {}
    for line in run(SERVICES, "env").stdout.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = value
    return env


def http_get(url: str, timeout: float = 3) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_status_lists_every_service_up(services: dict[str, str]) -> None:
    lines = run(SERVICES, "status").stdout.splitlines()
    states = {line.split()[0]: line.split()[1] for line in lines}
    assert states == {"dockerd": "up", "registry": "up", "registry-auth": "up", "base-image": "up", "moto": "up"}


def test_the_local_python_base_image_is_like_the_official_slim_one(services: dict[str, str]) -> None:
    # `up` builds python:3.11-slim with debootstrap (no Docker Hub here): python, pip and venv
    # as in the official image, and neither wget nor curl, which slim images do not have.
    script = ("python --version && pip --version && python -m venv /tmp/v && /tmp/v/bin/pip --version"
              " && for t in wget curl; do if command -v $t; then echo has-$t; exit 1; fi; done; echo ok")
    r = subprocess.run(["docker", "run", "--rm", "python:3.11-slim", "sh", "-c", script], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "DOCKER_HOST": services["DOCKER_HOST"]})
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("Python 3.11.") and r.stdout.strip().endswith("ok")


def test_env_names_the_registries_and_credentials(services: dict[str, str]) -> None:
    assert services["DEPLOYCTL_TEST_REGISTRY"] == "127.0.0.1:5000"
    assert services["DEPLOYCTL_TEST_AUTH_REGISTRY"] == "127.0.0.1:5001"
    assert services["DEPLOYCTL_TEST_REGISTRY_USER"] == "deployctl"
    assert services["DEPLOYCTL_TEST_REGISTRY_PASSWORD"] == "deployctl-test"
    assert services["DOCKER_HOST"].startswith("unix://")
    assert http_get(f"http://{services['DEPLOYCTL_TEST_REGISTRY']}/v2/")[0] == 200
    assert http_get(f"http://{services['DEPLOYCTL_TEST_AUTH_REGISTRY']}/v2/")[0] == 401
    assert http_get(services["DEPLOYCTL_TEST_MOTO_URL"] + "/moto-api/")[0] == 200


def test_up_again_is_a_quick_no_op(services: dict[str, str]) -> None:
    started = time.monotonic()
    result = run(SERVICES, "up", timeout=120)
    assert time.monotonic() - started < 30
    assert "already running" in result.stderr
    assert "starting" not in result.stderr


def test_check_builds_runs_and_pushes_to_both_registries(services: dict[str, str]) -> None:
    # Builds FROM scratch, publishes a port on 127.0.0.1, pushes to :5000, is refused by :5001
    # without credentials, pushes there after login, then deletes what it pushed.
    result = run(SERVICES, "check", check=False)
    assert result.returncode == 0, result.stderr
    assert "check: OK" in result.stderr
    assert "without login refused" in result.stderr


@pytest.fixture(scope="module")
def quickstart_image(services: dict[str, str]) -> Iterator[str]:
    busybox = QUICKSTART / "busybox"
    if not busybox.exists():
        # Into a private name, then renamed: another worker may be building the quickstart from
        # this directory right now and must never see a half-written file.
        partial = busybox.with_name(f".busybox-{uuid.uuid4().hex[:8]}")
        shutil.copy2("/bin/busybox", partial)
        os.replace(partial, busybox)
    tag = f"deployctl-quickstart-test:{uuid.uuid4().hex[:8]}"
    # --no-cache: a cached step's image can be removed by another worker's cleanup mid-build.
    run("docker", "build", "--no-cache", "-q", "--target", "runtime", "-t", tag, QUICKSTART)
    yield tag
    run("docker", "rmi", "-f", "--no-prune", tag, check=False)


@pytest.fixture
def start_container(quickstart_image: str):
    started: list[str] = []

    def start(*env: str) -> tuple[str, str]:
        argv = ["docker", "run", "-d", "-p", "127.0.0.1::8000"]
        for item in env:
            argv += ["-e", item]
        cid = run(*argv, quickstart_image).stdout.strip()
        started.append(cid)
        port = run("docker", "port", cid, "8000/tcp").stdout.split()[0].rsplit(":", 1)[1]
        return cid, f"http://127.0.0.1:{port}"

    yield start
    for cid in started:
        run("docker", "rm", "-f", cid, check=False)


def wait_for_answer(url: str, deadline: float) -> tuple[int, str]:
    while True:
        try:
            return http_get(url)
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_quickstart_image_is_small_and_not_root(quickstart_image: str) -> None:
    size = int(run("docker", "image", "inspect", "-f", "{{.Size}}", quickstart_image).stdout)
    assert size < 5_000_000
    user = run("docker", "image", "inspect", "-f", "{{.Config.User}}", quickstart_image).stdout.strip()
    assert user and not user.startswith(("0", "root"))
    exposed = run("docker", "image", "inspect", "-f", "{{json .Config.ExposedPorts}}", quickstart_image)
    assert "8000/tcp" in exposed.stdout


def test_quickstart_becomes_ready_after_model_load(start_container) -> None:
    cid, base = start_container("MODEL_LOAD_SECONDS=2", "GIT_SHA=abc123")
    t0 = time.monotonic()
    code, body = wait_for_answer(base + "/health/ready", t0 + 10)
    assert code == 503, body
    assert '"status":"loading"' in body
    assert http_get(base + "/health/live")[0] == 200
    while code != 200:
        assert time.monotonic() - t0 < 10, "never became ready"
        time.sleep(0.1)
        code, body = http_get(base + "/health/ready")
    assert time.monotonic() - t0 > 1.0  # it really waited for the "model"
    assert body.strip() == '{"status":"ready"}'

    version = (QUICKSTART / "VERSION").read_text().strip()
    assert http_get(base + "/version") == (200, f'{{"version":"{version}","git_sha":"abc123"}}\n')
    assert http_get(base + "/") == (200, '{"reply":"hello from the model"}\n')

    # The health command deployctl gives the container works inside it (busybox wget).
    inside = run("docker", "exec", cid, "wget", "-q", "-O-", "http://127.0.0.1:8000/health/ready")
    assert '"ready"' in inside.stdout

    # Sequential load: every answer right, none dropped.
    for _ in range(200):
        assert http_get(base + "/health/ready")[0] == 200

    # SIGTERM stops it at once (no waiting out docker's 10 s stop timeout).
    t_stop = time.monotonic()
    run("docker", "stop", cid)
    assert time.monotonic() - t_stop < 5


def test_quickstart_fail_health_is_never_ready(start_container) -> None:
    _, base = start_container("MODEL_LOAD_SECONDS=0", "FAIL_HEALTH=1")
    deadline = time.monotonic() + 30
    code, body = wait_for_answer(base + "/health/ready", deadline)
    time.sleep(1.2)
    code, body = http_get(base + "/health/ready")
    assert code == 503
    assert '"failing"' in body
    assert http_get(base + "/health/live")[0] == 200

"""Fixtures for tests against the real Docker engine and the real local registries.

Started by `scripts/services up`: dockerd on /var/run/docker.sock, an open registry on
127.0.0.1:5000 and a basic-auth one on 127.0.0.1:5001 (deployctl / deployctl-test). When
they are absent these fixtures FAIL the test (never skip): a green run must mean the
integration was exercised.

The AWS side (moto server and the ECS rollout simulation, tests/simulation) has the fixtures
the ECS tests share: `env` (the moto endpoint and a neutral user in the environment), `sim` (the
simulation, with the module's SIM_PHASES), `world` (tests/support/aws_world.py) and `project`
(tests/support/release_project.py).

`fixture_app` makes a throwaway git repository from tests/fixtures/app (FROM scratch + the
host's static busybox, multi-stage, `runtime` target) with its own repository name in the
registry, and cleans up the registry manifests and local images it produced.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_SRC = REPO_ROOT / "tests" / "fixtures" / "app"
BUSYBOX = Path("/bin/busybox")
OPEN_REGISTRY = os.environ.get("DEPLOYCTL_TEST_REGISTRY", "127.0.0.1:5000")
AUTH_REGISTRY = os.environ.get("DEPLOYCTL_TEST_AUTH_REGISTRY", "127.0.0.1:5001")
AUTH_USER = os.environ.get("DEPLOYCTL_TEST_REGISTRY_USER", "deployctl")
AUTH_PASSWORD = os.environ.get("DEPLOYCTL_TEST_REGISTRY_PASSWORD", "deployctl-test")
MANIFEST_ACCEPT = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
))
SERVICES_HINT = "start them with `scripts/services up`"


# --- raw registry HTTP, independent of deployctl's own client -------------------------------


@dataclass(frozen=True)
class Registry:
    host: str
    user: str | None = None
    password: str | None = None

    def _request(self, method: str, path: str, accept: str = MANIFEST_ACCEPT) -> tuple[int, Any, bytes]:
        req = urllib.request.Request(f"http://{self.host}{path}", method=method)
        req.add_header("Accept", accept)
        if self.user:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, b""

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        status, headers, _ = self._request("HEAD", f"/v2/{repository}/manifests/{reference}")
        if status == 404:
            return None
        assert status == 200, f"registry {self.host} answered {status}"
        return str(headers["Docker-Content-Digest"])

    def image_config(self, repository: str, reference: str) -> dict[str, Any]:
        status, _, body = self._request("GET", f"/v2/{repository}/manifests/{reference}")
        assert status == 200, f"manifest {repository}:{reference} answered {status}"
        config_digest = json.loads(body)["config"]["digest"]
        status, _, body = self._request("GET", f"/v2/{repository}/blobs/{config_digest}", accept="*/*")
        assert status == 200
        return dict(json.loads(body))

    def tags(self, repository: str) -> list[str]:
        status, _, body = self._request("GET", f"/v2/{repository}/tags/list", accept="application/json")
        if status == 404:
            return []
        return list(json.loads(body).get("tags") or [])

    def delete_repository_images(self, repository: str) -> None:
        for tag in self.tags(repository):
            digest = self.manifest_digest(repository, tag)
            if digest:
                self._request("DELETE", f"/v2/{repository}/manifests/{digest}")


def _require_registry(reg: Registry, expect: int) -> Registry:
    try:
        status, _, _ = reg._request("GET", "/v2/", accept="application/json")
    except (urllib.error.URLError, OSError) as exc:
        pytest.fail(f"registry {reg.host} is not reachable ({exc}); {SERVICES_HINT}")
    if status != expect:
        pytest.fail(f"registry {reg.host} answered {status} to /v2/, expected {expect}; {SERVICES_HINT}")
    return reg


@pytest.fixture(scope="session")
def docker_engine() -> Any:
    """A docker client for the real daemon (through deployctl's adapter). Fails when down."""
    from deployctl.adapters import engine
    from deployctl.errors import ExternalError

    try:
        return engine.connect()
    except ExternalError as exc:
        pytest.fail(f"{exc}; these tests need the real dockerd: {SERVICES_HINT}")


@pytest.fixture(scope="session")
def registry() -> Registry:
    return _require_registry(Registry(OPEN_REGISTRY), 200)


@pytest.fixture(scope="session")
def auth_registry() -> Registry:
    _require_registry(Registry(AUTH_REGISTRY), 401)
    return _require_registry(Registry(AUTH_REGISTRY, AUTH_USER, AUTH_PASSWORD), 200)


# --- the fixture app -----------------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    out = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


@dataclass
class FixtureApp:
    path: Path
    repository: str
    registry: Registry
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def deploy_yaml(self) -> Path:
        return self.path / "deploy.yaml"

    @property
    def sha12(self) -> str:
        return git(self.path, "rev-parse", "HEAD")[:12]

    @property
    def image(self) -> str:
        return f"{self.registry.host}/{self.repository}:{self.sha12}"

    def set_registry(self, host: str) -> None:
        old = f'registry: "{self.registry.host}"'
        self.edit("deploy.yaml", lambda t: t.replace(old, f'registry: "{host}"'))

    def edit(self, name: str, change: Any) -> None:
        target = self.path / name
        target.write_text(change(target.read_text()))

    def commit(self, message: str = "change") -> None:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)

    def base_env(self) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "DOCKER_HOST")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update({
            "PYTHONPATH": str(REPO_ROOT),
            "HOME": str(self.home),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            # An empty docker config: credentials come only from what a test sets.
            "DOCKER_CONFIG": str(self.home / ".docker"),
            "TERM": "dumb",
        })
        env.update(self.env)
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "deployctl", "run", "-f", str(self.deploy_yaml), "--env", "dev", *args]

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> Result:
        proc = subprocess.run(self.command(*args), cwd=self.path, env={**self.base_env(), **(env or {})},
                              capture_output=True, text=True, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def report(self) -> dict[str, Any]:
        return dict(json.loads(self.stdout))

    def stage(self, name: str) -> dict[str, Any]:
        return next(s for s in self.report()["stages"] if s["name"] == name)


@pytest.fixture
def fixture_app(tmp_path: Path, request: pytest.FixtureRequest, docker_engine: Any,
                registry: Registry) -> Iterator[FixtureApp]:
    if not BUSYBOX.is_file():
        pytest.fail("/bin/busybox (Debian busybox-static) is missing; `scripts/services up` installs it")
    path = tmp_path / "app"
    shutil.copytree(FIXTURE_SRC, path)
    shutil.copy2(BUSYBOX, path / "busybox")
    name = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    repository = f"itest/{name}-{uuid.uuid4().hex[:8]}"
    deploy_yaml = path / "deploy.yaml"
    deploy_yaml.write_text(deploy_yaml.read_text().replace("itest/fixture", repository))
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    app = FixtureApp(path, repository, registry, home)
    app.commit("fixture app")
    yield app
    for reg in (registry, Registry(AUTH_REGISTRY, AUTH_USER, AUTH_PASSWORD)):
        with contextlib.suppress(urllib.error.URLError, OSError):
            reg.delete_repository_images(repository)
    # By label, so images a later build un-tagged (dangling, still named in RepoDigests) go too.
    # The raw list (no inspect per image): tests on other workers delete their fixture images
    # at the same time, and `images.list` fails on an image gone between its list and inspect.
    # By this test's own names, never by image id with force, and without pruning parents: the
    # same fixture built by a test on another worker shares cached layers (and even the image),
    # and deleting them under its build fails it with "unable to find image".
    for image in docker_engine.api.images(filters={"label": "deployctl.app=fixture"}):
        names = list(image.get("RepoTags") or []) + list(image.get("RepoDigests") or [])
        for name in (n for n in names if f"/{repository}:" in n or f"/{repository}@" in n):
            with contextlib.suppress(Exception):  # best-effort cleanup
                docker_engine.api.remove_image(name, noprune=True)


# --- the AWS world (moto server + ECS rollout simulation) ---------------------------------


@pytest.fixture
def env(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The moto server's endpoint and credentials in the environment, and a neutral user: no
    GitHub Actions variables, a dumb terminal, no inherited deploy-lock lease."""
    from deployctl import lock

    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("USER", "tester")
    monkeypatch.setenv("TERM", "dumb")
    for key in ("GITHUB_ACTOR", "GITHUB_ACTIONS", lock.LEASE_ENV):
        monkeypatch.delenv(key, raising=False)
    return aws


@pytest.fixture
def sim(ecs_sim: Any, env: Any, request: pytest.FixtureRequest) -> Any:
    """The ECS rollout simulation, with the phase durations the module names in SIM_PHASES."""
    from tests.support.aws_world import DEPLOY_PHASES

    ecs_sim.configure(**getattr(request.module, "SIM_PHASES", DEPLOY_PHASES))
    return ecs_sim


@pytest.fixture
def world(env: Any, sim: Any) -> Any:
    from tests.support.aws_world import make_world

    return make_world(env)


@pytest.fixture
def project(world: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """The committed chat-api project (staging, and prod on its own cluster), run in this process."""
    from tests.support.aws_world import PROD_CLUSTER
    from tests.support.release_project import Project, committed_project

    world.c("ecs").create_cluster(clusterName=PROD_CLUSTER, capacityProviders=["FARGATE", "FARGATE_SPOT"])
    return Project(committed_project(tmp_path, world), world, capsys)

"""The quickstart end to end, as a newcomer runs it: `deployctl run --env dev` on a real dockerd.

A copy of examples/quickstart in a fresh git repository (own app name, registry repository and
127.0.0.1 port, own state dir) goes lint → test → build → push (127.0.0.1:5000) → deploy, and
must then answer on its stable port with the VERSION baked into the image and the commit it was
built from. A second commit deploys over it; `deployctl rollback` brings the first one back, and
`history` / `status` read it all back from Docker labels.
Needs `scripts/services up`; without dockerd or the registry these tests fail, never skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support.ports import free_port

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
REGISTRY = "127.0.0.1:5000"  # what `localhost:5000` in the example's deploy.yaml points at


class Project:
    def __init__(self, root: Path, env: dict[str, str], name: str, port: int) -> None:
        self.root, self.env, self.name, self.port = root, env, name, port

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.root, env=self.env, check=True, capture_output=True,
                              text=True)
        return done.stdout.strip()

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def deployctl(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "deployctl", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def version(self) -> dict[str, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/version", timeout=5) as r:
            return dict(json.loads(r.read()))


@pytest.fixture
def project() -> Project:
    if not (QUICKSTART / "busybox").exists():
        pytest.fail(f"{QUICKSTART}/busybox is missing: run `scripts/services up`")
    state = Path(tempfile.mkdtemp(prefix="dctl-"))  # short: the proxy's unix socket lives here
    root = state / "quickstart"
    shutil.copytree(QUICKSTART, root, ignore=shutil.ignore_patterns(".deployctl", "__pycache__"))
    name = f"qs-e2e-{uuid.uuid4().hex[:8]}"
    port = free_port()
    config = (root / "deploy.yaml").read_text()
    for old, new in (("app: quickstart", f"app: {name}"), ("repository: quickstart", f"repository: {name}"),
                     ("local_port: 8080", f"local_port: {port}"),
                     ('MODEL_LOAD_SECONDS: "3"', 'MODEL_LOAD_SECONDS: "1"'),
                     # A settle window of one health interval, not the default three (15 s per
                     # deploy): test_local_settle covers the window; this test checks the path.
                     ("environments:", "deploy:\n  settle: 5s\n\nenvironments:")):
        assert old in config, old
        config = config.replace(old, new, 1)
    (root / "deploy.yaml").write_text(config)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "DEPLOYCTL_STATE_DIR": str(state),
        "DEPLOYCTL_DRAIN": "2",
        "GIT_AUTHOR_NAME": "e2e", "GIT_AUTHOR_EMAIL": "e2e@example.invalid",
        "GIT_COMMITTER_NAME": "e2e", "GIT_COMMITTER_EMAIL": "e2e@example.invalid",
    }
    for var in ("GITHUB_ACTIONS", "GITHUB_REF_NAME", "GITHUB_HEAD_REF"):
        env.pop(var, None)
    proj = Project(root, env, name, port)
    proj.git("init", "-q", "-b", "main")
    proj.commit("quickstart")
    yield proj
    _cleanup(proj, state)


def _cleanup(proj: Project, state: Path) -> None:
    remove_local_app(proj.root / "deploy.yaml", proj.name, state)


def remove_local_app(deploy_yaml: Path, name: str, state: Path) -> None:
    """Everything a local deploy of `name` left (containers, proxy, its image tags, its registry
    repository) and its state dir. Shared with the init corpus."""
    old = os.environ.get("DEPLOYCTL_STATE_DIR")
    os.environ["DEPLOYCTL_STATE_DIR"] = str(state)
    try:
        from deployctl.config import load_env, read
        from deployctl.targets import docker as target

        if deploy_yaml.exists():
            target.remove(load_env(read(deploy_yaml), "dev"))
    finally:
        if old is None:
            os.environ.pop("DEPLOYCTL_STATE_DIR", None)
        else:
            os.environ["DEPLOYCTL_STATE_DIR"] = old
    import docker

    client = docker.from_env()
    # By its own tags, never by id, without pruning parents another worker's build of the same
    # steps may be using from the cache right now.
    for image in client.api.images(name=f"localhost:5000/{name}"):
        for tag in image.get("RepoTags") or []:
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_image(tag, force=True, noprune=True)
    _delete_from_registry(name)
    shutil.rmtree(state, ignore_errors=True)


def _delete_from_registry(repository: str) -> None:
    accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/{repository}/tags/list", timeout=5) as r:
            tags = json.loads(r.read()).get("tags") or []
    except OSError:
        return
    for tag in tags:
        req = urllib.request.Request(f"http://{REGISTRY}/v2/{repository}/manifests/{tag}", method="HEAD",
                                     headers={"Accept": accept})
        with urllib.request.urlopen(req, timeout=5) as r:
            digest = r.headers.get("Docker-Content-Digest")
        if digest:
            req = urllib.request.Request(f"http://{REGISTRY}/v2/{repository}/manifests/{digest}", method="DELETE")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(req, timeout=5).close()


def test_quickstart_runs_end_to_end_and_rolls_back(project: Project) -> None:
    first = project.git("rev-parse", "HEAD")
    done = project.deployctl("run", "--env", "dev")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert f"is reachable at http://127.0.0.1:{project.port}" in out
    for stage in ("lint", "test", "build", "push", "deploy"):
        assert f"{stage} succeeded" in out, out
    assert project.version() == {"version": "1.0.0", "git_sha": first}

    (project.root / "VERSION").write_text("1.1.0\n")
    second = project.commit("release 1.1.0")
    done = project.deployctl("run", "--env", "dev")
    assert done.returncode == 0, done.stdout + done.stderr
    assert project.version() == {"version": "1.1.0", "git_sha": second}

    done = project.deployctl("rollback", "--env", "dev", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert project.version() == {"version": "1.0.0", "git_sha": first}

    done = project.deployctl("history", "--env", "dev", "--json")
    assert done.returncode == 0, done.stderr
    releases = json.loads(done.stdout)["releases"]
    assert [(r["id"], r["kind"], r["outcome"], r["current"], r["git_sha"]) for r in releases] == [
        ("r3", "rollback", "succeeded", True, first),
        ("r2", "deploy", "succeeded", False, second),
        ("r1", "deploy", "succeeded", False, first),
    ]
    done = project.deployctl("status", "--env", "dev", "--json")
    assert done.returncode == 0, done.stderr
    (api,) = json.loads(done.stdout)["services"]
    assert (api["release"], api["running"], api["healthy"]) == ("r3", 1, 1)


def test_failed_health_check_keeps_the_old_version_serving(project: Project) -> None:
    first = project.git("rev-parse", "HEAD")
    assert project.deployctl("run", "--env", "dev").returncode == 0
    config = (project.root / "deploy.yaml").read_text()
    config = (config.replace('MODEL_LOAD_SECONDS: "1"', 'MODEL_LOAD_SECONDS: "1"\n      FAIL_HEALTH: "1"', 1)
                    .replace("start_period: 10s", "start_period: 2s", 1).replace("retries: 3", "retries: 1", 1))
    (project.root / "deploy.yaml").write_text(config)
    (project.root / "VERSION").write_text("2.0.0\n")
    project.commit("a release that never becomes ready")

    done = project.deployctl("run", "--env", "dev")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "did not become healthy" in out and "keeps serving" in out
    assert "HTTP/1.1 503" in out  # the health-check output, from Docker's health log
    assert project.version() == {"version": "1.0.0", "git_sha": first}

"""Realistic app layouts: `init --yes` → `run --env dev` → healthy, with no hand edit, on the
real dockerd; then a code change deploys with 0 failed requests under a request loop.

Each layout in this directory is copied into a fresh git repository (own app name, local port
and state dir). Builds start FROM python:3.11-slim, the image `scripts/services up` builds
locally; dependencies come from the package index, so the first run of a layout takes
longer than the cached second one. Needs `scripts/services up`: fails, never skips, without it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_quickstart import remove_local_app
from tests.support.ports import free_port

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent
LAYOUTS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
# What each layout must come out as: (health path or None for a TCP check, version path).
EXPECT = {
    "django-app": ("/healthz/", "/version/"),
    "flask-gunicorn": ("/healthz", "/version"),
    "flask-tested": ("/ready", "/version"),
    "flat-fastapi": ("/health", "/version"),
    "multistage-test": ("/health", "/version"),
    "no-health": (None, "/version"),
    "own-dockerfile": ("/health", "/version"),
    "poetry-app": ("/health/ready", "/version"),
    "src-gunicorn": ("/health", "/version"),
    "src-router-gunicorn": ("/api/healthcheck", "/version"),
    "subdir-backend": ("/api/health", "/version"),
    "uv-app": ("/healthz", "/version"),
}
# Layouts whose port is not 8000: init finds it in a gunicorn config file or the Dockerfile's EXPOSE.
PORTS = {"src-gunicorn": 3100, "src-router-gunicorn": 3100, "own-dockerfile": 8080}
RUN_TIMEOUT = 420


class App:
    def __init__(self, layout: str) -> None:
        self.layout = layout
        self.state = Path(tempfile.mkdtemp(prefix="dctl-c-"))
        self.name = f"c-{layout[:12].strip('-')}-{uuid.uuid4().hex[:6]}"
        self.root = self.state / self.name
        shutil.copytree(CORPUS / layout, self.root, ignore=shutil.ignore_patterns("__pycache__"))
        self.port = free_port()
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "DEPLOYCTL_STATE_DIR": str(self.state),
            "DEPLOYCTL_DRAIN": "2",
            "GIT_AUTHOR_NAME": "c", "GIT_AUTHOR_EMAIL": "c@example.invalid",
            "GIT_COMMITTER_NAME": "c", "GIT_COMMITTER_EMAIL": "c@example.invalid",
        }
        for var in ("GITHUB_ACTIONS", "GITHUB_REF_NAME", "GITHUB_HEAD_REF", "OPENAI_API_KEY"):
            self.env.pop(var, None)
        self.git("init", "-q", "-b", "main")
        self.commit("app")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.root, env=self.env, check=True, capture_output=True,
                              text=True).stdout.strip()

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)

    def deployctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "deployctl", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""

    def cleanup(self) -> None:
        remove_local_app(self.root / "deploy.yaml", self.name, self.state)


@pytest.fixture
def app(request: pytest.FixtureRequest) -> App:
    made = App(request.param)
    yield made
    made.cleanup()


def _bump_version(root: Path) -> None:
    for path in root.rglob("*.py"):
        text = path.read_text()
        if 'VERSION = "1"' in text:
            path.write_text(text.replace('VERSION = "1"', 'VERSION = "2"'))
            return
    raise AssertionError("no VERSION in the layout")


def test_every_layout_has_an_expectation() -> None:
    assert set(LAYOUTS) == set(EXPECT) and len(LAYOUTS) >= 9


@pytest.mark.parametrize("app", LAYOUTS, indirect=True)
def test_init_then_run_dev_then_a_change_with_no_failed_requests(app: App) -> None:
    health, version_path = EXPECT[app.layout]
    r = app.deployctl("init", "--yes", "--local-port", str(app.port))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "deployctl run --env dev" in r.stdout.split("Next:")[1].splitlines()[1]
    svc = yaml.safe_load((app.root / "deploy.yaml").read_text())["services"]["api"]
    assert (svc.get("health") or {}).get("path") == health, svc.get("health")
    assert svc["port"] == PORTS.get(app.layout, 8000)
    if svc.get("secrets"):
        # dev's secrets from the git-ignored .env that init told the user about
        assert ".env" in (app.root / ".gitignore").read_text().split()
        (app.root / ".env").write_text("".join(f"{k}=corpus-test-value\n" for k in svc["secrets"]))
    app.commit("deployctl init")

    started = time.monotonic()
    first = app.deployctl("run", "--env", "dev")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    # dev runs on the local engine: its output shows no ECS/Fargate cost
    assert "cost: local Docker engine" in first.stdout and "Fargate" not in first.stdout + first.stderr
    if health:
        assert app.get(health)[0] == 200
    status, body = app.get(version_path)
    assert status == 200 and json.loads(body)["version"] == "1"
    first_seconds = time.monotonic() - started

    _bump_version(app.root)
    app.commit("version 2")
    failures: list[str] = []
    sent = 0
    stop = threading.Event()

    def loop() -> None:
        nonlocal sent
        deadline = time.monotonic() + RUN_TIMEOUT
        while not stop.is_set() and time.monotonic() < deadline:
            sent += 1
            try:
                code, _ = app.get(version_path)
                if code != 200:
                    failures.append(f"HTTP {code}")
            except OSError as exc:
                failures.append(repr(exc))
            time.sleep(0.05)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        second = app.deployctl("run", "--env", "dev")
    finally:
        stop.set()
        t.join(timeout=10)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert sent > 20 and failures == [], f"{len(failures)} of {sent} requests failed: {failures[:5]}"
    status, body = app.get(version_path)
    assert status == 200 and json.loads(body)["version"] == "2"
    print(f"{app.layout}: first run {first_seconds:.0f}s")  # noqa: T201 - shown with -s for the docs


def test_the_dotenv_stays_out_of_the_image_context() -> None:
    patterns = (REPO / "deployctl" / "templates" / "dockerignore.txt").read_text().split()
    for name in (".env", "deploy.yaml", "tests/", "docs/", "infra/"):
        assert name in patterns, name
    assert re.search(r"^\.env$", (REPO / "deployctl" / "templates" / "dockerignore.txt").read_text(), re.M)

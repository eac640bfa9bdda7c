"""A new target is one module and one registry entry.

tests/support/memory_target.py implements deployctl.targets.base.Target in memory; registered
under `memory` (one entry in deployctl.targets.TARGETS), deploy.yaml accepts `target: memory`
and the real `run`, `status`, `history` and `rollback` commands drive it, with the same output
contracts (deployctl.status/v1, deployctl.history/v1, the run report) and exit codes as for
ECS and Docker. The images are real: pushed to the local registry over its HTTP API, so
`run --image` resolves their digests as it would for any target.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from deployctl import cli
from deployctl.targets import TARGETS
from tests.integration.conftest import Registry
from tests.support import memory_target

DEPLOY_YAML = """\
version: 1
app: memapp
region: us-east-1
image:
  repository: memapp
  registry: {registry}
services:
  api:
    port: 8000
    memory: 512
    health: {{path: /health}}
environments:
  dev:
    target: memory
"""


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setitem(TARGETS, "memory", memory_target.ENTRY)
    memory_target.reset()
    yield memory_target.STORE
    memory_target.reset()


def push_image(registry: Registry, repository: str, tag: str, content: bytes) -> str:
    """Push a one-layer image to the real registry (HTTP API v2); its manifest digest."""

    def request(method: str, url: str, body: bytes = b"", content_type: str = "") -> Any:
        req = urllib.request.Request(url if url.startswith("http") else f"http://{registry.host}{url}",
                                     data=body or None, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        return urllib.request.urlopen(req, timeout=10)

    def blob(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with request("POST", f"/v2/{repository}/blobs/uploads/") as resp:
            location = resp.headers["Location"]
        sep = "&" if "?" in location else "?"
        with request("PUT", f"{location}{sep}digest={digest}", data, "application/octet-stream"):
            pass
        return digest

    layer = content
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}
                         }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                   "digest": blob(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "size": len(layer),
                    "digest": blob(layer)}],
    }).encode()
    with request("PUT", f"/v2/{repository}/manifests/{tag}", manifest,
                 "application/vnd.docker.distribution.manifest.v2+json") as resp:
        return str(resp.headers["Docker-Content-Digest"])


def deployctl(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        cli.main(list(args))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


@pytest.fixture
def project(tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "deploy.yaml").write_text(DEPLOY_YAML.format(registry=registry.host))
    monkeypatch.chdir(tmp_path)
    for var in ("GITHUB_ACTIONS", "CI"):
        monkeypatch.delenv(var, raising=False)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init"],
                   cwd=tmp_path, check=True)
    return tmp_path / "deploy.yaml"


def test_a_registered_target_runs_the_whole_lifecycle_through_the_real_commands(
        memory: memory_target.Store, project: Path, registry: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    f = str(project)
    images = {}
    for tag in ("v1", "v2", "v3"):
        digest = push_image(registry, "memapp", tag, f"memapp {tag}".encode())
        images[tag] = f"{registry.host}/memapp@{digest}"
    memory.unhealthy.add(images["v3"])

    # run: two good releases, then one that fails (exit 1, the previous one keeps serving)
    for tag, want in (("v1", 0), ("v2", 0), ("v3", 1)):
        code, out, err = deployctl(capsys, "run", "-f", f, "--env", "dev", "--image", f"{registry.host}/memapp:{tag}",
                                   "--json")
        assert code == want, (tag, out, err)
        report = json.loads(out)
        assert report["outputs"]["image_ref"] == images[tag]
        assert report["outputs"]["release"] == f"m{tag[1]}"

    # status: deployctl.status/v1 from the protocol alone; the failed newest release is named
    code, out, _ = deployctl(capsys, "status", "-f", f, "--env", "dev", "--json")
    doc = json.loads(out)
    assert code == 0 and (doc["schema"], doc["target"], doc["ok"]) == ("deployctl.status/v1", "memory", False)
    assert doc["current"]["id"] == "m2" and doc["services"][0]["rolled_back"].startswith("release m3 (failed)")
    code, _, err = deployctl(capsys, "status", "-f", f, "--env", "dev", "--watch", "--interval", "0.01")
    assert code == 1 and "api: release m3 (failed) is not what runs" in err

    # history: deployctl.history/v1, newest first, the running release marked
    code, out, _ = deployctl(capsys, "history", "-f", f, "--env", "dev", "--json")
    hist = json.loads(out)
    assert code == 0 and hist["schema"] == "deployctl.history/v1"
    assert [(r["id"], r["outcome"], r["current"]) for r in hist["releases"]] == [
        ("m3", "failed", False), ("m2", "succeeded", True), ("m1", "succeeded", False)]
    assert hist["releases"][1]["image_digest"] == images["v2"].rsplit("@", 1)[1]
    code, out, _ = deployctl(capsys, "history", "-f", f, "--env", "dev")
    assert code == 0 and out.splitlines()[-1] == "* = running now" and "* m2" in out

    # rollback: through the stage engine (the runner the command passes in), a new release
    code, out, err = deployctl(capsys, "rollback", "-f", f, "--env", "dev", "--yes", "--json")
    assert code == 0, err
    assert "rollback dev: m2 → m1" in err  # the summary goes to stderr with --json
    report = json.loads(out)
    assert report["outputs"]["release"] == "m4" and report["outputs"]["image_ref"] == images["v1"]
    code, out, _ = deployctl(capsys, "history", "-f", f, "--env", "dev", "--json")
    newest = json.loads(out)["releases"][0]
    assert (newest["id"], newest["kind"], newest["source"], newest["current"]) == ("m4", "rollback", "m1", True)
    code, out, _ = deployctl(capsys, "status", "-f", f, "--env", "dev", "--json")
    assert json.loads(out)["current"]["id"] == "m4" and json.loads(out)["ok"] is True


def test_an_unregistered_target_is_still_refused_by_validate(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = deployctl(capsys, "validate", "-f", str(project))
    assert code == 2
    assert "environments.dev.target: expected 'docker' or 'ecs', got 'memory'" in err

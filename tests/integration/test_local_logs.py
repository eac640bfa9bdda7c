"""`deployctl logs` for a local environment, through the CLI, on the real dockerd: the service
containers' output, oldest first, redacted, per release, and followed until Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import docker
import pytest

from tests.integration.test_local_target import App, app, client, images  # noqa: F401 - fixtures

pytestmark = pytest.mark.docker

# The quickstart's entrypoint, after a line that prints the secret it was given (an app that
# logs its config): logs must mask it.
COMMAND = '["sh", "-c", "echo model token is $MODEL_TOKEN >&2; exec /app/entrypoint"]'


def logs(project: App, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deployctl", "logs", "-f", str(project.root / "deploy.yaml"),
                           "--env", "dev", *args], capture_output=True, text=True, timeout=60, env=dict(os.environ))


def events(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "deployctl.logs/v1" and doc["env"] == "dev"
    return list(doc["events"])


def test_logs_of_a_local_environment(app: App, images: dict[str, str],  # noqa: F811
                                     client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    app.edit("    local_port:", f"    command: {COMMAND}\n    secrets: {{MODEL_TOKEN: quickstart/model-token}}\n"
                                  "    local_port:")
    secret = "tok-" + uuid.uuid4().hex
    monkeypatch.setenv("MODEL_TOKEN", secret)
    report, out = app.deploy(images["1.0.0"], sha="1" * 40)
    assert report.exit_code == 0, out

    found = events(logs(app, "--json"))
    r1 = f"{app.name}-dev-api-r1"
    assert any("quickstart: version 1.0.0" in e["message"] for e in found), found
    assert all(e["service"] == "api" and e["stream"] == r1 for e in found)
    assert [e["timestamp"] for e in found] == sorted(e["timestamp"] for e in found)
    said = next(e["message"] for e in found if e["message"].startswith("model token is"))
    assert secret not in said and "***" in said
    text = logs(app)
    assert text.returncode == 0 and "quickstart: version 1.0.0" in text.stdout and secret not in text.stdout

    report, out = app.deploy(images["2.0.0"], sha="2" * 40)
    assert report.exit_code == 0, out
    now = events(logs(app, "--json"))
    assert any("quickstart: version 2.0.0" in e["message"] for e in now)
    assert {e["stream"] for e in now} == {f"{app.name}-dev-api-r2"}  # r1's container is gone, and its output
    gone = logs(app, "--release", "r1")
    assert gone.returncode == 1 and "no container of release r1 is left in dev" in gone.stderr
    assert {e["stream"] for e in events(logs(app, "--release", "r2", "--json"))} == {f"{app.name}-dev-api-r2"}
    unknown = logs(app, "nosuch")
    assert unknown.returncode == 2 and "no service 'nosuch'" in unknown.stderr

    # --follow prints what arrives, a new request's line included, until Ctrl-C (exit 130).
    follow = subprocess.Popen([sys.executable, "-m", "deployctl", "logs", "-f", str(app.root / "deploy.yaml"),
                               "--env", "dev", "--follow", "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    stop = threading.Timer(30, follow.send_signal, [signal.SIGINT])  # never hang: EOF fails the reads
    stop.start()
    try:
        assert follow.stdout is not None
        first = json.loads(follow.stdout.readline())
        assert first["schema"] == "deployctl.logs.event/v1" and first["service"] == "api"
        container = client.containers.get(f"{app.name}-dev-api-r2")
        container.exec_run(["sh", "-c", "echo marker-line-$MODEL_TOKEN > /proc/1/fd/2"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = json.loads(follow.stdout.readline())
            if line["message"].startswith("marker-line-"):
                assert secret not in line["message"]
                break
        else:
            pytest.fail("the followed logs never showed the new line")
    finally:
        stop.cancel()
        follow.send_signal(signal.SIGINT)
        _, err = follow.communicate(timeout=20)
    assert follow.returncode == 130 and "stopped following the logs of dev" in err

"""Ctrl-C and SIGTERM before the stage engine starts, and errors outside any stage under
GitHub Actions: a person (or CI cancelling a job) must get exit 130 and one line, and CI an
annotation, whichever phase the run is in."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.integration.conftest import FixtureApp

pytestmark = pytest.mark.docker


@pytest.fixture
def silent_registry() -> Iterator[tuple[str, threading.Event]]:
    """A registry that accepts connections and never answers: `--image` resolution hangs on it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    connected, stop, held = threading.Event(), threading.Event(), []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)
            connected.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}", connected
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_resolving_the_image_exits_130_with_one_line(
        fixture_app: FixtureApp, silent_registry: tuple[str, threading.Event], sig: signal.Signals) -> None:
    host, connected = silent_registry
    proc = subprocess.Popen(fixture_app.command("--only", "deploy", "--image", f"{host}/fixture/app:abc"),
                            cwd=fixture_app.path, env=fixture_app.base_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert connected.wait(60), "deployctl never asked the registry"
        time.sleep(0.2)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "interrupted: stopped before the command finished" in err
    assert "Traceback" not in out + err


def test_an_error_outside_any_stage_is_annotated_under_github_actions(fixture_app: FixtureApp,
                                                                       tmp_path) -> None:
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(outputs)}
    result = fixture_app.run("--only", "deploy", "--image", "127.0.0.1:1/fixture/app:nope", env=env)
    assert result.code == 1, result.output
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    assert len(annotations) == 1, result.output
    assert annotations[0].startswith("::error title=deployctl::cannot reach the registry")

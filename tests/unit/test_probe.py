"""The health probe script both targets run (deployctl.render.probe), run for real by /bin/sh
against a local HTTP server, with a PATH holding only the tools an image would have."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deployctl.render.probe import NO_TOOL, command_probe, http_probe, http_probe_script

HITS: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        HITS.append(self.path)
        self.send_response(200 if self.path == "/ok" else 500)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()


def _image_path(tmp_path: Path, tools: dict[str, str]) -> str:
    """A bin directory with only `tools` (name → program on this host), like a slim image's."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, program in tools.items():
        (bindir / name).symlink_to(program)
    return str(bindir)


def _probe(path: str, port: int, url_path: str) -> subprocess.CompletedProcess[str]:
    script = http_probe_script(f"http://127.0.0.1:{port}{url_path}", 2)
    return subprocess.run(["/bin/sh", "-c", script], env={"PATH": path}, capture_output=True, text=True,
                          timeout=30, check=False)


def _needs(program: str) -> str:
    found = shutil.which(program)
    assert found, f"{program} is part of this machine's test setup"
    return found


def test_python_alone_is_enough_and_its_error_is_one_line(tmp_path: Path, server: int) -> None:
    path = _image_path(tmp_path, {"python3": sys.executable})
    assert _probe(path, server, "/ok").returncode == 0
    bad = _probe(path, server, "/bad")
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[0] == (f"GET http://127.0.0.1:{server}/bad: HTTP Error 500: "
                                          "Internal Server Error")
    assert "Traceback" not in bad.stdout + bad.stderr


def test_curl_is_used_when_there_is_no_wget(tmp_path: Path, server: int) -> None:
    path = _image_path(tmp_path, {"curl": _needs("curl"), "python3": sys.executable})
    assert _probe(path, server, "/ok").returncode == 0
    bad = _probe(path, server, "/bad")
    assert bad.returncode == 1 and bad.stdout.startswith("curl: (22)") and "500" in bad.stdout


def test_busybox_wget_comes_first_and_makes_the_only_request(tmp_path: Path, server: int) -> None:
    path = _image_path(tmp_path, {"wget": _needs("busybox"), "curl": _needs("curl"), "python3": sys.executable})
    HITS.clear()
    bad = _probe(path, server, "/bad")
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[0].startswith("wget: server returned error: HTTP/1.") and "500" in bad.stdout
    assert HITS == ["/bad"]  # a failed wget is not tried again with curl or python


def test_a_silent_gnu_wget_failure_still_says_what_failed(tmp_path: Path, server: int) -> None:
    path = _image_path(tmp_path, {"wget": _needs("wget")})
    bad = _probe(path, server, "/bad")
    assert bad.returncode == 1
    assert f"GET http://127.0.0.1:{server}/bad failed (wget exit 8)" in bad.stdout


def test_no_http_client_at_all_is_said_first(tmp_path: Path, server: int) -> None:
    path = _image_path(tmp_path, {})
    bad = _probe(path, server, "/ok")
    assert bad.returncode == 1 and bad.stdout.startswith(NO_TOOL)
    assert "health.command" in bad.stdout


def test_the_url_is_quoted_for_the_shell(tmp_path: Path, server: int) -> None:
    path = _image_path(tmp_path, {"python3": sys.executable})
    marker = tmp_path / "pwned"
    result = _probe(path, server, f"/ok?a=1&b=$(touch {marker})")
    assert result.returncode == 1 and not marker.exists()  # /ok?… answers 500 here; nothing ran


def test_the_shapes_docker_and_ecs_take() -> None:
    test = http_probe(8000, "/health", 5)
    assert test[0] == "CMD-SHELL" and len(test) == 2 and "http://127.0.0.1:8000/health" in test[1]
    assert command_probe("pgrep cron") == ["CMD-SHELL", "pgrep cron"]
    assert command_probe(["/bin/check", "--ready"]) == ["CMD", "/bin/check", "--ready"]

"""The image check streams the whole image (`docker save`) once per image, not once per run.

For a multi-gigabyte model image that export is most of a rebuild-free `run`; the result is kept
per image id (a content digest) in the cache directory, before `allow_secret_files` applies.
Real dockerd: the image is built from the local python:3.11-slim.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from deployctl.stages.context_check import SecretsRefused
from deployctl.stages.image_check import check_image

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
KEY = "root/.ssh/id_rsa"


class ExportCounter:
    """The engine client as deployctl gets it, counting image exports (`docker save`)."""

    def __init__(self, client: Any) -> None:
        self.client, self.exports = client, 0
        counter = self

        class Api:
            def __getattr__(self, name: str) -> Any:
                return getattr(counter.client.api, name)

            def get_image(self, *args: Any, **kwargs: Any) -> Any:
                counter.exports += 1
                return counter.client.api.get_image(*args, **kwargs)

        self.api = Api()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.fixture
def image(docker_engine: Any, unique_name: Any) -> Any:
    """An image with a private-key-looking file written by a RUN step, and its tag."""
    dockerfile = f"FROM python:3.11-slim\nRUN mkdir -p /root/.ssh && echo not-a-key > /{KEY}\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    tag = f"{unique_name('imgcheck')}:1"
    docker_engine.images.build(fileobj=buf, custom_context=True, tag=tag, rm=True)
    yield tag
    docker_engine.images.remove(tag, noprune=True)


def _check_in_a_new_process(tag: str, cache: Path, allowed: list[str]) -> dict[str, Any]:
    script = (
        "import json, sys\n"
        "from deployctl.adapters import engine\n"
        "from deployctl.stages.context_check import SecretsRefused\n"
        "from deployctl.stages.image_check import check_image\n"
        "from tests.integration.test_image_check_cache import ExportCounter\n"
        "client = ExportCounter(engine.connect())\n"
        "try:\n"
        "    check_image(client, sys.argv[1], json.loads(sys.argv[2]))\n"
        "    refused = ''\n"
        "except SecretsRefused as exc:\n"
        "    refused = exc.message\n"
        "print(json.dumps({'exports': client.exports, 'refused': refused}))\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script, tag, json.dumps(allowed)], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_an_image_is_exported_once_and_its_findings_still_honour_the_allow_list(
        image: str, docker_engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = _check_in_a_new_process(image, cache, [f"/{KEY}"])
    assert first == {"exports": 1, "refused": ""}
    # Another run (a new process) with the same image: no export, the same verdict.
    again = _check_in_a_new_process(image, cache, [f"/{KEY}"])
    assert again == {"exports": 0, "refused": ""}
    # The kept findings are from before the allow list: without it, the file is refused, still
    # without an export.
    strict = _check_in_a_new_process(image, cache, [])
    assert strict["exports"] == 0 and f"/{KEY} (" in strict["refused"], strict
    # Without the cache (another user, a cleared cache) the image is read again.
    assert _check_in_a_new_process(image, tmp_path / "other", [])["exports"] == 1

    # The same in one process: the allow list applies to each call.
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    client = ExportCounter(docker_engine)
    check_image(client, image, [f"/{KEY}"])
    with pytest.raises(SecretsRefused, match="id_rsa"):
        check_image(client, image, [])
    assert client.exports == 0


def test_a_changed_image_under_the_same_tag_is_read_again(
        image: str, docker_engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    client = ExportCounter(docker_engine)
    with pytest.raises(SecretsRefused):
        check_image(client, image, [])
    # The tag now names an image without the file (another build moved it): a new image id.
    clean = docker_engine.images.build(
        fileobj=io.BytesIO(b"FROM python:3.11-slim\nRUN echo clean > /clean\n"), tag=image, rm=True)[0]
    check_image(client, image, [])
    assert client.exports == 2 and clean.id
    cached = list(tmp_path.glob("deployctl/image-checks/*/*.json"))
    assert len(cached) == 2 and all(json.loads(p.read_text()).keys() == {"history", "layers"} for p in cached)

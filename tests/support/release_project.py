"""A committed chat-api project with staging and prod (promoted from staging) environments,
and `deployctl` run in this process against it: the `project` fixture of the release tests
(promote, rollback, status, history, lock) in tests/integration/conftest.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import git
from tests.support.aws_world import PROD_CLUSTER, World, base_config


def project_config(world: World) -> dict[str, Any]:
    doc = base_config(world)
    doc["deploy"]["poll_interval"] = "50ms"
    doc["deploy"]["timeout"] = "30s"
    staging = doc["environments"]["staging"]
    doc["environments"]["prod"] = {**json.loads(json.dumps(staging)), "cluster": PROD_CLUSTER,
                                   "promote_from": "staging"}
    # prod's own settings: more tasks than staging.
    doc["environments"]["prod"]["services"] = {"api": {"count": 3}}
    return doc


def committed_project(tmp_path: Path, world: World) -> Path:
    """A git checkout holding the project's deploy.yaml, committed: what `deployctl` runs in."""
    path = tmp_path / "app"
    path.mkdir()
    (path / "deploy.yaml").write_text(yaml.safe_dump(project_config(world), sort_keys=False))
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "app")
    return path


@dataclass
class Cli:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def json(self) -> Any:
        return json.loads(self.out)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Cli:
    """`deployctl ARGS` in this process: exit code, stdout, stderr."""
    from deployctl.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([*args])
    captured = capsys.readouterr()
    return Cli(int(exit_info.value.code or 0), captured.out, captured.err)


@dataclass
class Project:
    path: Path
    world: World
    capsys: pytest.CaptureFixture[str]

    @property
    def file(self) -> str:
        return str(self.path / "deploy.yaml")

    def cli(self, *args: str) -> Cli:
        return cli(self.capsys, *args)

    def run(self, env: str, image: str, *extra: str) -> Cli:
        return self.cli("run", "-f", self.file, "--env", env, "--image", image, *extra)

    def history(self, env: str = "staging", *extra: str) -> list[dict[str, Any]]:
        res = self.cli("history", "-f", self.file, "--env", env, "--json", *extra)
        assert res.code == 0, res.text
        return list(res.json()["releases"])

    def deployed(self, env: str, tag: str) -> tuple[str, str]:
        """Push image `tag` and deploy it to `env`; returns (image ref, release id)."""
        ref = self.world.push(tag)
        res = self.run(env, ref)
        assert res.code == 0, res.text
        return ref, self.history(env)[0]["id"]

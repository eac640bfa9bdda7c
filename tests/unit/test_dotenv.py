"""The project's .env gives the local (docker) target its services' secrets; the shell wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.commands.common import load
from deployctl.config import dotenv
from deployctl.errors import PreflightFailed
from deployctl.targets import docker, for_config

DEPLOY_YAML = """version: 1
app: envapp
region: us-east-1
image: {repository: envapp, registry: "localhost:5000"}
services:
  api:
    port: 8000
    health: {path: /health}
    secrets: {OPENAI_API_KEY: envapp/openai, HF_TOKEN: envapp/hf}
environments:
  dev: {target: docker}
  staging:
    target: ecs
    cluster: c
    network: {subnets: [subnet-1], security_groups: [sg-1]}
    roles: {execution: "arn:aws:iam::123456789012:role/e", task: "arn:aws:iam::123456789012:role/t"}
"""


def test_parse() -> None:
    text = "# c\nexport A=1\nB='two words'\nC=\"x # y\"\nD=v # comment\nnot a line\n1BAD=x\n"
    assert dotenv.parse(text) == {"A": "1", "B": "two words", "C": "x # y", "D": "v"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "deploy.yaml").write_text(DEPLOY_YAML)
    yield tmp_path
    dotenv.project_file = None


def test_dev_secrets_from_dotenv_under_the_shell(project: Path) -> None:
    (project / ".env").write_text("OPENAI_API_KEY=from-file\nHF_TOKEN=hf-from-file\n")
    cfg = load(str(project / "deploy.yaml"), "dev")
    assert dotenv.project_file == project / ".env"
    secrets = docker.local_secrets(cfg, {"HF_TOKEN": "hf-from-shell"})
    assert secrets["api"] == {"OPENAI_API_KEY": "from-file", "HF_TOKEN": "hf-from-shell"}
    assert sorted(docker.local_secret_values(cfg, {})) == ["from-file", "hf-from-file"]  # redacted too


def test_missing_secret_names_the_dotenv(project: Path) -> None:
    (project / ".env").write_text("OPENAI_API_KEY=from-file\n")
    cfg = load(str(project / "deploy.yaml"), "dev")
    with pytest.raises(PreflightFailed) as err:
        docker.local_secrets(cfg, {})
    assert "HF_TOKEN" in str(err.value) and "OPENAI_API_KEY" not in str(err.value).split("not set:")[1]
    assert ".env" in (err.value.hint or "")


def test_remote_targets_never_read_it(project: Path) -> None:
    (project / ".env").write_text("OPENAI_API_KEY=from-file\n")
    cfg = load(str(project / "deploy.yaml"), "staging")
    assert "from-file" not in for_config(cfg).secret_values({})

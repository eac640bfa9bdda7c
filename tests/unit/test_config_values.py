"""What validate says about values: never a ${VAR}'s value, never a registry password, never a
raw escape sequence; and what it refuses before a build could read it (issue 12, sections 4 and 9).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_config_errors import ROOT, clean_env, run_cli, run_main

TOKEN = "ghp_R3allyS3cretT0kenValue0123456789abcd"
PASSWORD = "hunter2-s3cret"

BASE = """\
version: 1
app: chat-api
region: us-east-1
image: {{repository: chat-api, registry: {registry}}}
services:
  api:
    port: 8000
    health: {{path: /health}}
    local_port: {port}
environments:
  dev: {{target: docker}}
"""


def write(tmp_path: Path, *, port: str = "8080", registry: str = "localhost:5000") -> Path:
    path = tmp_path / "deploy.yaml"
    path.write_text(BASE.format(port=port, registry=registry), encoding="utf-8")
    return path


@pytest.mark.parametrize("github", [False, True], ids=["terminal", "github-annotation"])
def test_an_error_about_an_interpolated_value_names_the_variable(tmp_path: Path, github: bool) -> None:
    path = write(tmp_path, port='"${PORT}"')
    env = clean_env(PORT=TOKEN, **({"GITHUB_ACTIONS": "true"} if github else {}))
    result = run_cli("validate", "-f", str(path), env=env)
    output = result.stdout + result.stderr
    assert result.code == 2, output
    assert TOKEN not in output and TOKEN[:12] not in output
    expected = "services.api.local_port: expected a whole number, got the value of ${PORT}"
    assert f"{path}:9:17: {expected}" in result.stderr
    if github:
        [annotation] = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
        assert f"line=9,col=17::{expected}" in annotation


def test_a_value_built_from_several_variables_names_them_all(tmp_path: Path) -> None:
    path = write(tmp_path, port='"${PORT_PREFIX}${PORT}"')
    result = run_cli("validate", "-f", str(path), env=clean_env(PORT_PREFIX="80", PORT=TOKEN))
    assert result.code == 2
    assert TOKEN not in result.stderr
    assert "services.api.local_port: expected a whole number, got the value built from ${PORT_PREFIX} " \
           "and ${PORT}" in result.stderr


def test_a_value_inside_a_sentence_is_named_too(tmp_path: Path) -> None:
    # The Fargate message puts the value mid-sentence ("memory 1234567 MiB is not allowed…").
    path = tmp_path / "deploy.yaml"
    path.write_text(BASE.format(port="8080", registry="localhost:5000").replace(
        "    local_port: 8080\n", "    local_port: 8080\n    cpu: 512\n    memory: ${MEMORY}\n"), encoding="utf-8")
    result = run_cli("validate", "-f", str(path), env=clean_env(MEMORY="1234567"))
    assert result.code == 2
    assert "1234567" not in result.stderr
    assert "services.api.memory: memory the value of ${MEMORY} MiB is not allowed with cpu 512" in result.stderr


@pytest.mark.parametrize("registry", [
    f"https://deploy:{PASSWORD}@registry.example.com",
    f"deploy:{PASSWORD}@registry.example.com:5000",
    f"{PASSWORD}@localhost:5000",
    f"HTTPS://deploy:{PASSWORD}@registry.example.com/team",
])
def test_credentials_in_the_registry_are_refused_and_never_echoed(tmp_path: Path, registry: str) -> None:
    path = write(tmp_path, registry=f'"{registry}"')
    for command in (["validate"], ["config", "--env", "dev"], ["plan", "--env", "dev", "--json"]):
        result = run_cli(*command, "-f", str(path), env=clean_env(GITHUB_ACTIONS="true"))
        output = result.stdout + result.stderr
        assert result.code == 2, (command, output)
        assert PASSWORD not in output
        assert "image.registry: must not hold credentials" in result.stderr
        assert "docker login" in result.stderr


def test_a_registry_password_from_a_variable_is_refused_without_echo(tmp_path: Path) -> None:
    path = write(tmp_path, registry='"deploy:${REGISTRY_PASSWORD}@registry.example.com"')
    result = run_cli("validate", "-f", str(path), env=clean_env(REGISTRY_PASSWORD=PASSWORD))
    assert result.code == 2
    assert PASSWORD not in result.stdout + result.stderr
    assert "must not hold credentials" in result.stderr


def test_escape_sequences_never_reach_the_terminal_raw(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(BASE.format(port="8080", registry="localhost:5000").replace(
        "region: us-east-1", 'region: "\\e]0;pwned\\a\\e[2J\\u202e"').replace(
        "  dev: {target: docker}", '  "\\e[31mdev": {target: docker}'), encoding="utf-8")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    result = run_main(["validate", "-f", str(path)], capsys)
    output = result.stdout + result.stderr
    assert result.code == 2, output
    assert "\x1b" not in output and "\x07" not in output and "\u202e" not in output
    assert "region: expected an AWS region name such as us-east-1 or eu-west-2, got " \
           "'\\x1b]0;pwned\\x07\\x1b[2J\\u202e'" in output
    assert "environments.\\x1b[31mdev: '\\x1b[31mdev' is not a valid environment name" in output


def test_the_build_never_reads_a_dockerfile_outside_the_context(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # `run` loads the config the way validate does: refused before any stage, nothing echoed.
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").symlink_to("/etc/passwd")
    path = write(tmp_path)
    path.write_text(path.read_text().replace("registry: localhost:5000", "registry: localhost:5000, context: app"))
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.chdir(tmp_path)
    for args in (["run", "--env", "dev", "--only", "build"], ["validate"]):
        result = run_main([*args, "-f", str(path)], capsys)
        output = result.stdout + result.stderr
        assert result.code == 2, output
        assert "root:" not in output
        assert "image.dockerfile: the Dockerfile must be inside the build context" in output


def test_the_reference_config_still_validates() -> None:
    result = run_cli("validate", "-f", str(ROOT / "deploy.yaml"))
    assert result.code == 0, result.stderr

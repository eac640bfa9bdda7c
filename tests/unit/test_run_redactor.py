"""`deployctl run`'s redactor knows every secret value the run can know before any stage runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployctl.app.run import run_redactor as _redactor
from deployctl.config import load_env, read
from deployctl.config.model import ResolvedConfig

CONFIG = """\
version: 1
app: demo
region: us-east-1
image: {repository: demo, registry: "127.0.0.1:5000"}
stages:
  lint: {run: ["echo $MODEL_API_KEY"]}
services:
  api:
    port: 8000
    secrets: {MODEL_API_KEY: demo/model-api-key}
  worker:
    port: 8001
    secrets: {QUEUE_TOKEN: demo/queue-token, UNSET_SECRET: demo/unset}
environments:
  dev:
    target: docker
  staging:
    target: ecs
    cluster: demo
    network: {subnets: [subnet-0123456789abcdef0]}
    roles: {execution: "arn:aws:iam::123456789012:role/exec"}
"""

ENVIRON = {"MODEL_API_KEY": "mdl-7Qx93kZpW2", "QUEUE_TOKEN": "q-81hf62ndk",
           "DEPLOYCTL_REGISTRY_PASSWORD": "regpass-55"}


def load(tmp_path: Path, env: str) -> ResolvedConfig:
    path = tmp_path / "deploy.yaml"
    path.write_text(CONFIG)
    return load_env(read(str(path)), env)


def test_local_target_service_secrets_are_known_before_any_stage(tmp_path: Path) -> None:
    redactor = _redactor(load(tmp_path, "dev"), ENVIRON)
    line = "lint sees mdl-7Qx93kZpW2 and q-81hf62ndk and regpass-55"
    # redact_known: only registered values, no shape heuristics, so this proves registration.
    assert redactor.redact_known(line) == "lint sees *** and *** and ***"


def test_a_missing_local_secret_is_not_an_error_here(tmp_path: Path) -> None:
    # The deploy's preflight names missing secrets; the redactor just knows what is set.
    redactor = _redactor(load(tmp_path, "dev"), {"MODEL_API_KEY": "mdl-7Qx93kZpW2"})
    assert redactor.redact_known("mdl-7Qx93kZpW2 q-81hf62ndk") == "*** q-81hf62ndk"


def test_ecs_target_secrets_are_never_read_from_the_environment(tmp_path: Path) -> None:
    # On ECS secrets come from Secrets Manager by reference: the shell's variables are not them.
    redactor = _redactor(load(tmp_path, "staging"), ENVIRON)
    assert redactor.redact_known("mdl-7Qx93kZpW2 regpass-55") == "mdl-7Qx93kZpW2 ***"


def test_without_a_config_only_the_registry_password_is_known() -> None:
    assert _redactor(None, ENVIRON).redact_known("mdl-7Qx93kZpW2 regpass-55") == "mdl-7Qx93kZpW2 ***"


def test_registry_credentials_from_the_environment_mask_their_base64_pair() -> None:
    import base64

    environ = {"DEPLOYCTL_REGISTRY_USERNAME": "ci", "DEPLOYCTL_REGISTRY_PASSWORD": "regpass-55"}
    auth = base64.b64encode(b"ci:regpass-55").decode()
    assert _redactor(None, environ).redact_known(f"auth: {auth}") == "auth: ***"


def test_docker_login_credentials_reach_the_redactor_with_their_username(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from deployctl.app import run as run_cmd

    # A `docker login` to the registry, in the Docker CLI's config file deployctl reads.
    login = base64.b64encode(b"bob:pw-from-login").decode()
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"auths": {"127.0.0.1:5001": {"auth": login}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    redactor = _redactor(None, {})
    access = run_cmd.registry_access(load(tmp_path, "dev"), "127.0.0.1:5001", None, redactor)
    assert access.credentials() == ("bob", "pw-from-login")
    auth = base64.b64encode(b"bob:pw-from-login").decode()
    assert redactor.redact_known(f'"auth": "{auth}" pw-from-login') == '"auth": "***" ***'

"""`deployctl run --build-arg`: laid over image.build_args, never a secret, values never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.config import load_env, read
from deployctl.config.model import ResolvedConfig
from deployctl.errors import UsageError
from deployctl.stages.build import with_build_args
from deployctl.stages.context_check import SecretsRefused


def _cfg(tmp_path: Path) -> ResolvedConfig:
    (tmp_path / "deploy.yaml").write_text(
        "version: 1\napp: a\nregion: us-east-1\n"
        "image: {repository: a, build_args: {PY: '3.11', MODE: prod}}\n"
        "services: {api: {port: 8000}}\nenvironments: {dev: {target: docker}}\n")
    return load_env(read(tmp_path / "deploy.yaml"), "dev")


def test_flags_override_and_extend_the_configured_build_args(tmp_path: Path) -> None:
    cfg = with_build_args(_cfg(tmp_path), ["MODE=dev", "PIP_INDEX_URL=https://pypi.internal.example/simple",
                                           "EXTRA="], {})
    assert cfg.image.build_args == {"PY": "3.11", "MODE": "dev", "EXTRA": "",
                                    "PIP_INDEX_URL": "https://pypi.internal.example/simple"}


def test_a_name_alone_takes_its_value_from_the_environment(tmp_path: Path) -> None:
    cfg = with_build_args(_cfg(tmp_path), ["PIP_CERT"], {"PIP_CERT": "/etc/ssl/corp-ca.pem"})
    assert cfg.image.build_args["PIP_CERT"] == "/etc/ssl/corp-ca.pem"
    with pytest.raises(UsageError, match=r"--build-arg HTTP_PROXY: no value given and \$HTTP_PROXY is not set"):
        with_build_args(_cfg(tmp_path), ["HTTP_PROXY"], {})


@pytest.mark.parametrize("pair", [
    "PIP_INDEX_URL=https://deploy:s3cr3t-Passw0rd@pypi.internal.example/simple",  # credentials in a URL
    "NPM_TOKEN=abc123def456",  # a secret by name
    "HF=hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",  # a token by shape
])
def test_secret_looking_args_are_refused_pointing_to_build_secrets(tmp_path: Path, pair: str) -> None:
    with pytest.raises(SecretsRefused) as info:
        with_build_args(_cfg(tmp_path), [pair], {})
    err = info.value
    assert err.exit_code == 2
    name, value = pair.split("=", 1)
    assert f"refused: {name} (" in err.message and "docs/build-secrets.md" in (err.hint or "")
    assert value not in err.message + (err.hint or "")


def test_a_malformed_pair_is_a_usage_error_without_its_text(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        with_build_args(_cfg(tmp_path), ["OK=1", "-bad=sk-live-secret"], {})
    assert "--build-arg #2: expected NAME=VALUE" in info.value.message
    assert "sk-live-secret" not in info.value.message

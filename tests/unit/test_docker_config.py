"""Registry credentials from the Docker CLI config, read the way `docker login` wrote them.

Credential helpers here are real executables on PATH speaking the helper protocol
(`docker-credential-<name> get`, server on stdin, JSON on stdout).
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from deployctl.adapters import docker_config
from deployctl.errors import ExternalError


def write_config(home: Path, config: object) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps(config))
    return {"DOCKER_CONFIG": str(home), "PATH": os.environ.get("PATH", "")}


def helper(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_docker_login_entries_are_found_whatever_form_the_server_key_has(tmp_path: Path) -> None:
    env = write_config(tmp_path / "d", {"auths": {
        "https://registry.example:5001/v2/": {"auth": b64("deployctl:s3cret:with-colon")},
        "other.example": {"username": "u", "password": "p"},
    }})
    assert docker_config.credentials("registry.example:5001", env) == ("deployctl", "s3cret:with-colon")
    assert docker_config.credentials("OTHER.example", env) == ("u", "p")
    assert docker_config.credentials("unknown.example", env) is None


def test_a_missing_or_broken_config_means_no_credentials(tmp_path: Path) -> None:
    assert docker_config.credentials("r.example", {"DOCKER_CONFIG": str(tmp_path / "none")}) is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    assert docker_config.credentials("r.example", {"DOCKER_CONFIG": str(tmp_path / "bad")}) is None
    env = write_config(tmp_path / "garbled", {"auths": {"r.example": {"auth": "%%%not-base64"}}})
    assert docker_config.credentials("r.example", env) is None


def test_a_credential_helper_answers_for_its_registry(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    helper(bin_dir, "vault", 'read server\n'
           'if [ "$1" = get ] && [ "$server" = r.example ]; then\n'
           '  echo \'{"ServerURL":"r.example","Username":"ci","Secret":"from-helper"}\'; exit 0\n'
           'fi\necho "credentials not found in native keychain"; exit 1\n')
    env = write_config(tmp_path / "d", {"credHelpers": {"r.example": "vault"},
                                        "auths": {"r.example": {"auth": b64("old:stale")},
                                                  "s.example": {"auth": b64("s:file")}}})
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    assert docker_config.credentials("r.example", env) == ("ci", "from-helper")
    assert docker_config.credentials("s.example", env) == ("s", "file")  # no helper for this host


def test_a_store_without_the_entry_falls_back_to_the_file(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    helper(bin_dir, "desktop", 'cat >/dev/null; echo "credentials not found in native keychain"; exit 1\n')
    env = write_config(tmp_path / "d", {"credsStore": "desktop", "auths": {"r.example": {"auth": b64("a:b")}}})
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    assert docker_config.credentials("r.example", env) == ("a", "b")


def test_a_helper_that_is_missing_or_broken_is_a_clear_error(tmp_path: Path) -> None:
    env = write_config(tmp_path / "d", {"credsStore": "nosuchhelper"})
    with pytest.raises(ExternalError, match="docker-credential-nosuchhelper is not on PATH"):
        docker_config.credentials("r.example", env)
    bin_dir = tmp_path / "bin"
    helper(bin_dir, "broken", 'cat >/dev/null; echo "keychain locked" >&2; exit 3\n')
    env = write_config(tmp_path / "e", {"credsStore": "broken"})
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    with pytest.raises(ExternalError, match="keychain locked"):
        docker_config.credentials("r.example", env)


def test_docker_hub_credentials_are_found_under_the_v1_index_key(tmp_path: Path) -> None:
    env = write_config(tmp_path / "d", {"auths": {"https://index.docker.io/v1/": {"auth": b64("hubuser:hubpass")}}})
    for name in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert docker_config.credentials(name, env) == ("hubuser", "hubpass")
    bin_dir = tmp_path / "bin"
    helper(bin_dir, "hub", 'read server\n[ "$server" = "https://index.docker.io/v1/" ] || '
           '{ echo "credentials not found in native keychain"; exit 1; }\n'
           'echo \'{"Username":"fromstore","Secret":"hubtoken"}\'\n')
    env = write_config(tmp_path / "e", {"credsStore": "hub"})
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    assert docker_config.credentials("docker.io", env) == ("fromstore", "hubtoken")


def test_identity_tokens_are_not_sent_as_passwords(tmp_path: Path) -> None:
    # `docker login` to an OAuth registry stores `user:` plus a refresh token, not a password.
    env = write_config(tmp_path / "d", {"auths": {"acr.example": {"auth": b64("00000000-user:"),
                                                                  "identitytoken": "refresh-token"}}})
    assert docker_config.credentials("acr.example", env) is None
    bin_dir = tmp_path / "bin"
    helper(bin_dir, "oauth", 'cat >/dev/null; echo \'{"Username":"<token>","Secret":"refresh-token"}\'\n')
    env = write_config(tmp_path / "e", {"credsStore": "oauth"})
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    assert docker_config.credentials("acr.example", env) is None


def test_an_empty_cred_helper_opts_a_host_out_of_the_store(tmp_path: Path) -> None:
    env = write_config(tmp_path / "d", {"credsStore": "nosuchhelper", "credHelpers": {"r.example": ""},
                                        "auths": {"r.example": {"auth": b64("file:user")}}})
    assert docker_config.credentials("r.example", env) == ("file", "user")  # the store is never run


def test_odd_helpers_and_entries_are_clear_errors_not_tracebacks(tmp_path: Path) -> None:
    env = write_config(tmp_path / "d", {"auths": {"r.example": {"auth": "bm9uLWFzY2lp4pyT"}}})
    assert docker_config.credentials("r.example", env) is None  # "non-ascii✓", no colon
    env = write_config(tmp_path / "d2", {"auths": {"r.example": {"auth": "ünïcode"}}})
    assert docker_config.credentials("r.example", env) is None
    bin_dir = tmp_path / "bin"
    helper(bin_dir, "list", "cat >/dev/null; echo '[1, 2]'\n")
    helper(bin_dir, "leaky", 'cat >/dev/null; echo \'{"Username":"u","Secret":"hunter2-secret"}\'; exit 2\n')
    (bin_dir / "docker-credential-noexec").write_text("#!/bin/sh\necho {}\n")  # not executable
    for name, expected in (("list", "other than a JSON object"), ("leaky", "failed for r.example: exit 2"),
                           ("noexec", "cannot run the credential helper")):
        env = write_config(tmp_path / name, {"credsStore": name})
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
        with pytest.raises(ExternalError, match=expected) as caught:
            docker_config.credentials("r.example", env)
        assert "hunter2-secret" not in str(caught.value.message)

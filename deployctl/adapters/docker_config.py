"""Registry credentials from the Docker CLI's config (`docker login`), without the docker SDK.

The skip path asks the registry whether this commit's image is already there; that must not
cost the ~0.2 s import of the docker SDK (and requests) when no daemon is needed at all.
The lookup is docker-py's, which pushes use: `credHelpers[host]`, else `credsStore`, answered
by `docker-credential-<name> get`; when the helper has nothing, the `auths` entry of the file.
Pushes still go through the engine, which sends the daemon the same config's entry.

Identity tokens (OAuth2 refresh tokens some registries hand `docker login`) are not a
password: they are skipped, as docker-py skips them, rather than sent as Basic auth.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path

from deployctl.adapters import shell
from deployctl.errors import ExternalError

Credentials = tuple[str, str]
_HELPER_TIMEOUT_S = 30.0
# Docker Hub's credentials live under the v1 index URL whatever name the image uses.
_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_HUB_KEY = "https://index.docker.io/v1/"
_IDENTITY_TOKEN_USER = "<token>"


def config_path(env: Mapping[str, str] = os.environ) -> Path | None:
    base = env.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    try:
        return Path.home() / ".docker" / "config.json"
    except RuntimeError:  # no HOME and no passwd entry (an arbitrary-UID container)
        return None


def host_of(server: str) -> str:
    """`https://host:5000/v2/` and `host:5000` both name `host:5000` (docker normalises alike);
    every name of Docker Hub is `index.docker.io`."""
    host = server.split("://", 1)[-1].split("/", 1)[0].lower()
    return "index.docker.io" if host in _HUB_NAMES else host


def credentials(registry: str, env: Mapping[str, str] = os.environ) -> Credentials | None:
    """(username, secret) for `registry`, or None when the config has none.

    A config that cannot be read or parsed counts as none (docker itself would then push
    anonymously); a credential helper that fails is an error, because guessing past it
    would hide a broken login.
    """
    path = config_path(env)
    try:
        config = json.loads(path.read_text()) if path else None
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    host = host_of(registry)
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict) and any(host_of(str(k)) == host for k in helpers):
        # An entry of "" is how a host opts out of credsStore: the file then answers.
        helper = next(v for k, v in helpers.items() if host_of(str(k)) == host)
    else:
        helper = config.get("credsStore")
    if isinstance(helper, str) and helper:
        found = _from_helper(helper, host, env)
        if found:
            return found
    return _from_auths(config.get("auths"), host)


def _from_auths(auths: object, host: str) -> Credentials | None:
    if not isinstance(auths, dict):
        return None
    for server, entry in auths.items():
        if not isinstance(entry, dict) or host_of(str(server)) != host:
            continue
        if entry.get("auth"):
            try:
                user, sep, secret = base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
            except ValueError:  # not base64, or not UTF-8 inside (both ValueError subclasses)
                return None
            # `docker login` to an identity-token registry stores `user:` and the token apart.
            return (user, secret) if sep and user and secret else None
        if entry.get("username") and entry.get("password"):
            return str(entry["username"]), str(entry["password"])
    return None


def _from_helper(name: str, host: str, env: Mapping[str, str]) -> Credentials | None:
    program = f"docker-credential-{name}"
    servers = (_HUB_KEY,) if host == "index.docker.io" else (host, f"https://{host}")
    for server in servers:  # helpers store whichever form `docker login` used
        try:
            code, out, err = shell.run_capture([program, "get"], _HELPER_TIMEOUT_S, env=env, stdin=server)
        except FileNotFoundError:
            raise ExternalError(f"the docker config names the credential helper {name!r}, but {program} "
                                "is not on PATH",
                                hint="install the helper, or remove credsStore/credHelpers from "
                                     f"{config_path(env)}") from None
        except TimeoutError:
            raise ExternalError(f"{program} did not answer within {_HELPER_TIMEOUT_S:.0f}s") from None
        except OSError as exc:  # not executable, no interpreter line, ...
            raise ExternalError(f"cannot run the credential helper {program}: {exc.strerror or exc}") from None
        if code != 0:
            if "credentials not found" in (out + err).lower():
                continue
            raise ExternalError(f"{program} failed for {host}: {_first_line(err, out) or f'exit {code}'}")
        try:
            data = json.loads(out)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ExternalError(f"{program} answered with something other than a JSON object")
        user, secret = data.get("Username"), data.get("Secret")
        if user == _IDENTITY_TOKEN_USER:
            return None  # a refresh token, not a password (see the module docstring)
        if user and secret:
            return str(user), str(secret)
    return None


def _first_line(err: str, out: str) -> str:
    """The helper's own reason, for the error message. Helpers report errors on stdout too;
    a line that looks like JSON may hold the credentials themselves, so it is never quoted."""
    for text in (err, out):
        line = text.strip().splitlines()[0] if text.strip() else ""
        if line and not line.lstrip().startswith(("{", "[")):
            return line[:300]
    return ""

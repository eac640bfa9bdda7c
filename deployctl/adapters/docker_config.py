"""Registry credentials from the Docker CLI's config (`docker login`), without the docker SDK.

The skip path asks the registry whether this commit's image is already there; that must not
cost the ~0.2 s import of the docker SDK (and requests) when no daemon is needed at all.
The lookup follows the Docker CLI: `credHelpers[host]`, else `credsStore`, answered by
`docker-credential-<name> get`; when the helper has nothing, the `auths` entry of the file.
Pushes still go through the engine, which sends the daemon the same config's entry.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path

from deployctl.adapters import shell
from deployctl.errors import ExternalError

Credentials = tuple[str, str]
_HELPER_TIMEOUT_S = 30.0


def config_path(env: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    base = env.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def host_of(server: str) -> str:
    """`https://host:5000/v2/` and `host:5000` both name `host:5000` (docker normalises alike)."""
    host = server.split("://", 1)[-1]
    return host.split("/", 1)[0].lower()


def credentials(registry: str, env: dict[str, str] | os._Environ[str] = os.environ) -> Credentials | None:
    """(username, secret) for `registry`, or None when the config has none.

    A config that cannot be read or parsed counts as none (docker itself would then push
    anonymously); a credential helper that fails is an error, because guessing past it
    would hide a broken login.
    """
    path = config_path(env)
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    host = host_of(registry)
    helpers = config.get("credHelpers") or {}
    helper = helpers.get(host) if isinstance(helpers, dict) else None
    helper = helper or config.get("credsStore")
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
        if entry.get("identitytoken"):
            return "<token>", str(entry["identitytoken"])
        if entry.get("auth"):
            try:
                user, sep, secret = base64.b64decode(str(entry["auth"])).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return (user, secret) if sep and user and secret else None
        if entry.get("username") and entry.get("password"):
            return str(entry["username"]), str(entry["password"])
    return None


def _from_helper(name: str, host: str, env: dict[str, str] | os._Environ[str]) -> Credentials | None:
    program = f"docker-credential-{name}"
    for server in (host, f"https://{host}"):  # helpers store whichever form `docker login` used
        try:
            code, out, err = shell.run_capture([program, "get"], _HELPER_TIMEOUT_S, env=env, stdin=server)
        except FileNotFoundError:
            raise ExternalError(f"the docker config names the credential helper {name!r}, but {program} "
                                "is not on PATH",
                                hint="install the helper, or remove credsStore/credHelpers from "
                                     f"{config_path(env)}") from None
        except TimeoutError:
            raise ExternalError(f"{program} did not answer within {_HELPER_TIMEOUT_S:.0f}s") from None
        if code != 0:
            if "credentials not found" in (out + err).lower():
                continue
            # The helper's own words may quote what it was given; keep only the first line.
            reason = (err or out).strip().splitlines()[:1]
            raise ExternalError(f"{program} failed for {host}: {reason[0] if reason else f'exit {code}'}")
        try:
            data = json.loads(out)
        except ValueError:
            raise ExternalError(f"{program} answered with something that is not JSON") from None
        user, secret = data.get("Username"), data.get("Secret")
        if user and secret:
            return str(user), str(secret)
    return None

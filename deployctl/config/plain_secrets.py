"""Secrets written as plain `env:` values of an ECS service.

A task definition's environment is stored in clear: anyone allowed ecs:DescribeTaskDefinition
(and the console) reads it, and every revision keeps it. A value that is a secret belongs in
`secrets:` (Secrets Manager, injected by ECS at start). Local Docker environments are left
alone: a dev database password in a container on this machine is no such leak.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deployctl.redact import looks_like_secret, secret_variable

# Numbers and switches are settings, whatever the name (CACHE_KEY: 2, USE_API_KEY: true).
_PLAIN_VALUE = re.compile(r"-?\d+(?:\.\d+)?|true|false|yes|no|on|off", re.I)


def _named_secret(name: str, value: str) -> bool:
    return secret_variable(name) and _PLAIN_VALUE.fullmatch(value) is None


def found(env: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(variable, why) for each plain value that is, or is named as, a secret."""
    out = []
    for name, value in env.items():
        if not isinstance(name, str) or value is None or value == "":
            continue
        if looks_like_secret(str(value)):
            out.append((name, "its value has the shape of a credential"))
        elif _named_secret(name, str(value)):
            out.append((name, "its name says it holds a secret"))
    return out


HINT = ("plain env values are stored in clear in the task definition: put the value in AWS Secrets "
        "Manager and name it in the service's `secrets` map instead (docs/security.md); if it is not "
        "a secret, rename the variable")

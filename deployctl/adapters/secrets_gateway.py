"""Secrets Manager and SSM Parameter Store metadata, typed: does a secret exist, its ARN,
whether it has a value. Never a value: DescribeSecret and DescribeParameters answer without
one (reading the notification webhook's value is deployctl.adapters.aws.secret_string).

Callers get SecretMeta and Parameter, never a response dict. Functions take the service's
client ("secretsmanager", "ssm"). Shapes:
https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DescribeSecret.html and
https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_ParameterMetadata.html.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deployctl.adapters.aws import BotoClient, ClientError, is_not_found

CURRENT = "AWSCURRENT"


@dataclass(frozen=True)
class SecretMeta:
    arn: str
    deleted: bool = False  # scheduled for deletion (DeletedDate set)
    # version id → its staging labels; only versions with a label are listed
    versions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def has_value(self) -> bool:
        """A current version exists: a placeholder made without a value has none."""
        return any(CURRENT in stages for stages in self.versions.values())

    def has_stage(self, stage: str) -> bool:
        return any(stage in stages for stages in self.versions.values())

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> SecretMeta:
        versions = raw.get("VersionIdsToStages") or {}
        return cls(arn=str(raw.get("ARN", "")), deleted=bool(raw.get("DeletedDate")),
                   versions={str(v): tuple(str(s) for s in stages or []) for v, stages in versions.items()})


def describe_secret(secretsmanager: BotoClient, ref: str) -> SecretMeta | None:
    """The secret's metadata (`ref`: a name or an ARN), or None when it does not exist."""
    try:
        raw = secretsmanager.describe_secret(SecretId=ref)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    return SecretMeta.from_api(raw)


@dataclass(frozen=True)
class Parameter:
    name: str
    arn: str = ""  # "" when the answer has none (older APIs, emulators)


def find_parameter(ssm: BotoClient, name: str) -> Parameter | None:
    """The parameter named exactly `name`, or None. DescribeParameters with a name filter:
    GetParameter would return the value."""
    found = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}]).get("Parameters") or []
    if not found:
        return None
    return Parameter(name=str(found[0].get("Name", name)), arn=str(found[0].get("ARN") or ""))

"""Bootstrap and secrets: it never writes a secret value. It lists the commands that set each
referenced secret that has none yet, and with `--create-secrets` creates missing Secrets
Manager secrets as empty placeholders. Read from metadata only (DescribeSecret,
DescribeParameters), through deployctl.adapters.secrets_gateway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deployctl.adapters import aws, secrets_gateway
from deployctl.adapters import cfn_gateway as cfn_api

if TYPE_CHECKING:
    from deployctl.app.bootstrap import BootstrapPlan, Log


@dataclass(frozen=True)
class SecretRef:
    ref: str
    kind: str  # secretsmanager | ssm


def secret_steps(bp: BootstrapPlan, clients: aws.AwsClients, *, create: bool, log: Log) -> list[str]:
    """Commands that set each referenced secret that has no value yet. With `create`, missing
    Secrets Manager secrets are created as empty placeholders (no value, no version)."""
    steps = []
    for secret in bp.secrets:
        if secret.kind == "ssm":
            name = secret.ref[len("ssm:"):] if secret.ref.startswith("ssm:") else secret.ref
            if _parameter_exists(clients, name):
                continue
            steps.append(f"aws ssm put-parameter --region {bp.cfg.region} --type SecureString --name {name} "
                         f"--value \"$(cat {_file_for(name)})\"")
            continue
        if cfn_api.secret_exists(clients, secret.ref):
            if _has_value(clients, secret.ref):
                continue
        elif create and not secret.ref.startswith("arn:"):
            cfn_api.create_placeholder_secret(clients, secret.ref, {"deployctl:app": bp.cfg.app})
            log(f"created secret {secret.ref} as an empty placeholder (no value)")
        elif secret.ref.startswith("arn:"):
            # CreateSecret takes a name, and AWS adds a new random suffix to the ARN: deploy.yaml
            # must then name the ARN the command prints (or the secret by its name).
            region, name = _arn_parts(secret.ref, bp.cfg.region)
            steps.append(f"aws secretsmanager create-secret --region {region} --name {name}   "
                         f"# then put the ARN it prints in deploy.yaml, in place of {secret.ref}")
            continue
        else:
            steps.append(f"aws secretsmanager create-secret --region {bp.cfg.region} --name {secret.ref}")
            continue
        steps.append(f"aws secretsmanager put-secret-value --region {bp.cfg.region} --secret-id {secret.ref} "
                     f"--secret-string \"$(cat {_file_for(_arn_parts(secret.ref, '')[1])})\"")
    return steps


def _arn_parts(arn: str, default_region: str) -> tuple[str, str]:
    """(region, secret name) of a Secrets Manager ARN, without the 6-character suffix that AWS
    appends (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf)."""
    parts = arn.split(":", 6)
    region = parts[3] if len(parts) > 3 and parts[3] else default_region
    name = parts[6] if len(parts) > 6 else arn
    return region, re.sub(r"-[A-Za-z0-9]{6}$", "", name)


def _file_for(name: str) -> str:
    return name.strip("/").replace("/", "-") + ".txt"


def _parameter_exists(clients: aws.AwsClients, name: str) -> bool:
    return secrets_gateway.find_parameter(clients.ssm, name) is not None


def _has_value(clients: aws.AwsClients, ref: str) -> bool:
    """Whether the secret has a current version, read from its metadata (never its value)."""
    meta = secrets_gateway.describe_secret(clients.secretsmanager, ref)
    return meta is not None and meta.has_value

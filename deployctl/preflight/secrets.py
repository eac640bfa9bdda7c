"""Preflight's check of the secrets deploy.yaml references: each must exist (Secrets Manager
or SSM Parameter Store), have a value, and have the version a reference names.

Secret VALUES are never read: Secrets Manager is asked `DescribeSecret`, SSM `DescribeParameters`
with a name filter (never GetParameter, which returns the value).
"""

from __future__ import annotations

from deployctl.adapters import aws as awsa
from deployctl.adapters import secrets_gateway
from deployctl.config.model import ResolvedConfig
from deployctl.preflight.findings import PreflightResult, Report, guard
from deployctl.render.ecs import split_secret_ref


def ssm_name(ref: str) -> str | None:
    """Parameter name for `ssm:/a/b`, `ssm:name` or an SSM parameter ARN; None for other refs."""
    if ref.startswith("ssm:"):
        return ref[len("ssm:"):]
    if ref.startswith("arn:") and ":ssm:" in ref and ":parameter" in ref:
        rest = ref.split(":parameter", 1)[1]  # "/a/b" or "/name"
        return rest if rest.count("/") > 1 else rest.lstrip("/")
    return None


def _secret_refs(cfg: ResolvedConfig) -> dict[str, list[str]]:
    refs: dict[str, list[str]] = {}
    for svc_name, svc in cfg.services.items():
        for env_name, ref in svc.secrets.items():
            refs.setdefault(ref, []).append(f"{svc_name}.{env_name}")
    return refs


def check_secrets(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: Report, result: PreflightResult) -> None:
    described: dict[str, secrets_gateway.SecretMeta | None] = {}  # secret → its metadata (None: absent)
    for ref, users in _secret_refs(cfg).items():
        used = f" (used by {', '.join(users)})"
        name = ssm_name(ref)
        if name is not None:
            def check_ssm(ref: str = ref, name: str = name, used: str = used) -> None:
                param = secrets_gateway.find_parameter(aws.ssm, name)
                if param is None:
                    rep.problems.append(f"SSM parameter {name} does not exist{used}: create it (`aws ssm "
                                        f"put-parameter --name {name} --type SecureString --value …`), or fix "
                                        "the reference in deploy.yaml")
                elif param.arn:
                    result.secret_arns[ref] = param.arn

            guard(rep, f"SSM parameter {name}", check_ssm)
            continue

        secret, suffix = split_secret_ref(ref)
        fields = suffix[1:].split(":") if suffix else []
        if len(fields) > 3:
            rep.problems.append(f"secret reference {ref}{used} has more than json-key:version-stage:version-id "
                                "after the secret")
            continue

        def check_sm(ref: str = ref, secret: str = secret, fields: list[str] = fields, used: str = used) -> None:
            # DescribeSecret takes the secret alone; ECS reads the JSON key and version from the rest.
            if secret not in described:
                described[secret] = secrets_gateway.describe_secret(aws.secretsmanager, secret)
            meta = described[secret]
            if meta is None:
                rep.problems.append(f"Secrets Manager secret {secret} does not exist{used}: create it (`aws "
                                    f"secretsmanager create-secret --name {secret}`), or fix the reference in "
                                    "deploy.yaml")
                return
            if meta.deleted:
                rep.problems.append(f"Secrets Manager secret {secret} is scheduled for deletion{used}")
                return
            result.secret_arns[ref] = meta.arn
            _check_secret_version(secret, fields, meta, rep, used)

        guard(rep, f"secret {secret}", check_sm)


def _check_secret_version(secret: str, fields: list[str], meta: secrets_gateway.SecretMeta, rep: Report,
                          used: str) -> None:
    """A version stage or id in the reference must name a version of the secret. The JSON key is not
    checked: that needs the secret's value, which deployctl never reads."""
    if not meta.has_value:
        # A placeholder (`bootstrap --create-secrets`) or a secret whose value was never set: ECS
        # could not start a task from it (ResourceInitializationError). Read from metadata only.
        rep.problems.append(f"Secrets Manager secret {secret} has no value yet{used}: set it (`aws secretsmanager "
                            f"put-secret-value --secret-id {secret} --secret-string …`)")
        return
    stage = fields[1] if len(fields) > 1 else ""
    version_id = fields[2] if len(fields) > 2 else ""
    if stage and not meta.has_stage(stage):
        rep.problems.append(f"Secrets Manager secret {secret} has no version labelled {stage}{used}")
    if version_id and version_id not in meta.versions:
        # DescribeSecret lists only versions with a staging label; an unlabelled one may still
        # exist until Secrets Manager deletes it.
        rep.notes.append(f"secret {secret} lists no labelled version {version_id}{used}; if it was "
                         "deprecated, Secrets Manager may delete it and tasks would fail to start")

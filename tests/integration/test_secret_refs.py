"""Secrets Manager references that name a JSON key or version, through a real deploy (moto + rollout simulation).

ECS reads `valueFrom` as `arn:…:secret:NAME-AbCdEf:json-key:version-stage:version-id` (each part after
the secret optional, e.g. `…:password::` for an RDS-managed secret). Preflight must describe the secret
alone, and the registered task definition must keep the user's suffix on the secret's full ARN.
"""

from __future__ import annotations

from typing import Any

from tests.integration.test_ecs_deploy import (  # the ECS deploy tests' world, fixtures and helpers
    base_config,
    calls,
    load,
)
from tests.integration.test_ecs_deploy import deploy as ecs_deploy


def db_secret(w: Any) -> str:
    return str(w.c("secretsmanager").create_secret(
        Name="chat-api/db", SecretString='{"username":"app","password":"pw-never-printed"}')["ARN"])


def registered_secrets(w: Any) -> dict[str, str]:
    ecs = w.c("ecs")
    td = ecs.describe_task_definition(taskDefinition=w.service()["taskDefinition"])["taskDefinition"]
    return {s["name"]: s["valueFrom"] for s in td["containerDefinitions"][0]["secrets"]}


def test_a_secret_arn_naming_a_json_key_deploys_and_keeps_the_key(world, sim, tmp_path):  # noqa: F811
    arn = db_secret(world)
    doc = base_config(world)
    doc["services"]["api"]["secrets"].update({"DB_PASSWORD": f"{arn}:password::", "DB_USER": f"{arn}:username::"})
    res = ecs_deploy(load(tmp_path, doc), world.push("v1"))

    assert res.exit_code == 0, res.message
    secrets = registered_secrets(world)
    assert secrets["DB_PASSWORD"] == f"{arn}:password::"
    assert secrets["DB_USER"] == f"{arn}:username::"
    openai = world.c("secretsmanager").describe_secret(SecretId="chat-api/openai-key")["ARN"]
    assert secrets["OPENAI_API_KEY"] == openai
    # One DescribeSecret per secret (the two keys share one), and no value is ever read.
    assert calls(sim, "DescribeSecret") == 2 + 1  # + the test's own call above
    assert calls(sim, "GetSecretValue") == 0


def test_a_secret_name_with_a_json_key_and_stage_gets_the_full_arn_and_keeps_the_suffix(world, sim,  # noqa: F811
                                                                                        tmp_path):
    arn = db_secret(world)
    doc = base_config(world)
    doc["services"]["api"]["secrets"]["DB_PASSWORD"] = "chat-api/db:password:AWSCURRENT:"
    res = ecs_deploy(load(tmp_path, doc), world.push("v1"))

    assert res.exit_code == 0, res.message
    assert registered_secrets(world)["DB_PASSWORD"] == f"{arn}:password:AWSCURRENT:"


def test_preflight_names_the_secret_not_the_key_and_checks_the_stage(world, sim, tmp_path):  # noqa: F811
    arn = db_secret(world)
    gone = arn.replace("chat-api/db", "chat-api/gone")
    doc = base_config(world)
    doc["services"]["api"]["secrets"].update({
        "GONE": f"{gone}:password::",
        "OLD": f"{arn}:password:AWSPREVIOUS:",  # the secret was never rotated: no AWSPREVIOUS version
        "BAD": f"{arn}:password:AWSCURRENT::extra",
    })
    res = ecs_deploy(load(tmp_path, doc), world.push("v1"))

    assert res.exit_code == 1
    msg = res.message
    assert "preflight found 3 problems" in msg, msg
    assert f"Secrets Manager secret {gone} does not exist (used by api.GONE)" in msg
    assert f"Secrets Manager secret {arn} has no version labelled AWSPREVIOUS (used by api.OLD)" in msg
    assert "has more than json-key:version-stage:version-id" in msg and "api.BAD" in msg
    assert calls(sim, "RegisterTaskDefinition") == 0

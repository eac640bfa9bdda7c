"""The CI role's IAM policy and OIDC trust policy (deployctl/render/iam.py), and `deployctl iam-policy`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deployctl.config import load_env, read
from deployctl.render import iam
from deployctl.render.iam import Request, allows

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"

PREVIEW_YAML = """
version: 1
app: chat-api
region: us-east-1
image: {repository: chat-api}
services:
  api:
    port: 8000
    health: {path: /health/ready}
    secrets: {OPENAI_API_KEY: chat-api/openai-key, DATABASE_URL: "ssm:/chat-api/database-url"}
  worker: {command: [python, -m, worker]}
environments:
  staging:
    target: ecs
    cluster: ai-staging
    deploy_on: main
    network: {subnets: [subnet-1]}
    roles:
      execution: arn:aws:iam::123456789012:role/chat-api-execution
      task: arn:aws:iam::123456789012:role/chat-api-task
  preview:
    target: ecs
    preview: true
    cluster: ai-staging
    network: {subnets: [subnet-1]}
    roles:
      execution: arn:aws:iam::123456789012:role/chat-api-execution
      task: arn:aws:iam::123456789012:role/chat-api-task
"""


def cfg_of(env: str, path: Path = ROOT / "deploy.yaml"):
    return load_env(read(path, environ={}), env)


@pytest.fixture
def preview_cfg(tmp_path: Path):
    p = tmp_path / "deploy.yaml"
    p.write_text(PREVIEW_YAML)
    return cfg_of("preview", p)


def statements(policy: dict) -> list[dict]:
    return policy["Statement"]


def as_list(v: object) -> list:
    return list(v) if isinstance(v, list) else [v]


def actions(policy: dict) -> set[str]:
    return {a for s in statements(policy) for a in as_list(s["Action"])}


def test_no_star_resource_on_any_ecs_or_ecr_write_action() -> None:
    for env in ("staging", "prod"):
        cfg = cfg_of(env)
        policy = iam.ci_policy(cfg, ACCOUNT)
        # the one write AWS cannot scope by ARN, and it carries a condition instead
        assert iam.wildcard_writes(policy) == [("ecs:RegisterTaskDefinition", "EcsRegisterTaskDefinition")]
        reg = next(s for s in statements(policy) if s["Sid"] == "EcsRegisterTaskDefinition")
        assert reg["Action"] == ["ecs:RegisterTaskDefinition"]
        assert reg["Condition"] == {"StringEquals": {"aws:RequestTag/deployctl:app": "chat-api"}}
        for s in statements(policy):
            writes = [a for a in as_list(s["Action"]) if a in iam.ECS_WRITE_ACTIONS | iam.ECR_WRITE_ACTIONS]
            if not writes or s["Sid"] == "EcsRegisterTaskDefinition":
                continue
            for resource in as_list(s["Resource"]):
                assert resource != "*" and not iam.broad_resource(resource), (s["Sid"], resource)
                assert f":{ACCOUNT}:" in resource and ":us-east-1:" in resource


def test_write_actions_are_on_exactly_this_apps_resources() -> None:
    policy = iam.ci_policy(cfg_of("staging"), ACCOUNT)
    by_sid = {s["Sid"]: s for s in statements(policy)}
    assert by_sid["EcrRepository"]["Resource"] == f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/chat-api"
    assert by_sid["EcsServicesWrite"]["Resource"] == [
        f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/ai-staging/chat-api-api",
        f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/ai-staging/chat-api-worker",
    ]
    assert "ecs:DeleteService" not in actions(policy)
    assert "ecs:DeregisterTaskDefinition" not in actions(policy)
    assert all("*" not in a for a in actions(policy)), "no action wildcards"


def test_pass_role_only_the_task_roles_only_to_ecs_tasks() -> None:
    policy = iam.ci_policy(cfg_of("staging"), ACCOUNT)
    (stmt,) = [s for s in statements(policy) if "iam:PassRole" in as_list(s["Action"])]
    assert stmt["Action"] == ["iam:PassRole"]
    assert stmt["Resource"] == [f"arn:aws:iam::{ACCOUNT}:role/chat-api-execution",
                                f"arn:aws:iam::{ACCOUNT}:role/chat-api-task"]
    assert stmt["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    ok = Request("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/chat-api-task",
                 {"iam:PassedToService": "ecs-tasks.amazonaws.com"})
    assert allows(policy, ok)
    assert not allows(policy, Request(ok.action, ok.resource, {"iam:PassedToService": "lambda.amazonaws.com"}))
    assert not allows(policy, Request(ok.action, f"arn:aws:iam::{ACCOUNT}:role/admin", ok.context))


def test_secrets_are_describe_only() -> None:
    policy = iam.ci_policy(cfg_of("staging"), ACCOUNT)
    acts = actions(policy)
    assert {a for a in acts if a.startswith(("secretsmanager:", "ssm:", "kms:"))} == {
        "secretsmanager:DescribeSecret", "ssm:DescribeParameters"}
    (sm,) = [s for s in statements(policy) if s["Sid"] == "SecretsExistOnly"]
    assert sm["Resource"] == f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:chat-api/openai-key-??????"
    real_arn = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:chat-api/openai-key-AbC123"
    assert allows(policy, Request("secretsmanager:DescribeSecret", real_arn))
    assert not allows(policy, Request("secretsmanager:GetSecretValue", real_arn))
    assert not allows(policy, Request("secretsmanager:DescribeSecret",
                                      f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:other-AbC123"))


def test_only_what_the_config_uses() -> None:
    staging, prod = iam.ci_policy(cfg_of("staging"), ACCOUNT), iam.ci_policy(cfg_of("prod"), ACCOUNT)
    assert "cloudwatch:DescribeAlarms" in actions(staging)  # deploy.alarms
    assert "elasticloadbalancing:DescribeTargetHealth" in actions(staging)  # api has a target group
    assert "application-autoscaling:RegisterScalableTarget" not in actions(staging)
    assert "application-autoscaling:RegisterScalableTarget" in actions(prod)  # prod api autoscales
    prod_services = next(s for s in statements(prod) if s["Sid"] == "EcsServicesWrite")["Resource"]
    assert all("/ai-prod/" in r for r in prod_services)


def test_preview_policy_limits_changes_to_tagged_previews(preview_cfg) -> None:
    policy = iam.ci_policy(preview_cfg, ACCOUNT)
    assert {a for a, _ in iam.wildcard_writes(policy)} == {"ecs:RegisterTaskDefinition",
                                                           "ecs:DeregisterTaskDefinition"}
    svc = f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/ai-staging/chat-api-pr-7-api"
    staging_svc = f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/ai-staging/chat-api-api"
    tagged = {"aws:ResourceTag/deployctl:preview": "pr-7"}
    assert allows(policy, Request("ecs:CreateService", svc, {"aws:RequestTag/deployctl:preview": "pr-7"}))
    assert not allows(policy, Request("ecs:CreateService", svc))
    assert allows(policy, Request("ecs:DeleteService", svc, tagged))
    assert allows(policy, Request("ecs:UpdateService", svc, tagged))
    assert not allows(policy, Request("ecs:UpdateService", svc))  # a look-alike without the tag
    assert not allows(policy, Request("ecs:UpdateService", staging_svc, tagged))  # not a preview name
    assert not allows(policy, Request("ecs:DeleteService", staging_svc, tagged))


def test_trust_policy_for_github_oidc() -> None:
    cfg = cfg_of("staging")
    subs = iam.subjects(cfg, "acme/chat-api")
    assert subs == ["repo:acme/chat-api:environment:staging", "repo:acme/chat-api:ref:refs/heads/main"]
    assert iam.subjects(cfg_of("prod"), "acme/chat-api") == ["repo:acme/chat-api:environment:production"]
    trust = iam.trust_policy(ACCOUNT, subs)
    (stmt,) = trust["Statement"]
    assert stmt["Principal"] == {
        "Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"}
    assert stmt["Action"] == "sts:AssumeRoleWithWebIdentity"
    cond = stmt["Condition"]["StringEquals"]
    assert cond["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert cond["token.actions.githubusercontent.com:sub"] == subs
    assert "StringLike" not in stmt["Condition"], "exact subjects, no wildcards"
    with pytest.raises(ValueError):
        iam.subjects(cfg, "not a repo")


def test_evaluator_semantics() -> None:
    policy = {"Statement": [
        {"Effect": "Allow", "Action": "ecs:Describe*", "Resource": "arn:aws:ecs:*:1:service/c/app-*"},
        {"Effect": "Deny", "Action": "ecs:DescribeServices", "Resource": "arn:aws:ecs:*:1:service/c/app-secret"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
         "Condition": {"StringEqualsIfExists": {"s3:prefix": "a"}}},
    ]}
    assert allows(policy, Request("ECS:describeservices", "arn:aws:ecs:us-east-1:1:service/c/app-api"))
    assert not allows(policy, Request("ecs:DescribeServices", "arn:aws:ecs:us-east-1:1:service/c/app-secret"))
    assert not allows(policy, Request("ecs:UpdateService", "arn:aws:ecs:us-east-1:1:service/c/app-api"))
    assert not allows(policy, Request("ecs:DescribeServices", "arn:aws:ecs:us-east-1:1:service/d/app-api"))
    assert allows(policy, Request("s3:GetObject", "x"))
    assert not allows(policy, Request("s3:GetObject", "x", {"s3:prefix": "b"}))
    assert allows(policy, Request("sts:GetCallerIdentity"))  # needs no permission on AWS
    assert iam.broad_resource("arn:aws:ecs:us-east-1:1:service/c/*")
    assert not iam.broad_resource("arn:aws:ecs:us-east-1:1:task-definition/app-staging-api:*")
    assert iam.iam_action("elbv2", "DescribeTargetHealth") == "elasticloadbalancing:DescribeTargetHealth"


def deployctl(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "deployctl", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_cli_json_and_text() -> None:
    r = deployctl("iam-policy", "--env", "staging", "--repo", "acme/chat-api", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["account"] == ACCOUNT
    assert out["policy"] == iam.ci_policy(cfg_of("staging"), ACCOUNT)
    assert out["trust_policy"]["Statement"][0]["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert any("RegisterTaskDefinition" in n for n in out["notes"])
    text = deployctl("iam-policy", "--env", "prod")
    assert text.returncode == 0 and '"Version": "2012-10-17"' in text.stdout
    assert "add --repo owner/name" in text.stdout


def test_cli_refusals() -> None:
    r = deployctl("iam-policy", "--env", "dev")
    assert r.returncode == 2 and "local Docker engine" in r.stderr
    r = deployctl("iam-policy", "--env", "staging", "--repo", "nope")
    assert r.returncode == 2 and "owner/name" in r.stderr

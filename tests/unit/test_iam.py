"""The CI role's IAM policy and OIDC trust policy (deployctl/render/iam.py), and `deployctl iam-policy`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from deployctl.config import load_env, read
from deployctl.render import iam
from deployctl.render.iam import Request, allows
from tests.support import cli as in_process

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


def policy_of(env: str, path: Path = ROOT / "deploy.yaml") -> dict:
    """The policy `deployctl iam-policy --env ENV` prints (with the promote source, if any)."""
    cfg = cfg_of(env, path)
    src = cfg.environment.promote_from
    return iam.ci_policy(cfg, ACCOUNT, source=cfg_of(src, path) if src else None)


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
        policy = policy_of(env)
        # the writes AWS cannot scope by ARN (no resource type; a one-off task's random id), each
        # carrying a condition instead
        assert iam.wildcard_writes(policy) == [("ecs:RegisterTaskDefinition", "EcsRegisterTaskDefinition"),
                                               ("ecs:TagResource", "EcsTagOneOffTasks"),
                                               ("ecs:StopTask", "EcsStopOneOffTasks")]
        one_off = {s["Sid"]: s["Condition"]["StringEquals"] for s in statements(policy)
                   if s["Sid"] in ("EcsTagOneOffTasks", "EcsStopOneOffTasks")}
        assert one_off["EcsTagOneOffTasks"] == {"ecs:CreateAction": "RunTask",
                                                "aws:RequestTag/deployctl:app": "chat-api",
                                                "aws:RequestTag/deployctl:env": env}
        assert one_off["EcsStopOneOffTasks"] == {"aws:ResourceTag/deployctl:app": "chat-api",
                                                 "aws:ResourceTag/deployctl:env": env}
        reg = next(s for s in statements(policy) if s["Sid"] == "EcsRegisterTaskDefinition")
        assert reg["Action"] == ["ecs:RegisterTaskDefinition"]
        assert reg["Condition"] == {"StringEquals": {"aws:RequestTag/deployctl:app": "chat-api",
                                                     "aws:RequestTag/deployctl:env": env}}
        for s in statements(policy):
            writes = [a for a in as_list(s["Action"]) if a in iam.ECS_WRITE_ACTIONS | iam.ECR_WRITE_ACTIONS]
            if not writes or s["Sid"] in ("EcsRegisterTaskDefinition", "EcsTagOneOffTasks", "EcsStopOneOffTasks"):
                continue
            for resource in as_list(s["Resource"]):
                assert resource != "*" and not iam.broad_resource(resource), (s["Sid"], resource)
                assert f":{ACCOUNT}:" in resource and ":us-east-1:" in resource


def test_write_actions_are_on_exactly_this_apps_resources() -> None:
    policy = iam.ci_policy(cfg_of("staging"), ACCOUNT)
    by_sid = {s["Sid"]: s for s in statements(policy)}
    assert by_sid["EcrRepository"]["Resource"] == f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/chat-api"
    assert by_sid["EcsServicesWrite"]["Resource"] == [
        f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/ai-staging/chat-api-staging-api",
        f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/ai-staging/chat-api-staging-worker",
    ]
    assert "ecs:DeleteService" not in actions(policy)
    assert "ecs:DeregisterTaskDefinition" not in actions(policy)
    assert all("*" not in a for a in actions(policy)), "no action wildcards"


def test_pass_role_only_the_task_roles_only_to_ecs_tasks() -> None:
    policy = iam.ci_policy(cfg_of("staging"), ACCOUNT)
    (stmt,) = [s for s in statements(policy) if "iam:PassRole" in as_list(s["Action"])]
    assert stmt["Action"] == ["iam:PassRole"]
    assert stmt["Resource"] == [f"arn:aws:iam::{ACCOUNT}:role/chat-api-staging-execution",
                                f"arn:aws:iam::{ACCOUNT}:role/chat-api-staging-task"]
    assert stmt["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    ok = Request("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/chat-api-staging-task",
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


def test_secret_references_with_a_json_key_are_allowed_on_the_secret_itself(tmp_path: Path) -> None:
    text = (ROOT / "deploy.yaml").read_text()
    by_arn = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:chat-api/db-AbC123"
    assert "chat-api/openai-key" in text
    text = text.replace("chat-api/openai-key ", "\"chat-api/openai-key:api_key::\" ", 1)  # quoted: ends in ":"
    text = text.replace("secrets:", f'secrets:\n      DB_PASSWORD: "{by_arn}:password:AWSCURRENT:"', 1)
    (tmp_path / "deploy.yaml").write_text(text)
    policy = iam.ci_policy(cfg_of("staging", tmp_path / "deploy.yaml"), ACCOUNT)
    (sm,) = [s for s in statements(policy) if s["Sid"] == "SecretsExistOnly"]
    assert sorted(as_list(sm["Resource"])) == sorted([
        by_arn, f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:chat-api/openai-key-??????"])
    # What preflight actually asks for: DescribeSecret on the secret's own ARN.
    assert allows(policy, Request("secretsmanager:DescribeSecret",
                                  f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:chat-api/openai-key-XyZ789"))
    assert allows(policy, Request("secretsmanager:DescribeSecret", by_arn))


def test_only_what_the_config_uses() -> None:
    staging, prod = policy_of("staging"), policy_of("prod")
    assert "cloudwatch:DescribeAlarms" in actions(staging)  # deploy.alarms
    assert "elasticloadbalancing:DescribeTargetHealth" in actions(staging)  # api has a target group
    # Every ECS deploy applies auto scaling (and removes what deploy.yaml dropped), so both environments
    # read and write it, ECS targets only; only prod (api has autoscaling) may create its service-linked role.
    writes = {"application-autoscaling:RegisterScalableTarget", "application-autoscaling:PutScalingPolicy",
              "application-autoscaling:DeleteScalingPolicy", "application-autoscaling:DeregisterScalableTarget"}
    for p in (staging, prod):
        (w,) = [s for s in statements(p) if s["Sid"] == "AutoScalingWrite"]
        assert set(w["Action"]) == writes
        assert w["Condition"] == {"StringEquals": {"application-autoscaling:service-namespace": "ecs"}}
        assert w["Resource"] == f"arn:aws:application-autoscaling:us-east-1:{ACCOUNT}:scalable-target/*"
    target = f"arn:aws:application-autoscaling:us-east-1:{ACCOUNT}:scalable-target/0123abcd"
    assert allows(prod, Request("application-autoscaling:PutScalingPolicy", target,
                                {"application-autoscaling:service-namespace": "ecs"}))
    assert not allows(prod, Request("application-autoscaling:PutScalingPolicy", target,
                                    {"application-autoscaling:service-namespace": "dynamodb"}))
    assert "iam:CreateServiceLinkedRole" in actions(prod) and "iam:CreateServiceLinkedRole" not in actions(staging)
    # `logs`, `task run` and a failed run's diagnosis read logs: reads, on the environment's group only.
    logs = {a for a in actions(staging) if a.startswith("logs:")}
    assert logs == {"logs:FilterLogEvents", "logs:GetLogEvents"}
    read_logs = next(s for s in statements(staging) if s["Sid"] == "ReadLogs")["Resource"]
    assert all("log-group:/deployctl/chat-api/staging" in r for r in read_logs)
    prod_services = next(s for s in statements(prod) if s["Sid"] == "EcsServicesWrite")["Resource"]
    assert all("/ai-prod/" in r for r in prod_services)


def test_preview_policy_limits_changes_to_tagged_previews(preview_cfg) -> None:
    policy = iam.ci_policy(preview_cfg, ACCOUNT)
    # RegisterTaskDefinition has no resource type: "*", but only for revisions tagged as this env's.
    assert {a for a, _ in iam.wildcard_writes(policy)} == {"ecs:RegisterTaskDefinition", "ecs:TagResource",
                                                           "ecs:StopTask"}  # the last two: one-off tasks' tags only
    svc = f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/ai-staging/chat-api-preview-pr-7-api"
    staging_svc = f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/ai-staging/chat-api-staging-api"
    tagged = {"aws:ResourceTag/deployctl:app": "chat-api", "aws:ResourceTag/deployctl:env": "preview",
              "aws:ResourceTag/deployctl:preview": "pr-7"}
    create = {"aws:RequestTag/deployctl:env": "preview", "aws:RequestTag/deployctl:preview": "pr-7"}
    assert allows(policy, Request("ecs:CreateService", svc, create))
    assert not allows(policy, Request("ecs:CreateService", svc))
    assert not allows(policy, Request("ecs:CreateService", svc, {**create, "aws:RequestTag/deployctl:env": "prod"}))
    assert allows(policy, Request("ecs:DeleteService", svc, tagged))
    assert allows(policy, Request("ecs:UpdateService", svc, tagged))
    assert not allows(policy, Request("ecs:UpdateService", svc))  # a look-alike without the tag
    assert not allows(policy, Request("ecs:UpdateService", staging_svc, tagged))  # not a preview name
    assert not allows(policy, Request("ecs:DeleteService", staging_svc, tagged))
    # An environment named like a preview copy (preview-pr-7 → chat-api-preview-pr-7-api): its
    # service carries its own env tag, so the preview role cannot touch it.
    lookalike = {**tagged, "aws:ResourceTag/deployctl:env": "preview-pr-7"}
    assert not allows(policy, Request("ecs:DeleteService", svc, lookalike))


def test_preview_role_cannot_deregister_another_environments_revisions(preview_cfg) -> None:
    policy = iam.ci_policy(preview_cfg, ACCOUNT)
    td = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/"
    own = {"aws:ResourceTag/deployctl:app": "chat-api", "aws:ResourceTag/deployctl:env": "preview",
           "aws:ResourceTag/deployctl:preview": "pr-7"}
    assert allows(policy, Request("ecs:DeregisterTaskDefinition", td + "chat-api-preview-pr-7-api:3", own))
    # copies made before names held the environment (chat-api-pr-7-api) are still torn down
    assert allows(policy, Request("ecs:DeregisterTaskDefinition", td + "chat-api-pr-7-api:1", own))
    prod = {"aws:ResourceTag/deployctl:app": "chat-api", "aws:ResourceTag/deployctl:env": "prod"}
    for request in (
        Request("ecs:DeregisterTaskDefinition", td + "chat-api-prod-api:12", prod),
        Request("ecs:DeregisterTaskDefinition", td + "chat-api-prod-api:12"),  # AWS gave no tags
        Request("ecs:DeregisterTaskDefinition", "*"),  # AWS evaluated it with no resource at all
        Request("ecs:DeregisterTaskDefinition", td + "chat-api-staging-api:4",
                {**prod, "aws:ResourceTag/deployctl:env": "staging"}),
        # a prod revision someone tagged with a preview name is still prod's
        Request("ecs:DeregisterTaskDefinition", td + "chat-api-prod-api:12",
                {**prod, "aws:ResourceTag/deployctl:preview": "pr-7"}),
        Request("ecs:DeregisterTaskDefinition", td + "other-app-preview-pr-7-api:1",
                {**own, "aws:ResourceTag/deployctl:app": "other-app"}),
    ):
        assert not allows(policy, request), request
    # and a revision registered by the preview role is always tagged as the preview's
    assert not allows(policy, Request("ecs:RegisterTaskDefinition", "*", {
        "aws:RequestTag/deployctl:app": "chat-api", "aws:RequestTag/deployctl:env": "prod"}))
    for env in ("staging", "prod"):  # the other environments' roles never deregister at all
        assert "ecs:DeregisterTaskDefinition" not in actions(policy_of(env))


READ_ONLY = ("Describe", "List", "Get")


def test_promote_target_reads_its_source_and_never_writes_there() -> None:
    """`promote staging prod` runs with prod's role and reads staging first (read_services,
    read_settled_releases in commands/release_cmds.py): DescribeServices on staging's services."""
    policy, staging = policy_of("prod"), cfg_of("staging")
    src = iam.Arns(staging, ACCOUNT)
    owned = {"aws:ResourceTag/deployctl:app": "chat-api"}
    for arn in src.services():
        assert allows(policy, Request("ecs:DescribeServices", arn, owned))
        assert allows(policy, Request("ecs:ListTagsForResource", arn))
    for family in src.families():
        assert allows(policy, Request("ecs:ListTagsForResource", family.replace(":*", ":12")))
    assert allows(policy, Request("ecs:ListTaskDefinitions")) and allows(policy, Request("ecs:DescribeTaskDefinition"))
    # read-only on the source: every statement naming a staging resource grants reads only
    for s in statements(policy):
        if any("/ai-staging/" in r or "chat-api-staging-" in r for r in as_list(s["Resource"])):
            assert all(a.split(":")[1].startswith(READ_ONLY) for a in as_list(s["Action"])), s
    for action in sorted(iam.ECS_WRITE_ACTIONS - iam.ECS_NO_RESOURCE_LEVEL):
        for arn in [*src.services(), *(f.replace(":*", ":3") for f in src.families())]:
            assert not allows(policy, Request(action, arn, owned)), (action, arn)
    # staging itself is promoted from nothing: no other environment's resources in its policy
    assert not any("/ai-prod/" in r or "chat-api-prod-" in r for s in statements(policy_of("staging"))
                   for r in as_list(s["Resource"]))
    # without the source the policy would be wrong: refuse rather than render it
    with pytest.raises(ValueError, match="promoted from staging"):
        iam.ci_policy(cfg_of("prod"), ACCOUNT)
    with pytest.raises(ValueError, match="promoted from staging"):
        iam.ci_policy(cfg_of("prod"), ACCOUNT, source=cfg_of("preview"))


def test_promote_source_with_its_own_repository() -> None:
    staging = cfg_of("staging")
    rc_staging = staging.model_copy(update={"image": staging.image.model_copy(update={"repository": "chat-api-rc"})})
    policy = iam.ci_policy(cfg_of("prod"), ACCOUNT, source=rc_staging)
    rc = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/chat-api-rc"
    assert allows(policy, Request("ecr:DescribeImages", rc))  # preflight of the promoted deploy
    for action in ("ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:BatchGetImage", "ecr:CreateRepository"):
        assert not allows(policy, Request(action, rc)), action
    assert not any(s["Sid"] == "PromoteSourceImage" for s in statements(policy_of("prod")))  # same repository


def with_monitoring(cfg, **changes):
    return cfg.model_copy(update={"monitoring": cfg.monitoring.model_copy(update=changes)})


def test_run_metrics_only_in_their_namespace() -> None:
    assert "cloudwatch:PutMetricData" not in actions(policy_of("staging"))  # publish_run_metrics is off
    cfg = with_monitoring(cfg_of("staging"), publish_run_metrics=True, run_metrics_namespace="ChatApi/Deploys")
    policy = iam.ci_policy(cfg, ACCOUNT)
    (stmt,) = [s for s in statements(policy) if "cloudwatch:PutMetricData" in as_list(s["Action"])]
    assert stmt["Action"] == ["cloudwatch:PutMetricData"] and stmt["Resource"] == "*"
    assert stmt["Condition"] == {"StringEquals": {"cloudwatch:namespace": "ChatApi/Deploys"}}
    assert allows(policy, Request("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "ChatApi/Deploys"}))
    assert not allows(policy, Request("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "AWS/ECS"}))
    assert not allows(policy, Request("cloudwatch:PutMetricData", "*"))
    assert any("ChatApi/Deploys" in n for n in iam.notes(cfg))


def test_monitoring_alarms_are_written_by_name() -> None:
    """With roll_back_on the deploy writes the environment's generated alarms before the service
    update names its deployment alarms (targets/ecs.py); the watcher reads the deployment alarms."""
    from deployctl.render.costcap import CAP_KINDS
    from deployctl.render.monitoring import alarms, deployment_alarm_names

    cfg = cfg_of("staging")
    policy = policy_of("staging")
    alarm = iam.Arns(cfg, ACCOUNT).alarm
    wired = {n for svc in (None, *cfg.services) for n in deployment_alarm_names(cfg, cfg.monitoring, svc)}
    rendered = {spec.name for spec in alarms(cfg, cfg.monitoring)}
    # The hourly caps are deleted when deploy.yaml drops them (deployctl.targets.ecs_costcap).
    caps = {spec.name for spec in alarms(cfg, cfg.monitoring) if spec.kind in CAP_KINDS}
    assert set(cfg.deploy.alarms) < wired and wired - set(cfg.deploy.alarms) < rendered
    for name in sorted(wired):
        assert allows(policy, Request("cloudwatch:DescribeAlarms", alarm(name))), name
    for name in sorted(rendered):
        assert allows(policy, Request("cloudwatch:PutMetricAlarm", alarm(name))), name
        assert allows(policy, Request("cloudwatch:TagResource", alarm(name))), name  # tags sent on create
        assert allows(policy, Request("cloudwatch:DeleteAlarms", alarm(name))) == (name in caps), name
    # never the user's own deploy.alarms, an alarm monitoring does not render, another environment's
    for name in [*cfg.deploy.alarms, "chat-api-staging-api-latency", *(n.replace("-staging-", "-prod-")
                                                                       for n in rendered)]:
        assert not allows(policy, Request("cloudwatch:PutMetricAlarm", alarm(name))), name
    (write,) = [s for s in statements(policy) if "cloudwatch:PutMetricAlarm" in as_list(s["Action"])]
    assert not any(iam.broad_resource(r) or "*" in r for r in as_list(write["Resource"]))
    assert allows(policy, Request("elasticloadbalancing:DescribeLoadBalancers"))  # ALB named, not an ARN
    prod = policy_of("prod")
    for name in rendered:
        assert allows(prod, Request("cloudwatch:PutMetricAlarm", alarm(name.replace("-staging-", "-prod-"))))
        assert not allows(prod, Request("cloudwatch:PutMetricAlarm", alarm(name)))

    # an ALB given by ARN needs no lookup
    arn = f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:loadbalancer/app/chat-api-alb/50dc6c495c0c9188"
    by_arn = iam.ci_policy(with_monitoring(cfg, load_balancer=arn), ACCOUNT)
    assert "elasticloadbalancing:DescribeLoadBalancers" not in actions(by_arn)
    assert "cloudwatch:PutMetricAlarm" in actions(by_arn)
    # no roll_back_on: the deploy writes no alarms, but `monitor apply` (run with this role) does,
    # by exact name, and `metrics` reads them
    quiet_cfg = with_monitoring(cfg, roll_back_on=[])
    quiet = iam.ci_policy(quiet_cfg, ACCOUNT)
    assert iam.deploy_written_alarms(quiet_cfg) == []
    for name in rendered:
        assert allows(quiet, Request("cloudwatch:PutMetricAlarm", alarm(name)))
    assert not allows(quiet, Request("cloudwatch:PutMetricAlarm", alarm("someone-elses-alarm")))
    assert {"elasticloadbalancing:DescribeLoadBalancers", "cloudwatch:GetMetricData",
            "cloudwatch:PutDashboard"} <= actions(quiet)
    # no monitoring at all: only deploy.alarms, read-only
    bare = iam.ci_policy(cfg.model_copy(update={"monitoring": None}), ACCOUNT)
    assert not any(a.startswith("cloudwatch:Put") for a in actions(bare))
    assert "cloudwatch:GetMetricData" not in actions(bare)
    (reads,) = [s for s in statements(bare) if s["Sid"] == "DeploymentAlarms"]
    assert as_list(reads["Resource"]) == [alarm(n) for n in cfg.deploy.alarms]


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
    return in_process.run(*args, cwd=ROOT)


def test_cli_json_and_text() -> None:
    r = deployctl("iam-policy", "--env", "staging", "--repo", "acme/chat-api", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["account"] == ACCOUNT
    assert out["policy"] == iam.ci_policy(cfg_of("staging"), ACCOUNT)
    prod = deployctl("iam-policy", "--env", "prod", "--json")
    assert prod.returncode == 0, prod.stderr
    assert json.loads(prod.stdout)["policy"] == policy_of("prod")  # with staging's reads
    assert any(n.startswith("Promotion: `deployctl promote staging prod`") for n in json.loads(prod.stdout)["notes"])
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


def test_preflight_may_look_up_the_backlog_queue_autoscaling_names(tmp_path: Path) -> None:
    # Preflight asks GetQueueUrl for autoscaling.queue too: the policy allows exactly that queue.
    p = tmp_path / "deploy.yaml"
    p.write_text(PREVIEW_YAML.replace("  worker: {command: [python, -m, worker]}",
                                      "  worker:\n    command: [python, -m, worker]\n"
                                      "    autoscaling: {min: 1, max: 4, queue: chat-jobs, "
                                      "queue_backlog_per_task: 10}"))
    policy = iam.ci_policy(cfg_of("staging", p), ACCOUNT)
    queue = f"arn:aws:sqs:us-east-1:{ACCOUNT}:chat-jobs"
    assert allows(policy, Request("sqs:GetQueueUrl", queue))
    assert not allows(policy, Request("sqs:GetQueueUrl", f"arn:aws:sqs:us-east-1:{ACCOUNT}:other"))
    plain = tmp_path / "plain.yaml"
    plain.write_text(PREVIEW_YAML)
    assert not allows(iam.ci_policy(cfg_of("staging", plain), ACCOUNT), Request("sqs:GetQueueUrl", queue))

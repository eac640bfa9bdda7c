"""ECS rendering: golden plans for the root deploy.yaml, botocore's own request validation, details.

Regenerate the golden files after an intended change, then review the diff by hand:
    DEPLOYCTL_UPDATE_GOLDEN=1 python -m pytest tests/unit/test_render.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters

from deployctl.adapters.git import GitFacts
from deployctl.config import ResolvedConfig, load_env, read
from deployctl.plan import Plan, make_plan
from deployctl.render import ecs
from deployctl.render.ecs import Facts

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
GIT = GitFacts(sha="3f2a9c41d0b7e6f5a4c3b2a1908f7e6d5c4b3a29", branch="main")
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:chat-api/openai-key-AbCdEf"
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/chat-api-prod-tg/0123456789abcdef"
REAL_FACTS = Facts(
    account_id="123456789012",
    secret_arns={"chat-api/openai-key": SECRET_ARN},
    target_group_arns={"chat-api-prod-tg": TG_ARN},
    image_digest="sha256:" + "ab" * 32,
    release_id="r20260301-3f2a9c41d0b7",
)


def root_config(env: str) -> ResolvedConfig:
    return load_env(read(ROOT / "deploy.yaml", environ={}), env)


def plan_for(env: str, facts: Facts | None = None) -> Plan:
    return make_plan(root_config(env), GIT, facts=facts)


def config_from(tmp_path: Path, services: str, env: str = "staging") -> ResolvedConfig:
    text = f"""\
version: 1
app: chat-api
region: eu-west-1
image: {{repository: chat-api}}
services:
{services}
environments:
  staging:
    target: ecs
    cluster: ai-staging
    network: {{subnets: [subnet-1]}}
    roles: {{execution: arn:aws:iam::123456789012:role/exec}}
  dev: {{target: docker}}
"""
    path = tmp_path / "deploy.yaml"
    path.write_text(text, encoding="utf-8")
    return load_env(read(path, environ={}), env)


# -- golden files ----------------------------------------------------------------------------

@pytest.mark.parametrize("env", ["staging", "prod"])
def test_plan_matches_golden_file(env: str) -> None:
    actual = plan_for(env).to_json_dict()
    path = GOLDEN / f"plan-{env}.json"
    if os.environ.get("DEPLOYCTL_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(actual, indent=2) + "\n", encoding="utf-8")
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert actual == expected, f"{path.name} differs; if intended, regenerate it and review the diff"


def test_golden_prod_is_prod_not_staging() -> None:
    # A cheap guard that the two golden files are not accidentally the same rendering.
    prod = json.loads((GOLDEN / "plan-prod.json").read_text())
    staging = json.loads((GOLDEN / "plan-staging.json").read_text())
    assert prod["services"]["api"]["task_definition"]["memory"] == "8192"
    assert staging["services"]["api"]["task_definition"]["memory"] == "4096"
    assert "desiredCount" not in prod["services"]["api"]["update_service"]  # autoscaling owns it
    assert staging["services"]["api"]["update_service"]["desiredCount"] == 2


# -- botocore's parameter validation ----------------------------------------------------------

ECS_MODEL = botocore.session.get_session().get_service_model("ecs")
OPERATIONS = {
    "task_definition": "RegisterTaskDefinition",
    "create_service": "CreateService",
    "update_service": "UpdateService",
}


@pytest.mark.parametrize("env", ["staging", "prod"])
@pytest.mark.parametrize("facts", [None, REAL_FACTS], ids=["placeholders", "deploy-time-facts"])
def test_every_request_passes_botocore_validation(env: str, facts: Facts | None) -> None:
    plan = plan_for(env, facts)
    for svc in plan.services:
        for attr, operation in OPERATIONS.items():
            request = getattr(svc, attr)
            validate_parameters(request, ECS_MODEL.operation_model(operation).input_shape)


def test_botocore_validation_is_not_a_rubber_stamp() -> None:
    request = dict(plan_for("staging").services[0].create_service, desiredCount="two")
    with pytest.raises(ParamValidationError):
        validate_parameters(request, ECS_MODEL.operation_model("CreateService").input_shape)


# -- details ---------------------------------------------------------------------------------

def container(td: dict[str, Any]) -> dict[str, Any]:
    [only] = td["containerDefinitions"]
    return only


def test_deploy_time_facts_fill_in_digest_arns_and_tags() -> None:
    plan = plan_for("prod", REAL_FACTS)
    api = plan.services[0]
    assert api.name == "api"
    image = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/chat-api@sha256:{'ab' * 32}"
    assert plan.image_ref == image and container(api.task_definition)["image"] == image
    assert container(api.task_definition)["secrets"] == [
        {"name": "DATABASE_URL", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/chat-api/database-url"},
        {"name": "OPENAI_API_KEY",
         "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:chat-api/openai-key-AbCdEf"},
    ]
    assert api.create_service["loadBalancers"] == [{
        "targetGroupArn": REAL_FACTS.target_group_arns["chat-api-prod-tg"], "containerName": "api",
        "containerPort": 8000}]
    tags = {t["key"]: t["value"] for t in api.task_definition["tags"]}
    assert tags == {"deployctl:app": "chat-api", "deployctl:env": "prod", "deployctl:service": "api",
                    "deployctl:git-sha": GIT.sha, "deployctl:image-digest": f"sha256:{'ab' * 32}",
                    "deployctl:release": "r20260301-3f2a9c41d0b7"}
    # The service's own tags carry no per-release values (they would go stale).
    assert {t["key"] for t in api.create_service["tags"]} == {"deployctl:app", "deployctl:env", "deployctl:service"}


def test_secret_references_become_arns_and_values_are_never_read(tmp_path: Path) -> None:
    cfg = config_from(tmp_path, """\
  api:
    secrets:
      A: chat-api/key
      B: ssm:/chat-api/db-url
      C: ssm:plain-name
      D: arn:aws:secretsmanager:eu-west-1:999999999999:secret:shared-AbCdEf
""")
    td = ecs.task_definition(cfg, "api", "img:1", Facts(account_id="123456789012"))
    assert [s["valueFrom"] for s in container(td)["secrets"]] == [
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:chat-api/key",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/chat-api/db-url",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/plain-name",
        "arn:aws:secretsmanager:eu-west-1:999999999999:secret:shared-AbCdEf",
    ]
    assert container(td)["environment"] == []


def test_split_secret_ref_separates_the_json_key_and_version_suffix() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
    assert ecs.split_secret_ref(arn) == (arn, "")
    assert ecs.split_secret_ref(arn + ":password::") == (arn, ":password::")
    assert ecs.split_secret_ref(arn + "::AWSPREVIOUS:") == (arn, "::AWSPREVIOUS:")
    assert ecs.split_secret_ref(arn + ":password:AWSCURRENT:0123") == (arn, ":password:AWSCURRENT:0123")
    assert ecs.split_secret_ref("chat-api/db") == ("chat-api/db", "")
    assert ecs.split_secret_ref("chat-api/db:password::") == ("chat-api/db", ":password::")
    for ssm in ("ssm:/chat-api/db-url", "arn:aws:ssm:us-east-1:123456789012:parameter/chat-api/db-url"):
        assert ecs.split_secret_ref(ssm) == (ssm, "")


def test_a_json_key_suffix_survives_the_resolved_secret_arn(tmp_path: Path) -> None:
    full = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:chat-api/db-AbCdEf"
    cfg = config_from(tmp_path, f"""\
  api:
    secrets:  # quoted: a plain YAML value cannot end with ":"
      A: "{full}:password::"
      B: "chat-api/db:username:AWSCURRENT:"
      C: chat-api/db
""")
    # run: preflight resolved each reference to the secret's full ARN (without the suffix).
    refs = cfg.services["api"].secrets
    resolved = Facts(account_id="123456789012", secret_arns={ref: full for ref in refs.values()})
    td = ecs.task_definition(cfg, "api", "img:1", resolved)
    assert [s["valueFrom"] for s in container(td)["secrets"]] == [
        f"{full}:password::", f"{full}:username:AWSCURRENT:", full]
    # A resolved value that already carries the suffix is not doubled.
    doubled = Facts(account_id="123456789012", secret_arns={refs["A"]: refs["A"]})
    assert container(ecs.task_definition(cfg, "api", "img:1", doubled))["secrets"][0]["valueFrom"] == \
        f"{full}:password::"
    # plan: no facts yet; a name becomes a partial ARN that keeps its suffix.
    td = ecs.task_definition(cfg, "api", "img:1", Facts(account_id="123456789012"))
    assert [s["valueFrom"] for s in container(td)["secrets"]] == [
        f"{full}:password::",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:chat-api/db:username:AWSCURRENT:",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:chat-api/db",
    ]


def test_spot_autoscaling_and_health_command_forms(tmp_path: Path) -> None:
    cfg = config_from(tmp_path, """\
  worker:
    cpu: 512
    memory: 1024
    spot: true
    autoscaling: {min: 2, max: 6}
    health: {command: [python, -m, worker, --check], interval: 15s, timeout: 3s, retries: 5}
  cron:
    health: {command: "pgrep cron", start_period: 2m}
""")
    worker = ecs.create_service(cfg, "worker", "fam", Facts())
    assert worker["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    assert worker["desiredCount"] == 2
    assert "desiredCount" not in ecs.update_service(cfg, "worker", "fam", Facts())
    assert "healthCheckGracePeriodSeconds" not in worker  # no load balancer: the container check rules
    check = container(ecs.task_definition(cfg, "worker", "img", Facts()))["healthCheck"]
    assert check == {"command": ["CMD", "python", "-m", "worker", "--check"], "interval": 15, "timeout": 3,
                     "retries": 5, "startPeriod": 0}
    cron = container(ecs.task_definition(cfg, "cron", "img", Facts()))
    assert cron["healthCheck"]["command"] == ["CMD-SHELL", "pgrep cron"]
    assert cron["healthCheck"]["startPeriod"] == 120
    assert "portMappings" not in cron
    assert ecs.update_service(cfg, "cron", "fam", Facts())["desiredCount"] == 1


def test_load_balancer_port_always_has_a_port_mapping(tmp_path: Path) -> None:
    cfg = config_from(tmp_path, """\
  api:
    port: 8000
    health: {path: /health/ready, start_period: 90s}
    load_balancer: {target_group: chat-api-tg, container_port: 8080}
""")
    td = ecs.task_definition(cfg, "api", "img", Facts())
    assert container(td)["portMappings"] == [
        {"containerPort": 8000, "protocol": "tcp", "name": "api-http"},
        {"containerPort": 8080, "protocol": "tcp", "name": "api-8080"},
    ]
    create = ecs.create_service(cfg, "api", "fam", Facts())
    assert create["loadBalancers"][0]["containerPort"] == 8080
    assert create["healthCheckGracePeriodSeconds"] == 90  # the LB must not kill a loading model


def test_no_alarms_and_no_circuit_breaker(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text("""\
version: 1
app: chat-api
region: us-east-1
image: {repository: chat-api}
services: {api: {port: 8000}}
deploy: {circuit_breaker: false, min_healthy_percent: 50, max_percent: 150}
environments:
  staging:
    target: ecs
    cluster: c
    network: {subnets: [subnet-1], public_ip: true}
    roles: {execution: arn:aws:iam::123456789012:role/exec}
""", encoding="utf-8")
    cfg = load_env(read(path, environ={}), "staging")
    request = ecs.update_service(cfg, "api", "fam", Facts())
    assert request["deploymentConfiguration"] == {
        "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        "maximumPercent": 150, "minimumHealthyPercent": 50,
        "alarms": {"alarmNames": [], "enable": False, "rollback": False},
    }
    assert request["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "ENABLED"
    td = ecs.task_definition(cfg, "api", "img", Facts())
    assert td["executionRoleArn"] == "arn:aws:iam::123456789012:role/exec" and "taskRoleArn" not in td


def test_docker_environment_renders_no_empty_network_block(tmp_path: Path) -> None:
    cfg = config_from(tmp_path, "  api: {port: 8000}\n", env="dev")
    assert "networkConfiguration" not in ecs.create_service(cfg, "api", "fam", Facts())
    assert "networkConfiguration" not in ecs.update_service(cfg, "api", "fam", Facts())
    assert "executionRoleArn" not in ecs.task_definition(cfg, "api", "img", Facts())


def test_image_tag_templates(tmp_path: Path) -> None:
    from deployctl.plan import image_tag

    cfg = root_config("staging")
    assert image_tag(cfg, GIT) == "3f2a9c41d0b7"
    dirty = GitFacts(sha=GIT.sha, branch="feature/x", dirty=True, dirty_hash="f" * 64)
    assert image_tag(cfg, dirty) == "3f2a9c41d0b7-dirty-ffffffffffff"
    custom = cfg.model_copy(update={"image": cfg.image.model_copy(update={"tag": "{branch}-{env}-{git_sha}"})})
    assert image_tag(custom, dirty) == "feature-x-staging-3f2a9c41d0b7-dirty-ffffffffffff"
    no_sha = cfg.model_copy(update={"image": cfg.image.model_copy(update={"tag": "{branch}-{env}"})})
    clean = GitFacts(sha=GIT.sha, branch="feature/x")
    assert image_tag(no_sha, clean) == "feature-x-staging"
    assert image_tag(no_sha, dirty) == "feature-x-staging-dirty-ffffffffffff"  # never the clean tag
    long_branch = GitFacts(sha=GIT.sha, branch="b" * 200, dirty=True, dirty_hash="e" * 64)
    tag = image_tag(no_sha, long_branch)
    assert len(tag) == 128 and tag.endswith("-dirty-eeeeeeeeeeee")

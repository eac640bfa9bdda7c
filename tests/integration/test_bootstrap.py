"""`deployctl bootstrap` against moto server's CloudFormation (over HTTP), from an empty account
to a healthy staging deploy that takes its cluster, network, roles and target group only from
the stack's outputs. ECS rollouts are the SIMULATION (tests/simulation).

moto's CloudFormation skips resource types it does not implement (AWS::IAM::OIDCProvider, see
docs/bootstrap.md): that one is checked in the rendered template, not in the account. What moto
lacks of change-set execution is the SIMULATION in tests/simulation/cfn_changesets.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import git
from tests.simulation import cfn_changesets
from tests.support.aws_world import ACCOUNT, QUICK_PHASES, REGION, ecr_push
from tests.support.release_project import Cli, cli

SIM_PHASES = QUICK_PHASES
APP = "chat-api"  # ecr_push pushes to the chat-api repository
STACK = f"deployctl-{APP}-staging"


def deploy_yaml(**staging: Any) -> dict[str, Any]:
    return {
        "version": 1, "app": APP, "region": REGION,
        "image": {"repository": APP, "registry": "ecr"},
        "services": {
            "api": {"port": 8000, "cpu": 512, "memory": 1024, "count": 2,
                    "health": {"path": "/health", "start_period": "10s"},
                    "secrets": {"OPENAI_API_KEY": "chat-api/openai-key"}},
            "worker": {"command": ["python", "-m", "worker"], "spot": True,
                       "env": {"QUEUE_NAME": "chat-jobs"}},
        },
        "deploy": {"timeout": "30s", "poll_interval": "50ms"},
        "bootstrap": {"network": "public", "github_repository": "acme/chat-api"},
        "environments": {  # a queue is one environment's: its stack creates it (render.cfn.check_owned)
            "staging": {"target": "ecs", "from_stack": STACK, "bootstrap": {"queues": ["chat-jobs"]}, **staging},
            "prod": {"target": "ecs", "from_stack": f"deployctl-{APP}-prod", "promote_from": "staging"},
        },
    }


@pytest.fixture
def project(env: Any, sim: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    path = tmp_path / "app"
    path.mkdir()
    (path / "deploy.yaml").write_text(yaml.safe_dump(deploy_yaml(), sort_keys=False))
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "app")

    class P:
        file = str(path / "deploy.yaml")
        aws = env

        def cli(self, *args: str) -> Cli:
            return cli(capsys, *args)

        def c(self, name: str) -> Any:
            return env.client(name)

    with cfn_changesets.installed():
        yield P()


def test_an_empty_account_to_a_healthy_staging_deploy(project: Any, sim: Any) -> None:
    assert project.c("ecs").list_clusters()["clusterArns"] == []  # nothing made by hand

    res = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes", "--create-secrets")

    assert res.code == 0, res.text
    assert "stack deployctl-chat-api: create" in res.out and f"stack {STACK}: create" in res.out
    assert "+ AWS::ECS::Cluster" in res.out and "CREATE_COMPLETE" in res.out
    # The secret exists as an empty placeholder; bootstrap says how to set it, and never sets it.
    meta = project.c("secretsmanager").describe_secret(SecretId="chat-api/openai-key")
    assert not meta.get("VersionIdsToStages")
    assert "aws secretsmanager put-secret-value --region us-east-1 --secret-id chat-api/openai-key" in res.out
    outputs = {o["OutputKey"]: o["OutputValue"] for o in
               project.c("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]}
    assert outputs["Cluster"] == "chat-api-staging"
    assert project.c("ecr").describe_repositories(repositoryNames=[APP])["repositories"]
    assert project.c("sqs").get_queue_url(QueueName="chat-jobs")["QueueUrl"]

    # `config` shows where each value came from.
    shown = project.cli("config", "-f", project.file, "--env", "staging", "--json")
    assert shown.code == 0, shown.text
    data = shown.json()
    assert data["environment"]["cluster"] == "chat-api-staging"
    assert data["environment"]["network"]["subnets"] == outputs["Subnets"].split(",")
    assert data["from_stack_outputs"]["environment.cluster"] == "Cluster"
    assert data["services"]["api"]["load_balancer"]["target_group"] == outputs["TargetGroupApi"]

    # Before the value is set, preflight refuses: tasks could not start from an empty secret.
    image = ecr_push(project.c("ecr"), "v1")
    early = project.cli("run", "-f", project.file, "--env", "staging", "--image", image)
    assert early.code == 1 and "secret chat-api/openai-key has no value yet" in early.text
    # A real value is set the way bootstrap said, then the first deploy uses only stack outputs.
    project.c("secretsmanager").put_secret_value(SecretId="chat-api/openai-key", SecretString="sk-test-value")
    run = project.cli("run", "-f", project.file, "--env", "staging", "--image", image)
    assert run.code == 0, run.text
    svc = project.c("ecs").describe_services(cluster="chat-api-staging",
                                            services=["chat-api-staging-api"])["services"][0]
    assert svc["runningCount"] == 2 and svc["loadBalancers"][0]["targetGroupArn"] == outputs["TargetGroupApi"]
    net = svc["networkConfiguration"]["awsvpcConfiguration"]
    assert net["subnets"] == outputs["Subnets"].split(",") and net["assignPublicIp"] == "ENABLED"
    td = project.c("ecs").describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    assert td["executionRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/chat-api-staging-execution"


def test_a_second_bootstrap_changes_nothing_and_an_edit_is_an_update(project: Any) -> None:
    assert project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes").code == 0

    again = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes")
    assert again.code == 0, again.text
    assert f"stack {STACK}: no changes" in again.out and "stack deployctl-chat-api: no changes" in again.out

    doc = yaml.safe_load(Path(project.file).read_text())
    doc["environments"]["staging"]["bootstrap"]["queues"].append("chat-batch")
    Path(project.file).write_text(yaml.safe_dump(doc, sort_keys=False))
    update = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes")
    assert update.code == 0, update.text
    assert f"stack {STACK}: update" in update.out and "+ AWS::SQS::Queue" in update.out
    assert project.c("sqs").get_queue_url(QueueName="chat-batch")["QueueUrl"]


def test_without_a_terminal_or_yes_nothing_is_left_behind(project: Any) -> None:
    res = project.cli("bootstrap", "-f", project.file, "--env", "staging")
    assert res.code == 2 and "--yes" in res.err
    stacks = project.c("cloudformation").list_stacks()["StackSummaries"]
    assert [s for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"] == []


def use_default_vpc(project: Any) -> None:
    """moto cannot delete a VPC that CloudFormation made (it leaves the internet gateway
    attached); destroy is tested on the account's default VPC (docs/bootstrap.md)."""
    doc = yaml.safe_load(Path(project.file).read_text())
    doc["bootstrap"]["network"] = "default"
    Path(project.file).write_text(yaml.safe_dump(doc, sort_keys=False))


def test_destroy_refuses_while_services_run_then_deletes(project: Any, sim: Any) -> None:
    use_default_vpc(project)
    assert project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes", "--create-secrets").code == 0
    project.c("secretsmanager").put_secret_value(SecretId="chat-api/openai-key", SecretString="sk-test-value")
    assert project.cli("run", "-f", project.file, "--env", "staging", "--image",
                       ecr_push(project.c("ecr"), "v1")).code == 0

    refused = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--destroy", "--yes")
    assert refused.code == 2 and "still runs chat-api-staging-api" in refused.err
    assert project.c("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"] \
        == "CREATE_COMPLETE"

    ecs = project.c("ecs")
    for name in ("chat-api-staging-api", "chat-api-staging-worker"):
        ecs.delete_service(cluster="chat-api-staging", service=name, force=True)
    done = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--destroy", "--yes")
    assert done.code == 0, done.text
    live = [s["StackName"] for s in project.c("cloudformation").list_stacks()["StackSummaries"]
            if s["StackStatus"] != "DELETE_COMPLETE"]
    assert live == ["deployctl-chat-api"]  # the account stack (repository, lock table) stays
    assert project.c("ecr").describe_repositories(repositoryNames=[APP])["repositories"]


def test_prod_has_termination_protection_and_destroy_refuses(project: Any) -> None:
    res = project.cli("bootstrap", "-f", project.file, "--env", "prod", "--yes")
    assert res.code == 0, res.text
    stack = project.c("cloudformation").describe_stacks(StackName=f"deployctl-{APP}-prod")["Stacks"][0]
    assert stack["EnableTerminationProtection"] is True

    refused = project.cli("bootstrap", "-f", project.file, "--env", "prod", "--destroy", "--yes")
    assert refused.code == 2 and "termination protection" in refused.err
    assert "update-termination-protection" in refused.err


def test_a_run_before_bootstrap_points_to_it(project: Any) -> None:
    res = project.cli("run", "-f", project.file, "--env", "staging", "--image", "x/y@sha256:" + "a" * 64)
    assert res.code == 2
    assert f"stack {STACK} (environments.staging.from_stack) does not exist" in res.err
    assert "deployctl bootstrap --env staging" in res.err


def test_a_failing_stack_names_the_resource_and_its_reason(project: Any) -> None:
    # A role that exists already, made outside any stack: CloudFormation cannot create it.
    project.c("iam").create_role(RoleName="chat-api-staging-execution", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": []}))

    res = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes")

    assert res.code == 1, res.text
    assert f"stack {STACK} ended" in res.err and "ExecutionRole (AWS::IAM::Role)" in res.err


def test_a_stack_that_lost_an_output_is_not_called_ready(project: Any) -> None:
    assert project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes").code == 0
    # Someone edits the stack by hand and drops an output `run` reads (from_stack).
    cfn = project.c("cloudformation")
    template = cfn.get_template(StackName=STACK)["TemplateBody"]
    template = json.loads(template) if isinstance(template, str) else template
    dropped = next(k for k in template["Outputs"] if "Cluster" in k)
    del template["Outputs"][dropped]
    cfn.update_stack(StackName=STACK, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_NAMED_IAM"],
                     Parameters=[{"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
                                 for p in cfn.describe_stacks(StackName=STACK)["Stacks"][0].get("Parameters", [])])

    res = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes")

    # Its resources still match the template, so there is no change set to apply: not "ready".
    assert res.code == 1 and "ready" not in res.out, res.text
    assert f"stack {STACK} is unchanged but has no output {dropped}" in res.err
    assert "deployctl bootstrap --env staging --plan --json" in res.err

"""`deployctl bootstrap` against moto server's CloudFormation (over HTTP), from an empty account
to a healthy staging deploy that takes its cluster, network, roles and target group only from
the stack's outputs. ECS rollouts are the SIMULATION (tests/simulation).

moto's CloudFormation skips resource types it does not implement (AWS::IAM::OIDCProvider, see
docs/bootstrap.md): that one is checked in the rendered template, not in the account. What moto
lacks of change-set execution is the SIMULATION in tests/simulation/cfn_changesets.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import REPO_ROOT as ROOT
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
    with cfn_changesets.installed():
        yield make_project(env, tmp_path, capsys)


@pytest.fixture
def plain_project(env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """On moto server as it is (`scripts/services` runs one on :5055): no change-set SIMULATION."""
    return make_project(env, tmp_path, capsys)


def make_project(env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
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

        def live_stacks(self) -> dict[str, str]:
            return {s["StackName"]: s["StackStatus"] for s in self.c("cloudformation").list_stacks()["StackSummaries"]
                    if s["StackStatus"] != "DELETE_COMPLETE"}

    return P()


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


def test_plain_moto_server_gets_a_clear_message_and_nothing_left_in_review(plain_project: Any) -> None:
    res = plain_project.cli("bootstrap", "-f", plain_project.file, "--env", "staging", "--yes")

    # moto computes no outputs for a stack a change set made: said as what it is, not as a
    # stack "changed outside deployctl".
    assert res.code == 1, res.text
    assert re.search(r"its template declares output [^:]*\bRepository\b", res.err), res.err
    assert "not AWS's own CloudFormation" in res.err
    assert "Trying it locally" in res.err and "changed outside deployctl" not in res.err
    # The environment's change set never ran: it is deleted, with the empty stack it made.
    assert plain_project.live_stacks() == {"deployctl-chat-api": "CREATE_COMPLETE"}
    assert plain_project.cli("bootstrap", "-f", plain_project.file, "--env", "staging", "--plan").code == 0


def test_a_stack_left_in_review_by_a_killed_bootstrap_is_removed(project: Any) -> None:
    # What a bootstrap killed between CreateChangeSet and its cleanup leaves: a CREATE change set
    # and its stack, REVIEW_IN_PROGRESS with no resources, tagged with the app.
    cfn = project.c("cloudformation")
    cfn.create_change_set(StackName=STACK, ChangeSetName="deployctl-0123abcd", ChangeSetType="CREATE",
                          TemplateBody=json.dumps({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}),
                          Tags=[{"Key": "deployctl:app", "Value": APP}])
    assert project.live_stacks()[STACK] == "REVIEW_IN_PROGRESS"

    res = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes")

    assert res.code == 0, res.text
    assert f"stack {STACK}: removed, left REVIEW_IN_PROGRESS" in res.out
    assert project.live_stacks()[STACK] == "CREATE_COMPLETE"
    assert [s["ChangeSetName"] for s in cfn.list_change_sets(StackName=STACK)["Summaries"]
            if s["ChangeSetName"] == "deployctl-0123abcd"] == []


def test_a_stack_in_review_that_is_not_ours_is_left_with_a_way_out(project: Any) -> None:
    cfn = project.c("cloudformation")
    cfn.create_change_set(StackName=STACK, ChangeSetName="someone-else", ChangeSetType="CREATE",
                          TemplateBody=json.dumps({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}))

    res = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes")

    assert res.code == 2 and f"stack {STACK} is REVIEW_IN_PROGRESS" in res.err
    assert f"aws cloudformation delete-stack --stack-name {STACK}" in res.err and "wait" not in res.err
    # The account stack's change set was made before the refusal: deleted again with its stack.
    assert project.live_stacks() == {STACK: "REVIEW_IN_PROGRESS"}


def test_ctrl_c_at_the_review_leaves_nothing_behind(project: Any) -> None:
    """A real process on a terminal, interrupted (SIGINT, as Ctrl-C sends) at the question."""
    import os
    import pty
    import signal
    import subprocess
    import sys
    import time

    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "deployctl", "bootstrap", "-f", project.file, "--env", "staging"],
                            stdin=child, stdout=child, stderr=child, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            cwd=str(Path(project.file).parent))
    os.close(child)
    seen = b""
    deadline = time.monotonic() + 120
    while b"Apply these changes" not in seen and time.monotonic() < deadline:
        try:
            seen += os.read(main, 4096)
        except OSError:
            break
    assert b"Apply these changes" in seen, seen.decode(errors="replace")
    assert project.live_stacks()  # the change sets exist while the question is asked
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    os.close(main)

    assert code == 130
    assert project.live_stacks() == {}


def test_a_modification_shows_what_changes(project: Any) -> None:
    assert project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes").code == 0
    doc = yaml.safe_load(Path(project.file).read_text())
    doc["bootstrap"]["log_retention_days"] = 14
    Path(project.file).write_text(yaml.safe_dump(doc, sort_keys=False))

    res = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes", "--json")

    assert res.code == 0, res.text
    assert "~ AWS::Logs::LogGroup" in res.err and "      RetentionInDays: 30 → 14" in res.err
    env_stack = next(s for s in res.json()["stacks"] if s["name"] == STACK)
    change = next(c for c in env_stack["changes"] if c["logical_id"] == "LogGroup")
    assert change["properties"] == [{"property": "RetentionInDays", "live": 30, "planned": 14}]
    template = project.c("cloudformation").get_template(StackName=STACK)["TemplateBody"]
    template = json.loads(template) if isinstance(template, str) else template
    assert template["Resources"]["LogGroup"]["Properties"]["RetentionInDays"] == 14


def test_destroy_refuses_while_preview_copies_or_other_environments_use_the_stack(project: Any, sim: Any) -> None:
    use_default_vpc(project)
    assert project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes").code == 0
    # Later, prod is pointed at the roles staging's stack created (deploy.yaml names them), in its
    # own cluster (bootstrap refuses that sharing up front; a hand edit afterwards gets here).
    doc = yaml.safe_load(Path(project.file).read_text())
    doc["environments"]["prod"]["roles"] = {"execution": f"arn:aws:iam::{ACCOUNT}:role/chat-api-staging-execution",
                                            "task": f"arn:aws:iam::{ACCOUNT}:role/chat-api-staging-task"}
    Path(project.file).write_text(yaml.safe_dump(doc, sort_keys=False))
    ecs = project.c("ecs")
    family = ecs.register_task_definition(family="chat-api-staging-api", requiresCompatibilities=["FARGATE"],
                                          networkMode="awsvpc", cpu="256", memory="512", containerDefinitions=[
                                              {"name": "api", "image": "x/y:1"}])["taskDefinition"]["family"]
    # Eleven preview copies in staging's cluster: more than one DescribeServices call takes (10).
    copies = [f"chat-api-staging-pr-{i}-api" for i in range(1, 12)]
    for name in copies:
        ecs.create_service(cluster="chat-api-staging", serviceName=name, taskDefinition=family, desiredCount=1)
    ecs.create_cluster(clusterName="chat-api-prod")
    ecs.create_service(cluster="chat-api-prod", serviceName="chat-api-prod-api", taskDefinition=family,
                       desiredCount=3)
    before = len(sim.calls_of("DescribeServices"))

    refused = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--destroy", "--yes")

    assert refused.code == 2, refused.text
    assert "cluster chat-api-staging still runs " + ", ".join(sorted(copies)) in refused.err
    assert "cluster chat-api-prod still runs chat-api-prod-api" in refused.err
    assert len(sim.calls_of("DescribeServices")) - before >= 3  # 11 copies in two calls, prod in one
    assert project.live_stacks()[STACK] == "CREATE_COMPLETE"

    for name in copies:
        ecs.delete_service(cluster="chat-api-staging", service=name, force=True)
    still = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--destroy", "--yes")
    assert still.code == 2 and "chat-api-prod-api" in still.err and "pr-1" not in still.err


def test_a_missing_secret_given_as_an_arn_is_created_by_its_name(project: Any) -> None:
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:chat-api/db-password-AbCdEf"
    doc = yaml.safe_load(Path(project.file).read_text())
    doc["services"]["api"]["secrets"]["DATABASE_PASSWORD"] = arn
    Path(project.file).write_text(yaml.safe_dump(doc, sort_keys=False))

    res = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes", "--create-secrets")

    assert res.code == 0, res.text
    assert f"aws secretsmanager create-secret --region {REGION} --name chat-api/db-password " in res.out
    assert "--name arn:" not in res.out and f"in place of {arn}" in res.out


def test_a_refusal_in_prepare_deletes_the_change_sets_made_before_it(project: Any) -> None:
    # staging's stack ends ROLLBACK_COMPLETE (a role that exists already, made by hand).
    project.c("iam").create_role(RoleName="chat-api-staging-execution", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": []}))
    assert project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes").code == 1
    # An edit to the account stack: its change set is made first, then staging's stack refuses.
    doc = yaml.safe_load(Path(project.file).read_text())
    doc["bootstrap"]["keep_images"] = 60
    Path(project.file).write_text(yaml.safe_dump(doc, sort_keys=False))

    res = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes")

    assert res.code == 2 and f"stack {STACK} is ROLLBACK_COMPLETE" in res.err, res.text
    pending = [s["ChangeSetName"] for s in project.c("cloudformation").list_change_sets(
        StackName="deployctl-chat-api")["Summaries"] if s["ExecutionStatus"] == "AVAILABLE"]
    assert pending == []

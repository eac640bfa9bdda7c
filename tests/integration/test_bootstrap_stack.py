"""What the stacks of `deployctl bootstrap` hold, checked in moto server's account (over HTTP):
the CI role carries exactly the policy `deployctl iam-policy` prints, and the tasks of an
environment on existing subnets get the stack's security group. The `project` fixture and the
SIMULATION of change-set execution come from tests/integration/test_bootstrap.py.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from tests.integration import test_bootstrap
from tests.integration.test_bootstrap import APP, STACK
from tests.support.aws_world import ACCOUNT, ecr_push

project = test_bootstrap.project  # the fixture: a git project with from_stack environments

ACCOUNT_STACK = f"deployctl-{APP}"


def _document(doc: Any) -> Any:
    """A policy document as IAM returns it: a dict (boto3 decodes the URL-encoded JSON), or, for
    the inline policy of a role moto's CloudFormation made, the Python repr moto stores."""
    if not isinstance(doc, str):
        return doc
    text = unquote(doc)
    return json.loads(text) if text.lstrip().startswith('{"') else ast.literal_eval(text)


def _outputs(project: Any, stack: str) -> dict[str, str]:
    found = project.c("cloudformation").describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    return {o["OutputKey"]: o["OutputValue"] for o in found}


def test_each_ci_role_holds_exactly_what_iam_policy_prints(project: Any) -> None:
    doc = yaml.safe_load(Path(project.file).read_text())  # previews run in staging's stack
    doc["environments"]["preview"] = {"target": "ecs", "preview": True, "from_stack": STACK,
                                      "services": {"api": {"count": 1}}}
    Path(project.file).write_text(yaml.safe_dump(doc, sort_keys=False))
    for env in ("staging", "prod"):
        res = project.cli("bootstrap", "-f", project.file, "--env", env, "--yes")
        assert res.code == 0, res.text
    iam = project.c("iam")
    for env in ("staging", "prod", "preview"):
        printed = project.cli("iam-policy", "-f", project.file, "--env", env, "--json", "--account", ACCOUNT,
                              "--repo", "acme/chat-api")
        assert printed.code == 0, printed.text
        want = printed.json()
        # The role is the account's (the account stack holds it), its ARN also an output of the env stack.
        arn = _outputs(project, ACCOUNT_STACK)["CiRoleArn" + env.capitalize()]
        if env != "preview":
            assert _outputs(project, f"deployctl-{APP}-{env}")["CiRoleArn"] == arn
        name = arn.rsplit("/", 1)[-1]
        got = _document(iam.get_role_policy(RoleName=name, PolicyName="deployctl")["PolicyDocument"])
        assert got == want["policy"], env
        # NetworkRead and TargetHealth: preflight and the rollout watcher call them on every deploy.
        sids = {s["Sid"] for s in got["Statement"]}
        assert {"NetworkRead", "StackOutputs"} <= sids, env
        assert ("TargetHealth" in sids) == (env != "preview"), env  # a preview joins no target group
        assert _document(iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]) == want["trust_policy"]
    # Once per account: the account stack holds both roles; the environments' stacks hold none.
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].endswith("-deployctl-ci")]
    assert sorted(roles) == [f"{APP}-preview-deployctl-ci", f"{APP}-prod-deployctl-ci", f"{APP}-staging-deployctl-ci"]
    cfn = project.c("cloudformation")
    held = {r.get("PhysicalResourceId")
            for r in cfn.describe_stack_resources(StackName=ACCOUNT_STACK)["StackResources"]}
    assert set(roles) <= held, held


def test_destroying_staging_keeps_the_ci_roles(project: Any) -> None:
    doc = yaml.safe_load(Path(project.file).read_text())
    doc["bootstrap"]["network"] = "default"  # moto cannot delete a VPC it made (docs/bootstrap.md)
    Path(project.file).write_text(yaml.safe_dump(doc, sort_keys=False))
    assert project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes").code == 0
    done = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--destroy", "--yes")
    assert done.code == 0, done.text
    assert project.c("iam").get_role(RoleName=f"{APP}-prod-deployctl-ci")["Role"]
    assert project.c("iam").get_role(RoleName=f"{APP}-staging-deployctl-ci")["Role"]
    assert STACK not in {s["StackName"] for s in project.c("cloudformation").list_stacks()["StackSummaries"]
                         if s["StackStatus"] != "DELETE_COMPLETE"}


def test_tasks_on_named_subnets_get_their_services_group_which_only_the_alb_reaches(project: Any,
                                                                                   sim: Any) -> None:
    """`existing` network: deploy.yaml names the subnets and a group of the team's; the api's
    tasks also get the stack's api group — reachable from the load balancer on 8000 only — and
    the worker's tasks get no group the load balancer may reach."""
    ec2 = project.c("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]]
    team = ec2.create_security_group(GroupName="team", Description="the team's", VpcId=vpc)["GroupId"]
    doc = yaml.safe_load(Path(project.file).read_text())
    doc["bootstrap"]["network"] = "existing"
    doc["environments"]["staging"]["network"] = {"subnets": subnets[:2], "security_groups": [team],
                                                 "public_ip": True}
    Path(project.file).write_text(yaml.safe_dump(doc, sort_keys=False))
    res = project.cli("bootstrap", "-f", project.file, "--env", "staging", "--yes", "--create-secrets")
    assert res.code == 0, res.text
    out = _outputs(project, STACK)
    project.c("secretsmanager").put_secret_value(SecretId="chat-api/openai-key", SecretString="sk-test-value")
    run = project.cli("run", "-f", project.file, "--env", "staging", "--image", ecr_push(project.c("ecr"), "v1"))
    assert run.code == 0, run.text

    services = project.c("ecs").describe_services(
        cluster="chat-api-staging", services=["chat-api-staging-api", "chat-api-staging-worker"])["services"]
    groups = {s["serviceName"]: s["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] for s in services}
    assert groups["chat-api-staging-api"] == [team, out["SecurityGroupApi"]]
    assert groups["chat-api-staging-worker"] == [team]
    api_group = ec2.describe_security_groups(GroupIds=[out["SecurityGroupApi"]])["SecurityGroups"][0]
    alb_group = next(g["GroupId"] for g in ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"] if g["GroupName"].startswith(
        f"{STACK}-LoadBalancerSecurityGroup") or any(t.get("Value") == f"{APP}-staging-alb" for t in g.get("Tags", [])))
    assert [(p["FromPort"], p["ToPort"], [u["GroupId"] for u in p["UserIdGroupPairs"]], p["IpRanges"])
            for p in api_group["IpPermissions"]] == [(8000, 8000, [alb_group], [])]

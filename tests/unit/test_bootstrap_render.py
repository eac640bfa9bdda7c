"""`deployctl bootstrap` templates: golden files for the reference deploy.yaml, cfn-lint on every
network mode, and the least-privilege and ownership rules.

Regenerate the golden files after an intended change, then review the diff by hand:
    DEPLOYCTL_UPDATE_GOLDEN=1 python -m pytest tests/unit/test_bootstrap_render.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployctl.app import bootstrap as use
from deployctl.config import ResolvedConfig, load_env, read
from deployctl.config.stack_refs import apply
from deployctl.errors import UsageError
from deployctl.render import cfn

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"


def reference() -> dict[str, ResolvedConfig]:
    loaded = read(ROOT / "deploy.yaml", environ={})
    return {name: load_env(loaded, name) for name in loaded.env_names()}


def config(tmp_path: Path, doc: dict[str, Any]) -> dict[str, ResolvedConfig]:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    loaded = read(path, environ={})
    return {name: load_env(loaded, name) for name in loaded.env_names()}


def minimal(**bootstrap: Any) -> dict[str, Any]:
    return {"version": 1, "app": "notes", "region": "eu-west-1",
            "image": {"repository": "notes", "registry": "ecr"},
            "services": {"api": {"port": 8000, "health": {"path": "/healthz"},
                                 "secrets": {"OPENAI_API_KEY": "notes/openai", "DB_URL": "ssm:/notes/db"}},
                         "admin": {"port": 9000},
                         "worker": {"command": ["python", "-m", "worker"]}},
            "bootstrap": bootstrap,
            "environments": {"staging": {"target": "ecs", "from_stack": "deployctl-notes-staging"},
                             "prod": {"target": "ecs", "from_stack": "deployctl-notes-prod",
                                      "promote_from": "staging"}}}


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_templates_match_golden_files(env: str) -> None:
    cfgs = reference()
    bp = use.plan(cfgs[env], cfgs)
    got = {s.name: s.template for s in bp.stacks}
    path = GOLDEN / f"bootstrap-{env}.json"
    text = json.dumps(got, indent=2, sort_keys=True) + "\n"
    if os.environ.get("DEPLOYCTL_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} differs: regenerate and review (see module docstring)"


def test_every_template_passes_cfn_lint(tmp_path: Path) -> None:
    """The golden templates and every network mode, through cfn-lint (errors and warnings)."""
    cfgs = reference()
    files = []
    for env in ("staging", "prod"):
        for stack in use.plan(cfgs[env], cfgs).stacks:
            files.append(tmp_path / f"{stack.name}.json")
            files[-1].write_text(json.dumps(stack.template))
    for mode in ("new", "public", "default"):
        doc = minimal(network=mode, github_repository="acme/notes",
                      certificate_arn="arn:aws:acm:eu-west-1:123456789012:certificate/x")
        for env in ("staging", "prod"):
            doc["environments"][env]["bootstrap"] = {"queues": [f"jobs-{env}"]}
        mine = config(tmp_path, doc)
        for env in ("staging", "prod"):
            for stack in use.plan(mine[env], mine).stacks:  # the account stack: OIDC provider, CI roles
                files.append(tmp_path / f"{mode}-{env}-{stack.name}.json")
                files[-1].write_text(json.dumps(stack.template))
    cfn_lint = Path(sys.executable).with_name("cfn-lint")  # the console script of the dev extra
    res = subprocess.run([str(cfn_lint), *map(str, files)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_execution_role_reads_exactly_the_referenced_secrets(tmp_path: Path) -> None:
    cfgs = config(tmp_path, minimal())
    role = use.plan(cfgs["staging"], cfgs).stacks[1].template["Resources"]["ExecutionRole"]
    stmts = {s["Sid"]: s for s in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]}
    assert stmts["ReadSecrets"]["Resource"] == [
        {"Fn::Sub": "arn:aws:secretsmanager:eu-west-1:${AWS::AccountId}:secret:notes/openai-??????"}]
    assert stmts["ReadParameters"]["Resource"] == [
        {"Fn::Sub": "arn:aws:ssm:eu-west-1:${AWS::AccountId}:parameter/notes/db"}]
    assert stmts["PullImage"]["Resource"] == {"Fn::Sub": "arn:aws:ecr:eu-west-1:${AWS::AccountId}:repository/notes"}
    # Only the registry login (an action without a resource) is on "*".
    assert [sid for sid, st in stmts.items() if st["Resource"] == "*"] == ["RegistryLogin"]


def test_the_alb_reaches_the_tasks_on_the_service_ports_only(tmp_path: Path) -> None:
    cfgs = config(tmp_path, minimal())
    res = use.plan(cfgs["staging"], cfgs).stacks[1].template["Resources"]
    ingress = [r["Properties"] for r in res.values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"]
    assert sorted((i["FromPort"], i["ToPort"]) for i in ingress) == [(8000, 8000), (9000, 9000)]
    assert all(i["SourceSecurityGroupId"] == {"Ref": "LoadBalancerSecurityGroup"} for i in ingress)
    assert "SecurityGroupIngress" not in res["ServiceSecurityGroup"]["Properties"]  # nothing from anywhere
    # The first HTTP service answers /, the others under /<service>/.
    rule = res["TargetGroupAdminRule"]["Properties"]
    assert rule["Conditions"][0]["PathPatternConfig"]["Values"] == ["/admin/*"]


def test_each_service_has_its_own_group_and_workers_get_no_ingress(tmp_path: Path) -> None:
    """The load balancer reaches api's tasks on 8000 only and admin's on 9000 only (not api on
    9000), nothing else; the worker's tasks accept nothing."""
    from deployctl.render.ecs import Facts, create_service

    cfgs = config(tmp_path, minimal())
    tpl = use.plan(cfgs["staging"], cfgs).stacks[1].template
    res = tpl["Resources"]
    reach = {(r["Properties"]["GroupId"]["Ref"], r["Properties"]["FromPort"], r["Properties"]["ToPort"])
             for r in res.values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"}
    assert reach == {("SecurityGroupApi", 8000, 8000), ("SecurityGroupAdmin", 9000, 9000)}
    egress = res["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    assert sorted((e["DestinationSecurityGroupId"]["Ref"], e["FromPort"], e["ToPort"]) for e in egress) == [
        ("SecurityGroupAdmin", 9000, 9000), ("SecurityGroupApi", 8000, 8000)]
    assert all("CidrIp" not in e for e in egress)  # not the default "anywhere" egress
    outputs = {k: f"value-of-{k}" for k in tpl["Outputs"]}
    cfg, _ = apply(cfgs["staging"], "deployctl-notes-staging", outputs)
    groups = {svc: create_service(cfg, svc, "td:1", Facts())["networkConfiguration"]["awsvpcConfiguration"][
        "securityGroups"] for svc in ("api", "admin", "worker")}
    assert groups == {"api": ["value-of-SecurityGroups", "value-of-SecurityGroupApi"],
                      "admin": ["value-of-SecurityGroups", "value-of-SecurityGroupAdmin"],
                      "worker": ["value-of-SecurityGroups"]}
    assert "SecurityGroupIngress" not in res["ServiceSecurityGroup"]["Properties"]


def test_network_modes(tmp_path: Path) -> None:
    for mode, params, public in (("new", set(), "DISABLED"), ("public", set(), "ENABLED"),
                                 ("default", {"VpcId", "DefaultSubnets"}, "ENABLED")):
        cfgs = config(tmp_path, minimal(network=mode))
        tpl = use.plan(cfgs["staging"], cfgs).stacks[1].template
        assert set(tpl.get("Parameters", {})) == params, mode
        assert tpl["Outputs"]["AssignPublicIp"]["Value"] == public, mode
        assert ("NatGateway" in tpl["Resources"]) == (mode == "new"), mode


def test_each_environments_stack_owns_its_roles_and_a_shared_name_is_refused(tmp_path: Path) -> None:
    """Each stack makes its own roles, scoped to its own secrets and log group. (This test used to
    check that a role name staging and prod share is created by staging's stack only: then prod's
    tasks ran with a role that could not write prod's log group or read prod-only secrets, and
    destroying staging deleted prod's roles.)"""
    cfgs = reference()
    for env in ("staging", "prod"):
        res = use.plan(cfgs[env], cfgs).stacks[1].template["Resources"]
        assert res["ExecutionRole"]["Properties"]["RoleName"] == f"chat-api-{env}-execution"
        assert res["TaskRole"]["Properties"]["RoleName"] == f"chat-api-{env}-task"
        policy = json.dumps(res["ExecutionRole"]["Properties"]["Policies"])
        assert f"log-group:/deployctl/chat-api/{env}" in policy
        other = "prod" if env == "staging" else "staging"
        assert f"/deployctl/chat-api/{other}" not in policy
        assert res["Cluster"]["Properties"]["ClusterName"] == f"ai-{env}"
    doc = minimal(queues=["jobs"])  # one queue for both environments
    for env in ("staging", "prod"):
        doc["environments"][env]["roles"] = {"execution": "arn:aws:iam::123456789012:role/notes-execution",
                                             "task": "arn:aws:iam::123456789012:role/notes-task"}
    shared = config(tmp_path, doc)
    with pytest.raises(UsageError) as refused:
        use.plan(shared["staging"], shared)
    assert ("staging's stack would create IAM role notes-execution, IAM role notes-task, SQS queue jobs "
            "(which prod uses too)") in str(refused.value)
    # Created outside bootstrap (bootstrap.existing in both): shared, and in neither stack.
    doc["bootstrap"]["existing"] = ["roles", "queues"]
    shared = config(tmp_path, doc)
    for env in ("staging", "prod"):
        res = use.plan(shared[env], shared).stacks[1].template["Resources"]
        assert "ExecutionRole" not in res and "Queue0" not in res
    # A queue per environment is each stack's own.
    doc = minimal()
    doc["environments"]["staging"]["bootstrap"] = {"queues": ["jobs-staging"]}
    doc["environments"]["prod"]["bootstrap"] = {"queues": ["jobs-prod"]}
    mine = config(tmp_path, doc)
    assert use.plan(mine["prod"], mine).stacks[1].template["Resources"]["Queue0"]["Properties"]["QueueName"] \
        == "jobs-prod"


def test_queues_the_services_scale_on_are_created_and_granted_to_the_task_role(tmp_path: Path) -> None:
    doc = minimal()
    doc["services"]["worker"]["autoscaling"] = {"min": 1, "max": 4, "queue": "notes-jobs",
                                                "queue_backlog_per_task": 20}
    doc["environments"]["prod"]["services"] = {"worker": {"autoscaling": {"queue": "notes-jobs-prod"}}}
    cfgs = config(tmp_path, doc)
    for env, queue in (("staging", "notes-jobs"), ("prod", "notes-jobs-prod")):
        res = use.plan(cfgs[env], cfgs).stacks[1].template["Resources"]
        assert res["Queue0"]["Properties"]["QueueName"] == queue
        (stmt,) = res["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        assert stmt["Resource"] == [{"Fn::Sub": f"arn:aws:sqs:eu-west-1:${{AWS::AccountId}}:{queue}"}]
        assert "sqs:ReceiveMessage" in stmt["Action"]


def test_existing_pieces_are_not_created(tmp_path: Path) -> None:
    cfgs = config(tmp_path, minimal(existing=["cluster", "roles", "repository"]))
    bp = use.plan(cfgs["staging"], cfgs)
    account, env = (s.template["Resources"] for s in bp.stacks)
    assert "Cluster" not in env and "ExecutionRole" not in env and "Repository" not in account
    assert bp.stacks[1].template["Outputs"]["Cluster"]["Value"] == "notes-staging"


def test_prod_gets_termination_protection_and_a_ci_role_that_reads_staging(tmp_path: Path) -> None:
    cfgs = config(tmp_path, minimal(github_repository="acme/notes"))
    prod = use.plan(cfgs["prod"], cfgs).stacks[1]
    assert prod.protect and not use.plan(cfgs["staging"], cfgs).stacks[1].protect
    account = use.plan(cfgs["prod"], cfgs).stacks[0]  # the CI roles are the account's (once per account)
    policy = json.dumps(account.template["Resources"]["CiRoleProd"]["Properties"]["Policies"])
    assert "service/notes-staging/notes-staging-api" in policy  # promote reads what staging runs


def test_previews_and_local_environments_are_refused() -> None:
    cfgs = reference()
    for env in ("preview", "dev"):
        with pytest.raises(UsageError):
            use.plan(cfgs[env], cfgs)


def test_stack_outputs_fill_what_deploy_yaml_leaves_out(tmp_path: Path) -> None:
    cfgs = config(tmp_path, minimal())
    outputs = {"Cluster": "notes-staging", "Subnets": "subnet-1,subnet-2", "SecurityGroups": "sg-1",
               "AssignPublicIp": "DISABLED", "ExecutionRoleArn": "arn:aws:iam::1:role/e",
               "TaskRoleArn": "arn:aws:iam::1:role/t", "TargetGroupApi": "arn:aws:elasticloadbalancing:tg/api"}
    cfg, origins = apply(cfgs["staging"], "deployctl-notes-staging", outputs)
    assert cfg.environment.cluster == "notes-staging" and cfg.environment.network is not None
    assert cfg.environment.network.subnets == ["subnet-1", "subnet-2"]
    assert cfg.services["api"].load_balancer is not None
    assert cfg.services["api"].load_balancer.target_group == "arn:aws:elasticloadbalancing:tg/api"
    assert cfg.services["worker"].load_balancer is None
    assert {o.setting: o.output for o in origins}["environment.roles.task"] == "TaskRoleArn"
    with pytest.raises(UsageError, match="has no output Cluster"):
        apply(cfgs["staging"], "deployctl-notes-staging", {})


def test_a_value_written_in_deploy_yaml_wins_over_the_stack(tmp_path: Path) -> None:
    doc = minimal()
    doc["environments"]["staging"]["cluster"] = "mine"
    cfgs = config(tmp_path, doc)
    outputs = {"Cluster": "theirs", "Subnets": "s", "SecurityGroups": "g", "AssignPublicIp": "ENABLED",
               "ExecutionRoleArn": "e", "TaskRoleArn": "t"}
    cfg, origins = apply(cfgs["staging"], "x", outputs)
    assert cfg.environment.cluster == "mine" and "environment.cluster" not in {o.setting for o in origins}
    assert cfn.names(cfgs["staging"]).cluster == "mine"


def test_the_ci_role_may_read_its_stacks_outputs_and_nothing_else_of_cloudformation(tmp_path: Path) -> None:
    from deployctl.render.iam import Request, allows, ci_policy

    cfgs = config(tmp_path, minimal(github_repository="acme/notes"))
    policy = ci_policy(cfn.effective_config(cfgs["staging"], "123456789012"), "123456789012")
    stack = "arn:aws:cloudformation:eu-west-1:123456789012:stack/deployctl-notes-staging/1a2b"
    assert allows(policy, Request("cloudformation:DescribeStacks", stack))
    assert not allows(policy, Request("cloudformation:DescribeStacks", stack.replace("staging", "prod")))
    actions = {a for st in policy["Statement"] for a in ([st["Action"]] if isinstance(st["Action"], str)
                                                       else st["Action"])}
    assert {a for a in actions if a.startswith("cloudformation:")} == {"cloudformation:DescribeStacks"}
    # …and the CI role bootstrap creates carries it.
    role = use.plan(cfgs["staging"], cfgs).stacks[0].template["Resources"]["CiRoleStaging"]
    assert "cloudformation:DescribeStacks" in json.dumps(role)


def test_the_ci_roles_are_the_accounts_with_exactly_the_iam_policy_of_each_environment(tmp_path: Path) -> None:
    """Once per account: whichever environment is bootstrapped, the account stack holds the OIDC
    provider and one role per environment (a staging job cannot assume prod's), each with the
    policy `iam-policy` computes from the config the stack's outputs complete (stack_refs.apply)."""
    from deployctl.render.iam import ci_policy

    cfgs = config(tmp_path, minimal(github_repository="acme/notes"))
    staging_account, staging_env = (s.template for s in use.plan(cfgs["staging"], cfgs).stacks)
    prod_account = use.plan(cfgs["prod"], cfgs).stacks[0].template
    assert staging_account == prod_account
    assert "AWS::IAM::Role" not in {r["Type"] for r in staging_env["Resources"].values()
                                    if r["Properties"].get("RoleName", "").endswith("-ci")}
    outputs = {"Cluster": "notes-staging", "Subnets": "subnet-1", "SecurityGroups": "sg-1",
               "AssignPublicIp": "DISABLED", "ExecutionRoleArn": "arn:aws:iam::${AWS::AccountId}:role/"
               "notes-staging-execution", "TaskRoleArn": "arn:aws:iam::${AWS::AccountId}:role/notes-staging-task",
               "TargetGroupApi": "notes-staging-api", "TargetGroupAdmin": "notes-staging-admin"}
    resolved, _ = apply(cfgs["staging"], "deployctl-notes-staging", outputs)
    want = cfn._substituted(ci_policy(resolved, "${AWS::AccountId}"))
    role = staging_account["Resources"]["CiRoleStaging"]["Properties"]
    assert role["Policies"][0]["PolicyDocument"] == want
    sids = {s["Sid"] for s in want["Statement"]}
    assert {"NetworkRead", "TargetHealth"} <= sids  # preflight and the rollout watcher call them
    assert staging_env["Outputs"]["CiRoleArn"]["Value"] == {
        "Fn::Sub": "arn:aws:iam::${AWS::AccountId}:role/notes-staging-deployctl-ci"}


def test_tasks_on_named_subnets_get_the_stacks_group_so_the_load_balancer_reaches_them(tmp_path: Path) -> None:
    """`existing` network (subnets named in deploy.yaml): the named groups stay, and each HTTP
    service's tasks also get the group the stack's load balancer may reach."""
    from deployctl.render.ecs import Facts, create_service

    doc = minimal()
    doc["environments"]["staging"]["network"] = {"subnets": ["subnet-1", "subnet-2"],
                                                 "security_groups": ["sg-team"]}
    cfgs = config(tmp_path, doc)
    tpl = use.plan(cfgs["staging"], cfgs).stacks[1].template
    assert cfn.network_mode(cfgs["staging"]) == "existing" and "LoadBalancer" in tpl["Resources"]
    outputs = {k: f"value-of-{k}" for k in tpl["Outputs"]}  # every output the stack declares
    cfg, _ = apply(cfgs["staging"], "deployctl-notes-staging", outputs)
    net = create_service(cfg, "api", "td:1", Facts())["networkConfiguration"]["awsvpcConfiguration"]
    assert net["subnets"] == ["subnet-1", "subnet-2"]
    ingress = [r["Properties"] for r in tpl["Resources"].values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"
               and r["Properties"]["FromPort"] == 8000]
    (group,) = [g for g in net["securityGroups"] if g != "sg-team"]
    assert "sg-team" in net["securityGroups"]
    assert {"Ref": group.removeprefix("value-of-")} == ingress[0]["GroupId"]


def _expires(policy: dict[str, Any], tag: str | None, newer: int, age_days: int) -> bool:
    """Whether ECR's lifecycle rules would expire an image with `tag` (None: untagged), `newer`
    images of its kind pushed after it and pushed `age_days` ago (the documented rule semantics:
    tagStatus, tagPatternList wildcards, imageCountMoreThan, sinceImagePushed)."""
    import fnmatch

    for rule in sorted(policy["rules"], key=lambda r: r["rulePriority"]):
        sel = rule["selection"]
        if sel["tagStatus"] == "untagged" and tag is not None:
            continue
        if sel["tagStatus"] == "tagged" and (tag is None or not any(
                fnmatch.fnmatchcase(tag, p) for p in sel.get("tagPatternList", ["*"]))):
            continue
        if sel["countType"] == "imageCountMoreThan" and newer >= sel["countNumber"]:
            return True
        if sel["countType"] == "sinceImagePushed" and age_days > sel["countNumber"]:
            return True
    return False


def test_the_repository_never_expires_an_image_a_release_may_run(tmp_path: Path) -> None:
    """deployctl tags each pushed image with image.tag ({git_sha}); staging, previews and prod
    share the repository and rollback may go back to any revision ECS keeps, so no tagged image
    expires by count — only previews' own tags ({env}-… templates) beyond keep_images, and
    untagged images (never what a release runs: tags are immutable) after 14 days."""
    cfgs = reference()
    account = use.plan(cfgs["staging"], cfgs).stacks[0].template["Resources"]["Repository"]["Properties"]
    assert account["ImageTagMutability"] == "IMMUTABLE"  # what the push stage creates (stages/access.py)
    policy = json.loads(account["LifecyclePolicy"]["LifecyclePolicyText"])
    assert not _expires(policy, "0123456789ab", newer=500, age_days=400)  # prod's image, 500 pushes ago
    assert _expires(policy, None, newer=0, age_days=15)
    doc = minimal(keep_images=10)
    doc["image"]["tag"] = "{env}-{git_sha}"
    doc["environments"]["preview"] = {"target": "ecs", "preview": True, "from_stack": "deployctl-notes-staging"}
    cfgs = config(tmp_path, doc)
    repo = use.plan(cfgs["staging"], cfgs).stacks[0].template["Resources"]["Repository"]["Properties"]
    policy = json.loads(repo["LifecyclePolicy"]["LifecyclePolicyText"])
    assert _expires(policy, "preview-0123456789ab", newer=10, age_days=1)
    assert not _expires(policy, "preview-0123456789ab", newer=9, age_days=100)
    assert not _expires(policy, "staging-0123456789ab", newer=500, age_days=400)
    assert not _expires(policy, "prod-0123456789ab", newer=500, age_days=400)


def test_a_preview_in_the_stack_of_staging_never_joins_its_target_group(tmp_path: Path) -> None:
    doc = minimal()
    doc["environments"]["preview"] = {"target": "ecs", "preview": True, "from_stack": "deployctl-notes-staging"}
    cfgs = config(tmp_path, doc)
    tpl = use.plan(cfgs["staging"], cfgs).stacks[1].template
    outputs = {k: f"value-of-{k}" for k in tpl["Outputs"]}
    staging, _ = apply(cfgs["staging"], "deployctl-notes-staging", outputs)
    preview, _ = apply(cfgs["preview"], "deployctl-notes-staging", outputs)
    assert staging.services["api"].load_balancer is not None
    assert preview.services["api"].load_balancer is None and preview.services["api"].security_groups == []
    assert preview.environment.cluster == "value-of-Cluster"


def test_the_stack_a_preview_runs_in_lets_its_roles_serve_the_preview(tmp_path: Path) -> None:
    """Previews run with staging's roles: those write the preview's log group (created with the
    same retention) and read its secrets; its CI role's policy is iam-policy's for the preview."""
    from deployctl.render.iam import ci_policy

    doc = minimal(github_repository="acme/notes")
    doc["environments"]["preview"] = {"target": "ecs", "preview": True, "from_stack": "deployctl-notes-staging",
                                      "services": {"api": {"secrets": {"PREVIEW_KEY": "notes/preview-key"}}}}
    cfgs = config(tmp_path, doc)
    account, env = (s.template for s in use.plan(cfgs["staging"], cfgs).stacks)
    assert env["Resources"]["LogGroupPreview"]["Properties"]["LogGroupName"] == "/deployctl/notes/preview"
    stmts = {s["Sid"]: s for s in env["Resources"]["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"]}
    assert {"Fn::Sub": "arn:aws:logs:eu-west-1:${AWS::AccountId}:log-group:/deployctl/notes/preview"} \
        in stmts["WriteLogs"]["Resource"]
    assert {"Fn::Sub": "arn:aws:secretsmanager:eu-west-1:${AWS::AccountId}:secret:notes/preview-key-??????"} \
        in stmts["ReadSecrets"]["Resource"]
    prod_env = use.plan(cfgs["prod"], cfgs).stacks[1].template["Resources"]
    assert "LogGroupPreview" not in prod_env and "/deployctl/notes/preview" not in json.dumps(prod_env)
    outputs = {k: f"value-of-{k}" for k in env["Outputs"]}
    outputs.update(Cluster="notes-staging", ExecutionRoleArn="arn:aws:iam::${AWS::AccountId}:role/"
                   "notes-staging-execution", TaskRoleArn="arn:aws:iam::${AWS::AccountId}:role/notes-staging-task")
    resolved, _ = apply(cfgs["preview"], "deployctl-notes-staging", outputs)
    role = account["Resources"]["CiRolePreview"]["Properties"]
    assert role["RoleName"] == "notes-preview-deployctl-ci"
    assert role["Policies"][0]["PolicyDocument"] == cfn._substituted(ci_policy(resolved, "${AWS::AccountId}"))

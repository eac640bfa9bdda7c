"""The CI role's policy covers every AWS call deployctl makes in a deploy.

A real `deployctl run --env staging --image … --only deploy` (and, for the preview policy, a
preview deploy by the ECS target plus `deployctl destroy`) runs against moto server with the
rollout simulation, which records every API call that reaches the server. Each call is mapped
to its IAM action, with the resource ARN and condition keys deployctl's requests carry (built
from deploy.yaml: the calls are recorded without parameters), and evaluated against the policy
`deployctl iam-policy` prints. Every call must be allowed.

What this cannot show: that AWS evaluates the policy the same way (no AWS account here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deployctl.config import load_env, read
from deployctl.config.model import ResolvedConfig
from deployctl.render import iam
from deployctl.render.iam import Request
from tests.integration.test_preview import ACCOUNT, World, cli, deploy, deploy_yaml, make_world, write_project


def requests_for(action: str, cfg: ResolvedConfig, world: World, preview: str | None) -> list[Request]:
    """The IAM requests one API call of deployctl amounts to (resource ARNs + condition keys)."""
    a = iam.Arns(cfg, ACCOUNT)
    services = [a.service(s, preview) for s in cfg.services]
    revisions = [a.family(s, preview).replace(":*", ":1") for s in cfg.services]
    tags = {"aws:RequestTag/deployctl:app": cfg.app}
    owned = {"aws:ResourceTag/deployctl:app": cfg.app}
    if preview:
        tags["aws:RequestTag/deployctl:preview"] = preview
        owned["aws:ResourceTag/deployctl:preview"] = preview
    cluster = {"ecs:cluster": a.cluster()}

    def each(resources: list[str], ctx: dict[str, str] | None = None) -> list[Request]:
        return [Request(action, r, ctx or {}) for r in resources]

    service, _, op = action.partition(":")
    if action in ("ecs:DescribeServices", "ecs:UpdateService", "ecs:DeleteService"):
        return each(services, owned)
    if action == "ecs:CreateService":
        return each(services, tags)
    if action in ("ecs:TagResource", "ecs:ListTagsForResource"):
        return each(services + revisions, {**owned, **tags})
    if action == "ecs:RegisterTaskDefinition":
        passed = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
        return [Request(action, "*", tags), *(Request("iam:PassRole", r, passed) for r in a.roles())]
    if action == "ecs:DescribeClusters":
        return each([a.cluster()])
    if action in ("ecs:ListTasks", "ecs:DescribeTasks", "ecs:ListServices"):
        return each(["*"], cluster)
    if action == "ecr:GetAuthorizationToken":
        return each(["*"])
    if service == "ecr":
        return each([a.repository()])
    if action == "secretsmanager:DescribeSecret":
        return each([world.secret_arn])
    if action == "cloudwatch:DescribeAlarms" or action == "cloudwatch:DescribeAlarmHistory":
        return each([a.alarm(n) for n in cfg.deploy.alarms])
    if action == "iam:GetRole":
        return each(a.roles())
    if service == "dynamodb":
        return each([a.lock_table(iam.LOCK_TABLE)])
    if service == "logs":
        return each([a.log_group()])
    return each(["*"])  # actions with no resource (ssm:DescribeParameters, elbv2 describes, sts)


def denied(policy: dict[str, Any], calls: list[Any], cfg: ResolvedConfig, world: World,
           preview: str | None = None) -> list[str]:
    out = []
    for call in calls:
        action = iam.iam_action(call.service, call.action)
        for req in requests_for(action, cfg, world, preview):
            if not iam.allows(policy, req):
                out.append(f"{call.service}.{call.action} → {req.action} on {req.resource} {dict(req.context)}")
    return sorted(set(out))


@pytest.fixture
def world(aws: Any, ecs_sim: Any, monkeypatch: pytest.MonkeyPatch) -> World:
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("USER", "tester")
    ecs_sim.configure(start_s=0.05, healthy_s=0.05, fail_s=0.05, drain_s=0.05, bake_s=0.05)
    return make_world(aws)


def test_policy_covers_every_call_of_a_staging_deploy(world: World, ecs_sim: Any, tmp_path: Path) -> None:
    proj = write_project(tmp_path, deploy_yaml(world))
    ref = world.push("v1")
    policy_out = cli(world.aws, proj, "iam-policy", "--env", "staging", "--json")
    assert policy_out.returncode == 0, policy_out.stderr
    policy = json.loads(policy_out.stdout)["policy"]
    cfg = load_env(read(proj / "deploy.yaml", environ={}), "staging")

    start = len(ecs_sim.calls)
    r = cli(world.aws, proj, "run", "--env", "staging", "--image", ref, "--only", "deploy")
    assert r.returncode == 0, r.stdout + r.stderr
    calls = ecs_sim.calls[start:]
    seen = {iam.iam_action(c.service, c.action) for c in calls}
    # the deploy really happened through the API, so the check is not vacuous
    assert {"ecs:RegisterTaskDefinition", "ecs:CreateService", "ecs:DescribeServices", "ecs:DescribeClusters",
            "secretsmanager:DescribeSecret", "ssm:DescribeParameters", "iam:GetRole", "ecr:DescribeImages",
            "elasticloadbalancing:DescribeTargetGroups", "cloudwatch:DescribeAlarms"} <= seen, sorted(seen)
    assert denied(policy, calls, cfg, world) == []

    # a second deploy of a new image: the update path (UpdateService, outcome tags, lock reuse)
    ref2 = world.push("v2")
    start = len(ecs_sim.calls)
    r = cli(world.aws, proj, "run", "--env", "staging", "--image", ref2, "--only", "deploy")
    assert r.returncode == 0, r.stdout + r.stderr
    calls = ecs_sim.calls[start:]
    assert "ecs:UpdateService" in {iam.iam_action(c.service, c.action) for c in calls}
    assert denied(policy, calls, cfg, world) == []

    # the evaluator is not a rubber stamp: without the service statement the same calls are denied
    narrowed = {**policy, "Statement": [s for s in policy["Statement"] if s["Sid"] != "EcsServicesWrite"]}
    assert any("ecs:UpdateService" in d for d in denied(narrowed, calls, cfg, world))
    assert not any(a in seen for a in ("secretsmanager:GetSecretValue", "ssm:GetParameter", "ssm:GetParameters"))


def test_preview_policy_covers_a_preview_deploy_and_destroy(world: World, ecs_sim: Any, tmp_path: Path) -> None:
    proj = write_project(tmp_path, deploy_yaml(world))
    ref = world.push("v1")
    cfg = load_env(read(proj / "deploy.yaml", environ={}), "preview")
    policy = iam.ci_policy(cfg, ACCOUNT)

    start = len(ecs_sim.calls)
    deploy(proj, "preview", ref, preview="pr-9")
    r = cli(world.aws, proj, "destroy", "--env", "preview", "--name", "pr-9", "--yes")
    assert r.returncode == 0, r.stderr
    calls = ecs_sim.calls[start:]
    seen = {iam.iam_action(c.service, c.action) for c in calls}
    assert {"ecs:CreateService", "ecs:RegisterTaskDefinition", "ecs:DeleteService",
            "ecs:DeregisterTaskDefinition", "ecs:ListServices"} <= seen, sorted(seen)
    assert denied(policy, calls, cfg, world, preview="pr-9") == []
    # the staging policy does not allow tearing services down
    staging = iam.ci_policy(load_env(read(proj / "deploy.yaml", environ={}), "staging"), ACCOUNT)
    assert any("ecs:DeleteService" in d for d in denied(staging, calls, cfg, world, preview="pr-9"))

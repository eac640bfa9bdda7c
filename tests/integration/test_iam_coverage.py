"""The CI role's policy covers every AWS call deployctl makes, for the environment that makes it.

Real deployctl runs against moto server with the rollout simulation, which records every API
call that reaches the server (`sim.calls`):

- `deployctl run --env staging --image … --only deploy` (create, then update), and a preview
  deploy by the ECS target plus `deployctl destroy`;
- `deployctl promote staging prod --yes`, checked against **prod's** policy (promote runs with
  the prod role and reads staging first), and `deployctl rollback --env staging --yes`, both
  driven like tests/integration/test_releases.py drives them (its fixtures, in this process);
- a run with `monitoring.publish_run_metrics` on and generated deployment alarms
  (`monitoring.roll_back_on`): the deploy resolves the ALB, writes the alarms and watches them;
- the ECR API calls of the push stage (deployctl/stages/access.py: GetAuthorizationToken,
  DescribeRepositories, CreateRepository; DescribeImages when resolving a digest), made by
  deployctl's own helpers on deployctl's own boto3 clients.

Each call is mapped to its IAM action, with the resource ARNs and condition keys deployctl's
requests carry (built from deploy.yaml: calls are recorded without parameters, so every
resource a call may name must be allowed), and evaluated by deployctl.render.iam.allows against
the policy `deployctl iam-policy` prints. Every call must be allowed. Where the resource is
only known after the fact (which alarms a deploy wrote), it is read back from moto.

What cannot be recorded here: the layer upload itself. `docker push` to moto's ECR is
impossible, so the registry-protocol actions of a push and a pull (ecr:BatchCheckLayerAvailability,
InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload, PutImage; BatchGetImage and
GetDownloadUrlForLayer for the build stage's "already in the registry" check) are checked
statically: the policy's `EcrRepository` statement must allow each of them on the app's
repository and nothing else (`EcrLogin` covers the token). What this cannot show either: that
AWS evaluates the policy the same way (no AWS account here).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployctl.config import load_env, read
from deployctl.config.model import ResolvedConfig
from deployctl.render import costcap, iam
from deployctl.render.iam import Request
from deployctl.render.monitoring import alarm_name, dashboard_name, deployment_alarm_names
from tests.integration.test_preview import (
    ACCOUNT,
    REGION,
    World,
    cli,
    deploy,
    deploy_yaml,
    write_project,
)
from tests.integration.test_releases import PROD_CLUSTER, Project
from tests.support.aws_world import QUICK_PHASES

SIM_PHASES = QUICK_PHASES

# The actions a `docker push` / registry pull of the image amounts to (not recordable on moto).
REGISTRY_PROTOCOL_ACTIONS = (
    "ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
)


def alarm_names(cfg: ResolvedConfig) -> tuple[list[str], list[str]]:
    """(every deployment alarm the ECS services are given, the generated ones among them),
    exactly as the service requests wire them (render.ecs.deployment_configuration)."""
    every: list[str] = []
    for svc in (None, *cfg.services):
        every += [n for n in deployment_alarm_names(cfg, cfg.monitoring, svc) if n not in every]
    return every, [n for n in every if n not in cfg.deploy.alarms]


def requests_for(action: str, cfg: ResolvedConfig, secrets: list[str], preview: str | None = None,
                 source: ResolvedConfig | None = None, written_alarms: list[str] | None = None) -> list[Request]:
    """The IAM requests one API call of deployctl amounts to (resource ARNs + condition keys).

    `source`: the environment `promote` reads with `cfg`'s role; its services and task
    definitions are among the resources a read may name. `written_alarms`: the alarms the run
    wrote (read back from moto); by default the generated deployment alarms."""
    a = iam.Arns(cfg, ACCOUNT)
    services = [a.service(s, preview) for s in cfg.services]
    revisions = [a.family(s, preview).replace(":*", ":1") for s in cfg.services]
    read_services, read_revisions = list(services), list(revisions)
    if source is not None:
        src = iam.Arns(source, ACCOUNT)
        read_services += [src.service(s) for s in source.services]
        read_revisions += [src.family(s).replace(":*", ":7") for s in source.services]
    # What deployctl tags every service and revision with (render.ecs.tags).
    tags = {"aws:RequestTag/deployctl:app": cfg.app, "aws:RequestTag/deployctl:env": cfg.env_name}
    owned = {"aws:ResourceTag/deployctl:app": cfg.app, "aws:ResourceTag/deployctl:env": cfg.env_name}
    if preview:
        tags["aws:RequestTag/deployctl:preview"] = preview
        owned["aws:ResourceTag/deployctl:preview"] = preview
    cluster = {"ecs:cluster": a.cluster()}
    every_alarm, generated = alarm_names(cfg)

    def each(resources: list[str], ctx: dict[str, str] | None = None, act: str = action) -> list[Request]:
        return [Request(act, r, ctx or {}) for r in resources]

    service, _, op = action.partition(":")
    if action == "ecs:DescribeServices":
        return each(read_services, owned)
    if action in ("ecs:UpdateService", "ecs:DeleteService"):
        return each(services, owned)
    if action == "ecs:CreateService":
        return each(services, tags)
    if action == "ecs:ListTagsForResource":
        return each(read_services + read_revisions, owned)
    if action == "ecs:DeregisterTaskDefinition":  # preview teardown
        return each(revisions, owned)
    if action == "ecs:TagResource":
        return each(services + revisions, {**owned, **tags})
    if action == "ecs:UntagResource":  # a rollback's rerun: the oldest rerun tags past ECS's 50
        return each(revisions, owned)
    if action == "ecs:RegisterTaskDefinition":
        passed = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
        return [Request(action, "*", tags), *(Request("iam:PassRole", r, passed) for r in a.roles())]
    if action == "ecs:DescribeClusters":
        return each([a.cluster()])
    if action in ("ecs:ListTasks", "ecs:DescribeTasks", "ecs:ListServices"):
        return each(["*"], cluster)
    if action == "ecs:RunTask":  # one-off tasks: tagged on create (ecs:TagResource with ecs:CreateAction)
        task = a._ecs(f"task/{cfg.environment.cluster}/0123456789abcdef")
        return each(revisions, cluster) + each([task], {**tags, "ecs:CreateAction": "RunTask"}, "ecs:TagResource")
    if action == "ecs:StopTask":
        return each([a._ecs(f"task/{cfg.environment.cluster}/0123456789abcdef")], {**owned, **cluster})
    if action == "ecr:GetAuthorizationToken":
        return each(["*"])
    if action == "ecr:CreateRepository":  # sends tags: AWS also checks ecr:TagResource (tag on create)
        return each([a.repository()]) + each([a.repository()], act="ecr:TagResource")
    if service == "ecr":
        return each([a.repository()])
    if action == "secretsmanager:DescribeSecret":
        return each(secrets)
    put = [a.alarm(n) for n in (generated if written_alarms is None else written_alarms)]
    # The cost cap's alarms: looked for by exact name on every deploy, deleted when dropped.
    caps = [] if preview or cfg.environment.preview else \
        [a.alarm(alarm_name(cfg, svc, kind)) for svc in cfg.services for kind in costcap.CAP_KINDS]
    if action == "cloudwatch:DescribeAlarms":  # the deployment alarms; before a put, the alarms put
        return each([a.alarm(n) for n in every_alarm] + put + caps)
    if action == "cloudwatch:DeleteAlarms":
        return each(caps)
    topic = costcap.topic_arn(cfg, ACCOUNT)
    if action == "sns:CreateTopic":  # sends Tags: sns:TagResource is checked too
        return each([topic]) + each([topic], act="sns:TagResource")
    if service == "sns" and action != "sns:Unsubscribe":  # Unsubscribe has no resource type
        return each([topic])
    if action == "cloudwatch:PutMetricAlarm":  # sends Tags: cloudwatch:TagResource is checked too
        return each(put) + each(put, act="cloudwatch:TagResource")
    if action == "cloudwatch:PutDashboard":
        return each([a.dashboard(dashboard_name(cfg))])
    dlq = [a.queue(f"{cfg.app}-{cfg.env_name}-jobs-dlq")] if cfg.jobs else []
    if action == "sqs:GetQueueUrl":
        named = {cfg.monitoring.queue.name} if cfg.monitoring and cfg.monitoring.queue else set()
        named |= {s.autoscaling.queue for s in cfg.services.values() if s.autoscaling and s.autoscaling.queue}
        return each([a.queue(q) for q in sorted(named)]) + each(dlq)
    if action in ("sqs:CreateQueue", "sqs:GetQueueAttributes"):  # the jobs' dead-letter queue
        return each(dlq)
    sched = f"arn:aws:scheduler:{cfg.region}:{ACCOUNT}"
    group = f"deployctl-{cfg.app}-{cfg.env_name}"
    if action in ("scheduler:CreateSchedule", "scheduler:UpdateSchedule"):  # pass jobs_role to the scheduler
        passed = {"iam:PassedToService": "scheduler.amazonaws.com"}
        return each([f"{sched}:schedule/{group}/{j}" for j in cfg.jobs]) + \
            [Request("iam:PassRole", str(cfg.environment.jobs_role), passed)]
    if action in ("scheduler:DeleteSchedule", "scheduler:GetSchedule"):
        return each([f"{sched}:schedule/{group}/removed-job"])
    if action == "scheduler:GetScheduleGroup":
        return each([f"{sched}:schedule-group/{group}"])
    if action == "scheduler:CreateScheduleGroup":  # sends Tags: scheduler:TagResource is checked too
        return each([f"{sched}:schedule-group/{group}"]) + each([f"{sched}:schedule-group/{group}"],
                                                                 act="scheduler:TagResource")
    if action == "cloudwatch:PutMetricData":
        mon = cfg.monitoring
        return each(["*"], {"cloudwatch:namespace": mon.run_metrics_namespace if mon else ""})
    if action == "iam:GetRole":
        return each(a.roles())
    if service == "application-autoscaling" and not op.startswith("Describe"):  # ECS targets only
        return each([a.scalable_targets()], {"application-autoscaling:service-namespace": "ecs"})
    if service == "dynamodb":
        return each([a.lock_table(iam.LOCK_TABLE)])
    if service == "logs":
        return each([a.log_group()])
    return each(["*"])  # actions with no resource (ssm:DescribeParameters, elbv2 describes, sts)


def denied(policy: dict[str, Any], calls: list[Any], cfg: ResolvedConfig, secrets: list[str],
           preview: str | None = None, source: ResolvedConfig | None = None,
           written_alarms: list[str] | None = None) -> list[str]:
    out = []
    for call in calls:
        action = iam.iam_action(call.service, call.action)
        for req in requests_for(action, cfg, secrets, preview, source, written_alarms):
            if not iam.allows(policy, req):
                out.append(f"{call.service}.{call.action} → {req.action} on {req.resource} {dict(req.context)}")
    return sorted(set(out))


def seen(calls: list[Any]) -> set[str]:
    return {iam.iam_action(c.service, c.action) for c in calls}


def without(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    assert any(s["Sid"] == sid for s in policy["Statement"]), sid
    return {**policy, "Statement": [s for s in policy["Statement"] if s["Sid"] != sid]}


def secret_arns(secretsmanager: Any) -> list[str]:
    return [secretsmanager.describe_secret(SecretId="chat-api/openai-key")["ARN"]]


# ------------------------------------------------------------------------------------ run


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
    # the deploy really happened through the API, so the check is not vacuous
    assert {"ecs:RegisterTaskDefinition", "ecs:CreateService", "ecs:DescribeServices", "ecs:DescribeClusters",
            "secretsmanager:DescribeSecret", "ssm:DescribeParameters", "iam:GetRole", "ecr:DescribeImages",
            "elasticloadbalancing:DescribeTargetGroups", "cloudwatch:DescribeAlarms"} <= seen(calls), seen(calls)
    assert denied(policy, calls, cfg, [world.secret_arn]) == []
    first = seen(calls)

    # a second deploy of a new image: the update path (UpdateService, outcome tags, lock reuse)
    ref2 = world.push("v2")
    start = len(ecs_sim.calls)
    r = cli(world.aws, proj, "run", "--env", "staging", "--image", ref2, "--only", "deploy")
    assert r.returncode == 0, r.stdout + r.stderr
    calls = ecs_sim.calls[start:]
    assert "ecs:UpdateService" in seen(calls)
    assert denied(policy, calls, cfg, [world.secret_arn]) == []

    # the evaluator is not a rubber stamp: without the service statement the same calls are denied
    assert any("ecs:UpdateService" in d for d in denied(without(policy, "EcsServicesWrite"), calls, cfg,
                                                          [world.secret_arn]))
    assert not any(a in first | seen(calls)
                   for a in ("secretsmanager:GetSecretValue", "ssm:GetParameter", "ssm:GetParameters"))


def test_policy_covers_run_metrics_and_the_monitoring_alarms_of_a_deploy(world: World, ecs_sim: Any,
                                                                          tmp_path: Path) -> None:
    """monitoring.publish_run_metrics → PutMetricData in its namespace; monitoring.roll_back_on →
    the deploy resolves the ALB dimension by name, writes the monitoring alarms (PutMetricAlarm)
    and watches its deployment alarms (DescribeAlarms)."""
    doc = deploy_yaml(world)
    doc["monitoring"] = {"load_balancer": "chat-api", "error_rate": 5, "latency": {"p50": "2s", "p99": "10s"},
                         "roll_back_on": ["error_rate", "latency_p99"], "dashboard": False,
                         "publish_run_metrics": True, "run_metrics_namespace": "ChatApi/Deploys"}
    proj = write_project(tmp_path, doc)
    cfg = load_env(read(proj / "deploy.yaml", environ={}), "staging")
    _, generated = alarm_names(cfg)
    assert sorted(generated) == ["chat-api-staging-api-error-rate", "chat-api-staging-api-latency-p99"]
    policy_out = cli(world.aws, proj, "iam-policy", "--env", "staging", "--json")
    assert policy_out.returncode == 0, policy_out.stderr
    policy = json.loads(policy_out.stdout)["policy"]
    secrets = [world.secret_arn]

    start = len(ecs_sim.calls)
    r = cli(world.aws, proj, "run", "--env", "staging", "--image", world.push("v1"), "--only", "deploy")
    assert r.returncode == 0, r.stdout + r.stderr
    calls = ecs_sim.calls[start:]
    assert {"elasticloadbalancing:DescribeLoadBalancers", "cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms",
            "cloudwatch:PutMetricData", "ecs:CreateService"} <= seen(calls), seen(calls)
    assert "could not publish run metrics" not in r.stderr
    # The resources those calls named, read back from moto (calls are recorded without parameters):
    # the alarms deployctl wrote, and the namespace the run metrics went to.
    written = sorted(a["AlarmName"] for a in world.c("cloudwatch").describe_alarms()["MetricAlarms"]
                     if str(a.get("AlarmDescription", "")).startswith("deployctl:"))
    assert set(generated) < set(written), written  # the p50 alarm is written too
    published = world.c("cloudwatch").list_metrics(Namespace="ChatApi/Deploys")["Metrics"]
    assert {"RunDuration", "RunSucceeded"} <= {m["MetricName"] for m in published}
    assert denied(policy, calls, cfg, secrets, written_alarms=written) == []

    # each new statement is needed: take it away and those calls are denied
    for sid, action in (("RunMetrics", "cloudwatch:PutMetricData"),
                        ("MonitoringAlarmsWrite", "cloudwatch:PutMetricAlarm"),
                        ("AlarmLoadBalancer", "elasticloadbalancing:DescribeLoadBalancers"),
                        ("DeploymentAlarms", "cloudwatch:DescribeAlarms")):
        assert any(action in d for d in denied(without(policy, sid), calls, cfg, secrets,
                                               written_alarms=written)), sid
    # the user's own deploy.alarms are read, never written
    user_alarm = iam.Arns(cfg, ACCOUNT).alarm(cfg.deploy.alarms[0])
    assert iam.allows(policy, Request("cloudwatch:DescribeAlarms", user_alarm))
    assert not iam.allows(policy, Request("cloudwatch:PutMetricAlarm", user_alarm))


# ------------------------------------------------------------------------------------ ECR (push stage)


def test_policy_covers_the_ecr_calls_of_the_push_stage(world: World, ecs_sim: Any, tmp_path: Path) -> None:
    """The push stage's ECR API calls, made by deployctl's own helpers on its own clients (a
    `docker push` to moto is impossible: see the module docstring for the layer upload)."""
    from deployctl.adapters import aws as awsa
    from deployctl.adapters.registry import ImageRef
    from deployctl.stages.access import RegistryAccess, ensure_ecr_repository, resolve_digest

    proj = write_project(tmp_path, deploy_yaml(world))
    cfg = load_env(read(proj / "deploy.yaml", environ={}), "staging")
    policy = iam.ci_policy(cfg, ACCOUNT)
    host = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    world.c("ecr").delete_repository(repositoryName=cfg.image.repository, force=True)  # first push ever
    ecr = awsa.clients(cfg.region).ecr

    start = len(ecs_sim.calls)
    assert ensure_ecr_repository(ecr, cfg.image.repository, app=cfg.app) is True  # describe → create
    assert ensure_ecr_repository(ecr, cfg.image.repository, app=cfg.app) is False  # describe only
    access = RegistryAccess(host, ecr=ecr)
    assert access.explicit() is not None  # GetAuthorizationToken, for the daemon's push
    calls = ecs_sim.calls[start:]
    ref = world.push("v1")  # stands in for the layer upload (not deployctl: not recorded here)
    start = len(ecs_sim.calls)
    digest = resolve_digest(ImageRef.parse(f"{host}/{cfg.image.repository}:v1"), access, ecr)
    assert ref.endswith(digest)
    calls += ecs_sim.calls[start:]

    assert seen(calls) == {"ecr:DescribeRepositories", "ecr:CreateRepository", "ecr:GetAuthorizationToken",
                           "ecr:DescribeImages"}, seen(calls)
    assert denied(policy, calls, cfg, []) == []
    assert any("ecr:CreateRepository" in d for d in denied(without(policy, "EcrRepository"), calls, cfg, []))
    assert any("GetAuthorizationToken" in d for d in denied(without(policy, "EcrLogin"), calls, cfg, []))

    # The registry-protocol side of push/pull, statically: on this repository, and only on it.
    repo = iam.Arns(cfg, ACCOUNT).repository()
    other = repo.rsplit("/", 1)[0] + "/someone-else"
    for action in REGISTRY_PROTOCOL_ACTIONS:
        assert iam.allows(policy, Request(action, repo)), action
        assert not iam.allows(policy, Request(action, other)), action
        assert not iam.allows(without(policy, "EcrRepository"), Request(action, repo)), action


# ------------------------------------------------------------------------------------ promote, rollback


def _cfgs(proj: Project) -> tuple[ResolvedConfig, ResolvedConfig]:
    loaded = read(proj.path / "deploy.yaml", environ={})
    return load_env(loaded, "staging"), load_env(loaded, "prod")


def _policy(proj: Project, env_name: str) -> dict[str, Any]:
    res = proj.cli("iam-policy", "-f", proj.file, "--env", env_name, "--json")
    assert res.code == 0, res.text
    return dict(res.json()["policy"])


def test_prod_policy_covers_promote_staging_prod(project: Project, sim: Any) -> None:  # noqa: F811
    staging, prod = _cfgs(project)
    project.deployed("staging", "v1")
    policy = _policy(project, "prod")
    secrets = secret_arns(project.world.c("secretsmanager"))

    start = len(sim.calls)
    res = project.cli("promote", "staging", "prod", "-f", project.file, "--yes")
    assert res.code == 0, res.text
    calls = sim.calls[start:]
    assert {"ecs:DescribeServices", "ecs:ListTaskDefinitions", "ecs:DescribeTaskDefinition",
            "ecs:RegisterTaskDefinition", "ecs:CreateService", "ecs:TagResource",
            "ecr:DescribeImages"} <= seen(calls), seen(calls)
    assert denied(policy, calls, prod, secrets, source=staging) == []

    # promote reads staging with the prod role: without the source reads it is denied there
    missing = denied(without(policy, "PromoteSourceRead"), calls, prod, secrets, source=staging)
    assert any("ecs:DescribeServices" in d and "/ai-staging/" in d for d in missing), missing
    # …and staging stays read-only for the prod role
    src = iam.Arns(staging, ACCOUNT)
    for action in sorted(iam.ECS_WRITE_ACTIONS - iam.ECS_NO_RESOURCE_LEVEL):
        for arn in [*src.services(), *(f.replace(":*", ":1") for f in src.families())]:
            assert not iam.allows(policy, Request(action, arn, {"aws:ResourceTag/deployctl:app": "chat-api"})), (
                action, arn)
    # the RegisterTaskDefinition condition holds: the prod revision carries deployctl:app
    arn = project.world.c("ecs").describe_services(cluster=PROD_CLUSTER, services=["chat-api-prod-api"])[
        "services"][0]["taskDefinition"]
    tags = project.world.c("ecs").describe_task_definition(taskDefinition=arn, include=["TAGS"])["tags"]
    assert {"key": "deployctl:app", "value": "chat-api"} in tags


def test_staging_policy_covers_rollback(project: Project, sim: Any) -> None:  # noqa: F811
    staging, _ = _cfgs(project)
    project.deployed("staging", "v1")
    project.deployed("staging", "v2")
    policy = _policy(project, "staging")
    secrets = secret_arns(project.world.c("secretsmanager"))

    start = len(sim.calls)
    res = project.cli("rollback", "-f", project.file, "--env", "staging", "--yes")
    assert res.code == 0, res.text
    calls = sim.calls[start:]
    assert {"ecs:DescribeServices", "ecs:ListTaskDefinitions", "ecs:DescribeTaskDefinition",
            "ecs:UpdateService", "ecs:TagResource"} <= seen(calls), seen(calls)
    assert denied(policy, calls, staging, secrets) == []
    assert any("ecs:UpdateService" in d for d in denied(without(policy, "EcsServicesWrite"), calls, staging,
                                                          secrets))
    # The old revision, still ACTIVE, runs again as it is (nothing registered); the rollback is
    # recorded on it (TagResource on a revision that carries deployctl:app, the tag condition).
    assert "ecs:RegisterTaskDefinition" not in seen(calls)
    arn = project.world.c("ecs").describe_services(cluster="ai-staging", services=["chat-api-staging-api"])[
        "services"][0]["taskDefinition"]
    assert arn.endswith(":1")
    tags = project.world.c("ecs").describe_task_definition(taskDefinition=arn, include=["TAGS"])["tags"]
    assert {"key": "deployctl:app", "value": "chat-api"} in tags
    assert any(t["key"].startswith("deployctl:rerun:") for t in tags)


# ------------------------------------------------------------------------------------ preview


def test_preview_policy_covers_a_preview_deploy_and_destroy(world: World, ecs_sim: Any, tmp_path: Path) -> None:
    proj = write_project(tmp_path, deploy_yaml(world))
    ref = world.push("v1")
    cfg = load_env(read(proj / "deploy.yaml", environ={}), "preview")
    policy = iam.ci_policy(cfg, ACCOUNT)

    start = len(ecs_sim.calls)
    deploy(proj, "preview", ref, preview="pr-9")
    for reading in (("previews",), ("status",), ("status", "--name", "pr-9"), ("history", "--name", "pr-9")):
        r = cli(world.aws, proj, *reading, "--env", "preview")
        assert r.returncode == 0, (reading, r.stderr)
    r = cli(world.aws, proj, "destroy", "--env", "preview", "--name", "pr-9", "--yes")
    assert r.returncode == 0, r.stderr
    calls = ecs_sim.calls[start:]
    assert {"ecs:CreateService", "ecs:RegisterTaskDefinition", "ecs:DeleteService",
            "ecs:DeregisterTaskDefinition", "ecs:ListServices"} <= seen(calls), seen(calls)
    assert denied(policy, calls, cfg, [world.secret_arn], preview="pr-9") == []
    # the staging policy does not allow tearing services down
    staging = iam.ci_policy(load_env(read(proj / "deploy.yaml", environ={}), "staging"), ACCOUNT)
    assert any("ecs:DeleteService" in d for d in denied(staging, calls, cfg, [world.secret_arn], preview="pr-9"))


# ------------------------------------------------------------------------------------ every command, exactly

# Granted without a recorded call, each for a reason the recording cannot show:
NOT_RECORDABLE = {
    # `docker push`/pull of the layers (module docstring): checked statically above.
    **dict.fromkeys(REGISTRY_PROTOCOL_ACTIONS, "registry protocol of docker push/pull"),
    # Application Auto Scaling creates its ECS service-linked role on an account's first
    # RegisterScalableTarget, as the caller; moto does not.
    "iam:CreateServiceLinkedRole": "Application Auto Scaling's service-linked role, made on first use",
    # `status` reads it only for a capped service at 0 tasks whose cap alarm is back to OK; moto
    # does not implement DescribeScalingActivities (the status test here runs with the alarm in ALARM).
    "application-autoscaling:DescribeScalingActivities": "not implemented by moto",
}


def granted(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


def needed(calls: list[Any], cfg: ResolvedConfig, secrets: list[str], written: list[str]) -> set[str]:
    """Every IAM action the recorded calls amount to (iam:PassRole with RegisterTaskDefinition, …)."""
    return {req.action for call in calls
            for req in requests_for(iam.iam_action(call.service, call.action), cfg, secrets, written_alarms=written)}


def test_staging_policy_grants_exactly_what_every_command_calls(world: World, ecs_sim: Any, one_off_tasks: Any,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run (create, update, a failed rollout), rollback, status, resume, history, monitor apply,
    metrics, unlock, task run (one that ends, one stopped at its time limit), logs and the push
    stage's ECR calls, all recorded on moto: the policy allows every call, and grants no action
    that none of them makes (NOT_RECORDABLE aside). The cost cap is created, loses a subscriber,
    is removed and comes back; its stop is simulated (moto runs no alarm actions)."""
    from deployctl import lock
    from tests.simulation.one_off_tasks import Script

    # A short lease, so the deploys' lock heartbeats (UpdateItem) happen and are recorded too.
    monkeypatch.setenv(lock.LEASE_ENV, "1s")
    from deployctl.adapters import aws as awsa
    from deployctl.adapters.registry import ImageRef
    from deployctl.stages.access import RegistryAccess, ensure_ecr_repository, resolve_digest
    from tests.support.aws_world import API, CLUSTER

    world.c("sqs").create_queue(QueueName="chat-jobs")
    doc = deploy_yaml(world)
    doc["services"]["worker"]["spot"] = True
    doc["services"]["worker"]["autoscaling"] = {"min": 1, "max": 2, "target_cpu": 60, "queue": "chat-jobs",
                                                "queue_backlog_per_task": 10}
    doc["monitoring"] = {
        "load_balancer": "chat-api", "error_rate": 5, "latency": {"p99": "10s"},
        "tokens": {"namespace": "ChatApi/LLM", "metric": "TokensPerRequest", "dimensions": {"Service": "{service}"},
                   "max_per_request": 6000, "hourly_cap": 2000000, "service": "api"},
        "cost_cap": {"notify": ["oncall@example.com", "https://hooks.example.com/cap"], "on_cap": "stop",
                     "services": ["api"]},
        "queue": {"name": "chat-jobs", "max_visible": 1000, "service": "worker"},
        "roll_back_on": ["error_rate"], "dashboard": True, "publish_run_metrics": True,
        "run_metrics_namespace": "ChatApi/Deploys",
        "endpoints": {"routes": ["/v1/chat", "/v1/embed"], "error_rate": 5, "fields": {"tokens": "tokens"}}}
    # jobs: schedules created by the first run; the second updates one and deletes the removed one.
    doc["jobs"] = {"embed": {"command": ["python", "-m", "embed"], "service": "api", "schedule": "rate(6 hours)"},
                   "old": {"command": ["true"], "service": "api", "schedule": "rate(1 day)"}}
    doc["environments"]["staging"]["jobs_role"] = f"arn:aws:iam::{ACCOUNT}:role/chat-api-jobs"
    proj = write_project(tmp_path, doc)
    cfg = load_env(read(proj / "deploy.yaml", environ={}), "staging")
    out = cli(world.aws, proj, "iam-policy", "--env", "staging", "--json")
    assert out.returncode == 0, out.stderr
    policy = json.loads(out.stdout)["policy"]
    images = [world.push(tag) for tag in ("v1", "v2", "v3")]
    with_old = (proj / "deploy.yaml").read_text()
    del doc["jobs"]["old"]
    doc["monitoring"]["cost_cap"]["notify"] = ["oncall@example.com"]  # the webhook is unsubscribed
    without_old = json.dumps(doc)  # JSON is YAML
    calls: list[Any] = []  # deployctl's calls only: what the test itself does to moto is left out

    def ok(*args: str, code: int = 0) -> None:
        start = len(ecs_sim.calls)
        r = cli(world.aws, proj, *args)
        assert r.returncode == code, " ".join(args) + "\n" + r.stdout + r.stderr
        calls.extend(ecs_sim.calls[start:])

    ok("run", "--env", "staging", "--image", images[0], "--only", "deploy")
    (proj / "deploy.yaml").write_text(without_old)
    ok("run", "--env", "staging", "--image", images[1], "--only", "deploy")
    # deploy.yaml drops the worker's autoscaling: the next deploy deletes its policies and target.
    dropped = json.loads(json.dumps(doc))
    del dropped["services"]["worker"]["autoscaling"]
    # ... and the cost cap: its alarm, the api's stop policy and target, the topic are deleted.
    del dropped["monitoring"]["cost_cap"]
    del dropped["monitoring"]["tokens"]["hourly_cap"]
    (proj / "deploy.yaml").write_text(yaml.safe_dump(dropped, sort_keys=False))
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qam", "no scaling"],
                   cwd=proj, check=True)
    ok("run", "--env", "staging", "--image", images[1], "--only", "deploy")
    (proj / "deploy.yaml").write_text(with_old)
    ecs_sim.script(API, "tasks_fail_to_start", cluster=CLUSTER)
    ok("run", "--env", "staging", "--image", images[2], "--only", "deploy", code=1)
    ecs_sim.script(API, "success", cluster=CLUSTER)
    # The revisions the rollback may run again already hold 45 rollbacks' records: the rollback
    # drops the oldest past ECS's 50 tags per resource (ecs:UntagResource).
    for family in world.c("ecs").list_task_definition_families(familyPrefix="chat-api-staging")["families"]:
        for arn in world.c("ecs").list_task_definitions(familyPrefix=family)["taskDefinitionArns"]:
            world.c("ecs").tag_resource(resourceArn=arn, tags=[
                {"key": f"deployctl:rerun:20200101T0000{i:02d}Z-000000000000-0000", "value": "outcome=succeeded"}
                for i in range(45)])
    ok("rollback", "--env", "staging", "--yes")
    # The cap fires (simulated: moto runs no alarm actions): status, then resume once it is OK.
    cap_alarm = alarm_name(cfg, "api", "tokens_hourly")
    world.c("cloudwatch").set_alarm_state(AlarmName=cap_alarm, StateValue="ALARM", StateReason="simulated")
    world.c("ecs").update_service(cluster=CLUSTER, service=API, desiredCount=0)
    ok("status", "--env", "staging", "--json")
    world.c("cloudwatch").set_alarm_state(AlarmName=cap_alarm, StateValue="OK", StateReason="simulated")
    ok("resume", "--env", "staging", "--yes")
    ok("history", "--env", "staging", "--json")
    # A metric filter of an earlier config (a route filter deployctl no longer renders): apply deletes it.
    world.c("logs").put_metric_filter(
        logGroupName="/deployctl/chat-api/staging", filterName="chat-api-staging-endpoint-old",
        filterPattern="{ $.x = 1 }",
        metricTransformations=[{"metricName": "Old", "metricNamespace": "Old", "metricValue": "1"}])
    ok("monitor", "apply", "--env", "staging", "--json")
    ok("metrics", "--env", "staging", "--json")
    table = lock.LockTable(world.c("dynamodb"))
    now = time.time()
    assert table.try_put(lock.Holder(key=lock.lock_key("chat-api", "staging"), token="dead", who="ci", host="runner",
                                     pid=1, command="deployctl run", started_at=now, expires_at=now + 600, release=""))
    ok("unlock", "--env", "staging", "--yes")
    assert table.read(lock.lock_key("chat-api", "staging")) is None
    one_off_tasks.script(Script(exit_code=0, lines=("ok",)), Script(exit_code=0, run_s=60))
    ok("task", "run", "--env", "staging", "--service", "api", "--", "echo", "ok")
    ok("task", "run", "--env", "staging", "--service", "api", "--timeout", "1s", "--", "sleep", "60", code=1)
    ok("logs", "--env", "staging", "api", "--json")
    # The push stage's ECR API calls, as in test_policy_covers_the_ecr_calls_of_the_push_stage.
    world.c("ecr").delete_repository(repositoryName=cfg.image.repository, force=True)
    ecr = awsa.clients(cfg.region).ecr
    host = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    start = len(ecs_sim.calls)
    assert ensure_ecr_repository(ecr, cfg.image.repository, app=cfg.app) is True
    access = RegistryAccess(host, ecr=ecr)
    assert access.explicit() is not None
    with pytest.raises(Exception, match="not in the registry"):
        resolve_digest(ImageRef.parse(f"{host}/{cfg.image.repository}:nope"), access, ecr)
    calls.extend(ecs_sim.calls[start:])

    written = sorted(a["AlarmName"] for a in world.c("cloudwatch").describe_alarms()["MetricAlarms"]
                     if str(a.get("AlarmDescription", "")).startswith("deployctl:"))
    assert len(written) == 7, written  # 4 + the error-rate alarms of the two endpoints + the hourly cap
    secrets = [world.secret_arn]
    made = seen(calls)
    assert {"application-autoscaling:RegisterScalableTarget", "application-autoscaling:PutScalingPolicy",
            "application-autoscaling:DeleteScalingPolicy", "application-autoscaling:DeregisterScalableTarget",
            "application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingPolicies"
            } <= made, sorted(made)
    assert {"cloudwatch:PutDashboard", "cloudwatch:GetMetricData", "sqs:GetQueueUrl", "dynamodb:DeleteItem",
            "ecs:DescribeTasks", "cloudwatch:PutMetricAlarm", "ecs:RunTask", "ecs:StopTask",
            "logs:FilterLogEvents", "logs:GetLogEvents", "logs:DescribeMetricFilters", "logs:PutMetricFilter",
            "logs:DeleteMetricFilter"} <= made, sorted(made)
    assert {"sns:CreateTopic", "sns:Subscribe", "sns:Unsubscribe", "sns:ListSubscriptionsByTopic",
            "sns:DeleteTopic", "sns:GetTopicAttributes", "cloudwatch:DeleteAlarms"} <= made, sorted(made)
    assert denied(policy, calls, cfg, secrets, written_alarms=written) == []

    need = needed(calls, cfg, secrets, written) - iam.ALWAYS_ALLOWED
    have = granted(policy)
    assert need - have == set()
    assert have - need == set(NOT_RECORDABLE), sorted(have - need)
    # monitor apply and metrics really need their new statements
    for sid, action in (("MonitoringDashboard", "cloudwatch:PutDashboard"), ("MetricsRead", "cloudwatch:GetMetricData"),
                        ("QueueExists", "sqs:GetQueueUrl"), ("EndpointMetricFilters", "logs:PutMetricFilter"),
                        ("AutoScalingWrite", "application-autoscaling:PutScalingPolicy"),
                        ("CostCapTopic", "sns:Subscribe"), ("CostCapAlarms", "cloudwatch:DeleteAlarms"),
                        ("CostCapUnsubscribe", "sns:Unsubscribe")):
        assert any(action in d for d in denied(without(policy, sid), calls, cfg, secrets, written_alarms=written)), sid


def test_preview_policy_grants_what_a_preview_deploy_and_destroy_call(world: World, ecs_sim: Any,
                                                                    tmp_path: Path) -> None:
    """A preview's own actions (teardown, finding its resources) are called by `run --name` and
    `destroy`; everything else it grants is what the staging test above recorded."""
    proj = write_project(tmp_path, deploy_yaml(world))
    loaded = read(proj / "deploy.yaml", environ={})
    cfg = load_env(loaded, "preview")
    out = cli(world.aws, proj, "iam-policy", "--env", "preview", "--json")
    assert out.returncode == 0, out.stderr
    policy = json.loads(out.stdout)["policy"]
    image = world.push("v1")
    start = len(ecs_sim.calls)
    for args in (("run", "--env", "preview", "--name", "pr-3", "--image", image, "--only", "deploy"),
                 ("destroy", "--env", "preview", "--name", "pr-3", "--yes")):
        r = cli(world.aws, proj, *args)
        assert r.returncode == 0, r.stdout + r.stderr
    calls = ecs_sim.calls[start:]
    assert denied(policy, calls, cfg, [world.secret_arn], preview="pr-3") == []
    need = {req.action for call in calls for req in requests_for(iam.iam_action(call.service, call.action), cfg,
                                                                   [world.secret_arn], "pr-3")} - iam.ALWAYS_ALLOWED
    have = granted(policy)
    assert need - have == set()
    preview_only = have - granted(iam.ci_policy(load_env(loaded, "staging"), ACCOUNT))
    assert preview_only == {"ecs:DeleteService", "ecs:DeregisterTaskDefinition", "ecs:ListServices",
                            "ecs:ListTaskDefinitionFamilies"}
    assert preview_only <= need, sorted(preview_only - need)

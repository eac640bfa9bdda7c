"""Least-privilege IAM for the CI role that runs deployctl, rendered purely from deploy.yaml.

`ci_policy(cfg, account, source=…)` is the identity policy of the role GitHub Actions assumes for one
environment; `trust_policy(...)` is that role's OIDC trust policy. Both are plain dicts, ready for
`aws iam put-role-policy` / `create-role`. `allows(policy, Request(...))` is a small evaluator of
the subset of the IAM policy language these documents use; tests use it to check that every API
call of a recorded deploy is allowed.

Where AWS leaves no choice, the policy says so (`NOTES`):

- ECS task-definition actions (Register/Deregister/Describe/ListTaskDefinitions) support no
  resource-level permissions: the Service Authorization Reference lists no resource type for
  them (still open as aws/containers-roadmap#929). They get Resource "*". RegisterTaskDefinition,
  the one deployctl needs on every deploy, is a tag-on-create action, so a Condition on
  `aws:RequestTag/deployctl:app` restricts it to requests that tag the new revision with this
  app and this environment. DeregisterTaskDefinition (preview teardown only) is granted on the
  environment's preview families and only with aws:ResourceTag conditions naming this app, this
  environment and a preview: if AWS evaluates the action without a resource (no resource type)
  the tag keys are absent and the statement fails closed (teardown then leaves the revisions,
  and says so) rather than open ("*" with no condition could deregister prod's revisions).
- ecr:GetAuthorizationToken has no resource; it only returns a registry login token, and every
  push/pull action is still limited to the one repository ARN.
- Describe/List calls of ECS tasks, ELB, EC2 subnets/security groups and SSM parameters carry
  no ARN AWS can check; they read
  metadata only and are scoped by the `ecs:cluster` condition where AWS supports it.
- secretsmanager:DescribeSecret and ssm:DescribeParameters only: the CI role never reads a
  secret value (the task *execution* role does, at task start). One exception, by choice of
  the config: `notify.webhook.secret` grants GetSecretValue on that one secret.
- An environment with `promote_from` is deployed by `deployctl promote SRC ENV`, which runs with
  ENV's role and first reads what SRC runs (DescribeServices on SRC's services, its task
  definitions and their tags): ENV's policy gets those reads, never a write, on SRC.
- CloudWatch: PutMetricData (monitoring.publish_run_metrics) takes no resource ARN; the
  `cloudwatch:namespace` condition key limits it to monitoring.run_metrics_namespace. `monitor
  apply` (and, with monitoring.roll_back_on, the deploy, so its deployment alarms exist before a
  service names them) creates/updates the generated monitoring alarms by name: DescribeAlarms,
  PutMetricAlarm (and TagResource, which AWS requires for the tags sent on create) on exactly
  those alarm ARNs; PutDashboard on its dashboard. `metrics` reads with GetMetricData ("*").
  With monitoring.endpoints, `monitor apply` also reads, puts and deletes its metric filters
  (logs:DescribeMetricFilters/PutMetricFilter/DeleteMetricFilter) on the environment's log group.
- Nothing is granted that no command calls: COMMAND_STATEMENTS is the one list of the per-command
  statements, and tests/integration/test_iam_coverage.py checks the policy against every call.

The deploy lock (deployctl.lock) is assumed to be a DynamoDB table, `deployctl-locks` by default, used
with conditional writes.

Why over 500 lines: the policy statements sit next to the small evaluator (`allows`) that
tests run every recorded API call through, so a statement and the rule that checks it change
together; forty lines are this docstring's account of AWS's limits.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deployctl.config.model import ResolvedConfig
from deployctl.render import costcap, ecs, jobs, monitoring

VERSION = "2012-10-17"
LOCK_TABLE = "deployctl-locks"
GITHUB_OIDC = "token.actions.githubusercontent.com"
ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"
# GitHub environment names the shipped workflows use, where they differ from deploy.yaml's.
GITHUB_ENVIRONMENT = {"prod": "production"}

# ECS actions for which AWS offers no resource type (Resource must be "*").
ECS_NO_RESOURCE_LEVEL = frozenset({
    "ecs:RegisterTaskDefinition", "ecs:DeregisterTaskDefinition", "ecs:DescribeTaskDefinition",
    "ecs:ListTaskDefinitions", "ecs:ListTaskDefinitionFamilies",
})
# Write-level actions (Service Authorization Reference "Access level: Write" or tagging) of the
# two services whose writes must never be granted on "*" without a documented reason.
ECS_WRITE_ACTIONS = frozenset({
    "ecs:CreateService", "ecs:UpdateService", "ecs:DeleteService", "ecs:RegisterTaskDefinition",
    "ecs:DeregisterTaskDefinition", "ecs:TagResource", "ecs:UntagResource", "ecs:RunTask",
    "ecs:StartTask", "ecs:StopTask", "ecs:CreateCluster", "ecs:DeleteCluster", "ecs:UpdateCluster",
    "ecs:CreateTaskSet", "ecs:UpdateTaskSet", "ecs:DeleteTaskSet", "ecs:UpdateServicePrimaryTaskSet",
    "ecs:PutClusterCapacityProviders", "ecs:DeleteTaskDefinitions", "ecs:ExecuteCommand",
})
ECR_WRITE_ACTIONS = frozenset({
    "ecr:CreateRepository", "ecr:DeleteRepository", "ecr:PutImage", "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:BatchDeleteImage", "ecr:TagResource",
    "ecr:UntagResource", "ecr:PutImageTagMutability", "ecr:PutImageScanningConfiguration",
    "ecr:PutLifecyclePolicy", "ecr:SetRepositoryPolicy", "ecr:DeleteRepositoryPolicy",
    "ecr:StartImageScan", "ecr:PutRegistryPolicy", "ecr:ReplicateImage",
})
# Calls AWS authorizes without any policy (documented for sts:GetCallerIdentity).
ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})

NOTES = (
    "One-off tasks (task run, before_deploy): a task ARN holds a random id, so ecs:TagResource (on RunTask "
    "only) and ecs:StopTask are granted on task/<cluster>/*, limited by conditions to tasks tagged "
    "deployctl:app=<app> and deployctl:env=<env>, the tags RunTask gives them.",
    "ecs:RegisterTaskDefinition, DescribeTaskDefinition and ListTaskDefinitions support no resource-level "
    "permissions (AWS Service Authorization Reference; aws/containers-roadmap#929), so they are granted on "
    "\"*\"; RegisterTaskDefinition is limited by a Condition to requests tagging the revision "
    "deployctl:app=<app> and deployctl:env=<env>.",
    "ecr:GetAuthorizationToken has no resource in IAM; it returns a login token only, every push and pull "
    "is limited to the repository ARN.",
    "Secrets: secretsmanager:DescribeSecret and ssm:DescribeParameters only. The CI role never reads a "
    "secret value; the task execution role does, when a task starts.",
    "ec2:DescribeSubnets/DescribeSecurityGroups, elasticloadbalancing:Describe* and ssm:DescribeParameters "
    "accept no resource ARNs; they are read-only metadata calls of preflight and the rollout watcher.",
    "Deploy lock: the DynamoDB table named in lock_table (default deployctl-locks), "
    "used with conditional writes and created on first use (CreateTable on that table only).",
    "Not verified against real AWS here (no account): check with IAM Access Analyzer's policy "
    "validation before use.",
)
PROMOTE_NOTE = (
    "Promotion: `deployctl promote {src} {env}` runs with this role and reads what {src} runs "
    "(ecs:DescribeServices and ecs:ListTagsForResource on {src}'s services and task-definition families; "
    "Describe/ListTaskDefinitions are on \"*\" anyway). Read-only: no write action names a {src} resource. "
    "{src} is assumed to be in the same account."
)
RUN_METRICS_NOTE = (
    "cloudwatch:PutMetricData (monitoring.publish_run_metrics) has no resource type; the cloudwatch:namespace "
    "condition key limits it to the namespace {namespace}."
)
ALARMS_NOTE = (
    "Monitoring: `deployctl monitor apply` (and, with monitoring.roll_back_on, every deploy, before the service "
    "update names them as deployment alarms) reads and creates/updates the environment's generated alarms: "
    "cloudwatch:DescribeAlarms, PutMetricAlarm and TagResource (tags on create) on exactly those alarm ARNs; "
    "deploy.alarms are only read. cloudwatch:PutDashboard on the one dashboard ARN (dashboards have no region). "
    "`deployctl metrics` reads with cloudwatch:GetMetricData, which has no resource type (\"*\")."
)
ENDPOINTS_NOTE = (
    "Endpoint metrics (monitoring.endpoints): `deployctl monitor apply` reads, creates/updates and deletes its own "
    "metric filters (logs:DescribeMetricFilters, PutMetricFilter, DeleteMetricFilter) on this environment's log "
    "group only."
)
PREVIEW_NOTES = (
    "Preview: services and task-definition families are named <app>-<env>-<name>-<service>, so they are "
    "granted by pattern and, for changes, only on resources tagged deployctl:env=<env> and deployctl:preview.",
    "ecs:DeregisterTaskDefinition (preview teardown): granted on this environment's preview families only, "
    "with aws:ResourceTag conditions (deployctl:app, deployctl:env, deployctl:preview). The Service "
    "Authorization Reference has long listed no resource type for the task-definition actions "
    "(aws/containers-roadmap#929): where AWS evaluates it that way the tag keys are absent, the statement "
    "does not match, and `deployctl destroy` deletes the services but leaves the revisions (reported as "
    "left alone). It never falls back to \"*\" without a condition, which would let this role deregister "
    "another environment's revisions.",
)


# ---------------------------------------------------------------------------------------------
# ARNs
# ---------------------------------------------------------------------------------------------


def account_from_config(cfg: ResolvedConfig) -> str | None:
    """The account id in the environment's role ARNs (deploy.yaml always names them for ECS)."""
    roles = cfg.environment.roles
    for arn in (roles.execution, roles.task) if roles else ():
        m = re.match(r"^arn:aws[a-z-]*:iam::(\d{12}):", arn or "")
        if m:
            return m.group(1)
    return None


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass(frozen=True)
class Arns:
    """Every ARN the CI role touches for one environment (patterns for preview environments)."""

    cfg: ResolvedConfig
    account: str

    @property
    def p(self) -> str:
        return _partition(self.cfg.region)

    def _ecs(self, rest: str) -> str:
        return f"arn:{self.p}:ecs:{self.cfg.region}:{self.account}:{rest}"

    @property
    def preview(self) -> bool:
        return self.cfg.environment.preview

    def repository(self) -> str:
        return f"arn:{self.p}:ecr:{self.cfg.region}:{self.account}:repository/{self.cfg.image.repository}"

    def cluster(self) -> str:
        return self._ecs(f"cluster/{self.cfg.environment.cluster}")

    def service(self, svc: str, preview: str | None = None) -> str:
        name = ecs.service_name(self.cfg, svc, preview or ("*" if self.preview else None))
        return self._ecs(f"service/{self.cfg.environment.cluster}/{name}")

    def family(self, svc: str, preview: str | None = None) -> str:
        name = ecs.family(self.cfg, svc, preview or ("*" if self.preview else None))
        return self._ecs(f"task-definition/{name}:*")

    def legacy_preview_family(self, svc: str) -> str:
        """Preview families from before names held the environment: <app>-<name>-<svc>."""
        return self._ecs(f"task-definition/{self.cfg.app}-*-{svc}:*")

    def task_definition(self, family: str, revision: int) -> str:
        return self._ecs(f"task-definition/{family}:{revision}")

    def services(self) -> list[str]:
        return [self.service(s) for s in self.cfg.services]

    def families(self) -> list[str]:
        return [self.family(s) for s in self.cfg.services]

    def secret(self, ref: str) -> str:
        # `…:json-key:version-stage:version-id` picks a value inside the secret; IAM sees only
        # the secret's own ARN.
        ref = ecs.split_secret_ref(ref)[0]
        if ref.startswith("arn:"):
            return ref
        # Secrets Manager appends "-" and six random characters to every secret's ARN.
        return f"arn:{self.p}:secretsmanager:{self.cfg.region}:{self.account}:secret:{ref}-??????"

    def parameter(self, ref: str) -> str:
        if ref.startswith("arn:"):
            return ref
        name = ref[len("ssm:"):] if ref.startswith("ssm:") else ref
        return f"arn:{self.p}:ssm:{self.cfg.region}:{self.account}:parameter/{name.lstrip('/')}"

    def alarm(self, name: str) -> str:
        return f"arn:{self.p}:cloudwatch:{self.cfg.region}:{self.account}:alarm:{name}"

    def log_group(self) -> str:
        return f"arn:{self.p}:logs:{self.cfg.region}:{self.account}:log-group:{ecs.log_group(self.cfg)}"

    def dashboard(self, name: str) -> str:
        return f"arn:{self.p}:cloudwatch::{self.account}:dashboard/{name}"  # dashboards are global: no region

    def queue(self, name: str) -> str:
        return f"arn:{self.p}:sqs:{self.cfg.region}:{self.account}:{name}"

    def scalable_targets(self) -> str:
        # scalable-target/<random id>: no part of it names the ECS service.
        return f"arn:{self.p}:application-autoscaling:{self.cfg.region}:{self.account}:scalable-target/*"

    def lock_table(self, table: str) -> str:
        return f"arn:{self.p}:dynamodb:{self.cfg.region}:{self.account}:table/{table}"

    def roles(self) -> list[str]:
        roles = self.cfg.environment.roles
        if roles is None:
            return []
        return sorted({r for r in (roles.execution, roles.task) if r})


def _is_ssm(ref: str) -> bool:
    return ref.startswith("ssm:") or ref.startswith("arn:") and ":ssm:" in ref


# ---------------------------------------------------------------------------------------------
# the CI role's policy
# ---------------------------------------------------------------------------------------------


def _stmt(sid: str, actions: Iterable[str], resources: str | Sequence[str],
          condition: Mapping[str, Any] | None = None) -> dict[str, Any]:
    res = [resources] if isinstance(resources, str) else list(resources)
    out: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(set(actions)),
        "Resource": res[0] if len(res) == 1 else res,
    }
    if condition:
        out["Condition"] = dict(condition)
    return out


def ci_policy(cfg: ResolvedConfig, account: str, *, source: ResolvedConfig | None = None,
              lock_table: str = LOCK_TABLE) -> dict[str, Any]:
    """Identity policy for the role that runs `deployctl run/promote/rollback/status/history`
    (and `destroy` for a preview environment) against this environment.

    `source` is the resolved config of `environment.promote_from` (required when it is set):
    `promote` reads what the source environment runs with this environment's role."""
    if cfg.environment.target != "ecs":
        raise ValueError(f"environment {cfg.env_name} deploys to the local Docker engine: no IAM involved")
    origin = cfg.environment.promote_from
    if origin and (source is None or source.env_name != origin):
        raise ValueError(f"environment {cfg.env_name} is promoted from {origin}: pass that environment's "
                         "config as source (promote reads it with this role)")
    a = Arns(cfg, account)
    app = cfg.app
    cluster_cond = {"ArnEquals": {"ecs:cluster": a.cluster()}}
    out: list[dict[str, Any]] = []

    if cfg.image.registry == "ecr":
        out.append(_stmt("EcrLogin", ["ecr:GetAuthorizationToken"], "*"))
        out.append(_stmt("EcrRepository", [
            "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload",
            "ecr:CreateRepository", "ecr:DescribeImages", "ecr:DescribeRepositories",
            "ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload", "ecr:PutImage",
            "ecr:TagResource", "ecr:UploadLayerPart",
        ], a.repository()))

    out.append(_stmt("EcsClusterRead", ["ecs:DescribeClusters"], a.cluster()))
    # Families and services are listed only to find a preview's resources (ecs_preview).
    listing = ["ecs:ListTaskDefinitionFamilies"] if a.preview else []
    out.append(_stmt("EcsTaskDefinitionRead", [
        "ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions", *listing,
    ], "*"))
    # Tag-on-create: the new revision must say it is this app's and this environment's.
    out.append(_stmt("EcsRegisterTaskDefinition", ["ecs:RegisterTaskDefinition"], "*",
                     {"StringEquals": {"aws:RequestTag/deployctl:app": app,
                                       "aws:RequestTag/deployctl:env": cfg.env_name}}))
    out.append(_stmt("EcsClusterScopedRead", ["ecs:DescribeTasks", "ecs:ListTasks",
                                              *(["ecs:ListServices"] if a.preview else [])], "*", cluster_cond))
    # One-off tasks (`deployctl task run`, before_deploy): this environment's task definitions, in its
    # cluster. A task's id is random, so tagging it at RunTask and stopping it (time limit, Ctrl-C) are
    # granted on the cluster's tasks, only with the tags RunTask gives it (NOTES).
    out.append(_stmt("EcsOneOffTasks", ["ecs:RunTask"], a.families(), cluster_cond))
    tasks = a._ecs(f"task/{cfg.environment.cluster}/*")
    out.append(_stmt("EcsTagOneOffTasks", ["ecs:TagResource"], tasks,
                     {"StringEquals": {"ecs:CreateAction": "RunTask", "aws:RequestTag/deployctl:app": app,
                                       "aws:RequestTag/deployctl:env": cfg.env_name}}))
    out.append(_stmt("EcsStopOneOffTasks", ["ecs:StopTask"], tasks,
                     {"StringEquals": {"aws:ResourceTag/deployctl:app": app,
                                       "aws:ResourceTag/deployctl:env": cfg.env_name}}))
    out.append(_stmt("EcsServicesRead", ["ecs:DescribeServices", "ecs:ListTagsForResource"],
                     [*a.services(), *a.families()]))
    if a.preview:
        # Pattern ARNs could name another environment's resource whose name happens to match
        # (<app>-<env>-*-<svc>); the tag conditions (this environment, a preview) make a change
        # to anything but one of this environment's previews impossible.
        mine = {"aws:ResourceTag/deployctl:app": app, "aws:ResourceTag/deployctl:env": cfg.env_name}
        out.append(_stmt("EcsPreviewCreate", ["ecs:CreateService"], a.services(),
                         {"StringEquals": {"aws:RequestTag/deployctl:env": cfg.env_name},
                          "StringLike": {"aws:RequestTag/deployctl:preview": "?*"}}))
        out.append(_stmt("EcsPreviewChange", ["ecs:DeleteService", "ecs:TagResource", "ecs:UntagResource",
                                              "ecs:UpdateService"],
                         [*a.services(), *a.families()],
                         {"StringEquals": mine, "StringLike": {"aws:ResourceTag/deployctl:preview": "?*"}}))
        out.append(_stmt("EcsPreviewTagOnCreate", ["ecs:TagResource"], [*a.services(), *a.families()],
                         {"StringEquals": {"ecs:CreateAction": ["CreateService", "RegisterTaskDefinition"],
                                           "aws:RequestTag/deployctl:env": cfg.env_name},
                          "StringLike": {"aws:RequestTag/deployctl:preview": "?*"}}))
        # Never "*" without a condition: that role could deregister prod's revisions (see NOTES).
        legacy = [a.legacy_preview_family(s) for s in cfg.services]
        out.append(_stmt("EcsPreviewDeregister", ["ecs:DeregisterTaskDefinition"], [*a.families(), *legacy],
                         {"StringEquals": mine, "StringLike": {"aws:ResourceTag/deployctl:preview": "?*"}}))
    else:
        out.append(_stmt("EcsServicesWrite", ["ecs:CreateService", "ecs:UpdateService"], a.services()))
        out.append(_stmt("EcsTagging", ["ecs:TagResource"], [*a.services(), *a.families()]))
        # A rollback that reruns a revision drops that revision's oldest rerun tags past ECS's 50.
        out.append(_stmt("EcsUntagRevisions", ["ecs:UntagResource"], a.families()))

    if origin and source is not None and source.environment.target == "ecs":
        out.extend(_promote_source_reads(cfg, source, account))

    if cfg.environment.network:
        # Preflight checks the subnets and security groups exist; EC2 Describe* take no ARNs.
        out.append(_stmt("NetworkRead", ["ec2:DescribeSecurityGroups", "ec2:DescribeSubnets"], "*"))
    out.append(_stmt("PassTaskRoles", ["iam:PassRole"], a.roles(),
                     {"StringEquals": {"iam:PassedToService": ECS_TASKS_PRINCIPAL}}))
    out.append(_stmt("CheckTaskRoles", ["iam:GetRole"], a.roles()))

    refs = sorted({ref for svc in cfg.services.values() for ref in svc.secrets.values()})
    sm = sorted({a.secret(r) for r in refs if not _is_ssm(r)})  # two keys of one secret: one ARN
    if sm:
        out.append(_stmt("SecretsExistOnly", ["secretsmanager:DescribeSecret"], sm))
    if any(_is_ssm(r) for r in refs):
        out.append(_stmt("ParametersExistOnly", ["ssm:DescribeParameters"], "*"))

    if any(svc.load_balancer for svc in cfg.services.values()):
        out.append(_stmt("TargetHealth", [
            "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetHealth",
        ], "*"))
    # The lock table is created on first use (deployctl.lock), so CreateTable on that one table.
    out.append(_stmt("DeployLock", [
        "dynamodb:CreateTable", "dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ], a.lock_table(lock_table)))
    for statements in COMMAND_STATEMENTS:
        out.extend(statements(cfg, a))
    return {"Version": VERSION, "Statement": out}


def _notify_statements(cfg: ResolvedConfig, a: Arns) -> list[dict[str, Any]]:
    """`notify:` (deployctl.app.notify): Publish on exactly the named topic; GetSecretValue on
    exactly the one secret holding the webhook URL — the only secret value the CI role reads."""
    settings, out = cfg.notify, []
    if settings is None:
        return []
    if settings.sns_topic:
        out.append(_stmt("NotifyTopic", ["sns:Publish"], settings.sns_topic))
    if settings.webhook is not None and settings.webhook.secret:
        out.append(_stmt("NotifyWebhookSecret", ["secretsmanager:GetSecretValue"],
                         a.secret(settings.webhook.secret)))
    return out


def _promote_source_reads(cfg: ResolvedConfig, source: ResolvedConfig, account: str) -> list[dict[str, Any]]:
    """What `promote SOURCE ENV` reads of SOURCE with ENV's role (deployctl.app.promote):
    read_services → DescribeServices on SOURCE's services; read_settled_releases → ListTaskDefinitions and
    DescribeTaskDefinition (include TAGS) of SOURCE's families, both on "*" already (no resource
    type). ListTagsForResource on the same ARNs keeps tag reads working either way. Describe and
    list only: nothing here can change SOURCE."""
    src = Arns(source, account)
    out = [_stmt("PromoteSourceRead", ["ecs:DescribeServices", "ecs:ListTagsForResource"],
                 [*src.services(), *src.families()])]
    if source.image.registry == "ecr" and src.repository() != Arns(cfg, account).repository():
        # Preflight of the promoted deploy checks the source image is in ECR (DescribeImages only;
        # the task execution role pulls it).
        out.append(_stmt("PromoteSourceImage", ["ecr:DescribeImages"], src.repository()))
    return out


def generated_deployment_alarms(cfg: ResolvedConfig) -> list[str]:
    """Generated alarms named in monitoring.roll_back_on (any service): ECS deployment alarms of
    the service updates, read by the rollout watcher (render.monitoring.deployment_alarm_names)."""
    mon = cfg.monitoring
    if mon is None:
        return []
    return [spec.name for spec in monitoring.alarms(cfg, mon) if spec.kind in mon.roll_back_on]


def deployment_alarms(cfg: ResolvedConfig) -> list[str]:
    """Every alarm a deploy reads: deploy.alarms plus the generated deployment alarms."""
    return list(dict.fromkeys([*cfg.deploy.alarms, *generated_deployment_alarms(cfg)]))


def deploy_written_alarms(cfg: ResolvedConfig) -> list[str]:
    """Alarms a deploy creates or updates before its service updates (targets/ecs.py
    `_ensure_monitoring_alarms`): with any monitoring.roll_back_on, every alarm monitoring renders
    for this environment, so the deployment alarms exist before a service names them."""
    mon = cfg.monitoring
    if mon is None or not mon.roll_back_on:
        return []
    return monitoring_alarms(cfg)


def monitoring_alarms(cfg: ResolvedConfig) -> list[str]:
    """Every alarm of the monitoring section: what `monitor apply` (and a roll_back_on deploy) writes."""
    mon = cfg.monitoring
    return [] if mon is None else [spec.name for spec in monitoring.alarms(cfg, mon)]


# ---------------------------------------------------------------------------------------------
# What each command calls beyond deploy/promote/rollback/status/history/destroy/unlock (above).
# THE place to add a command's actions: one function returning its statements, one entry in
# COMMAND_STATEMENTS, and its calls recorded in tests/integration/test_iam_coverage.py (which
# checks the policy grants exactly what the recorded commands call).
# ---------------------------------------------------------------------------------------------


def _monitoring_statements(cfg: ResolvedConfig, a: Arns) -> list[dict[str, Any]]:
    """deploy.alarms and roll_back_on alarms (the deploy and its watcher), `monitor apply` (alarms,
    dashboard), `metrics` (GetMetricData), run metrics, and preflight's monitoring.queue check."""
    out = []
    names = deployment_alarms(cfg)
    if names:
        out.append(_stmt("DeploymentAlarms", ["cloudwatch:DescribeAlarms"], [a.alarm(n) for n in names]))
    mon = cfg.monitoring
    # Preflight asks for each queue deploy.yaml names (monitoring.queue, autoscaling.queue).
    queues = sorted({q for q in [mon.queue.name if mon and mon.queue else None,
                                 *(s.autoscaling.queue for s in cfg.services.values() if s.autoscaling)] if q})
    if queues:
        out.append(_stmt("QueueExists", ["sqs:GetQueueUrl"], [a.queue(q) for q in queues]))
    if mon is None:
        return out
    written = monitoring_alarms(cfg)
    if written:
        # By exact name: deployctl's own <app>-<env>-… alarms, never the user's deploy.alarms.
        # DescribeAlarms first (created/updated/unchanged); PutMetricAlarm sends Tags, and AWS requires
        # cloudwatch:TagResource to tag on create.
        out.append(_stmt("MonitoringAlarmsWrite", ["cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm",
                                                   "cloudwatch:TagResource"], [a.alarm(n) for n in written]))
    if mon.dashboard:
        out.append(_stmt("MonitoringDashboard", ["cloudwatch:PutDashboard"],
                         a.dashboard(monitoring.dashboard_name(cfg))))
    # `metrics`: GetMetricData has no resource type (Service Authorization Reference).
    out.append(_stmt("MetricsRead", ["cloudwatch:GetMetricData"], "*"))
    if mon.load_balancer and not mon.load_balancer.startswith("arn:"):
        # The ALB dimension (its ARN suffix) is looked up by name; ELB Describe* accept no resource
        # ARN. Target groups: DescribeTargetGroups in TargetHealth.
        out.append(_stmt("AlarmLoadBalancer", ["elasticloadbalancing:DescribeLoadBalancers"], "*"))
    if mon.publish_run_metrics:
        out.append(_stmt("RunMetrics", ["cloudwatch:PutMetricData"], "*",
                         {"StringEquals": {"cloudwatch:namespace": mon.run_metrics_namespace}}))
    return out


def _stack_statements(cfg: ResolvedConfig, a: Arns) -> list[dict[str, Any]]:
    """`from_stack`: every command reads the stack's outputs (DescribeStacks on that one stack)."""
    stack = cfg.environment.from_stack
    if not stack:
        return []
    return [_stmt("StackOutputs", ["cloudformation:DescribeStacks"],
                  f"arn:{a.p}:cloudformation:{cfg.region}:{a.account}:stack/{stack}/*")]


def _logs_statements(cfg: ResolvedConfig, a: Arns) -> list[dict[str, Any]]:
    """`deployctl logs` (FilterLogEvents) and the failure diagnosis and `task run` (GetLogEvents
    on one container's stream): this environment's log group only."""
    return [_stmt("ReadLogs", ["logs:FilterLogEvents", "logs:GetLogEvents"], [a.log_group(), a.log_group() + ":*"])]


# The role Application Auto Scaling creates on the first RegisterScalableTarget of an ECS service
# in the account ("Service-linked roles for Application Auto Scaling").
AUTOSCALING_PRINCIPAL = "ecs.application-autoscaling.amazonaws.com"
AUTOSCALING_ROLE = "AWSServiceRoleForApplicationAutoScaling_ECSService"


def _autoscaling_statements(cfg: ResolvedConfig, a: Arns) -> list[dict[str, Any]]:
    """Every ECS deploy applies `autoscaling:` (deployctl.targets.ecs_autoscaling): it reads the
    service's scalable target and policies, and registers/puts, or deletes/deregisters what
    deploy.yaml dropped, so an environment without autoscaling still needs the removal. A
    scalable target's ARN carries a random id, not the service, so the writes are limited by the
    scalable targets of the account and region and the `application-autoscaling:service-namespace`
    condition (ecs); Describe* take neither."""
    if cfg.environment.target != "ecs":
        return []
    out = [
        _stmt("AutoScalingRead", ["application-autoscaling:DescribeScalableTargets",
                                  "application-autoscaling:DescribeScalingPolicies"], "*"),
        _stmt("AutoScalingWrite", ["application-autoscaling:RegisterScalableTarget",
                                   "application-autoscaling:PutScalingPolicy",
                                   "application-autoscaling:DeleteScalingPolicy",
                                   "application-autoscaling:DeregisterScalableTarget"], a.scalable_targets(),
              {"StringEquals": {"application-autoscaling:service-namespace": "ecs"}}),
    ]
    if costcap.stopped_services(cfg):  # `status`: was a stopped service stopped by the cost cap?
        out[0]["Action"] = sorted([*out[0]["Action"], "application-autoscaling:DescribeScalingActivities"])
    if any(s.autoscaling for s in cfg.services.values()) or costcap.stopped_services(cfg):
        out.append(_stmt("AutoScalingServiceLinkedRole", ["iam:CreateServiceLinkedRole"],
                         f"arn:{a.p}:iam::{a.account}:role/aws-service-role/{AUTOSCALING_PRINCIPAL}/"
                         f"{AUTOSCALING_ROLE}",
                         {"StringEquals": {"iam:AWSServiceName": AUTOSCALING_PRINCIPAL}}))
    return out


def _endpoint_metrics_statements(cfg: ResolvedConfig, a: Arns) -> list[dict[str, Any]]:
    """`monitor apply` with monitoring.endpoints (deployctl.monitoring.put_metric_filters): the
    per-route metric filters on this environment's log group, and no other."""
    if cfg.monitoring is None or cfg.monitoring.endpoints is None:
        return []
    return [_stmt("EndpointMetricFilters", ["logs:DescribeMetricFilters", "logs:PutMetricFilter",
                                            "logs:DeleteMetricFilter"], [a.log_group(), a.log_group() + ":*"])]


def _jobs_statements(cfg: ResolvedConfig, a: Arns) -> list[dict[str, Any]]:
    """`jobs:` (deployctl.targets.ecs_jobs, after every ECS deploy): the environment's schedule
    group and its schedules, the jobs' dead-letter queue, PassRole of jobs_role to the scheduler
    only; `task run --job` runs the jobs' own families. ListSchedules has no resource type.
    With no jobs a deploy still looks for the group, and deletes the schedules of removed jobs."""
    if cfg.environment.target != "ecs":
        return []
    group = jobs.group_name(cfg.app, cfg.env_name)
    where = f"arn:{a.p}:scheduler:{cfg.region}:{a.account}"
    writes = ["scheduler:CreateSchedule", "scheduler:UpdateSchedule"] if cfg.jobs else []
    create_group = ["scheduler:CreateScheduleGroup", "scheduler:TagResource"] if cfg.jobs else []
    out = [_stmt("JobSchedules", [*writes, "scheduler:DeleteSchedule"], f"{where}:schedule/{group}/*"),
           _stmt("JobScheduleGroup", ["scheduler:GetScheduleGroup", *create_group], f"{where}:schedule-group/{group}"),
           _stmt("JobSchedulesList", ["scheduler:ListSchedules"], "*")]
    if not cfg.jobs:
        return out
    out.append(_stmt("JobsDeadLetterQueue", ["sqs:GetQueueUrl", "sqs:CreateQueue", "sqs:GetQueueAttributes"],
                     a.queue(jobs.dlq_name(cfg.app, cfg.env_name))))
    if cfg.environment.jobs_role:
        out.append(_stmt("JobsRolePass", ["iam:PassRole"], cfg.environment.jobs_role,
                         {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}))
    own = [a._ecs(f"task-definition/{jobs.family(cfg.app, cfg.env_name, j)}:*") for j in cfg.jobs
           if jobs.own_size(cfg, j) is not None]
    if own:
        out.append(_stmt("JobsOneOffTasks", ["ecs:RunTask"], own, {"ArnEquals": {"ecs:cluster": a.cluster()}}))
    return out


def _cost_cap_statements(cfg: ResolvedConfig, a: Arns) -> list[dict[str, Any]]:
    """monitoring.cost_cap after every ECS deploy (deployctl.targets.ecs_costcap), `status` and
    `resume`: the environment's own topic `<app>-<env>-cost-cap`, and the cap alarms by exact name
    (every service × both caps, so a cap removed from deploy.yaml can be deleted). Without a cost
    cap a deploy still looks for the topic and the alarms, to remove them. sns:Unsubscribe has no
    resource type in the Service Authorization Reference ("*"); the stop policies are
    Application Auto Scaling writes (AutoScalingWrite)."""
    if cfg.environment.target != "ecs" or cfg.environment.preview:
        return []
    topic = costcap.topic_arn(cfg, a.account, a.p)
    cap = cfg.monitoring.cost_cap if cfg.monitoring is not None else None
    names = [monitoring.alarm_name(cfg, svc, kind) for svc in cfg.services for kind in costcap.CAP_KINDS]
    out = [_stmt("CostCapAlarms", ["cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
                 [a.alarm(n) for n in names]),
           _stmt("CostCapTopic", ["sns:GetTopicAttributes", "sns:DeleteTopic",
                                  *(["sns:CreateTopic", "sns:TagResource", "sns:Subscribe",
                                     "sns:ListSubscriptionsByTopic"] if cap else [])], topic)]
    if cap:
        out.append(_stmt("CostCapUnsubscribe", ["sns:Unsubscribe"], "*"))
    return out


COMMAND_STATEMENTS: tuple[Callable[[ResolvedConfig, Arns], list[dict[str, Any]]], ...] = (
    _monitoring_statements,
    _autoscaling_statements,  # run, promote, rollback: every ECS deploy
    _endpoint_metrics_statements,  # monitor apply with monitoring.endpoints
    _notify_statements,  # run, promote, rollback with `notify:`
    _logs_statements,  # logs, task run, a failed run's diagnosis
    _stack_statements,  # every command of an environment with from_stack
    _jobs_statements,  # jobs: schedules after each ECS deploy, task run --job
    _cost_cap_statements,  # monitoring.cost_cap: after each ECS deploy, status, resume
)


def notes(cfg: ResolvedConfig) -> list[str]:
    promote = ([PROMOTE_NOTE.format(src=cfg.environment.promote_from, env=cfg.env_name)]
               if cfg.environment.promote_from else [])
    mon = cfg.monitoring
    cloudwatch = [ALARMS_NOTE] if monitoring_alarms(cfg) else []
    if mon is not None and mon.publish_run_metrics:
        cloudwatch.append(RUN_METRICS_NOTE.format(namespace=mon.run_metrics_namespace))
    if mon is not None and mon.endpoints is not None:
        cloudwatch.append(ENDPOINTS_NOTE)
    return [*NOTES, *promote, *cloudwatch, *(PREVIEW_NOTES if cfg.environment.preview else ())]


# ---------------------------------------------------------------------------------------------
# the OIDC trust policy
# ---------------------------------------------------------------------------------------------

REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def github_environment(env_name: str) -> str:
    return GITHUB_ENVIRONMENT.get(env_name, env_name)


def subjects(cfg: ResolvedConfig, repo: str, gh_environment: str | None = None) -> list[str]:
    """OIDC `sub` claims allowed to assume the role of this environment.

    A job with `environment: X` gets `repo:O/R:environment:X`; the shipped workflows run every
    deploying job in a GitHub environment (production's has required reviewers). The branch that
    auto-deploys (`deploy_on`) is allowed too, for workflows without an environment."""
    if not REPO.match(repo):
        raise ValueError(f"'{repo}' is not a GitHub repository (owner/name)")
    out = [f"repo:{repo}:environment:{gh_environment or github_environment(cfg.env_name)}"]
    if cfg.environment.deploy_on:
        out.append(f"repo:{repo}:ref:refs/heads/{cfg.environment.deploy_on}")
    return out


def trust_policy(account: str, subs: Sequence[str], *, partition: str = "aws") -> dict[str, Any]:
    return {
        "Version": VERSION,
        "Statement": [{
            "Sid": "GitHubActionsOidc",
            "Effect": "Allow",
            "Principal": {"Federated": f"arn:{partition}:iam::{account}:oidc-provider/{GITHUB_OIDC}"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{GITHUB_OIDC}:aud": "sts.amazonaws.com",
                    f"{GITHUB_OIDC}:sub": list(subs) if len(subs) > 1 else subs[0],
                },
            },
        }],
    }


# ---------------------------------------------------------------------------------------------
# a small evaluator (the subset of the policy language used above)
# ---------------------------------------------------------------------------------------------

# boto3 client name → IAM service prefix, where they differ.
IAM_PREFIX = {"elbv2": "elasticloadbalancing", "elb": "elasticloadbalancing"}


def iam_action(service: str, operation: str) -> str:
    """IAM action of an API call (boto3 client name, operation name): ('elbv2', 'DescribeTargetHealth')
    → 'elasticloadbalancing:DescribeTargetHealth'. For the services deployctl uses, the action name
    is the operation name."""
    return f"{IAM_PREFIX.get(service, service)}:{operation}"


@dataclass(frozen=True)
class Request:
    action: str
    resource: str = "*"
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)


def _wild(pattern: str, value: str, *, case: bool = True) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    # IAM wildcards: * any run, ? one character. fnmatch's [..] classes do not exist in IAM.
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], ctx: Mapping[str, Any]) -> bool:
    for op, tests in condition.items():
        base = op.removesuffix("IfExists")
        for key, expected in tests.items():
            if key not in ctx:
                if op.endswith("IfExists"):
                    continue
                return False
            actual = _as_list(ctx[key])
            wanted = [str(v) for v in _as_list(expected)]
            if base in ("StringEquals", "ArnEquals"):
                ok = any(str(x) == w for x in actual for w in wanted)
            elif base in ("StringLike", "ArnLike"):
                ok = any(_wild(w, str(x)) for x in actual for w in wanted)
            else:
                raise ValueError(f"condition operator {op} is not supported by this evaluator")
            if not ok:
                return False
    return True


def _matches(stmt: Mapping[str, Any], req: Request) -> bool:
    if not any(_wild(a, req.action, case=False) for a in _as_list(stmt.get("Action", []))):
        return False
    if not any(_wild(r, req.resource) for r in _as_list(stmt.get("Resource", []))):
        return False
    return _condition_holds(stmt.get("Condition", {}), req.context)


def allows(policy: Mapping[str, Any], req: Request) -> bool:
    """True when an Allow statement matches and no Deny does (IAM's evaluation, one policy)."""
    if req.action in ALWAYS_ALLOWED:
        return True
    statements = _as_list(policy.get("Statement", []))
    if any(s.get("Effect") == "Deny" and _matches(s, req) for s in statements):
        return False
    return any(s.get("Effect") == "Allow" and _matches(s, req) for s in statements)


def broad_resource(resource: str) -> bool:
    """True for "*" and for ARNs whose wildcard stands for a whole name (`service/cluster/*`),
    false for a name prefix or a revision wildcard (`task-definition/app-staging-api:*`)."""
    if resource == "*":
        return True
    parts = resource.split(":", 5)
    if len(parts) < 6 or any("*" in p for p in parts[1:5]):
        return True
    res = parts[5]
    if "*" not in res and "?" not in res:
        return False
    head = re.split(r"[*?]", res, maxsplit=1)[0]
    return head == "" or head.endswith("/")


def wildcard_writes(policy: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(action, sid) for every ECS/ECR write action granted on a broad resource (see above)."""
    out: list[tuple[str, str]] = []
    for s in _as_list(policy.get("Statement", [])):
        if s.get("Effect") != "Allow":
            continue
        if not any(broad_resource(r) for r in _as_list(s.get("Resource", []))):
            continue
        for action in _as_list(s.get("Action", [])):
            expanded = [w for w in ECS_WRITE_ACTIONS | ECR_WRITE_ACTIONS if _wild(action, w, case=False)]
            out.extend((w, s.get("Sid", "")) for w in sorted(expanded))
    return out

"""The AWS world of the ECS integration tests, built in moto server: a cluster, an ECR
repository, a secret and an SSM parameter, a VPC with an ALB and target group, IAM roles and a
deployment alarm; plus the deploy.yaml that deploys chat-api into it.

Every test module that deploys to ECS uses this one world (the `world` fixture in
tests/integration/conftest.py), so a change to what a deploy needs is made here once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
CLUSTER = "ai-staging"
PROD_CLUSTER = "ai-prod"
REPO = "chat-api"
API = "chat-api-staging-api"
WORKER = "chat-api-staging-worker"
FAMILY_API = "chat-api-staging-api"
FAMILY_STAGING = FAMILY_API
FAMILY_PROD = "chat-api-prod-api"
ALARM = "chat-api-5xx"

# Simulated ECS phase durations (seconds; AWS takes minutes). A module picks one with a
# module-level SIM_PHASES; DEPLOY_PHASES otherwise (the `sim` fixture in the conftest).
DEPLOY_PHASES = {"start_s": 0.15, "healthy_s": 0.15, "fail_s": 0.1, "drain_s": 0.1, "bake_s": 0.15}
RELEASE_PHASES = {"start_s": 0.1, "healthy_s": 0.1, "fail_s": 0.1, "drain_s": 0.05, "bake_s": 0.1}
QUICK_PHASES = {"start_s": 0.05, "healthy_s": 0.05, "fail_s": 0.05, "drain_s": 0.05, "bake_s": 0.05}


def base_config(world: World, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "app": "chat-api",
        "region": REGION,
        "image": {"repository": REPO},
        "services": {
            "api": {
                "port": 8000,
                "cpu": 1024,
                "memory": 2048,
                "health": {"path": "/health/ready", "start_period": "10s", "interval": "10s"},
                "env": {"LOG_LEVEL": "info"},
                "secrets": {"OPENAI_API_KEY": "chat-api/openai-key", "DATABASE_URL": "ssm:/chat-api/database-url"},
                "load_balancer": {"target_group": "chat-api-tg"},
                "count": 2,
            },
        },
        "deploy": {"alarms": [ALARM], "timeout": "60s"},
        "environments": {
            "staging": {
                "target": "ecs",
                "cluster": CLUSTER,
                "network": {"subnets": list(world.subnets), "security_groups": [world.security_group]},
                "roles": {
                    "execution": f"arn:aws:iam::{ACCOUNT}:role/chat-api-execution",
                    "task": f"arn:aws:iam::{ACCOUNT}:role/chat-api-task",
                },
            },
        },
    }
    for key, value in overrides.items():
        doc[key] = value
    return doc


_CLIENTS: dict[str, Any] = {}


def ecr_push(ecr: Any, tag: str) -> str:
    """An image in moto's ECR (a manifest only: moto cannot take layers); returns host/repo@digest."""
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7,
                   "digest": "sha256:" + hashlib.sha256(tag.encode()).hexdigest()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 7,
                    "digest": "sha256:" + hashlib.sha256(b"layer-" + tag.encode()).hexdigest()}],
    })
    digest = ecr.put_image(repositoryName=REPO, imageManifest=manifest, imageTag=tag)["image"]["imageId"]["imageDigest"]
    return f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPO}@{digest}"


@dataclass
class World:
    """An AWS account in moto with everything a chat-api deploy needs (see make_world)."""

    aws: Any
    subnets: tuple[str, ...] = ()
    security_group: str = ""
    secret_arn: str = ""
    target_group_arn: str = ""

    def c(self, name: str) -> Any:
        # boto3 clients are slow to create and safe to reuse across tests (moto is reset, not restarted).
        key = f"{self.aws.endpoint}|{name}"
        if key not in _CLIENTS:
            _CLIENTS[key] = self.aws.client(name)
        return _CLIENTS[key]

    def push(self, tag: str) -> str:
        return ecr_push(self.c("ecr"), tag)

    def service(self, name: str = API) -> dict[str, Any]:
        return self.c("ecs").describe_services(cluster=CLUSTER, services=[name])["services"][0]

    def revisions(self, family: str = FAMILY_API) -> list[str]:
        return self.c("ecs").list_task_definitions(familyPrefix=family)["taskDefinitionArns"]

    def td_tags(self, arn: str) -> dict[str, str]:
        tags = self.c("ecs").describe_task_definition(taskDefinition=arn, include=["TAGS"]).get("tags", [])
        return {t["key"]: t["value"] for t in tags}

    def set_alarm(self, state: str) -> None:
        self.c("cloudwatch").set_alarm_state(AlarmName=ALARM, StateValue=state, StateReason="test")

    def services(self) -> dict[str, str]:
        """ECS service name → status, for every service the cluster lists."""
        ecs = self.c("ecs")
        arns = ecs.list_services(cluster=CLUSTER)["serviceArns"]
        out = {}
        for i in range(0, len(arns), 10):
            for s in ecs.describe_services(cluster=CLUSTER, services=arns[i:i + 10])["services"]:
                out[s["serviceName"]] = s["status"]
        return out

    def active_revisions(self, family: str) -> list[str]:
        return self.c("ecs").list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]


def make_world(aws: Any, *, skip: tuple[str, ...] = ()) -> World:
    w = World(aws)
    if "cluster" not in skip:
        # Container Insights on, as `deployctl bootstrap` makes clusters (queue-backlog scaling needs it).
        w.c("ecs").create_cluster(clusterName=CLUSTER, capacityProviders=["FARGATE", "FARGATE_SPOT"],
                                  settings=[{"name": "containerInsights", "value": "enabled"}])
    w.c("ecr").create_repository(repositoryName=REPO)
    if "secret" not in skip:
        w.secret_arn = w.c("secretsmanager").create_secret(
            Name="chat-api/openai-key", SecretString="sk-never-printed-1234")["ARN"]
    if "ssm" not in skip:
        w.c("ssm").put_parameter(Name="/chat-api/database-url", Value="postgres://u:p@h/db", Type="SecureString")
    ec2, elb = w.c("ec2"), w.c("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{az}")[
        "Subnet"]["SubnetId"] for i, az in ((1, "a"), (2, "b"))]
    w.subnets = tuple(subnets)
    w.security_group = ec2.create_security_group(GroupName="chat-api", Description="tasks", VpcId=vpc)["GroupId"]
    if "target_group" not in skip:
        lb = elb.create_load_balancer(Name="chat-api", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
        tg = elb.create_target_group(Name="chat-api-tg", Protocol="HTTP", Port=8000, VpcId=vpc,
                                     TargetType="ip", HealthCheckPath="/health/ready")["TargetGroups"][0]
        w.target_group_arn = tg["TargetGroupArn"]
        elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80,
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                        "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]})
    for role in ("chat-api-execution", "chat-api-task"):
        if f"role:{role}" not in skip:
            w.c("iam").create_role(RoleName=role, AssumeRolePolicyDocument=trust)
    if "alarm" not in skip:
        w.c("cloudwatch").put_metric_alarm(
            AlarmName=ALARM, MetricName="HTTPCode_Target_5XX_Count", Namespace="AWS/ApplicationELB",
            Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanThreshold")
        w.set_alarm("OK")
    return w
